"""Health and metrics: the exposition format, the /healthz rules, the HTTP endpoint, systemd notes, and a live
agent whose /healthz turns 503 while its broker is down and 200 again once the outbox drains."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent import health, metrics
from agent.config import load_config
from agent.runner import run_agent
from agent.sources.reading import Reading
from agent.wire import Quality
from tests.agent.modbus_server import modbus_server
from tests.servers import Mosquitto, free_port

# One exposition line: name, optional {label="value",...}, a number.
SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="([^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$'
)


def parse(text: str) -> dict[str, float]:
    """Exposition text → {'name{labels}': value}; fails on any line that is not valid text format."""
    values = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert SAMPLE.match(line), f"not exposition format: {line!r}"
        key, _, value = line.rpartition(" ")
        values[key] = float(value)
    return values


def test_registry_renders_counters_gauges_histograms_and_collectors() -> None:
    reg = metrics.Registry()
    c = reg.counter("t_total", "A counter.", ("device",))
    g = reg.gauge("t_gauge", "A gauge.")
    h = reg.histogram("t_seconds", "A histogram.", ("device",), buckets=(0.1, 1.0))
    c.inc(device='a"b\\c')
    c.inc(2, device='a"b\\c')
    g.set(3.5)
    for v in (0.05, 0.5, 5.0):
        h.observe(v, device="m1")
    reg.add_collector(lambda: [metrics.Sample("t_info", "gauge", "Info.", 1, {"epoch": "e1"})])
    text = reg.render()
    values = parse(text)
    assert values == {
        't_total{device="a\\"b\\\\c"}': 3,
        "t_gauge": 3.5,
        't_seconds_bucket{device="m1",le="0.1"}': 1,
        't_seconds_bucket{device="m1",le="1"}': 2,
        't_seconds_bucket{device="m1",le="+Inf"}': 3,
        't_seconds_sum{device="m1"}': 5.55,
        't_seconds_count{device="m1"}': 3,
        't_info{epoch="e1"}': 1,
    }
    assert "# TYPE t_seconds histogram" in text and "# HELP t_total A counter." in text
    assert h.count(device="m1") == 3 and c.get(device='a"b\\c') == 3
    with pytest.raises(ValueError, match="takes labels"):
        c.inc(wrong="x")
    with pytest.raises(ValueError, match="already registered"):
        reg.gauge("t_gauge", "again")


def test_poller_api_and_cycle_counting() -> None:
    """The API the pollers call, and what the runner's sink wrapper counts."""
    before_ok = metrics.POLL_DURATION.count(device="api-dev", result="ok")
    metrics.observe_poll("api-dev", 0.012, ok=True)
    metrics.observe_poll("api-dev", 1.0, ok=False)
    assert metrics.POLL_DURATION.count(device="api-dev", result="ok") == before_ok + 1
    assert metrics.POLL_DURATION.count(device="api-dev", result="error") >= 1
    metrics.observe_cycle("api-dev", [Reading("a", 1, 1.0, Quality.GOOD), Reading("b", 1, None, Quality.BAD)])
    metrics.observe_cycle("api-dev", [Reading("a", 2, None, Quality.BAD), Reading("b", 2, None, Quality.BAD)])
    assert metrics.READINGS.get(device="api-dev", quality="good") == 1
    assert metrics.READINGS.get(device="api-dev", quality="bad") == 3
    assert metrics.FAILED_CYCLES.get(device="api-dev") == 1  # only the cycle with no value at all
    assert metrics.LAST_CYCLE.get(device="api-dev") > 0
    assert 'kilnwatch_poll_duration_seconds_bucket{device="api-dev",result="ok",le="0.025"}' in parse(
        metrics.REGISTRY.render()
    )


def snapshot(**changes: object) -> health.Snapshot:
    base = dict(
        now=1000.0,
        started=900.0,
        stall_s=30.0,
        dead_pollers=[],
        devices={"m1": health.DeviceSnapshot(999.0, 999.0, 33.0)},
        outbox_batches=1,
        outbox_bytes=100,
        outbox_oldest=999.5,
        dropped={"max_bytes": 0, "max_age": 0},
        mqtt={"connected": True, "refusal": None},
        last_ack=999.0,
        identity={"agent": "gw1"},
    )
    return health.Snapshot(**(base | changes))  # type: ignore[arg-type]


def test_assess_rules() -> None:
    ok, details = health.assess(snapshot())
    assert ok and details["status"] == "ok" and details["agent"] == "gw1" and details["problems"] == []
    assert details["outbox"] == {
        "batches": 1,
        "bytes": 100,
        "oldest_age_s": 0.5,
        "dropped": snapshot().dropped,
    }

    ok, details = health.assess(snapshot(dead_pollers=["modbus"]))
    assert not ok and details["problems"] == ["poller modbus stopped"]

    ok, details = health.assess(snapshot(devices={"m1": health.DeviceSnapshot(960.0, 960.0, 33.0)}))
    assert not ok and details["problems"] == ["device m1: no poll cycle for 40 s (allowed 33 s)"]
    never = health.DeviceSnapshot(None, None, 33.0)
    ok, _ = health.assess(snapshot(devices={"m1": never}))  # never cycled, 100 s after start
    assert not ok
    assert health.assess(snapshot(devices={"m1": never}, started=990.0))[0]  # still starting
    # A subscription-only server is not watched for cycles (stall limit None), however quiet.
    assert health.assess(snapshot(devices={"dcs": health.DeviceSnapshot(None, None, None)}))[0]

    # A backlog that is being acknowledged is fine; one with no acknowledgement for stall_s is not.
    assert health.assess(snapshot(outbox_oldest=100.0, last_ack=995.0))[0]
    ok, details = health.assess(snapshot(outbox_oldest=900.0, last_ack=960.0, mqtt={"connected": False}))
    assert not ok and details["problems"] == [
        "outbox not draining: 1 batches, oldest 100 s, broker not connected"
    ]
    ok, details = health.assess(
        snapshot(outbox_oldest=900.0, last_ack=None, mqtt={"connected": True, "refusal": "Not authorized"})
    )
    assert not ok and "broker refuses batches: Not authorized" in details["problems"][0]


def test_a_device_that_answers_nothing_good_or_refuses_points_is_degraded_not_failing() -> None:
    """A meter that is off or refuses registers is not an agent failure (200), but /healthz must say so."""
    silent = health.DeviceSnapshot(last_cycle=999.0, last_good=950.0, stall_limit=33.0)
    ok, details = health.assess(snapshot(devices={"m1": silent}))
    assert ok and details["status"] == "degraded" and details["problems"] == []
    assert details["warnings"] == ["device m1: no good reading in its last cycle (last good 50 s ago)"]
    assert details["devices"]["m1"]["status"] == "degraded"  # type: ignore[index]

    refusing = health.DeviceSnapshot(999.0, 999.0, 33.0, {"kw_a": "exception 2 (illegal data address)"})
    ok, details = health.assess(
        snapshot(devices={"m1": refusing, "m2": health.DeviceSnapshot(999.0, 999.0, 33.0)})
    )
    assert ok and details["status"] == "degraded"
    assert details["devices"]["m1"] == {  # type: ignore[index]
        "status": "degraded",
        "last_cycle_age_s": 1.0,
        "last_good_age_s": 1.0,
        "refused_points": {"kw_a": "exception 2 (illegal data address)"},
    }
    assert details["devices"]["m2"]["status"] == "ok"  # type: ignore[index]
    assert "device m1: 1 point(s) refused by the device (kw_a)" in details["warnings"][0]  # type: ignore[index]


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_http_endpoint_serves_health_and_metrics() -> None:
    verdict = [True]

    async def scenario() -> None:
        server = health.HealthServer(
            "127.0.0.1", 0, check=lambda: (verdict[0], {"status": "x"}), metrics=lambda: "m_total 1\n"
        )
        await server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            assert await asyncio.to_thread(get, f"{base}/healthz") == (
                200,
                "application/json",
                '{\n "status": "x"\n}\n',
            )
            verdict[0] = False
            assert (await asyncio.to_thread(get, f"{base}/healthz?verbose"))[0] == 503
            status, ctype, body = await asyncio.to_thread(get, f"{base}/metrics")
            assert (status, body) == (200, "m_total 1\n") and ctype.startswith("text/plain; version=0.0.4")
            assert (await asyncio.to_thread(get, f"{base}/nope"))[0] == 404
            request = urllib.request.Request(f"{base}/healthz", method="POST", data=b"")
            assert (await asyncio.to_thread(get, request))[0] == 405  # type: ignore[arg-type]
            # A client that connects and says nothing does not block the next one.
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert (await asyncio.to_thread(get, f"{base}/metrics"))[0] == 200
            writer.close()
        finally:
            await server.close()

    asyncio.run(scenario())


def test_sd_notify_sends_datagrams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        health.sd_notify("READY=1")
        assert sock.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    health.sd_notify("READY=1")  # outside systemd: nothing, no error
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    assert health.watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # the watchdog is for another process
    assert health.watchdog_interval() is None


CONFIG = """
[agent]
id = "gw1"
site = "plant1"
batch_interval = 0.25

[mqtt]
port = {broker}
keepalive = 5

[outbox]
path = "outbox.db"

[health]
listen = "127.0.0.1:{health}"
stall_s = 1.5

[[modbus]]
name = "feeder"
host = "127.0.0.1"
port = {modbus}
order = "CDAB"
interval = 0.25

[[modbus.points]]
name = "coal_t"
address = 0
type = "uint32"

[[modbus.points]]
name = "coal_tph"
address = 2
type = "float32"
"""


def test_live_agent_health_follows_the_broker(broker: Mosquitto, tmp_path: Path) -> None:
    modbus, port = free_port(), free_port()
    path = tmp_path / "agent.toml"
    path.write_text(CONFIG.format(broker=broker.port, modbus=modbus, health=port))
    config = load_config(path)
    base = f"http://127.0.0.1:{port}"
    seen: dict[str, object] = {}

    async def poll_until(predicate, timeout: float) -> tuple[int, dict]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                status, _, body = await asyncio.to_thread(get, f"{base}/healthz")
            except urllib.error.URLError:  # not listening yet
                status, body = 0, "{}"
            doc = json.loads(body)
            if (status and predicate(status, doc)) or asyncio.get_running_loop().time() > deadline:
                return status, doc
            await asyncio.sleep(0.2)

    async def scenario() -> None:
        stop = asyncio.Event()
        async with modbus_server(modbus):
            agent = asyncio.create_task(run_agent(config, stop))
            try:
                seen["up"] = await poll_until(lambda s, d: s == 200 and d["mqtt"]["acked"] > 2, 20)
                seen["metrics"] = parse((await asyncio.to_thread(get, f"{base}/metrics"))[2])
                await asyncio.to_thread(broker.stop)
                seen["down"] = await poll_until(lambda s, d: s == 503, 20)
                await asyncio.to_thread(broker.start)
                seen["again"] = await poll_until(lambda s, d: s == 200 and d["outbox"]["batches"] == 0, 60)
            finally:
                stop.set()
                await agent

    asyncio.run(scenario())
    status, doc = seen["up"]
    assert status == 200 and doc["status"] == "ok" and doc["agent"] == "gw1" and doc["mqtt"]["connected"]
    assert doc["devices"]["feeder"]["last_cycle_age_s"] < 2
    values = seen["metrics"]
    assert values['kilnwatch_readings_total{device="feeder",quality="good"}'] >= 4
    assert values["kilnwatch_mqtt_connected"] == 1 and values["kilnwatch_mqtt_acked_total"] >= 2
    assert values["process_resident_memory_bytes"] > 10e6
    assert values['kilnwatch_outbox_dropped_total{reason="max_bytes"}'] == 0
    assert "kilnwatch_outbox_oldest_age_seconds" in values and "kilnwatch_outbox_batches" in values
    # the Modbus poller times every cycle: round trips on loopback are well under a second
    assert values['kilnwatch_poll_duration_seconds_count{device="feeder",result="ok"}'] >= 4
    assert values['kilnwatch_poll_duration_seconds_bucket{device="feeder",result="ok",le="1"}'] >= 4
    status, doc = seen["down"]
    assert status == 503 and not doc["mqtt"]["connected"] and doc["outbox"]["batches"] > 0
    assert (
        doc["problems"][0].startswith("outbox not draining") and "broker not connected" in doc["problems"][0]
    )
    assert "cannot reach" in doc["mqtt"]["last_error"] or "closed" in doc["mqtt"]["last_error"]
    status, doc = seen["again"]
    assert status == 200 and doc["outbox"]["batches"] == 0, doc


def test_a_taken_health_port_does_not_stop_the_agent(broker: Mosquitto, tmp_path: Path) -> None:
    modbus = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = tmp_path / "agent.toml"
        path.write_text(CONFIG.format(broker=broker.port, modbus=modbus, health=taken.getsockname()[1]))
        config = load_config(path)

        async def scenario() -> int:
            stop = asyncio.Event()
            async with modbus_server(modbus):
                agent = asyncio.create_task(run_agent(config, stop))
                await asyncio.sleep(1.5)
                stop.set()
                await agent
            return metrics.READINGS.get(device="feeder", quality="good")

        assert asyncio.run(scenario()) > 0
