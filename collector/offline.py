"""``kilnwatch kpi compute``: the live path's KPIs from a readings file, with the same kernels.

Readings → per-channel base-interval increments (``collector.quantities``) → periods in the site's local
time (``kpi.periods``) → indicators per line (``collector.line_kpis``). Nothing here computes a number the
live collector does not compute the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from collector.line_kpis import BaseTable, period_kpis
from collector.quantities import channel_increments
from collector.readings_csv import ChannelSeries, read_readings
from collector.site import Site
from kpi.periods import bucket_edges, period_edges


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
            name, site.channels[name], s.t_s, s.values, s.good, step, exchanges=site.exchanges(name)
        )
        k = round((inc.start_s - lo) / step)
        qty[i, k : k + len(inc.qty)] = inc.qty
        cov[i, k : k + len(inc.cov)] = inc.cov
        events.extend(inc.events)
        usable = np.flatnonzero(s.good)
        if usable.size:
            windows[name] = (float(s.t_s[usable[0]]), float(s.t_s[usable[-1]]))
    return BaseTable(channels, edges, qty, cov, windows, tuple(sorted(events, key=lambda e: e.t1_s)))


def compute(site: Site, readings: Path, period: str) -> list[dict]:
    """KPI documents per line and period for every period the readings touch."""
    named = {c: s for c, s in read_readings(readings).items() if c in site.channels and len(s.t_s)}
    if not named:
        raise ValueError(f"{readings}: no readings of any channel named in the site model")
    first = min(s.t_s[0] for s in named.values())
    last = max(s.t_s[-1] for s in named.values())
    edges = period_edges(
        first, last, period, tz=site.site.timezone, shift_starts=tuple(site.site.shift_starts)
    )
    table = base_table(site, named, float(edges[0]), float(edges[-1]))
    return period_kpis(site, table, period, edges)
