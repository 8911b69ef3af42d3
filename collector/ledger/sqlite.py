"""The ledger: the collector's durable state, so a restart or a second collector continues exactly.

It holds which batches were applied (for de-duplication), the raw readings, each channel's last reading (the
start point of the next totaliser delta), the per-channel increments per base interval, the counter events
(rollovers, resets, replaced meters, flagged jumps with their quantities), the computed KPIs,
births and the dead letters. SQLite (WAL) is the embedded default; every method is one transaction so
"applied" and "acknowledged" can never disagree.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from collector.kpis.quantities import CounterEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    agent TEXT NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL,
    received_ms INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (agent, epoch, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS readings (
    channel TEXT NOT NULL, t_ms INTEGER NOT NULL, value REAL, quality INTEGER NOT NULL,
    PRIMARY KEY (channel, t_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channel_state (
    channel TEXT PRIMARY KEY,
    last_t_ms INTEGER NOT NULL, last_value REAL, last_quality INTEGER NOT NULL,
    good_t_ms INTEGER, good_value REAL, first_good_t_ms INTEGER
);
CREATE TABLE IF NOT EXISTS counter_events (
    channel TEXT NOT NULL, t1_ms INTEGER NOT NULL, kind TEXT NOT NULL, t0_ms INTEGER NOT NULL,
    v0 REAL NOT NULL, v1 REAL NOT NULL, qty REAL NOT NULL,
    PRIMARY KEY (channel, t1_ms, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applied_exchanges (
    record TEXT PRIMARY KEY, channel TEXT NOT NULL, at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS increments (
    channel TEXT NOT NULL, bucket_ms INTEGER NOT NULL, qty REAL NOT NULL, cov_s REAL NOT NULL,
    PRIMARY KEY (channel, bucket_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kpis (
    line TEXT NOT NULL, period TEXT NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
    computed_ms INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (line, period, start_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS births (
    agent TEXT PRIMARY KEY, site TEXT NOT NULL, received_ms INTEGER NOT NULL, doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_ms INTEGER NOT NULL, topic TEXT NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL, payload BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class ChannelState:
    last_t_ms: int
    last_value: float | None
    last_quality: int
    good_t_ms: int | None
    good_value: float | None
    #: The channel's first good reading: with ``good_t_ms``, the window its counter deltas are complete in.
    first_good_t_ms: int | None = None


class Ledger:
    """SQLite ledger. Thread-safe: one connection guarded by a lock (ingest and KPI threads share it)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a PUBACK'd batch must survive power loss
        self._db.executescript(SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(channel_state)")}
        if "first_good_t_ms" not in columns:  # a ledger written before the column existed
            self._db.execute("ALTER TABLE channel_state ADD COLUMN first_good_t_ms INTEGER")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- batches -------------------------------------------------------------------------------------------
    @staticmethod
    def claim_batch(db: sqlite3.Connection, agent: str, epoch: str, seq: int, n: int) -> bool:
        """Record a batch as applied inside the caller's transaction; False if it was applied before."""
        cur = db.execute(
            "INSERT OR IGNORE INTO batches VALUES (?, ?, ?, ?, ?)", (agent, epoch, seq, _now_ms(), n)
        )
        return cur.rowcount == 1

    @staticmethod
    def add_readings(db: sqlite3.Connection, rows: Iterable[tuple[str, int, float | None, int]]) -> None:
        db.executemany("INSERT OR REPLACE INTO readings VALUES (?, ?, ?, ?)", rows)

    # -- channel state and increments --------------------------------------------------------------------
    @staticmethod
    def channel_state(db: sqlite3.Connection, channel: str) -> ChannelState | None:
        row = db.execute(
            "SELECT last_t_ms, last_value, last_quality, good_t_ms, good_value, first_good_t_ms"
            " FROM channel_state"
            " WHERE channel = ?",
            (channel,),
        ).fetchone()
        return ChannelState(*row) if row else None

    @staticmethod
    def set_channel_state(db: sqlite3.Connection, channel: str, state: ChannelState) -> None:
        db.execute(
            "INSERT OR REPLACE INTO channel_state (channel, last_t_ms, last_value, last_quality, good_t_ms,"
            " good_value, first_good_t_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                channel,
                state.last_t_ms,
                state.last_value,
                state.last_quality,
                state.good_t_ms,
                state.good_value,
                state.first_good_t_ms,
            ),
        )

    @staticmethod
    def add_increments(db: sqlite3.Connection, rows: Iterable[tuple[str, int, float, float]]) -> None:
        db.executemany(
            "INSERT INTO increments VALUES (?, ?, ?, ?) ON CONFLICT (channel, bucket_ms) DO UPDATE SET"
            " qty = qty + excluded.qty, cov_s = cov_s + excluded.cov_s",
            rows,
        )

    @staticmethod
    def readings_since(
        db: sqlite3.Connection, channel: str, t_ms: int
    ) -> list[tuple[int, float | None, int]]:
        """Raw readings of a channel from the last good one before ``t_ms`` on: the input to a recomputation
        (the pair across ``t_ms`` starts at that reading, whatever bad readings lie between)."""
        first = db.execute(
            "SELECT MAX(t_ms) FROM readings WHERE channel = ? AND t_ms < ? AND quality = 0"
            " AND value IS NOT NULL",
            (channel, t_ms),
        ).fetchone()[0]
        start = first if first is not None else t_ms
        return db.execute(
            "SELECT t_ms, value, quality FROM readings WHERE channel = ? AND t_ms >= ? ORDER BY t_ms",
            (channel, start),
        ).fetchall()

    @staticmethod
    def drop_increments(db: sqlite3.Connection, channel: str, from_bucket_ms: int) -> None:
        db.execute("DELETE FROM increments WHERE channel = ? AND bucket_ms >= ?", (channel, from_bucket_ms))

    @staticmethod
    def applied_exchanges(db: sqlite3.Connection) -> dict[str, tuple[str, int]]:
        """Meter exchange records the increments reflect: record → (channel, at_ms)."""
        rows = db.execute("SELECT record, channel, at_ms FROM applied_exchanges").fetchall()
        return {r: (c, at) for r, c, at in rows}

    @staticmethod
    def set_exchange_applied(db: sqlite3.Connection, record: str, channel: str, at_ms: int, on: bool) -> None:
        if on:
            db.execute("INSERT OR REPLACE INTO applied_exchanges VALUES (?, ?, ?)", (record, channel, at_ms))
        else:
            db.execute("DELETE FROM applied_exchanges WHERE record = ?", (record,))

    @staticmethod
    def add_events(db: sqlite3.Connection, events: Iterable[CounterEvent]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO counter_events VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (e.channel, round(e.t1_s * 1000), e.kind, round(e.t0_s * 1000), e.v0, e.v1, e.qty)
                for e in events
            ],
        )

    @staticmethod
    def drop_events(db: sqlite3.Connection, channel: str, from_ms: int) -> None:
        db.execute("DELETE FROM counter_events WHERE channel = ? AND t1_ms >= ?", (channel, from_ms))

    def events(self, start_ms: int, end_ms: int) -> list[CounterEvent]:
        """Counter events whose later reading lies in [start_ms, end_ms), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT channel, kind, t0_ms, t1_ms, v0, v1, qty FROM counter_events"
                " WHERE t1_ms >= ? AND t1_ms < ? ORDER BY t1_ms, channel",
                (start_ms, end_ms),
            ).fetchall()
        return [CounterEvent(c, k, t0 / 1000.0, t1 / 1000.0, v0, v1, q) for c, k, t0, t1, v0, v1, q in rows]

    def good_windows(self) -> dict[str, tuple[int, int]]:
        """First and last good reading time per channel: the window each counter's deltas are complete in."""
        with self._lock:
            rows = self._db.execute(
                "SELECT channel, first_good_t_ms, good_t_ms FROM channel_state"
                " WHERE first_good_t_ms IS NOT NULL AND good_t_ms IS NOT NULL"
            ).fetchall()
        return {ch: (lo, hi) for ch, lo, hi in rows}

    def increments(self, start_ms: int, end_ms: int) -> list[tuple[str, int, float, float]]:
        with self._lock:
            return self._db.execute(
                "SELECT channel, bucket_ms, qty, cov_s FROM increments WHERE bucket_ms >= ? AND bucket_ms < ?"
                " ORDER BY bucket_ms",
                (start_ms, end_ms),
            ).fetchall()

    # -- KPIs ----------------------------------------------------------------------------------------------
    def put_kpi(self, line: str, period: str, start_ms: int, end_ms: int, doc: dict) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO kpis VALUES (?, ?, ?, ?, ?, ?)",
                (line, period, start_ms, end_ms, _now_ms(), json.dumps(doc, sort_keys=True)),
            )

    def kpis(self, period: str | None = None) -> list[dict]:
        with self._lock:
            sql = (
                "SELECT doc FROM kpis" + (" WHERE period = ?" if period else "") + " ORDER BY start_ms, line"
            )
            rows = self._db.execute(sql, (period,) if period else ()).fetchall()
        return [json.loads(r[0]) for r in rows]

    # -- births, dead letters, counters --------------------------------------------------------------------
    def put_birth(self, agent: str, site: str, doc: dict) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO births VALUES (?, ?, ?, ?)", (agent, site, _now_ms(), json.dumps(doc))
            )

    def dead_letter(self, topic: str, reason: str, detail: str, payload: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO dead_letters (received_ms, topic, reason, detail, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                (_now_ms(), topic, reason, detail[:2000], payload),
            )

    def dead_letters(self) -> list[tuple[str, str, str, bytes]]:
        with self._lock:
            return self._db.execute(
                "SELECT topic, reason, detail, payload FROM dead_letters ORDER BY id"
            ).fetchall()


def _now_ms() -> int:
    return int(time.time() * 1000)
