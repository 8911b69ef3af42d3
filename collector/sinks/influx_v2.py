"""InfluxDB API v2 (``POST /api/v2/write``) through influxdb-client, for InfluxDB 2.x/3.x, 1.8+ and
compatible servers (VictoriaMetrics).

The client's default *batching* WriteApi logs and drops a failed batch unless callbacks account for it
(stack notes), so this writer uses SYNCHRONOUS mode only: every ``write`` either lands or raises.
The client's own retries stay off (``retries=False``): the dispatcher owns backoff and dead-lettering.
"""

from __future__ import annotations

import urllib3.exceptions
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from collector.sinks.config import InfluxConfig
from collector.sinks.errors import SinkError, describe_rejection


class InfluxV2Writer:
    """Writes line protocol to ``bucket`` in ``org`` with ms precision, ``batch_lines`` lines per request."""

    def __init__(self, config: InfluxConfig) -> None:
        if config.api != "v2":
            raise ValueError(f"InfluxV2Writer needs api = 'v2', got {config.api!r}")
        self._config = config
        self._client = InfluxDBClient(
            url=config.url,
            token=config.token.get_secret_value() if config.token else None,
            org=config.org,
            timeout=int(config.timeout_s * 1000),
            enable_gzip=config.gzip,
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        size = self._config.batch_lines
        for start in range(0, len(lines), size):
            self._write_batch(lines[start : start + size])

    def close(self) -> None:
        self._client.close()

    def _write_batch(self, batch: list[str]) -> None:
        try:
            self._write_api.write(
                bucket=self._config.bucket,
                org=self._config.org,
                record=batch,
                write_precision=WritePrecision.MS,
            )
        except ApiException as error:
            message = error.message
            if isinstance(message, bytes):
                message = message.decode("utf-8", "replace")
            raise describe_rejection(error.status or 0, str(message or error.reason), batch) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise SinkError(True, f"{self._config.url} unreachable: {error}") from error
