"""Turn pydantic validation errors into messages an operator can act on: file, key, fix.

Both the site model and the collector config are TOML files checked at load; a bad file must stop start-up
with one readable paragraph per problem instead of a traceback.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file, the key and the fix."""


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Names allowed at the parent of ``loc``, for did-you-mean hints on unknown keys."""
    current: Any = model
    parts = list(loc[:-1])
    while parts and current is not None:
        part = parts.pop(0)
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        if get_origin(field.annotation) is dict and parts:
            parts.pop(0)  # the dict's own key, e.g. a channel id
        current = _inner_model(field.annotation)
    fields = getattr(current, "model_fields", None)
    return [f.alias or name for name, f in fields.items()] if fields else []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(get_args(annotation)):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _describe(err: dict[str, Any], model: type[BaseModel]) -> str:
    key = _key_path(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(err["loc"][-1])
        close = difflib.get_close_matches(name, _fields_at(model, err["loc"]), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "remove it (see the documented keys)"
        return f"key '{key}': unknown key '{name}' — {hint}"
    if kind == "missing":
        return f"key '{key}': missing required key — add it"
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
    return f"key '{key}': {msg}{shown} — fix the value"


def load_toml_model(path: Path, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Read ``path`` and validate it as ``model``; any problem raises ConfigError naming file, key and fix."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found — check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc} — fix the syntax at that line") from None
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(e, model)}" for e in exc.errors())
        raise ConfigError(f"{path}: {exc.error_count()} problem(s):\n{problems}") from None
