"""The agent's TOML configuration: the sections every agent has, and one section per source.

Operators edit this file on a gateway, often over SSH, and the agent must then run for months. So every key
is checked at load (unknown keys included: a typo must not silently fall back to a default), and every
failure raises one ``ConfigError`` whose lines each name the file, the key path (``modbus[0].points[2].type``)
and the fix, in the format every Kilnwatch config shares (``agent.config_load``). Field descriptions double as
those fixes and as the reference in ``docs/agent.md``.

The sections here are ``[agent]``, ``[mqtt]`` (``agent.mqtt_settings``), ``[outbox]`` and ``[health]``. Each
source adds its own array of tables (``[[modbus]]``, ``[[opcua]]``, ...): ``AgentFile`` is assembled from
the source registry, so this module names no protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, create_model, field_validator

from agent.config_fields import Name, Strict
from agent.config_load import ConfigError, PathKeys, load_model, parse_model
from agent.mqtt_settings import MqttSection
from agent.sources.base import Source
from agent.sources.registry import SOURCES

__all__ = ["AgentConfig", "AgentFile", "ConfigError", "load_config", "parse_config"]


class AgentSection(Strict):
    id: Name = Field(description="set the agent's id, unique per site (e.g. 'kiln-gw')")
    site: Name = Field(description="set the site (plant) id this agent publishes for")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    batch_interval: float = Field(
        1.0, gt=0, description="seconds between batches: all readings gathered in this window go in one batch"
    )


class OutboxSection(Strict):
    path: Path = Field(Path("outbox.db"), description="SQLite file; relative paths are relative to this file")
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="drop the oldest batches above this size")
    max_age_s: float = Field(7 * 86400, gt=0, description="drop batches older than this many seconds")
    replay_rate: float = Field(
        2000.0,
        gt=0,
        description=(
            "most batches published per second when a backlog replays (a flood guard for broker and "
            "collector); a day offline at 1 batch/s is 86,400 batches, which drain in 86,400 / (2000 - 1) "
            "≈ 45 s at the default"
        ),
    )


class HealthSection(Strict):
    listen: str = Field(
        "127.0.0.1:9108", description='host:port of the /healthz and /metrics endpoint; "" turns it off'
    )
    stall_s: float = Field(
        120.0, gt=0, description="seconds a poller or the outbox may make no progress before /healthz fails"
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if value and not (host and port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"{value!r} is not host:port: write e.g. '127.0.0.1:9108', or \"\" for off")
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to listen on, or None when off; IPv6 hosts are written in brackets: '[::1]:9108'."""
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class AgentConfig(Strict):
    """The sections every agent has; ``AgentFile`` adds one list per registered source."""

    agent: AgentSection
    mqtt: MqttSection = Field(default_factory=MqttSection)
    outbox: OutboxSection = Field(default_factory=OutboxSection)
    health: HealthSection = Field(default_factory=HealthSection)

    @field_validator("outbox")
    @classmethod
    def _replay_catches_up(cls, outbox: OutboxSection, info: ValidationInfo) -> OutboxSection:
        agent = info.data.get("agent")
        if agent is not None and outbox.replay_rate < 2 / agent.batch_interval:
            raise ValueError(
                f"replay_rate {outbox.replay_rate:g} batches/s must be at least twice the live rate "
                f"(1 batch per agent.batch_interval = {agent.batch_interval:g} s) so a backlog drains: "
                f"raise it to {2 / agent.batch_interval:g} or more"
            )
        return outbox

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"kilnwatch-{self.agent.id}"

    def tables(self, source: Source) -> list[Any]:
        """The ``[[<source.key>]]`` tables of this config."""
        return list(getattr(self, source.key))

    def sources(self) -> list[tuple[Source, list[Any]]]:
        """Each registered source with its tables, in registry order (sources with none included)."""
        return [(source, self.tables(source)) for source in SOURCES]


#: The model a file is validated with: ``AgentConfig`` plus a list field per registered source.
AgentFile = create_model(
    "AgentFile",
    __base__=AgentConfig,
    __doc__="A whole agent config file: the common sections and one array of tables per source.",
    **{
        s.key: (list[s.config], Field(default_factory=list, description=f"one table per {s.title}"))
        for s in SOURCES
    },
)

#: Tables whose keys hold paths, taken from the config file's folder when relative.
PATH_KEYS: PathKeys = {
    "mqtt": ("ca_file", "cert_file", "key_file"),
    "outbox": ("path",),
    **{s.key: s.path_keys for s in SOURCES if s.path_keys},
}


def load_config(path: str | Path) -> AgentConfig:
    """Read, expand and validate a config file; relative paths resolve against its folder."""
    path = Path(path)
    return load_model(path, AgentFile, PATH_KEYS, _checks, _default_outbox(path.parent))


def parse_config(text: str, path: Path) -> AgentConfig:
    """Validate TOML ``text``; ``path`` names the file in errors and anchors relative paths."""
    return parse_model(text, path, AgentFile, PATH_KEYS, _checks, _default_outbox(path.parent))


def _default_outbox(folder: Path) -> Any:
    """The outbox file defaults to ``outbox.db`` beside the config file, not in the working directory."""

    def prepare(raw: dict[str, Any]) -> dict[str, Any]:
        outbox = raw.get("outbox")
        if isinstance(outbox, dict) and "path" in outbox:
            return raw
        return {**raw, "outbox": {**(outbox or {}), "path": str((folder / "outbox.db").resolve())}}

    return prepare


def _checks(config: AgentConfig) -> list[str]:
    """Checks across tables: unique names first; then each source's own (e.g. shared connections)."""
    problems = _duplicate_names(config)
    if problems:
        return problems
    return [line for source, tables in config.sources() for line in source.problems(tables)]


def _duplicate_names(config: AgentConfig) -> list[str]:
    """Channel names must be unique in an agent: they are the channel ids on the wire."""
    problems = []
    points: dict[str, str] = {}
    for source, tables in config.sources():
        names: dict[str, str] = {}
        for i, table in enumerate(tables):
            key = f"{source.key}[{i}]"
            if table.name in names:
                other = names[table.name]
                problems.append(f"{key}.name: duplicate name {table.name!r} (also {other}): rename one")
            names.setdefault(table.name, key)
            for j, point in enumerate(table.points):
                where = f"{key}.points[{j}]"
                if point.name in points:
                    other = points[point.name]
                    problems.append(f"{where}.name: duplicate name {point.name!r} (also {other}): rename one")
                points.setdefault(point.name, where)
    return problems
