"""The PostgreSQL backend of the ledger: for several collectors sharing a site, or a ledger off the host.

Select it with a ``postgresql://`` URL (``ledger_url`` in ``[collector]``; ``Ledger.open`` takes the same
URL). The ledger's portable SQL (``collector.ledger.sql``) runs unchanged: ``?`` becomes ``%s`` here.

Connection loss. A restart or crash of the server, or a broken network, raises
:class:`~collector.ledger.sql.LedgerUnavailable` (in ``collector.ledger.sql.UNAVAILABLE``, what the ingest
pipeline catches) from whichever call meets it: a statement, the ``COMMIT`` or the reconnect; so do the
server's transient errors (SQLSTATE classes 08, 53, 57, serialization failures and deadlocks). The
transaction in flight is gone (rolled back by the server, or — when the connection broke during ``COMMIT``
— committed or not, nobody can say), so the pipeline keeps the group's MQTT messages unacknowledged and
applies the whole group again. Nothing is lost (unacknowledged messages are retried or redelivered) and
nothing is applied twice (the batch claims are in the same transaction, so a group that did commit comes
back as duplicates). The backend itself sends again only what changes nothing: a ``BEGIN`` or a read that
found the connection dead outside a transaction (a server restarted while the collector was idle) runs once
more on a new connection, so the first group after a restart goes through without an error. Connecting
retries with exponential backoff (``reconnect_base_s`` doubling up to ``reconnect_max_delay_s``) for up to
``reconnect_timeout_s``; past that it raises ``LedgerUnavailable`` and the caller's next try starts a new
round. Any other error (a defect: bad SQL, a constraint) is raised as psycopg's own.

Write transactions take one advisory lock (``pg_advisory_xact_lock``), so two collectors on one ledger write
one after the other, as SQLite's ``BEGIN IMMEDIATE`` does: a channel's saved state is read and replaced in
the same transaction, and two interleaved groups of one channel would otherwise lose one update. Reads and
``put_kpi``/``put_birth`` run outside transactions, in autocommit.

Bulk upserts (``python -m benchmarks.ledger_postgres_insert``: its own server, fsync on, one transaction
with its commit, medians of 7 rounds taking turns, rows/s, on the 2-core machine under a load average of
10, so absolute figures are low and spread ±40 %; COPY came first in every round):

==============================  ==========  ===========  ===================
100,000 rows                    readings    increments   (22,000 readings)
==============================  ==========  ===========  ===================
``executemany`` (pipelined)     24,000      30,000       38,000
``unnest`` arrays               39,000      30,000       66,000
binary COPY + staged upsert     76,000      55,000       103,000
binary COPY, no upsert (bound)  116,000     —            229,000
==============================  ==========  ===========  ===================

So both bulk upserts stage by binary COPY: :meth:`PostgresBackend.add_readings` (the ``Backend`` protocol's)
and :meth:`PostgresBackend.add_increments` (for ``Tx.add_increments``, whose portable form is the
``executemany`` row).
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import psycopg
import structlog
from psycopg import conninfo
from psycopg.pq import TransactionStatus

from collector.ledger.sql import SCHEMA_VERSION, LedgerError, LedgerUnavailable

__all__ = ["SCHEMA", "PostgresBackend"]

log = structlog.get_logger("collector.ledger.postgres")

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    agent TEXT NOT NULL, epoch TEXT NOT NULL, seq BIGINT NOT NULL,
    received_ms BIGINT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (agent, epoch, seq)
);
CREATE TABLE IF NOT EXISTS channels (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, site TEXT NOT NULL, name TEXT NOT NULL,
    UNIQUE (site, name)
);
CREATE TABLE IF NOT EXISTS readings (
    channel BIGINT NOT NULL, t_ms BIGINT NOT NULL, value DOUBLE PRECISION, quality INTEGER NOT NULL,
    PRIMARY KEY (channel, t_ms)
);
CREATE TABLE IF NOT EXISTS channel_state (
    channel BIGINT PRIMARY KEY,
    last_t_ms BIGINT NOT NULL, last_value DOUBLE PRECISION, last_quality INTEGER NOT NULL,
    good_t_ms BIGINT, good_value DOUBLE PRECISION, first_good_t_ms BIGINT
);
CREATE TABLE IF NOT EXISTS counter_events (
    channel BIGINT NOT NULL, t1_ms BIGINT NOT NULL, kind TEXT NOT NULL, t0_ms BIGINT NOT NULL,
    v0 DOUBLE PRECISION NOT NULL, v1 DOUBLE PRECISION NOT NULL, qty DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel, t1_ms, kind)
);
CREATE INDEX IF NOT EXISTS counter_events_time ON counter_events (t1_ms);
CREATE TABLE IF NOT EXISTS applied_exchanges (
    record TEXT PRIMARY KEY, channel BIGINT NOT NULL, at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS increments (
    channel BIGINT NOT NULL, bucket_ms BIGINT NOT NULL, qty DOUBLE PRECISION NOT NULL,
    cov_s DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel, bucket_ms)
);
CREATE INDEX IF NOT EXISTS increments_time ON increments (bucket_ms);
CREATE TABLE IF NOT EXISTS kpis (
    site TEXT NOT NULL, line TEXT NOT NULL, period TEXT NOT NULL, start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL, computed_ms BIGINT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (site, line, period, start_ms)
);
CREATE TABLE IF NOT EXISTS births (
    site TEXT NOT NULL, agent TEXT NOT NULL, received_ms BIGINT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (site, agent)
);
CREATE TABLE IF NOT EXISTS held (
    site TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (site, name)
);
CREATE TABLE IF NOT EXISTS restatements (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at_ms BIGINT NOT NULL, site TEXT NOT NULL,
    line TEXT NOT NULL, period TEXT NOT NULL, start_ms BIGINT NOT NULL, old TEXT NOT NULL, new TEXT NOT NULL
);
"""

#: Advisory lock keys: one for schema creation (two collectors starting at once), one for write transactions.
SCHEMA_LOCK, WRITE_LOCK = 0x4B57_0001, 0x4B57_0002

BEGIN_WRITE = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"

#: Per-connection staging tables for the bulk upserts: binary COPY is the fastest way in, but cannot upsert.
#: ON COMMIT DELETE ROWS empties them at each commit without leaving dead rows behind (temporary tables are
#: never vacuumed); a second call within one transaction deletes what the first staged.
STAGES = (
    "CREATE TEMP TABLE IF NOT EXISTS readings_in"
    " (channel BIGINT, t_ms BIGINT, value DOUBLE PRECISION, quality INTEGER) ON COMMIT DELETE ROWS;"
    " CREATE TEMP TABLE IF NOT EXISTS increments_in"
    " (channel BIGINT, bucket_ms BIGINT, qty DOUBLE PRECISION, cov_s DOUBLE PRECISION) ON COMMIT DELETE ROWS"
)
UPSERT_STAGED_READINGS = (
    "INSERT INTO readings SELECT channel, t_ms, NULLIF(value, 'NaN'), quality FROM readings_in"
    " ON CONFLICT (channel, t_ms) DO UPDATE SET value = excluded.value, quality = excluded.quality"
)
UPSERT_STAGED_INCREMENTS = (
    "INSERT INTO increments SELECT channel, bucket_ms, sum(qty), sum(cov_s) FROM increments_in"
    " GROUP BY channel, bucket_ms ON CONFLICT (channel, bucket_ms) DO UPDATE SET"
    " qty = increments.qty + excluded.qty, cov_s = increments.cov_s + excluded.cov_s"
)

#: PostgreSQL's binary COPY framing. A row of fixed-size fields has a fixed size (a field count, then each
#: field's length and its big-endian bytes), so numpy writes the whole COPY stream at once.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)


def copy_row(*columns: tuple[str, str]) -> np.dtype:
    fields = [("fields", ">i2")]
    for name, kind in columns:
        fields += [(f"{name}_len", ">i4"), (name, kind)]
    return np.dtype(fields)


#: NaN travels as NaN and becomes NULL in SQL, so every reading row has the same size.
READING_ROW = copy_row(("channel", ">i8"), ("t_ms", ">i8"), ("value", ">f8"), ("quality", ">i4"))
INCREMENT_ROW = copy_row(("channel", ">i8"), ("bucket_ms", ">i8"), ("qty", ">f8"), ("cov_s", ">f8"))


#: SQLSTATEs after which the whole transaction may simply be tried again: connection exceptions (08),
#: insufficient resources (53: disk full, out of memory), operator intervention (57: shutdown, cancel),
#: serialization failure and deadlock.
RETRY_CLASSES = ("08", "53", "57")
RETRY_STATES = ("40001", "40P01")


class PostgresBackend:
    """One connection (the :class:`~collector.ledger.sql.Ledger` serialises its users with a lock)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: int = 5,
        reconnect_timeout_s: float = 10.0,
        reconnect_base_s: float = 0.05,
        reconnect_max_delay_s: float = 2.0,
    ) -> None:
        self.url = url
        try:
            info = conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as e:
            raise LedgerError(
                f"ledger_url is not a PostgreSQL URL libpq can read ({_one_line(e)}) — write"
                " postgresql://user@host:port/database"
            ) from e
        #: Where, without the password: for logs and errors.
        self.where = f"postgresql://{info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_timeout_s = reconnect_timeout_s
        self.reconnect_base_s = reconnect_base_s
        self.reconnect_max_delay_s = reconnect_max_delay_s
        self._conn: psycopg.Connection | None = None
        self._in_tx = False
        self._create_schema()

    # -- connection ----------------------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        """The open connection, or a new one after retrying with backoff for ``reconnect_timeout_s``."""
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        if self._in_tx:  # the transaction died with its connection: never go on in a new one
            raise LedgerUnavailable(f"{self.where}: connection lost inside a transaction")
        lost = self._conn is not None
        started = time.monotonic()
        delay, attempt = self.reconnect_base_s, 0
        while True:
            attempt += 1
            try:
                conn = psycopg.connect(
                    self.url,
                    autocommit=True,  # transactions are explicit (begin); reads and put_kpi autocommit
                    connect_timeout=self.connect_timeout_s,
                    keepalives=1,  # a dead server or link is noticed within ~25 s, not at the TCP timeout
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
                conn.execute(STAGES)
                break
            except psycopg.OperationalError as e:
                waited = time.monotonic() - started
                if waited + delay > self.reconnect_timeout_s:
                    raise LedgerUnavailable(
                        f"{self.where}: cannot connect ({attempt} tries in {waited:.1f} s): {_one_line(e)}"
                        " — check that PostgreSQL is running and that ledger_url names it"
                    ) from e
                log.warning("ledger.connect_failed", where=self.where, attempt=attempt, error=_one_line(e))
                time.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_delay_s)
        if lost:
            after_s = round(time.monotonic() - started, 3)
            log.info("ledger.reconnected", where=self.where, tries=attempt, after_s=after_s)
        self._conn = conn
        return conn

    @contextmanager
    def _guard(self) -> Iterator[psycopg.Connection]:
        """The connection for one call; a lost connection or a transient server error becomes
        :class:`~collector.ledger.sql.LedgerUnavailable`, any other error stays what it is (a defect)."""
        conn = self._connect()
        try:
            yield conn
        except psycopg.Error as e:
            lost = conn.closed or conn.broken
            state = e.sqlstate or ""
            if not lost and state[:2] not in RETRY_CLASSES and state not in RETRY_STATES:
                raise
            log.warning(
                "ledger.postgres_unavailable",
                where=self.where,
                lost=lost,
                sqlstate=state,
                in_transaction=self._in_tx,
            )
            what = "connection lost" if lost else f"transient error {state}"
            raise LedgerUnavailable(f"{self.where}: {what}: {_one_line(e)}") from e

    def _create_schema(self) -> None:
        with self._guard() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(SCHEMA)
            conn.execute(
                "INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise LedgerError(
                f"{self.where}: ledger schema version {row[0] if row else 'none'}, this collector writes"
                f" {SCHEMA_VERSION} — point ledger_url at a new database, or run the version that wrote it"
            )

    # -- the Backend protocol --------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._guard() as conn:
            return conn.execute(_pg(sql), params).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._guard() as conn, conn.cursor() as cur:
            cur.executemany(_pg(sql), rows)  # pipelined: the statements go out without waiting for answers

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        def run() -> list[tuple]:
            with self._guard() as conn:
                return conn.execute(_pg(sql), params).fetchall()

        return self._again_if_lost_idle(run)

    def begin(self) -> None:
        """Open a write transaction once the other collectors' are done (the write lock, module docstring)."""

        def run() -> None:
            with self._guard() as conn:
                try:
                    conn.execute(BEGIN_WRITE)
                except BaseException:
                    self._end(conn)  # the caller's rollback() never runs for a begin() that failed
                    raise
            self._in_tx = True

        self._again_if_lost_idle(run)

    def _again_if_lost_idle(self, call: Callable[[], T]) -> T:
        """Run ``call``; if it found the connection dead outside a transaction (the server restarted while
        we were idle), run it once more on a new connection. Only for calls that change nothing: BEGIN and
        reads; a write sent outside a transaction may have been applied, so it is never sent twice."""
        in_tx = self._in_tx
        try:
            return call()
        except LedgerUnavailable:
            conn = self._conn
            if in_tx or conn is None or not (conn.closed or conn.broken):
                raise
            return call()

    def commit(self) -> None:
        """Commit; a connection lost here leaves the outcome unknown, which the batch claims make harmless."""
        try:
            with self._guard() as conn:
                conn.execute("COMMIT")
        finally:
            self._in_tx = False

    def rollback(self) -> None:
        """Roll back; after a lost connection there is nothing to roll back (the server did)."""
        self._in_tx = False
        if self._conn is not None:
            self._end(self._conn)

    @staticmethod
    def _end(conn: psycopg.Connection) -> None:
        """End whatever transaction a live connection has open; a dead one has none."""
        if conn.closed or conn.broken or conn.info.transaction_status == TransactionStatus.IDLE:
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            if not (conn.closed or conn.broken):
                raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def add_readings(
        self, ids: np.ndarray, t_ms: np.ndarray, values: np.ndarray, quality: np.ndarray
    ) -> None:
        """Upsert raw readings (NaN value = NULL; of one (channel, t_ms) twice, the later wins, as in SQLite)
        by binary COPY into a staging table and one ``INSERT ... SELECT ... ON CONFLICT`` (module docstring:
        the fastest of the ways measured)."""
        keep = _last_per_key(ids, t_ms)
        columns = {"channel": ids[keep], "t_ms": t_ms[keep], "value": values[keep], "quality": quality[keep]}
        self._upsert_staged("readings_in", _copy_stream(READING_ROW, columns), UPSERT_STAGED_READINGS)

    def add_increments(self, rows: Iterable[tuple[int, int, float, float]]) -> None:
        """Add ``(channel id, bucket_ms, qty, cov_s)`` to the stored increments (a new key starts at 0), the
        rows of one key summed first (one upsert cannot touch a row twice): the sums of the ledger's
        ``executemany`` upsert, by binary COPY into a staging table, faster (module docstring)."""
        cols = list(zip(*rows, strict=True))
        if not cols:
            return
        columns = {
            "channel": np.array(cols[0], dtype=np.int64),
            "bucket_ms": np.array(cols[1], dtype=np.int64),
            "qty": np.array(cols[2], dtype=np.float64),
            "cov_s": np.array(cols[3], dtype=np.float64),
        }
        self._upsert_staged("increments_in", _copy_stream(INCREMENT_ROW, columns), UPSERT_STAGED_INCREMENTS)

    def _upsert_staged(self, stage: str, stream: bytes, upsert: str) -> None:
        with self._guard() as conn, conn.cursor() as cur:
            with cur.copy(f"COPY {stage} FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(stream)
            cur.execute(upsert)
            cur.execute(f"DELETE FROM {stage}")  # a second call in this transaction starts empty


def _copy_stream(row: np.dtype, columns: dict[str, np.ndarray]) -> bytes:
    """A whole binary COPY stream of equally long columns, each a fixed-size field of ``row``."""
    rows = np.empty(len(next(iter(columns.values()))), row)
    rows["fields"] = len(columns)
    for name, values in columns.items():
        rows[f"{name}_len"] = row[name].itemsize
        rows[name] = values
    return COPY_HEADER + rows.tobytes() + COPY_TRAILER


def _last_per_key(ids: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
    """Indices of the last row of each (channel, t_ms), sorted by key: one upsert cannot touch a row twice."""
    order = np.lexsort((np.arange(len(ids)), t_ms, ids))
    k_ids, k_t = ids[order], t_ms[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (k_ids[1:] != k_ids[:-1]) | (k_t[1:] != k_t[:-1])
    return order[last]


def _one_line(error: BaseException) -> str:
    """libpq's messages span lines (a hint after a tab); a log field or error line wants one."""
    return " ".join(str(error).split())


@functools.lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """The ledger's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")
