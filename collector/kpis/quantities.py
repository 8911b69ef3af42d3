"""Readings of one channel → quantities per base interval, through the kpi kernels.

This is the one place where a channel's kind picks a kernel (totaliser deltas, rate integration or a
time-weighted mean) and its unit is brought to the canonical one (kWh, t, m3). The live collector and
``kilnwatch kpi compute`` both call it, so they cannot disagree. Counter events (rollovers, resets and
replaced meters, flagged jumps, recorded meter exchanges) come out beside the quantities, with the
quantity each stands for, so every KPI document can list them and a flagged jump can be counted in later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent.wire import ChannelKind, Quality
from collector.site import Channel, MeterExchange
from kpi import kernels
from kpi.periods import bucket_edges

#: Seconds per unit of a rate's time base: kW → kWh and t/h → t both integrate over hours.
RATE_SECONDS = 3600.0

#: Event kinds as they appear in KPI documents and the ledger.
EVENT_NAMES = {kernels.ROLLOVERS: "rollover", kernels.RESETS: "reset", kernels.REJECTED: "implausible"}
EXCHANGE = "exchange"


@dataclass(frozen=True, slots=True)
class CounterEvent:
    """One counter event: the pair of readings ``(t0, v0) → (t1, v1)`` (readings' units) and the quantity it
    stands for in the channel's canonical unit. ``counted``: whether that quantity is in the increments
    (always for rollovers, resets and exchanges; for an implausible jump only by the channel's setting,
    which the KPI layer applies)."""

    channel: str
    kind: str
    t0_s: float
    t1_s: float
    v0: float
    v1: float
    qty: float

    def counted(self, ch: Channel) -> bool:
        return self.kind != "implausible" or ch.implausible == "include"


@dataclass(frozen=True, slots=True)
class Increments:
    """Quantity and covered seconds per base bucket; ``start_s`` is the first bucket's start."""

    start_s: float
    step_s: float
    qty: np.ndarray
    cov: np.ndarray
    events: tuple[CounterEvent, ...] = ()

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind)

    def rows(self, channel: str) -> list[tuple[str, int, float, float]]:
        """Ledger rows ``(channel, bucket_ms, qty, cov_s)`` for buckets that received anything."""
        nz = np.flatnonzero((self.qty != 0) | (self.cov != 0))
        step_ms = int(self.step_s * 1000)
        base = int(self.start_s * 1000)
        return [(channel, base + int(i) * step_ms, float(self.qty[i]), float(self.cov[i])) for i in nz]


def channel_increments(
    name: str,
    ch: Channel,
    t_s: np.ndarray,
    values: np.ndarray,
    good: np.ndarray,
    step_s: float,
    start_s: float | None = None,
    exchanges: list[MeterExchange] | tuple[MeterExchange, ...] = (),
) -> Increments:
    """Run the kernel for channel ``name`` over readings sorted by time.

    ``start_s`` (a bucket edge) cuts off everything before it: used when recomputing from a bucket onward,
    so the part of the first pair that lies in earlier buckets is not counted twice. ``exchanges`` are the
    channel's recorded meter exchanges (site model), applied where readings lie on both sides of one.
    """
    first = t_s[0] if start_s is None else start_s
    lo = math.floor(first / step_s) * step_s
    hi = max(math.ceil(t_s[-1] / step_s) * step_s, lo + step_s)
    edges = bucket_edges(lo, hi, step_s)
    qty = np.zeros(len(edges) - 1)
    cov = np.zeros(len(edges) - 1)
    events: list[CounterEvent] = []
    if len(t_s) >= 2 or (exchanges and len(t_s)):
        if ch.kind in ChannelKind.TOTALISERS:
            for seg in _segments(ch, t_s, values, good, exchanges):
                if seg.bridge is not None:
                    events.append(seg.bridge.event(name, ch))
                events.extend(kernel_events(name, ch, _totalise(ch, seg, edges, qty, cov), seg.ratio))
        elif ch.kind in ChannelKind.RATES:
            kernels.rate_integral(t_s, values, good, edges, float(ch.gap_limit_s), RATE_SECONDS, qty, cov)
        else:
            kernels.analog_time_weighted(t_s, values, good, edges, float(ch.gap_limit_s), qty, cov)
    if ch.kind != ChannelKind.ANALOG:
        qty *= ch.factor
    if start_s is not None:
        events = [e for e in events if e.t1_s >= start_s]
    return Increments(lo, step_s, qty, cov, tuple(events))


@dataclass(frozen=True, slots=True)
class _Bridge:
    """The real readings on either side of a recorded exchange: the old meter's last, the new one's first."""

    exchange: MeterExchange
    old_v: float
    old_ratio: float
    new_v: float
    new_ratio: float

    def event(self, name: str, ch: Channel) -> CounterEvent:
        ex = self.exchange
        qty = (ex.old_final - self.old_v) * self.old_ratio + (self.new_v - ex.new_initial) * self.new_ratio
        at = ex.at.timestamp()
        return CounterEvent(name, EXCHANGE, at, at, ex.old_final, ex.new_initial, qty * ch.factor)


@dataclass(frozen=True, slots=True)
class _Segment:
    """The readings of one physical meter, scaled to the channel's reading units, with the synthetic end
    points an exchange record gives (the old meter's final and the new meter's initial reading)."""

    t: np.ndarray
    v: np.ndarray
    good: np.ndarray
    ratio: float
    rollover: float
    #: The exchange this segment starts with, when its bridging pairs are counted in this window.
    bridge: _Bridge | None = None


def _segments(
    ch: Channel,
    t_s: np.ndarray,
    values: np.ndarray,
    good: np.ndarray,
    exchanges: list[MeterExchange] | tuple[MeterExchange, ...],
) -> list[_Segment]:
    """Split a counter's readings at its recorded exchanges; one segment per meter from the first that has
    usable readings here to the last.

    The pairs across an exchange (last old reading → the old meter's final; the new meter's initial → first
    new reading) are counted in the window whose readings lie on both sides of it: exactly once live (the
    ledger carries the last good reading into the next window) and offline.
    """
    if not exchanges:
        return [_Segment(t_s, values, good, 1.0, float(ch.rollover))]
    at = np.array([ex.at.timestamp() for ex in exchanges])
    cut = np.searchsorted(t_s, at, side="left")  # a reading at the exchange time is the new meter's
    bounds = [0, *cut.tolist(), len(t_s)]
    ratios = [1.0] + [ex.new_ratio for ex in exchanges]
    moduli = [float(ch.rollover)] + [
        float(ch.rollover if ex.new_rollover is None else ex.new_rollover) for ex in exchanges
    ]
    usable = (good != 0) & np.isfinite(values) & np.isfinite(t_s)
    filled = [j for j in range(len(bounds) - 1) if usable[bounds[j] : bounds[j + 1]].any()]
    if not filled:
        return []
    out = []
    last_old: tuple[float, float] | None = None  # (value, ratio) of the previous meter's last reading
    for j in range(filled[0], filled[-1] + 1):
        a, b = bounds[j], bounds[j + 1]
        t, v, g = t_s[a:b], values[a:b], good[a:b]
        ok = np.flatnonzero(usable[a:b])
        if j > filled[0]:  # the new meter counted from its initial reading at the exchange
            ex = exchanges[j - 1]
            t, v, g = np.r_[ex.at.timestamp(), t], np.r_[ex.new_initial, v], np.r_[np.uint8(1), g]
        if j < filled[-1]:  # the old meter counted up to its final reading at the exchange
            ex = exchanges[j]
            t, v, g = np.r_[t, ex.at.timestamp()], np.r_[v, ex.old_final], np.r_[g, np.uint8(1)]
        bridge = None
        if j > filled[0] and last_old is not None and ok.size:
            first_new = float(values[a + ok[0]])
            bridge = _Bridge(exchanges[j - 1], last_old[0], last_old[1], first_new, ratios[j])
        out.append(_Segment(t, v * ratios[j], g.astype(np.uint8), ratios[j], moduli[j] * ratios[j], bridge))
        if ok.size:
            last_old = (float(values[a + ok[-1]]), ratios[j])
    return out


def _totalise(ch: Channel, seg: _Segment, edges: np.ndarray, qty: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """One meter's deltas into ``qty``/``cov`` (readings' units); the kernel's event rows."""
    if len(seg.t) < 2:
        return np.empty((0, kernels.EVENT_COLUMNS))
    _, rows = kernels.totaliser_increments(
        seg.t, seg.v, seg.good, edges, seg.rollover, ch.max_rate_per_h / 3600.0,
        float(ch.plausibility_window_s), float(ch.gap_limit_s), qty, cov,
    )  # fmt: skip
    return rows


def kernel_events(name: str, ch: Channel, rows: np.ndarray, ratio: float = 1.0) -> list[CounterEvent]:
    """Kernel event rows → events; values back in the meter's own units, quantities in canonical units."""
    k = kernels
    out = []
    for r in rows:
        kind = EVENT_NAMES[int(r[k.EVENT_KIND])]
        t0, t1, qty = float(r[k.EVENT_T0]), float(r[k.EVENT_T1]), float(r[k.EVENT_QTY]) * ch.factor
        v0, v1 = float(r[k.EVENT_V0]) / ratio, float(r[k.EVENT_V1]) / ratio
        out.append(CounterEvent(name, kind, t0, t1, v0, v1, qty))
    return out


def as_arrays(
    t_ms: list[int], values: list[float | None], quality: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wire columns → kernel inputs: seconds, values (NaN where missing) and a good mask."""
    t = np.asarray(t_ms, dtype=np.float64) / 1000.0
    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
    good = ((np.asarray(quality) == Quality.GOOD) & np.isfinite(v)).astype(np.uint8)
    return t, v, good
