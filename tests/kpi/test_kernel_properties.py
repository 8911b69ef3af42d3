"""Hypothesis properties of the increment kernels: chunking, telescoping totals, exact integrals."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kpi.kernels import (
    RESETS,
    ROLLOVERS,
    analog_time_weighted,
    carry_over_index,
    rate_integral,
    totaliser_increments,
)

ROLLOVER = 1000.0


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
    if kind == "totaliser":
        counts = totaliser_increments(t, v, good, edges, ROLLOVER, 0.5, q, c)
    elif kind == "rate":
        rate_integral(t, v, good, edges, 250.0, 3600.0, q, c)
    else:
        analog_time_weighted(t, v, good, edges, 250.0, q, c)
    return q, c, counts


@settings(max_examples=300, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["totaliser", "rate", "analog"]))
def test_chunks_overlapping_by_the_carried_reading_give_identical_totals(data, kind):
    t, v, good = data.draw(series())
    if kind == "totaliser":
        v = np.mod(np.cumsum(np.abs(v)), ROLLOVER)  # a counter with increments and rollovers
    edges = edges_for(data.draw, t)
    q1, c1, counts1 = run(kind, t, v, good, edges)

    cuts = sorted(data.draw(st.lists(st.integers(0, max(t.size - 1, 0)), max_size=3)))
    q2, c2, counts2 = np.zeros_like(q1), np.zeros_like(c1), np.zeros(3, np.int64)
    begin = 0
    for cut in [*cuts, t.size - 1]:
        if cut < begin:
            continue
        end = cut + 1
        s = slice(begin, end)
        q_part, c_part, counts_part = run(kind, t[s], v[s], good[s], edges)
        q2 += q_part
        c2 += c_part
        counts2 += counts_part
        carried = carry_over_index(t[s], v[s], good[s])
        begin = begin + carried if carried >= 0 else end
    if kind == "totaliser":
        assert np.array_equal(counts1, counts2)
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
    q1, c1, _ = run(kind, t, v, good, edges)
    cut = data.draw(st.integers(0, max(t.size - 1, 0)))
    q2, c2 = np.zeros_like(q1), np.zeros_like(c1)
    first = slice(0, cut + 1)
    carried = carry_over_index(t[first], v[first], good[first])
    second = slice(carried if carried >= 0 else cut + 1, t.size)
    for s in (first, second):
        if kind == "totaliser":
            totaliser_increments(t[s], v[s], good[s], edges, ROLLOVER, 0.5, q2, c2)
        elif kind == "rate":
            rate_integral(t[s], v[s], good[s], edges, 250.0, 3600.0, q2, c2)
        else:
            analog_time_weighted(t[s], v[s], good[s], edges, 250.0, q2, c2)
    assert np.array_equal(q1, q2)
    assert np.array_equal(c1, c2)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_totaliser_sum_is_last_minus_first_plus_rollovers(data):
    t, steps, good = data.draw(series(strictly_increasing=True))
    v = np.mod(500.0 + np.cumsum(np.abs(steps) * 5.0), ROLLOVER)  # increments up to 250 < ROLLOVER
    if t.size == 0:
        return
    edges = np.linspace(t[0] - 1.0, t[-1] + 1.0, 6)  # all readings inside the buckets
    q = np.zeros(edges.size - 1)
    c = np.zeros(edges.size - 1)
    counts = totaliser_increments(t, v, good, edges, ROLLOVER, 0.0, q, c)
    usable = np.flatnonzero(good)
    assert counts[RESETS] == 0  # max_rate 0 (no limit): every decrease is a rollover
    if usable.size < 2:
        assert q.sum() == 0.0
        return
    first, last = usable[0], usable[-1]
    expected = v[last] - v[first] + counts[ROLLOVERS] * ROLLOVER
    assert np.isclose(q.sum(), expected, rtol=1e-12, atol=1e-9)
    assert np.isclose(c.sum(), t[last] - t[first], rtol=1e-12, atol=1e-9)
    if good.all():
        # every wrap of the true counter is seen: the true total is Σ increments.
        assert np.isclose(q.sum(), np.abs(steps[1:]).sum() * 5.0, rtol=1e-9, atol=1e-6)


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
    totaliser_increments(t, v, good, edges, ROLLOVER, 0.0, q, c)
    lo = np.clip(edges[:-1], t[0], t[-1])
    hi = np.clip(edges[1:], t[0], t[-1])
    expected = np.interp(hi, t, unwrapped) - np.interp(lo, t, unwrapped)
    np.testing.assert_allclose(q, expected, rtol=1e-9, atol=1e-6)
