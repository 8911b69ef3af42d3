"""The SQLite backend of the ledger: the embedded default (WAL, full fsync on commit).

One commit per group of messages (``collector.ingest``), not per message: a full fsync costs about a
millisecond here, which per message capped the old collector at a few hundred batches a second.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from collector.ledger.sql import ADD_INCREMENTS, SCHEMA_VERSION, ChannelState, Ledger, LedgerError

__all__ = ["ChannelState", "Ledger", "SqliteBackend", "open_sqlite"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    agent TEXT NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL,
    received_ms INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (agent, epoch, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channels (
    id INTEGER PRIMARY KEY, site TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (site, name)
);
CREATE TABLE IF NOT EXISTS readings (
    channel INTEGER NOT NULL, t_ms INTEGER NOT NULL, value REAL, quality INTEGER NOT NULL,
    PRIMARY KEY (channel, t_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channel_state (
    channel INTEGER PRIMARY KEY,
    last_t_ms INTEGER NOT NULL, last_value REAL, last_quality INTEGER NOT NULL,
    good_t_ms INTEGER, good_value REAL, first_good_t_ms INTEGER
);
CREATE TABLE IF NOT EXISTS counter_events (
    channel INTEGER NOT NULL, t1_ms INTEGER NOT NULL, kind TEXT NOT NULL, t0_ms INTEGER NOT NULL,
    v0 REAL NOT NULL, v1 REAL NOT NULL, qty REAL NOT NULL,
    PRIMARY KEY (channel, t1_ms, kind)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counter_events_time ON counter_events (t1_ms);
CREATE TABLE IF NOT EXISTS applied_exchanges (
    record TEXT PRIMARY KEY, channel INTEGER NOT NULL, at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS increments (
    channel INTEGER NOT NULL, bucket_ms INTEGER NOT NULL, qty REAL NOT NULL, cov_s REAL NOT NULL,
    PRIMARY KEY (channel, bucket_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS increments_time ON increments (bucket_ms);
CREATE TABLE IF NOT EXISTS kpis (
    site TEXT NOT NULL, line TEXT NOT NULL, period TEXT NOT NULL, start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL, computed_ms INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (site, line, period, start_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS births (
    site TEXT NOT NULL, agent TEXT NOT NULL, received_ms INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (site, agent)
);
CREATE TABLE IF NOT EXISTS held (
    site TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (site, name)
);
CREATE TABLE IF NOT EXISTS restatements (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, site TEXT NOT NULL, line TEXT NOT NULL,
    period TEXT NOT NULL, start_ms INTEGER NOT NULL, old TEXT NOT NULL, new TEXT NOT NULL
);
"""


class SqliteBackend:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a PUBACK'd batch must survive power loss
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "batches" in tables and "meta" not in tables:
            raise LedgerError(
                f"{path}: a ledger of the one-site schema (channels by name, before schema version 2) — move"
                " it aside and let the collector start a new one; the agents' outboxes and the readings files"
                " hold what it had"
            )
        self._db.executescript(SCHEMA)
        self._db.execute(
            "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", (str(SCHEMA_VERSION),)
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._db.execute(sql, params).fetchall()

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()

    def add_increments(self, rows: Iterable[tuple[int, int, float, float]]) -> None:
        self._db.executemany(ADD_INCREMENTS, rows)

    def add_readings(
        self, ids: np.ndarray, t_ms: np.ndarray, values: np.ndarray, quality: np.ndarray
    ) -> None:
        v = values.astype(object)
        v[np.isnan(values)] = None
        self._db.executemany(
            "INSERT INTO readings VALUES (?, ?, ?, ?) ON CONFLICT (channel, t_ms) DO UPDATE SET"
            " value = excluded.value, quality = excluded.quality",
            zip(ids.tolist(), t_ms.tolist(), v.tolist(), quality.tolist(), strict=True),
        )


def open_sqlite(path: str | Path) -> Ledger:
    return Ledger(SqliteBackend(str(path)))
