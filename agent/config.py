"""The agent's TOML configuration: schema, loading and error messages an operator can act on.

Operators edit this file on a gateway, often over SSH, and the agent must then run for months. So every key
is checked at load (unknown keys included: a typo must not silently fall back to a default), and every
failure raises one ``ConfigError`` whose lines each name the file, the key path (``modbus[0].points[2].type``)
and the fix. Field descriptions double as those fixes and as the reference in ``docs/agent.md``.

``${VAR}`` and ``${VAR:-default}`` inside string values are expanded from the environment at load, so a
deployment can move a host or port without editing the file (the demo and the tests start the simulator on
free ports this way).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent import wire
from agent.sources.modbus.decode import register_count

RegisterType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
Kind = Literal["energy_total", "power", "mass_total", "mass_rate", "volume_total", "volume_rate", "analog"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# OPC UA node ids as written in the config: an optional namespace (index or URI) and one identifier.
_NODE_ID = re.compile(r"^(?:ns=\d+;|nsu=[^;]+;)?(?:i=\d+|s=.+|g=[0-9A-Fa-f-]{36}|b=.+)$")
_NAME_RULE = "use 1-64 characters from A-Z a-z 0-9 _ . : -"


class ConfigError(ValueError):
    """An invalid configuration. ``problems`` holds one line per defect; ``str()`` joins them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if not wire.valid_id(value):
        raise ValueError(f"{value!r} is not a valid name: {_NAME_RULE}")
    return value


#: Names that become channel ids or topic levels must be safe there (see wire.valid_id).
Name = Annotated[str, AfterValidator(_check_name)]


class AgentSection(_Strict):
    id: Name = Field(description="set the agent's id, unique per site (e.g. 'kiln-gw')")
    site: Name = Field(description="set the site (plant) id this agent publishes for")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    batch_interval: float = Field(
        1.0, gt=0, description="seconds between batches: all readings gathered in this window go in one batch"
    )


class MqttSection(_Strict):
    host: str = Field("127.0.0.1", description="set the broker's hostname or IP address")
    port: int = Field(1883, ge=1, le=65535, description="set the broker's TCP port (1883 plain, 8883 TLS)")
    client_id: str | None = Field(None, description="MQTT client id; default 'kilnwatch-<agent id>'")
    username: str | None = None
    password: str | None = None
    keepalive: int = Field(30, ge=5, le=3600, description="seconds between keep-alive pings")
    root: str = Field(wire.DEFAULT_ROOT, description="topic root, first level of every topic")
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    max_inflight: int = Field(20, ge=1, le=1000, description="batches published but not yet acknowledged")

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        if not value or any(c in value for c in "/+#"):
            raise ValueError(f"{value!r} is not a valid topic root: one topic level without / + #")
        return value


class OutboxSection(_Strict):
    path: Path = Field(Path("outbox.db"), description="SQLite file; relative paths are relative to this file")
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="drop the oldest batches above this size")
    max_age_s: float = Field(7 * 86400, gt=0, description="drop batches older than this many seconds")


class ModbusPoint(_Strict):
    name: Name = Field(description="set the point's channel name, unique in this agent")
    address: int = Field(
        ge=0, le=65535, description="set the register address (see the device's address_base)"
    )
    function: Literal[3, 4] = Field(3, description="3 = holding registers, 4 = input registers")
    type: RegisterType = Field(description="set the register type: int16 ... float64")
    order: WordOrder | None = Field(None, description="byte/word order; default: the device's order")
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    kind: Kind = "analog"


class ModbusDevice(_Strict):
    name: Name = Field(description="set the device's name (used in logs and channel metadata)")
    host: str = Field(description="set the device's IP address or hostname")
    port: int = Field(502, ge=1, le=65535, description="set the device's TCP port")
    unit: int = Field(1, ge=0, le=255, description="set the Modbus unit id (slave id), 0-255")
    timeout: float = Field(1.0, gt=0, description="seconds to wait for one response")
    retries: int = Field(1, ge=0, le=10, description="extra attempts after a failed request")
    address_base: Literal[0, 1] = Field(
        0, description="0 if addresses are protocol addresses, 1 if they are register numbers from 1"
    )
    order: WordOrder = "ABCD"
    interval: float = Field(1.0, gt=0, description="seconds between polls")
    max_registers: int = Field(125, ge=1, le=125, description="largest request, in registers")
    max_gap: int = Field(16, ge=0, le=124, description="unused registers a request may span to join points")
    points: list[ModbusPoint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _addresses(self) -> ModbusDevice:
        for point in self.points:
            if point.address < self.address_base:
                raise ValueError(
                    f"point {point.name!r}: address {point.address} is below address_base {self.address_base}"
                )
            if point.address - self.address_base + register_count(point.type) > 65536:
                end = f"{point.type} at {point.address} runs past register 65535"
                raise ValueError(f"point {point.name!r}: {end}")
        return self


class OpcuaPoint(_Strict):
    name: Name = Field(description="set the point's channel name, unique in this agent")
    node: str = Field(
        description="set the node id, e.g. 'ns=2;s=KilnLine1.KilnFeed_tph' or 'nsu=urn:...;s=...'"
    )
    unit: str = ""
    kind: Kind = "analog"
    scale: float = 1.0

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        if not _NODE_ID.match(value):
            raise ValueError(
                f"{value!r} is not a node id: write [ns=<index>; or nsu=<uri>;] then i=<n> or s=<text>"
            )
        return value


class OpcuaServer(_Strict):
    name: Name = Field(description="set the server's name (used in logs and channel metadata)")
    endpoint: str = Field(description="set the endpoint URL, e.g. 'opc.tcp://10.0.0.5:4840/'")
    interval: float = Field(1.0, gt=0, description="seconds between reads")
    timeout: float = Field(4.0, gt=0, description="seconds to wait for a response")
    points: list[OpcuaPoint] = Field(default_factory=list)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith("opc.tcp://"):
            raise ValueError(f"{value!r} is not an OPC UA endpoint: it must start with 'opc.tcp://'")
        return value


class AgentConfig(_Strict):
    agent: AgentSection
    mqtt: MqttSection = Field(default_factory=MqttSection)
    outbox: OutboxSection = Field(default_factory=OutboxSection)
    modbus: list[ModbusDevice] = Field(default_factory=list)
    opcua: list[OpcuaServer] = Field(default_factory=list)

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"kilnwatch-{self.agent.id}"


def load_config(path: str | Path) -> AgentConfig:
    """Read, expand and validate a config file; relative outbox paths resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror or exc}"]) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> AgentConfig:
    """Validate TOML ``text``; ``path`` names the file in errors and anchors relative paths."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    raw = _expand_env(raw, (), path, problems)
    if problems:
        raise ConfigError(problems)
    try:
        config = AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([f"{path}: {_describe(err)}" for err in exc.errors()]) from None
    problems = [f"{path}: {line}" for line in _duplicate_names(config)]
    if problems:
        raise ConfigError(problems)
    if not config.outbox.path.is_absolute():
        outbox = config.outbox.model_copy(update={"path": (path.parent / config.outbox.path).resolve()})
        config = config.model_copy(update={"outbox": outbox})
    return config


def _expand_env(value: Any, loc: tuple[str | int, ...], path: Path, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, (*loc, k), path, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*loc, i), path, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(
            f"{path}: {_key_path(loc)}: environment variable {name!r} is not set: "
            f"set it, or give a default as ${{{name}:-value}}"
        )
        return match.group(0)

    return _ENV_REF.sub(substitute, value)


def _duplicate_names(config: AgentConfig) -> list[str]:
    """Channel names must be unique in an agent: they are the channel ids on the wire."""
    problems = []
    points: dict[str, str] = {}
    for section, items in (("modbus", config.modbus), ("opcua", config.opcua)):
        names: dict[str, str] = {}
        for i, item in enumerate(items):
            key = f"{section}[{i}]"
            if item.name in names:
                other = names[item.name]
                problems.append(f"{key}.name: duplicate name {item.name!r} (also {other}): rename one")
            names.setdefault(item.name, key)
            for j, point in enumerate(item.points):
                where = f"{key}.points[{j}]"
                if point.name in points:
                    other = points[point.name]
                    problems.append(f"{where}.name: duplicate name {point.name!r} (also {other}): rename one")
                points.setdefault(point.name, where)
    return problems


def _key_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (so errors can list its keys and read its docs)."""
    model: type[BaseModel] = AgentConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _nested_model(field.annotation) if field is not None else None
        if inner is None:
            return None
        model = inner
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def _describe(err: Any) -> str:
    """One pydantic error → 'key.path: what is wrong: how to fix it'."""
    loc = tuple(err["loc"])
    key, parent = _key_path(loc), _model_at(loc[:-1])
    name = loc[-1] if loc else ""
    field = parent.model_fields.get(name) if parent is not None and isinstance(name, str) else None
    got = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = list(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        return f"{key}: unknown key {name!r}{hint} (allowed keys: {', '.join(allowed)})"
    if kind == "missing":
        fix = field.description if field is not None and field.description else "add it"
        return f"{key}: missing required key {name!r}: {fix}"
    if kind == "literal_error" and field is not None:
        options = [str(o) for o in _literal_options(field.annotation)]
        close = difflib.get_close_matches(str(got), options, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        return f"{key}: expected one of {', '.join(options)}; got {got!r}{hint}"
    message = err["msg"].removeprefix("Value error, ")
    if kind.endswith(("_type", "_parsing")) or kind in (
        "greater_than",
        "less_than_equal",
        "greater_than_equal",
    ):
        fix = f" ({field.description})" if field is not None and field.description else ""
        return f"{key}: {message.lower()}; got {got!r}{fix}"
    return f"{key}: {message}"


def _literal_options(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    return [opt for arg in typing.get_args(annotation) for opt in _literal_options(arg)]
