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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.wire import Batch, ChannelKind, Quality
from collector.kpis.exchanges import exchange_key
from collector.kpis.quantities import RATE_SECONDS, Increments, as_arrays, channel_increments, kernel_events
from collector.ledger.sql import ChannelState, Ledger, StateColumns, Tx
from collector.site import Channel, Site
from collector.sites import Sites
from kpi import kernels

TOTALISER, RATE, ANALOG = 0, 1, 2
#: Channel lists whose ids are cached (cleared beyond it: a bound against hostile traffic).
BATCH_IDS_KEPT = 50_000


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
    duplicate_sites: Counter[str] = field(default_factory=Counter)

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
    """Channel id → site-model facts, cached until the site models are reloaded: as ``_Meta`` objects for
    the one-channel paths, and as numpy columns indexed by channel id for the group path, so a group of
    thousands of channels is classified and parameterised with array operations, not a Python loop."""

    def __init__(self, ledger: Ledger, sites: Sites) -> None:
        self.ledger = ledger
        self.sites = sites
        self._reset()

    def _reset(self) -> None:
        self._rollbacks = self.ledger.rollbacks
        self._cache: dict[int, _Meta | None] = {}
        self.lines: list[tuple[str, str]] = []
        self._line_codes: dict[tuple[str, str], int] = {}
        self.known = np.zeros(0, dtype=bool)
        self.mapped = np.zeros(0, dtype=bool)
        self.exch = np.zeros(0, dtype=bool)
        self.kind = np.zeros(0, dtype=np.int8)
        self.line = np.zeros(0, dtype=np.int64)
        self.step_ms = np.zeros(0, dtype=np.int64)
        self.rollover = np.zeros(0)
        self.max_rate_s = np.zeros(0)
        self.window_s = np.zeros(0)
        self.gap_s = np.zeros(0)
        self.factor = np.zeros(0)
        self.keys: list[str | None] = []
        self._batch_ids: dict[tuple[str, str, tuple[str, ...]], np.ndarray] = {}

    def get(self, cid: int) -> _Meta | None:
        if self._rollbacks != self.ledger.rollbacks:  # ids of a rolled-back transaction may be reused
            self._reset()
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

    def batch_ids(self, tx: Tx, site_id: str, batch: Batch) -> np.ndarray:
        """Channel ids of a batch's readings; an agent sends the same channel list every cycle, so the ids
        are looked up once per list."""
        if self._rollbacks != self.ledger.rollbacks:  # ids of a rolled-back transaction may be reused
            self._reset()
        key = (site_id, batch.agent, tuple(batch.channels))
        ids = self._batch_ids.get(key)
        if ids is None:
            names = [(site_id, f"{batch.agent}/{c}") for c in batch.channels]
            ids = np.array(tx.channel_ids(names), dtype=np.int64)
            if len(self._batch_ids) >= BATCH_IDS_KEPT:
                self._batch_ids.clear()
            self._batch_ids[key] = ids
        return ids

    def ensure(self, ids: np.ndarray) -> None:
        """Fill the columns for channel ids not seen before (once per channel and site-model version)."""
        top = int(ids.max()) + 1 if len(ids) else 0
        if top > len(self.known):
            size = max(top, 2 * len(self.known), 1024)
            for name in ("known", "mapped", "exch", "kind", "line", "step_ms", "rollover", "max_rate_s",
                         "window_s", "gap_s", "factor"):  # fmt: skip
                old = getattr(self, name)
                grown = np.zeros(size, dtype=old.dtype)
                grown[: len(old)] = old
                setattr(self, name, grown)
            self.keys.extend([None] * (size - len(self.keys)))
        for cid in ids[~self.known[ids]].tolist():
            self.known[cid] = True
            meta = self.get(cid)
            if meta is None:
                continue
            ch = meta.ch
            line = (meta.site.site.id, ch.line)
            code = self._line_codes.get(line)
            if code is None:
                code = self._line_codes[line] = len(self.lines)
                self.lines.append(line)
            self.mapped[cid], self.exch[cid], self.kind[cid], self.line[cid] = (
                True,
                meta.exchanges,
                meta.kind,
                code,
            )
            self.step_ms[cid] = meta.step_ms
            self.rollover[cid] = float(ch.rollover)
            self.max_rate_s[cid] = ch.max_rate_per_h / 3600.0
            self.window_s[cid] = float(ch.plausibility_window_s)
            self.gap_s[cid] = float(ch.gap_limit_s)
            self.factor[cid] = ch.factor if meta.kind != ANALOG else 1.0
            self.keys[cid] = f"{meta.site.site.id}/{meta.name}"

    def held_flags(self, ids: np.ndarray, held: frozenset[str]) -> np.ndarray:
        if not held:
            return np.zeros(len(ids), dtype=bool)
        return np.array([self.keys[c] in held for c in ids.tolist()], dtype=bool)


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
        fresh = tx.claim_batches([(f"{site_id}/{b.agent}", b.epoch, b.seq, len(b)) for site_id, b in batches])
        for (site_id, b), is_new in zip(batches, fresh, strict=True):
            if is_new:
                new.append((site_id, b))
                result.applied.append((site_id, b.agent, b.seq, max(b.t_ms, default=0)))
            else:
                result.duplicates += 1
                result.duplicate_sites[site_id] += 1
        result.batches = len(new)
        if not new:
            return result
        ids = np.concatenate([metas.batch_ids(tx, s, b) for s, b in new])
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
    lengths = ends - starts
    metas.ensure(uniq)
    mapped = metas.mapped[uniq]
    held_m = metas.held_flags(uniq, held) & mapped
    result.unmapped += int(lengths[~mapped].sum())
    result.held += int(lengths[held_m].sum())
    sel = np.flatnonzero(mapped & ~held_m)
    if not len(sel):
        return
    cids, a, b = uniq[sel], starts[sel], ends[sel]
    st = tx.channel_state_columns(cids)
    first_t, last_new = t[a], t[b - 1]
    late = st.has & (first_t <= st.last_t)
    for i in np.flatnonzero(late).tolist():
        cid, meta = int(cids[i]), metas.get(int(cids[i]))
        state = st.state(i)
        from_ms = min(int(first_t[i]), state.last_t_ms)
        result.late += int(np.count_nonzero(t[a[i] : b[i]] <= state.last_t_ms))
        inc = recompute(tx, meta, cid, state, from_ms)
        result.count_events(inc)
        hi = max(int(last_new[i]), state.last_t_ms)
        result.touch((meta.site.site.id, meta.ch.line), from_ms, hi, late=True)
    on = ~late
    lo_touch = np.where(st.has, st.last_t, first_t)
    codes = metas.line[cids]
    for code in np.unique(codes[on]).tolist():
        m = on & (codes == code)
        result.touch(metas.lines[code], int(lo_touch[m].min()), int(last_new[m].max()))
    exch = on & metas.exch[cids]
    for i in np.flatnonzero(exch).tolist():
        cid = int(cids[i])
        inc = _extend_one(
            tx, metas.get(cid), cid, st.state(i), t[a[i] : b[i]], v[a[i] : b[i]], q[a[i] : b[i]]
        )
        result.count_events(inc)
    bulk = np.flatnonzero(on & ~exch)
    if len(bulk):
        has_prev = st.has & (st.good_t >= 0)
        start_ms = np.where(has_prev, st.good_t, first_t)
        step = metas.step_ms[cids]
        lo = start_ms // step * step
        kind = metas.kind[cids]
        keyed = bulk[np.lexsort((lo[bulk], step[bulk], kind[bulk]))]
        k3 = np.stack([kind[keyed], step[keyed], lo[keyed]])
        cut = np.flatnonzero(np.any(k3[:, 1:] != k3[:, :-1], axis=0)) + 1
        for members in np.split(keyed, cut):
            i0 = int(members[0])
            _bulk(tx, metas, int(kind[i0]), int(step[i0]), int(lo[i0]), cids[members], a[members], b[members],
                  has_prev[members], st.good_t[members], st.good_v[members], t, v, good, result)  # fmt: skip
    n = len(t)
    pos = np.arange(n)
    last_good = np.maximum.reduceat(np.where(good, pos, -1), starts)[sel]
    first_good = np.minimum.reduceat(np.where(good, pos, n), starts)[sel]
    _save_states(tx, cids[on], b[on], last_good[on], first_good[on], st, on, t, v, good)


def _bulk(
    tx: Tx,
    metas: ChannelMetas,
    kind: int,
    step_ms: int,
    lo_ms: int,
    cids: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    has_prev: np.ndarray,
    prev_t: np.ndarray,
    prev_v: np.ndarray,
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
    result: GroupResult,
) -> None:
    """One kernel call for channels of one kind whose runs start in the same base bucket. Each run is the
    channel's saved last GOOD reading (a counter loses nothing across bad readings; a rate is integrated
    across a bad sample when its good neighbours are within the gap limit) followed by the new readings."""
    lens = b - a
    cum = np.cumsum(lens)
    begin = cum - lens
    idx = np.arange(int(cum[-1])) - np.repeat(begin, lens) + np.repeat(a, lens)
    pos = begin[has_prev]
    ts_ms = np.insert(t[idx], pos, prev_t[has_prev])
    vs = np.insert(v[idx], pos, prev_v[has_prev])
    gs = np.insert(good[idx], pos, True).astype(np.uint8)
    bounds = np.zeros(len(cids) + 1, dtype=np.int64)
    np.cumsum(lens + has_prev, out=bounds[1:])
    last_ms = int(ts_ms[bounds[1:] - 1].max())
    n_buckets = max(-(-(last_ms - lo_ms) // step_ms), 1)
    step_s, lo_s = step_ms / 1000.0, lo_ms / 1000.0
    edges = lo_s + step_s * np.arange(n_buckets + 1, dtype=np.float64)
    ts = ts_ms.astype(np.float64) / 1000.0
    qty = np.zeros((len(cids), n_buckets))
    cov = np.zeros_like(qty)
    gap = metas.gap_s[cids]
    if kind == TOTALISER:
        _, rows = kernels.multi_channel_totaliser_increments(
            ts, vs, gs, bounds, edges, metas.rollover[cids], metas.max_rate_s[cids], metas.window_s[cids],
            gap, qty, cov,
        )  # fmt: skip
        if len(rows):
            events = []
            which = rows[:, kernels.EVENT_CHANNEL].astype(np.int64)
            for i in np.unique(which).tolist():
                cid = int(cids[i])
                meta = metas.get(cid)
                for e in kernel_events(meta.name, meta.ch, rows[which == i]):
                    events.append((cid, e))
                    result.rollovers += e.kind == "rollover"
                    result.resets += e.kind == "reset"
                    result.flagged += e.kind == "implausible"
            tx.add_events(events)
    elif kind == RATE:
        kernels.multi_channel_rate_integral(
            ts, vs, gs, bounds, edges, gap, np.full(len(cids), RATE_SECONDS), qty, cov
        )
    else:
        kernels.multi_channel_analog_time_weighted(ts, vs, gs, bounds, edges, gap, qty, cov)
    qty *= metas.factor[cids][:, None]
    rows_i, cols = np.nonzero((qty != 0) | (cov != 0))
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
    cids: np.ndarray,
    b: np.ndarray,
    last_good: np.ndarray,
    first_good: np.ndarray,
    st: StateColumns,
    on: np.ndarray,
    t: np.ndarray,
    v: np.ndarray,
    good: np.ndarray,
) -> None:
    """Each counted, not recomputed channel's state after the group, vectorised: last reading, last and
    first good one (late channels were saved by ``recompute``; their state reaches their newest reading)."""
    if not len(cids):
        return
    has_good = last_good >= 0
    lg, fg = np.where(has_good, last_good, 0), np.where(has_good, first_good, 0)
    old_good_t, old_good_v = st.good_t[on], st.good_v[on]
    old_first = st.first_good[on]
    good_t = np.where(has_good, t[lg], old_good_t)
    good_v = np.where(has_good, v[lg], old_good_v)
    new_first = t[fg]
    first = np.where(
        has_good, np.where(old_first >= 0, np.minimum(old_first, new_first), new_first), old_first
    )
    last_v = v[b - 1]
    last_q = np.where(good[b - 1], int(Quality.GOOD), int(Quality.BAD))
    tx.set_state_columns(cids, t[b - 1], last_v, last_q, good_t, good_v, first)


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
            # From its last counted reading, or its first reading if it was held from the start (not from
            # 1970: that would recompute, and mark for KPIs, every period since).
            from_ms = state.last_t_ms if state is not None else tx.first_reading_ms(cid)
            if from_ms is None:
                continue
            inc = recompute(tx, meta, cid, state, from_ms)
            result.count_events(inc)
            if inc.qty.size:
                end = round(inc.start_s * 1000) + inc.qty.size * meta.step_ms
                result.touch((meta.site.site.id, meta.ch.line), round(inc.start_s * 1000), end, late=True)
    return result
