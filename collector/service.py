"""The running collector: MQTT ingest → ledger → KPIs per line and period → sinks.

KPIs are recomputed from the ledger's increments for every period that received data, on a timer rather
than per message: a 1 s poll cycle would otherwise recompute the same hour thousands of times. Because they
are recomputed from the ledger, a restarted or second collector produces the same documents.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import structlog

from agent.wire import Batch
from collector.config import CollectorConfig
from collector.ingest.apply import ApplyResult, apply_exchanges
from collector.ingest.mqtt import Ingest, MqttIngest
from collector.kpis.line_kpis import BaseTable, MissingLabValue, period_kpis
from collector.ledger.sqlite import Ledger
from collector.sinks.pipeline import SinkPipeline
from collector.site import Site
from kpi.periods import period_edges

log = structlog.get_logger("collector")


class Collector:
    def __init__(self, cfg: CollectorConfig, site: Site) -> None:
        self.cfg = cfg
        self.site = site
        self.ledger = Ledger(cfg.collector.ledger)
        self.sinks = (
            SinkPipeline(cfg.influx, Path(f"{cfg.collector.ledger}.sink-queue")) if cfg.influx else None
        )
        self.ingest = Ingest(
            site,
            self.ledger,
            max_future_s=cfg.collector.max_future_s,
            max_payload_bytes=cfg.collector.max_payload_bytes,
            on_accepted=self._queue_raw,
            on_applied=self._mark_dirty,
        )
        self.mqtt = MqttIngest(cfg, self.ingest)
        self._dirty: dict[tuple[str, float], float] = {}
        self._lock = threading.Lock()
        self.latest: list[dict] = []
        exchanged = apply_exchanges(self.ledger, site)
        if exchanged.touched:
            log.info("collector.meter_exchanges_applied", exchanges=exchanged.exchanges)
            self._mark_dirty(None, exchanged)

    # -- hooks from ingest ---------------------------------------------------------------------------------
    def _queue_raw(self, batch: Batch) -> None:
        if self.sinks is not None:
            self.sinks.put_readings(batch)

    def _mark_dirty(self, _batch: Batch | None, result: ApplyResult) -> None:
        info = self.site.site
        with self._lock:
            for lo_ms, hi_ms in result.touched.values():
                for period in self.cfg.collector.periods:
                    edges = period_edges(
                        lo_ms / 1000.0,
                        hi_ms / 1000.0 + 0.001,
                        period,
                        info.timezone,
                        tuple(info.shift_starts),
                    )
                    for start, end in itertools.pairwise(edges):
                        self._dirty[(period, float(start))] = float(end)

    # -- KPIs ----------------------------------------------------------------------------------------------
    def compute_kpis(self, now_s: float | None = None) -> list[dict]:
        """Recompute every period that received data since the last call; returns the new documents."""
        now_s = time.time() if now_s is None else now_s
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        step = float(self.site.site.base_interval_s)
        docs: list[dict] = []
        for (period, start), end in sorted(dirty.items(), key=lambda kv: kv[0][1]):
            start_ms, end_ms = int(start * 1000), int(end * 1000)
            rows = self.ledger.increments(start_ms, end_ms)
            events = self.ledger.events(start_ms, end_ms)
            table = BaseTable.from_rows(rows, start, end, step, self._windows(), events)
            expected = np.array([max(min(end, now_s) - start, 1.0)])
            try:
                period_docs = period_kpis(self.site, table, period, np.array([start, end]), expected)
            except MissingLabValue as exc:
                log.error("kpi.missing_lab_value", period=period, detail=str(exc))
                continue
            for doc in period_docs:
                self.ledger.put_kpi(doc["line"], period, doc["start_ms"], doc["end_ms"], doc)
                if self.sinks is not None:
                    self.sinks.put_kpi(doc)
            docs.extend(period_docs)
        if docs:
            self.latest = docs
        return docs

    def _windows(self) -> dict[str, tuple[float, float]]:
        """Each channel's first and last good reading, in seconds (counters are complete inside them)."""
        return {c: (lo / 1000.0, hi / 1000.0) for c, (lo, hi) in self.ledger.good_windows().items()}

    # -- life cycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.sinks is not None:
            self.sinks.start()
        self.mqtt.start()
        log.info("collector.started", site=self.site.site.id, ledger=str(self.cfg.collector.ledger))

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; KPIs every ``kpi_interval_s``."""
        self.start()
        try:
            while not stop.wait(self.cfg.collector.kpi_interval_s):
                self.compute_kpis()
        finally:
            self.close()

    def close(self) -> None:
        self.mqtt.stop()
        self.compute_kpis()
        if self.sinks is not None:
            self.sinks.close()
        self.ledger.close()
        log.info("collector.stopped", counters=dict(self.ingest.counters))
