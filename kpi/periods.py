"""Time buckets and reporting periods: aligned base buckets, local-time periods, and the rollup between them.

Why: GB/T 38692-2020 and the NHJC-2018 specifications ask for 15-minute real-time data and daily/monthly
totals on local calendar days [CONFIRMED] (``reference/domain.md`` §6), and energy managers read hours
and shifts. Base buckets are epoch-aligned multiples of ``step_s``; for Asia/Shanghai (UTC+8, no DST) every
15-minute and hourly bucket is therefore also a local one, and reporting periods (local day, month, shift …)
are exact unions of base buckets, so ``rollup`` only adds. Zones with a half-hour offset need
``step_s`` ≤ 1800 for local hours to nest. Everything here is a function of its arguments: no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

Period = Literal["hour", "shift", "day", "month", "year"]
PERIODS: tuple[str, ...] = ("hour", "shift", "day", "month", "year")
DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_SHIFT_STARTS: tuple[int | str, ...] = (0, 8, 16)


def shift_start_minutes(shift_starts: tuple[int | str, ...]) -> tuple[int, ...]:
    """Shift starts as minutes after local midnight: an int is a whole hour, a string is "HH:MM".

    Why: plants run three 8-hour shifts from 00:00, two 12-hour shifts from 08:00, or shifts that change at
    07:30; the pattern is the plant's, so it is configuration. Starts must be increasing within one day.
    """
    minutes = []
    for start in shift_starts:
        if isinstance(start, int) and not isinstance(start, bool) and 0 <= start <= 23:
            minutes.append(start * 60)
            continue
        hh, sep, mm = str(start).partition(":")
        if isinstance(start, str) and sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60:
            minutes.append(int(hh) * 60 + int(mm))
            continue
        raise ValueError(f"shift start {start!r} must be a local hour 0..23 or a time 'HH:MM'")
    if not minutes or minutes != sorted(set(minutes)):
        raise ValueError(f"shift_starts must be increasing within one day, got {shift_starts!r}")
    return tuple(minutes)


def bucket_edges(start_s: float, end_s: float, step_s: float = 900) -> np.ndarray:
    """Edges of epoch-aligned base buckets covering ``[start_s, end_s]`` (float64 epoch seconds).

    The first edge is the multiple of ``step_s`` at or before ``start_s``, the last the one at or after
    ``end_s``. Default 900 s: the online-monitoring real-time granularity (15 min) [CONFIRMED].
    """
    if not step_s > 0:
        raise ValueError(f"step_s must be > 0, got {step_s!r}")
    if not end_s > start_s:
        raise ValueError(f"end_s ({end_s!r}) must be after start_s ({start_s!r})")
    first = math.floor(start_s / step_s)
    last = math.ceil(end_s / step_s)
    return np.arange(first, last + 1, dtype=np.float64) * float(step_s)


def _local_starts(period: str, first_day: date, shift_minutes: tuple[int, ...]) -> Iterator[datetime]:
    """Naive local datetimes of period starts from (at or before) ``first_day`` onwards, increasing."""
    if period == "day":
        day = first_day
        while True:
            yield datetime(day.year, day.month, day.day)
            day += timedelta(days=1)
    elif period == "shift":
        day = first_day - timedelta(days=1)
        while True:
            for minute in shift_minutes:
                yield datetime(day.year, day.month, day.day, minute // 60, minute % 60)
            day += timedelta(days=1)
    elif period == "month":
        year, month = first_day.year, first_day.month
        while True:
            yield datetime(year, month, 1)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    else:  # year
        year = first_day.year
        while True:
            yield datetime(year, 1, 1)
            year += 1


def period_edges(
    start_s: float,
    end_s: float,
    period: str,
    tz: str = DEFAULT_TZ,
    shift_starts: tuple[int | str, ...] = DEFAULT_SHIFT_STARTS,
) -> np.ndarray:
    """Edges (float64 epoch seconds) of local-time periods covering ``[start_s, end_s]``.

    ``period`` is one of "hour", "shift", "day", "month", "year"; days, months and years start at local
    midnight in ``tz`` (Asia/Shanghai: 16:00 UTC the day before), shifts at the local times ``shift_starts``
    (hours or "HH:MM"; default three 8-hour shifts at 0, 8, 16). Hours are 3600 s steps from the local hour
    containing ``start_s``. The first edge is the start of the period containing ``start_s``, the last the
    first edge at or after ``end_s``.
    """
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; expected one of {', '.join(PERIODS)}")
    if not end_s > start_s:
        raise ValueError(f"end_s ({end_s!r}) must be after start_s ({start_s!r})")
    zone = ZoneInfo(tz)
    local_start = datetime.fromtimestamp(start_s, zone)
    if period == "hour":
        first = local_start.replace(minute=0, second=0, microsecond=0).timestamp()
        n_hours = max(1, math.ceil((end_s - first) / 3600.0))
        return first + 3600.0 * np.arange(n_hours + 1, dtype=np.float64)
    shift_minutes = shift_start_minutes(shift_starts) if period == "shift" else ()
    edges: list[float] = []
    for naive in _local_starts(period, local_start.date(), shift_minutes):
        edge = naive.replace(tzinfo=zone).timestamp()
        if edge <= start_s:
            edges = [edge]
        else:
            edges.append(edge)
            if edge >= end_s:
                break
    return np.array(edges, dtype=np.float64)


def rollup(base_values: np.ndarray, base_edges: np.ndarray, period_edges: np.ndarray) -> np.ndarray:
    """Sum base buckets (last axis) into periods: shape ``(..., n_base)`` → ``(..., n_periods)``.

    Every period edge must be one of the base edges (base buckets nest inside periods), else ValueError: a
    base bucket split across two periods could only be apportioned by guessing. Use it for quantities and for
    coverage seconds alike; a period's coverage share is then ``cov / (period end − period start)``.
    """
    values = np.asarray(base_values, dtype=np.float64)
    base = np.asarray(base_edges, dtype=np.float64)
    periods = np.asarray(period_edges, dtype=np.float64)
    if values.shape[-1] != base.size - 1:
        raise ValueError(
            f"base_values has {values.shape[-1]} buckets on its last axis, base_edges {base.size - 1}"
        )
    if periods.size < 2 or np.any(np.diff(periods) <= 0):
        raise ValueError("period_edges must hold at least two strictly increasing values")
    idx = np.searchsorted(base, periods)
    inside = idx < base.size
    if not inside.all() or not np.array_equal(base[idx], periods):
        bad = periods[~inside] if not inside.all() else periods[base[idx] != periods]
        raise ValueError(f"period edges {bad.tolist()} are not base edges: base buckets must nest in periods")
    span = values[..., idx[0] : idx[-1]]
    return np.add.reduceat(span, idx[:-1] - idx[0], axis=-1)
