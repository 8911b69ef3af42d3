"""Durable outbox: every batch is on disk before it is published, and leaves only after the broker's PUBACK.

QoS 1 alone is not store-and-forward (peers lost data this way for years): a client drops what it queued in
memory when the process dies. So the agent writes each encoded batch to SQLite first and the publisher deletes
it in its PUBACK callback. SQLite in WAL mode with ``synchronous=FULL`` makes every committed batch survive
``kill -9`` and power loss; at one batch per second the fsync costs nothing worth saving. A replay acks
thousands of batches a second, so acks are deleted in groups (``ack_many``: one transaction, one fsync).

The outbox is also where a batch's identity comes from: the ``epoch`` (a random id made once, when the file
is created) and ``seq`` (persisted, strictly increasing, never reused even after acks or drops). With the
agent id they let the collector de-duplicate replays across outages and restarts.

It is bounded by bytes and by age; beyond either limit the oldest batches are dropped, counted (persistently,
by reason) and logged, because on a gateway a full disk is worse than a known gap. Both bounds are enforced
on append, walking from the oldest seq, so a large outbox never costs a table scan per batch.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("agent.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY, created REAL NOT NULL, payload BLOB NOT NULL);
"""


#: Why batches were dropped; each reason has a persistent counter in the meta table.
DROP_REASONS = ("max_bytes", "max_age")
#: Seqs per DELETE statement in ``ack_many`` (SQLite allows 32766 bound parameters, old builds 999).
_ACK_CHUNK = 500
#: Seconds between "outbox full" warnings while drops go on; each sums up the drops since the previous one.
DROP_LOG_INTERVAL_S = 60.0


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
            for reason in DROP_REASONS:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, '0')", (f"dropped_{reason}",))
        self.epoch = self._meta("epoch")
        self._dropped = {reason: int(self._meta(f"dropped_{reason}")) for reason in DROP_REASONS}
        self._dropped_total = int(self._meta("dropped"))  # older files counted drops without reasons
        self._unlogged: dict[str, tuple[int, int, int]] = {}  # reason → (count, first seq, last seq)
        self._logged_at = -DROP_LOG_INTERVAL_S
        self._count, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM batches"
        ).fetchone()

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
            self._count += 1
            self._bytes += len(payload)
            self._enforce_bounds(seq, created)
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
        self.ack_many([seq])

    def ack_many(self, seqs: Sequence[int]) -> None:
        """The broker has all these batches: forget them in one transaction (one fsync, not one per batch).

        Unknown or already dropped seqs are harmless. This is what lets a replay run at thousands of batches a
        second: with ``synchronous=FULL`` each commit is an fsync, so a commit per PUBACK caps the rate at the
        disk's fsyncs per second (often a few hundred on an SD card or eMMC).
        """
        if not seqs:
            return
        sizes: list[tuple[int]] = []
        with self._lock:
            with self._transaction():
                for start in range(0, len(seqs), _ACK_CHUNK):
                    chunk = tuple(seqs[start : start + _ACK_CHUNK])
                    marks = ",".join("?" * len(chunk))
                    sizes += self._db.execute(
                        f"DELETE FROM batches WHERE seq IN ({marks}) RETURNING LENGTH(payload)", chunk
                    ).fetchall()
            self._count -= len(sizes)
            self._bytes -= sum(size for (size,) in sizes)

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        """Batches dropped by the size/age bounds since the outbox was created."""
        return self._dropped_total

    def dropped_by_reason(self) -> dict[str, int]:
        """Dropped batches per reason (``max_bytes``, ``max_age``) since the outbox was created."""
        return dict(self._dropped)

    def oldest_created(self) -> float | None:
        """Unix time the oldest stored batch was made, or None when the outbox is empty."""
        with self._lock:
            row = self._db.execute("SELECT created FROM batches ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        with self._lock:
            self._log_drops()
            self._db.close()

    def _enforce_bounds(self, newest: int, now: float) -> None:
        """Drop the oldest batches beyond the age or size bound (caller holds the lock and a transaction).

        Both walk from the smallest seq (the primary key, so no table scan) and stop at the first batch within
        bounds; the newest batch (``newest``) is always kept, even when it alone exceeds ``max_bytes``. Seq
        order is creation order unless the wall clock stepped back, in which case a few batches may outlive
        ``max_age_s`` until the ones before them go.
        """
        dropped: dict[str, list[int]] = {}
        while self._count > 1:
            seq, created, size = self._db.execute(
                "SELECT seq, created, LENGTH(payload) FROM batches ORDER BY seq LIMIT 1"
            ).fetchone()
            if seq == newest:
                break
            if created < now - self.max_age_s:
                reason = "max_age"
            elif self._bytes > self.max_bytes:
                reason = "max_bytes"
            else:
                break
            self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            self._count -= 1
            self._bytes -= size
            dropped.setdefault(reason, []).append(seq)
        for reason, seqs in dropped.items():
            self._dropped[reason] += len(seqs)
            self._dropped_total += len(seqs)
            self._db.execute(
                "UPDATE meta SET value = ? WHERE key = ?", (str(self._dropped[reason]), f"dropped_{reason}")
            )
            count, first, _ = self._unlogged.get(reason, (0, seqs[0], 0))
            self._unlogged[reason] = (count + len(seqs), first, seqs[-1])
        if dropped:
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'dropped'", (str(self.dropped),))
            if time.monotonic() - self._logged_at >= DROP_LOG_INTERVAL_S:
                self._log_drops()

    def _log_drops(self) -> None:
        """One warning per reason for the drops since the last one (at the bound, each append drops one)."""
        for reason, (count, first, last) in self._unlogged.items():
            log.warning(
                "outbox full: dropped oldest batches",
                reason=reason,
                count=count,
                first_seq=first,
                last_seq=last,
                dropped_total=self.dropped,
                max_bytes=self.max_bytes,
                max_age_s=self.max_age_s,
            )
        self._unlogged.clear()
        self._logged_at = time.monotonic()

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
