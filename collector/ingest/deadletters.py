"""Dead letters: every message the collector rejects, kept for reading and replay, within a fixed size.

A rejected message is acknowledged (a poison message must not be redelivered forever), so this store is the
only copy of it. It is bounded twice, in bytes and in count, because the junk that is rejected is exactly
the input nobody controls: a flood of 1 MiB garbage must not fill the disk. Past a cap the oldest letters
are evicted, and each eviction is counted by reason in the store itself, so the loss is visible even
after a restart.

The store is its own SQLite file beside the ledger (also when the ledger is PostgreSQL: dead letters are
local, per collector). A letter's size is what it stores that varies: the payload kept plus its topic and
detail (UTF-8). A payload that cannot fit alone is cut to a prefix; its original size and the cut are
recorded. Running totals per reason are kept by triggers in the same transaction as every insert or
delete, so an insert costs no scan and a purge from ``kilnwatch collector deadletter`` (another process)
is seen by the running collector.

Writes take one connection, reads another (WAL lets them run at once), each behind its own lock: the
ingest thread writes while the metrics thread reads ``stats()`` without waiting behind a write.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from collector.config import CollectorConfig

log = structlog.get_logger(__name__)

#: Characters of a reject's detail kept (a detail is the collector's own text: a line, not a document).
MAX_DETAIL_CHARS = 2000
#: At most one eviction warning per this many seconds: a flood evicts on every insert.
EVICTION_LOG_INTERVAL_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    size INTEGER NOT NULL,       -- the payload's size as received
    truncated INTEGER NOT NULL,  -- 1: only a prefix of the payload is kept
    bytes INTEGER NOT NULL,      -- what the letter counts against the byte cap
    payload BLOB NOT NULL        -- last: reading the other columns never touches its overflow pages
);
CREATE INDEX IF NOT EXISTS letters_by_reason ON letters (reason, id);
CREATE INDEX IF NOT EXISTS letters_by_time ON letters (received_ms);
CREATE TABLE IF NOT EXISTS totals (
    reason TEXT PRIMARY KEY, count INTEGER NOT NULL, bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evicted (reason TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS letters_added AFTER INSERT ON letters BEGIN
    INSERT INTO totals VALUES (new.reason, 1, new.bytes)
    ON CONFLICT (reason) DO UPDATE SET count = count + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS letters_removed AFTER DELETE ON letters BEGIN
    UPDATE totals SET count = count - 1, bytes = bytes - old.bytes WHERE reason = old.reason;
    DELETE FROM totals WHERE reason = old.reason AND count = 0;
END;
"""


@dataclass(frozen=True, slots=True)
class Reject:
    """One rejected message, as ingest hands it over."""

    topic: str
    reason: str
    detail: str
    payload: bytes
    received_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A stored letter's metadata (the payload is read by ``DeadLetters.get`` only)."""

    id: int
    received_ms: int
    topic: str
    reason: str
    detail: str
    #: The payload's size as received.
    size: int
    #: Only a prefix of the payload is kept (``kept`` bytes of ``size``): it cannot be replayed.
    truncated: bool
    kept: int
    #: What the letter counts against the byte cap: the payload kept, its topic and its detail.
    bytes: int


@dataclass(frozen=True, slots=True)
class DeadLetterStats:
    count: int
    bytes: int
    #: Letters evicted to stay within the caps, ever (the store's life, across restarts).
    evicted: int
    evicted_by_reason: dict[str, int]
    by_reason: dict[str, int]


@dataclass(frozen=True, slots=True)
class _Row:
    received_ms: int
    topic: str
    reason: str
    detail: str
    size: int
    truncated: bool
    bytes: int
    payload: bytes


def store_path(ledger: Path | str) -> Path:
    """The dead-letter file of a ledger: ``<ledger path>.deadletters.sqlite`` beside it."""
    return Path(f"{ledger}.deadletters.sqlite")


class DeadLetters:
    """The bounded dead-letter store (see the module docstring). Thread-safe."""

    def __init__(self, path: Path | str, max_bytes: int, max_count: int) -> None:
        if max_bytes < 1 or max_count < 1:
            raise ValueError(f"max_bytes and max_count must be at least 1, got {max_bytes}, {max_count}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._last_eviction_log = -EVICTION_LOG_INTERVAL_S
        self._unlogged_evictions: Counter[str] = Counter()
        self._db = self._connect()
        # Only takes effect on a new file; purge then gives the space back (eviction reuses it in place).
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._reader = self._connect()

    @classmethod
    def for_config(cls, cfg: CollectorConfig) -> DeadLetters:
        """The store beside ``cfg.collector.ledger``, with the configured caps."""
        section = cfg.collector
        return cls(store_path(section.ledger), section.deadletter_max_bytes, section.deadletter_max_count)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        # NORMAL, not FULL: a letter is also in the log with its reason, and a flood of junk must not
        # cost an fsync per message. WAL keeps the file consistent through a power cut either way.
        db.execute("PRAGMA synchronous=NORMAL")
        # A big group's WAL is cut back after its checkpoint rather than kept at its largest size.
        db.execute(f"PRAGMA journal_size_limit={16 * 1024 * 1024}")
        return db

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._reader.close()
            self._db.close()

    # -- writing -------------------------------------------------------------------------------------------
    def add(
        self, topic: str, reason: str, detail: str, payload: bytes, received_ms: int | None = None
    ) -> None:
        """Keep one rejected message, evicting the oldest letters if a cap would be passed."""
        self.add_many([Reject(topic, reason, detail, payload, received_ms)])

    def add_many(self, rejects: Iterable[Reject]) -> None:
        """Keep a group of rejected messages in one transaction, oldest first.

        Letters of the group that would be evicted by the group's own newer letters are not written at all
        (counted as evicted), so a group of floods never writes more than the caps to the file. Room is made
        before the group is written, so its pages reuse the evicted ones and the file stays near the cap.
        """
        rows = [self._row(r) for r in rejects]
        if not rows:
            return
        kept, dropped = self._fit(rows)
        evicted: Counter[str] = Counter(row.reason for row in dropped)
        with self._write_lock:
            with self._transaction():
                evicted.update(self._evict_oldest(len(kept), sum(r.bytes for r in kept)))
                self._db.executemany(
                    "INSERT INTO letters (received_ms, topic, reason, detail, size, truncated, bytes,"
                    " payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (r.received_ms, r.topic, r.reason, r.detail, r.size, r.truncated, r.bytes, r.payload)
                        for r in kept
                    ],
                )
                self._db.executemany(
                    "INSERT INTO evicted VALUES (?, ?)"
                    " ON CONFLICT (reason) DO UPDATE SET count = count + excluded.count",
                    list(evicted.items()),
                )
            self._note_evictions(evicted)

    def _row(self, reject: Reject) -> _Row:
        """The letter as stored: detail cut to ``MAX_DETAIL_CHARS``, payload to what the byte cap leaves."""
        detail = reject.detail[:MAX_DETAIL_CHARS]
        meta = len(reject.topic.encode()) + len(detail.encode())
        payload = bytes(reject.payload)
        room = max(self.max_bytes - meta, 0)
        kept = payload if len(payload) <= room else payload[:room]
        received_ms = reject.received_ms if reject.received_ms is not None else time.time_ns() // 1_000_000
        return _Row(
            received_ms=received_ms,
            topic=reject.topic,
            reason=reject.reason,
            detail=detail,
            size=len(payload),
            truncated=len(kept) < len(payload),
            bytes=meta + len(kept),
            payload=kept,
        )

    def _fit(self, rows: Sequence[_Row]) -> tuple[list[_Row], list[_Row]]:
        """The newest letters of a group that fit the caps by themselves, and the older rest.

        A letter whose topic and detail alone pass the byte cap cannot be kept at all and is in the rest.
        """
        count = size = 0
        start = len(rows)
        for i in range(len(rows) - 1, -1, -1):
            if count + 1 > self.max_count or size + rows[i].bytes > self.max_bytes:
                break
            count, size, start = count + 1, size + rows[i].bytes, i
        return list(rows[start:]), list(rows[:start])

    def _evict_oldest(self, count: int, size: int) -> Counter[str]:
        """Delete the oldest letters until ``count`` more letters of ``size`` bytes fit within both caps (a
        lowered cap may take many); returns how many of each reason went."""
        kept, kept_bytes = self._db.execute(
            "SELECT coalesce(sum(count), 0), coalesce(sum(bytes), 0) FROM totals"
        ).fetchone()
        excess_count, excess_bytes = kept + count - self.max_count, kept_bytes + size - self.max_bytes
        evicted: Counter[str] = Counter()
        last_id = 0
        while excess_count > 0 or excess_bytes > 0:
            oldest = self._db.execute(
                "SELECT id, reason, bytes FROM letters WHERE id > ? ORDER BY id LIMIT 256", (last_id,)
            ).fetchall()
            for letter_id, reason, nbytes in oldest:
                excess_count, excess_bytes, last_id = excess_count - 1, excess_bytes - nbytes, letter_id
                evicted[reason] += 1
                if excess_count <= 0 and excess_bytes <= 0:
                    break
        if evicted:
            self._db.execute("DELETE FROM letters WHERE id <= ?", (last_id,))
        return evicted

    def _note_evictions(self, evicted: Counter[str]) -> None:
        """Log evictions at most once per ``EVICTION_LOG_INTERVAL_S``, with what was evicted since."""
        self._unlogged_evictions.update(evicted)
        now = time.monotonic()
        if self._unlogged_evictions and now - self._last_eviction_log >= EVICTION_LOG_INTERVAL_S:
            log.warning(
                "deadletters.evicted_oldest",
                path=str(self.path),
                evicted=dict(self._unlogged_evictions),
                max_bytes=self.max_bytes,
                max_count=self.max_count,
            )
            self._unlogged_evictions.clear()
            self._last_eviction_log = now

    def remove(self, ids: Iterable[int]) -> int:
        """Forget letters by id (replayed ones); returns how many there were."""
        with self._write_lock, self._transaction():
            return self._db.execute(
                "DELETE FROM letters WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)
            ).rowcount

    def purge(self, reason: str | None = None, before_ms: int | None = None) -> int:
        """Delete the letters of a reason and/or received before a time (none given: all); returns how
        many. Purged letters are not evictions and are not counted as such. The space goes back to disk."""
        where, args = _filter(reason, before_ms)
        with self._write_lock:
            with self._transaction():
                n = self._db.execute(f"DELETE FROM letters{where}", args).rowcount
            self._db.executescript("PRAGMA incremental_vacuum;")  # execute() frees one page per call
        return n

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- reading -------------------------------------------------------------------------------------------
    def list(self, reason: str | None = None, limit: int = 100) -> tuple[DeadLetter, ...]:
        """The newest ``limit`` letters (of one reason, if given), newest first, without payloads."""
        where, args = _filter(reason, None)
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT id, received_ms, topic, reason, detail, size, truncated, length(payload), bytes"
                f" FROM letters{where} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return tuple(_letter(row) for row in rows)

    def ids(self, reason: str | None = None) -> tuple[int, ...]:
        """Every letter's id (of one reason, if given), oldest first: what a replay walks through."""
        where, args = _filter(reason, None)
        with self._read_lock:
            rows = self._reader.execute(f"SELECT id FROM letters{where} ORDER BY id", args).fetchall()
        return tuple(r[0] for r in rows)

    def get(self, letter_id: int) -> tuple[DeadLetter, bytes] | None:
        """A letter and its stored payload (a prefix when ``truncated``), or None if there is none."""
        with self._read_lock:
            row = self._reader.execute(
                "SELECT id, received_ms, topic, reason, detail, size, truncated, length(payload), bytes,"
                " payload FROM letters WHERE id = ?",
                (letter_id,),
            ).fetchone()
        return None if row is None else (_letter(row[:9]), bytes(row[9]))

    def count(self, reason: str | None = None, before_ms: int | None = None) -> int:
        """How many letters ``purge`` with the same arguments would delete."""
        where, args = _filter(reason, before_ms)
        with self._read_lock:
            return self._reader.execute(f"SELECT count(*) FROM letters{where}", args).fetchone()[0]

    def stats(self) -> DeadLetterStats:
        """Totals from the running-total tables: a few rows read, whatever the store holds."""
        with self._read_lock, self._snapshot():
            totals = self._reader.execute(
                "SELECT reason, count, bytes FROM totals ORDER BY reason"
            ).fetchall()
            evicted = dict(
                self._reader.execute("SELECT reason, count FROM evicted ORDER BY reason").fetchall()
            )
        return DeadLetterStats(
            count=sum(c for _, c, _ in totals),
            bytes=sum(b for _, _, b in totals),
            evicted=sum(evicted.values()),
            evicted_by_reason=evicted,
            by_reason={reason: c for reason, c, _ in totals},
        )

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Several reads that see one committed state (a write may commit between two statements)."""
        self._reader.execute("BEGIN")
        try:
            yield
        finally:
            self._reader.execute("COMMIT")


def _filter(reason: str | None, before_ms: int | None) -> tuple[str, tuple[object, ...]]:
    clauses, args = [], []
    if reason is not None:
        clauses.append("reason = ?")
        args.append(reason)
    if before_ms is not None:
        clauses.append("received_ms < ?")
        args.append(before_ms)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _letter(row: Sequence) -> DeadLetter:
    letter_id, received_ms, topic, reason, detail, size, truncated, kept, nbytes = row
    return DeadLetter(letter_id, received_ms, topic, reason, detail, size, bool(truncated), kept, nbytes)
