"""Throughput of the KPI kernels: ``python -m benchmarks.kpi_kernels [--quick] [--repeats N]``.

Not a test (no timed assertions). For two workloads, (a) one channel of 10M irregular readings and (b) 1000
channels × 10k readings through the batch API, and for the totaliser and the rate integral, it times:

- ``numba``: the kernels in ``kpi.kernels``;
- ``numpy``: a vectorised implementation of the same rules (per-pair quantities summed bucket by bucket with
  ``np.add.reduceat``, the pair that straddles an edge split exactly);
- ``pandas``: what a pandas user writes (per-channel ``diff``/``shift``, the bucket edges inserted as rows
  and interpolated so every pair is split at them, then ``groupby(channel, bucket).sum()``);
- ``reference``: one numpy reduction over the same input arrays (``t.sum() + v.sum() +
  count_nonzero(good)``), i.e. what it costs just to stream the readings through memory once.

Each result is the best of ``--repeats`` runs after a warm-up call (numba compiles or loads its cache then).
Every baseline is checked against the numba output before its time is printed, because a fast baseline
that computes something else is worthless. The figures and the discussion are in docs/performance-kpi.md.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from kpi.kernels import (
    ROLLOVER_WINDOW,
    multi_channel_rate_integral,
    multi_channel_totaliser_increments,
    rate_integral,
    totaliser_increments,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z, a bucket edge
BUCKET_S = 900.0  # 15-minute buckets
ROLLOVER = 100_000.0  # kWh: the single channel's counter wraps ~30 times
MAX_RATE = 1.0  # kWh/s (3600 kW): the counter's plausibility limit
WINDOW_S = 5.0  # s added to a pair's dt before the plausibility limit applies (register update + latency)
GAP_LIMIT = 120.0  # s: longer pairs of the power channel count as missing, of the counter as not covered
#: Share of readings at which the counter's meter is replaced and at which it shows a one-reading spike of
#: ``SPIKE`` × its modulus (an implausible jump up, then a drop back). The benchmark has a handful per
#: channel-year; ``tests/kpi/test_kernels.py`` checks the baselines on far denser workloads.
EVENTS = 2e-7
SPIKE = 0.05
RATE_SECONDS = 3600.0  # kW → kWh
#: The baselines add in another order (numpy pairwise per bucket; pandas accumulates each channel's counter
#: and covered time to ~3e6 kWh and ~1e7 s, whose rounding is ~1e-9 absolute), so they agree with the
#: kernels to rounding, not bit for bit.
TOLERANCE = {"rtol": 1e-9, "atol": 1e-6}
#: Goals from the issue: numba throughput ÷ the other's throughput.
GOALS = {"numpy": 4.0, "pandas": 30.0, "reference": 0.5}


@dataclass(frozen=True)
class Workload:
    """Concatenated channels: channel ``c`` owns readings ``[starts[c], starts[c + 1])``."""

    name: str
    t: np.ndarray
    power: np.ndarray  # kW, integrated by the rate kernel
    counter: np.ndarray  # kWh energy counter with rollovers, meter resets and implausible spikes
    good: np.ndarray
    starts: np.ndarray
    edges: np.ndarray
    rollover: float = ROLLOVER  # the counter's modulus

    @property
    def channels(self) -> int:
        return self.starts.size - 1

    def param(self, value: float) -> np.ndarray:
        """A per-channel parameter array, as the batch API takes it (the baselines use the scalar: every
        channel of a workload has the same parameters)."""
        return np.full(self.channels, value)


@dataclass(frozen=True)
class Result:
    """Per-bucket outputs of one implementation, shaped (channels, buckets); counts (channels, 3) or None."""

    qty: np.ndarray
    cov: np.ndarray
    counts: np.ndarray | None = None


def channel(
    rng: np.random.Generator, n: int, start: float, events: float = EVENTS, rollover: float = ROLLOVER
) -> tuple[np.ndarray, ...]:
    """One channel: readings every 1 s ± 0.3 s, an outage of 2–30 min every ~10⁴ readings, 0.1 % flagged
    bad, a power signal and an energy counter that rolls over at ``rollover``. At a share ``events`` of the
    readings its meter is replaced, the new one's first reading either a few kWh (a plausible reset) or
    anywhere in the register (an implausible jump, or a drop that looks like a rollover), and at as many
    it shows a one-reading spike of ``SPIKE × rollover``. The first meter starts anywhere in the register."""
    dt = rng.uniform(0.7, 1.3, n)
    outages = rng.random(n) < 1e-4
    dt[outages] += rng.uniform(120.0, 1800.0, outages.sum())
    t = start + np.cumsum(dt)
    power = rng.uniform(500.0, 1500.0, n)
    energy = np.cumsum(power * dt / 3600.0)
    reset = rng.random(n) < events
    reset[0] = True
    since = np.maximum.accumulate(np.where(reset, np.arange(n), 0))
    anywhere = rng.random(n) < 0.5
    anywhere[0] = True
    initial = np.where(anywhere, rng.uniform(0.0, rollover, n), rng.uniform(0.0, 3.0, n))
    counter = np.mod(np.where(reset, initial, 0.0)[since] + energy - energy[since], rollover)
    spikes = rng.random(n) < events
    counter[spikes] = np.mod(counter[spikes] + SPIKE * rollover, rollover)
    good = (rng.random(n) > 1e-3).astype(np.uint8)
    return t, power, counter, good


def workload(
    name: str,
    channels: int,
    per_channel: int,
    seed: int = 7,
    events: float = EVENTS,
    rollover: float = ROLLOVER,
) -> Workload:
    rng = np.random.default_rng(seed)
    parts = [
        channel(rng, per_channel, T0 + rng.uniform(0.0, 60.0), events, rollover) for _ in range(channels)
    ]
    t, power, counter, good = (np.concatenate(column) for column in zip(*parts, strict=True))
    starts = np.arange(channels + 1, dtype=np.int64) * per_channel
    edges = np.arange(T0, np.ceil((t.max() - T0) / BUCKET_S) * BUCKET_S + T0 + 1.0, BUCKET_S)
    return Workload(name, t, power, counter, good, starts, edges, rollover)


# --- numba: the kernels under test ------------------------------------------------------------------


def numba_totaliser(w: Workload) -> Result:
    qty = np.zeros((w.channels, w.edges.size - 1))
    cov = np.zeros_like(qty)
    if w.channels == 1:
        counts, _ = totaliser_increments(
            w.t, w.counter, w.good, w.edges, w.rollover, MAX_RATE, WINDOW_S, GAP_LIMIT, qty[0], cov[0]
        )
        return Result(qty, cov, counts[None, :])
    counts, _ = multi_channel_totaliser_increments(
        w.t, w.counter, w.good, w.starts, w.edges, w.param(w.rollover), w.param(MAX_RATE), w.param(WINDOW_S),
        w.param(GAP_LIMIT), qty, cov,
    )  # fmt: skip
    return Result(qty, cov, counts)


def numba_rate(w: Workload) -> Result:
    qty = np.zeros((w.channels, w.edges.size - 1))
    cov = np.zeros_like(qty)
    if w.channels == 1:
        rate_integral(w.t, w.power, w.good, w.edges, GAP_LIMIT, RATE_SECONDS, qty[0], cov[0])
    else:
        multi_channel_rate_integral(
            w.t, w.power, w.good, w.starts, w.edges, w.param(GAP_LIMIT), w.param(RATE_SECONDS), qty, cov
        )
    return Result(qty, cov)


# --- numpy: vectorised, same rules --------------------------------------------------------------------
#
# Readings are sorted within a channel, so the pairs that END in bucket k are contiguous: each bucket's
# whole pairs are summed by one ``np.add.reduceat`` (pairwise SIMD sums, ~15× faster than ``np.cumsum`` or
# ``np.bincount`` over 10M values here). The pair that straddles an edge is in the segment after it; the
# part of it that lies before the edge is moved back. Only (channels × edges) positions are searched.


def pair_buffer(per_pair: np.ndarray) -> np.ndarray:
    """A copy of ``per_pair`` with a trailing zero, so ``reduceat`` may be given index ``len(per_pair)``."""
    buffer = np.empty(per_pair.size + 1)
    buffer[:-1] = per_pair
    buffer[-1] = 0.0
    return buffer


def within_channel(starts: np.ndarray, n: int) -> np.ndarray:
    """Mask of the ``n - 1`` pairs whose two readings belong to one channel."""
    mask = np.ones(max(n - 1, 0), dtype=bool)
    joints = starts[1:-1]
    mask[joints[(joints > 0) & (joints < n)] - 1] = False
    return mask


@dataclass(frozen=True)
class EdgePairs:
    """Per channel and edge (channels × edges): ``j``, the pair that straddles the edge or the first pair
    after it (pairs before ``j`` end at or before the edge), and ``straddles``, ``t[j] < edge < t[j + 1]``."""

    j: np.ndarray
    straddles: np.ndarray

    @classmethod
    def find(cls, t: np.ndarray, starts: np.ndarray, edges: np.ndarray) -> EdgePairs:
        j = np.empty((starts.size - 1, edges.size), dtype=np.intp)
        for c in range(starts.size - 1):  # one searchsorted per channel, over its readings: O(B log N)
            j[c] = starts[c] + np.searchsorted(t[starts[c] : starts[c + 1]], edges, side="right") - 1
        first = starts[:-1, None]
        last_pair = starts[1:, None] - 2
        straddles = (j >= first) & (j <= last_pair)
        j = np.maximum(j, first)
        straddles &= t[np.minimum(j, t.size - 1)] < edges[None, :]
        return cls(j, straddles)

    def bucket_totals(self, per_pair: np.ndarray, before_edge: np.ndarray) -> np.ndarray:
        """Per bucket: the pairs ending in it, minus the straddler's part before its first edge, plus the
        next straddler's part before the bucket's end. ``per_pair`` comes from ``pair_buffer``;
        ``before_edge`` holds each straddler's part before its edge (0 where none straddles)."""
        # reduceat sums [bounds[i], bounds[i + 1]); an empty range yields per_pair[bounds[i]], not 0
        sums = np.add.reduceat(per_pair, self.j.ravel()).reshape(self.j.shape)[:, :-1]
        whole = np.where(self.j[:, 1:] > self.j[:, :-1], sums, 0.0)
        return whole - before_edge[:, :-1] + before_edge[:, 1:]


def usable_readings(w: Workload, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``t``, ``values`` and channel starts of the usable readings only: both kernels pair each usable
    reading with the previous usable one of its channel, across bad ones."""
    usable = (w.good != 0) & np.isfinite(w.t) & np.isfinite(values)
    kept = [np.count_nonzero(usable[a:b]) for a, b in itertools.pairwise(w.starts)]
    return w.t[usable], values[usable], np.concatenate(([0], np.cumsum(kept))).astype(np.int64)


def numpy_totaliser(w: Workload) -> Result:
    t, v, starts = usable_readings(w, w.counter)
    dt = np.diff(t)
    delta = np.diff(v)
    same = within_channel(starts, t.size)
    # rollover > 0 and MAX_RATE > 0, so the kernel's tests of them are true and left out. Decreases are
    # rare: classified where they are, not over all pairs. A drop is a rollover only from the top tenth of
    # the register to its bottom tenth; any other drop is a reset counting the new value from zero. Either
    # may still be rejected as implausible after.
    falls = np.flatnonzero((delta < 0.0) & same)
    top, bottom = (1.0 - ROLLOVER_WINDOW) * w.rollover, ROLLOVER_WINDOW * w.rollover
    wraps = (v[falls] >= top) & (v[falls] <= w.rollover) & (v[falls + 1] <= bottom)
    rolled, reset = falls[wraps], falls[~wraps]
    delta[rolled] += w.rollover
    delta[reset] = np.maximum(v[reset + 1], 0.0)
    implausible = delta > MAX_RATE * (dt + WINDOW_S)
    rejected = np.flatnonzero(implausible & same)
    ok = ~implausible & same

    def per_channel(pairs: np.ndarray) -> np.ndarray:
        return np.bincount(np.searchsorted(starts, pairs, side="right") - 1, minlength=w.channels)

    counts = np.stack(
        [per_channel(rolled[ok[rolled]]), per_channel(reset[ok[reset]]), per_channel(rejected)], axis=1
    )
    counted_cov = ok & ~(dt > GAP_LIMIT)  # a delta across a long gap counts, its seconds are not coverage
    increment = pair_buffer(delta)
    increment[:-1][~ok] = 0.0
    covered = pair_buffer(dt)
    covered[:-1][~counted_cov] = 0.0
    # constant rate within a pair (the workload has no zero-length pairs to place)
    edges = EdgePairs.find(t, starts, w.edges)
    j = np.minimum(edges.j, dt.size - 1)
    past = np.where(edges.straddles, w.edges[None, :] - t[j], 0.0)
    qty = edges.bucket_totals(increment, increment[j] * (past / dt[j]))
    cov = edges.bucket_totals(covered, np.where(counted_cov[j], past, 0.0))
    return Result(qty, cov, counts)


def numpy_rate(w: Workload) -> Result:
    t, v, starts = usable_readings(w, w.power)
    dt = np.diff(t)
    ok = within_channel(starts, t.size) & (dt > 0.0) & ~(dt > GAP_LIMIT)
    scale = 1.0 / RATE_SECONDS
    area = pair_buffer(v[:-1])
    area[:-1] += v[1:]
    area[:-1] *= 0.5
    area[:-1] *= dt
    area[:-1] *= scale
    skip = ~ok
    area[:-1][skip] = 0.0
    covered = pair_buffer(dt)
    covered[:-1][skip] = 0.0
    edges = EdgePairs.find(t, starts, w.edges)
    j = np.minimum(edges.j, dt.size - 1)
    split = edges.straddles & ok[j]
    past = np.where(split, w.edges[None, :] - t[j], 0.0)
    # trapezoid from the straddler's first reading to the edge, the rate there linearly interpolated
    v_edge = v[j] + (v[j + 1] - v[j]) * (past / dt[j])
    qty = edges.bucket_totals(area, 0.5 * (v[j] + v_edge) * past * scale)
    cov = edges.bucket_totals(covered, past)
    return Result(qty, cov)


# --- pandas: edges inserted as rows, diff, groupby ------------------------------------------------


def channel_ids(w: Workload) -> np.ndarray:
    return np.repeat(np.arange(w.channels), np.diff(w.starts))


def with_edge_rows(readings: pd.DataFrame, w: Workload) -> pd.DataFrame:
    """The readings plus one row per channel and edge, sorted by channel and time, the edge rows marked."""
    edge_rows = pd.DataFrame(
        {"ch": np.repeat(np.arange(w.channels), w.edges.size), "t": np.tile(w.edges, w.channels)}
    )
    rows = pd.concat([readings.assign(edge=False), edge_rows.assign(edge=True)], ignore_index=True)
    return rows.sort_values(["ch", "t", "edge"], kind="stable", ignore_index=True)


def interpolated_at_edges(rows: pd.DataFrame, column: str) -> pd.Series:
    """``column`` with the edge rows filled in linearly between the channel's readings around them."""
    by_channel = rows["ch"]
    reading_t = rows["t"].where(~rows["edge"])
    before_t = reading_t.groupby(by_channel).ffill()
    after_t = reading_t.groupby(by_channel).bfill()
    before = rows[column].groupby(by_channel).ffill()
    after = rows[column].groupby(by_channel).bfill()
    between = before + (after - before) * ((rows["t"] - before_t) / (after_t - before_t))
    return rows[column].where(~rows["edge"], between)


def bucket_sums(rows: pd.DataFrame, w: Workload) -> Result:
    """Sum ``qty`` and ``cov`` of each segment by channel and the bucket its start falls in."""
    bucket = pd.cut(rows["t"], w.edges, right=False, labels=False)
    sums = rows.groupby([rows["ch"], bucket])[["qty", "cov"]].sum()
    qty = np.zeros((w.channels, w.edges.size - 1))
    cov = np.zeros_like(qty)
    ch = sums.index.get_level_values(0).to_numpy()
    k = sums.index.get_level_values(1).to_numpy().astype(np.intp)
    qty[ch, k] = sums["qty"].to_numpy()
    cov[ch, k] = sums["cov"].to_numpy()
    return Result(qty, cov)


def usable_rows(w: Workload, values: np.ndarray) -> pd.DataFrame:
    """The usable readings as rows ``ch, t, v``: both kernels pair across bad readings."""
    readings = pd.DataFrame({"ch": channel_ids(w), "t": w.t, "v": values, "good": w.good})
    keep = (readings["good"] != 0) & np.isfinite(readings["t"]) & np.isfinite(readings["v"])
    return readings.loc[keep, ["ch", "t", "v"]]


def pandas_totaliser(w: Workload) -> Result:
    readings = usable_rows(w, w.counter)
    by_channel = readings.groupby("ch")
    delta = by_channel["v"].diff()
    dt = by_channel["t"].diff()
    previous = by_channel["v"].shift()
    falls = delta < 0
    wrap_from = (previous >= (1.0 - ROLLOVER_WINDOW) * w.rollover) & (previous <= w.rollover)
    rolled = falls & wrap_from & (readings["v"] <= ROLLOVER_WINDOW * w.rollover)
    reset = falls & ~rolled
    delta = delta.where(~rolled, delta + w.rollover).where(~reset, readings["v"].clip(lower=0.0))
    rejected = delta > MAX_RATE * (dt + WINDOW_S)
    ok = delta.notna() & ~rejected
    flags = pd.DataFrame({"rolled": rolled & ok, "reset": reset & ok, "rejected": rejected})
    counts = flags.groupby(readings["ch"]).sum().reindex(range(w.channels), fill_value=0).to_numpy()
    # counter and covered time accumulated per channel, interpolated at the edges, then differenced; a
    # delta across a gap over the limit counts, its seconds are not coverage
    readings = readings.assign(
        energy=delta.where(ok, 0.0).groupby(readings["ch"]).cumsum(),
        seconds=dt.where(ok & ~(dt > GAP_LIMIT), 0.0).groupby(readings["ch"]).cumsum(),
    )
    rows = with_edge_rows(readings[["ch", "t", "energy", "seconds"]], w)
    rows["qty"] = -interpolated_at_edges(rows, "energy").groupby(rows["ch"]).diff(-1)
    rows["cov"] = -interpolated_at_edges(rows, "seconds").groupby(rows["ch"]).diff(-1)
    result = bucket_sums(rows, w)
    return Result(result.qty, result.cov, counts)


def pandas_rate(w: Workload) -> Result:
    readings = usable_rows(w, w.power)
    dt = -readings.groupby("ch")["t"].diff(-1)  # NaN after a channel's last reading: no pair
    # 1.0 / 0.0 rather than bool: the edge rows get NaN, which ffill then fills
    readings["pair_ok"] = ((dt > 0) & ~(dt > GAP_LIMIT)).astype(float)
    rows = with_edge_rows(readings[["ch", "t", "v", "pair_ok"]], w)
    rows["v"] = interpolated_at_edges(rows, "v")
    pair_ok = rows["pair_ok"].groupby(rows["ch"]).ffill() == 1.0  # an edge row continues its pair
    by_row_channel = rows.groupby("ch")
    seg_dt = -by_row_channel["t"].diff(-1)
    seg_v = by_row_channel["v"].shift(-1)
    counted = pair_ok & (seg_dt > 0)
    rows["qty"] = (0.5 * (rows["v"] + seg_v) * seg_dt / RATE_SECONDS).where(counted, 0.0)
    rows["cov"] = seg_dt.where(counted, 0.0)
    return bucket_sums(rows, w)


# --- the reference and the harness ---------------------------------------------------------------


def reference(w: Workload, v: np.ndarray) -> float:
    """Stream the kernel's inputs through memory once: the floor for any pass over them."""
    return float(w.t.sum() + v.sum() + np.count_nonzero(w.good))


def best_seconds(action: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` runs; ``Kind.check_baselines`` has run every implementation once before (the
    warm-up: numba compiles or loads its cache then)."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def check_same(kernel: Result, other: Result, who: str) -> None:
    for name in ("qty", "cov"):
        a, b = getattr(kernel, name), getattr(other, name)
        if not np.allclose(a, b, **TOLERANCE):
            worst = np.unravel_index(np.argmax(np.abs(a - b)), a.shape)
            raise AssertionError(f"{who} {name} differs from numba at {worst}: {b[worst]!r} vs {a[worst]!r}")
    if other.counts is not None and not np.array_equal(kernel.counts, other.counts):
        raise AssertionError(f"{who} counts {other.counts.sum(0)} vs numba {kernel.counts.sum(0)}")


@dataclass(frozen=True)
class Kind:
    """One kernel kind: the value channel it reads (for the reference) and its implementations."""

    values: Callable[[Workload], np.ndarray]
    implementations: dict[str, Callable[[Workload], Result]]

    def check_baselines(self, w: Workload) -> None:
        """Run every implementation once and check the baselines against the kernels."""
        kernel = self.implementations["numba"](w)
        for name in ("numpy", "pandas"):
            check_same(kernel, self.implementations[name](w), name)


KINDS = {
    "totaliser (rollover)": Kind(
        lambda w: w.counter, {"numba": numba_totaliser, "numpy": numpy_totaliser, "pandas": pandas_totaliser}
    ),
    "rate integral (gap limit)": Kind(
        lambda w: w.power, {"numba": numba_rate, "numpy": numpy_rate, "pandas": pandas_rate}
    ),
}


def run(w: Workload, repeats: int) -> None:
    n = w.t.size
    print(
        f"\n{w.name}: {w.channels} channel(s) × {n // w.channels:,} readings = {n:,}, "
        f"{w.edges.size - 1:,} buckets of {BUCKET_S / 60:.0f} min"
    )
    print(f"{'kernel':<27}{'implementation':<16}{'best ms':>10}{'Msamples/s':>12}{'numba ×':>10}  goal")
    for label, kind in KINDS.items():
        kind.check_baselines(w)
        timings = {name: best_seconds(lambda f=f: f(w), repeats) for name, f in kind.implementations.items()}
        timings["reference"] = best_seconds(functools.partial(reference, w, kind.values(w)), repeats)
        for name, seconds in timings.items():
            ratio = seconds / timings["numba"]
            goal = (
                f"≥ {GOALS[name]:g}: {'met' if ratio >= GOALS[name] else 'NOT met'}" if name in GOALS else ""
            )
            first = label if name == "numba" else ""
            line = (
                f"{first:<27}{name:<16}{seconds * 1e3:>10.1f}{n / seconds / 1e6:>12.1f}{ratio:>10.2f}  {goal}"
            )
            print(line.rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50× smaller workloads (smoke run)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per implementation (best kept)")
    args = parser.parse_args()
    scale = 50 if args.quick else 1
    print(
        f"{os.cpu_count()} CPUs, numba {numba.__version__}, numpy {np.__version__}, pandas {pd.__version__}; "
        f"best of {args.repeats}; 'numba ×' = numba's throughput ÷ this row's"
    )
    run(workload("(a) one channel", 1, 10_000_000 // scale), args.repeats)
    run(workload("(b) batch API", 1000 // scale, 10_000), args.repeats)


if __name__ == "__main__":
    main()
