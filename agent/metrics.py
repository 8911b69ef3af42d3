"""The agent's own metrics, rendered in Prometheus' text exposition format (version 0.0.4).

A gateway agent needs a dozen counters, not a metrics framework: this module is the whole registry
(counters, gauges, histograms with labels, and collectors evaluated at scrape time), so the ``agent`` extra
gains no dependency. Everything is process-wide and thread-safe: pollers run in the event loop, the publisher
in its own threads, and the health server renders from the loop.

The functions at the bottom are the API for sources. A poller calls ``observe_poll`` once per device cycle
with the time the cycle's requests took; the runner counts readings itself (``observe_cycle``) from what
pollers hand to their sink, so a poller that never calls ``observe_poll`` still has readings, failed cycles
and a last-cycle time.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from agent.wire import Quality

if TYPE_CHECKING:
    from agent.sources.reading import Reading

#: Poll round trips: loopback Modbus takes ~1 ms, real meters 5-50 ms, timeouts end at 1-4 s.
POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Sample:
    """One family's value at scrape time, for collectors: ``labels`` maps label names to values."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


class _Family:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], lock: threading.Lock) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self._lock = lock
        self._values: dict[tuple[str, ...], float] = {}

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def get(self, **labels: str) -> float:
        """The current value (0 if never set): for health checks and tests."""
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in items]


class Counter(_Family):
    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount


class Gauge(_Family):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = value


class Histogram(_Family):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str],
        lock: threading.Lock,
        buckets: Sequence[float],
    ) -> None:
        super().__init__(name, help_text, labelnames, lock)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            series = self._series.setdefault(key, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
            series[-2] += value
            series[-1] += 1

    def count(self, **labels: str) -> float:
        with self._lock:
            return self._series.get(self._key(labels), [0.0])[-1]

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        out = []
        for key, series in items:
            for bound, n in zip((*self.buckets, math.inf), (*series[:-2], series[-1]), strict=True):
                le = {"le": "+Inf" if bound == math.inf else _number(bound)}
                out.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {_number(n)}")
            out.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(series[-2])}")
            out.append(f"{self.name}_count{_labels(self.labelnames, key)} {_number(series[-1])}")
        return out


F = TypeVar("F", bound=_Family)


class Registry:
    """Named metric families plus collectors (callables returning ``Sample``s, evaluated per scrape)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}
        self._collectors: list[Callable[[], Iterable[Sample]]] = []

    def counter(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help_text, labelnames, self._lock))

    def gauge(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Gauge:
        return self._add(Gauge(name, help_text, labelnames, self._lock))

    def histogram(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = POLL_BUCKETS,
    ) -> Histogram:
        return self._add(Histogram(name, help_text, labelnames, self._lock, buckets))

    def add_collector(self, collector: Callable[[], Iterable[Sample]]) -> None:
        self._collectors.append(collector)

    def remove_collector(self, collector: Callable[[], Iterable[Sample]]) -> None:
        self._collectors.remove(collector)

    def render(self) -> str:
        """The text exposition of every family and collector, one HELP/TYPE block per metric name."""
        blocks: list[str] = []
        for family in self._families.values():
            blocks += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
            blocks += family.lines()
        grouped: dict[str, list[Sample]] = {}
        for collector in list(self._collectors):
            for sample in collector():
                grouped.setdefault(sample.name, []).append(sample)
        for name, samples in grouped.items():
            blocks += [f"# HELP {name} {samples[0].help}", f"# TYPE {name} {samples[0].kind}"]
            blocks += [f"{name}{_labels(tuple(s.labels), tuple(s.labels.values()))} {_number(s.value)}"
                       for s in samples]  # fmt: skip
        return "\n".join(blocks) + "\n"

    def _add(self, family: F) -> F:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family
        return family


def _labels(names: Sequence[str], values: Sequence[str], extra: dict[str, str] | None = None) -> str:
    pairs = list(zip(names, values, strict=True)) + list((extra or {}).items())
    if not pairs:
        return ""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in pairs)
    return "{" + ",".join(f'{n}="{v}"' for (n, _), v in zip(pairs, escaped, strict=True)) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def resident_memory_bytes() -> int | None:
    """The process's resident set size from /proc (Linux, where gateways run); None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


REGISTRY = Registry()

POLL_DURATION = REGISTRY.histogram(
    "kilnwatch_poll_duration_seconds",
    "Round trip of one device cycle (all its requests), by result (ok, error).",
    ("device", "result"),
)
READINGS = REGISTRY.counter(
    "kilnwatch_readings_total",
    "Readings handed over by pollers, by device and quality.",
    ("device", "quality"),
)
FAILED_CYCLES = REGISTRY.counter(
    "kilnwatch_poll_failed_cycles_total",
    "Device cycles that gave no value at all (device not answering, connection lost).",
    ("device",),
)
LAST_CYCLE = REGISTRY.gauge(
    "kilnwatch_poll_last_cycle_timestamp_seconds",
    "Unix time of the device's last cycle, answered or not (a stale value means a stuck poller).",
    ("device",),
)
POINTS_REFUSED = REGISTRY.gauge(
    "kilnwatch_points_refused",
    "Points the device refuses (e.g. Modbus exception 2, illegal data address): BAD every cycle, retried "
    "rarely; /healthz names them.",
    ("device",),
)
PUBLISHED = REGISTRY.counter(
    "kilnwatch_mqtt_published_total", "Data batches handed to the MQTT client (re-sends included)."
)
ACKED = REGISTRY.counter(
    "kilnwatch_mqtt_acked_total", "Data batches acknowledged by the broker and removed from the outbox."
)
REFUSED = REGISTRY.counter(
    "kilnwatch_mqtt_refused_total",
    "Data batches the broker refused in its PUBACK (MQTT 5 only), by reason; they stay in the outbox.",
    ("reason",),
)
LAST_ACK = REGISTRY.gauge(
    "kilnwatch_mqtt_last_ack_timestamp_seconds", "Unix time of the last acknowledged data batch."
)
CONNECTED = REGISTRY.gauge("kilnwatch_mqtt_connected", "1 while connected to the broker, else 0.")
CONNECTS = REGISTRY.counter("kilnwatch_mqtt_connects_total", "Successful connections to the broker.")
RELOADS = REGISTRY.counter(
    "kilnwatch_config_reloads_total", "SIGHUP reloads, by result (ok, error).", ("result",)
)


def observe_poll(device: str, seconds: float, ok: bool) -> None:
    """For pollers: one device cycle took ``seconds`` (first request sent → last answer), ``ok`` or not.

    Cheap (a lock and a few additions) and safe from any thread; never raises for a known device name.
    """
    POLL_DURATION.observe(seconds, device=device, result="ok" if ok else "error")


def observe_cycle(device: str, readings: Sequence[Reading]) -> None:
    """For the runner's sink: count one cycle's readings; a cycle with no value at all counts as failed."""
    by_quality: dict[str, int] = {}
    for reading in readings:
        quality = Quality(reading.quality).name.lower()
        by_quality[quality] = by_quality.get(quality, 0) + 1
    for quality, n in by_quality.items():
        READINGS.inc(n, device=device, quality=quality)
    if readings and all(r.value is None for r in readings):
        FAILED_CYCLES.inc(device=device)
    LAST_CYCLE.set(time.time(), device=device)
