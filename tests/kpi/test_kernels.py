"""Hand-computed cases for the increment kernels: the arithmetic is written next to each expectation."""

from __future__ import annotations

import numpy as np
import pytest

from kpi.kernels import (
    EVENT_CHANNEL,
    EVENT_COLUMNS,
    EVENT_KIND,
    EVENT_QTY,
    EVENT_T0,
    EVENT_T1,
    EVENT_V0,
    EVENT_V1,
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
NO_WINDOW = 0.0  # window_s = 0: the plausibility limit is max_rate × dt exactly
NO_GAP_LIMIT = np.inf  # every pair of a counter counts as coverage


def arrays(t: list[float], v: list[float], good: list[int] | None = None):
    g = np.ones(len(t), np.uint8) if good is None else np.array(good, np.uint8)
    return np.array(t, np.float64), np.array(v, np.float64), g


def outs(edges: list[float]):
    e = np.array(edges, np.float64)
    return e, np.zeros(e.size - 1), np.zeros(e.size - 1)


def totalise(t, v, good, edges, rollover=0.0, max_rate=NO_LIMIT, window_s=NO_WINDOW, gap_limit=NO_GAP_LIMIT):
    e, q, c = outs(edges)
    counts, _ = totaliser_increments(*arrays(t, v, good), e, rollover, max_rate, window_s, gap_limit, q, c)
    return q, c, counts


def totalise_events(
    t, v, good, edges, rollover=0.0, max_rate=NO_LIMIT, window_s=NO_WINDOW, gap_limit=NO_GAP_LIMIT
):
    """As ``totalise``, with the event rows as lists in the ``EVENT_*`` column order checked here."""
    columns = (EVENT_KIND, EVENT_T0, EVENT_T1, EVENT_V0, EVENT_V1, EVENT_QTY, EVENT_CHANNEL)
    assert columns == tuple(range(EVENT_COLUMNS))
    e, q, c = outs(edges)
    counts, events = totaliser_increments(
        *arrays(t, v, good), e, rollover, max_rate, window_s, gap_limit, q, c
    )
    assert events.shape == (counts.sum(), EVENT_COLUMNS)  # one row per rollover, reset and rejected jump
    return q, c, counts, events.tolist()


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
    # 4 294 966 ≥ 0.9 × 4 294 967.296 = 3 865 470.6 and 2.704 ≤ 0.1 × rollover = 429 496.7: a wrap.
    q, c, counts, events = totalise_events(
        [0.0, 60.0], [4_294_966.0, 2.704], None, [0.0, 900.0], rollover, 0.1
    )
    assert q[0] == (2.704 - 4_294_966.0) + rollover  # same float operations as the kernel: exact
    assert q[0] == pytest.approx(4.0, abs=1e-6)
    assert c.tolist() == [60.0]
    assert counts[ROLLOVERS] == 1 and counts[RESETS] == 0
    # the event row: kind, the pair (t0, t1, v0, v1), the quantity it stands for, channel 0
    assert events == [[ROLLOVERS, 0.0, 60.0, 4_294_966.0, 2.704, q[0], 0.0]]


def test_decrease_without_rollover_is_a_reset_that_counts_the_new_value_from_zero():
    # 100 → 110 (+10 over 0..100 s); 110 → 5 a reset: the meter counted 5 from zero since the 110 reading,
    # so +5 over 100..200 s, split 2.5 / 2.5 at the 150 s edge, covered; 5 → 8 (+3 over 200..300 s).
    q, c, counts, events = totalise_events(
        [0.0, 100.0, 200.0, 300.0], [100.0, 110.0, 5.0, 8.0], None, [0.0, 150.0, 300.0]
    )
    assert q.tolist() == [10.0 + 5.0 * 0.5, 5.0 * 0.5 + 3.0]
    assert c.tolist() == [100.0 + 50.0, 50.0 + 100.0]
    assert counts.tolist() == [0, 1, 0]
    assert events == [[RESETS, 100.0, 200.0, 110.0, 5.0, 5.0, 0.0]]


def test_a_drop_is_a_rollover_only_from_the_top_tenth_of_the_modulus_to_the_bottom_tenth():
    # rollover 1000: a wrap leaves from ≥ 0.9 × 1000 = 900 and lands ≤ 0.1 × 1000 = 100, no rate limit.
    def one_pair(v0: float, v1: float):
        q, _, counts, events = totalise_events([0.0, 100.0], [v0, v1], None, [0.0, 100.0], 1000.0)
        return q[0], counts.tolist(), events[0][EVENT_KIND]

    assert one_pair(990.0, 50.0) == (50.0 - 990.0 + 1000.0, [1, 0, 0], ROLLOVERS)  # 60
    assert one_pair(900.0, 100.0) == (100.0 - 900.0 + 1000.0, [1, 0, 0], ROLLOVERS)  # 200: both bounds in
    assert one_pair(899.0, 50.0) == (50.0, [0, 1, 0], RESETS)  # not near the top: a reset counting v1 = 50
    assert one_pair(990.0, 101.0) == (101.0, [0, 1, 0], RESETS)  # lands above 100: a reset counting 101


def test_a_wrapped_delta_is_still_subject_to_the_plausibility_limit():
    # rollover 1000, max 1 unit/s, window 0, dt 100 s → at most 1 × (100 + 0) = 100 units.
    # 990 → 50: a wrap, −940 + 1000 = 60 ≤ 100 → counted.
    q, _, counts = totalise([0.0, 100.0], [990.0, 50.0], None, [0.0, 100.0], 1000.0, 1.0)
    assert q.tolist() == [60.0] and counts.tolist() == [1, 0, 0]
    # 900 → 50: a wrap by position, −850 + 1000 = 150 > 100 → rejected: no quantity, no coverage, and the
    # event row keeps the 150 (counted neither as rollover nor as reset).
    q, c, counts, events = totalise_events([0.0, 100.0], [900.0, 50.0], None, [0.0, 100.0], 1000.0, 1.0)
    assert q.tolist() == [0.0] and c.tolist() == [0.0] and counts.tolist() == [0, 0, 1]
    assert events == [[REJECTED, 0.0, 100.0, 900.0, 50.0, 150.0, 0.0]]
    # the same pair with a 60 s window: limit 1 × (100 + 60) = 160 ≥ 150 → a rollover, counted.
    q, c, counts = totalise([0.0, 100.0], [900.0, 50.0], None, [0.0, 100.0], 1000.0, 1.0, 60.0)
    assert q.tolist() == [150.0] and c.tolist() == [100.0] and counts.tolist() == [1, 0, 0]


def test_implausible_jump_is_rejected_and_counting_continues_from_the_new_value():
    # max 1 unit/s: +10 in 100 s ok; +4990 in 100 s > 100 rejected; +10 in 100 s ok → 20 over 200 s covered.
    q, c, counts, events = totalise_events(
        [0.0, 100.0, 200.0, 300.0], [0.0, 10.0, 5000.0, 5010.0], None, [0.0, 300.0], 0.0, 1.0
    )
    assert q.tolist() == [10.0 + 10.0]
    assert c.tolist() == [100.0 + 100.0]
    assert counts[REJECTED] == 1
    assert events == [[REJECTED, 100.0, 200.0, 10.0, 5000.0, 4990.0, 0.0]]  # its quantity kept for reports


def test_totaliser_loses_nothing_across_bad_readings():
    # The bad 999 is skipped: 0 → 20 over 0..200 s, split 10 / 10 at the 100 s edge.
    q, c, _ = totalise([0.0, 100.0, 200.0], [0.0, 999.0, 20.0], [1, 0, 1], [0.0, 100.0, 200.0])
    assert q.tolist() == [10.0, 10.0]
    assert c.tolist() == [100.0, 100.0]


def test_counter_delta_across_a_long_gap_is_counted_but_its_seconds_are_not_coverage():
    # gap limit 300 s: 0 → 10 over 0..100 s (covered); 10 → 50 over 100..1000 s (900 s > 300 s: the +40 is
    # complete and spread 50/900 and 850/900 over the buckets, but not covered); 50 → 51 over 1000..1100 s.
    q, c, _ = totalise(
        [0.0, 100.0, 1000.0, 1100.0], [0.0, 10.0, 50.0, 51.0], None, [0.0, 150.0, 1200.0], gap_limit=300.0
    )
    assert q.tolist() == [10.0 + 40.0 * (50.0 / 900.0), 40.0 * (850.0 / 900.0) + 1.0]
    assert c.tolist() == [100.0, 100.0]
    # exactly at the limit still counts: dt 900 s ≤ gap_limit 900 s
    q, c, _ = totalise([100.0, 1000.0], [10.0, 50.0], None, [0.0, 1200.0], gap_limit=900.0)
    assert q.tolist() == [40.0] and c.tolist() == [900.0]


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


def test_bad_rate_sample_is_dropped_and_its_good_neighbours_are_integrated_across_it():
    # Readings at 0, 100, 200, 300 s, the one at 200 bad: pairs 0..100 and 100..300 (across the bad one):
    # (10 + 10)/2 × 100 + (10 + 10)/2 × 200 = 1000 + 2000 = 3000 over 300 s covered.
    q, c = integrate([0.0, 100.0, 200.0, 300.0], [10.0] * 4, [1, 1, 0, 1], [0.0, 300.0])
    assert q.tolist() == [1000.0 + 2000.0] and c.tolist() == [300.0]
    # ... but only within the gap limit: with 150 s, the 100..300 s bridge (200 s) is missing.
    q, c = integrate([0.0, 100.0, 200.0, 300.0], [10.0] * 4, [1, 1, 0, 1], [0.0, 300.0], 150.0)
    assert q.tolist() == [1000.0] and c.tolist() == [100.0]


def test_non_finite_value_is_a_bad_sample_bridged_like_a_flagged_one():
    # NaN at 100 s is bad: 0..200 s integrated across it, (10 + 10)/2 × 200 = 2000.
    q, c = integrate([0.0, 100.0, 200.0], [10.0, np.nan, 10.0], None, [0.0, 200.0])
    assert q.tolist() == [2000.0] and c.tolist() == [200.0]


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
    totaliser_increments(t, v, g, e, 0.0, 0.0, 0.0, np.inf, q, c)
    totaliser_increments(t, v, g, e, 0.0, 0.0, 0.0, np.inf, q, c)
    assert q.tolist() == [5.0 + 5.0] and c.tolist() == [100.0 + 100.0]


def test_unsorted_times_and_wrong_output_length_raise():
    e, q, c = outs([0.0, 100.0])
    with pytest.raises(ValueError, match="sorted"):
        totaliser_increments(*arrays([10.0, 0.0], [0.0, 1.0]), e, 0.0, 0.0, 0.0, np.inf, q, c)
    with pytest.raises(ValueError, match="len\\(edges\\) - 1"):
        rate_integral(*arrays([0.0, 10.0], [0.0, 1.0]), e, np.inf, 1.0, np.zeros(2), c)


def test_negative_window_or_non_positive_gap_limit_raise_and_leave_the_outputs_untouched():
    e = np.array([0.0, 100.0])
    t, v, g = arrays([0.0, 10.0], [0.0, 1.0])
    q, c = np.full(1, 3.0), np.full(1, 4.0)
    for window_s, gap_limit in ((-1.0, np.inf), (0.0, 0.0), (np.nan, 300.0), (0.0, np.nan)):
        with pytest.raises(ValueError, match="window_s"):
            totaliser_increments(t, v, g, e, 0.0, 0.0, window_s, gap_limit, q, c)
        with pytest.raises(ValueError, match="window_s"):
            multi_channel_totaliser_increments(
                t, v, g, np.array([0, 2], np.int64), e, np.zeros(1), np.zeros(1), np.full(1, window_s),
                np.full(1, gap_limit), q[None, :], c[None, :],
            )  # fmt: skip
    assert q.tolist() == [3.0] and c.tolist() == [4.0]


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
    counts, events = multi_channel_totaliser_increments(
        t, v, good, starts, edges, np.zeros(2), np.zeros(2), np.zeros(2), np.full(2, np.inf), q, c
    )
    assert q.tolist() == [[8.0 * 300 / 400, 8.0 * 100 / 400], [2.0, 0.0]]
    assert c.tolist() == [[300.0, 100.0], [200.0, 0.0]]
    assert counts.shape == (2, 3)
    assert events.shape == (0, EVENT_COLUMNS)

    # Events name their channel. Channel 0: 0 → 8 then a reset to 3 at 500 s (counts 3 over 400..500 s).
    # Channel 1: rollover 10, 9.5 → 0.5 over 100..300 s (0.5 + 10 − 9.5 = 1.0); gap limit 150 s, so the
    # 200 s pair is not covered.
    t2 = np.array([0.0, 400.0, 500.0, 100.0, 300.0])
    v2 = np.array([0.0, 8.0, 3.0, 9.5, 0.5])
    q, c = np.zeros((2, 2)), np.zeros((2, 2))
    counts, events = multi_channel_totaliser_increments(
        t2, v2, np.ones(5, np.uint8), np.array([0, 3, 5], np.int64), edges, np.array([0.0, 10.0]),
        np.zeros(2), np.zeros(2), np.array([np.inf, 150.0]), q, c,
    )  # fmt: skip
    assert q.tolist() == [[8.0 * 300 / 400, 8.0 * 100 / 400 + 3.0], [1.0, 0.0]]
    assert c.tolist() == [[300.0, 100.0 + 100.0], [0.0, 0.0]]
    assert counts.tolist() == [[0, 1, 0], [1, 0, 0]]
    assert events.tolist() == [
        [RESETS, 400.0, 500.0, 8.0, 3.0, 3.0, 0.0],
        [ROLLOVERS, 100.0, 300.0, 9.5, 0.5, 1.0, 1.0],
    ]
    assert events[:, EVENT_CHANNEL].tolist() == [0.0, 1.0]

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
        lambda q, c: totaliser_increments(t, v, good, edges, 0.0, 0.0, 0.0, np.inf, q[0], c[0]),
        lambda q, c: rate_integral(t, v, good, edges, np.inf, 3600.0, q[0], c[0]),
        lambda q, c: analog_time_weighted(t, v, good, edges, np.inf, q[0], c[0]),
        lambda q, c: multi_channel_totaliser_increments(
            t, v, good, starts, edges, np.zeros(2), np.zeros(2), np.zeros(2), np.full(2, np.inf), q, c
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
    # 200 readings of 10 kW in one bucket, reading 100 is +inf: it is dropped and 99..101 is integrated
    # across it, so all 199 s count: 10 × 199.
    t = np.arange(200.0)
    v = np.full(200, 10.0)
    v[100] = np.inf
    q, c = integrate(t.tolist(), v.tolist(), None, [0.0, 1000.0])
    assert q.tolist() == [10.0 * 199] and c.tolist() == [199.0]
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

    # The benchmark's own workloads have a handful of counter events per channel-year; the dense ones
    # (a meter replaced or a spike every ~1000 readings, a 200 kWh register wrapping every ~700) put
    # dozens of rollovers, resets and rejected jumps through every implementation.
    dense = {"events": 1e-3, "rollover": 200.0}
    for w in (
        bench.workload("one", 1, 30_000),
        bench.workload("batch", 7, 4_000),
        bench.workload("one, dense events", 1, 30_000, **dense),
        bench.workload("batch, dense events", 7, 4_000, **dense),
    ):
        for kind in bench.KINDS.values():
            kind.check_baselines(w)
    counts = bench.numba_totaliser(bench.workload("one, dense events", 1, 30_000, **dense)).counts
    assert (counts[0] >= 10).all(), counts  # every kind of event is exercised (34, 19 and 88 here)
