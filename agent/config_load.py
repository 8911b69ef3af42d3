"""Loading any Kilnwatch config file: one reader, one ``${VAR}`` expansion, one error format for every role.

The agent, the collector, the site model and the sinks all load through ``load_model``, so an operator meets
one language everywhere: each problem is one line ``<file>: <key path>: <what is wrong>: <the fix>`` (with a
did-you-mean for unknown keys and values, see ``agent.config_messages``), ``${VAR}`` and ``${VAR:-default}``
are expanded from the environment, and relative file paths are taken from the config file's folder, so a
file means the same whichever directory the service is started from (systemd, a shell, a test).

A value that is one whole reference, such as ``port = "${PORT:-1883}"``, is read by the key's type after
expansion, as if the result were written unquoted: a number for ``port``, but still a string for
``password``. Text around a reference (``"opc.tcp://${HOST}:4840"``) makes the value a string, as written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent.config_messages import describe_errors, key_path
from agent.config_model import TextValue, UnreadableConfig, parse_toml, read_text

M = TypeVar("M", bound=BaseModel)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: Where file keys sit: a dotted table path (``"mqtt"``, ``"opcua"``, ``"sinks.influxdb"``; ``""`` for the
#: top level) → the keys in it that hold paths. A table path that holds an array of tables applies to each.
PathKeys = Mapping[str, Iterable[str]]


class ConfigError(ValueError):
    """An invalid configuration. ``problems`` holds one line per defect; ``str()`` joins them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_model(
    path: str | Path,
    model: type[M],
    path_keys: PathKeys | None = None,
    checks: Callable[[M], list[str]] | None = None,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> M:
    """Read, expand and validate the file at ``path`` as ``model``; raises ``ConfigError``.

    ``checks`` adds problems found across tables after validation (e.g. duplicate names), each a
    ``<key path>: <sentence>`` line; ``prepare`` may fill in defaults that depend on the file's folder.
    """
    path = Path(path)
    try:
        text = read_text(path)
    except UnreadableConfig as exc:
        raise ConfigError([str(exc)]) from None
    return parse_model(text, path, model, path_keys, checks, prepare)


def parse_model(
    text: str,
    path: Path,
    model: type[M],
    path_keys: PathKeys | None = None,
    checks: Callable[[M], list[str]] | None = None,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> M:
    """``load_model`` for text already read; ``path`` names the file in errors and anchors relative paths."""
    try:
        raw = parse_toml(text, path)
    except UnreadableConfig as exc:
        raise ConfigError([str(exc)]) from None
    problems: list[str] = []
    raw = expand_env(raw, (), path, problems)
    if problems:
        raise ConfigError(problems)
    raw = anchor_paths(raw, path.parent, path_keys or {})
    if prepare is not None:
        raw = prepare(raw)
    config = validate(raw, path, model)
    problems = [f"{path}: {line}" for line in (checks(config) if checks is not None else [])]
    if problems:
        raise ConfigError(problems)
    return config


def validate(raw: Any, path: Path, model: type[M]) -> M:
    """``model`` from the (expanded) table ``raw``, or ``ConfigError`` in the one format."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = describe_errors(exc.errors(), model)
        raise ConfigError([f"{path}: {key}: {sentence}" for key, sentence in errors]) from None


def anchor_paths(raw: Any, folder: Path, path_keys: PathKeys) -> Any:
    """``raw`` with the relative paths under ``path_keys`` made absolute from ``folder``."""
    if not isinstance(raw, dict):
        return raw
    out = raw
    for table_path, keys in path_keys.items():
        out = _anchor_at(out, table_path.split(".") if table_path else [], folder, tuple(keys))
    return out


def _anchor_at(node: Any, steps: list[str], folder: Path, keys: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_anchor_at(item, steps, folder, keys) for item in node]
    if not isinstance(node, dict):
        return node
    if steps:
        head, rest = steps[0], steps[1:]
        return {**node, head: _anchor_at(node[head], rest, folder, keys)} if head in node else node
    return {
        k: str((folder / v).resolve()) if k in keys and isinstance(v, str) and v else v
        for k, v in node.items()
    }


def expand_env(value: Any, loc: tuple[str | int, ...], path: Path, problems: list[str]) -> Any:
    """Strings with ``${VAR}`` references expanded; a value that is one whole reference becomes a
    ``TextValue``, which the models read by the key's type (a number for ``port``)."""
    if isinstance(value, dict):
        return {k: expand_env(v, (*loc, k), path, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, (*loc, i), path, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(
            f"{path}: {key_path(loc)}: environment variable {name!r} is not set: "
            f"set it, or give a default as ${{{name}:-value}}"
        )
        return match.group(0)

    expanded = _ENV_REF.sub(substitute, value)
    return TextValue(expanded, value) if _ENV_REF.fullmatch(value) else expanded
