"""The ledger: the collector's durable state, so a restart or another collector continues exactly.

It holds which batches were applied (de-duplication), the raw readings, each channel's last reading (the
start point of the next totaliser delta), per-channel increments per base interval, counter events, KPIs,
births and restatements. The SQL here is written once for every database (``?`` placeholders,
``ON CONFLICT`` upserts); a :class:`Backend` supplies the connection, the schema, and the one bulk insert
that differs most between databases (raw readings). SQLite (``collector.ledger.sqlite``) is the embedded
default, PostgreSQL (``collector.ledger.postgres``) the production choice.

Writes happen in a :class:`Tx`: the ingest pipeline applies a whole group of MQTT messages in one
transaction and acknowledges them only after the commit, so "applied" and "acknowledged" never disagree.
Channels are stored by integer id (``channels``: site, ``<agent>/<point>``), which keeps the raw readings
compact and lets two sites use the same agent names.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from collector.kpis.quantities import CounterEvent

SCHEMA_VERSION = 2

#: Bound parameters per statement when a list goes into ``IN (...)`` (SQLite's old default limit is 999).
IN_CHUNK = 900


@dataclass(frozen=True, slots=True)
class ChannelState:
    last_t_ms: int
    last_value: float | None
    last_quality: int
    good_t_ms: int | None
    good_value: float | None
    #: The channel's first good reading: with ``good_t_ms``, the window its counter deltas are complete in.
    first_good_t_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StateColumns:
    """Channel states of a group as columns aligned with the ids asked for: -1 for a missing time, NaN for a
    missing value; ``has`` is False for a channel never seen (the group path works on these arrays)."""

    has: np.ndarray
    last_t: np.ndarray
    last_v: np.ndarray
    last_q: np.ndarray
    good_t: np.ndarray
    good_v: np.ndarray
    first_good: np.ndarray

    def state(self, i: int) -> ChannelState | None:
        if not self.has[i]:
            return None

        def t(x: np.ndarray) -> int | None:
            return None if x[i] < 0 else int(x[i])

        def val(x: np.ndarray) -> float | None:
            return None if np.isnan(x[i]) else float(x[i])

        return ChannelState(
            int(self.last_t[i]), val(self.last_v), int(self.last_q[i]), t(self.good_t), val(self.good_v),
            t(self.first_good),
        )  # fmt: skip


class Backend(Protocol):
    """What a database gives the ledger. ``execute``/``executemany``/``query`` take ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...  # rows changed

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    def add_readings(
        self, ids: np.ndarray, t_ms: np.ndarray, values: np.ndarray, quality: np.ndarray
    ) -> None:
        """Upsert raw readings (NaN value = NULL) inside the open transaction."""
        ...


class LedgerError(RuntimeError):
    """The ledger's database cannot be used (e.g. a ledger written by an older version)."""


class LedgerUnavailable(LedgerError):
    """The database is away for now (connection lost, server restarting, disk full): the transaction did
    not happen and may be retried as a whole."""


#: What a backend raises for an outage, as opposed to a defect: a group that met it is retried.
UNAVAILABLE: tuple[type[BaseException], ...] = (LedgerUnavailable, sqlite3.OperationalError)


class Ledger:
    """The ledger over one backend. Thread-safe: one connection guarded by a lock (ingest and KPI threads
    share it); ``transaction()`` holds the lock for the whole group."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._lock = threading.RLock()
        self._ids: dict[tuple[str, str], int] = {}
        self._names: dict[int, tuple[str, str]] = {}
        self.rollbacks = 0

    @classmethod
    def open(cls, target: str | Any) -> Ledger:
        """A ledger on ``target``: a ``postgresql://`` URL, or a SQLite file path (``:memory:`` too)."""
        text = str(target)
        if text.startswith(("postgresql://", "postgres://")):
            from collector.ledger.postgres import PostgresBackend

            return cls(PostgresBackend(text))
        from collector.ledger.sqlite import SqliteBackend

        return cls(SqliteBackend(text))

    def close(self) -> None:
        with self._lock:
            self.backend.close()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            self.backend.begin()
            try:
                yield Tx(self)
            except BaseException:
                self.backend.rollback()
                self._ids.clear()  # ids created in the rolled-back transaction do not exist
                self._names.clear()
                self.rollbacks += 1  # tells caches keyed by channel id to start again
                raise
            self.backend.commit()

    # -- channel ids -----------------------------------------------------------------------------------------
    def channel_name(self, channel_id: int) -> tuple[str, str]:
        """(site, ``<agent>/<point>``) of a channel id."""
        name = self._names.get(channel_id)
        if name is None:
            rows = self.backend.query("SELECT site, name FROM channels WHERE id = ?", (channel_id,))
            name = self._names[channel_id] = (rows[0][0], rows[0][1])
        return name

    # -- reads (each its own statement) ------------------------------------------------------------------
    def increments(
        self, start_ms: int, end_ms: int, site: str | None = None
    ) -> list[tuple[str, int, float, float]]:
        """``(<agent>/<point>, bucket_ms, qty, cov_s)`` of one site (or all) in [start_ms, end_ms)."""
        sql = (
            "SELECT c.name, i.bucket_ms, i.qty, i.cov_s FROM increments i JOIN channels c ON c.id = i.channel"
            " WHERE i.bucket_ms >= ? AND i.bucket_ms < ?"
        )
        return self._site_query(sql, (start_ms, end_ms), site, " ORDER BY i.bucket_ms")

    def events(self, start_ms: int, end_ms: int, site: str | None = None) -> list[CounterEvent]:
        """Counter events whose later reading lies in [start_ms, end_ms), oldest first."""
        sql = (
            "SELECT c.name, e.kind, e.t0_ms, e.t1_ms, e.v0, e.v1, e.qty FROM counter_events e"
            " JOIN channels c ON c.id = e.channel WHERE e.t1_ms >= ? AND e.t1_ms < ?"
        )
        rows = self._site_query(sql, (start_ms, end_ms), site, " ORDER BY e.t1_ms, c.name")
        return [CounterEvent(c, k, t0 / 1000.0, t1 / 1000.0, v0, v1, q) for c, k, t0, t1, v0, v1, q in rows]

    def good_windows(self, site: str | None = None) -> dict[str, tuple[int, int]]:
        """First and last good reading time per channel: the window each counter's deltas are complete in."""
        sql = (
            "SELECT c.name, s.first_good_t_ms, s.good_t_ms FROM channel_state s JOIN channels c"
            " ON c.id = s.channel WHERE s.first_good_t_ms IS NOT NULL AND s.good_t_ms IS NOT NULL"
        )
        return {ch: (lo, hi) for ch, lo, hi in self._site_query(sql, (), site, "")}

    def _site_query(self, sql: str, params: tuple, site: str | None, tail: str) -> list[tuple]:
        if site is not None:
            sql, params = sql + " AND c.site = ?", (*params, site)
        with self._lock:
            return self.backend.query(sql + tail, params)

    def readings_count(self) -> int:
        with self._lock:
            return int(self.backend.query("SELECT COUNT(*) FROM readings")[0][0])

    def batches_count(self) -> int:
        with self._lock:
            return int(self.backend.query("SELECT COUNT(*) FROM batches")[0][0])

    # -- KPIs ----------------------------------------------------------------------------------------------
    def put_kpi(self, doc: dict) -> dict | None:
        """Store a KPI document; returns the one it replaced (for restatements), or None."""
        key = (doc["site"], doc["line"], doc["period"], doc["start_ms"])
        text = json.dumps(doc, sort_keys=True)
        with self._lock:
            old = self.backend.query(
                "SELECT doc FROM kpis WHERE site = ? AND line = ? AND period = ? AND start_ms = ?", key
            )
            self.backend.execute(
                "INSERT INTO kpis VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, line, period, start_ms)"
                " DO UPDATE SET end_ms = excluded.end_ms, computed_ms = excluded.computed_ms,"
                " doc = excluded.doc",
                (*key, doc["end_ms"], _now_ms(), text),
            )
        return json.loads(old[0][0]) if old else None

    def kpis(self, period: str | None = None, site: str | None = None) -> list[dict]:
        where, params = [], []
        if period:
            where.append("period = ?")
            params.append(period)
        if site:
            where.append("site = ?")
            params.append(site)
        sql = "SELECT doc FROM kpis" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            rows = self.backend.query(sql + " ORDER BY start_ms, site, line", params)
        return [json.loads(r[0]) for r in rows]

    # -- restatements ----------------------------------------------------------------------------------------
    def put_restatement(self, site: str, line: str, period: str, start_ms: int, old: dict, new: dict) -> None:
        with self._lock:
            self.backend.execute(
                "INSERT INTO restatements (at_ms, site, line, period, start_ms, old, new)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_now_ms(), site, line, period, start_ms, json.dumps(old), json.dumps(new)),
            )

    def restatements(self, site: str | None = None) -> list[dict]:
        sql = "SELECT at_ms, site, line, period, start_ms, old, new FROM restatements"
        params: tuple = ()
        if site is not None:
            sql, params = sql + " WHERE site = ?", (site,)
        with self._lock:
            rows = self.backend.query(sql + " ORDER BY id", params)
        keys = ("at_ms", "site", "line", "period", "start_ms")
        return [
            {**dict(zip(keys, r[:5], strict=True)), "old": json.loads(r[5]), "new": json.loads(r[6])}
            for r in rows
        ]

    # -- births --------------------------------------------------------------------------------------------
    def put_birth(self, site: str, agent: str, doc: dict) -> None:
        with self._lock:
            self.backend.execute(
                "INSERT INTO births VALUES (?, ?, ?, ?) ON CONFLICT (site, agent) DO UPDATE SET"
                " received_ms = excluded.received_ms, doc = excluded.doc",
                (site, agent, _now_ms(), json.dumps(doc)),
            )

    def births(self) -> dict[tuple[str, str], dict]:
        with self._lock:
            rows = self.backend.query("SELECT site, agent, doc FROM births")
        return {(s, a): json.loads(d) for s, a, d in rows}

    # -- channels held by a birth that disagrees with the site model ------------------------------------
    def held(self) -> set[tuple[str, str]]:
        """(site, ``<agent>/<point>``) of channels whose readings are kept but not counted."""
        with self._lock:
            return {(s, n) for s, n in self.backend.query("SELECT site, name FROM held")}

    def set_held(self, keys: Iterable[tuple[str, str]], on: bool) -> None:
        rows = list(keys)
        if not rows:
            return
        sql = (
            "INSERT INTO held VALUES (?, ?) ON CONFLICT DO NOTHING"
            if on
            else "DELETE FROM held WHERE site = ? AND name = ?"
        )
        with self._lock:
            self.backend.begin()
            try:
                self.backend.executemany(sql, rows)
            except BaseException:
                self.backend.rollback()
                raise
            self.backend.commit()

    # -- retention -----------------------------------------------------------------------------------------
    def prune_readings(self, before_ms: int) -> int:
        """Drop raw readings older than ``before_ms`` (the retention setting); returns how many."""
        with self._lock:
            self.backend.begin()
            try:
                # Channel by channel through the primary key: an index on time alone would cost every
                # reading's insert a second B-tree write, to speed up a delete that runs once an hour.
                ids = [r[0] for r in self.backend.query("SELECT id FROM channels")]
                n = sum(
                    self.backend.execute(
                        "DELETE FROM readings WHERE channel = ? AND t_ms < ?", (cid, before_ms)
                    )
                    for cid in ids
                )
            except BaseException:
                self.backend.rollback()
                raise
            self.backend.commit()
        return n


class Tx:
    """One write transaction (see :meth:`Ledger.transaction`)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.db = ledger.backend

    # -- batches -------------------------------------------------------------------------------------------
    def claim_batches(self, keys: Sequence[tuple[str, str, int, int]]) -> list[bool]:
        """Record batches ``(<site>/<agent>, epoch, seq, n)`` as applied; per batch, False if it was applied
        before or comes twice in ``keys`` (one query for the ones already there, one insert for the rest)."""
        seen: set[tuple[str, str, int]] = set()
        for part in _chunks([k[:3] for k in keys], IN_CHUNK // 3):
            marks = ",".join(["(?, ?, ?)"] * len(part))
            seen.update(
                self.db.query(
                    f"SELECT agent, epoch, seq FROM batches WHERE (agent, epoch, seq) IN (VALUES {marks})",
                    [x for key in part for x in key],
                )
            )
        fresh, now = [], _now_ms()
        for key in keys:
            new = key[:3] not in seen
            fresh.append(new)
            if new:
                seen.add(key[:3])
        rows = [(*key[:3], now, key[3]) for key, new in zip(keys, fresh, strict=True) if new]
        self.db.executemany("INSERT INTO batches VALUES (?, ?, ?, ?, ?)", rows)
        return fresh

    def claim_batch(self, agent_key: str, epoch: str, seq: int, n: int) -> bool:
        """One batch: ``claim_batches`` of one."""
        return self.claim_batches([(agent_key, epoch, seq, n)])[0]

    # -- channels ------------------------------------------------------------------------------------------
    def channel_ids(self, keys: Sequence[tuple[str, str]]) -> list[int]:
        """Ids of (site, ``<agent>/<point>``) channels, creating the ones never seen."""
        ids, names = self._ledger._ids, self._ledger._names
        missing = sorted({k for k in keys if k not in ids})
        if missing:
            self.db.executemany(
                "INSERT INTO channels (site, name) VALUES (?, ?) ON CONFLICT DO NOTHING", missing
            )
            for site in {s for s, _ in missing}:
                wanted = [n for s, n in missing if s == site]
                for part in _chunks(wanted):
                    marks = ",".join("?" * len(part))
                    for cid, name in self.db.query(
                        f"SELECT id, name FROM channels WHERE site = ? AND name IN ({marks})", (site, *part)
                    ):
                        ids[(site, name)] = cid
                        names[cid] = (site, name)
        return [ids[k] for k in keys]

    def add_readings(
        self, ids: np.ndarray, t_ms: np.ndarray, values: np.ndarray, quality: np.ndarray
    ) -> None:
        if len(ids):
            self.db.add_readings(ids, t_ms, values, quality)

    # -- channel state -------------------------------------------------------------------------------------
    def channel_states(self, ids: Iterable[int]) -> dict[int, ChannelState]:
        out: dict[int, ChannelState] = {}
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            for row in self.db.query(
                "SELECT channel, last_t_ms, last_value, last_quality, good_t_ms, good_value, first_good_t_ms"
                f" FROM channel_state WHERE channel IN ({marks})",
                part,
            ):
                out[row[0]] = ChannelState(*row[1:])
        return out

    def channel_state_columns(self, ids: np.ndarray) -> StateColumns:
        n = len(ids)
        cols = [np.full(n, -1, dtype=np.int64) for _ in range(3)]  # last_t, good_t, first_good
        vals = [np.full(n, np.nan) for _ in range(2)]  # last_v, good_v
        last_q = np.zeros(n, dtype=np.int64)
        has = np.zeros(n, dtype=bool)
        where = {c: i for i, c in enumerate(ids.tolist())}
        for part in _chunks(list(where)):
            marks = ",".join("?" * len(part))
            rows = self.db.query(
                "SELECT channel, last_t_ms, COALESCE(good_t_ms, -1), COALESCE(first_good_t_ms, -1),"
                f" last_value, good_value, last_quality FROM channel_state WHERE channel IN ({marks})",
                part,
            )
            if not rows:
                continue
            at = np.array([where[r[0]] for r in rows], dtype=np.int64)
            has[at] = True
            for k, col in enumerate(cols):
                col[at] = [r[1 + k] for r in rows]
            for k, col in enumerate(vals):
                col[at] = [np.nan if r[4 + k] is None else r[4 + k] for r in rows]
            last_q[at] = [r[6] for r in rows]
        return StateColumns(has, cols[0], vals[0], last_q, cols[1], vals[1], cols[2])

    def set_state_columns(
        self,
        ids: np.ndarray,
        last_t: np.ndarray,
        last_v: np.ndarray,
        last_q: np.ndarray,
        good_t: np.ndarray,
        good_v: np.ndarray,
        first_good: np.ndarray,
    ) -> None:
        """Save states given as columns (-1 = no time, NaN = no value), as ``channel_state_columns`` reads."""

        def opt_t(x: np.ndarray) -> list[int | None]:
            return [None if y < 0 else y for y in x.tolist()]

        def opt_v(x: np.ndarray) -> list[float | None]:
            return [None if y != y else y for y in x.tolist()]  # y != y: NaN

        self.db.executemany(
            _UPSERT_STATE,
            zip(
                ids.tolist(), last_t.tolist(), opt_v(last_v), last_q.tolist(), opt_t(good_t), opt_v(good_v),
                opt_t(first_good), strict=True,
            ),
        )  # fmt: skip

    def set_channel_states(self, rows: Iterable[tuple[int, ChannelState]]) -> None:
        self.db.executemany(
            _UPSERT_STATE,
            [
                (cid, s.last_t_ms, s.last_value, s.last_quality, s.good_t_ms, s.good_value, s.first_good_t_ms)
                for cid, s in rows
            ],
        )

    # -- increments and events -------------------------------------------------------------------------------
    def add_increments(self, rows: Iterable[tuple[int, int, float, float]]) -> None:
        self.db.add_increments(rows)

    def drop_increments(self, channel_id: int, from_bucket_ms: int) -> None:
        self.db.execute(
            "DELETE FROM increments WHERE channel = ? AND bucket_ms >= ?", (channel_id, from_bucket_ms)
        )

    def readings_since(self, channel_id: int, t_ms: int) -> list[tuple[int, float | None, int]]:
        """Raw readings of a channel from the last good one before ``t_ms`` on: the input to a recomputation
        (the pair across ``t_ms`` starts at that reading, whatever bad readings lie between)."""
        first = self.db.query(
            "SELECT MAX(t_ms) FROM readings WHERE channel = ? AND t_ms < ? AND quality = 0"
            " AND value IS NOT NULL",
            (channel_id, t_ms),
        )[0][0]
        start = first if first is not None else t_ms
        return self.db.query(
            "SELECT t_ms, value, quality FROM readings WHERE channel = ? AND t_ms >= ? ORDER BY t_ms",
            (channel_id, start),
        )

    def first_reading_ms(self, channel_id: int) -> int | None:
        return self.db.query("SELECT MIN(t_ms) FROM readings WHERE channel = ?", (channel_id,))[0][0]

    def add_events(self, rows: Iterable[tuple[int, CounterEvent]]) -> None:
        self.db.executemany(
            "INSERT INTO counter_events VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel, t1_ms, kind)"
            " DO UPDATE SET t0_ms = excluded.t0_ms, v0 = excluded.v0, v1 = excluded.v1, qty = excluded.qty",
            [(cid, round(e.t1_s * 1000), e.kind, round(e.t0_s * 1000), e.v0, e.v1, e.qty) for cid, e in rows],
        )

    def drop_events(self, channel_id: int, from_ms: int) -> None:
        self.db.execute("DELETE FROM counter_events WHERE channel = ? AND t1_ms >= ?", (channel_id, from_ms))

    # -- meter exchanges -----------------------------------------------------------------------------------
    def applied_exchanges(self, site: str) -> dict[str, tuple[int, int]]:
        """Meter exchange records of a site the increments reflect: record → (channel id, at_ms)."""
        rows = self.db.query(
            "SELECT a.record, a.channel, a.at_ms FROM applied_exchanges a JOIN channels c ON c.id = a.channel"
            " WHERE c.site = ?",
            (site,),
        )
        return {r: (c, at) for r, c, at in rows}

    def set_exchange_applied(self, record: str, channel_id: int, at_ms: int, on: bool) -> None:
        if on:
            self.db.execute(
                "INSERT INTO applied_exchanges VALUES (?, ?, ?) ON CONFLICT (record) DO UPDATE SET"
                " channel = excluded.channel, at_ms = excluded.at_ms",
                (record, channel_id, at_ms),
            )
        else:
            self.db.execute("DELETE FROM applied_exchanges WHERE record = ?", (record,))


#: The portable increments upsert (SQLite's backend uses it; PostgreSQL's has a faster COPY path).
ADD_INCREMENTS = (
    "INSERT INTO increments VALUES (?, ?, ?, ?) ON CONFLICT (channel, bucket_ms) DO UPDATE SET"
    " qty = increments.qty + excluded.qty, cov_s = increments.cov_s + excluded.cov_s"
)

_UPSERT_STATE = (
    "INSERT INTO channel_state VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel) DO UPDATE SET"
    " last_t_ms = excluded.last_t_ms, last_value = excluded.last_value,"
    " last_quality = excluded.last_quality, good_t_ms = excluded.good_t_ms,"
    " good_value = excluded.good_value, first_good_t_ms = excluded.first_good_t_ms"
)


def _chunks(items: list, size: int = IN_CHUNK) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _now_ms() -> int:
    return int(time.time() * 1000)
