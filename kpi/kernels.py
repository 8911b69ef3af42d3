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
- A ``ValueError`` (bad shapes, edges or parameters, unsorted ``t``) leaves the outputs as they were.
- Chunking contract: the readings of a channel may be fed in chunks, provided each chunk starts with the
  reading given by ``carry_over_index`` of everything before it (the last usable reading; in the normal case
  the previous chunk's last reading, i.e. an overlap of exactly one). The totals are then bit-for-bit those of
  one pass, because every pair of readings is processed exactly once and in the same order.
- Call with every argument: numba's dispatch is ~100× slower when defaults are filled in (stack notes).

How the loops are kept fast (measurements in ``docs/performance-kpi.md``)
-----------------------------------------------------------------------
- The chunking contract needs each bucket's sums built pair by pair in time order, so the floor is one
  dependent floating-point add per pair (~3 cycles). The rest is arranged to cost little beside it.
- Runs: a 15-minute bucket holds ~900 one-second pairs and nearly all are plain (usable readings,
  ``0 < dt``, within the gap limit, no rollover/reset/rejection, wholly inside the current bucket). One
  branch-free sweep, which LLVM vectorises, finds how many of the next ``_RUN`` pairs are plain; they are
  then added in a tight loop to running sums held in registers. The running sums are exactly ``out[k]``
  (loaded when the bucket is entered, stored when it is left) and a plain pair's overlap fraction is
  exactly 1, so the totals are bit-for-bit those of the per-pair edge split. A non-finite ``v`` in a run
  makes the run's sum non-finite; such a run is discarded and redone by the general rules, which also take
  every pair that is not plain, one at a time.
- Sortedness is checked inside that pass (a run needs ``dt > 0``; the general rules compare each reading
  with the one before), not by a separate pass over ``t``. To still leave the outputs untouched on an
  unsorted ``t``, the pass works on copies of the outputs (O(buckets), not O(readings)) that are copied
  back only when it completes.
- Indices in the sweeps and run loops are uint64: numba then emits no negative-index wraparound, which
  would keep LLVM from vectorising. The batch API checks ``edges`` once and slices, never allocates, per
  channel.
- ``error_model="numpy"``: divisions are only by quantities already tested to be > 0, so Python's
  zero-division checks would be dead branches in the loops. ``fastmath`` is NOT used: it would let LLVM
  reorder the sums (breaking the bit-for-bit chunking contract) and assume away the NaN tests.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

#: Indices into the counts returned by ``totaliser_increments``, and the event kinds in its event rows.
ROLLOVERS, RESETS, REJECTED = 0, 1, 2
#: Columns of an event row: what happened, the pair (t0, v0) → (t1, v1), the quantity the pair stands for
#: (counted for rollovers and resets, NOT for rejected jumps) and the channel (batch API; 0 otherwise).
EVENT_KIND, EVENT_T0, EVENT_T1, EVENT_V0, EVENT_V1, EVENT_QTY, EVENT_CHANNEL = range(7)
EVENT_COLUMNS = 7
#: A drop is a rollover only when the previous value is within this share of the modulus below it and the
#: new value within this share above zero (previous ≥ 0.9 × modulus, new ≤ 0.1 × modulus).
ROLLOVER_WINDOW = 0.1

#: Pairs looked at per run (module notes on speed). On the 10M-reading benchmark 64…256 were equally fast
#: and 32 ~10 % slower; longer runs waste more of the sweep whenever a bad reading or an edge ends one early.
_RUN = 64


def carry_over_index(t: np.ndarray, v: np.ndarray, good: np.ndarray) -> int:
    """Index of the reading the next chunk must start with: the last usable one, or -1 if there is none.

    With -1 no reading needs carrying (nothing before could pair with the next chunk).
    """
    usable = np.flatnonzero((good != 0) & np.isfinite(t) & np.isfinite(v))
    return int(usable[-1]) if usable.size else -1


@njit(cache=True, error_model="numpy")
def _usable(flag: int, t: float, v: float) -> bool:
    # Scalars only: a helper taking arrays costs reference counting on every call (~10× slower loops).
    # abs(x) < inf is False for NaN and ±inf, in one compare.
    return flag != 0 and abs(t) < np.inf and abs(v) < np.inf


@njit(cache=True, error_model="numpy")
def _check_edges(edges: np.ndarray, out_a: np.ndarray, out_b: np.ndarray) -> None:
    """``edges`` usable and both outputs (1-D, or rows of a 2-D batch output) ``len(edges) - 1`` wide."""
    if edges.shape[0] < 2:
        raise ValueError("edges must hold at least two values")
    if out_a.shape[-1] != edges.shape[0] - 1 or out_b.shape[-1] != edges.shape[0] - 1:
        raise ValueError("output arrays must have len(edges) - 1 elements")
    for k in range(1, edges.shape[0]):
        if not edges[k] > edges[k - 1]:
            raise ValueError("edges must be strictly increasing")


@njit(cache=True, error_model="numpy")
def _check(
    t: np.ndarray, v: np.ndarray, good: np.ndarray, edges: np.ndarray, out_a: np.ndarray, out_b: np.ndarray
) -> None:
    """Everything but sortedness, which the passes check as they go."""
    n = t.shape[0]
    if v.shape[0] != n or good.shape[0] != n:
        raise ValueError("t, v and good must have the same length")
    _check_edges(edges, out_a, out_b)


@njit(cache=True, error_model="numpy")
def _unsorted() -> None:
    raise ValueError("t must be sorted (non-decreasing)")


@njit(cache=True, error_model="numpy")
def _start_bucket(edges: np.ndarray, t0: float) -> int:
    """First bucket that can overlap a pair starting at ``t0``."""
    k = np.searchsorted(edges, t0, side="right") - 1
    return max(k, 0)


@njit(cache=True, error_model="numpy")
def _spread_delta(
    edges: np.ndarray,
    k: int,
    t0: float,
    t1: float,
    delta: float,
    covered: bool,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
) -> int:
    """General rules of the totaliser for one pair: spread its delta over the buckets; the new pointer.

    ``covered``: the pair is no longer than the gap limit, so its seconds count as coverage.
    """
    nb = edges.shape[0] - 1
    dt = t1 - t0
    if dt > 0.0:
        # constant rate within the pair: spread delta over the buckets by time overlap
        while k < nb and edges[k + 1] <= t0:
            k += 1
        while k < nb and edges[k] < t1:
            lo = max(t0, edges[k])
            hi = min(t1, edges[k + 1])
            if hi > lo:
                out_qty[k] += delta * ((hi - lo) / dt)
                if covered:
                    out_cov[k] += hi - lo
            if edges[k + 1] >= t1:
                break
            k += 1
    else:
        while k < nb and edges[k + 1] <= t1:
            k += 1
        if k < nb and edges[k] <= t1:
            out_qty[k] += delta
    return k


@njit(cache=True, error_model="numpy")
def _record(
    events: np.ndarray, ne: int, kind: int, t0: float, t1: float, v0: float, v1: float, qty: float, ch: int
) -> tuple[np.ndarray, int]:
    """Append one event row, doubling the buffer when it is full (events are rare: a few per meter-year)."""
    if ne == events.shape[0]:
        grown = np.empty((max(16, 2 * ne), EVENT_COLUMNS))
        grown[:ne] = events[:ne]
        events = grown
    events[ne, EVENT_KIND] = kind
    events[ne, EVENT_T0] = t0
    events[ne, EVENT_T1] = t1
    events[ne, EVENT_V0] = v0
    events[ne, EVENT_V1] = v1
    events[ne, EVENT_QTY] = qty
    events[ne, EVENT_CHANNEL] = ch
    return events, ne + 1


@njit(cache=True, error_model="numpy")
def _not_plain_increment(
    flag: int, t1: float, dt: float, delta: float, limit: float, window: float, gap_limit: float, hi: float
) -> bool:
    # Bitwise, not short-circuit, operators: no branches, so the sweep vectorises.
    return (
        (flag == 0)
        | (not dt > 0.0)
        | (not delta >= 0.0)
        | (delta > limit * (dt + window))
        | (dt > gap_limit)
        | (not t1 <= hi)
    )


@njit(cache=True, error_model="numpy")
def _plain_increments(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    a: int,
    m: int,
    limit: float,
    window: float,
    gap_limit: float,
    hi: float,
) -> int:
    """How many of the ``m`` pairs ``(a + j, a + j + 1)`` are plain increments, counted from ``a`` on.

    Plain: the later reading has a good flag and ``t ≤ hi``, ``0 < dt ≤ gap_limit``, ``delta ≥ 0`` and not
    ``delta > limit × (dt + window)``. With reading ``a`` usable and in bucket ``k`` and finite
    ``hi = edges[k + 1]``, every ``t`` of such a run is finite and in bucket ``k``; a non-finite ``v`` shows
    in the run's sum (see ``_totalise``).
    """
    first = uint64(a)
    plain = m
    for j in range(m):  # the first pair that is not plain, as a branch-free min
        i0 = first + uint64(j)
        i1 = i0 + uint64(1)
        stop = _not_plain_increment(
            good[i1], t[i1], t[i1] - t[i0], v[i1] - v[i0], limit, window, gap_limit, hi
        )
        plain = min(plain, j if stop else m)
    return plain


@njit(cache=True, error_model="numpy")
def _totalise(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    edges: np.ndarray,
    rollover: float,
    max_rate: float,
    window: float,
    gap_limit: float,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
    counts: np.ndarray,
    events: np.ndarray,
    ne: int,
    channel: int,
) -> tuple[bool, np.ndarray, int]:
    """The totaliser pass, adding to ``counts`` and ``events``; False (and stopped) where ``t`` decreases."""
    n = t.shape[0]
    nb = edges.shape[0] - 1
    limit = max_rate if max_rate > 0.0 else np.inf  # delta > inf × dt never holds: no plausibility limit
    wrap_hi = (1.0 - ROLLOVER_WINDOW) * rollover  # a rollover leaves from at or above this ...
    wrap_lo = ROLLOVER_WINDOW * rollover  # ... and lands at or below this
    k = -1  # bucket pointer, placed at the first usable reading
    lo = np.inf  # [lo, hi] = edges of bucket k while acc_* hold out_*[k]; empty otherwise
    hi = -np.inf
    acc_q = 0.0
    acc_c = 0.0
    p = -1  # last usable reading
    i = 0  # next reading
    runs_from = 0  # no run is tried before this reading (after a run whose sum was not finite)
    while i < n:
        if p >= 0 and p == i - 1 and i >= runs_from and t[p] >= lo and hi < np.inf:
            want = min(_RUN, n - i)
            got = _plain_increments(t, v, good, p, want, limit, window, gap_limit, hi)
            run_q = acc_q
            run_c = acc_c
            first = uint64(p)
            for j in range(got):
                i0 = first + uint64(j)
                i1 = i0 + uint64(1)
                run_q += v[i1] - v[i0]
                run_c += t[i1] - t[i0]
            if abs(run_q) < np.inf:
                acc_q = run_q
                acc_c = run_c
                i += got
                p = i - 1
                if got == want:
                    continue
            else:  # a non-finite v (or an overflow): let the general rules take these readings one by one
                runs_from = i + got
        # reading i is not part of a run: the general rules
        t1 = t[i]
        v1 = v[i]
        if i > 0 and t1 < t[i - 1]:
            return False, events, ne
        i += 1
        if not _usable(good[i - 1], t1, v1):
            continue
        if p < 0:
            p = i - 1
            k = _start_bucket(edges, t1)
            if k < nb:
                acc_q = out_qty[k]
                acc_c = out_cov[k]
            continue
        t0 = t[p]
        v0 = v[p]
        dt = t1 - t0
        delta = v1 - v0
        p = i - 1
        kind = -1
        if delta < 0.0:
            if rollover > 0.0 and wrap_hi <= v0 <= rollover and v1 <= wrap_lo:
                kind = ROLLOVERS
                delta += rollover
            else:  # a reset or a new meter: it counted from zero since the last old reading
                kind = RESETS
                delta = max(v1, 0.0)
        if delta > limit * (dt + window):
            counts[REJECTED] += 1
            events, ne = _record(events, ne, REJECTED, t0, t1, v0, v1, delta, channel)
            continue
        if kind >= 0:
            counts[kind] += 1
            events, ne = _record(events, ne, kind, t0, t1, v0, v1, delta, channel)
        covered = not dt > gap_limit
        if dt > 0.0 and t0 >= lo and t1 <= hi:
            acc_q += delta
            if covered:
                acc_c += dt
            continue
        if k < nb:
            out_qty[k] = acc_q
            out_cov[k] = acc_c
        k = _spread_delta(edges, k, t0, t1, delta, covered, out_qty, out_cov)
        if k < nb:
            lo = edges[k]
            hi = edges[k + 1]
            acc_q = out_qty[k]
            acc_c = out_cov[k]
        else:
            lo = np.inf
            hi = -np.inf
    if 0 <= k < nb:
        out_qty[k] = acc_q
        out_cov[k] = acc_c
    return True, events, ne


@njit(cache=True, error_model="numpy")
def totaliser_increments(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    edges: np.ndarray,
    rollover: float,
    max_rate: float,
    window_s: float,
    gap_limit: float,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bucket deltas of a totaliser (energy or mass counter): ``(counts, events)``.

    ``counts`` is int64 ``(rollovers, resets, rejected)``, indexed by ``ROLLOVERS, RESETS, REJECTED``;
    ``events`` has one row (``EVENT_*`` columns) per rollover, reset and rejected jump, in time order.

    Why: ``reference/domain.md`` §7.1 "compute energy from counter deltas, not by integrating power; handle
    counter rollover and meter replacement", and these numbers go to regulators, so no delta is ever lost
    silently. For each consecutive pair of usable readings, ``delta = v1 − v0``:

    - ``delta < 0``, ``rollover > 0``, ``0.9 × rollover ≤ v0 ≤ rollover`` and ``v1 ≤ 0.1 × rollover``
      (``ROLLOVER_WINDOW``): the register wrapped, ``delta = v1 + rollover − v0`` (a reading above the
      modulus cannot have wrapped at it: the modulus is wrong, and the drop is taken as a reset);
    - any other ``delta < 0``: a reset or a replaced meter, which counted from zero since the last old
      reading, so ``delta = v1`` — nothing lost, nothing counted twice. This needs no plausibility limit;
    - ``max_rate > 0`` and ``delta > max_rate × (dt + window_s)``: an implausible jump. ``window_s``
      tolerates the meter's register update period and the poll latency, so a read 0.1 s after a late one
      never trips it. The pair adds neither quantity nor coverage, but its quantity is kept in its event
      row, so the caller can report it and count it in by a setting.

    A pair's delta is spread over the buckets in proportion to time overlap (constant rate within the pair);
    its seconds count as coverage only when ``dt ≤ gap_limit`` (the delta itself is complete however long the
    gap). Bad readings are skipped, so the next usable reading pairs with the last usable one. A pair with
    equal times puts its delta in the bucket holding that time, with no coverage. Chunking contract: see
    the module docstring.
    """
    _check(t, v, good, edges, out_qty, out_cov)
    if not window_s >= 0.0 or not gap_limit > 0.0:
        raise ValueError("window_s must be >= 0 and gap_limit > 0")
    counts = np.zeros(3, dtype=np.int64)
    qty = out_qty.copy()
    cov = out_cov.copy()
    events = np.empty((0, EVENT_COLUMNS))
    ok, events, ne = _totalise(
        t, v, good, edges, rollover, max_rate, window_s, gap_limit, qty, cov, counts, events, 0, 0
    )
    if not ok:
        _unsorted()
    out_qty[:] = qty
    out_cov[:] = cov
    return counts, events[:ne].copy()


@njit(cache=True, error_model="numpy")
def _interp(t0: float, v0: float, t1: float, v1: float, x: float) -> float:
    if x <= t0:
        return v0
    if x >= t1:
        return v1
    return v0 + (v1 - v0) * ((x - t0) / (t1 - t0))


@njit(cache=True, error_model="numpy")
def _split_trapezoid(
    edges: np.ndarray,
    k: int,
    t0: float,
    v0: float,
    t1: float,
    v1: float,
    scale: float,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
) -> int:
    """General rules of the trapezoid for one pair (``t1 > t0``): split it at the edges; the new pointer."""
    nb = edges.shape[0] - 1
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
    return k


@njit(cache=True, error_model="numpy")
def _not_plain_pair(flag: int, t1: float, dt: float, gap_limit: float, hi: float) -> bool:
    # Bitwise, not short-circuit, operators: no branches, so the sweep vectorises.
    return (flag == 0) | (not dt > 0.0) | (dt > gap_limit) | (not t1 <= hi)


@njit(cache=True, error_model="numpy")
def _plain_pairs(t: np.ndarray, good: np.ndarray, a: int, m: int, gap_limit: float, hi: float) -> int:
    """How many of the ``m`` pairs ``(a + j, a + j + 1)`` are plain trapezoids, counted from ``a`` on.

    Plain: the later reading has a good flag and ``t ≤ hi``, and ``0 < dt ≤ gap_limit``. With reading ``a``
    usable and in bucket ``k`` and finite ``hi = edges[k + 1]``, every ``t`` of such a run is finite and in
    bucket ``k``; a non-finite ``v`` shows in the run's sum (see ``_trapezoid_pass``). ``v`` is not read
    here, so the sweep streams only ``t`` and ``good``.
    """
    first = uint64(a)
    plain = m
    for j in range(m):  # the first pair that is not plain, as a branch-free min
        i0 = first + uint64(j)
        i1 = i0 + uint64(1)
        stop = _not_plain_pair(good[i1], t[i1], t[i1] - t[i0], gap_limit, hi)
        plain = min(plain, j if stop else m)
    return plain


@njit(cache=True, error_model="numpy")
def _trapezoid_pass(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    edges: np.ndarray,
    gap_limit: float,
    scale: float,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
) -> bool:
    """The trapezoid pass; False (and stopped) where ``t`` decreases.

    Pairs are formed between consecutive USABLE readings: a bad sample is dropped and its neighbours are
    integrated across it when they are within the gap limit, as a totaliser pairs across bad readings.
    """
    n = t.shape[0]
    nb = edges.shape[0] - 1
    k = -1  # bucket pointer, placed by the first pair that counts (not by t[0], which may be NaN)
    lo = np.inf  # [lo, hi] = edges of bucket k while acc_* hold out_*[k]; empty otherwise
    hi = -np.inf
    acc_q = 0.0
    acc_c = 0.0
    p = -1  # last usable reading
    i = 0  # next reading
    runs_from = 0  # no run is tried before this reading (after a run whose sum was not finite)
    while i < n:
        if p >= 0 and p == i - 1 and i >= runs_from and t[p] >= lo and hi < np.inf:
            want = min(_RUN, n - i)
            got = _plain_pairs(t, good, p, want, gap_limit, hi)
            run_q = acc_q
            run_c = acc_c
            first = uint64(p)
            for j in range(got):
                i0 = first + uint64(j)
                i1 = i0 + uint64(1)
                dt = t[i1] - t[i0]
                run_q += 0.5 * (v[i0] + v[i1]) * dt * scale
                run_c += dt
            if abs(run_q) < np.inf:
                acc_q = run_q
                acc_c = run_c
                i += got
                p = i - 1
                if got == want:
                    continue
            else:  # a non-finite v (or an overflow): let the general rules take these pairs one by one
                runs_from = i + got
        # reading i is not part of a run: the general rules
        t1 = t[i]
        v1 = v[i]
        if i > 0 and t1 < t[i - 1]:
            return False
        i += 1
        if not _usable(good[i - 1], t1, v1):
            continue
        if p < 0:
            p = i - 1
            continue
        t0 = t[p]
        v0 = v[p]
        p = i - 1
        dt = t1 - t0
        if not (dt > 0.0 and not dt > gap_limit):
            continue
        if t0 >= lo and t1 <= hi:
            acc_q += 0.5 * (v0 + v1) * dt * scale
            acc_c += dt
            continue
        if k < 0:
            k = _start_bucket(edges, t0)
        elif k < nb:
            out_qty[k] = acc_q
            out_cov[k] = acc_c
        k = _split_trapezoid(edges, k, t0, v0, t1, v1, scale, out_qty, out_cov)
        if k < nb:
            lo = edges[k]
            hi = edges[k + 1]
            acc_q = out_qty[k]
            acc_c = out_cov[k]
        else:
            lo = np.inf
            hi = -np.inf
    if 0 <= k < nb:
        out_qty[k] = acc_q
        out_cov[k] = acc_c
    return True


@njit(cache=True, error_model="numpy")
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
    if not gap_limit > 0.0:
        raise ValueError("gap_limit must be > 0 (np.inf for no limit)")
    qty = out_qty.copy()
    cov = out_cov.copy()
    if not _trapezoid_pass(t, v, good, edges, gap_limit, scale, qty, cov):
        _unsorted()
    out_qty[:] = qty
    out_cov[:] = cov


@njit(cache=True, error_model="numpy")
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
    pairs are formed between consecutive usable readings, so a bad sample is dropped and its good neighbours
    are integrated across it; a pair with ``dt > gap_limit`` (pass ``np.inf`` for no limit) adds neither
    quantity nor coverage, so the coverage tells the KPI layer how much of the bucket is real. This is the
    same split as InfluxDB 1.6's ``integral()`` grouped by time, except for a pair spanning a whole bucket,
    which InfluxDB splits at its first edge only (``tests/kpi/test_influx_integral_oracle.py``). Chunking
    contract: see the module docstring.
    """
    if not rate_seconds > 0.0:
        raise ValueError("rate_seconds must be > 0")
    _trapezoid(t, v, good, edges, gap_limit, 1.0 / rate_seconds, out_qty, out_cov)


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def _check_multi(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    starts: np.ndarray,
    edges: np.ndarray,
    params: np.ndarray,
    out_a: np.ndarray,
    out_b: np.ndarray,
) -> None:
    """The single-channel checks, once per batch (``edges`` is not re-read per channel)."""
    n_ch = starts.shape[0] - 1
    if n_ch < 0 or starts[0] != 0 or starts[n_ch] != t.shape[0]:
        raise ValueError("starts must run from 0 to len(t) with n_channels + 1 entries")
    for c in range(n_ch):
        if starts[c + 1] < starts[c]:
            raise ValueError("starts must be non-decreasing")
    if params.shape[0] != n_ch or out_a.shape[0] != n_ch or out_b.shape[0] != n_ch:
        raise ValueError("per-channel parameters and output rows must have n_channels entries")
    _check(t, v, good, edges, out_a, out_b)


@njit(cache=True, error_model="numpy")
def multi_channel_totaliser_increments(
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    starts: np.ndarray,
    edges: np.ndarray,
    rollover: np.ndarray,
    max_rate: np.ndarray,
    window_s: np.ndarray,
    gap_limit: np.ndarray,
    out_qty: np.ndarray,
    out_cov: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``totaliser_increments`` for many channels in one call (backfill): counts (n_channels, 3) and the
    events of all channels, ``EVENT_CHANNEL`` naming the channel of each row.

    Channel ``c`` owns readings ``[starts[c], starts[c + 1])`` of the concatenated ``t, v, good``, parameters
    ``rollover[c], max_rate[c], window_s[c], gap_limit[c]`` and output rows ``out_qty[c], out_cov[c]``
    (shape n_channels × n_buckets).
    """
    _check_multi(t, v, good, starts, edges, rollover, out_qty, out_cov)
    n_ch = starts.shape[0] - 1
    if max_rate.shape[0] != n_ch or window_s.shape[0] != n_ch or gap_limit.shape[0] != n_ch:
        raise ValueError("rollover, max_rate, window_s and gap_limit must have n_channels entries")
    for c in range(n_ch):
        if not window_s[c] >= 0.0 or not gap_limit[c] > 0.0:
            raise ValueError("window_s must be >= 0 and gap_limit > 0")
    counts = np.zeros((n_ch, 3), dtype=np.int64)
    qty = out_qty.copy()
    cov = out_cov.copy()
    events = np.empty((0, EVENT_COLUMNS))
    ne = 0
    for c in range(n_ch):
        a = starts[c]
        b = starts[c + 1]
        ok, events, ne = _totalise(
            t[a:b], v[a:b], good[a:b], edges, rollover[c], max_rate[c], window_s[c], gap_limit[c],
            qty[c], cov[c], counts[c], events, ne, c,
        )  # fmt: skip
        if not ok:
            _unsorted()
    out_qty[:] = qty
    out_cov[:] = cov
    return counts, events[:ne].copy()


@njit(cache=True, error_model="numpy")
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
    _check_multi(t, v, good, starts, edges, gap_limit, out_qty, out_cov)
    if rate_seconds.shape[0] != gap_limit.shape[0]:
        raise ValueError("gap_limit and rate_seconds must have n_channels entries")
    for c in range(starts.shape[0] - 1):
        if not rate_seconds[c] > 0.0:
            raise ValueError("rate_seconds must be > 0")
    qty = out_qty.copy()
    cov = out_cov.copy()
    for c in range(starts.shape[0] - 1):
        a = starts[c]
        b = starts[c + 1]
        scale = 1.0 / rate_seconds[c]
        if not _trapezoid_pass(t[a:b], v[a:b], good[a:b], edges, gap_limit[c], scale, qty[c], cov[c]):
            _unsorted()
    out_qty[:] = qty
    out_cov[:] = cov


@njit(cache=True, error_model="numpy")
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
    _check_multi(t, v, good, starts, edges, gap_limit, out_sum, out_cov)
    total = out_sum.copy()
    cov = out_cov.copy()
    for c in range(starts.shape[0] - 1):
        a = starts[c]
        b = starts[c + 1]
        if not _trapezoid_pass(t[a:b], v[a:b], good[a:b], edges, gap_limit[c], 1.0, total[c], cov[c]):
            _unsorted()
    out_sum[:] = total
    out_cov[:] = cov
