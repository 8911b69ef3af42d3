"""Collector configuration (TOML), validated at load with errors that name file, key and fix.

Values are strict (``agent.config_model``): ``kpi_interval_s = "10"`` is an error, not ten seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agent.config_model import StrictModel as _Strict
from agent.wire import DEFAULT_ROOT, MAX_PAYLOAD_BYTES
from collector.config_errors import ConfigError, load_toml_model
from collector.sinks.config import InfluxConfig


class CollectorSection(_Strict):
    #: The site model (relative paths resolve against the config file's folder).
    site_model: Path
    ledger: Path = Path("var/ledger.sqlite")
    #: How often KPIs of the periods that received data are recomputed.
    kpi_interval_s: float = Field(10.0, gt=0)
    periods: tuple[Literal["hour", "shift", "day", "month"], ...] = ("hour", "day")
    #: Readings stamped further than this in the future are rejected (a gateway with a wrong clock).
    max_future_s: float = Field(300.0, gt=0)
    max_payload_bytes: int = Field(MAX_PAYLOAD_BYTES, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class MqttSection(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = "kilnwatch-collector"
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(30, ge=5)
    topic_root: str = DEFAULT_ROOT
    #: Scale-out: collectors with the same group share the load through ``$share/<group>/...``.
    shared_group: str | None = None


class CollectorConfig(_Strict):
    collector: CollectorSection
    mqtt: MqttSection = MqttSection()
    #: No [influx] section = no time-series store: KPIs stay in the ledger (the embedded default).
    influx: InfluxConfig | None = None


def load_config(path: Path) -> CollectorConfig:
    path = Path(path)
    cfg = load_toml_model(path, CollectorConfig)
    base = path.parent
    section = cfg.collector.model_copy(
        update={"site_model": base / cfg.collector.site_model, "ledger": base / cfg.collector.ledger}
    )
    if not section.site_model.exists():
        raise ConfigError(
            f"{path}: key 'collector.site_model': {section.site_model} does not exist"
            " — point it at the site model"
        )
    return cfg.model_copy(update={"collector": section})
