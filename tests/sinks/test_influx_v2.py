"""InfluxV2Writer against real servers: VictoriaMetrics' /api/v2/write, and InfluxDB 1.6.7's missing one.

VictoriaMetrics names each field's series ``<measurement>_<field>``, with the tags as labels, and stores
booleans as 0/1 and strings as 0; ``/internal/force_flush`` makes fresh samples visible to ``/api/v1/export``.
"""

from __future__ import annotations

import pytest

from collector.sinks import InfluxConfig, InfluxV2Writer, SinkError
from collector.sinks.line_protocol import kpi_lines, readings_lines
from tests.influx_read import vm_flushed_export
from tests.servers import HttpServer, free_port

T0 = 1_700_000_000_000


def writer_for(server: HttpServer, **overrides) -> InfluxV2Writer:
    config = {"api": "v2", "url": server.url, "org": "plant1", "bucket": "kilnwatch", "token": "t0k3n"}
    return InfluxV2Writer(InfluxConfig(**(config | overrides)))


def samples_by_series(series: list[dict]) -> dict[tuple, dict[int, float]]:
    """{sorted labels: {timestamp: value}}"""
    return {
        tuple(sorted(one["metric"].items())): dict(zip(one["timestamps"], one["values"], strict=True))
        for one in series
    }


@pytest.mark.parametrize("gzip", [False, True])
def test_readings_and_kpis_land_with_exact_values(vm, gzip):
    writer = writer_for(vm, gzip=gzip, batch_lines=1000)
    count = 4_500  # four full batches and a half one
    channels = ["kiln_kw", "mill kwh"]
    # reading i: channel i % 2, one second apart; value 1000 + i/8, missing (quality 2) when i % 7 == 0
    values = [None if i % 7 == 0 else 1000 + i / 8 for i in range(count)]
    quality = [2 if i % 7 == 0 else 0 for i in range(count)]
    times = [T0 + i * 1000 for i in range(count)]
    channel_column = [channels[i % 2] for i in range(count)]
    writer.write(readings_lines("plant1", "gw1", channel_column, times, values, quality))
    writer.write([kpi_lines("plant1", "kiln1", "day", T0, {"kgce_per_t": 101.25, "lots": 3, "ok": True})])
    writer.close()

    written_values = count - len(range(0, count, 7))
    series = vm_flushed_export(vm.url, '{__name__=~"reading_.*"}')
    got = samples_by_series(series)

    def key(name: str, channel: str) -> tuple:
        return tuple(sorted({"__name__": name, "agent": "gw1", "channel": channel, "site": "plant1"}.items()))

    expected: dict[tuple, dict[int, float]] = {}
    for i in range(count):
        channel = channels[i % 2]
        expected.setdefault(key("reading_quality", channel), {})[times[i]] = quality[i]
        if values[i] is not None:
            expected.setdefault(key("reading_value", channel), {})[times[i]] = values[i]
    assert got == expected
    assert sum(len(s["values"]) for s in series) == written_values + count  # no duplicates either

    kpis = samples_by_series(vm_flushed_export(vm.url, '{__name__=~"kpi_.*"}'))
    assert {dict(k)["__name__"]: v for k, v in kpis.items()} == {
        "kpi_kgce_per_t": {T0: 101.25},
        "kpi_lots": {T0: 3},
        "kpi_ok": {T0: 1},
    }


def test_server_without_api_v2_is_retryable_and_says_why(influx1):
    # InfluxDB 1.6.7 has no /api/v2/write: a configuration problem, not bad lines, so nothing is dead-lettered
    writer = writer_for(influx1)
    with pytest.raises(SinkError) as caught:
        writer.write(["reading,site=s value=1.0 1"])
    writer.close()
    assert caught.value.retryable is True
    assert "HTTP 404" in caught.value.detail


def test_unreachable_server_is_retryable():
    writer = writer_for(HttpServer(f"http://127.0.0.1:{free_port()}", proc=None), timeout_s=2)
    with pytest.raises(SinkError) as caught:
        writer.write(["reading,site=s value=1.0 1"])
    writer.close()
    assert caught.value.retryable is True
    assert "unreachable" in caught.value.detail
