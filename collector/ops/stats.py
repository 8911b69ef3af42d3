"""What the collector's pipeline has done, kept for ``/metrics`` and ``/healthz``: one ``CollectorStats``.

The pipeline (MQTT thread, group-apply thread) writes, the HTTP thread reads. Writes happen once per group
or once per batch, never per reading: ``observe_group`` takes a whole group's figures, ``agent_batch`` one
batch's identity, ``count`` a number already summed by the caller. Each is a lock and a few dict or list
operations (a group with ten batches costs about 20 µs in all, measured in
``tests/collector/test_ops_http.py``), so stats never slow the apply path.

The registry, label escaping and number formatting are the agent's (``agent.metrics``), so both ends speak
the same exposition format. Levels the pipeline already holds (dead letters, the sink backlog, sites
loaded) are read through callbacks at scrape time (``gauge``); transitions whose time matters to health
(the broker connection, a reload) are told as events (``broker_connected``, ``reload_result``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog

from agent.metrics import Histogram, Registry, Sample, resident_memory_bytes

log = structlog.get_logger("collector.ops.stats")

PREFIX = "kilnwatch_collector_"

#: Messages per group: 1 when traffic is light, up to ``group_max_messages`` (≤ 100 000) while catching up.
GROUP_MESSAGE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 100_000)
#: One group's ledger transaction: ~1 ms for a small group, seconds for 10 000 messages on a slow disk.
APPLY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: ``count()`` names → (label names, help). Each becomes ``kilnwatch_collector_<name>_total``.
COUNTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "duplicates": (("site",), "Batches seen before (same agent, epoch and seq), skipped."),
    "rejects": (("reason",), "Messages rejected and kept as dead letters, by reason."),
    "births": (("site",), "Birth messages stored."),
    "birth_problems": (
        ("site", "agent", "point"),
        "Problems found in birth messages (a point the site model lacks, a differing unit), by point.",
    ),
    "restatements": (
        ("site",),
        "Channels whose stored increments were rebuilt because older readings arrived late.",
    ),
    "deadletters_evicted": ((), "Dead letters evicted (oldest first) to stay within the dead-letter caps."),
}

#: Gauges the pipeline registers with ``gauge()`` under these names; help is given here, and /healthz
#: judges the sink backlog by ``sink_oldest_line_age_seconds``.
GAUGES: dict[str, str] = {
    "deadletters": "Dead letters kept in the ledger.",
    "deadletter_bytes": "Payload bytes of the dead letters kept in the ledger.",
    "sink_backlog_lines": "Lines queued for the time-series sink, in memory and in the spill file.",
    "sink_oldest_line_age_seconds": "Age of the oldest line queued for the sink (absent when none is).",
    "sites_loaded": "Site models loaded (one per site file).",
}
SINK_OLDEST_AGE = "sink_oldest_line_age_seconds"

#: Help of the metrics computed at scrape time (the counters and histograms carry their own).
HELP: dict[str, str] = {
    "batches_applied_total": "Batches applied to the ledger, by site.",
    "ingest_readings_per_second": "Readings applied per second over the window's complete seconds.",
    "lag_seconds": "Age of the oldest message of the group being applied (between groups: the last "
    "group's at its commit; 0 when idle for 10 s).",
    "newest_reading_age_seconds": "Age of the newest reading applied, over all agents.",
    "agent_last_batch_timestamp_seconds": "Unix time the agent's last applied batch was received.",
    "agent_last_seq": "Sequence number of the agent's last applied batch.",
    "agent_last_reading_timestamp_seconds": "Unix time of the newest reading in the agent's last batch.",
    "broker_connected": "1 while connected to the broker, else 0.",
    "broker_last_change_timestamp_seconds": "Unix time the broker connection last changed state "
    "(start-up if it never did).",
    "last_reload_ok": "1 if the last reload loaded every site file, 0 if it was refused (old models kept).",
    "last_reload_timestamp_seconds": "Unix time of the last reload.",
    "problems": "Problems /healthz names (e.g. birth problems).",
    "start_timestamp_seconds": "Unix time the collector started.",
}

#: Seconds without a committed group after which the pipeline counts as idle, so no longer behind.
IDLE_S = 10.0

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

#: One-second slots of the ingest rate: the 60 s window needs 61 (60 complete seconds and the current one).
_SLOTS = 64


@dataclass(frozen=True, slots=True)
class AgentState:
    """One agent's last applied batch as health sees it; times in Unix s, None before its first batch."""

    site: str
    agent: str
    seq: int | None
    received_s: float | None
    reading_s: float | None
    #: seconds without a batch before /healthz calls the agent stale; None: the health limits' default
    stale_after_s: float | None
    #: since when the agent is expected (first batch or ``watch_agents``), for an agent never heard from
    watched_since: float


@dataclass(frozen=True, slots=True)
class Reload:
    ok: bool
    at_s: float
    error: str


@dataclass(frozen=True)
class Snapshot:
    """The collector as /healthz judges it (``collector.ops.health.assess``). Times are Unix seconds."""

    now: float
    started: float
    broker_connected: bool
    broker_since: float
    #: (when the group's apply began, when its oldest message was received) while a group is applied
    applying: tuple[float, float] | None
    #: (when the last group was committed, its lag then)
    last_group: tuple[float, float] | None
    newest_reading_s: float | None
    rate_10s: float
    rate_60s: float
    gauges: dict[str, float | None]
    reload: Reload | None
    problems: dict[str, str]
    agents: tuple[AgentState, ...] = field(default_factory=tuple)

    @property
    def lag_s(self) -> float | None:
        """Age of the oldest message of the group being applied; between groups the last group's at its
        commit, and 0 once no group has been committed for ``IDLE_S`` (nothing waited: caught up)."""
        if self.applying is not None:
            return max(0.0, self.now - self.applying[1])
        if self.last_group is None:
            return None
        committed, lag = self.last_group
        return lag if self.now - committed < IDLE_S else 0.0


class _Rate:
    """Readings per second over the last complete seconds, from one-second slots (no per-reading work)."""

    def __init__(self, started: float) -> None:
        self._started = int(started)
        self._seconds = [-1] * _SLOTS
        self._counts = [0] * _SLOTS

    def add(self, now: float, n: int) -> None:
        second = int(now)
        slot = second % _SLOTS
        if self._seconds[slot] != second:
            self._seconds[slot], self._counts[slot] = second, 0
        self._counts[slot] += n

    def per_second(self, now: float, window: int) -> float:
        """Mean over the ``window`` complete seconds before the current one (fewer just after start)."""
        second = int(now)
        total = sum(
            c for s, c in zip(self._seconds, self._counts, strict=True) if second - window <= s < second
        )
        span = min(window, second - self._started)
        return total / span if span > 0 else 0.0


class CollectorStats:
    """Counters, histograms, per-agent state and gauge callbacks of one collector process; thread-safe.

    ``clock`` gives Unix seconds (``time.time``); tests pass their own to get exact ages and rates.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.registry = Registry()
        reg = self.registry
        self._messages = reg.counter(
            PREFIX + "messages_total", "MQTT data messages taken in groups (applied, duplicate or rejected)."
        )
        self._readings = reg.counter(PREFIX + "readings_applied_total", "Readings applied to the ledger.")
        self._group_messages: Histogram = reg.histogram(
            PREFIX + "group_messages",
            "Messages per group applied in one ledger transaction.",
            buckets=GROUP_MESSAGE_BUCKETS,
        )
        self._apply_seconds: Histogram = reg.histogram(
            PREFIX + "group_apply_seconds",
            "Time one group's ledger transaction took, commit included.",
            buckets=APPLY_BUCKETS,
        )
        self._counters = {
            name: reg.counter(f"{PREFIX}{name}_total", help_text, labels)
            for name, (labels, help_text) in COUNTERS.items()
        }
        self._reloads = reg.counter(
            PREFIX + "reloads_total", "SIGHUP reloads of the site models, by result.", ("result",)
        )
        own = (self._messages, self._readings, self._group_messages, self._apply_seconds, self._reloads)
        self._family_names = {f.name for f in (*own, *self._counters.values())}
        reg.add_collector(self._samples)
        self._rate = _Rate(self.started)
        self._applying: tuple[float, float] | None = None
        self._last_group: tuple[float, float] | None = None
        self._newest_ms: int | None = None
        self._agents: dict[tuple[str, str], tuple[int, float, int | None]] = {}
        self._batches: dict[str, int] = {}
        self._watched: dict[tuple[str, str], tuple[float | None, float]] = {}
        self._connected, self._connected_since = False, self.started
        self._reload: Reload | None = None
        self._problems: dict[str, str] = {}
        self._gauges: dict[str, tuple[Callable[[], float | None], str]] = {}

    # -- the pipeline's calls ------------------------------------------------------------------------------
    def count(self, name: str, n: int = 1, **labels: str) -> None:
        """Add ``n`` to counter ``name`` of ``COUNTERS`` (a wrong name or label set raises ValueError)."""
        counter = self._counters.get(name)
        if counter is None:
            raise ValueError(f"no counter {name!r}: use one of {', '.join(COUNTERS)}")
        counter.inc(n, **labels)

    def group_started(self, oldest_received_s: float) -> None:
        """A group's apply begins; its oldest message arrived at ``oldest_received_s`` (Unix s).

        Optional but worth it: while a group is applied the lag grows live, and an apply that never ends
        (a locked ledger) turns /healthz ``down`` instead of going unnoticed.
        """
        now = self._clock()
        with self._lock:
            self._applying = (now, oldest_received_s)

    def observe_group(self, messages: int, readings: int, apply_s: float, oldest_received_s: float) -> None:
        """A group was applied and committed: ``messages`` taken, ``readings`` applied, in ``apply_s`` s."""
        now = self._clock()
        self._messages.inc(messages)
        self._readings.inc(readings)
        self._group_messages.observe(messages)
        self._apply_seconds.observe(apply_s)
        with self._lock:
            self._rate.add(now, readings)
            self._applying = None
            self._last_group = (now, max(0.0, now - oldest_received_s))

    def agent_batch(
        self, site: str, agent: str, seq: int, reading_ms: int | None, received_s: float | None = None
    ) -> None:
        """A batch of ``site``/``agent`` was applied; ``reading_ms``: its newest reading (Unix ms), None if
        it had none; ``received_s``: when its message arrived (default: now)."""
        received = self._clock() if received_s is None else received_s
        with self._lock:
            self._agents[(site, agent)] = (seq, received, reading_ms)
            self._batches[site] = self._batches.get(site, 0) + 1
            if reading_ms is not None and (self._newest_ms is None or reading_ms > self._newest_ms):
                self._newest_ms = reading_ms

    def watch_agents(self, site: str, agents: Iterable[str], stale_after_s: float | None = None) -> None:
        """The agents the site model of ``site`` names (at load and every reload): each is stale after
        ``stale_after_s`` without a batch (None: the health limits' default), counted from now if it never
        sent one. Agents of ``site`` no longer named are forgotten."""
        now = self._clock()
        wanted = set(agents)
        with self._lock:
            for key in [k for k in (*self._watched, *self._agents) if k[0] == site and k[1] not in wanted]:
                self._watched.pop(key, None)
                self._agents.pop(key, None)
            for agent in wanted:
                since = self._watched.get((site, agent), (None, now))[1]
                self._watched[(site, agent)] = (stale_after_s, since)

    def broker_connected(self, connected: bool) -> None:
        """From the MQTT client's connect (after subscribing) and disconnect callbacks."""
        now = self._clock()
        with self._lock:
            if connected != self._connected:
                self._connected, self._connected_since = connected, now

    def reload_result(self, ok: bool, error: str = "") -> None:
        """A SIGHUP reload of the site models ended: ``ok``, or refused with ``error`` (old models kept)."""
        self._reloads.inc(result="ok" if ok else "error")
        with self._lock:
            self._reload = Reload(ok, self._clock(), "" if ok else error)

    def problem(self, key: str, text: str) -> None:
        """Name a lasting problem (e.g. a birth that lists a point the site model lacks): /healthz is
        ``degraded`` and shows ``text`` until ``clear_problem(key)``."""
        with self._lock:
            self._problems[key] = text

    def clear_problem(self, key: str) -> None:
        with self._lock:
            self._problems.pop(key, None)

    def gauge(self, name: str, fn: Callable[[], float | None], help_text: str | None = None) -> None:
        """Export ``kilnwatch_collector_<name>`` read from ``fn()`` at every scrape and health check.

        ``fn`` runs on the HTTP thread: make it cheap and thread-safe (return a figure the pipeline keeps,
        not a query on the pipeline's own SQLite connection); None leaves the gauge out. Names in
        ``GAUGES`` have their help text there; others must give one.
        """
        if not _NAME.match(name):
            raise ValueError(f"gauge name {name!r}: use lower-case letters, digits and _")
        if name in HELP or PREFIX + name in self._family_names:
            raise ValueError(f"gauge name {name!r} is one of the collector's own metrics: pick another")
        text = help_text or GAUGES.get(name)
        if not text:
            raise ValueError(f"gauge {name!r} needs a help text (known names: {', '.join(GAUGES)})")
        with self._lock:
            self._gauges[name] = (fn, " ".join(text.replace("\\", "\\\\").split()))

    # -- the HTTP thread's reads ---------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Everything /healthz judges, copied under the lock; gauge callbacks run before, outside it."""
        with self._lock:
            callbacks = dict(self._gauges)
        gauges = {name: _read(name, fn) for name, (fn, _) in callbacks.items()}
        now = self._clock()
        with self._lock:
            agents = []
            for key in sorted({*self._agents, *self._watched}):
                seq, received, reading_ms = self._agents.get(key, (None, None, None))
                limit, since = self._watched.get(key, (None, received or now))
                agents.append(AgentState(*key, seq, received, _seconds(reading_ms), limit, since))
            return Snapshot(
                now=now,
                started=self.started,
                broker_connected=self._connected,
                broker_since=self._connected_since,
                applying=self._applying,
                last_group=self._last_group,
                newest_reading_s=_seconds(self._newest_ms),
                rate_10s=self._rate.per_second(now, 10),
                rate_60s=self._rate.per_second(now, 60),
                gauges=gauges,
                reload=self._reload,
                problems=dict(self._problems),
                agents=tuple(agents),
            )

    def render(self) -> str:
        """The Prometheus text exposition (0.0.4) of every collector metric."""
        return self.registry.render()

    def _samples(self) -> list[Sample]:
        snap = self.snapshot()
        with self._lock:
            batches = dict(self._batches)
            gauge_help = {name: text for name, (_, text) in self._gauges.items()}
        out: list[Sample] = []

        def add(name: str, value: float, labels: dict[str, str] | None = None, help_text: str = "") -> None:
            kind = "counter" if name.endswith("_total") else "gauge"
            out.append(Sample(PREFIX + name, kind, help_text or HELP[name], value, labels or {}))

        for site, n in sorted(batches.items()):
            add("batches_applied_total", n, {"site": site})
        for window, rate in (("10s", snap.rate_10s), ("60s", snap.rate_60s)):
            add("ingest_readings_per_second", rate, {"window": window})
        if snap.lag_s is not None:
            add("lag_seconds", snap.lag_s)
        if snap.newest_reading_s is not None:
            add("newest_reading_age_seconds", snap.now - snap.newest_reading_s)
        for a in snap.agents:
            if a.seq is None or a.received_s is None:
                continue
            labels = {"site": a.site, "agent": a.agent}
            add("agent_last_batch_timestamp_seconds", a.received_s, labels)
            add("agent_last_seq", a.seq, labels)
            if a.reading_s is not None:
                add("agent_last_reading_timestamp_seconds", a.reading_s, labels)
        add("broker_connected", 1 if snap.broker_connected else 0)
        add("broker_last_change_timestamp_seconds", snap.broker_since)
        if snap.reload is not None:
            add("last_reload_ok", 1 if snap.reload.ok else 0)
            add("last_reload_timestamp_seconds", snap.reload.at_s)
        add("problems", len(snap.problems))
        for name, value in snap.gauges.items():
            if value is not None:
                add(name, value, help_text=gauge_help[name])
        add("start_timestamp_seconds", snap.started)
        rss = resident_memory_bytes()
        if rss is not None:
            out.append(
                Sample("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss)
            )
        return out


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0


def _read(name: str, fn: Callable[[], float | None]) -> float | None:
    """A gauge callback's value; one that fails is left out (and logged), never fails the scrape."""
    try:
        value = fn()
    except Exception as exc:
        log.warning("gauge callback failed", gauge=name, error=repr(exc))
        return None
    return None if value is None else float(value)
