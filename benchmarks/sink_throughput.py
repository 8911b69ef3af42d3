"""Write throughput of the sinks to real servers: ``python -m benchmarks.sink_throughput [readings]``.

Not a test (no timed assertions): it prints points/s for building lines, for each writer against its
server (InfluxDB 1.6.7 via /write, VictoriaMetrics via /api/v2/write) with and without gzip, and for the
whole path through the SQLite spill queue and the dispatcher. Every run checks the server holds exactly
the points written, so a fast figure cannot hide a loss. Building with influxdb-client's ``Point`` is the
baseline measured in the same run. Belongs in benchmarks/ once the lead wires it there.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from influxdb_client import Point, WritePrecision

from collector.sinks import InfluxConfig, make_writer
from collector.sinks.dispatch import SinkDispatcher
from collector.sinks.line_protocol import readings_lines
from collector.sinks.sink_queue import SqliteSinkQueue
from tests import servers
from tests.influx_read import influxql, vm_flushed_export

T0 = 1_700_000_000_000
BATCH = 5000


def columns(count: int, offset_ms: int = 0) -> tuple[list[str], list[int], list[float], list[int]]:
    """``count`` readings over 50 channels, one per 100 ms per channel."""
    return (
        [f"ch{i % 50}" for i in range(count)],
        [T0 + offset_ms + (i // 50) * 100 for i in range(count)],
        [i * 0.125 for i in range(count)],
        [0] * count,
    )


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def point_lines(count: int) -> list[str]:
    channels, times, values, quality = columns(count)
    return [
        Point("reading")
        .tag("agent", "gw1")
        .tag("channel", channel)
        .tag("site", "plant1")
        .field("value", value)
        .field("quality", q)
        .time(t, WritePrecision.MS)
        .to_line_protocol()
        for channel, t, value, q in zip(channels, times, values, quality, strict=True)
    ]


def report(what: str, count: int, seconds: float, baseline: float | None = None) -> None:
    ratio = f"  ({baseline / seconds:.1f}x baseline)" if baseline else ""
    print(f"{what:<52} {count / seconds:>12,.0f} points/s{ratio}")


def main(count: int) -> None:
    baseline = timed(lambda: point_lines(count))
    report("build: influxdb_client.Point (baseline)", count, baseline)
    report(
        "build: line_protocol.readings_lines",
        count,
        timed(lambda: readings_lines("plant1", "gw1", *columns(count))),
        baseline,
    )

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        with servers.influxdb1(work / "influx") as influx:
            for run, gzip in enumerate((False, True)):
                config = InfluxConfig(
                    api="v1", url=influx.url, database=f"bench{run}", batch_lines=BATCH, gzip=gzip
                )
                writer = make_writer(config)
                writer.ensure_database()
                lines = readings_lines("plant1", "gw1", *columns(count))
                report(
                    f"InfluxDB 1.6.7 /write, gzip={gzip}",
                    count,
                    timed(lambda w=writer, ls=lines: w.write(ls)),
                )
                stored = influxql(influx.url, f"bench{run}", "SELECT count(value) FROM reading")[0]["values"][
                    0
                ][1]
                assert stored == count, f"{stored} stored, {count} written"

            config = InfluxConfig(api="v1", url=influx.url, database="bench_dispatch", batch_lines=BATCH)
            writer = make_writer(config)
            writer.ensure_database()
            queue = SqliteSinkQueue(work / "spill.sqlite")
            dispatcher = SinkDispatcher(queue, writer, batch_lines=BATCH, idle_poll_s=0.01)
            dispatcher.start()

            def spill_and_drain() -> None:
                for start in range(0, count, BATCH):
                    queue.append(lines[start : start + BATCH])
                    dispatcher.wake()
                assert dispatcher.flush(timeout=600)

            report("InfluxDB 1.6.7 via SQLite queue + dispatcher", count, timed(spill_and_drain))
            dispatcher.stop()
            stored = influxql(influx.url, "bench_dispatch", "SELECT count(value) FROM reading")[0]["values"][
                0
            ][1]
            assert stored == count, f"{stored} stored, {count} written"

        with servers.victoria_metrics(work / "vm") as vm:
            for run, gzip in enumerate((False, True)):
                config = InfluxConfig(api="v2", url=vm.url, org="o", bucket="b", batch_lines=BATCH, gzip=gzip)
                writer = make_writer(config)
                lines = readings_lines("plant1", f"gw{run}", *columns(count))
                report(
                    f"VictoriaMetrics /api/v2/write, gzip={gzip}",
                    count,
                    timed(lambda w=writer, ls=lines: w.write(ls)),
                )
                writer.close()
                series = vm_flushed_export(vm.url, f'{{__name__="reading_value",agent="gw{run}"}}')
                stored = sum(len(one["values"]) for one in series)
                assert stored == count, f"{stored} stored, {count} written"


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
