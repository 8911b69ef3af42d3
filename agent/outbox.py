"""Durable outbox: every batch is on disk before it is published, and leaves only after the broker's PUBACK.

QoS 1 alone is not store-and-forward (peers lost data this way for years): a client drops what it queued in
memory when the process dies. So the agent writes each encoded batch to SQLite first and the publisher deletes
it in its PUBACK callback. SQLite in WAL mode with ``synchronous=FULL`` makes every committed batch survive
``kill -9`` and power loss; at one batch per second the fsync costs nothing worth saving.

The outbox is also where a batch's identity comes from: the ``epoch`` (a random id made once, when the file
is created) and ``seq`` (persisted, strictly increasing, never reused even after acks or drops). With the
agent id they let the collector de-duplicate replays across outages and restarts.

It is bounded by bytes and by age; beyond either limit the oldest batches are dropped, counted (persistently)
and logged, because on a gateway a full disk is worse than a known gap.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("agent.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY, created REAL NOT NULL, payload BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    payload: bytes
    created: float


class Outbox:
    """A bounded, durable FIFO of encoded batches. Thread-safe: the runner appends, the publisher acks."""

    def __init__(
        self, path: str | Path, max_bytes: int = 256 * 1024 * 1024, max_age_s: float = 7 * 86400
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        with self._transaction():
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (uuid.uuid4().hex,))
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', '0')")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('dropped', '0')")
        self.epoch = self._meta("epoch")
        self._bytes = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM batches").fetchone()[0]

    def append(self, encode: Callable[[int], bytes], now: float | None = None) -> int:
        """Store the payload ``encode(seq)`` under the next seq, durably, and return that seq.

        The payload is built inside the transaction because it carries its own seq (the wire's batch id).
        """
        created = time.time() if now is None else now
        with self._lock, self._transaction():
            seq = int(self._meta("next_seq"))
            payload = encode(seq)
            self._db.execute("INSERT INTO batches VALUES (?, ?, ?)", (seq, created, payload))
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (str(seq + 1),))
            self._bytes += len(payload)
            self._enforce_bounds(created)
        return seq

    def pending(self, limit: int = 100, after: int = -1) -> list[Entry]:
        """Up to ``limit`` stored batches with seq > ``after``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload, created FROM batches WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        return [Entry(seq, bytes(payload), created) for seq, payload, created in rows]

    def ack(self, seq: int) -> None:
        """The broker has the batch: forget it. Acking an unknown or dropped seq is harmless."""
        with self._lock, self._transaction():
            row = self._db.execute(
                "DELETE FROM batches WHERE seq = ? RETURNING LENGTH(payload)", (seq,)
            ).fetchone()
            if row is not None:
                self._bytes -= row[0]

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        """Batches dropped by the size/age bounds since the outbox was created."""
        with self._lock:
            return int(self._meta("dropped"))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _enforce_bounds(self, now: float) -> None:
        """Drop the oldest batches beyond the age or size bound (caller holds the lock and a transaction).

        The newest batch is always kept, even when it alone exceeds ``max_bytes``.
        """
        dropped = self._db.execute(
            "DELETE FROM batches WHERE created < ? AND seq < (SELECT MAX(seq) FROM batches) "
            "RETURNING seq, LENGTH(payload)",
            (now - self.max_age_s,),
        ).fetchall()
        while self._bytes - sum(size for _, size in dropped) > self.max_bytes:
            row = self._db.execute(
                "DELETE FROM batches WHERE seq = (SELECT MIN(seq) FROM batches) "
                "AND seq < (SELECT MAX(seq) FROM batches) RETURNING seq, LENGTH(payload)"
            ).fetchone()
            if row is None:
                break
            dropped.append(row)
        if not dropped:
            return
        self._bytes -= sum(size for _, size in dropped)
        total = int(self._meta("dropped")) + len(dropped)
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'dropped'", (str(total),))
        seqs = sorted(seq for seq, _ in dropped)
        log.warning(
            "outbox full: dropped oldest batches",
            count=len(dropped),
            first_seq=seqs[0],
            last_seq=seqs[-1],
            dropped_total=total,
            max_bytes=self.max_bytes,
            max_age_s=self.max_age_s,
        )

    def _meta(self, key: str) -> str:
        return self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error (the connection runs in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
