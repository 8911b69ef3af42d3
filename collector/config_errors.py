"""Turn pydantic validation errors into messages an operator can act on: file, key, fix.

Both the site model and the collector config are TOML files checked at load; a bad file must stop start-up
with one readable paragraph per problem instead of a traceback. The sentences are the agent's
(``agent.config_messages``), so every Kilnwatch config file reports a problem the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent.config_messages import describe_errors
from agent.config_model import UnreadableConfig, read_toml

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file, the key and the fix."""


def load_toml_model(path: Path, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Read ``path`` and validate it as ``model``; any problem raises ConfigError naming file, key and fix."""
    try:
        raw = read_toml(path)
    except UnreadableConfig as exc:
        raise ConfigError(str(exc)) from None
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        errors = describe_errors(exc.errors(), model)
        problems = "\n".join(f"  - key '{key}': {sentence}" for key, sentence in errors)
        raise ConfigError(f"{path}: {len(errors)} problem(s):\n{problems}") from None
