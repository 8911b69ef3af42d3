"""Apply a group of decoded batches to the ledger in one transaction: de-duplicate, keep raw readings, extend
each channel's increments — columnar, with one kernel call per kind of channel per group.

Why columnar: the old collector ran a numba call on a 2-element array per channel per message, two SQL
statements per channel and a transaction with a full fsync per message, which held it to ~5,000 readings/s.
Here the readings of every batch in the group become four arrays (channel id, t_ms, value, quality), sorted
by channel and time once; each channel's saved start point (its last good reading) is put in front of its
run, and ``kpi.kernels``' batch API integrates all channels of one kind that start in the same base bucket
in one call. The rare cases go one channel at a time through ``collector.kpis.quantities``, as before: a
reading older than the channel's last one (recompute from the raw readings), a channel with recorded meter
exchanges, and a channel released from a birth hold.

Everything happens in one ledger transaction and the MQTT messages are acknowledged only after its commit,
so a crash either redelivers the group (de-duplication makes that harmless) or has applied it completely.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.wire import Batch, ChannelKind, Quality
from collector.kpis.exchanges import exchange_key
from collector.kpis.quantities import RATE_SECONDS, Increments, as_arrays, channel_increments, kernel_events
from collector.ledger.sql import ChannelState, Ledger, Tx
from collector.site import Channel, Site
from collector.sites import Sites
from kpi import kernels

TOTALISER, RATE, ANALOG = 0, 1, 2


@dataclass
class GroupResult:
    batches: int = 0
    duplicates: int = 0
    readings: int = 0
    unmapped: int = 0  # readings of channels no site model names (kept raw, not counted)
    held: int = 0  # readings of channels whose birth disagrees with the site model (kept raw, not counted)
    late: int = 0  # readings older than the channel's last one (triggered a recomputation)
    rollovers: int = 0
    resets: int = 0
    flagged: int = 0  # implausible counter deltas, kept as events with their quantity
    exchanges: int = 0  # recorded meter exchanges applied
    #: (first, last) reading time in ms per (site, line): which KPI periods changed
    touched: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    #: the same for recomputed (late) channels only: periods whose KPIs are restated
    restated: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    #: batches newly applied, as (site, agent, seq, newest reading ms)
    applied: list[tuple[str, str, int, int]] = field(default_factory=list)

    def touch(self, key: tuple[str, str], lo: int, hi: int, late: bool = False) -> None:
        for target in (self.touched, self.restated) if late else (self.touched,):
            old = target.get(key)
            target[key] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))

    def count_events(self, inc: Increments) -> None:
        self.rollovers += inc.count("rollover")
        self.resets += inc.count("reset")
        self.flagged += inc.count("implausible")
        self.exchanges += inc.count("exchange")


@dataclass(frozen=True, slots=True)
class _Meta:
    """What the group path needs of one channel, looked up once per channel id and site-model version."""

    site: Site
    name: str  # <agent>/<point>
    ch: Channel
    kind: int
    step_ms: int
    exchanges: bool


class ChannelMetas:
    """Channel id → site-model facts, cached until the site models are reloaded."""

    def __init__(self, ledger: Ledger, sites: Sites) -> None:
        self.ledger = ledger
        self.sites = sites
        self._cache: dict[int, _Meta | None] = {}

    def get(self, cid: int) -> _Meta | None:
        try:
            return self._cache[cid]
        except KeyError:
            pass
        site_id, name = self.ledger.channel_name(cid)
        site = self.sites.get(site_id)
        ch = site.channels.get(name) if site is not None else None
        meta = None
        if site is not None and ch is not None:
            kind = (
                TOTALISER
                if ch.kind in ChannelKind.TOTALISERS
                else RATE
                if ch.kind in ChannelKind.RATES
                else ANALOG
            )
            step_ms = int(site.site.base_interval_s) * 1000
            meta = _Meta(site, name, ch, kind, step_ms, bool(site.exchanges(name)))
        self._cache[cid] = meta
        return meta


def apply_group(
    ledger: Ledger,
    metas: ChannelMetas,
    batches: Sequence[tuple[str, Batch]],
    held: frozenset[str] = frozenset(),
) -> GroupResult:
    """Apply ``(site id, batch)`` pairs; ``held`` are channel keys ``<site>/<agent>/<point>`` not counted."""
    result = GroupResult()
    with ledger.transaction() as tx:
        new: list[tuple[str, Batch]] = []
        for site_id, b in batches:
            if tx.claim_batch(f"{site_id}/{b.agent}", b.epoch, b.seq, len(b)):
                new.append((site_id, b))
                result.applied.append((site_id, b.agent, b.seq, max(b.t_ms, default=0)))
            else:
                result.duplicates += 1
        result.batches = len(new)
        if not new:
            return result
        keys = [(s, f"{b.agent}/{c}") for s, b in new for c in b.channels]
        ids = np.array(tx.channel_ids(keys), dtype=np.int64)
        t = np.array([x for _, b in new for x in b.t_ms], dtype=np.int64)
        v = np.array([np.nan if x is None else x for _, b in new for x in b.values], dtype=np.float64)
        q = np.array([x for _, b in new for x in b.quality], dtype=np.uint8)
        result.readings = len(ids)
        tx.add_readings(ids, t, v, q)
        _apply_columns(tx, metas, ids, t, v, q, held, result)
    return result


def _apply_columns(
    tx: Tx,
    metas: ChannelMetas,
    ids: np.ndarray,
    t: np.ndarray,
    v: np.ndarray,
    q: np.ndarray,
    held: frozenset[str],
    result: GroupResult,
) -> None:
    order = np.lexsort((t, ids))
    ids, t, v, q = ids[order], t[order], v[order], q[order]
    good = (q == Quality.GOOD) & np.isfinite(v)
    uniq, starts = np.unique(ids, return_index=True)
    ends = np.append(starts[1:], len(ids))
    states = tx.channel_states(uniq.tolist())
    bulk: dict[tuple[int, int, int], list[tuple[int, int, int, _Meta, ChannelState | None]]] = defaultdict(
        list
    )
    for cid, a, b in zip(uniq.tolist(), starts.tolist(), ends.tolist(), strict=True):
        meta = metas.get(cid)
        if meta is None:
            result.unmapped += b - a
            continue
        if f"{meta.site.site.id}/{meta.name}" in held:
            result.held += b - a
            continue
        state = states.get(cid)
        first = int(t[a])
        key = (meta.site.site.id, meta.ch.line)
        if state is not None and first <= state.last_t_ms:
            result.late += int(np.count_nonzero(t[a:b] <= state.last_t_ms))
            inc = recompute(tx, meta, cid, state, min(first, state.last_t_ms))
            result.count_events(inc)
            result.touch(key, min(first, state.last_t_ms), max(int(t[b - 1]), state.last_t_ms), late=True)
            continue
        result.touch(key, first if state is None else state.last_t_ms, int(t[b - 1]))
        if meta.exchanges:
            result.count_events(_extend_one(tx, meta, cid, state, t[a:b], v[a:b], q[a:b]))
            continue
        start_ms = state.good_t_ms if state is not None and state.good_t_ms is not None else first
        lo = start_ms // meta.step_ms * meta.step_ms
        bulk[(meta.kind, meta.step_ms, lo)].append((cid, a, b, meta, state))
    for (kind, step_ms, lo), members in bulk.items():
        _bulk(tx, kind, step_ms, lo, members, t, v, good, result)
    _save_states(tx, uniq, starts, ends, states, metas, held, t, v, good)


def _bulk(
    tx: Tx,
    kind: int,
    step_ms: int,
    lo_ms: int,
    members: list[tuple[int, int, int, _Meta, ChannelState | None]],
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    result: GroupResult,
) -> None:
    """One kernel call for channels of one kind whose runs start in the same base bucket. Each run is the
    channel's saved last GOOD reading (a counter loses nothing across bad readings; a rate is integrated
    across a bad sample when its good neighbours are within the gap limit) followed by the new readings."""
    pieces_t, pieces_v, pieces_g, lengths = [], [], [], []
    for _, a, b, _, state in members:
        if state is not None and state.good_t_ms is not None:
            pieces_t.append(np.array([state.good_t_ms], dtype=np.int64))
            pieces_v.append(np.array([state.good_value], dtype=np.float64))
            pieces_g.append(np.ones(1, dtype=bool))
            lengths.append(b - a + 1)
        else:
            lengths.append(b - a)
        pieces_t.append(t[a:b])
        pieces_v.append(v[a:b])
        pieces_g.append(good[a:b])
    ts = np.concatenate(pieces_t).astype(np.float64) / 1000.0
    vs = np.concatenate(pieces_v)
    gs = np.concatenate(pieces_g).astype(np.uint8)
    bounds = np.zeros(len(members) + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    step_s = step_ms / 1000.0
    lo_s = lo_ms / 1000.0
    last_s = max(float(ts[bounds[i + 1] - 1]) for i in range(len(members)) if bounds[i + 1] > bounds[i])
    n_buckets = max(math.ceil((last_s - lo_s) / step_s), 1)
    edges = lo_s + step_s * np.arange(n_buckets + 1, dtype=np.float64)
    chans = [m[3].ch for m in members]
    qty = np.zeros((len(members), n_buckets))
    cov = np.zeros_like(qty)
    gap = np.array([float(c.gap_limit_s) for c in chans])
    if kind == TOTALISER:
        _, rows = kernels.multi_channel_totaliser_increments(
            ts, vs, gs, bounds, edges,
            np.array([float(c.rollover) for c in chans]),
            np.array([c.max_rate_per_h / 3600.0 for c in chans]),
            np.array([float(c.plausibility_window_s) for c in chans]),
            gap, qty, cov,
        )  # fmt: skip
        events = []
        for i in np.unique(rows[:, kernels.EVENT_CHANNEL]).astype(np.int64).tolist():
            cid, _, _, meta, _ = members[i]
            mine = rows[rows[:, kernels.EVENT_CHANNEL] == i]
            for e in kernel_events(meta.name, meta.ch, mine):
                events.append((cid, e))
                name = e.kind
                if name == "rollover":
                    result.rollovers += 1
                elif name == "reset":
                    result.resets += 1
                elif name == "implausible":
                    result.flagged += 1
        tx.add_events(events)
    elif kind == RATE:
        kernels.multi_channel_rate_integral(
            ts, vs, gs, bounds, edges, gap, np.full(len(chans), RATE_SECONDS), qty, cov
        )
    else:
        kernels.multi_channel_analog_time_weighted(ts, vs, gs, bounds, edges, gap, qty, cov)
    if kind != ANALOG:
        qty *= np.array([c.factor for c in chans])[:, None]
    rows_i, cols = np.nonzero((qty != 0) | (cov != 0))
    cids = np.array([m[0] for m in members], dtype=np.int64)
    tx.add_increments(
        zip(
            cids[rows_i].tolist(),
            (lo_ms + cols * step_ms).tolist(),
            qty[rows_i, cols].tolist(),
            cov[rows_i, cols].tolist(),
            strict=True,
        )
    )


def _save_states(
    tx: Tx,
    uniq: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    states: dict[int, ChannelState],
    metas: ChannelMetas,
    held: frozenset[str],
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
) -> None:
    """Each counted channel's state after the group, vectorised: last reading, last and first good one.
    Late channels were saved by ``recompute`` already (their state reaches their newest reading too)."""
    n = len(t)
    pos = np.arange(n)
    last_good = np.maximum.reduceat(np.where(good, pos, -1), starts) if n else pos
    first_good = np.minimum.reduceat(np.where(good, pos, n), starts) if n else pos
    rows = []
    for i, cid in enumerate(uniq.tolist()):
        meta = metas.get(cid)
        if meta is None or f"{meta.site.site.id}/{meta.name}" in held:
            continue
        state = states.get(cid)
        a, b = int(starts[i]), int(ends[i])
        if state is not None and int(t[a]) <= state.last_t_ms:
            continue  # recomputed
        lg, fg = int(last_good[i]), int(first_good[i])
        if lg >= 0:
            good_t, good_v = int(t[lg]), float(v[lg])
            first = int(t[fg])
            prev_first = state.first_good_t_ms if state is not None else None
            first_t = first if prev_first is None else min(prev_first, first)
        else:
            good_t = state.good_t_ms if state else None
            good_v = state.good_value if state else None
            first_t = state.first_good_t_ms if state else None
        last_v = float(v[b - 1])
        rows.append(
            (
                cid,
                ChannelState(
                    int(t[b - 1]),
                    None if math.isnan(last_v) else last_v,
                    int(Quality.GOOD) if good[b - 1] else int(Quality.BAD),
                    good_t,
                    good_v,
                    first_t,
                ),
            )
        )
    tx.set_channel_states(rows)


def _extend_one(
    tx: Tx,
    meta: _Meta,
    cid: int,
    state: ChannelState | None,
    t_ms: np.ndarray,
    values: np.ndarray,
    quality: np.ndarray,
) -> Increments:
    """A channel with recorded meter exchanges: through ``channel_increments`` (its segmentation)."""
    t_list, v_list = t_ms.tolist(), [None if math.isnan(x) else x for x in values.tolist()]
    q_list = quality.tolist()
    if state is not None and state.good_t_ms is not None:
        t_list, v_list, q_list = [state.good_t_ms, *t_list], [state.good_value, *v_list], [0, *q_list]
    ts, vs, good = as_arrays(t_list, v_list, q_list)
    inc = channel_increments(
        meta.name, meta.ch, ts, vs, good, meta.step_ms / 1000.0, exchanges=meta.site.exchanges(meta.name)
    )
    _store(tx, cid, inc, meta.step_ms)
    return inc


def recompute(tx: Tx, meta: _Meta, cid: int, state: ChannelState | None, from_ms: int) -> Increments:
    """Rebuild a channel's increments and events from the raw readings, from the bucket of ``from_ms`` on
    (a late reading, a recorded exchange, a released hold); saves the channel's state at its newest
    reading."""
    step_ms = meta.step_ms
    bucket_ms = from_ms // step_ms * step_ms
    tx.drop_increments(cid, bucket_ms)
    tx.drop_events(cid, bucket_ms)
    rows = tx.readings_since(cid, bucket_ms)
    if not rows:
        return Increments(bucket_ms / 1000.0, step_ms / 1000.0, np.zeros(0), np.zeros(0))
    t_ms = [r[0] for r in rows]
    values = [r[1] for r in rows]
    ts, vs, good = as_arrays(t_ms, values, [r[2] for r in rows])
    inc = channel_increments(
        meta.name, meta.ch, ts, vs, good, step_ms / 1000.0, start_s=bucket_ms / 1000.0,
        exchanges=meta.site.exchanges(meta.name),
    )  # fmt: skip
    _store(tx, cid, inc, step_ms)
    tx.set_channel_states([(cid, _state_after(state, t_ms, values, good))])
    return inc


def _store(tx: Tx, cid: int, inc: Increments, step_ms: int) -> None:
    base = round(inc.start_s * 1000)
    nz = np.flatnonzero((inc.qty != 0) | (inc.cov != 0))
    tx.add_increments(
        (cid, base + int(i) * step_ms, float(inc.qty[i]), float(inc.cov[i])) for i in nz.tolist()
    )
    tx.add_events((cid, e) for e in inc.events)


def _state_after(
    state: ChannelState | None, t_ms: list[int], values: list[float | None], good: np.ndarray
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


def apply_exchanges(ledger: Ledger, metas: ChannelMetas, sites: Sites) -> GroupResult:
    """Bring the ledger in line with every site model's meter exchange records: recompute each channel whose
    records were added, changed or removed since the ledger last saw them, from the earliest such exchange.

    The collector calls this at start and after a reload, so an exchange recorded with ``kilnwatch kpi
    exchange`` takes effect then; batches that arrive after the record is in the site model pass through
    the same segmentation in ``channel_increments`` anyway.
    """
    result = GroupResult()
    with ledger.transaction() as tx:
        for site_id, site in sites.items():
            applied = tx.applied_exchanges(site_id)
            wanted: dict[str, tuple[int, int]] = {}
            for ex in site.meter_exchange:
                (cid,) = tx.channel_ids([(site_id, ex.channel)])
                wanted[f"{site_id}|{exchange_key(ex)}"] = (cid, round(ex.at.timestamp() * 1000))
            changed: dict[int, int] = {}
            for record, (cid, at_ms) in set(applied.items()) ^ set(wanted.items()):
                changed[cid] = min(changed.get(cid, at_ms), at_ms)
                tx.set_exchange_applied(record, cid, at_ms, on=record in wanted)
            states = tx.channel_states(list(changed))
            for cid, from_ms in changed.items():
                state, meta = states.get(cid), metas.get(cid)
                if state is None or meta is None:
                    continue
                inc = recompute(tx, meta, cid, state, from_ms)
                result.exchanges += inc.count("exchange")
                result.touch((site_id, meta.ch.line), from_ms, state.last_t_ms, late=True)
    return result


def release(ledger: Ledger, metas: ChannelMetas, keys: Sequence[tuple[str, str]]) -> GroupResult:
    """Count the raw readings of channels whose birth hold has cleared: recompute each from its last counted
    reading (or its first reading, if it was held from the start)."""
    result = GroupResult()
    with ledger.transaction() as tx:
        ids = tx.channel_ids(list(keys))
        states = tx.channel_states(ids)
        for cid in ids:
            meta = metas.get(cid)
            if meta is None:
                continue
            state = states.get(cid)
            from_ms = state.last_t_ms if state is not None else 0
            inc = recompute(tx, meta, cid, state, from_ms)
            result.count_events(inc)
            if inc.qty.size:
                end = round(inc.start_s * 1000) + inc.qty.size * meta.step_ms
                result.touch((meta.site.site.id, meta.ch.line), round(inc.start_s * 1000), end, late=True)
    return result
