"""The durable queue a sink dispatcher drains, and a SQLite implementation of it ("bounded spill").

The dispatcher only needs ``SinkQueue``, so the collector can back it by its ledger instead. The SQLite
queue is for when it does not: its own file, WAL with ``synchronous=FULL`` so an acknowledged append
survives a crash or a power cut, and a row limit so a month-long outage cannot fill the disk. Past the
limit the oldest lines are dropped, counted and logged: the one place a point can be lost, on purpose,
and visibly.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY, line TEXT NOT NULL, reason TEXT NOT NULL, at_ms INTEGER NOT NULL
);
"""


class SinkQueue(Protocol):
    """Lines waiting for a sink, oldest first, each with an id that increases with age."""

    def peek(self, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` oldest (id, line) pairs, without removing them."""
        ...

    def remove(self, ids: Sequence[int]) -> None:
        """Forget lines the sink has accepted."""
        ...

    def dead_letter(self, items: Sequence[tuple[int, str]], reason: str) -> None:
        """Move lines the sink will never accept out of the queue, keeping them and the reason."""
        ...

    def depth(self) -> int:
        """How many lines are waiting."""
        ...


@dataclass(frozen=True)
class DeadLetter:
    id: int
    line: str
    reason: str
    at_ms: int


class SqliteSinkQueue:
    """A ``SinkQueue`` in its own SQLite file, holding at most ``max_rows`` lines (oldest dropped first).

    Safe to share between the ingest thread (``append``) and the dispatcher thread.
    """

    def __init__(self, path: str | Path, max_rows: int = 2_000_000) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.path = Path(path)
        self.max_rows = max_rows
        #: Lines dropped because the queue was full, since this object was opened.
        self.dropped = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._depth: int = self._db.execute("SELECT count(*) FROM pending").fetchone()[0]

    def append(self, lines: Sequence[str]) -> None:
        """Queue lines durably (one transaction); drops the oldest lines if the limit is passed."""
        if not lines:
            return
        with self._lock, self._db:
            self._db.executemany("INSERT INTO pending (line) VALUES (?)", ((line,) for line in lines))
            self._depth += len(lines)
            excess = self._depth - self.max_rows
            if excess > 0:
                dropped = self._db.execute(
                    "DELETE FROM pending WHERE id IN (SELECT id FROM pending ORDER BY id LIMIT ?)", (excess,)
                ).rowcount
                self._depth -= dropped
                self.dropped += dropped
                log.warning(
                    "sink_queue_full_dropped_oldest",
                    path=str(self.path),
                    dropped=dropped,
                    dropped_total=self.dropped,
                    max_rows=self.max_rows,
                )

    def peek(self, limit: int) -> list[tuple[int, str]]:
        with self._lock:
            return self._db.execute("SELECT id, line FROM pending ORDER BY id LIMIT ?", (limit,)).fetchall()

    def remove(self, ids: Sequence[int]) -> None:
        with self._lock, self._db:
            self._depth -= self._delete(ids)

    def dead_letter(self, items: Sequence[tuple[int, str]], reason: str) -> None:
        at_ms = time.time_ns() // 1_000_000
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO dead_letter (id, line, reason, at_ms) VALUES (?, ?, ?, ?)",
                ((item_id, line, reason, at_ms) for item_id, line in items),
            )
            self._depth -= self._delete([item_id for item_id, _ in items])

    def depth(self) -> int:
        with self._lock:
            return self._depth

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        """The oldest dead-lettered lines with the server's reason, for operators and tests."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, line, reason, at_ms FROM dead_letter ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _delete(self, ids: Sequence[int]) -> int:
        """Delete by id in one statement (any count: ids travel as one JSON array); returns rows deleted."""
        return self._db.execute(
            "DELETE FROM pending WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)
        ).rowcount
