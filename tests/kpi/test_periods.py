"""Hand-checked bucket and period edges (Asia/Shanghai = UTC+8) and the rollup between them."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from kpi.periods import bucket_edges, period_edges, rollup, shift_start_minutes


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_bucket_edges_are_epoch_aligned_multiples_of_the_step():
    # 1000 s lies in [900, 1800); 2000 s in [1800, 2700) → edges 900, 1800, 2700.
    assert bucket_edges(1000.0, 2000.0, 900).tolist() == [900.0, 1800.0, 2700.0]
    assert bucket_edges(900.0, 1800.0, 900).tolist() == [900.0, 1800.0]


def test_bucket_edges_reject_empty_range_and_bad_step():
    with pytest.raises(ValueError, match="after"):
        bucket_edges(10.0, 10.0, 900)
    with pytest.raises(ValueError, match="step_s"):
        bucket_edges(0.0, 10.0, 0)


def test_day_edges_are_local_midnight_in_shanghai_which_is_1600_utc():
    # 2026-03-01 05:00 UTC is 13:00 local on 1 March; local days start 16:00 UTC the day before.
    edges = period_edges(utc(2026, 3, 1, 5), utc(2026, 3, 2, 17), "day")
    assert edges.tolist() == [
        utc(2026, 2, 28, 16),
        utc(2026, 3, 1, 16),
        utc(2026, 3, 2, 16),
        utc(2026, 3, 3, 16),
    ]


def test_day_edges_in_utc():
    edges = period_edges(utc(2026, 3, 1, 5), utc(2026, 3, 2), "day", tz="UTC")
    assert edges.tolist() == [utc(2026, 3, 1), utc(2026, 3, 2)]


def test_month_edges_follow_the_calendar():
    # Local February 2026 (28 days) = 2026-01-31 16:00 UTC .. 2026-02-28 16:00 UTC; then March (31 days).
    edges = period_edges(utc(2026, 2, 10), utc(2026, 3, 5), "month")
    assert edges.tolist() == [utc(2026, 1, 31, 16), utc(2026, 2, 28, 16), utc(2026, 3, 31, 16)]
    assert (edges[2] - edges[1]) / 86400 == 31


def test_year_edges():
    edges = period_edges(utc(2026, 6, 1), utc(2026, 7, 1), "year")
    assert edges.tolist() == [utc(2025, 12, 31, 16), utc(2026, 12, 31, 16)]


def test_shift_edges_at_local_0_8_16_are_16_0_8_utc():
    # 2026-03-01 03:00 UTC = 11:00 local, inside the 08:00–16:00 local shift that began at 00:00 UTC.
    edges = period_edges(utc(2026, 3, 1, 3), utc(2026, 3, 1, 17), "shift")
    assert edges.tolist() == [utc(2026, 3, 1, 0), utc(2026, 3, 1, 8), utc(2026, 3, 1, 16), utc(2026, 3, 2, 0)]


def test_two_shifts_and_a_start_before_the_first_shift_of_the_day():
    # Shifts at local 08:00 and 20:00. 2026-03-01 22:00 UTC = 06:00 local on 2 March, in the shift that began
    # at 20:00 local on 1 March = 12:00 UTC.
    edges = period_edges(utc(2026, 3, 1, 22), utc(2026, 3, 2, 1), "shift", shift_starts=(8, 20))
    assert edges.tolist() == [utc(2026, 3, 1, 12), utc(2026, 3, 2, 0), utc(2026, 3, 2, 12)]


def test_shifts_changing_at_half_past_seven():
    # Shifts at local 07:30, 15:30 and 23:30. 2026-03-01 00:00 UTC = 08:00 local, in the 07:30 shift that
    # began at 23:30 UTC on 28 February; the next start is 15:30 local = 07:30 UTC.
    edges = period_edges(
        utc(2026, 3, 1, 0), utc(2026, 3, 1, 8), "shift", shift_starts=("07:30", "15:30", "23:30")
    )
    assert edges.tolist() == [utc(2026, 2, 28, 23, 30), utc(2026, 3, 1, 7, 30), utc(2026, 3, 1, 15, 30)]


@pytest.mark.parametrize("starts", [(16, 8), ("8:00", "08:00"), (24,), ("7h30",), ("07:60",), (), (True,)])
def test_bad_shift_patterns_are_refused(starts):
    with pytest.raises(ValueError, match="shift"):
        shift_start_minutes(starts)


def test_hour_edges():
    edges = period_edges(utc(2026, 3, 1, 5, 30), utc(2026, 3, 1, 7), "hour")
    assert edges.tolist() == [utc(2026, 3, 1, 5), utc(2026, 3, 1, 6), utc(2026, 3, 1, 7)]


def test_local_day_across_a_dst_change_is_23_hours():
    # Europe/Berlin springs forward on 2026-03-29: that local day is 23 h long.
    edges = period_edges(utc(2026, 3, 28, 12), utc(2026, 3, 30, 12), "day", tz="Europe/Berlin")
    assert np.diff(edges).tolist() == [24 * 3600.0, 23 * 3600.0, 24 * 3600.0]


def test_bad_period_arguments_raise():
    with pytest.raises(ValueError, match="unknown period"):
        period_edges(0.0, 1.0, "week")
    with pytest.raises(ValueError, match="shift_starts"):
        period_edges(0.0, 1.0, "shift", shift_starts=(16, 8))


def test_rollup_sums_base_buckets_into_periods():
    base = bucket_edges(0.0, 7200.0, 900)  # 8 quarter-hours
    values = np.arange(1.0, 9.0)  # 1..8
    hours = np.array([0.0, 3600.0, 7200.0])
    # hour 1: 1 + 2 + 3 + 4 = 10; hour 2: 5 + 6 + 7 + 8 = 26.
    assert rollup(values, base, hours).tolist() == [10.0, 26.0]
    # leading axes (channels) are kept: channel 2 is twice channel 1.
    assert rollup(np.stack([values, 2 * values]), base, hours).tolist() == [[10.0, 26.0], [20.0, 52.0]]


def test_rollup_of_a_sub_range_of_the_base_buckets():
    base = bucket_edges(0.0, 7200.0, 900)
    # period 900..2700 s = base buckets 2 and 3 → 2 + 3 = 5.
    assert rollup(np.arange(1.0, 9.0), base, np.array([900.0, 2700.0])).tolist() == [5.0]


def test_day_rollup_of_15_minute_buckets_in_shanghai():
    start, end = utc(2026, 3, 1, 16), utc(2026, 3, 3, 16)  # two local days
    base = bucket_edges(start, end, 900)
    days = period_edges(start, end, "day")
    # 96 quarter-hours per day, 1.0 each → 96 per day.
    assert rollup(np.ones(base.size - 1), base, days).tolist() == [96.0, 96.0]


def test_rollup_rejects_periods_that_do_not_nest():
    base = bucket_edges(0.0, 3600.0, 900)
    with pytest.raises(ValueError, match="not base edges"):
        rollup(np.ones(4), base, np.array([0.0, 1000.0]))
    with pytest.raises(ValueError, match="not base edges"):
        rollup(np.ones(4), base, np.array([0.0, 7200.0]))
    with pytest.raises(ValueError, match="buckets on its last axis"):
        rollup(np.ones(3), base, np.array([0.0, 3600.0]))
