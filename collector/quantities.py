"""Readings of one channel → quantities per base interval, through the kpi kernels.

This is the one place where a channel's kind picks a kernel (totaliser deltas, rate integration or a
time-weighted mean) and its unit is brought to the canonical one (kWh, t, m3). The live collector and
``kilnwatch kpi compute`` both call it, so they cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent.wire import ChannelKind, Quality
from collector.site import Channel
from kpi import kernels
from kpi.periods import bucket_edges

#: Seconds per unit of a rate's time base: kW → kWh and t/h → t both integrate over hours.
RATE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Increments:
    """Quantity and covered seconds per base bucket; ``start_s`` is the first bucket's start."""

    start_s: float
    step_s: float
    qty: np.ndarray
    cov: np.ndarray
    rollovers: int = 0
    resets: int = 0
    rejected: int = 0

    def rows(self, channel: str) -> list[tuple[str, int, float, float]]:
        """Ledger rows ``(channel, bucket_ms, qty, cov_s)`` for buckets that received anything."""
        nz = np.flatnonzero((self.qty != 0) | (self.cov != 0))
        step_ms = int(self.step_s * 1000)
        base = int(self.start_s * 1000)
        return [(channel, base + int(i) * step_ms, float(self.qty[i]), float(self.cov[i])) for i in nz]


def channel_increments(
    ch: Channel,
    t_s: np.ndarray,
    values: np.ndarray,
    good: np.ndarray,
    step_s: float,
    start_s: float | None = None,
) -> Increments:
    """Run the kernel for ``ch`` over readings sorted by time.

    ``start_s`` (a bucket edge) cuts off everything before it: used when recomputing from a bucket onward,
    so the part of the first pair that lies in earlier buckets is not counted twice.
    """
    first = t_s[0] if start_s is None else start_s
    lo = math.floor(first / step_s) * step_s
    hi = max(math.ceil(t_s[-1] / step_s) * step_s, lo + step_s)
    edges = bucket_edges(lo, hi, step_s)
    qty = np.zeros(len(edges) - 1)
    cov = np.zeros(len(edges) - 1)
    counts = (0, 0, 0)
    if len(t_s) >= 2:
        if ch.kind in ChannelKind.TOTALISERS:
            max_rate_per_s = ch.max_rate_per_h / 3600.0
            counts = tuple(
                int(c)
                for c in kernels.totaliser_increments(
                    t_s, values, good, edges, float(ch.rollover), max_rate_per_s, qty, cov
                )
            )
        elif ch.kind in ChannelKind.RATES:
            kernels.rate_integral(t_s, values, good, edges, float(ch.gap_limit_s), RATE_SECONDS, qty, cov)
        else:
            kernels.analog_time_weighted(t_s, values, good, edges, float(ch.gap_limit_s), qty, cov)
    if ch.kind != ChannelKind.ANALOG:
        qty *= ch.factor
    return Increments(lo, step_s, qty, cov, *counts)


def as_arrays(
    t_ms: list[int], values: list[float | None], quality: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wire columns → kernel inputs: seconds, values (NaN where missing) and a good mask."""
    t = np.asarray(t_ms, dtype=np.float64) / 1000.0
    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
    good = ((np.asarray(quality) == Quality.GOOD) & np.isfinite(v)).astype(np.uint8)
    return t, v, good
