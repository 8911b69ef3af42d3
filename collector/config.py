"""Collector configuration (TOML): the same language as the agent's, read by the same loader.

``agent.config_load`` reads this file, the site model and the agent's config alike: strict values
(``kpi_interval_s = "10"`` is an error, not ten seconds), ``${VAR}`` and ``${VAR:-default}`` from the
environment, relative paths taken from this file's folder, and one error line per problem,
``<file>: <key path>: <what is wrong> — <the fix>``.

``[mqtt]`` is the agent's ``MqttSection`` (broker, login, TLS and mutual TLS, MQTT 5) with one collector key
more, ``shared_group``; ``[influx]`` is the sink (``collector.sinks.config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from agent import mqtt_settings
from agent.config_fields import Strict
from agent.config_load import ConfigError, PathKeys, load_model
from agent.wire import MAX_PAYLOAD_BYTES
from collector.sinks.config import InfluxConfig

__all__ = ["CollectorConfig", "CollectorSection", "ConfigError", "MqttSection", "load_config"]

#: Keys the collector's ``[mqtt]`` had before it shared the agent's section → the key to write now.
RENAMED_MQTT_KEYS = {"keepalive_s": "keepalive", "topic_root": "root"}

DEFAULT_LEDGER = Path("var/ledger.sqlite")


def _postgres_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError(
            f"{value!r} is not a PostgreSQL URL: write postgresql://user@host:5432/database, or remove"
            " ledger_url to keep the ledger in the SQLite file ``ledger``"
        )
    return value


class CollectorSection(Strict):
    site_model: Path = Field(
        description="set the site model file or a folder of them (one file per site), e.g. site_model ="
        ' "sites" (relative to this file\'s folder)'
    )
    ledger: Path = Field(DEFAULT_LEDGER, description="SQLite file; relative paths are relative to this file")
    ledger_url: str | None = Field(
        None,
        description='the ledger on PostgreSQL, e.g. "postgresql://kilnwatch@db/kilnwatch" (production);'
        " unset = the SQLite file ``ledger`` (embedded). The local stores (sink queue, dead letters) stay"
        " beside ``ledger``",
    )
    kpi_interval_s: float = Field(
        10.0, gt=0, description="seconds between recomputing the KPIs of the periods that received data"
    )
    periods: tuple[Literal["hour", "shift", "day", "month"], ...] = ("hour", "day")
    max_future_s: float = Field(
        300.0, gt=0, description="readings stamped further ahead are rejected (a gateway with a wrong clock)"
    )
    max_payload_bytes: int = Field(MAX_PAYLOAD_BYTES, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    _ledger_url = field_validator("ledger_url")(_postgres_url)
    group_max_messages: int = Field(
        1000, gt=0, le=100_000, description="messages applied together in one ledger transaction, at most"
    )
    group_window_ms: int = Field(
        50, ge=0, le=5000, description="milliseconds a group waits for more messages after its first"
    )
    raw_retention_days: float = Field(
        400.0,
        ge=0,
        description="days raw readings are kept in the ledger (0 = forever); late data older"
        " than this can no longer restate its periods",
    )
    deadletter_max_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="bytes of dead letters kept; the oldest are evicted (counted)"
    )
    deadletter_max_count: int = Field(
        10_000, gt=0, description="dead letters kept; the oldest are evicted (counted)"
    )
    http: str | None = Field(
        None,
        description='"host:port" for /healthz and /metrics, e.g. "127.0.0.1:9109" (the agent has 9108); unset'
        ' or "" = no endpoint',
    )


class MqttSection(mqtt_settings.MqttSection):
    """The agent's ``[mqtt]`` keys, with the collector's client id and ``shared_group``.

    ``max_inflight`` is the agent's publish window; the collector publishes nothing, so setting it is an
    error rather than a key that silently does nothing.
    """

    client_id: str = Field("kilnwatch-collector", description="MQTT client id; unique per collector")
    #: MQTT 5 by default: its Receive Maximum lets the broker keep a whole group of messages in flight to
    #: us (acknowledged after the group's commit); with 3.1.1 the broker's ``max_inflight_messages`` (20 on
    #: Mosquitto unless raised) caps every group.
    protocol: Literal["3.1.1", "5"] = "5"
    shared_group: str | None = Field(
        None, description="collectors with the same group share the load through $share/<group>/..."
    )

    @field_validator("max_inflight")
    @classmethod
    def _no_window(cls, value: int) -> int:
        raise ValueError("the collector publishes nothing, so it has no publish window — remove max_inflight")

    @field_validator("shared_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in "/+#")):
            raise ValueError(f"{value!r} is not a valid shared_group: one topic level without / + #")
        return value


class CollectorConfig(Strict):
    collector: CollectorSection
    mqtt: MqttSection = Field(default_factory=MqttSection)
    #: No [influx] section = no time-series store: KPIs stay in the ledger (the embedded default).
    influx: InfluxConfig | None = None


#: Tables whose keys hold paths, taken from the config file's folder when relative.
PATH_KEYS: PathKeys = {
    "collector": ("site_model", "ledger"),
    "mqtt": ("ca_file", "cert_file", "key_file"),
}


def load_config(path: str | Path) -> CollectorConfig:
    """Read, expand and validate a collector config; raises ``ConfigError`` naming file, key and fix."""
    path = Path(path)
    return load_model(path, CollectorConfig, PATH_KEYS, _checks, _prepare(path))


def _prepare(path: Path) -> Any:
    """Renamed ``[mqtt]`` keys are named with the key to write; the ledger defaults to ``var/ledger.sqlite``
    beside this file, not in the working directory."""

    def prepare(raw: dict[str, Any]) -> dict[str, Any]:
        mqtt = raw.get("mqtt")
        if isinstance(mqtt, dict):
            renamed = [
                f"{path}: mqtt.{old}: renamed to {new}, the agent's key — write {new} = {_toml(mqtt[old])}"
                for old, new in RENAMED_MQTT_KEYS.items()
                if old in mqtt
            ]
            if renamed:
                raise ConfigError(renamed)
        section = raw.get("collector")
        if isinstance(section, dict) and "ledger" not in section:
            ledger = str((path.parent / DEFAULT_LEDGER).resolve())
            return {**raw, "collector": {**section, "ledger": ledger}}
        return raw

    return prepare


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _checks(config: CollectorConfig) -> list[str]:
    site_model = config.collector.site_model
    if not site_model.exists():
        return [
            f"collector.site_model: {str(site_model)!r} does not exist — point it at the site model file or"
            " a folder of site model files (a relative path is taken from this file's folder)"
        ]
    return []
