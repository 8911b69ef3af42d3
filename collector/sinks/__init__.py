"""Sinks: InfluxDB (API v1 or v2) fed from a durable queue by a background dispatcher.

Build lines with ``line_protocol``, append them to a ``SinkQueue`` (``SqliteSinkQueue`` or the ledger),
and let a ``SinkDispatcher`` deliver them through the writer ``make_writer`` picks for the config.
See docs/sinks.md.
"""

from __future__ import annotations

from collector.sinks.config import InfluxConfig
from collector.sinks.errors import SinkError
from collector.sinks.influx_v1 import InfluxV1Writer
from collector.sinks.influx_v2 import InfluxV2Writer
from collector.sinks.writer import Writer

__all__ = ["InfluxConfig", "InfluxV1Writer", "InfluxV2Writer", "SinkError", "Writer", "make_writer"]


def make_writer(config: InfluxConfig) -> Writer:
    """The writer for ``config.api``: stdlib HTTP for 1.x servers, influxdb-client for API v2."""
    if config.api == "v1":
        return InfluxV1Writer(config)
    return InfluxV2Writer(config)
