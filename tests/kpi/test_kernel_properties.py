"""Hypothesis properties of the increment kernels: chunking, telescoping totals, exact integrals, and
bit-for-bit agreement with a plain per-pair reference implementation.

The kernels take a fast path for runs of up to 64 plain pairs inside one bucket, so the long-series
strategy below makes buckets of hundreds of one-second readings with bad readings, NaN/inf values,
equal times, gaps, rollovers, resets and implausible jumps sprinkled in: both paths and every switch
between them are exercised, and must give exactly what the per-pair rules give.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpi.kernels import (
    EVENT_CHANNEL,
    EVENT_COLUMNS,
    EVENT_KIND,
    EVENT_V0,
    REJECTED,
    RESETS,
    ROLLOVER_WINDOW,
    ROLLOVERS,
    analog_time_weighted,
    carry_over_index,
    multi_channel_analog_time_weighted,
    multi_channel_rate_integral,
    multi_channel_totaliser_increments,
    rate_integral,
    totaliser_increments,
)

ROLLOVER = 1000.0
WINDOW_S = 2.0  # plausibility window of the short series' totaliser
SHORT_GAP_LIMIT = 250.0  # the short series' steps go up to 400 s


@st.composite
def series(draw, strictly_increasing: bool = False, all_good: bool = False):
    """Readings with irregular spacing (some equal times unless strictly increasing) and bad flags."""
    n = draw(st.integers(0, 40))
    low = 0.5 if strictly_increasing else 0.0
    steps = draw(st.lists(st.floats(low, 400.0), min_size=n, max_size=n))
    t = 1_000_000.0 + np.cumsum(np.array(steps, np.float64))
    v = np.array(draw(st.lists(st.floats(-50.0, 50.0), min_size=n, max_size=n)), np.float64)
    flags = [1] * n if all_good else draw(st.lists(st.sampled_from([0, 1, 1, 1]), min_size=n, max_size=n))
    return t, v, np.array(flags, np.uint8)


def edges_for(draw, t: np.ndarray) -> np.ndarray:
    """Random strictly increasing edges, sometimes cutting inside the readings' span."""
    lo = float(t[0]) if t.size else 1_000_000.0
    hi = float(t[-1]) if t.size else lo + 1.0
    cuts = draw(st.lists(st.floats(lo - 500.0, hi + 500.0), min_size=2, max_size=12, unique=True))
    return np.array(sorted(cuts), np.float64)


def run(kind: str, t, v, good, edges):
    q = np.zeros(edges.size - 1)
    c = np.zeros(edges.size - 1)
    counts = np.zeros(3, np.int64)
    events = np.zeros((0, EVENT_COLUMNS))
    if kind == "totaliser":
        counts, events = totaliser_increments(
            t, v, good, edges, ROLLOVER, 0.5, WINDOW_S, SHORT_GAP_LIMIT, q, c
        )
    elif kind == "rate":
        rate_integral(t, v, good, edges, SHORT_GAP_LIMIT, 3600.0, q, c)
    else:
        analog_time_weighted(t, v, good, edges, SHORT_GAP_LIMIT, q, c)
    return q, c, counts, events


@settings(max_examples=300, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["totaliser", "rate", "analog"]))
def test_chunks_overlapping_by_the_carried_reading_give_identical_totals(data, kind):
    t, v, good = data.draw(series())
    if kind == "totaliser":
        v = np.mod(np.cumsum(np.abs(v)), ROLLOVER)  # a counter with increments and rollovers
    edges = edges_for(data.draw, t)
    q1, c1, counts1, events1 = run(kind, t, v, good, edges)

    cuts = sorted(data.draw(st.lists(st.integers(0, max(t.size - 1, 0)), max_size=3)))
    q2, c2, counts2 = np.zeros_like(q1), np.zeros_like(c1), np.zeros(3, np.int64)
    events2 = []
    begin = 0
    for cut in [*cuts, t.size - 1]:
        if cut < begin:
            continue
        end = cut + 1
        s = slice(begin, end)
        q_part, c_part, counts_part, events_part = run(kind, t[s], v[s], good[s], edges)
        q2 += q_part
        c2 += c_part
        counts2 += counts_part
        events2 += events_part.tolist()
        carried = carry_over_index(t[s], v[s], good[s])
        begin = begin + carried if carried >= 0 else end
    if kind == "totaliser":
        assert np.array_equal(counts1, counts2)
        assert events1.tolist() == events2  # every pair once, in order: the same event rows
    # Each chunk has its own outputs here, so the additions are grouped differently: equal to rounding.
    # ``test_chunks_into_shared_outputs_are_bit_identical`` checks the exact form.
    assert np.allclose(q1, q2, rtol=1e-12, atol=1e-9)
    assert np.allclose(c1, c2, rtol=1e-12, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["totaliser", "rate", "analog"]))
def test_chunks_into_shared_outputs_are_bit_identical(data, kind):
    t, v, good = data.draw(series())
    if kind == "totaliser":
        v = np.mod(np.cumsum(np.abs(v)), ROLLOVER)
    edges = edges_for(data.draw, t)
    q1, c1, _, _ = run(kind, t, v, good, edges)
    cut = data.draw(st.integers(0, max(t.size - 1, 0)))
    q2, c2 = np.zeros_like(q1), np.zeros_like(c1)
    first = slice(0, cut + 1)
    carried = carry_over_index(t[first], v[first], good[first])
    second = slice(carried if carried >= 0 else cut + 1, t.size)
    for s in (first, second):
        if kind == "totaliser":
            totaliser_increments(t[s], v[s], good[s], edges, ROLLOVER, 0.5, WINDOW_S, SHORT_GAP_LIMIT, q2, c2)
        elif kind == "rate":
            rate_integral(t[s], v[s], good[s], edges, SHORT_GAP_LIMIT, 3600.0, q2, c2)
        else:
            analog_time_weighted(t[s], v[s], good[s], edges, SHORT_GAP_LIMIT, q2, c2)
    assert np.array_equal(q1, q2)
    assert np.array_equal(c1, c2)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_totaliser_sum_is_last_minus_first_plus_rollovers_plus_the_values_reset_from(data):
    # Per pair, a rollover counts (v1 − v0) + modulus and a reset counts v1 = (v1 − v0) + v0, so the sum
    # telescopes to v_last − v_first + rollovers × modulus + Σ v0 of the resets.
    t, steps, good = data.draw(series(strictly_increasing=True))
    # increments up to 100 = ROLLOVER_WINDOW × ROLLOVER per reading: a wrap between consecutive readings
    # always leaves from ≥ 900 and lands ≤ 100, so it is a rollover. Across bad readings the increments add
    # up and a wrap may land higher: then it is a reset, which the telescoping sum accounts for.
    v = np.mod(500.0 + np.cumsum(np.abs(steps) * 2.0), ROLLOVER)
    if t.size == 0:
        return
    edges = np.linspace(t[0] - 1.0, t[-1] + 1.0, 6)  # all readings inside the buckets
    q = np.zeros(edges.size - 1)
    c = np.zeros(edges.size - 1)
    counts, events = totaliser_increments(t, v, good, edges, ROLLOVER, 0.0, 0.0, SHORT_GAP_LIMIT, q, c)
    usable = np.flatnonzero(good)
    assert counts[REJECTED] == 0  # max_rate 0: no plausibility limit
    if good.all():
        assert counts[RESETS] == 0  # every decrease between consecutive readings is a wrap ≤ 100
    if usable.size < 2:
        assert q.sum() == 0.0 and events.shape == (0, EVENT_COLUMNS)
        return
    first, last = usable[0], usable[-1]
    reset_from = events[events[:, EVENT_KIND] == RESETS, EVENT_V0]
    assert reset_from.size == counts[RESETS]
    expected = v[last] - v[first] + counts[ROLLOVERS] * ROLLOVER + reset_from.sum()
    assert np.isclose(q.sum(), expected, rtol=1e-12, atol=1e-9)
    # coverage: the seconds of the pairs of usable readings no longer than the gap limit
    dt = np.diff(t[usable])
    assert np.isclose(c.sum(), dt[dt <= SHORT_GAP_LIMIT].sum(), rtol=1e-12, atol=1e-9)
    if good.all():
        # every wrap of the true counter is seen: the true total is Σ increments.
        assert np.isclose(q.sum(), np.abs(steps[1:]).sum() * 2.0, rtol=1e-9, atol=1e-6)


def exact_bucket_integrals(t: np.ndarray, v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Exact integral of the piecewise-linear function through (t, v) over each bucket, by np.interp."""
    out = []
    for lo, hi in itertools.pairwise(edges):
        a, b = max(lo, t[0]), min(hi, t[-1])
        if b <= a:
            out.append(0.0)
            continue
        x = np.unique(np.concatenate([[a, b], t[(t > a) & (t < b)]]))
        out.append(float(np.trapezoid(np.interp(x, t, v), x)))
    return np.array(out)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_trapezoid_equals_the_exact_integral_of_piecewise_linear_input(data):
    t, v, good = data.draw(series(strictly_increasing=True, all_good=True))
    if t.size < 2:
        return
    edges = edges_for(data.draw, t)
    q = np.zeros(edges.size - 1)
    c = np.zeros(edges.size - 1)
    rate_integral(t, v, good, edges, np.inf, 1.0, q, c)
    np.testing.assert_allclose(q, exact_bucket_integrals(t, v, edges), rtol=1e-9, atol=1e-6)
    overlap = np.clip(np.minimum(edges[1:], t[-1]) - np.maximum(edges[:-1], t[0]), 0.0, None)
    np.testing.assert_allclose(c, overlap, rtol=1e-12, atol=1e-6)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_totaliser_buckets_follow_the_linearly_interpolated_counter(data):
    t, steps, good = data.draw(series(strictly_increasing=True, all_good=True))
    if t.size < 2:
        return
    unwrapped = 900.0 + np.cumsum(np.abs(steps))
    v = np.mod(unwrapped, ROLLOVER)
    edges = edges_for(data.draw, t)
    q = np.zeros(edges.size - 1)
    c = np.zeros(edges.size - 1)
    # increments up to 50 < 0.1 × ROLLOVER: every wrap is a rollover
    totaliser_increments(t, v, good, edges, ROLLOVER, 0.0, 0.0, np.inf, q, c)
    lo = np.clip(edges[:-1], t[0], t[-1])
    hi = np.clip(edges[1:], t[0], t[-1])
    expected = np.interp(hi, t, unwrapped) - np.interp(lo, t, unwrapped)
    np.testing.assert_allclose(q, expected, rtol=1e-9, atol=1e-6)


# --- long series: the run fast path against a per-pair reference ------------------------------------

MAX_RATE = 5.0  # counter units per second
WINDOW = 1.5  # s added to dt before the plausibility limit: equal times may carry up to 7.5 units
GAP_LIMIT = 30.0


@st.composite
def long_series(draw, n_max: int = 700):
    """Mostly plain one-second readings (runs of far more than 64 pairs per bucket) with every kind of
    irregularity at a drawn density, from a seeded generator (hypothesis draws the seed and the mix)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, n_max))
    odd = draw(st.sampled_from([0.0, 0.002, 0.01, 0.05]))  # density of each kind of irregularity
    dt = rng.uniform(0.5, 1.5, n) if draw(st.booleans()) else np.ones(n)
    dt[rng.random(n) < odd] = 0.0  # equal times
    gaps = rng.random(n) < odd
    dt[gaps] += rng.uniform(GAP_LIMIT, 400.0, gaps.sum())
    t = 1_000_000.0 + np.cumsum(dt)
    if draw(st.booleans()):
        t = np.round(t * 1000.0) / 1000.0  # millisecond timestamps: edges and readings coincide
    steps = rng.uniform(0.0, 3.0, n)
    jumps = rng.random(n) < odd
    steps[jumps] = rng.uniform(-600.0, 600.0, jumps.sum())  # resets, and jumps over MAX_RATE
    counter = np.mod(500.0 + np.cumsum(steps), ROLLOVER)
    rate = rng.uniform(-50.0, 500.0, n)
    good = (rng.random(n) >= odd).astype(np.uint8)
    good[(rng.random(n) < odd) & (good == 1)] = 7  # any non-zero flag is good
    for values in (counter, rate):
        for bad in (np.nan, np.inf, -np.inf):
            values[rng.random(n) < odd / 3] = bad
        values[rng.random(n) < odd / 10] = 1e308  # finite, but a run's sum overflows
    t[rng.random(n) < odd / 3] = np.nan  # a NaN time passes the sortedness check: a bad reading
    lo = 1_000_000.0 + rng.uniform(-100.0, 100.0)
    width = draw(st.sampled_from([7.0, 60.0, 100.0, 300.0, 900.0]))
    span = max(float(np.nanmax(t)) - lo, 0.0) if n and not np.isnan(t).all() else 0.0
    edges = lo + width * np.arange(min(int(span / width) + 3, 40))
    if draw(st.integers(0, 9)) == 0:
        edges[-1] = np.inf
    return t, counter, rate, good, edges


def usable_indices(t, v, good) -> list[int]:
    return [i for i in range(len(t)) if good[i] != 0 and np.isfinite(t[i]) and np.isfinite(v[i])]


def reference_totaliser(t, v, good, edges, rollover, max_rate, window=WINDOW, gap_limit=GAP_LIMIT):
    """The totaliser rules pair by pair, over every bucket: slow and plainly right. Returns the quantity,
    coverage, counts and event rows (lists in ``EVENT_*`` column order)."""
    edges = edges.tolist()  # Python floats: the same IEEE arithmetic, and overflow to inf without warnings
    nb = len(edges) - 1
    qty, cov, counts, events = [0.0] * nb, [0.0] * nb, [0, 0, 0], []
    limit = max_rate if max_rate > 0.0 else math.inf  # inf × 0 is NaN: never exceeded
    top, bottom = (1.0 - ROLLOVER_WINDOW) * rollover, ROLLOVER_WINDOW * rollover
    for a, b in itertools.pairwise(usable_indices(t, v, good)):
        t0, t1, v0, v1 = float(t[a]), float(t[b]), float(v[a]), float(v[b])
        dt, delta = t1 - t0, v1 - v0
        kind = None
        if delta < 0.0:
            if rollover > 0.0 and top <= v0 <= rollover and v1 <= bottom:  # top tenth → bottom tenth
                kind = ROLLOVERS
                delta += rollover
            else:  # a reset or a new meter: it counted v1 from zero since v0
                kind = RESETS
                delta = max(v1, 0.0)
        if delta > limit * (dt + window):
            counts[REJECTED] += 1
            events.append([REJECTED, t0, t1, v0, v1, delta, 0.0])
            continue
        if kind is not None:
            counts[kind] += 1
            events.append([kind, t0, t1, v0, v1, delta, 0.0])
        covered = not dt > gap_limit
        for k in range(nb):
            if dt > 0.0:
                lo, hi = max(t0, edges[k]), min(t1, edges[k + 1])
                if hi > lo:
                    qty[k] += delta * ((hi - lo) / dt)
                    if covered:
                        cov[k] += hi - lo
            elif edges[k] <= t1 < edges[k + 1]:
                qty[k] += delta
    return np.array(qty), np.array(cov), np.array(counts), events


def reference_trapezoid(t, v, good, edges, gap_limit, scale):
    """The trapezoid rules pair by pair (consecutive USABLE readings: across bad ones), over every bucket,
    the value at an edge linearly interpolated."""
    edges = edges.tolist()
    nb = len(edges) - 1
    qty, cov = [0.0] * nb, [0.0] * nb
    for a, b in itertools.pairwise(usable_indices(t, v, good)):
        t0, t1, v0, v1 = float(t[a]), float(t[b]), float(v[a]), float(v[b])
        dt = t1 - t0
        if not dt > 0.0 or dt > gap_limit:
            continue
        for k in range(nb):
            lo, hi = max(t0, edges[k]), min(t1, edges[k + 1])
            if hi > lo:
                r_lo = v0 + (v1 - v0) * ((lo - t0) / dt) if lo > t0 else v0
                r_hi = v0 + (v1 - v0) * ((hi - t0) / dt) if hi < t1 else v1
                qty[k] += 0.5 * (r_lo + r_hi) * (hi - lo) * scale
                cov[k] += hi - lo
    return np.array(qty), np.array(cov)


def kernel(kind: str, t, v, good, edges, out_qty, out_cov, rollover=ROLLOVER, max_rate=MAX_RATE):
    """The kernel of ``kind``; ``(counts, events)`` for the totaliser, else None."""
    if kind == "totaliser":
        return totaliser_increments(
            t, v, good, edges, rollover, max_rate, WINDOW, GAP_LIMIT, out_qty, out_cov
        )
    if kind == "rate":
        rate_integral(t, v, good, edges, GAP_LIMIT, 3600.0, out_qty, out_cov)
    else:
        analog_time_weighted(t, v, good, edges, GAP_LIMIT, out_qty, out_cov)
    return None


def values_for(kind: str, counter: np.ndarray, rate: np.ndarray) -> np.ndarray:
    return counter if kind == "totaliser" else rate


@settings(max_examples=200, deadline=None)
@given(
    readings=long_series(),
    kind=st.sampled_from(["totaliser", "rate", "analog"]),
    rollover=st.sampled_from([0.0, ROLLOVER]),
    max_rate=st.sampled_from([0.0, MAX_RATE]),  # 0: no limit, so +inf and overflowing deltas reach a run
)
def test_kernels_equal_the_per_pair_rules_bit_for_bit(readings, kind, rollover, max_rate):
    # Same IEEE operations in the same order per bucket: equal to the last bit, NaN and inf included.
    t, counter, rate, good, edges = readings
    v = values_for(kind, counter, rate)
    q = np.zeros(edges.size - 1)
    c = np.zeros(edges.size - 1)
    out = kernel(kind, t, v, good, edges, q, c, rollover, max_rate)
    if kind == "totaliser":
        counts, events = out
        q_ref, c_ref, counts_ref, events_ref = reference_totaliser(t, v, good, edges, rollover, max_rate)
        assert counts.tolist() == counts_ref.tolist()
        assert events.tolist() == events_ref  # NaN cannot occur: events come from usable readings only
    else:
        scale = 1.0 / 3600.0 if kind == "rate" else 1.0
        q_ref, c_ref = reference_trapezoid(t, v, good, edges, GAP_LIMIT, scale)
    assert np.array_equal(q, q_ref, equal_nan=True), np.flatnonzero(q != q_ref)
    assert np.array_equal(c, c_ref, equal_nan=True), np.flatnonzero(c != c_ref)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["totaliser", "rate", "analog"]))
def test_long_series_in_chunks_into_shared_outputs_are_bit_identical(data, kind):
    t, counter, rate, good, edges = data.draw(long_series())
    v = values_for(kind, counter, rate)
    max_rate = data.draw(st.sampled_from([0.0, MAX_RATE]))
    q1, c1 = np.zeros(edges.size - 1), np.zeros(edges.size - 1)
    out1 = kernel(kind, t, v, good, edges, q1, c1, ROLLOVER, max_rate)
    cuts = sorted(data.draw(st.lists(st.integers(0, max(t.size - 1, 0)), max_size=4)))
    q2, c2 = np.zeros_like(q1), np.zeros_like(c1)
    counts2 = np.zeros(3, np.int64)
    events2 = []
    begin = 0
    for cut in [*cuts, t.size - 1]:
        if cut < begin:
            continue
        chunk = slice(begin, cut + 1)
        out = kernel(kind, t[chunk], v[chunk], good[chunk], edges, q2, c2, ROLLOVER, max_rate)
        if out is not None:
            counts2 += out[0]
            events2 += out[1].tolist()
        carried = carry_over_index(t[chunk], v[chunk], good[chunk])
        begin = begin + carried if carried >= 0 else cut + 1
    assert np.array_equal(q1, q2, equal_nan=True)
    assert np.array_equal(c1, c2, equal_nan=True)
    if out1 is not None:
        assert out1[0].tolist() == counts2.tolist()
        assert out1[1].tolist() == events2


@settings(max_examples=60, deadline=None)
@given(
    channels=st.lists(long_series(n_max=300), max_size=4),
    kind=st.sampled_from(["totaliser", "rate", "analog"]),
)
def test_batch_api_equals_one_call_per_channel(channels, kind):
    edges = channels[0][4] if channels else np.array([0.0, 1.0])
    parts = [(t, values_for(kind, counter, rate), good) for t, counter, rate, good, _ in channels]
    t = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    v = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    good = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.uint8)
    starts = np.concatenate([[0], np.cumsum([p[0].size for p in parts])]).astype(np.int64)
    n_ch, nb = len(parts), edges.size - 1
    q, c = np.zeros((n_ch, nb)), np.zeros((n_ch, nb))
    if kind == "totaliser":
        counts, events = multi_channel_totaliser_increments(
            t, v, good, starts, edges, np.full(n_ch, ROLLOVER), np.full(n_ch, MAX_RATE),
            np.full(n_ch, WINDOW), np.full(n_ch, GAP_LIMIT), q, c,
        )  # fmt: skip
    elif kind == "rate":
        multi_channel_rate_integral(
            t, v, good, starts, edges, np.full(n_ch, GAP_LIMIT), np.full(n_ch, 3600.0), q, c
        )
    else:
        multi_channel_analog_time_weighted(t, v, good, starts, edges, np.full(n_ch, GAP_LIMIT), q, c)
    for ch, (t_c, v_c, good_c) in enumerate(parts):
        q1, c1 = np.zeros(nb), np.zeros(nb)
        one = kernel(kind, t_c, v_c, good_c, edges, q1, c1)
        assert np.array_equal(q[ch], q1, equal_nan=True) and np.array_equal(c[ch], c1, equal_nan=True)
        if kind == "totaliser":
            assert counts[ch].tolist() == one[0].tolist()
            # the channel's own rows, in order, named by its index in the batch
            expected = one[1].copy()
            expected[:, EVENT_CHANNEL] = ch
            assert events[events[:, EVENT_CHANNEL] == ch].tolist() == expected.tolist()
    if kind == "totaliser":
        assert events.shape[0] == counts.sum()


@settings(max_examples=150, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["totaliser", "rate", "analog"]))
def test_any_decrease_of_t_raises_and_leaves_the_outputs_untouched(data, kind):
    # Sortedness is checked inside the pass (in runs and by the general rules), on copies of the outputs.
    t, counter, rate, good, edges = data.draw(long_series())
    finite = np.flatnonzero(np.isfinite(t))
    if finite.size < 2:
        return
    at = data.draw(st.sampled_from(finite[1:].tolist()))
    before = t[:at][np.isfinite(t[:at])]
    t[at] = before[-1] - data.draw(st.sampled_from([1e-3, 1.0, 500.0]))
    if at > 0 and np.isnan(t[at - 1]):
        return  # a NaN hides the decrease from every comparison, as the contract allows
    v = values_for(kind, counter, rate)
    q = np.full(edges.size - 1, 3.0)
    c = np.full(edges.size - 1, 4.0)
    with pytest.raises(ValueError, match="sorted"):
        kernel(kind, t, v, good, edges, q, c)
    assert (q == 3.0).all() and (c == 4.0).all()
