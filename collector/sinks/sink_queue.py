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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, lines TEXT NOT NULL, n INTEGER NOT NULL,
    done TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY, line TEXT NOT NULL, reason TEXT NOT NULL, at_ms INTEGER NOT NULL
);
"""

#: A line's id: its chunk's id shifted left by this many bits, plus its index in the chunk.
INDEX_BITS = 32


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

    Lines are stored a chunk per ``append`` (one row holding a group's lines, newline-separated: line
    protocol has no raw newline inside a line), not a row per line: the collector appends tens of
    thousands of readings per group, and a row per line cost a third of its CPU in inserts, reads and
    deletes. A line's id is ``chunk id << 32 | index``; ``done`` lists the indexes already removed from a
    partly delivered chunk. Safe to share between the ingest thread (``append``) and the dispatcher thread.
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
        self._adopt_line_rows()
        #: chunk id → (its lines, indexes done): the chunks ``peek`` has split, kept until they leave
        self._split: dict[int, tuple[list[str], set[int]]] = {}
        self._depth: int = sum(
            n - len(json.loads(done)) for n, done in self._db.execute("SELECT n, done FROM chunks")
        )

    def _adopt_line_rows(self) -> None:
        """A queue file of the one-row-per-line layout: its waiting lines become one chunk, in order."""
        old = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'pending'")
        if old.fetchone() is None:
            return
        with self._db:
            lines = [r[0] for r in self._db.execute("SELECT line FROM pending ORDER BY id")]
            if lines:
                self._db.execute(
                    "INSERT INTO chunks (lines, n) VALUES (?, ?)", ("\n".join(lines), len(lines))
                )
            self._db.execute("DROP TABLE pending")

    def append(self, lines: Sequence[str]) -> None:
        """Queue lines durably (one transaction); drops the oldest lines if the limit is passed."""
        if not lines:
            return
        if any("\n" in line for line in lines):
            raise ValueError("a line protocol line cannot hold a newline")
        with self._lock, self._resync_on_error(), self._db:
            self._db.execute("INSERT INTO chunks (lines, n) VALUES (?, ?)", ("\n".join(lines), len(lines)))
            self._depth += len(lines)
            excess = self._depth - self.max_rows
            if excess > 0:
                dropped = self._drop_oldest(excess)
                self._depth -= dropped
                self.dropped += dropped
                log.warning(
                    "sink_queue_full_dropped_oldest",
                    path=str(self.path),
                    dropped=dropped,
                    dropped_total=self.dropped,
                    max_rows=self.max_rows,
                )

    def _drop_oldest(self, count: int) -> int:
        dropped = 0
        while dropped < count:
            head = self._chunk_ids(1)
            if not head:
                break
            cid = head[0]
            lines, done = self._lines(cid)
            left = [i for i in range(len(lines)) if i not in done]
            take = left[: count - dropped]
            self._mark_done(cid, lines, done, take)
            dropped += len(take)
        return dropped

    def _chunk_ids(self, limit: int | None = None) -> list[int]:
        sql = "SELECT id FROM chunks ORDER BY id" + ("" if limit is None else f" LIMIT {int(limit)}")
        return [r[0] for r in self._db.execute(sql)]

    def _lines(self, cid: int) -> tuple[list[str], set[int]]:
        cached = self._split.get(cid)
        if cached is None:
            row = self._db.execute("SELECT lines, done FROM chunks WHERE id = ?", (cid,)).fetchone()
            if row is None:
                return [], set()
            cached = self._split[cid] = (row[0].split("\n"), set(json.loads(row[1])))
        return cached

    def _mark_done(self, cid: int, lines: list[str], done: set[int], indexes: Sequence[int]) -> int:
        """Mark lines of one chunk gone (in the caller's transaction); returns how many were still waiting."""
        new = {i for i in indexes if 0 <= i < len(lines)} - done
        if not new:
            return 0
        done |= new
        if len(done) >= len(lines):
            self._db.execute("DELETE FROM chunks WHERE id = ?", (cid,))
            self._split.pop(cid, None)
        else:
            self._db.execute("UPDATE chunks SET done = ? WHERE id = ?", (json.dumps(sorted(done)), cid))
        return len(new)

    def peek(self, limit: int) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        with self._lock:
            for cid in self._chunk_ids():
                lines, done = self._lines(cid)
                base = cid << INDEX_BITS
                for i, line in enumerate(lines):
                    if i not in done:
                        out.append((base | i, line))
                        if len(out) >= limit:
                            return out
        return out

    def remove(self, ids: Sequence[int]) -> None:
        with self._lock, self._resync_on_error(), self._db:
            self._depth -= self._delete(ids)

    @contextmanager
    def _resync_on_error(self) -> Iterator[None]:
        """A transaction that failed leaves the file as it was: forget the split chunks and count again."""
        try:
            yield
        except BaseException:
            self._split.clear()
            self._depth = self._count()
            raise

    def _count(self) -> int:
        return sum(n - len(json.loads(done)) for n, done in self._db.execute("SELECT n, done FROM chunks"))

    def dead_letter(self, items: Sequence[tuple[int, str]], reason: str) -> None:
        at_ms = time.time_ns() // 1_000_000
        with self._lock, self._resync_on_error(), self._db:
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
        """Mark lines as gone, chunk by chunk; returns how many were still waiting."""
        by_chunk: dict[int, list[int]] = {}
        for item_id in ids:
            by_chunk.setdefault(item_id >> INDEX_BITS, []).append(item_id & ((1 << INDEX_BITS) - 1))
        gone = 0
        for cid, indexes in by_chunk.items():
            lines, done = self._lines(cid)
            gone += self._mark_done(cid, lines, done, indexes)
        return gone
