"""The running collector: MQTT ingest → ledger → KPIs per site, line and period → sinks, for every site.

KPIs are recomputed from the ledger's increments for every period that received data, on a timer rather
than per message: a 1 s poll cycle would otherwise recompute the same hour thousands of times. Because they
are recomputed from the ledger, a restarted or second collector produces the same documents. A period that
late data changed (an outbox replayed after an outage) is restated: its new KPIs go to the sinks again and
the ledger records when, which period, and the old and new values.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import structlog

from agent.config_load import ConfigError
from agent.wire import Batch
from collector.config import CollectorConfig
from collector.ingest.apply import GroupResult, apply_exchanges
from collector.ingest.deadletters import DeadLetters, Reject
from collector.ingest.handle import Ingest, Message
from collector.ingest.mqtt import MqttIngest
from collector.kpis.document import RESTATED_FIELDS
from collector.kpis.line_kpis import BaseTable, MissingLabValue, period_kpis
from collector.ledger.sql import UNAVAILABLE, Ledger
from collector.ops.http import OpsServer
from collector.ops.stats import SINK_OLDEST_AGE, CollectorStats
from collector.sinks.pipeline import SinkPipeline
from collector.site import Site
from collector.sites import Sites, load_sites
from kpi.periods import period_edges

log = structlog.get_logger("collector")

#: Seconds between pruning raw readings older than the retention setting.
PRUNE_EVERY_S = 3600.0


class Collector:
    def __init__(self, cfg: CollectorConfig, sites: Sites | Site, *, connect: bool = True) -> None:
        self.cfg = cfg
        self.sites = sites = sites if isinstance(sites, Sites) else Sites.single(sites)
        section = cfg.collector
        self.ledger = Ledger.open(section.ledger_url or section.ledger)
        self.deadletters = DeadLetters.for_config(cfg)
        self.sinks = SinkPipeline(cfg.influx, Path(f"{section.ledger}.sink-queue")) if cfg.influx else None
        self.stats = CollectorStats()
        self._register_gauges()
        self.ops = OpsServer(section.http, self.stats) if section.http and connect else None
        self.ingest = Ingest(
            sites,
            self.ledger,
            self.deadletters,
            max_future_s=section.max_future_s,
            max_payload_bytes=section.max_payload_bytes,
            on_accepted=self._queue_raw,
            on_applied=self._mark_dirty,
            stats=self.stats,
        )
        self.mqtt = MqttIngest(cfg, self.ingest) if connect else None
        self._dirty: dict[tuple[str, str, float], float] = {}
        self._restated: set[tuple[str, str, float]] = set()
        self._lock = threading.Lock()
        self._pruned_at = 0.0
        self.latest: list[dict] = []
        self.ingest.recheck_births()
        self._apply_exchanges()

    def _register_gauges(self) -> None:
        self.stats.gauge("sites_loaded", lambda: len(self.sites))
        self.stats.gauge("deadletters", lambda: self.deadletters.stats().count)
        self.stats.gauge("deadletter_bytes", lambda: self.deadletters.stats().bytes)
        if self.sinks is not None:
            dispatcher = self.sinks.dispatcher
            self.stats.gauge("sink_backlog_lines", lambda: dispatcher.stats().queue_depth)
            self.stats.gauge(SINK_OLDEST_AGE, self.sinks.oldest_age_s)

    def _watch_agents(self) -> None:
        for site_id in self.sites:
            self.stats.watch_agents(site_id, self.sites.agents(site_id))

    def _apply_exchanges(self) -> None:
        exchanged = apply_exchanges(self.ledger, self.ingest.metas, self.sites)
        if exchanged.touched:
            log.info("collector.meter_exchanges_applied", exchanges=exchanged.exchanges)
            self._mark_dirty(exchanged)

    # -- site models ---------------------------------------------------------------------------------------
    def reload(self) -> bool:
        """SIGHUP: load the site models again; a bad file is refused and the old models kept."""
        try:
            sites = load_sites(self.cfg.collector.site_model)
        except ConfigError as exc:
            log.error("sites.reload_refused", problems=exc.problems, kept=sorted(self.sites))
            self.stats.reload_result(False, str(exc))
            return False
        added, dropped = sorted(sites.keys() - self.sites.keys()), sorted(self.sites.keys() - sites.keys())
        self.sites = sites
        self.ingest.use_sites(sites)
        self._apply_exchanges()
        if self.mqtt is not None:
            self.mqtt.resubscribe()
        self._watch_agents()
        self.stats.reload_result(True)
        log.info("sites.reloaded", sites=len(sites), added=added, dropped=dropped)
        return True

    # -- hooks from ingest ---------------------------------------------------------------------------------
    def _queue_raw(self, batches: list[tuple[str, Batch]]) -> None:
        if self.sinks is not None:
            self.sinks.put_batches([b for _, b in batches])

    def _mark_dirty(self, result: GroupResult) -> None:
        with self._lock:
            for (site_id, _line), (lo_ms, hi_ms) in result.touched.items():
                site = self.sites.get(site_id)
                if site is None:
                    continue
                info = site.site
                late = result.restated.get((site_id, _line))
                for period in self.cfg.collector.periods:
                    edges = period_edges(
                        lo_ms / 1000.0,
                        hi_ms / 1000.0 + 0.001,
                        period,
                        info.timezone,
                        tuple(info.shift_starts),
                    )
                    for start, end in itertools.pairwise(edges):
                        key = (site_id, period, float(start))
                        self._dirty[key] = float(end)
                        if late is not None and late[0] < end * 1000 and late[1] >= start * 1000:
                            self._restated.add(key)

    # -- KPIs ----------------------------------------------------------------------------------------------
    def compute_kpis(self, now_s: float | None = None) -> list[dict]:
        """Recompute every period that received data since the last call; returns the new documents."""
        now_s = time.time() if now_s is None else now_s
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            restated, self._restated = self._restated, set()
        try:
            return self._compute(dirty, restated, now_s)
        except UNAVAILABLE:
            with self._lock:  # not lost: computed again in the next round
                for key, end in dirty.items():
                    self._dirty.setdefault(key, end)
                self._restated |= restated
            raise

    def _compute(
        self, dirty: dict[tuple[str, str, float], float], restated: set[tuple[str, str, float]], now_s: float
    ) -> list[dict]:
        docs: list[dict] = []
        for (site_id, period, start), end in sorted(dirty.items(), key=lambda kv: kv[0][2]):
            site = self.sites.get(site_id)
            if site is None:
                continue
            start_ms, end_ms = int(start * 1000), int(end * 1000)
            rows = self.ledger.increments(start_ms, end_ms, site_id)
            events = self.ledger.events(start_ms, end_ms, site_id)
            windows = {
                c: (lo / 1000.0, hi / 1000.0) for c, (lo, hi) in self.ledger.good_windows(site_id).items()
            }
            step = float(site.site.base_interval_s)
            table = BaseTable.from_rows(rows, start, end, step, windows, events)
            expected = np.array([max(min(end, now_s) - start, 1.0)])
            try:
                period_docs = period_kpis(site, table, period, np.array([start, end]), expected)
            except MissingLabValue as exc:
                log.error("kpi.missing_lab_value", site=site_id, period=period, detail=str(exc))
                continue
            for doc in period_docs:
                old = self.ledger.put_kpi(doc)
                if (site_id, period, start) in restated and old is not None:
                    self._record_restatement(old, doc)
                if self.sinks is not None:
                    self.sinks.put_kpi(doc)
            docs.extend(period_docs)
        if docs:
            self.latest = docs
        return docs

    def _record_restatement(self, old: dict, new: dict) -> None:
        before = {k: old.get(k) for k in RESTATED_FIELDS}
        after = {k: new.get(k) for k in RESTATED_FIELDS}
        if before == after:
            return
        self.ledger.put_restatement(new["site"], new["line"], new["period"], new["start_ms"], before, after)
        self.ingest.counters["restatements"] += 1
        self.stats.count("restatements", site=new["site"])
        log.info(
            "kpi.restated", site=new["site"], line=new["line"], period=new["period"],
            start_ms=new["start_ms"],
            changed={k: [before[k], after[k]] for k in RESTATED_FIELDS if before[k] != after[k]},
        )  # fmt: skip

    # -- upkeep --------------------------------------------------------------------------------------------
    def prune(self, now_s: float | None = None) -> int:
        """Drop raw readings older than ``raw_retention_days`` (0 keeps them forever)."""
        days = self.cfg.collector.raw_retention_days
        if not days:
            return 0
        now_s = time.time() if now_s is None else now_s
        n = self.ledger.prune_readings(int((now_s - days * 86400) * 1000))
        if n:
            log.info("ledger.readings_pruned", readings=n, older_than_days=days)
        return n

    def replay(self, topic: str, payload: bytes) -> str:
        """Run one stored message through ingest (a dead letter whose cause was fixed): "applied",
        "duplicate" or "rejected:<reason>" (a reject is not dead-lettered again)."""
        outcome: list[str] = []
        saved = self.ingest.deadletters
        self.ingest.deadletters = _Outcome(outcome)  # type: ignore[assignment]
        try:
            result = self.ingest.handle_group([Message(topic, payload)])
        finally:
            self.ingest.deadletters = saved
        if outcome:
            return f"rejected:{outcome[0]}"
        return "duplicate" if result.duplicates else "applied"

    # -- life cycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._watch_agents()
        if self.ops is not None:
            self.ops.start()
        if self.sinks is not None:
            self.sinks.start()
        if self.mqtt is not None:
            self.mqtt.start()
        log.info("collector.started", sites=sorted(self.sites), ledger=self._ledger_name())

    def _ledger_name(self) -> str:
        url = self.cfg.collector.ledger_url
        return url.split("@")[-1] if url else str(self.cfg.collector.ledger)

    def run(self, stop: threading.Event, reload: threading.Event | None = None) -> None:
        """Run until ``stop`` is set; KPIs every ``kpi_interval_s``; site models reloaded when ``reload``
        is set (SIGHUP)."""
        self.start()
        try:
            while not stop.wait(self.cfg.collector.kpi_interval_s):
                if reload is not None and reload.is_set():
                    reload.clear()
                    self.reload()
                try:
                    self.compute_kpis()
                    if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
                        self._pruned_at = time.monotonic()
                        self.prune()
                except UNAVAILABLE as exc:  # the periods stay dirty; the next round computes them
                    log.error("ledger.unavailable", during="kpis", error=str(exc))
        finally:
            self.close()

    def close(self) -> None:
        if self.mqtt is not None:
            self.mqtt.stop()
        self.compute_kpis()
        if self.sinks is not None:
            self.sinks.close()
        self.ledger.close()
        self.deadletters.close()
        if self.ops is not None:
            self.ops.close()
        log.info("collector.stopped", counters=dict(self.ingest.counters))


class _Outcome:
    """Stands in for the dead-letter store during a replay: records the reason instead of storing again."""

    def __init__(self, into: list[str]) -> None:
        self.into = into

    def add_many(self, rejects: list[Reject]) -> None:
        self.into.extend(r.reason for r in rejects)
