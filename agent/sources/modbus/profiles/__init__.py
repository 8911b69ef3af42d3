"""Meter profiles: the register maps of common meters as data, so a device needs only ``profile = "..."``.

Telling every site to retype a meter's register table invites the off-by-one and byte-order errors that cause
most Modbus support load, so the maps of the meters found in Chinese cement plants ship with the agent. Each
profile is one TOML file beside this module (package data, read with ``importlib.resources``: no new
dependency), transcribed from reference/domain.md §7.1 together with the public source it came from and that
source's confidence label, so an operator can judge how far to trust a map before its numbers reach a
regulator.

A profile's ``points`` hold ``ModbusPoint`` fields (address, function, type, order, scale, unit, kind,
ratios) after the file's ``[defaults]`` are applied, plus a human description; ``info`` holds identification
registers (name strings, serial numbers) that only ``kilnwatch agent probe`` reads, since the wire format
carries numbers only.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from agent.config_messages import suggest
from agent.sources.modbus.decode import register_count

_SUFFIX = ".toml"


@dataclass(frozen=True)
class ProfilePoint:
    """One published point of a profile: ``fields`` validate as an ``agent.config.ModbusPoint`` (no name)."""

    fields: Mapping[str, Any]
    description: str


@dataclass(frozen=True)
class InfoRegister:
    """An identification register (string or number) read by ``probe`` only; ``registers`` is its width."""

    address: int
    type: str
    function: int
    registers: int
    description: str


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    source: str
    confidence: str
    notes: str
    points: Mapping[str, ProfilePoint]
    info: Mapping[str, InfoRegister]


class UnknownProfile(KeyError):
    """No profile of that name; ``str()`` suggests the closest names."""

    def __str__(self) -> str:
        return str(self.args[0])


def names() -> list[str]:
    """Every shipped profile's name, sorted."""
    folder = resources.files(__name__)
    return sorted(p.name.removesuffix(_SUFFIX) for p in folder.iterdir() if p.name.endswith(_SUFFIX))


def did_you_mean(word: str, options: list[str]) -> str:
    """`` — did you mean 'x'?`` for the closest option, or nothing: the hint every config error uses."""
    close = suggest(word, options, cutoff=0.5)
    return f" — did you mean {close!r}?" if close is not None else ""


@functools.cache
def load(name: str) -> Profile:
    """The profile ``name``; raises ``UnknownProfile`` naming the closest known profile."""
    known = names()
    if name not in known:
        raise UnknownProfile(
            f"unknown profile {name!r}{did_you_mean(name, known)} (known profiles: {', '.join(known)})"
        )
    raw = tomllib.loads(resources.files(__name__).joinpath(name + _SUFFIX).read_text(encoding="utf-8"))
    defaults = raw.get("defaults", {})
    points = {
        key: ProfilePoint(
            fields={**defaults, **{k: v for k, v in spec.items() if k != "description"}},
            description=spec.get("description", ""),
        )
        for key, spec in raw["points"].items()
    }
    info = {
        key: InfoRegister(
            address=spec["address"],
            type=spec["type"],
            function=spec.get("function", defaults.get("function", 3)),
            registers=spec["registers"] if spec["type"] == "string" else register_count(spec["type"]),
            description=spec.get("description", ""),
        )
        for key, spec in raw.get("info", {}).items()
    }
    return Profile(name, raw["title"], raw["source"], raw["confidence"], raw["notes"], points, info)
