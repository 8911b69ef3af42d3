"""Bulk inserts into the PostgreSQL ledger: ``python -m benchmarks.ledger_postgres_insert [N] [--repeat R]``.

Not a test (no timed assertions). Starts its own PostgreSQL on a free loopback port (``tests/servers.py``,
fsync on, never 5432), creates the ledger schema (``collector.ledger.postgres.SCHEMA``) and times, for ``N``
raw readings (default 100,000; 1,000 channels × 100 timestamps, 1 % NULL values) and for ``N`` increments,
each way of upserting them in one transaction, commit included, on empty tables:

- ``executemany``: psycopg 3's ``executemany`` of the ledger's ``INSERT ... ON CONFLICT`` (pipelined: the
  statements go out without waiting for each answer);
- ``unnest``: one ``INSERT ... SELECT FROM unnest(%s::bigint[], ...) ON CONFLICT`` with the columns as lists
  (for increments summed per key first, as one upsert cannot touch a row twice);
- ``copy``: the backend's way (``PostgresBackend.add_readings`` and ``add_increments``): a numpy-built binary
  COPY stream into a staging table, then one ``INSERT ... SELECT ... ON CONFLICT``;
- ``copy, no upsert``: binary COPY straight into the table, row by row (psycopg's ``write_row``): the upper
  bound, as it fails on a duplicate key, so the ledger cannot use it.

The cases take turns, ``--repeat`` rounds (default 3), so a busy moment of the machine hits each alike; the
median and the range of rows/s are printed. The figures are in the module docstring of
``collector/ledger/postgres.py``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg

from collector.ledger import postgres
from tests.servers import postgresql

READINGS_UPSERT = (
    "INSERT INTO readings VALUES (%s, %s, %s, %s) ON CONFLICT (channel, t_ms) DO UPDATE SET"
    " value = excluded.value, quality = excluded.quality"
)
READINGS_UNNEST = (
    "INSERT INTO readings SELECT c, t, NULLIF(v, 'NaN'), q"
    " FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::int[]) AS u(c, t, v, q)"
    " ON CONFLICT (channel, t_ms) DO UPDATE SET value = excluded.value, quality = excluded.quality"
)
INCREMENTS_UPSERT = (
    "INSERT INTO increments VALUES (%s, %s, %s, %s) ON CONFLICT (channel, bucket_ms) DO UPDATE SET"
    " qty = increments.qty + excluded.qty, cov_s = increments.cov_s + excluded.cov_s"
)
INCREMENTS_UNNEST = (
    "INSERT INTO increments SELECT c, b, sum(q), sum(s)"
    " FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::float8[]) AS u(c, b, q, s) GROUP BY c, b"
    " ON CONFLICT (channel, bucket_ms) DO UPDATE SET"
    " qty = increments.qty + excluded.qty, cov_s = increments.cov_s + excluded.cov_s"
)


def columns(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    channels = 1000
    ids = np.tile(np.arange(1, channels + 1, dtype=np.int64), -(-n // channels))[:n]
    t = 1_767_225_600_000 + (np.arange(n, dtype=np.int64) // channels) * 1000
    v = rng.normal(1000.0, 50.0, n)
    v[rng.random(n) < 0.01] = np.nan
    q = (rng.random(n) < 0.02).astype(np.uint8)
    return ids, t, v, q


def as_rows(ids: np.ndarray, t: np.ndarray, v: np.ndarray, q: np.ndarray) -> list[tuple]:
    values = [None if x != x else x for x in v.tolist()]
    return list(zip(ids.tolist(), t.tolist(), values, q.tolist(), strict=True))


def timed(conn: psycopg.Connection, table: str, work: Callable[[psycopg.Connection], None]) -> float:
    conn.execute(f"TRUNCATE {table}")
    started = time.perf_counter()
    conn.execute("BEGIN")
    work(conn)
    conn.execute("COMMIT")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ids, t, v, q = columns(args.n)
    buckets = (t - t[0]) * 900 + t[0]  # one 15-min bucket per timestamp: distinct keys, as a group sends

    with tempfile.TemporaryDirectory() as tmp, postgresql(Path(tmp)) as server:
        backend = postgres.PostgresBackend(server.dsn)
        conn = backend._connect()

        def increment_rows() -> zip:
            return zip(ids.tolist(), buckets.tolist(), v.tolist(), v.tolist(), strict=True)

        def readings_executemany(c: psycopg.Connection) -> None:
            with c.cursor() as cur:
                cur.executemany(READINGS_UPSERT, as_rows(ids, t, v, q))

        def readings_unnest(c: psycopg.Connection) -> None:
            c.execute(READINGS_UNNEST, (ids.tolist(), t.tolist(), v.tolist(), q.tolist()))

        def readings_copy(c: psycopg.Connection) -> None:
            backend.add_readings(ids, t, v, q)

        def readings_copy_plain(c: psycopg.Connection) -> None:
            with c.cursor() as cur, cur.copy("COPY readings FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int8", "float8", "int4"])
                for row in as_rows(ids, t, v, q):
                    copy.write_row(row)

        def increments_executemany(c: psycopg.Connection) -> None:
            with c.cursor() as cur:
                cur.executemany(INCREMENTS_UPSERT, increment_rows())

        def increments_unnest(c: psycopg.Connection) -> None:
            cid, bucket, qty, cov = (list(col) for col in zip(*increment_rows(), strict=True))
            c.execute(INCREMENTS_UNNEST, (cid, bucket, qty, cov))

        def increments_copy(c: psycopg.Connection) -> None:
            backend.add_increments(increment_rows())

        cases = [
            ("readings", "executemany", readings_executemany),
            ("readings", "unnest", readings_unnest),
            ("readings", "copy", readings_copy),
            ("readings", "copy, no upsert", readings_copy_plain),
            ("increments", "executemany", increments_executemany),
            ("increments", "unnest", increments_unnest),
            ("increments", "copy", increments_copy),
        ]
        print(f"{args.n:,} rows per transaction, {args.repeat} rounds, commit included; rows/s")
        secs: dict[str, list[float]] = {f"{table:<11}{name:<17}": [] for table, name, _ in cases}
        for _ in range(args.repeat):
            for (table, _, work), runs in zip(cases, secs.values(), strict=True):
                runs.append(timed(conn, table, work))
        for label, runs in secs.items():
            rates = sorted(args.n / x for x in runs)
            median = statistics.median(rates)
            print(f"{label}median {median:>9,.0f}   range {rates[0]:>9,.0f} – {rates[-1]:>9,.0f}")
        backend.close()


if __name__ == "__main__":
    main()
