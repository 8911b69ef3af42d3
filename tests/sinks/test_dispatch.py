"""SinkDispatcher with real InfluxDB 1.6.7 processes that are killed and restarted, and real bad data."""

from __future__ import annotations

import time
from collections.abc import Callable

from collector.sinks import InfluxConfig, InfluxV1Writer
from collector.sinks.dispatch import SinkDispatcher
from collector.sinks.line_protocol import readings_lines
from collector.sinks.sink_queue import SqliteSinkQueue
from tests.influx_read import influx_rows, influxql

DB = "kilnwatch"
T0 = 1_700_000_000_000
FAST = {"idle_poll_s": 0.05, "backoff_initial_s": 0.05, "backoff_max_s": 0.4}


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def v1_writer(url: str, batch_lines: int) -> InfluxV1Writer:
    config = InfluxConfig(api="v1", url=url, database=DB, batch_lines=batch_lines, timeout_s=5)
    writer = InfluxV1Writer(config)
    writer.ensure_database()
    return writer


def numbered_readings(start: int, stop: int) -> list[str]:
    """Reading i: channel c{i % 4}, at T0 + i s, value i/2 (exact in binary, so sums are exact)."""
    indices = range(start, stop)
    channels, times = [f"c{i % 4}" for i in indices], [T0 + i * 1000 for i in indices]
    return readings_lines("plant1", "gw1", channels, times, [i / 2 for i in indices], [0] * len(indices))


def count_and_sum(url: str) -> tuple[int, float]:
    series = influxql(url, DB, "SELECT count(value), sum(value) FROM reading")
    return tuple(series[0]["values"][0][1:]) if series else (0, 0.0)


def test_outage_of_server_and_collector_loses_nothing(tmp_path, restartable_influx1):
    server = restartable_influx1
    writer = v1_writer(server.url, batch_lines=1000)
    queue = SqliteSinkQueue(tmp_path / "spill.sqlite")
    dispatcher = SinkDispatcher(queue, writer, batch_lines=1000, **FAST)
    dispatcher.start()
    server.kill()

    for start in range(0, 10_000, 1000):  # ingest goes on while the sink is down
        queue.append(numbered_readings(start, start + 1000))
        dispatcher.wake()
    wait_until(lambda: dispatcher.stats().retries >= 3)
    during = dispatcher.stats()
    assert (during.written, during.queue_depth, during.dead_lettered) == (0, 10_000, 0)
    assert "unreachable" in during.last_error

    # the collector restarts too, while the sink is still down: the spill file carries the lines over
    dispatcher.stop()
    queue.close()
    queue = SqliteSinkQueue(tmp_path / "spill.sqlite")
    dispatcher = SinkDispatcher(queue, writer, batch_lines=1000, **FAST)
    dispatcher.start()
    wait_until(lambda: dispatcher.stats().retries >= 1)

    server.start()
    assert dispatcher.flush(timeout=60)
    after = dispatcher.stats()
    dispatcher.stop()
    assert (after.written, after.queue_depth, after.dead_lettered) == (10_000, 0, 0)
    assert after.last_success_ts is not None
    assert count_and_sum(server.url) == (10_000, sum(i / 2 for i in range(10_000)))


def test_server_killed_mid_stream_loses_nothing(tmp_path, restartable_influx1):
    server = restartable_influx1
    total = 100_000
    queue = SqliteSinkQueue(tmp_path / "spill.sqlite")
    queue.append(numbered_readings(0, total))
    dispatcher = SinkDispatcher(queue, v1_writer(server.url, batch_lines=500), batch_lines=500, **FAST)
    dispatcher.start()
    wait_until(lambda: dispatcher.stats().written > 0, timeout=30)
    server.kill()
    at_kill = dispatcher.stats()
    assert 0 < at_kill.queue_depth < total  # the outage really hit the middle of the stream
    wait_until(lambda: dispatcher.stats().retries >= 2)

    server.start()
    assert dispatcher.flush(timeout=120)
    dispatcher.stop()
    stats = dispatcher.stats()
    assert (stats.written, stats.dead_lettered, stats.queue_depth) == (total, 0, 0)
    assert count_and_sum(server.url) == (total, sum(i / 2 for i in range(total)))


def test_bad_lines_are_dead_lettered_and_good_lines_land(tmp_path, influx1):
    writer = v1_writer(influx1.url, batch_lines=1000)
    writer.write(numbered_readings(0, 1))  # "value" is now a float field
    good = numbered_readings(1, 998)
    conflict_a = "reading,agent=gw1,channel=c1,site=plant1 value=5i,quality=0i 1700000500000"
    conflict_b = "reading,agent=gw1,channel=c2,site=plant1 value=6i,quality=0i 1700000600000"
    unparsable = "reading,agent=gw1,channel=c3,site=plant1 value=1.0,quality=0i 17000007OOOOO"
    lines = [*good[:100], conflict_a, *good[100:400], unparsable, *good[400:700], conflict_b, *good[700:]]
    queue = SqliteSinkQueue(tmp_path / "spill.sqlite")
    queue.append(lines)
    dispatcher = SinkDispatcher(queue, writer, batch_lines=1000, **FAST)
    dispatcher.start()
    assert dispatcher.flush(timeout=30)
    dispatcher.stop()

    stats = dispatcher.stats()
    assert (stats.written, stats.dead_lettered, stats.retries) == (997, 3, 0)
    letters = queue.dead_letters()
    assert sorted(d.line for d in letters) == sorted([conflict_a, conflict_b, unparsable])
    for letter in letters:
        assert letter.line in letter.reason
    assert count_and_sum(influx1.url) == (998, sum(i / 2 for i in range(998)))


def test_rejections_that_name_no_line_are_bisected(tmp_path, influx1):
    # Points older than the retention policy are refused with "points beyond retention policy dropped=N":
    # nothing names the lines, so the dispatcher halves the batch until each refused point stands alone.
    writer = v1_writer(influx1.url, batch_lines=64)
    influxql(influx1.url, DB, f'CREATE RETENTION POLICY "hour" ON "{DB}" DURATION 1h REPLICATION 1 DEFAULT')
    now_ms = time.time_ns() // 1_000_000
    old_indices = {3, 17, 18, 40, 63}
    times = [(T0 if i in old_indices else now_ms - 60_000) + i for i in range(64)]
    lines = readings_lines("s", "a", ["c"] * 64, times, [float(i) for i in range(64)], [0] * 64)
    queue = SqliteSinkQueue(tmp_path / "spill.sqlite")
    queue.append(lines)
    dispatcher = SinkDispatcher(queue, writer, batch_lines=64, **FAST)
    dispatcher.start()
    assert dispatcher.flush(timeout=30)
    dispatcher.stop()

    assert sorted(d.line for d in queue.dead_letters()) == sorted(lines[i] for i in old_indices)
    assert "beyond retention policy" in queue.dead_letters()[0].reason
    rows = influx_rows(influx1.url, DB, "SELECT value FROM reading")
    assert sorted(r["value"] for r in rows) == [float(i) for i in range(64) if i not in old_indices]
