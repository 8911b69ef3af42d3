"""InfluxV1Writer against a real InfluxDB 1.6.7, read back with InfluxQL."""

from __future__ import annotations

import pytest

from collector.sinks import InfluxConfig, InfluxV1Writer, SinkError
from collector.sinks.line_protocol import kpi_lines, readings_lines
from tests.influx_read import influx_rows, influxql
from tests.servers import HttpServer, free_port

DB = "kilnwatch"
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def writer_for(server: HttpServer, **overrides) -> InfluxV1Writer:
    writer = InfluxV1Writer(InfluxConfig(api="v1", url=server.url, database=DB, **overrides))
    writer.ensure_database()
    return writer


@pytest.mark.parametrize("gzip", [False, True])
def test_readings_land_with_exact_values(influx1, gzip):
    writer = writer_for(influx1, gzip=gzip, batch_lines=5000)
    count = 12_001  # three full batches and one of a single line
    channels = ["kiln_kw", "mill_kwh", "coal_t"]
    # reading i: channel i % 3, one second apart, value i/4 (exact in binary), every 10th missing (BAD)
    expected = {}
    columns = ([], [], [], [])
    for i in range(count):
        channel, t, value, quality = channels[i % 3], T0 + i * 1000, (None if i % 10 == 0 else i / 4), 0
        if value is None:
            quality = 2
        for column, item in zip(columns, (channel, t, value, quality), strict=True):
            column.append(item)
        expected[(channel, t)] = (value, quality)
    writer.write(readings_lines("plant1", "gw1", *columns))

    counted = influxql(influx1.url, DB, "SELECT count(value), count(quality) FROM reading GROUP BY channel")
    per_channel = {s["tags"]["channel"]: s["values"][0][1:] for s in counted}
    missing = {c: sum(1 for i in range(0, count, 10) if i % 3 == n) for n, c in enumerate(channels)}
    in_channel = {c: len(range(n, count, 3)) for n, c in enumerate(channels)}
    assert per_channel == {c: [in_channel[c] - missing[c], in_channel[c]] for c in channels}

    rows = influx_rows(influx1.url, DB, "SELECT value, quality FROM reading GROUP BY channel")
    assert {(r["channel"], r["time"]): (r["value"], r["quality"]) for r in rows} == expected


def test_field_types_are_stable(influx1):
    writer = writer_for(influx1)
    writer.write(readings_lines("s", "a", ["c", "c"], [T0, T0 + 1], [0.0, 7], [0, 0]))
    kpi_fields = {"kgce_per_t": 0.0, "lots": 2, "ok": True, "grade": "1"}
    writer.write([kpi_lines("s", "kiln1", "day", T0, kpi_fields)])
    types = {
        (s["name"], field): kind
        for s in influxql(influx1.url, DB, "SHOW FIELD KEYS")
        for field, kind in s["values"]
    }
    assert types == {
        ("reading", "value"): "float",
        ("reading", "quality"): "integer",
        ("kpi", "kgce_per_t"): "float",
        ("kpi", "lots"): "integer",
        ("kpi", "ok"): "boolean",
        ("kpi", "grade"): "string",
    }


def test_escaped_names_and_strings_come_back_verbatim(influx1):
    writer = writer_for(influx1)
    line_name, note = "kiln 2, east=old", 'operator said "ok" at C:\\logs'
    writer.write([kpi_lines("plant one", line_name, "shift", T0, {"note": note, "t co2": 812.5})])
    rows = influx_rows(influx1.url, DB, 'SELECT "note", "t co2" FROM kpi GROUP BY *')
    assert rows == [
        {"line": line_name, "period": "shift", "site": "plant one", "time": T0, "note": note, "t co2": 812.5}
    ]


def test_same_series_and_time_overwrites(influx1):
    writer = writer_for(influx1)
    writer.write(readings_lines("s", "a", ["c"], [T0], [1.25], [0]))
    writer.write(readings_lines("s", "a", ["c"], [T0], [2.5], [1]))
    rows = influx_rows(influx1.url, DB, "SELECT value, quality FROM reading")
    assert rows == [{"time": T0, "value": 2.5, "quality": 1}]


def test_type_conflict_names_the_line_and_good_lines_land(influx1):
    writer = writer_for(influx1)
    writer.write(readings_lines("s", "a", ["c"], [T0], [1.5], [0]))
    good = readings_lines("s", "a", ["c", "c"], [T0 + 1000, T0 + 3000], [2.5, 3.5], [0, 0])
    bad = "reading,agent=a,channel=c,site=s value=9i,quality=0i 1700000002000"
    with pytest.raises(SinkError) as caught:
        writer.write([good[0], bad, good[1]])
    assert caught.value.retryable is False
    assert caught.value.offending == (bad,)
    assert bad in caught.value.detail
    assert "type conflict" in caught.value.detail
    # InfluxDB 1.x keeps the points of a batch it could write ("partial write")
    rows = influx_rows(influx1.url, DB, "SELECT value FROM reading")
    assert [(r["time"], r["value"]) for r in rows] == [(T0, 1.5), (T0 + 1000, 2.5), (T0 + 3000, 3.5)]


def test_parse_error_names_the_line(influx1):
    writer = writer_for(influx1)
    bad = "reading,agent=a,channel=c,site=s value=1.0,quality=0i not-a-time"
    with pytest.raises(SinkError) as caught:
        writer.write([bad])
    assert (caught.value.retryable, caught.value.offending) == (False, (bad,))
    assert bad in caught.value.detail


def test_ensure_database_is_idempotent(influx1):
    writer = writer_for(influx1)
    writer.ensure_database()
    databases = [row[0] for row in influxql(influx1.url, DB, "SHOW DATABASES")[0]["values"]]
    assert databases.count(DB) == 1


def test_missing_database_is_created_on_first_write(influx1):
    # e.g. the server was down when the collector started, so ensure_database() never ran
    writer = InfluxV1Writer(InfluxConfig(api="v1", url=influx1.url, database="created_late"))
    writer.write(readings_lines("s", "a", ["c"], [T0], [1.0], [0]))
    assert influx_rows(influx1.url, "created_late", "SELECT value FROM reading") == [
        {"time": T0, "value": 1.0}
    ]


def test_unreachable_server_is_retryable():
    writer = InfluxV1Writer(
        InfluxConfig(api="v1", url=f"http://127.0.0.1:{free_port()}", database=DB, timeout_s=2)
    )
    with pytest.raises(SinkError) as caught:
        writer.write(["reading,site=s value=1.0 1"])
    assert caught.value.retryable is True
    assert "unreachable" in caught.value.detail


def test_basic_auth(restartable_influx1):
    server = restartable_influx1
    server.kill()
    conf = server.workdir / "influxdb.conf"
    conf.write_text(conf.read_text().replace("[http]\n", "[http]\n  auth-enabled = true\n"))
    server.start()
    admin = ("kiln", "p@ss w:rd")
    # with auth on and no users, InfluxDB 1.x lets anyone create the first admin
    influxql(server.url, DB, f"CREATE USER {admin[0]} WITH PASSWORD '{admin[1]}' WITH ALL PRIVILEGES")

    writer = writer_for(server, username=admin[0], password=admin[1])
    writer.write(readings_lines("s", "a", ["c"], [T0], [4.5], [0]))
    assert influx_rows(server.url, DB, "SELECT value FROM reading", auth=admin) == [
        {"time": T0, "value": 4.5}
    ]

    wrong = InfluxConfig(api="v1", url=server.url, database=DB, username=admin[0], password="wrong")
    with pytest.raises(SinkError) as caught:
        InfluxV1Writer(wrong).write(readings_lines("s", "a", ["c"], [T0], [9.0], [0]))
    assert caught.value.retryable is True  # fix the password and the queued lines go through
    assert "HTTP 401" in caught.value.detail

    # a user that may write but not create databases keeps getting "database not found", retryably
    for statement in (
        "CREATE USER logger WITH PASSWORD 'w'",
        'CREATE DATABASE "gone"',
        'GRANT WRITE ON "gone" TO logger',
        'DROP DATABASE "gone"',
    ):
        influxql(server.url, DB, statement, auth=admin)
    limited = InfluxConfig(api="v1", url=server.url, database="gone", username="logger", password="w")
    with pytest.raises(SinkError) as caught:
        InfluxV1Writer(limited).write(readings_lines("s", "a", ["c"], [T0], [9.0], [0]))
    assert caught.value.retryable is True
    assert "database not found" in caught.value.detail
