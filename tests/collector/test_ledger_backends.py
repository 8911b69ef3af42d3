"""The ledger behaves the same on SQLite and on PostgreSQL, and a PostgreSQL restart loses nothing.

The behaviour tests run once per backend. PostgreSQL is a real server of the test's own
(``tests/servers.py``): one cluster per module with a fresh database per test for the behaviour tests, and
one cluster per test (the ``pg`` fixture) for the restart and outage tests. Expected values are worked out
by hand in each test.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from collector.kpis.quantities import CounterEvent
from collector.ledger.postgres import WRITE_LOCK, PostgresBackend
from collector.ledger.sql import SCHEMA_VERSION, ChannelState, Ledger, LedgerError, LedgerUnavailable
from collector.ledger.sqlite import SqliteBackend
from tests import servers

_databases = itertools.count(1)


@pytest.fixture(scope="module")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.PgServer]:
    with servers.postgresql(tmp_path_factory.mktemp("postgres")) as s:
        yield s


def fresh_database(server: servers.PgServer) -> str:
    name = f"ledger_{next(_databases)}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.dsn.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        backend = SqliteBackend(str(tmp_path / "ledger.sqlite"))
    else:
        backend = PostgresBackend(fresh_database(request.getfixturevalue("pg_cluster")))
    led = Ledger(backend)
    yield led
    led.close()


def arrays(rows: list[tuple[int, int, float, int]]) -> tuple[np.ndarray, ...]:
    ids, t, v, q = zip(*rows, strict=True)
    return (
        np.array(ids, dtype=np.int64),
        np.array(t, dtype=np.int64),
        np.array(v, dtype=np.float64),
        np.array(q, dtype=np.uint8),
    )


# -- the same behaviour on both backends ---------------------------------------------------------------------
def test_batches_are_claimed_once(ledger: Ledger) -> None:
    with ledger.transaction() as tx:
        assert tx.claim_batch("s1/a", "e1", 1, 3) is True
        assert tx.claim_batch("s1/a", "e1", 1, 3) is False  # again in the same transaction
    with ledger.transaction() as tx:
        assert tx.claim_batch("s1/a", "e1", 1, 3) is False  # redelivered later
        assert tx.claim_batch("s1/a", "e1", 2, 3) is True  # next seq
        assert tx.claim_batch("s1/a", "e2", 1, 3) is True  # new epoch, same seq
        assert tx.claim_batch("s2/a", "e1", 1, 3) is True  # same agent name, other site
    assert ledger.batches_count() == 4


def test_a_group_of_batches_is_claimed_in_bulk_with_repeats_inside_it(ledger: Ledger) -> None:
    with ledger.transaction() as tx:
        assert tx.claim_batches([("s/a", "e", 1, 2), ("s/a", "e", 2, 2)]) == [True, True]
    with ledger.transaction() as tx:
        # seq 2 was applied before; seq 3 comes twice in this group (an outbox replay): once only.
        got = tx.claim_batches(
            [("s/a", "e", 2, 2), ("s/a", "e", 3, 2), ("s/a", "e", 3, 2), ("t/a", "e", 2, 2)]
        )
        assert got == [False, True, False, True]
    # 1 + 2, then 3 and t/a's 2: four batches in all.
    assert ledger.batches_count() == 4


def test_a_rolled_back_transaction_leaves_nothing(ledger: Ledger) -> None:
    with pytest.raises(ZeroDivisionError), ledger.transaction() as tx:
        tx.claim_batch("s/a", "e", 1, 1)
        (cid,) = tx.channel_ids([("s", "a/p")])
        tx.add_readings(*arrays([(cid, 1000, 5.0, 0)]))
        _ = 1 / 0
    assert ledger.batches_count() == 0
    assert ledger.readings_count() == 0
    with ledger.transaction() as tx:
        assert tx.claim_batch("s/a", "e", 1, 1) is True


def test_channel_ids_per_site_stay_the_same(ledger: Ledger) -> None:
    with ledger.transaction() as tx:
        a, b, a2 = tx.channel_ids([("s1", "gw/kwh"), ("s2", "gw/kwh"), ("s1", "gw/kwh")])
    assert a == a2 and a != b
    with ledger.transaction() as tx:
        assert tx.channel_ids([("s2", "gw/kwh"), ("s1", "gw/kwh")]) == [b, a]
    assert ledger.channel_name(a) == ("s1", "gw/kwh")
    assert ledger.channel_name(b) == ("s2", "gw/kwh")


def test_channel_state_round_trip(ledger: Ledger) -> None:
    full = ChannelState(1_000, 12.5, 0, 1_000, 12.5, 500)
    bad = ChannelState(2_000, None, 2, None, None, None)
    with ledger.transaction() as tx:
        a, b, c = tx.channel_ids([("s", "a/x"), ("s", "a/y"), ("s", "a/z")])
        tx.set_channel_states([(a, full), (b, bad)])
    with ledger.transaction() as tx:
        assert tx.channel_states([a, b, c]) == {a: full, b: bad}  # c has none
        later = ChannelState(3_000, 13.0, 0, 3_000, 13.0, 500)
        tx.set_channel_states([(a, later)])
    with ledger.transaction() as tx:
        assert tx.channel_states([a]) == {a: later}
    assert ledger.good_windows() == {"a/x": (500, 3_000)}  # b has no good reading


def test_increments_upsert_adds(ledger: Ledger) -> None:
    with ledger.transaction() as tx:
        a, b = tx.channel_ids([("s", "a/kwh"), ("t", "a/kwh")])
        tx.add_increments([(a, 0, 1.5, 600.0), (a, 900_000, 2.0, 900.0), (b, 0, 7.0, 900.0)])
    with ledger.transaction() as tx:
        tx.add_increments([(a, 0, 0.25, 300.0)])
        tx.add_increments([(a, 0, 0.125, 0.0)])
    # bucket 0 of a: 1.5 + 0.25 + 0.125 = 1.875 kWh over 600 + 300 + 0 = 900 s
    assert ledger.increments(0, 1_800_000, site="s") == [
        ("a/kwh", 0, 1.875, 900.0),
        ("a/kwh", 900_000, 2.0, 900.0),
    ]
    assert ledger.increments(0, 900_000, site="t") == [("a/kwh", 0, 7.0, 900.0)]
    assert ledger.increments(900_000, 1_800_000) == [("a/kwh", 900_000, 2.0, 900.0)]  # [start, end)
    with ledger.transaction() as tx:
        tx.drop_increments(a, 900_000)
    assert ledger.increments(0, 1_800_000, site="s") == [("a/kwh", 0, 1.875, 900.0)]


def test_readings_upsert_and_readings_since(ledger: Ledger) -> None:
    with ledger.transaction() as tx:
        (a,) = tx.channel_ids([("s", "a/kwh")])
        tx.add_readings(
            *arrays(
                [
                    (a, 1_000, 10.0, 0),
                    (a, 2_000, 11.0, 0),  # the last good reading before 3_500
                    (a, 3_000, 99.0, 2),  # bad quality
                    (a, 3_200, math.nan, 0),  # no value
                    (a, 4_000, 12.0, 0),
                    (a, 4_000, 12.5, 0),  # the same instant again in one call: the later one wins
                ]
            )
        )
    with ledger.transaction() as tx:
        tx.add_readings(*arrays([(a, 1_000, 10.25, 1)]))  # replaced in a later transaction
    assert ledger.readings_count() == 5  # 1_000, 2_000, 3_000, 3_200, 4_000
    with ledger.transaction() as tx:
        assert tx.readings_since(a, 3_500) == [
            (2_000, 11.0, 0),
            (3_000, 99.0, 2),
            (3_200, None, 0),
            (4_000, 12.5, 0),
        ]
        # before the first reading there is no good one: start at t_ms itself
        assert tx.readings_since(a, 500) == [
            (1_000, 10.25, 1),
            (2_000, 11.0, 0),
            (3_000, 99.0, 2),
            (3_200, None, 0),
            (4_000, 12.5, 0),
        ]
    assert ledger.prune_readings(2_500) == 2  # 1_000 and 2_000
    assert ledger.readings_count() == 3


def test_counter_events(ledger: Ledger) -> None:
    with ledger.transaction() as tx:
        a, b = tx.channel_ids([("s", "a/kwh"), ("s", "b/kwh")])
        tx.add_events(
            [
                (a, CounterEvent("a/kwh", "rollover", 9.0, 10.0, 99_990.0, 5.0, 15.0)),
                (b, CounterEvent("b/kwh", "reset", 19.0, 20.0, 500.0, 0.0, 0.0)),
                (a, CounterEvent("a/kwh", "implausible", 29.0, 30.0, 5.0, 9_000.0, 8_995.0)),
            ]
        )
    with ledger.transaction() as tx:  # the same event again (a recomputation) replaces it
        tx.add_events([(b, CounterEvent("b/kwh", "reset", 19.5, 20.0, 480.0, 0.0, 0.0))])
    assert ledger.events(10_000, 30_000) == [  # by t1: [10 s, 30 s)
        CounterEvent("a/kwh", "rollover", 9.0, 10.0, 99_990.0, 5.0, 15.0),
        CounterEvent("b/kwh", "reset", 19.5, 20.0, 480.0, 0.0, 0.0),
    ]
    with ledger.transaction() as tx:
        tx.drop_events(a, 20_000)
    assert [e.kind for e in ledger.events(0, 60_000)] == ["rollover", "reset"]


def test_kpis_put_and_get(ledger: Ledger) -> None:
    day = {"site": "s", "line": "k1", "period": "day", "start_ms": 0, "end_ms": 86_400_000, "kgce_t": 101.5}
    hour1 = {"site": "s", "line": "k1", "period": "hour", "start_ms": 3_600_000, "end_ms": 7_200_000, "v": 1}
    hour0 = {"site": "t", "line": "k1", "period": "hour", "start_ms": 0, "end_ms": 3_600_000, "v": 2}
    assert ledger.put_kpi(day) is None
    assert ledger.put_kpi(hour1) is None
    assert ledger.put_kpi(hour0) is None
    restated = {**day, "kgce_t": 102.0}
    assert ledger.put_kpi(restated) == day  # the one it replaced
    assert ledger.kpis("day") == [restated]
    assert ledger.kpis("hour") == [hour0, hour1]  # by start_ms
    assert ledger.kpis(site="t") == [hour0]
    assert ledger.kpis() == [restated, hour0, hour1]  # start_ms 0 (site s, then t), 3_600_000
    ledger.put_restatement("s", "k1", "day", 0, day, restated)
    (r,) = ledger.restatements("s")
    assert (r["site"], r["period"], r["old"], r["new"]) == ("s", "day", day, restated)


def test_births(ledger: Ledger) -> None:
    ledger.put_birth("s", "gw1", {"epoch": "e1", "points": ["kwh"]})
    ledger.put_birth("t", "gw1", {"epoch": "x"})
    ledger.put_birth("s", "gw1", {"epoch": "e2", "points": ["kwh", "kvarh"]})  # a restart's birth replaces
    assert ledger.births() == {
        ("s", "gw1"): {"epoch": "e2", "points": ["kwh", "kvarh"]},
        ("t", "gw1"): {"epoch": "x"},
    }


def test_meter_exchanges_applied(ledger: Ledger) -> None:
    with ledger.transaction() as tx:
        a, b = tx.channel_ids([("s", "a/kwh"), ("t", "a/kwh")])
        tx.set_exchange_applied("r1", a, 5_000, on=True)
        tx.set_exchange_applied("r2", b, 6_000, on=True)
        tx.set_exchange_applied("r1", a, 7_000, on=True)  # the record changed
    with ledger.transaction() as tx:
        assert tx.applied_exchanges("s") == {"r1": (a, 7_000)}
        tx.set_exchange_applied("r1", a, 7_000, on=False)
        assert tx.applied_exchanges("s") == {}
        assert tx.applied_exchanges("t") == {"r2": (b, 6_000)}


# -- PostgreSQL only: the bulk paths, restarts, outages, two collectors --------------------------------------
def pg_ledger(server: servers.PgServer, **options: float) -> Ledger:
    return Ledger(PostgresBackend(server.dsn, **options))


def backend_pid(led: Ledger) -> int:
    return led.backend.query("SELECT pg_backend_pid()")[0][0]


def apply_group(led: Ledger, seq: int, cut: servers.PgServer | None = None) -> None:
    """One group as the ingest applies it: claim, channel ids, readings, state, increments; ``cut`` stops the
    server halfway, after the readings went in."""
    with led.transaction() as tx:
        if not tx.claim_batch("s/gw", "e", seq, 2):
            return
        a, b = tx.channel_ids([("s", "gw/kwh"), ("s", "gw/t")])
        tx.add_readings(*arrays([(a, seq * 1000, 100.0 + seq, 0), (b, seq * 1000, 1450.0, 0)]))
        if cut is not None:
            cut.stop()
        tx.set_channel_states([(a, ChannelState(seq * 1000, 100.0 + seq, 0, seq * 1000, 100.0 + seq, 1000))])
        tx.add_increments([(a, 0, 1.0, 1.0)])


def test_pg_bulk_increments_sum_repeated_keys(pg: servers.PgServer) -> None:
    led = pg_ledger(pg)
    with led.transaction() as tx:
        a, b = tx.channel_ids([("s", "a/kwh"), ("s", "b/kwh")])
    backend = led.backend
    assert isinstance(backend, PostgresBackend)
    with led.transaction():
        backend.add_increments([(a, 0, 1.5, 60.0), (a, 0, 2.25, 30.0), (b, 900_000, 4.0, 900.0)])
        backend.add_increments([])
    with led.transaction():
        backend.add_increments(iter([(a, 0, 0.25, 10.0)]))
    # a, bucket 0: 1.5 + 2.25 + 0.25 = 4.0 kWh over 60 + 30 + 10 = 100 s
    assert led.increments(0, 1_800_000) == [("a/kwh", 0, 4.0, 100.0), ("b/kwh", 900_000, 4.0, 900.0)]


def test_pg_restart_between_transactions(pg: servers.PgServer) -> None:
    led = pg_ledger(pg)
    apply_group(led, 1)
    before = backend_pid(led)
    pg.restart()
    apply_group(led, 2)  # no error: BEGIN found the old connection dead and went again on a new one
    assert backend_pid(led) != before
    assert led.batches_count() == 2
    assert led.readings_count() == 4
    assert led.increments(0, 900_000) == [("gw/kwh", 0, 2.0, 2.0)]  # 1.0 + 1.0, once per group


def test_pg_cut_mid_transaction_leaves_nothing_and_the_retry_applies_once(pg: servers.PgServer) -> None:
    led = pg_ledger(pg)
    apply_group(led, 1)
    with pytest.raises(LedgerUnavailable, match="connection lost"):
        apply_group(led, 2, cut=pg)
    pg.start()
    # nothing of group 2: not its claim, its readings, its state or its increment
    assert led.batches_count() == 1
    assert led.readings_count() == 2
    with led.transaction() as tx:
        (a,) = tx.channel_ids([("s", "gw/kwh")])
        assert tx.channel_states([a])[a].last_t_ms == 1000
    # the pipeline retries the group: applied once; a redelivery after that is a duplicate
    apply_group(led, 2)
    apply_group(led, 2)
    assert led.batches_count() == 2
    assert led.readings_count() == 4
    assert led.increments(0, 900_000) == [("gw/kwh", 0, 2.0, 2.0)]


def test_pg_connection_lost_at_commit(pg: servers.PgServer) -> None:
    led = pg_ledger(pg)
    with pytest.raises(LedgerUnavailable), led.transaction() as tx:
        tx.claim_batch("s/gw", "e", 1, 1)
        pg.stop()  # the statements are done; COMMIT meets the closed connection
    pg.start()
    assert led.batches_count() == 0
    with led.transaction() as tx:
        assert tx.claim_batch("s/gw", "e", 1, 1) is True


def test_pg_server_away_gives_up_after_the_reconnect_timeout_then_recovers(pg: servers.PgServer) -> None:
    led = pg_ledger(pg, reconnect_timeout_s=1.0)
    pg.stop()
    started = time.monotonic()
    with pytest.raises(LedgerUnavailable, match=r"cannot connect .* ledger_url names it") as err:
        led.batches_count()
    assert time.monotonic() - started < 15.0  # 1 s of retries; generous for a loaded machine
    assert "postgresql://127.0.0.1:" in str(err.value)
    with pytest.raises(LedgerUnavailable), led.transaction():
        pass
    pg.start()
    with led.transaction() as tx:
        assert tx.claim_batch("s/gw", "e", 1, 1) is True
    assert led.batches_count() == 1


def test_pg_password_is_not_in_errors(pg: servers.PgServer) -> None:
    secret_url = pg.dsn.replace("postgres@", "postgres:s3cret@")
    led = Ledger(PostgresBackend(secret_url, reconnect_timeout_s=0.5))
    pg.stop()
    with pytest.raises(LedgerUnavailable) as err:
        led.batches_count()
    assert "s3cret" not in str(err.value)
    pg.start()


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def waiting_on_lock(server: servers.PgServer, pid: int) -> bool:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


def test_pg_two_collectors_write_one_after_the_other(pg: servers.PgServer) -> None:
    first, second = pg_ledger(pg), pg_ledger(pg)
    second_pid = backend_pid(second)
    done = threading.Event()

    def second_group() -> None:
        with second.transaction() as tx:
            tx.claim_batch("s/gw", "e", 2, 1)
        done.set()

    with first.transaction() as tx:
        tx.claim_batch("s/gw", "e", 1, 1)
        worker = threading.Thread(target=second_group)
        worker.start()
        wait_until(lambda: waiting_on_lock(pg, second_pid))
        assert not done.is_set()
    worker.join(20)
    assert done.is_set()
    assert first.batches_count() == 2


def test_pg_cancelled_statement_is_transient_and_the_connection_stays(pg: servers.PgServer) -> None:
    led = pg_ledger(pg)
    pid = backend_pid(led)
    errors: list[BaseException] = []

    def group() -> None:
        try:
            with led.transaction() as tx:
                tx.claim_batch("s/gw", "e", 1, 1)
        except BaseException as e:
            errors.append(e)

    with psycopg.connect(pg.dsn, autocommit=True) as holder, holder.transaction():
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        worker = threading.Thread(target=group)
        worker.start()
        wait_until(lambda: waiting_on_lock(pg, pid))
        holder.execute("SELECT pg_cancel_backend(%s)", (pid,))
        worker.join(20)
    assert len(errors) == 1 and isinstance(errors[0], LedgerUnavailable)
    assert "57014" in str(errors[0])  # query_canceled
    with led.transaction() as tx:  # the same connection, its failed transaction ended
        assert tx.claim_batch("s/gw", "e", 1, 1) is True
    assert backend_pid(led) == pid


def test_pg_a_defect_stays_a_defect(pg: servers.PgServer) -> None:
    led = pg_ledger(pg)
    with pytest.raises(psycopg.errors.UndefinedTable), led.transaction() as tx:
        tx.claim_batch("s/gw", "e", 1, 1)
        tx.db.execute("INSERT INTO no_such_table VALUES (?)", (1,))
    assert led.batches_count() == 0
    with led.transaction() as tx:
        assert tx.claim_batch("s/gw", "e", 1, 1) is True


def test_pg_schema_of_another_version_is_refused(pg: servers.PgServer) -> None:
    pg_ledger(pg).close()
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with pytest.raises(
        LedgerError, match=f"schema version 1, this collector writes {SCHEMA_VERSION} — point ledger_url"
    ):
        PostgresBackend(pg.dsn)


def test_pg_unreadable_url_is_a_ledger_error() -> None:
    with pytest.raises(LedgerError, match=r"ledger_url is not a PostgreSQL URL .* — write postgresql://"):
        PostgresBackend("postgresql://host:port/db?no_such_option=1")


def test_pg_open_by_url(pg: servers.PgServer) -> None:
    led = Ledger.open(pg.dsn)
    assert isinstance(led.backend, PostgresBackend)
    led.put_birth("s", "gw", {"epoch": "e"})
    assert Ledger.open(pg.dsn).births() == {("s", "gw"): {"epoch": "e"}}
