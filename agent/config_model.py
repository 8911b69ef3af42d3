"""The strict base of every config model, and reading a config file: shared by the agent and the collector.

Pydantic's default (lax) mode guesses: ``port = "1883"`` becomes 1883, ``port = true`` becomes 1, ``name = 5``
becomes "5". On a gateway that runs for months, a guess that happens to work hides a file that says something
else than the operator meant, so every config model is strict: a key takes the TOML type its field has.
What TOML itself cannot express is still accepted, since the file is right and only Python's types differ:

* a TOML array for a tuple field (TOML has arrays only; pydantic's strict tuple wants a tuple),
* a TOML string for a path field (TOML has no path type; strict Path wants a Path),
* an integer for a float field (``timeout = 1``; pydantic's strict float already allows it).

Text from outside TOML (a whole ``${VAR}`` expansion, a ``KEY=VALUE`` on the command line) is marked as
``TextValue`` and read by the field's type, as if written unquoted in the file: ``port = "${PORT:-1883}"`` is
``port = 1883``, but ``password = "${PASS}"`` stays a string whatever the variable holds.

This module lives in the agent because gateways install only the agent, and the collector imports it.
"""

from __future__ import annotations

import functools
import tomllib
import types
import typing
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

#: The origins of ``X | Y`` and ``Union[X, Y]``.
UNIONS = (typing.Union, types.UnionType)
_SEQUENCES = (list, tuple)


class TextValue(str):
    """Text that came from outside the TOML file, to be read by the field's type; ``source`` names where
    it came from (e.g. ``${KILNWATCH_MQTT_PORT:-1883}``) so an error can point there instead of at quotes."""

    source: str

    def __new__(cls, text: str, source: str) -> TextValue:
        value = super().__new__(cls, text)
        value.source = source
        return value

    def __reduce__(self) -> tuple[Any, ...]:
        return TextValue, (str(self), self.source)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable and strictly typed."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _toml_value(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return value if field is None else toml_value(value, field.annotation)


def toml_value(value: Any, annotation: Any) -> Any:
    """``value`` as TOML gave it, in the shape strict validation of ``annotation`` expects (see above).

    Only containers and text change here; a value of the wrong type is left for pydantic to refuse, so the
    error names the exact key. Raises a ``literal_error`` for a bool or float where the choices are integers
    (``function = true`` would otherwise pass, as ``True == 1`` in Python).
    """
    if isinstance(value, TextValue):
        value = _read_text(value, annotation)
    annotation = unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in UNIONS:
        for arm in typing.get_args(annotation):
            if arm is not type(None):
                shaped = toml_value(value, arm)
                if shaped is not value:
                    return shaped
        _refuse_non_int(value, annotation)
        return value
    if origin is Literal:
        _refuse_non_int(value, annotation)
        return value
    if isinstance(value, list):
        if origin is tuple:
            args = typing.get_args(annotation)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(toml_value(item, args[0]) for item in value)
            if len(args) == len(value):
                return tuple(toml_value(item, arg) for item, arg in zip(value, args, strict=True))
            return tuple(value)  # the wrong length: pydantic names it
        if origin is list and typing.get_args(annotation):
            return [toml_value(item, typing.get_args(annotation)[0]) for item in value]
        return value
    if isinstance(value, dict) and origin is dict and len(typing.get_args(annotation)) == 2:
        item_type = typing.get_args(annotation)[1]
        return {key: toml_value(item, item_type) for key, item in value.items()}
    if isinstance(value, str) and isinstance(annotation, type) and issubclass(annotation, PurePath):
        return annotation(value)
    return value


def unwrap(annotation: Any) -> Any:
    """``X`` for ``Annotated[X, ...]``."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _refuse_non_int(value: Any, annotation: Any) -> None:
    """Integer choices take integers only: ``True`` and ``3.0`` compare equal to 1 and 3, yet are not."""
    if not isinstance(value, bool | float):
        return
    options = literal_options(annotation)
    if options and all(isinstance(o, int) and not isinstance(o, bool) for o in options):
        expected = ", ".join(str(o) for o in options)
        raise PydanticCustomError(
            "literal_error", "Input should be one of {expected}", {"expected": expected}
        )


def literal_options(annotation: Any) -> list[Any]:
    """The choices of a ``Literal`` annotation (through Optional and Annotated), or [] if it has none."""
    annotation = unwrap(annotation)
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    if typing.get_origin(annotation) in UNIONS:
        return [o for arm in typing.get_args(annotation) for o in literal_options(arm)]
    return []


def _read_text(text: TextValue, annotation: Any) -> Any:
    """The text as a TOML scalar if the field takes that (``"1883"`` → 1883 for an int), else as a string.

    Text the field takes as a string becomes a plain ``str``; text it cannot take at all stays a
    ``TextValue``, so the error that follows can name where the text came from.
    """
    scalar = toml_scalar(text)
    if scalar is not None and _fits(scalar, annotation):
        return scalar
    if _fits(str(text), annotation):
        return str(text)
    return text


def toml_scalar(text: str) -> bool | int | float | None:
    """``text`` read as an unquoted TOML bool, integer or float (``0x2012``, ``1e6``, ``true``), or None."""
    if not text.strip() or any(c in text for c in "\r\n"):
        return None
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return None
    value = parsed.get("v")
    return value if len(parsed) == 1 and isinstance(value, bool | int | float) else None


def _fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` passes strict validation of ``annotation`` (its constraints, e.g. ``ge``, aside)."""
    try:
        _adapter(annotation).validate_python(toml_value(value, annotation))
    except (ValueError, TypeError):  # ValidationError, a refused literal, a type pydantic cannot adapt
        return False
    return True


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    try:
        return _cached_adapter(annotation)
    except TypeError:  # an unhashable annotation
        return _new_adapter(annotation)


@functools.lru_cache(maxsize=256)
def _cached_adapter(annotation: Any) -> TypeAdapter[Any]:
    return _new_adapter(annotation)


def _new_adapter(annotation: Any) -> TypeAdapter[Any]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return TypeAdapter(annotation)  # a model brings its own (strict) config
    return TypeAdapter(annotation, config=ConfigDict(strict=True))


class UnreadableConfig(ValueError):
    """A config file that cannot be read as TOML; the message starts with the file and ends with the fix."""


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML table in ``path``, or ``UnreadableConfig`` saying why not (missing, not UTF-8, bad syntax)."""
    return parse_toml(read_text(path), path)


def read_text(path: Path) -> str:
    """The file's text; a UTF-8 byte-order mark (Windows Notepad writes one) is dropped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UnreadableConfig(f"{path}: cannot read the file: it does not exist — check the path") from None
    except OSError as exc:
        raise UnreadableConfig(
            f"{path}: cannot read the file: {exc.strerror or exc} — check the path and its permissions"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableConfig(
            f"{path}: not UTF-8 text ({_not_utf8(data, exc)}) — save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise UnreadableConfig(
            f"{path}: not UTF-8 text (it has NUL bytes: UTF-16, or not a text file) — save it as UTF-8"
        )
    return text


def _not_utf8(data: bytes, exc: UnicodeDecodeError) -> str:
    """What the bytes look like instead, so the operator knows which file or editor setting is wrong."""
    if data.startswith(b"\x1f\x8b"):
        return "it is gzip-compressed: unpack it first"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "it is UTF-16"
    line = data.count(b"\n", 0, exc.start) + 1
    return f"byte 0x{data[exc.start]:02x} on line {line} is not UTF-8; GBK or Latin-1?"


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UnreadableConfig(f"{path}: not valid TOML: {exc} — fix the syntax at that line") from None
