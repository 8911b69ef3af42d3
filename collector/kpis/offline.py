"""``kilnwatch kpi compute``: the live path's KPIs from a readings file, with the same kernels.

Readings → per-channel base-interval increments (``collector.kpis.quantities``) → periods in the site's local
time (``kpi.periods``) → indicators per line (``collector.kpis.line_kpis``). Nothing here computes a
number the live collector does not compute the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from collector.kpis.line_kpis import BaseTable, period_kpis
from collector.kpis.quantities import channel_increments
from collector.readings.file import ChannelSeries, read_readings
from collector.site import Site
from kpi.periods import bucket_edges, period_edges

#: Warnings of each kind listed one by one; a historian export of every tag gets a count beyond that.
MISMATCHES_LISTED = 20


def base_table(site: Site, named: dict[str, ChannelSeries], lo: float, hi: float) -> BaseTable:
    """Increments of the given channels on one grid of base buckets spanning [lo, hi)."""
    step = float(site.site.base_interval_s)
    edges = bucket_edges(lo, hi, step)
    channels = sorted(named)
    qty = np.zeros((len(channels), len(edges) - 1))
    cov = np.zeros_like(qty)
    windows: dict[str, tuple[float, float]] = {}
    events = []
    for i, name in enumerate(channels):
        s = named[name]
        inc = channel_increments(
            name,
            site.channels[name],
            s.t_s,
            s.values,
            s.good,
            step,
            start_s=lo,
            exchanges=site.exchanges(name),
        )
        k = round((inc.start_s - lo) / step)
        n = min(len(inc.qty), qty.shape[1] - k)  # readings kept after ``hi`` (see ``trim``) reach past it
        qty[i, k : k + n] = inc.qty[:n]
        cov[i, k : k + n] = inc.cov[:n]
        events.extend(inc.events)
        usable = np.flatnonzero(s.good)
        if usable.size:
            windows[name] = (float(s.t_s[usable[0]]), float(s.t_s[usable[-1]]))
    return BaseTable(channels, edges, qty, cov, windows, tuple(sorted(events, key=lambda e: e.t1_s)))


def compute(
    site: Site,
    readings: Path,
    period: str,
    start_s: float | None = None,
    end_s: float | None = None,
    warn: Callable[[str], None] | None = None,
    naive_tz: str | None = None,
    quality: str = "auto",
) -> list[dict]:
    """KPI documents per line and period: every period the readings touch, or the periods that overlap
    ``[start_s, end_s)`` (epoch seconds) where given. ``warn`` receives ``channel_mismatches`` and the
    reader's warnings; ``naive_tz`` and ``quality`` are passed to ``read_readings``."""
    # Only options that differ from the defaults are passed (and then the site's zone, for the reader's
    # messages), so that a stand-in for read_readings(path), as benchmarks.kpi_offline times it, still works.
    options = {"naive_tz": naive_tz, "quality": None if quality == "auto" else quality, "warn": warn}
    options = {k: v for k, v in options.items() if v is not None}
    if options:
        options["zone_hint"] = site.site.timezone
    series = read_readings(readings, **options)
    if warn is not None:
        for message in channel_mismatches(site, series):
            warn(message)
    named = {c: s for c, s in series.items() if c in site.channels and len(s.t_s)}
    if not named:
        raise ValueError(f"{readings}: no readings of any channel named in the site model")
    edges = _edges(site, readings, named, period, start_s, end_s)
    lo, hi = float(edges[0]), float(edges[-1])
    if start_s is not None or end_s is not None:
        named = {c: trim(s, lo, hi) for c, s in named.items()}
    table = base_table(site, named, lo, hi)
    return period_kpis(site, table, period, edges)


def _edges(
    site: Site,
    readings: Path,
    named: dict[str, ChannelSeries],
    period: str,
    start_s: float | None,
    end_s: float | None,
) -> np.ndarray:
    """Period edges from ``start_s`` (else the first reading) to ``end_s`` (else the last one)."""
    first = min(s.t_s[0] for s in named.values())
    last = max(s.t_s[-1] for s in named.values())
    lo = first if start_s is None else start_s
    hi = last if end_s is None else end_s
    if start_s is not None and end_s is not None and not end_s > start_s:
        raise ValueError(f"the end {_local(site, end_s)} must be after the start {_local(site, start_s)}")
    if start_s is None and end_s is None and not last > first:
        raise ValueError(f"{readings}: all readings are at {_local(site, first)}; periods need two times")
    inside = any(np.searchsorted(s.t_s, hi, "right") > np.searchsorted(s.t_s, lo) for s in named.values())
    if not hi > lo or not inside:
        asked = " ".join(
            f"{word} {_local(site, t)}" for word, t in (("from", start_s), ("before", end_s)) if t is not None
        )
        raise ValueError(
            f"{readings}: no readings {asked}; the file's readings run from {_local(site, first)} to"
            f" {_local(site, last)}"
        )
    return period_edges(lo, hi, period, tz=site.site.timezone, shift_starts=tuple(site.site.shift_starts))


def trim(s: ChannelSeries, lo: float, hi: float) -> ChannelSeries:
    """The readings in ``[lo, hi]``, the last usable one before ``lo`` and the first usable one after ``hi``.

    Why the two outside: the kernels pair consecutive usable readings and split a pair at bucket edges in
    proportion to time, so a counter's delta across ``lo`` (or ``hi``) is shared between the periods
    exactly as it is when the whole file is computed.
    """
    a = int(np.searchsorted(s.t_s, lo, side="left"))
    b = int(np.searchsorted(s.t_s, hi, side="right"))
    before = np.flatnonzero(s.good[:a])
    after = np.flatnonzero(s.good[b:])
    a = int(before[-1]) if before.size else a
    b = b + int(after[0]) + 1 if after.size else b
    return ChannelSeries(s.t_s[a:b], s.values[a:b], s.good[a:b])


def channel_mismatches(site: Site, names: Iterable[str]) -> list[str]:
    """Warnings: site-model channels without readings, and reading channels the site model does not name.

    Why: a channel id misspelt on either side silently drops a whole meter from the totals, so each
    warning names the closest id on the other side (``difflib``) as a did-you-mean.
    """
    present = set(names)
    missing = sorted(c for c in site.channels if c not in present)
    unknown = sorted(n for n in present if n not in site.channels)
    return _listed(
        missing,
        unknown,
        "site model channel {!r} has no readings in the file",
        "site model channels without readings",
    ) + _listed(
        unknown,
        missing,
        "channel {!r} of the file is not in the site model; its readings are ignored",
        "channels of the file not in the site model",
    )


def _listed(ids: list[str], others: list[str], text: str, more: str) -> list[str]:
    out = []
    for name in ids[:MISMATCHES_LISTED]:
        close = difflib.get_close_matches(name, others, n=1)
        out.append(text.format(name) + (f"; did you mean {close[0]!r}?" if close else ""))
    if len(ids) > MISMATCHES_LISTED:
        out.append(f"... and {len(ids) - MISMATCHES_LISTED} more {more}")
    return out


def _local(site: Site, t_s: float) -> str:
    return datetime.fromtimestamp(t_s, ZoneInfo(site.site.timezone)).isoformat()
