"""Field types every config section shares: the strict table base, safe names and channel kinds."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator

from agent import wire
from agent.config_model import StrictModel

NAME_RULE = "use 1-64 characters from A-Z a-z 0-9 _ . : -"

#: What a channel measures; the collector picks its arithmetic (counter or rate) from this.
Kind = Literal["energy_total", "power", "mass_total", "mass_rate", "volume_total", "volume_rate", "analog"]


class Strict(StrictModel):
    """Every config table: unknown keys are errors, values strictly typed (see agent.config_model)."""


def _check_name(value: str) -> str:
    if not wire.valid_id(value):
        raise ValueError(f"{value!r} is not a valid name: {NAME_RULE}")
    return value


#: Names that become channel ids or topic levels must be safe there (see wire.valid_id).
Name = Annotated[str, AfterValidator(_check_name)]
