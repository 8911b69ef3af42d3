"""Numba kernels that turn raw channel readings into per-bucket quantities and coverage.

Why: a regional collector turns >100k readings/s into 15-minute increments (the online-monitoring real-time
granularity, GB/T 38692-2020 [CONFIRMED] via ``reference/domain.md`` §6), and backfill replays months. Every
kernel is one O(N + B) pass with a bucket pointer that only moves forward.

Common conventions
------------------
- ``t``: float64 epoch seconds, sorted non-decreasing; ``v``: float64 values; ``good``: uint8, 1 = usable.
  A reading whose ``t`` or ``v`` is not finite is treated as bad even when ``good`` is 1.
- ``edges``: float64, strictly increasing, bucket ``k`` is ``[edges[k], edges[k + 1])``. Readings outside
  ``[edges[0], edges[-1]]`` contribute only the part of their pair that overlaps the buckets.
- Outputs are ACCUMULATED (``+=``) into caller-provided float64 arrays of length ``len(edges) - 1``:
  quantity and coverage (seconds of the bucket backed by usable data; share = cov / bucket width).
- Chunking contract: the readings of a channel may be fed in chunks, provided each chunk starts with the
  reading given by ``carry_over_index`` of everything before it (the last usable reading; in the normal case
  the previous chunk's last reading, i.e. an overlap of exactly one). The totals are then bit-for-bit those of
  one pass, because every pair of readings is processed exactly once and in the same order.
- Call with every argument: numba's dispatch is ~100× slower when defaults are filled in (stack notes).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Indices into the counts returned by ``totaliser_increments``.
ROLLOVERS, RESETS, REJECTED = 0, 1, 2


def carry_over_index(t: np.ndarray, v: np.ndarray, good: np.ndarray) -> int:
    """Index of the reading the next chunk must start with: the last usable one, or -1 if there is none.

    With -1 no reading needs carrying (nothing before could pair with the next chunk).
    """
    usable = np.flatnonzero((good != 0) & np.isfinite(t) & np.isfinite(v))
    return int(usable[-1]) if usable.size else -1


@njit(cache=True)
def _usable(flag: int, t: float, v: float) -> bool:
    # Scalars only: a helper taking arrays costs reference counting on every call (~10× slower loops).
    return flag != 0 and np.isfinite(t) and np.isfinite(v)


@njit(cache=True)
def _check(
    t: np.ndarray, v: np.ndarray, good: np.ndarray, edges: np.ndarray, out_a: np.ndarray, out_b: np.ndarray
) -> None:
    n = t.shape[0]
    if v.shape[0] != n or good.shape[0] != n:
        raise ValueError("t, v and good must have the same length")
    if edges.shape[0] < 2:
        raise ValueError("edges must hold at least two values")
    if out_a.shape[0] != edges.shape[0] - 1 or out_b.shape[0] != edges.shape[0] - 1:
        raise ValueError("output arrays must have len(edges) - 1 elements")
    for k in range(1, edges.shape[0]):
        if not edges[k] > edges[k - 1]:
            raise ValueError("edges must be strictly increasing")
    for i in range(1, n):
        if t[i] < t[i - 1]:
            raise ValueError("t must be sorted (non-decreasing)")


@njit(cache=True)
def _start_bucket(edges: np.ndarray, t0: float) -> int:
    """First bucket that can overlap a pair starting at ``t0``."""
    k = np.searchsorted(edges, t0, side="right") - 1
    return max(k, 0)


@njit(cache=True)
def totaliser_increments(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    edges: np.ndarray,
    rollover: float,
    max_rate: float,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
) -> np.ndarray:
    """Per-bucket deltas of a totaliser (energy or mass counter).

    Returns int64 counts ``(rollovers, resets, rejected)``, indexed by ``ROLLOVERS, RESETS, REJECTED``.

    Why: ``reference/domain.md`` §7.1 "compute energy from counter deltas, not by integrating power; handle
    counter rollover and meter replacement". For each consecutive pair of usable readings,
    ``delta = v1 − v0``:

    - ``delta < 0`` and ``rollover > 0`` and ``delta + rollover`` plausible (``≤ max_rate × dt``, or
      ``max_rate ≤ 0`` meaning no limit): a counter rollover, ``delta += rollover``;
    - otherwise ``delta < 0``: a meter reset/replacement; the pair contributes nothing and no coverage, and
      counting continues from the new value;
    - ``max_rate > 0`` and ``delta > max_rate × dt``: an implausible jump, rejected like a reset.

    A pair's delta is spread over the buckets in proportion to time overlap (constant rate within the pair)
    and the overlapped seconds are added to ``out_cov``. Bad readings are skipped, so the next usable reading
    pairs with the last usable one: a counter loses nothing across a gap. A pair with equal times puts its
    delta in the bucket holding that time, with no coverage. Chunking contract: see the module docstring.
    """
    _check(t, v, good, edges, out_qty, out_cov)
    counts = np.zeros(3, dtype=np.int64)
    n = t.shape[0]
    nb = edges.shape[0] - 1
    k = -1
    prev = -1
    for i in range(n):
        if not _usable(good[i], t[i], v[i]):
            continue
        if prev < 0:
            prev = i
            k = _start_bucket(edges, t[i])
            continue
        t0 = t[prev]
        t1 = t[i]
        dt = t1 - t0
        delta = v[i] - v[prev]
        prev = i
        if delta < 0.0:
            if rollover > 0.0 and (max_rate <= 0.0 or delta + rollover <= max_rate * dt):
                counts[ROLLOVERS] += 1
                delta += rollover
            else:
                counts[RESETS] += 1
                continue
        if max_rate > 0.0 and delta > max_rate * dt:
            counts[REJECTED] += 1
            continue
        if dt > 0.0:
            # constant rate within the pair: spread delta over the buckets by time overlap
            while k < nb and edges[k + 1] <= t0:
                k += 1
            while k < nb and edges[k] < t1:
                lo = max(t0, edges[k])
                hi = min(t1, edges[k + 1])
                if hi > lo:
                    out_qty[k] += delta * ((hi - lo) / dt)
                    out_cov[k] += hi - lo
                if edges[k + 1] >= t1:
                    break
                k += 1
        else:
            while k < nb and edges[k + 1] <= t1:
                k += 1
            if k < nb and edges[k] <= t1:
                out_qty[k] += delta
    return counts


@njit(cache=True)
def _interp(t0: float, v0: float, t1: float, v1: float, x: float) -> float:
    if x <= t0:
        return v0
    if x >= t1:
        return v1
    return v0 + (v1 - v0) * ((x - t0) / (t1 - t0))


@njit(cache=True)
def _trapezoid(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    edges: np.ndarray,
    gap_limit: float,
    scale: float,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
) -> None:
    """Trapezoid integral × ``scale`` per bucket, split exactly at edges; see ``rate_integral``."""
    _check(t, v, good, edges, out_qty, out_cov)
    n = t.shape[0]
    if n == 0:
        return
    nb = edges.shape[0] - 1
    k = _start_bucket(edges, t[0])
    for i in range(1, n):
        if not (_usable(good[i - 1], t[i - 1], v[i - 1]) and _usable(good[i], t[i], v[i])):
            continue
        t0 = t[i - 1]
        t1 = t[i]
        dt = t1 - t0
        if not dt > 0.0 or dt > gap_limit:
            continue
        v0 = v[i - 1]
        v1 = v[i]
        while k < nb and edges[k + 1] <= t0:
            k += 1
        while k < nb and edges[k] < t1:
            lo = max(t0, edges[k])
            hi = min(t1, edges[k + 1])
            if hi > lo:
                r_lo = _interp(t0, v0, t1, v1, lo)
                r_hi = _interp(t0, v0, t1, v1, hi)
                out_qty[k] += 0.5 * (r_lo + r_hi) * (hi - lo) * scale
                out_cov[k] += hi - lo
            if edges[k + 1] >= t1:
                break
            k += 1


@njit(cache=True)
def rate_integral(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    edges: np.ndarray,
    gap_limit: float,
    rate_seconds: float,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
) -> None:
    """Integrate a rate channel per bucket: kW with ``rate_seconds=3600`` gives kWh, t/h gives t.

    Why: DESIGN "Domain model" — rate channels are integrated by the trapezoid rule, split exactly at interval
    edges (the rate at an edge is linearly interpolated), and gaps over a limit count as missing, not zero:
    a pair with ``dt > gap_limit`` (pass ``np.inf`` for no limit) or a bad endpoint adds neither quantity nor
    coverage, so the coverage tells the KPI layer how much of the bucket is real. This is the same split as
    InfluxDB's ``integral()`` grouped by time (stack notes). Chunking contract: see the module docstring.
    """
    if not rate_seconds > 0.0:
        raise ValueError("rate_seconds must be > 0")
    _trapezoid(t, v, good, edges, gap_limit, 1.0 / rate_seconds, out_qty, out_cov)


@njit(cache=True)
def analog_time_weighted(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    edges: np.ndarray,
    gap_limit: float,
    out_sum: np.ndarray,
    out_cov: np.ndarray,
) -> None:
    """Time-weighted sum (value × seconds) of an analog channel per bucket; the mean is ``out_sum / out_cov``.

    Why: temperatures, pressures and NCVs are averaged over time, not over samples, so irregular polling does
    not bias the mean. Values are linear between readings (trapezoid), exactly as ``rate_integral`` with
    ``rate_seconds = 1``, and the same gap rule applies. Chunking contract: see the module docstring.
    """
    _trapezoid(t, v, good, edges, gap_limit, 1.0, out_sum, out_cov)


@njit(cache=True)
def _check_multi(
    t: np.ndarray, starts: np.ndarray, params: np.ndarray, out_a: np.ndarray, out_b: np.ndarray
) -> None:
    n_ch = starts.shape[0] - 1
    if n_ch < 0 or starts[0] != 0 or starts[n_ch] != t.shape[0]:
        raise ValueError("starts must run from 0 to len(t) with n_channels + 1 entries")
    for c in range(n_ch):
        if starts[c + 1] < starts[c]:
            raise ValueError("starts must be non-decreasing")
    if params.shape[0] != n_ch or out_a.shape[0] != n_ch or out_b.shape[0] != n_ch:
        raise ValueError("per-channel parameters and output rows must have n_channels entries")


@njit(cache=True)
def multi_channel_totaliser_increments(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    starts: np.ndarray,
    edges: np.ndarray,
    rollover: np.ndarray,
    max_rate: np.ndarray,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
) -> np.ndarray:
    """``totaliser_increments`` for many channels in one call (backfill); returns counts (n_channels, 3).

    Channel ``c`` owns readings ``[starts[c], starts[c + 1])`` of the concatenated ``t, v, good``, parameters
    ``rollover[c], max_rate[c]`` and output rows ``out_qty[c], out_cov[c]`` (shape n_channels × n_buckets).
    """
    _check_multi(t, starts, rollover, out_qty, out_cov)
    if max_rate.shape[0] != rollover.shape[0]:
        raise ValueError("rollover and max_rate must have n_channels entries")
    n_ch = starts.shape[0] - 1
    counts = np.zeros((n_ch, 3), dtype=np.int64)
    for c in range(n_ch):
        a = starts[c]
        b = starts[c + 1]
        counts[c] = totaliser_increments(
            t[a:b], v[a:b], good[a:b], edges, rollover[c], max_rate[c], out_qty[c], out_cov[c]
        )
    return counts


@njit(cache=True)
def multi_channel_rate_integral(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    starts: np.ndarray,
    edges: np.ndarray,
    gap_limit: np.ndarray,
    rate_seconds: np.ndarray,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
) -> None:
    """``rate_integral`` for many channels in one call; layout as ``multi_channel_totaliser_increments``."""
    _check_multi(t, starts, gap_limit, out_qty, out_cov)
    if rate_seconds.shape[0] != gap_limit.shape[0]:
        raise ValueError("gap_limit and rate_seconds must have n_channels entries")
    for c in range(starts.shape[0] - 1):
        a = starts[c]
        b = starts[c + 1]
        rate_integral(t[a:b], v[a:b], good[a:b], edges, gap_limit[c], rate_seconds[c], out_qty[c], out_cov[c])


@njit(cache=True)
def multi_channel_analog_time_weighted(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    starts: np.ndarray,
    edges: np.ndarray,
    gap_limit: np.ndarray,
    out_sum: np.ndarray,
    out_cov: np.ndarray,
) -> None:
    """``analog_time_weighted`` for many channels in one call; layout as in the totaliser batch API."""
    _check_multi(t, starts, gap_limit, out_sum, out_cov)
    for c in range(starts.shape[0] - 1):
        a = starts[c]
        b = starts[c + 1]
        analog_time_weighted(t[a:b], v[a:b], good[a:b], edges, gap_limit[c], out_sum[c], out_cov[c])
