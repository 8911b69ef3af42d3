"""One error format for every config file: ``key.path: what is wrong — how to fix it``.

The agent's and the collector's loaders both turn pydantic's errors into these sentences, so an operator
reads the same kind of message whichever file is wrong. Values are shown as TOML spells them (``true``,
``"1883"``), since that is what the operator has to type; the fix is a line to write where one can be given.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticUndefined

from agent.config_model import UNIONS, TextValue, literal_options, toml_scalar, unwrap
from agent.config_words import KEY_SYNONYMS, VALUE_SYNONYMS

#: What a type error's field expected, in words.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "an array",
    "tuple_type": "an array",
    "set_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dataclass_type": "a table",
    "datetime_type": "a date-time",
    "datetime_parsing": "a date-time",
    "datetime_from_date_parsing": "a date-time",
    "date_type": "a date",
    "time_type": "a time",
    "path_type": "a path in quotes",
    "is_instance_of": "a path in quotes",  # strict Path; no other config field checks instances
}
_RANGES = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of", "too_short",
           "too_long")  # fmt: skip
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False,
               "0": False}  # fmt: skip
_ENV_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def key_path(loc: Sequence[str | int]) -> str:
    """``modbus[0].points[2].type`` for a pydantic location."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


@dataclass(frozen=True)
class Location:
    """Where an error is: its key path (union arm tags removed) and what the models say about it."""

    loc: tuple[str | int, ...]
    #: The model in which the last key was looked up (for an unknown key: the table it was written in).
    model: type[BaseModel] | None = None
    #: The last key that is a field, its name, and whether ``loc`` goes on past it (an array item).
    field: FieldInfo | None = None
    key: str = ""
    item: bool = False
    #: The type expected at ``loc``; None where the location is not in the model.
    annotation: Any = None
    tagged: bool = False


def locate(root: type[BaseModel], loc: Sequence[str | int]) -> Location:
    """Follow ``loc`` through ``root``'s fields, lists, dicts and unions."""
    annotation: Any = root
    found = Location(loc=(), annotation=root)
    clean: list[str | int] = []
    for index, part in enumerate(loc):
        step = _step(annotation, part)
        if step is None:
            if _is_union_tag(annotation, part):
                found = replace(found, tagged=True)
                continue  # a union arm's tag, e.g. 'int' in shift_starts.0.int
            # Not in the model (an unknown key): the rest of the path is shown as given.
            return Location(loc=(*clean, *loc[index:]), model=_model(annotation), tagged=found.tagged)
        annotation, model, field = step
        clean.append(part)
        if field is not None:
            found = Location(tuple(clean), model, field, str(part), False, annotation, found.tagged)
        else:
            found = replace(found, loc=tuple(clean), item=True, annotation=annotation)
    return found


def _is_union_tag(annotation: Any, part: str | int) -> bool:
    """Whether ``part`` is the tag pydantic puts in a location for one arm of a union ('int', 'str', a
    model's name, 'literal[...]'), not a key: ``int | str`` has tags, ``Model | None`` has none."""
    annotation = unwrap(annotation)
    if not isinstance(part, str) or typing.get_origin(annotation) not in UNIONS:
        return False
    arms = [arm for arm in typing.get_args(annotation) if arm is not type(None)]
    names = {getattr(unwrap(arm), "__name__", None) for arm in arms}
    return len(arms) > 1 and (part in names or "[" in part)


def _step(annotation: Any, part: str | int) -> tuple[Any, type[BaseModel] | None, FieldInfo | None] | None:
    annotation = unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in UNIONS:
        for arm in typing.get_args(annotation):
            if arm is not type(None) and (found := _step(arm, part)) is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return None if field is None else (field.annotation, annotation, field)
    args = typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset) and isinstance(part, int):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return (args[part], None, None) if part < len(args) else None
        return (args[0] if args else Any), None, None
    if origin is dict and len(args) == 2:
        return args[1], None, None
    return None


def _model(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (through Optional and unions), if any."""
    annotation = unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in UNIONS:
        for arm in typing.get_args(annotation):
            if (found := _model(arm)) is not None:
                return found
    return None


def describe_errors(errors: Sequence[ErrorDetails], root: type[BaseModel]) -> list[tuple[str, str]]:
    """``(key path, sentence)`` per problem; a union's arms failing on one value make one problem."""
    groups: dict[tuple[Any, ...], list[tuple[Location, ErrorDetails]]] = {}
    for i, err in enumerate(errors):
        where = locate(root, tuple(err["loc"]))
        groups.setdefault(("union", where.loc) if where.tagged else ("one", i), []).append((where, err))
    out = []
    for members in groups.values():
        where, err = members[0]
        kinds = [e["type"] for _, e in members]
        if len(members) > 1 and all(k in _EXPECTED for k in kinds):
            expected = " or ".join(dict.fromkeys(_EXPECTED[k] for k in kinds))
            out.append((key_path(where.loc), _type_sentence(where, err, expected)))
        else:
            out.append((key_path(where.loc), describe(where, err)))
    return out


def describe(where: Location, err: ErrorDetails) -> str:
    """One error as ``what is wrong — how to fix it`` (the key path goes in front, by the caller)."""
    kind, got = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(str(err["loc"][-1]), where.model)
    if kind == "missing":
        return _missing(where)
    if kind == "literal_error":
        return _literal(where, got, err)
    if kind in _EXPECTED:
        return _type_sentence(where, err, _EXPECTED[kind])
    message = str(err["msg"])
    if kind in _RANGES:
        return f"{message[:1].lower()}{message[1:]}; got {_toml(got)}{_described(where)}"
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if _is_scalar(got) and repr(got) not in message and _toml(got) not in message:
        message += f" (got {_toml(got)})"
    return message


def _unknown_key(name: str, model: type[BaseModel] | None) -> str:
    allowed = [field.alias or key for key, field in model.model_fields.items()] if model is not None else []
    close = suggest(name, allowed, KEY_SYNONYMS, model.__name__ if model is not None else None)
    if close is not None:
        return f"unknown key {name!r} — did you mean {close!r}? (allowed keys: {', '.join(allowed)})"
    if allowed:
        return f"unknown key {name!r} — remove it, or use one of the allowed keys: {', '.join(allowed)}"
    return f"unknown key {name!r} — remove it (see the documented keys)"


def _missing(where: Location) -> str:
    name = where.loc[-1] if where.loc else ""
    if where.field is not None and where.field.description:
        return f"missing required key {name!r}: {where.field.description}"
    if _model(where.annotation) is not None:
        return f"missing required table [{_dotted(where)}] — add it"
    return f"missing required key {name!r} — add it"


def _literal(where: Location, got: Any, err: ErrorDetails) -> str:
    options = literal_options(where.annotation)
    if not options:  # e.g. a Literal inside a type this module does not follow
        return f"{err['msg'].lower()}; got {_literal_got(got)}"
    shown = ", ".join(str(o) for o in options)
    fix = ""
    if isinstance(got, TextValue):
        fix = f" — {_text_fix(got, f'one of {shown}')}"
    elif isinstance(got, str):
        scalar = toml_scalar(got)
        if scalar is not None and not isinstance(scalar, bool) and scalar in options:
            fix = f" — write {_assign(where, got.strip())} without quotes"
        elif (close := suggest(got, [str(o) for o in options], VALUE_SYNONYMS)) is not None:
            option = next(o for o in options if str(o) == close)
            fix = f" — did you mean {option!r}?"
    elif isinstance(got, bool):
        fix = f" — give one of {shown} (a number, not true or false)"
    elif isinstance(got, int | float) and str(got) in [str(o) for o in options]:
        fix = f" — write {_assign(where, json.dumps(str(got)))} in quotes"
    return f"expected one of {shown}; got {_literal_got(got)}{fix}"


def _literal_got(got: Any) -> str:
    return repr(str(got)) if isinstance(got, str) else _toml(got)


def _type_sentence(where: Location, err: ErrorDetails, expected: str) -> str:
    got = err.get("input")
    return f"expected {expected}, got {_shown(got)} — {_type_fix(where, err['type'], got)}{_described(where)}"


def _type_fix(where: Location, kind: str, got: Any) -> str:
    if isinstance(got, TextValue):
        return _text_fix(
            got, "a whole number" if kind.startswith("int_") else _EXPECTED.get(kind, "another value")
        )
    if kind.startswith(("int_", "float_")):
        return _number_fix(where, kind.startswith("int_"), got)
    if kind == "string_type":
        if _is_scalar(got):
            return f"write {_assign(where, json.dumps(_toml(got), ensure_ascii=False))} in quotes"
        return "give one string in quotes"
    if kind.startswith("bool_"):
        if isinstance(got, str) and got.strip().lower() in _BOOL_WORDS:
            return f"write {_assign(where, _toml(_BOOL_WORDS[got.strip().lower()]))} without quotes"
        if isinstance(got, int | float) and got in (0, 1):
            return f"write {_assign(where, _toml(bool(got)))}"
        return f"write {_assign(where, 'true')} or {_assign(where, 'false')}"
    if kind in ("list_type", "tuple_type", "set_type"):
        if isinstance(got, dict) and _model(_item_type(where.annotation)) is not None:
            return f"write [[{_dotted(where)}]] (two brackets) for each entry"
        if _is_scalar(got):
            return f"write {_assign(where, f'[{_toml(got)}]')}"
        return f"write {_assign(where, '[...]')}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "dataclass_type"):
        if isinstance(got, list) and not where.item:
            return f"write [{_dotted(where)}] (one bracket): there is only one"
        if where.item:
            return f"write each entry as a [[{_dotted(where)}]] table"
        return f"write it as a [{_dotted(where)}] table"
    if kind.startswith(("datetime_", "date_", "time_")):
        return _datetime_fix(where, got)
    if kind in ("path_type", "is_instance_of"):
        return "give the path as a string in quotes"
    return "fix the value"


def _number_fix(where: Location, integer: bool, got: Any) -> str:
    what = "a whole number" if integer else "a number"
    example = _example(where, int if integer else float)
    eg = f", e.g. {example}" if example else ""
    if isinstance(got, bool):
        return f"give a number{eg}"
    if isinstance(got, str):
        scalar = toml_scalar(got)
        if isinstance(scalar, bool) or scalar is None:
            return f"give {what} without quotes{eg}"
        if not integer or isinstance(scalar, int):
            return f"write {_assign(where, got.strip())} without quotes"
        if scalar.is_integer():
            return f"write {_assign(where, str(int(scalar)))} without quotes"
        return f"give a whole number without quotes{eg}"
    if isinstance(got, float):
        if got.is_integer():
            return f"write {_assign(where, str(int(got)))}, without the decimal point"
        return f"give a whole number: this key takes no fraction{eg}"
    if isinstance(got, list | dict):
        return f"give one number{eg}"
    return f"give {what}{eg}"


def _datetime_fix(where: Location, got: Any) -> str:
    if isinstance(got, str):
        try:
            parsed = tomllib.loads(f"v = {got.strip()}").get("v")
        except tomllib.TOMLDecodeError:
            parsed = None
        if isinstance(parsed, datetime | date):
            return f"write {_assign(where, got.strip())} without quotes"
    if isinstance(got, date) and not isinstance(got, datetime):
        return f"add the time and offset: {_assign(where, f'{got.isoformat()}T00:00:00+08:00')}"
    example = _assign(where, "2026-11-01T00:00:00+08:00")
    return f"write a date-time with its offset, without quotes, e.g. {example}"


def _text_fix(text: TextValue, expected: str) -> str:
    names = _ENV_NAME.findall(text.source)
    if not names:
        return f"give {expected}"
    default = " (or the default after ':-')" if ":-" in text.source else ""
    return f"set {names[0]}{default} to {expected}"


def _example(where: Location, kind: type) -> str | None:
    """``key = default`` when the field's default shows the right type of value, else None."""
    default = where.field.default if where.field is not None and not where.item else PydanticUndefined
    if isinstance(default, bool) or default is PydanticUndefined or default is None:
        return None
    if isinstance(default, int) if kind is int else isinstance(default, int | float):
        return _assign(where, _toml(default))
    return None


def _assign(where: Location, text: str) -> str:
    """``key = value`` for a key, the value alone for an array item."""
    return f"{where.key} = {text}" if where.key and not where.item else text


def _dotted(where: Location) -> str:
    return ".".join(str(p) for p in where.loc if isinstance(p, str))


def _item_type(annotation: Any) -> Any:
    args = typing.get_args(unwrap(annotation))
    return args[0] if args else None


def _described(where: Location) -> str:
    return f" ({where.field.description})" if where.field is not None and where.field.description else ""


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | datetime | date | time | PurePath)


def _toml(value: Any) -> str:
    """``value`` as written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | PurePath):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return f"[{', '.join(_toml(v) for v in value)}]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _shown(value: Any) -> str:
    """``value`` in words: ``the string "1883"``, ``true``, ``the number 1.5``, ``a table``."""
    if isinstance(value, TextValue):
        return f"the text {_toml(str(value))} from {value.source}"
    if isinstance(value, bool):
        return _toml(value)
    if isinstance(value, str):
        return f"the string {_toml(value)}"
    if isinstance(value, int | float):
        return f"the number {_toml(value)}"
    if isinstance(value, datetime):
        return f"the date-time {_toml(value)}"
    if isinstance(value, date):
        return f"the date {_toml(value)}"
    if isinstance(value, time):
        return f"the time {_toml(value)}"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def suggest(
    word: str, options: Sequence[str], synonyms: Mapping[str, tuple[str, ...]] | None = None,
    qualifier: str | None = None, cutoff: float = 0.6,
) -> str | None:  # fmt: skip
    """The option ``word`` most likely means: the same up to case and separators, a known synonym (looked up
    as ``qualifier.option``, else ``option``), or the closest spelling; None if nothing is close."""
    normal = _normal(word)
    for option in options:
        if _normal(option) == normal:
            return option
    for option in options:
        words = (synonyms or {}).get(f"{qualifier}.{option}") if qualifier else None
        if normal in (words if words is not None else (synonyms or {}).get(option, ())):
            return option
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=cutoff)
    return close[0] if close else None


def _normal(word: str) -> str:
    return re.sub(r"[-\s.]+", "_", word.strip().lower())
