"""Hand-computed cases for the increment kernels: the arithmetic is written next to each expectation."""

from __future__ import annotations

import numpy as np
import pytest

from kpi.kernels import (
    REJECTED,
    RESETS,
    ROLLOVERS,
    analog_time_weighted,
    carry_over_index,
    multi_channel_analog_time_weighted,
    multi_channel_rate_integral,
    multi_channel_totaliser_increments,
    rate_integral,
    totaliser_increments,
)

NO_LIMIT = 0.0  # max_rate ≤ 0: no plausibility limit


def arrays(t: list[float], v: list[float], good: list[int] | None = None):
    g = np.ones(len(t), np.uint8) if good is None else np.array(good, np.uint8)
    return np.array(t, np.float64), np.array(v, np.float64), g


def outs(edges: list[float]):
    e = np.array(edges, np.float64)
    return e, np.zeros(e.size - 1), np.zeros(e.size - 1)


def totalise(t, v, good, edges, rollover=0.0, max_rate=NO_LIMIT):
    e, q, c = outs(edges)
    counts = totaliser_increments(*arrays(t, v, good), e, rollover, max_rate, q, c)
    return q, c, counts


def test_pair_straddling_an_edge_splits_25_75_exactly():
    # 8 units over 0..400 s, edge at 100 s: 100/400 = 25 % → 2.0 before, 300/400 = 75 % → 6.0 after.
    q, c, counts = totalise([0.0, 400.0], [1000.0, 1008.0], None, [-300.0, 100.0, 700.0])
    assert q.tolist() == [8.0 * 0.25, 8.0 * 0.75]
    assert c.tolist() == [100.0, 300.0]
    assert counts.tolist() == [0, 0, 0]


def test_rollover_of_a_uint32_kg_counter_scaled_to_tonnes():
    # Demo clinker counter: uint32 kg × 0.001 → t, rolls over at 2^32 kg = 4 294 967.296 t.
    # 4 294 966 000 kg → 2 704 kg: 1 296 kg to the wrap + 2 704 kg after it = 4 000 kg = 4.0 t in 60 s.
    rollover = 2**32 * 0.001
    q, c, counts = totalise([0.0, 60.0], [4_294_966.0, 2.704], None, [0.0, 900.0], rollover, 0.1)
    assert q[0] == (2.704 - 4_294_966.0) + rollover  # same float operations as the kernel: exact
    assert q[0] == pytest.approx(4.0, abs=1e-6)
    assert c.tolist() == [60.0]
    assert counts[ROLLOVERS] == 1 and counts[RESETS] == 0


def test_decrease_without_rollover_is_a_reset_and_counting_continues_from_the_new_value():
    # 100 → 110 (+10 over 0..100 s); 110 → 5 reset, nothing and no coverage over 100..200 s; 5 → 8 (+3).
    q, c, counts = totalise([0.0, 100.0, 200.0, 300.0], [100.0, 110.0, 5.0, 8.0], None, [0.0, 150.0, 300.0])
    assert q.tolist() == [10.0, 3.0]
    assert c.tolist() == [100.0, 100.0]  # bucket 0: 0..100 covered, 100..150 not; bucket 1: 200..300
    assert counts.tolist() == [0, 1, 0]


def test_rollover_must_be_plausible_else_reset():
    # rollover 1000, max 1 unit/s, dt 100 s → at most 100 units.
    # 990 → 50: −940 + 1000 = 60 ≤ 100 → rollover, 60 counted.
    q, _, counts = totalise([0.0, 100.0], [990.0, 50.0], None, [0.0, 100.0], 1000.0, 1.0)
    assert q.tolist() == [60.0] and counts.tolist() == [1, 0, 0]
    # 900 → 50: −850 + 1000 = 150 > 100 → a meter reset, nothing counted.
    q, c, counts = totalise([0.0, 100.0], [900.0, 50.0], None, [0.0, 100.0], 1000.0, 1.0)
    assert q.tolist() == [0.0] and c.tolist() == [0.0] and counts.tolist() == [0, 1, 0]


def test_implausible_jump_is_rejected_and_counting_continues_from_the_new_value():
    # max 1 unit/s: +10 in 100 s ok; +4990 in 100 s > 100 rejected; +10 in 100 s ok → 20 over 200 s covered.
    q, c, counts = totalise(
        [0.0, 100.0, 200.0, 300.0], [0.0, 10.0, 5000.0, 5010.0], None, [0.0, 300.0], 0.0, 1.0
    )
    assert q.tolist() == [10.0 + 10.0]
    assert c.tolist() == [100.0 + 100.0]
    assert counts[REJECTED] == 1


def test_totaliser_loses_nothing_across_bad_readings():
    # The bad 999 is skipped: 0 → 20 over 0..200 s, split 10 / 10 at the 100 s edge.
    q, c, _ = totalise([0.0, 100.0, 200.0], [0.0, 999.0, 20.0], [1, 0, 1], [0.0, 100.0, 200.0])
    assert q.tolist() == [10.0, 10.0]
    assert c.tolist() == [100.0, 100.0]


def test_readings_outside_the_edges_contribute_only_their_overlap():
    # 0 → 8 over 0..400 s; buckets cover 100..200 s only: 100/400 × 8 = 2.0.
    q, c, _ = totalise([0.0, 400.0], [0.0, 8.0], None, [100.0, 200.0])
    assert q.tolist() == [2.0] and c.tolist() == [100.0]


def test_equal_timestamps_put_the_delta_in_their_bucket_without_coverage():
    q, c, _ = totalise([50.0, 50.0, 150.0], [0.0, 2.0, 3.0], None, [0.0, 100.0, 200.0])
    # pair (50, 50): +2 in bucket 0, no coverage; pair 50..150: +1 split 50/50.
    assert q.tolist() == [2.0 + 0.5, 0.5]
    assert c.tolist() == [50.0, 50.0]


def integrate(t, v, good, edges, gap_limit=np.inf, rate_seconds=1.0):
    e, q, c = outs(edges)
    rate_integral(*arrays(t, v, good), e, gap_limit, rate_seconds, q, c)
    return q, c


def test_rate_integral_splits_exactly_at_an_edge():
    # v rises 0 → 8 over 0..400 s (slope 0.02/s); at the 100 s edge v = 2.
    # bucket 0: (0 + 2)/2 × 100 = 100; bucket 1: (2 + 8)/2 × 300 = 1500.
    q, c = integrate([0.0, 400.0], [0.0, 8.0], None, [0.0, 100.0, 400.0])
    assert q.tolist() == [100.0, 1500.0]
    assert c.tolist() == [100.0, 300.0]


def test_kw_to_kwh():
    # 3600 kW for 1800 s = 3600 × 0.5 h = 1800 kWh, 900 kWh per 15-min bucket.
    q, c = integrate([0.0, 1800.0], [3600.0, 3600.0], None, [0.0, 900.0, 1800.0], np.inf, 3600.0)
    assert q.tolist() == [900.0, 900.0]
    assert c.tolist() == [900.0, 900.0]


def test_gap_over_the_limit_is_missing_not_zero():
    # 60 t/h; pairs 0..60 s and 1000..1060 s each give 60 × 60/3600 = 1.0 t; the 60..1000 s pair
    # (940 s > 300 s limit) gives nothing and no coverage, so each 900 s bucket is only 60 s covered.
    q, c = integrate([0.0, 60.0, 1000.0, 1060.0], [60.0] * 4, None, [0.0, 900.0, 1800.0], 300.0, 3600.0)
    assert q.tolist() == [1.0, 1.0]
    assert c.tolist() == [60.0, 60.0]


def test_pair_with_a_bad_endpoint_contributes_nothing():
    # Readings at 0, 100, 200, 300 s, the one at 200 bad: only 0..100 counts: (10 + 10)/2 × 100 = 1000.
    q, c = integrate([0.0, 100.0, 200.0, 300.0], [10.0] * 4, [1, 1, 0, 1], [0.0, 300.0])
    assert q.tolist() == [1000.0] and c.tolist() == [100.0]


def test_non_finite_value_is_treated_as_bad():
    q, c = integrate([0.0, 100.0, 200.0], [10.0, np.nan, 10.0], None, [0.0, 200.0])
    assert q.tolist() == [0.0] and c.tolist() == [0.0]


def test_analog_time_weighted_mean():
    # 10 → 20 over 0..100 s, 20 → 20 over 100..200 s: (10 + 20)/2 × 100 + 20 × 100 = 3500;
    # mean 3500 / 200 s = 17.5.
    e, s, c = outs([0.0, 200.0])
    analog_time_weighted(*arrays([0.0, 100.0, 200.0], [10.0, 20.0, 20.0]), e, np.inf, s, c)
    assert s.tolist() == [3500.0] and c.tolist() == [200.0]
    assert s[0] / c[0] == 17.5


def test_outputs_accumulate():
    e, q, c = outs([0.0, 100.0])
    t, v, g = arrays([0.0, 100.0], [0.0, 5.0])
    totaliser_increments(t, v, g, e, 0.0, 0.0, q, c)
    totaliser_increments(t, v, g, e, 0.0, 0.0, q, c)
    assert q.tolist() == [5.0 + 5.0] and c.tolist() == [100.0 + 100.0]


def test_unsorted_times_and_wrong_output_length_raise():
    e, q, c = outs([0.0, 100.0])
    with pytest.raises(ValueError, match="sorted"):
        totaliser_increments(*arrays([10.0, 0.0], [0.0, 1.0]), e, 0.0, 0.0, q, c)
    with pytest.raises(ValueError, match="len\\(edges\\) - 1"):
        rate_integral(*arrays([0.0, 10.0], [0.0, 1.0]), e, np.inf, 1.0, np.zeros(2), c)


def test_carry_over_index_is_the_last_usable_reading():
    t, v, g = arrays([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, np.nan, 4.0], [1, 1, 1, 0])
    assert carry_over_index(t, v, g) == 1  # index 2 is NaN, index 3 is bad
    assert carry_over_index(t[:0], v[:0], g[:0]) == -1


def test_multi_channel_batch_matches_hand_values():
    # Channel 0: counter 0 → 8 over 0..400 s, edge at 300 s: 8 × 300/400 and 8 × 100/400.
    # Channel 1: counter 5 → 7 over 100..300 s, all in bucket 0.
    t = np.array([0.0, 400.0, 100.0, 300.0])
    v = np.array([0.0, 8.0, 5.0, 7.0])
    good = np.ones(4, np.uint8)
    starts = np.array([0, 2, 4], np.int64)
    edges = np.array([0.0, 300.0, 600.0])
    q, c = np.zeros((2, 2)), np.zeros((2, 2))
    counts = multi_channel_totaliser_increments(t, v, good, starts, edges, np.zeros(2), np.zeros(2), q, c)
    assert q.tolist() == [[8.0 * 300 / 400, 8.0 * 100 / 400], [2.0, 0.0]]
    assert c.tolist() == [[300.0, 100.0], [200.0, 0.0]]
    assert counts.shape == (2, 3)

    # Rates: channel 0 constant 36 kW, channel 1 constant 3.6 kW; rate_seconds 3600 → kWh.
    v_rate = np.array([36.0, 36.0, 3.6, 3.6])
    q, c = np.zeros((2, 2)), np.zeros((2, 2))
    multi_channel_rate_integral(t, v_rate, good, starts, edges, np.full(2, np.inf), np.full(2, 3600.0), q, c)
    np.testing.assert_allclose(
        q, [[36.0 * 300 / 3600, 36.0 * 100 / 3600], [3.6 * 200 / 3600, 0.0]], rtol=1e-12
    )

    s, c = np.zeros((2, 2)), np.zeros((2, 2))
    multi_channel_analog_time_weighted(t, v_rate, good, starts, edges, np.full(2, np.inf), s, c)
    np.testing.assert_allclose(s, [[36.0 * 300, 36.0 * 100], [3.6 * 200, 0.0]], rtol=1e-12)
    assert c.tolist() == [[300.0, 100.0], [200.0, 0.0]]


def test_multi_channel_rejects_inconsistent_offsets():
    t = np.array([0.0, 1.0])
    with pytest.raises(ValueError, match="starts"):
        multi_channel_rate_integral(
            t, t, np.ones(2, np.uint8), np.array([0, 1], np.int64), np.array([0.0, 1.0]),
            np.ones(1), np.ones(1), np.zeros((1, 1)), np.zeros((1, 1)),
        )  # fmt: skip


def test_a_nan_first_timestamp_is_one_bad_reading_not_the_end_of_the_series():
    # The NaN reading is bad: pairs 0..100 and 100..200 s count, 10 × 100 each (the pointer is placed by
    # the first pair that counts; it was once placed by t[0] and a NaN there lost the whole series).
    q, c = integrate([np.nan, 0.0, 100.0, 200.0], [1.0, 10.0, 10.0, 10.0], None, [0.0, 100.0, 200.0])
    assert q.tolist() == [1000.0, 1000.0] and c.tolist() == [100.0, 100.0]


def test_a_decrease_deep_inside_a_run_raises_and_leaves_every_output_untouched():
    # 1000 one-second readings in one bucket (runs of 64 plain pairs), t steps back once at reading 700.
    t = np.arange(1000.0)
    t[700] = 650.5
    v = np.arange(1000.0)
    good = np.ones(1000, np.uint8)
    edges = np.array([0.0, 2000.0])
    starts = np.array([0, 500, 1000], np.int64)
    calls = [
        lambda q, c: totaliser_increments(t, v, good, edges, 0.0, 0.0, q[0], c[0]),
        lambda q, c: rate_integral(t, v, good, edges, np.inf, 3600.0, q[0], c[0]),
        lambda q, c: analog_time_weighted(t, v, good, edges, np.inf, q[0], c[0]),
        lambda q, c: multi_channel_totaliser_increments(
            t, v, good, starts, edges, np.zeros(2), np.zeros(2), q, c
        ),
        lambda q, c: multi_channel_rate_integral(
            t, v, good, starts, edges, np.full(2, np.inf), np.ones(2), q, c
        ),
        lambda q, c: multi_channel_analog_time_weighted(t, v, good, starts, edges, np.full(2, np.inf), q, c),
    ]
    for call in calls:
        q, c = np.full((2, 1), 3.0), np.full((2, 1), 4.0)
        with pytest.raises(ValueError, match="sorted"):
            call(q, c)
        assert (q == 3.0).all() and (c == 4.0).all()


def test_a_non_finite_value_inside_a_run_is_a_bad_reading():
    # 200 readings of 10 kW in one bucket, reading 100 is +inf: pairs 99..100 and 100..101 do not count.
    t = np.arange(200.0)
    v = np.full(200, 10.0)
    v[100] = np.inf
    q, c = integrate(t.tolist(), v.tolist(), None, [0.0, 1000.0])
    assert q.tolist() == [10.0 * 197] and c.tolist() == [197.0]
    # a counter without rate limit: the +inf reading is skipped, 99 → 101 pairs across it
    counter = np.arange(200.0)
    counter[100] = np.inf
    q, c, _ = totalise(t.tolist(), counter.tolist(), None, [0.0, 1000.0])
    assert q.tolist() == [199.0] and c.tolist() == [199.0]


def test_benchmark_baselines_agree_with_the_kernels():
    # The numpy and pandas implementations in benchmarks/kpi_kernels.py follow the same rules by other
    # means (cumulative/segment sums, edges inserted as rows): an independent check of the kernels, and
    # of the baselines whose speed the benchmark compares with theirs.
    from benchmarks import kpi_kernels as bench

    for w in (bench.workload("one", 1, 30_000), bench.workload("batch", 7, 4_000)):
        for kind in bench.KINDS.values():
            kind.check_baselines(w)
