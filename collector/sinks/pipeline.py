"""What the collector sends to InfluxDB: raw readings and KPI documents, through a durable spill queue.

Lines are appended to a SQLite queue on the ingest path (cheap, local) and a dispatcher thread delivers
them with retries, so an InfluxDB outage never blocks ingest and never loses a point.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from agent.wire import Batch
from collector.kpis.document import FLOAT_FIELDS, INT_FIELDS
from collector.sinks import InfluxConfig, make_writer
from collector.sinks.dispatch import SinkDispatcher
from collector.sinks.errors import SinkError
from collector.sinks.influx_v1 import InfluxV1Writer
from collector.sinks.line_protocol import kpi_lines, readings_lines
from collector.sinks.sink_queue import SqliteSinkQueue

log = structlog.get_logger("collector.sinks")


def kpi_fields(doc: dict) -> dict[str, float | int | str | None]:
    """KPI document fields written to InfluxDB: numbers as floats (stable field types), grades as ints."""
    fields: dict[str, float | int | str | None] = {
        k: None if doc.get(k) is None else float(doc[k]) for k in FLOAT_FIELDS
    }
    fields.update({k: None if doc.get(k) is None else int(doc[k]) for k in INT_FIELDS})
    fields["band"] = doc.get("band")
    return fields


class SinkPipeline:
    def __init__(self, config: InfluxConfig, queue_path: Path) -> None:
        self.queue = SqliteSinkQueue(queue_path)
        self.writer = make_writer(config)
        self.dispatcher = SinkDispatcher(self.queue, self.writer, batch_lines=config.batch_lines)
        self._since: float | None = None

    def start(self) -> None:
        if isinstance(self.writer, InfluxV1Writer):
            try:
                self.writer.ensure_database()
            except SinkError as exc:  # the dispatcher keeps retrying the writes themselves
                log.warning("sink.ensure_database_failed", detail=exc.detail)
        self.dispatcher.start()

    def put_batches(self, batches: list[Batch]) -> None:
        """Raw readings of a group of batches: one queue append (one local commit) for the whole group."""
        lines: list[str] = []
        for b in batches:
            lines.extend(readings_lines(b.site, b.agent, b.channels, b.t_ms, b.values, b.quality))
        self.queue.append(lines)
        self._backlog_began()
        self.dispatcher.wake()

    def put_kpi(self, doc: dict) -> None:
        self.queue.append(
            [kpi_lines(doc["site"], doc["line"], doc["period"], doc["start_ms"], kpi_fields(doc))]
        )
        self._backlog_began()
        self.dispatcher.wake()

    def _backlog_began(self) -> None:
        if self._since is None:
            self._since = time.time()

    def oldest_age_s(self) -> float | None:
        """Seconds since the queue was last empty (an upper bound on its oldest line's age), None when it
        is empty: what /healthz judges a stuck sink by."""
        if self.queue.depth() == 0:
            self._since = None
            return None
        return None if self._since is None else time.time() - self._since

    def flush(self, timeout: float) -> bool:
        return self.dispatcher.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.dispatcher.flush(timeout)
        self.dispatcher.stop()
        self.writer.close()
        self.queue.close()
