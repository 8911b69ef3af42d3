"""Apply one decoded batch to the ledger: de-duplicate, keep raw readings, extend each channel's increments.

All of it happens in one ledger transaction, and the MQTT message is acknowledged only after the commit,
so a crash at any point either redelivers the batch (and de-duplication makes that harmless) or has
applied it completely.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from agent.wire import Batch, Quality
from collector.kpis.exchanges import exchange_key
from collector.kpis.quantities import Increments, as_arrays, channel_increments
from collector.ledger.sqlite import ChannelState, Ledger
from collector.site import Site


@dataclass
class ApplyResult:
    duplicate: bool = False
    readings: int = 0
    unmapped: int = 0  # readings of channels the site model does not name (kept raw, not counted)
    late: int = 0  # readings older than the channel's last one (triggered a recomputation)
    rollovers: int = 0
    resets: int = 0
    flagged: int = 0  # implausible counter deltas, kept as events with their quantity
    exchanges: int = 0  # recorded meter exchanges applied
    #: (first, last) reading time in ms per line, to know which KPI periods changed
    touched: dict[str, tuple[int, int]] = field(default_factory=dict)


def apply_batch(ledger: Ledger, site: Site, batch: Batch) -> ApplyResult:
    result = ApplyResult(readings=len(batch))
    step_s = float(site.site.base_interval_s)
    with ledger.transaction() as db:
        if not Ledger.claim_batch(db, batch.agent, batch.epoch, batch.seq, len(batch)):
            return ApplyResult(duplicate=True)
        names = [f"{batch.agent}/{c}" for c in batch.channels]
        Ledger.add_readings(db, zip(names, batch.t_ms, batch.values, batch.quality, strict=True))
        by_channel: dict[str, list[int]] = defaultdict(list)
        for i, name in enumerate(names):
            by_channel[name].append(i)
        for name, idx in by_channel.items():
            ch = site.channels.get(name)
            if ch is None:
                result.unmapped += len(idx)
                continue
            idx.sort(key=batch.t_ms.__getitem__)
            t_ms = [batch.t_ms[i] for i in idx]
            state = Ledger.channel_state(db, name)
            if state is not None and t_ms[0] <= state.last_t_ms:
                result.late += sum(1 for t in t_ms if t <= state.last_t_ms)
                inc = _recompute(db, site, name, state, min(t_ms[0], state.last_t_ms), step_s)
            else:
                inc = _extend(db, site, name, state, batch, idx, step_s)
            result.rollovers += inc.count("rollover")
            result.resets += inc.count("reset")
            result.flagged += inc.count("implausible")
            result.exchanges += inc.count("exchange")
            lo, hi = result.touched.get(ch.line, (t_ms[0], t_ms[-1]))
            first = t_ms[0] if state is None else min(t_ms[0], state.last_t_ms)
            result.touched[ch.line] = (min(lo, first), max(hi, t_ms[-1]))
    return result


def apply_exchanges(ledger: Ledger, site: Site) -> ApplyResult:
    """Bring the ledger in line with the site model's meter exchange records: recompute each channel whose
    records were added, changed or removed since the ledger last saw them, from the earliest such exchange.

    The collector calls this at start, so an exchange recorded with ``kilnwatch kpi exchange`` while it ran
    takes effect at its next start; batches that arrive after the record is in the site model pass
    through the same segmentation in ``channel_increments`` anyway.
    """
    result = ApplyResult()
    step_s = float(site.site.base_interval_s)
    with ledger.transaction() as db:
        applied = Ledger.applied_exchanges(db)
        wanted = {
            exchange_key(ex): (ex.channel, round(ex.at.timestamp() * 1000)) for ex in site.meter_exchange
        }
        changed: dict[str, int] = {}
        for record, (channel, at_ms) in set(applied.items()) ^ set(wanted.items()):
            changed[channel] = min(changed.get(channel, at_ms), at_ms)
            Ledger.set_exchange_applied(db, record, channel, at_ms, on=record in wanted)
        for name, from_ms in changed.items():
            state = Ledger.channel_state(db, name)
            if state is None or name not in site.channels:
                continue
            inc = _recompute(db, site, name, state, from_ms, step_s)
            result.exchanges += inc.count("exchange")
            line = site.channels[name].line
            lo, hi = result.touched.get(line, (from_ms, state.last_t_ms))
            result.touched[line] = (min(lo, from_ms), max(hi, state.last_t_ms))
    return result


def _extend(
    db: sqlite3.Connection,
    site: Site,
    name: str,
    state: ChannelState | None,
    batch: Batch,
    idx: list[int],
    step_s: float,
) -> Increments:
    """The common case: new readings after the channel's last one. Prepend the saved start point: the last
    GOOD reading, for every kind — a counter loses nothing across bad readings, and a rate is integrated
    across a bad sample when its good neighbours are within the gap limit (the kernel's rule)."""
    ch = site.channels[name]
    t_ms = [batch.t_ms[i] for i in idx]
    values = [batch.values[i] for i in idx]
    quality = [batch.quality[i] for i in idx]
    if state is not None and state.good_t_ms is not None:
        t_ms, values, quality = [state.good_t_ms, *t_ms], [state.good_value, *values], [0, *quality]
    t, v, good = as_arrays(t_ms, values, quality)
    inc = channel_increments(name, ch, t, v, good, step_s, exchanges=site.exchanges(name))
    Ledger.add_increments(db, inc.rows(name))
    Ledger.add_events(db, inc.events)
    Ledger.set_channel_state(db, name, _next_state(state, t_ms, values, good))
    return inc


def _recompute(
    db: sqlite3.Connection, site: Site, name: str, state: ChannelState, from_ms: int, step_s: float
) -> Increments:
    """A late reading: rebuild the channel's increments and events from the raw readings, from its bucket
    onward."""
    ch = site.channels[name]
    step_ms = int(step_s * 1000)
    bucket_ms = from_ms // step_ms * step_ms
    Ledger.drop_increments(db, name, bucket_ms)
    Ledger.drop_events(db, name, bucket_ms)
    rows = Ledger.readings_since(db, name, bucket_ms)
    t_ms = [r[0] for r in rows]
    values = [r[1] for r in rows]
    t, v, good = as_arrays(t_ms, values, [r[2] for r in rows])
    inc = channel_increments(
        name, ch, t, v, good, step_s, start_s=bucket_ms / 1000.0, exchanges=site.exchanges(name)
    )
    Ledger.add_increments(db, inc.rows(name))
    Ledger.add_events(db, inc.events)
    Ledger.set_channel_state(db, name, _next_state(state, t_ms, values, good))
    return inc


def _next_state(
    state: ChannelState | None,
    t_ms: list[int],
    values: list[float | None],
    good: np.ndarray,
) -> ChannelState:
    """State after a window that reaches to the channel's newest reading."""
    good_idx = np.flatnonzero(good)
    first_good = state.first_good_t_ms if state else None
    if len(good_idx):
        g = int(good_idx[-1])
        good_t, good_v = t_ms[g], values[g]
        first = t_ms[int(good_idx[0])]
        first_good = first if first_good is None else min(first_good, first)
    else:
        good_t = state.good_t_ms if state else None
        good_v = state.good_value if state else None
    last_q = int(Quality.GOOD) if good[-1] else int(Quality.BAD)
    return ChannelState(t_ms[-1], values[-1], last_q, good_t, good_v, first_good)
