"""A meter that lacks some of its profile's registers, as one of a neighbouring model or firmware does.

Against real meters the agent joined points into large requests, each touched a register the meter lacks,
the meter answered exception 02 (illegal data address), and every point of those requests went BAD, with 5
warnings a second, while /healthz said ok. The meter here is a raw Modbus TCP server of the test's own
(``tests.agent.modbus_server.MappedMeter``): it has the PM5100 profile's registers except those of a few
points, and answers 02 to any read that touches a register it lacks, holes between points included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import statistics
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent import metrics, wire
from agent.sources.base import SourceStatus
from agent.sources.modbus import profiles
from agent.sources.modbus.coalesce import poll_groups
from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.healing import MAX_RETRY_FACTOR
from agent.sources.modbus.poller import ModbusPoller
from agent.sources.reading import Reading
from agent.wire import Quality
from tests.agent.modbus_server import MappedMeter, mapped_meter
from tests.servers import Mosquitto, free_port

PROFILE = profiles.load("schneider-pm5100")
#: What a neighbouring model lacks: neutral and ground currents, apparent energy counters.
MISSING = ("i_n", "i_g", "kvah_import", "kvah_export")
FORMATS = {"float32": ">f", "int64": ">q", "uint32": ">I"}


def register_value(index: int, type_: str) -> float | int:
    """Point ``index``'s value as the meter stores it: distinct per point, exact in its type."""
    return 100.5 + index if type_ == "float32" else 1_000_000 * (index + 1) + 250


def published(key: str) -> float:
    """What the agent must publish for profile point ``key`` (int64 energies are Wh, published as kWh)."""
    index = list(PROFILE.points).index(key)
    fields = PROFILE.points[key].fields
    return register_value(index, fields["type"]) * fields.get("scale", 1.0)


def meter_words(missing: tuple[str, ...] = MISSING) -> dict[int, dict[int, int]]:
    """FC03 registers of a PM5100 that lacks ``missing``, plus its name, model and serial registers."""
    table: dict[int, int] = {}

    def put(address: int, raw: bytes) -> None:
        table.update({address + i // 2: raw[i] << 8 | raw[i + 1] for i in range(0, len(raw), 2)})

    for index, (key, point) in enumerate(PROFILE.points.items()):
        if key not in missing:
            type_ = point.fields["type"]
            put(point.fields["address"], struct.pack(FORMATS[type_], register_value(index, type_)))
    put(29, b"Raw mill".ljust(40, b"\0"))
    put(89, b"PM5110".ljust(40, b"\0"))
    put(129, struct.pack(">I", 123456))
    return {3: table}


def registers_of(key: str) -> range:
    fields = PROFILE.points[key].fields
    return range(fields["address"], fields["address"] + (4 if fields["type"] == "int64" else 2))


def add_point(meter: MappedMeter, key: str) -> None:
    """Map ``key``'s registers in ``meter``, as a firmware update or a meter swap would."""
    full = meter_words(())[3]
    meter.words[3].update({a: full[a] for a in registers_of(key)})


def retries_due(seconds: float, retry: float) -> int:
    """Retries the backoff schedule allows in ``seconds`` (pauses retry, 2x, 4x... capped at 6x)."""
    n, at = 0, 0.0
    while True:
        at += min(retry * 2**n, MAX_RETRY_FACTOR * retry)
        if at > seconds:
            return n
        n += 1


def device(port: int, **settings: object) -> ModbusDevice:
    return ModbusDevice.model_validate(
        {"name": "m1", "host": "127.0.0.1", "port": port, "profile": "schneider-pm5100", **settings}
    )


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for ``predicate`` (checked every 50 ms), failing with ``what`` after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def poll(
    meter: MappedMeter, dev: ModbusDevice, body: Callable[[list[Reading], SourceStatus], Awaitable[None]]
) -> list[Reading]:
    """Serve ``meter`` and poll ``dev`` with the ModbusPoller while ``body(readings, status)`` runs."""
    readings: list[Reading] = []
    status = SourceStatus()

    async def main() -> None:
        async with mapped_meter(dev.port, meter):
            task = asyncio.create_task(ModbusPoller([dev], readings.extend, status).run())
            try:
                await body(readings, status)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    asyncio.run(main())
    return readings


def by_channel(readings: list[Reading]) -> dict[str, list[Reading]]:
    out: dict[str, list[Reading]] = {}
    for r in readings:
        out.setdefault(r.channel, []).append(r)
    return out


# The whole agent: `kilnwatch agent run` in its own process, a real broker, /healthz and /metrics over HTTP.

CONFIG = """
[agent]
id = "gw1"
site = "plant1"
batch_interval = 0.25

[mqtt]
port = {broker}

[outbox]
path = "outbox.db"

[health]
listen = "127.0.0.1:{health}"

[[modbus]]
name = "m1"
host = "127.0.0.1"
port = {modbus}
profile = "schneider-pm5100"
interval = {interval}
refused_retry = {retry}
"""


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError:  # not listening yet
        return 0, ""


@contextlib.contextmanager
def subscriber(port: int) -> Iterator[list[Reading]]:
    """Every reading the broker delivers on the site's data topic, decoded by the wire module."""
    readings: list[Reading] = []
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="refused-test")
    client.on_connect = lambda c, *_: c.subscribe(wire.data_topic("plant1", "gw1"), qos=1)
    client.on_subscribe = lambda *_: ready.set()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        batch = wire.decode_batch(message.payload)
        rows = zip(batch.channels, batch.t_ms, batch.values, batch.quality, strict=True)
        readings.extend(Reading(ch, t, v, Quality(q)) for ch, t, v, q in rows)

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert ready.wait(10)
        yield readings
    finally:
        client.loop_stop()
        client.disconnect()


def gauge(text: str, name: str) -> float:
    """The value of sample ``name`` (with its labels) in Prometheus text; fails if it is absent."""
    values = {line.rpartition(" ")[0]: float(line.rpartition(" ")[2]) for line in text.splitlines()
              if line and not line.startswith("#")}  # fmt: skip
    return values[name]


def test_registers_a_neighbouring_model_lacks_no_longer_turn_every_point_bad_while_healthz_says_ok(
    broker: Mosquitto, tmp_path: Path
) -> None:
    interval, cycles = 0.2, 40
    modbus, health = free_port(), free_port()
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG.format(broker=broker.port, health=health, modbus=modbus, interval=interval,
                                    retry=1.0))  # fmt: skip
    base = f"http://127.0.0.1:{health}"
    mapped = [k for k in PROFILE.points if k not in MISSING]
    seen: dict[str, Any] = {}

    async def healthz(predicate: Callable[[dict], bool], what: str) -> dict:
        doc: dict = {}

        def ready() -> bool:
            return bool(doc) and predicate(doc)

        deadline = asyncio.get_running_loop().time() + 30
        while not ready():
            assert asyncio.get_running_loop().time() < deadline, f"/healthz never showed {what}: {doc}"
            status, body = await asyncio.to_thread(get, f"{base}/healthz")
            doc = json.loads(body) if status else {}
            await asyncio.sleep(0.1)
        return doc

    async def scenario(data: list[Reading]) -> None:
        log = (tmp_path / "agent.log").open("wb")
        meter = MappedMeter(meter_words())
        async with mapped_meter(modbus, meter):
            agent = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent.cli", "agent", "run", str(config), cwd=tmp_path,
                stdout=log, stderr=log,
            )  # fmt: skip
            try:
                seen["refused"] = await healthz(
                    lambda d: len(d["devices"]["m1"]["refused_points"]) == len(MISSING), "refused points"
                )
                await until(lambda: sum(r.channel == "m1_kw_total" for r in data) >= cycles, 60,
                            f"{cycles} cycles of data")  # fmt: skip
                seen["metrics"] = (await asyncio.to_thread(get, f"{base}/metrics"))[1]
                seen["data"] = list(data)
                add_point(meter, "i_n")  # the meter gains the register: picked up on a retry
                seen["recovered"] = await healthz(
                    lambda d: "m1_i_n" not in d["devices"]["m1"]["refused_points"], "m1_i_n answering"
                )
                await until(lambda: any(r.channel == "m1_i_n" and r.value is not None for r in data), 10,
                            "a value of m1_i_n")  # fmt: skip
                seen["metrics_after"] = (await asyncio.to_thread(get, f"{base}/metrics"))[1]
            finally:
                agent.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(agent.wait(), 30) == 0
        seen["after"] = list(data)

    with subscriber(broker.port) as data:
        asyncio.run(scenario(data))

    # /healthz says which points the meter refuses, and why: degraded, not ok.
    doc = seen["refused"]
    assert doc["status"] == "degraded" and doc["devices"]["m1"]["status"] == "degraded"
    assert doc["devices"]["m1"]["refused_points"] == {
        f"m1_{k}": "exception 2 (illegal data address)" for k in MISSING
    }
    assert any("4 point(s) refused by the device" in w for w in doc["warnings"])
    # Every mapped point GOOD with its value every cycle; the refused ones BAD with no value every cycle.
    channels = by_channel(seen["data"])
    n = len(channels["m1_kw_total"])
    for key in mapped:
        got = channels[f"m1_{key}"]
        assert {r.quality for r in got} == {Quality.GOOD}, key
        assert {r.value for r in got} == {published(key)}, key
        assert abs(len(got) - n) <= 1, key
    for key in MISSING:
        got = channels[f"m1_{key}"]
        assert all(r.quality == Quality.BAD and r.value is None for r in got), key
        assert len(got) >= n - 2, key  # the collector sees the gap every cycle
    # At full rate: the poll period stays the interval (generous bounds for a loaded 2-core machine).
    times = sorted(r.t_ms for r in channels["m1_kw_total"])
    periods = [(b - a) / 1000 for a, b in pairwise(times)]
    span = (times[-1] - times[0]) / 1000
    print(f"\n{n} cycles in {span:.1f} s: median period {statistics.median(periods) * 1000:.0f} ms "
          f"(interval {interval * 1000:.0f} ms), max {max(periods) * 1000:.0f} ms")  # fmt: skip
    assert 0.8 * interval <= statistics.median(periods) <= 1.5 * interval
    assert n >= 0.7 * span / interval
    assert gauge(seen["metrics"], 'kilnwatch_points_refused{device="m1"}') == len(MISSING)
    # The point that became mapped was picked up on a retry and publishes its value again.
    doc = seen["recovered"]
    assert sorted(doc["devices"]["m1"]["refused_points"]) == sorted(f"m1_{k}" for k in MISSING[1:])
    assert doc["status"] == "degraded"
    values = [r.value for r in seen["after"] if r.channel == "m1_i_n" and r.value is not None]
    assert values and set(values) == {published("i_n")}
    assert gauge(seen["metrics_after"], 'kilnwatch_points_refused{device="m1"}') == len(MISSING) - 1
    # Logged once per point when it became refused and once when it answered again, not every cycle.
    events = [json.loads(line) for line in (tmp_path / "agent.log").read_text().splitlines()
              if line.startswith("{") and '"logger": "agent.modbus"' in line]  # fmt: skip
    warnings = [(e["event"], e["point"]) for e in events if e["level"] == "warning"]
    assert sorted(warnings) == sorted(("point refused by the device", f"m1_{k}") for k in MISSING)
    assert [e["point"] for e in events if e["event"] == "point answering again"] == ["m1_i_n"]


# The poller on its own, with a sink: what goes over the wire, retries, other exception codes.


def test_refused_points_are_retried_rarely_with_a_growing_pause_not_every_cycle() -> None:
    interval, retry = 0.05, 0.3
    dev = device(free_port(), interval=interval, refused_retry=retry)
    meter = MappedMeter(meter_words())
    i_n = registers_of("i_n")
    started: list[float] = []

    async def body(readings: list[Reading], status: SourceStatus) -> None:
        await until(lambda: len(status.refused("m1")) == len(MISSING), 10, "the refusals")
        started.append(time.monotonic())
        await until(lambda: sum(r.channel == "m1_kw_total" for r in readings) >= 80, 60, "80 cycles")
        started.append(time.monotonic())

    readings = poll(meter, dev, body)
    elapsed = started[1] - started[0]
    # Reads that touch m1_i_n's registers: a few while the layout was learned, then only the retries.
    alone = [r for r in meter.requests if r == (3, i_n.start, len(i_n))]
    touching = [r for r in meter.requests if r[1] < i_n.stop and r[1] + r[2] > i_n.start]
    learning = len(touching) - len(alone) + 1  # the split that read it alone the first time
    retries = len(alone) - 1
    # Pauses 0.3, 0.6, 1.2, then 1.8 s (6 x 0.3): a retry is never early (+1 s: refused before started[0]).
    allowed = retries_due(elapsed + 1.0, retry)
    cycles = sum(r.channel == "m1_kw_total" for r in readings)
    print(f"\n{cycles} cycles; m1_i_n read {len(touching)} times: {learning} while learning, "
          f"{retries} retries in {elapsed:.1f} s (schedule allows {allowed})")  # fmt: skip
    assert learning <= 6
    assert 2 <= retries <= allowed
    assert retries < 0.2 * cycles  # not every cycle, nor every few
    channels = by_channel(readings)
    for key in MISSING:
        assert all(r.value is None and r.quality == Quality.BAD for r in channels[f"m1_{key}"])
        assert len(channels[f"m1_{key}"]) >= cycles - 1
    assert {r.quality for r in channels["m1_kw_total"]} == {Quality.GOOD}


def test_a_hole_between_two_answering_points_splits_the_request_without_refusing_either() -> None:
    """Holes in a meter's map are refused too: the request heals into pieces, every point stays GOOD."""
    dev = device(free_port(), interval=0.05, profile_points=["kw_total", "kvar_total", "kva_total"])
    meter = MappedMeter(meter_words(()))

    async def body(readings: list[Reading], status: SourceStatus) -> None:
        await until(lambda: sum(r.channel == "m1_kva_total" for r in readings) >= 10, 30, "10 cycles")
        assert status.refused("m1") == {} and metrics.POINTS_REFUSED.get(device="m1") == 0

    readings = poll(meter, dev, body)
    assert {r.quality for r in readings} == {Quality.GOOD}
    for key in ("kw_total", "kvar_total", "kva_total"):
        assert {r.value for r in readings if r.channel == f"m1_{key}"} == {published(key)}
    assert meter.requests[0] == (3, 3059, 18)  # one coalesced request over two holes: refused
    # Learned: the three points' own registers, read every cycle after that.
    assert sorted(set(meter.requests[-9:])) == [(3, 3059, 2), (3, 3067, 2), (3, 3075, 2)]


def test_a_meter_that_takes_only_short_reads_gets_them_and_refuses_nothing() -> None:
    """Exception 03 for a length the meter will not serve: the split halves the requests until they fit."""
    keys = ["i_a", "i_b", "i_c", "i_n", "i_g", "i_avg", "u_ab", "u_bc", "u_ca", "u_ll_avg", "u_an", "u_bn"]
    dev = device(free_port(), interval=0.05, profile_points=keys)
    meter = MappedMeter(meter_words(()), max_count=8)
    for address in range(2999, 3031):  # no holes here: only the length is refused
        meter.words[3].setdefault(address, 0)

    async def body(readings: list[Reading], status: SourceStatus) -> None:
        await until(lambda: sum(r.channel == "m1_u_bn" for r in readings) >= 5, 30, "5 cycles")
        assert status.refused("m1") == {}

    readings = poll(meter, dev, body)
    assert {r.quality for r in readings} == {Quality.GOOD}
    for key in keys:
        assert {r.value for r in readings if r.channel == f"m1_{key}"} == {published(key)}
    assert meter.requests[0] == (3, 2999, 32)  # refused with 03
    assert all(count <= 8 for _, _, count in meter.requests[-10:])


@pytest.mark.parametrize(("code", "meaning"), [(4, "server device failure"), (6, "server device busy")])
def test_exception_04_or_06_is_not_a_refusal(code: int, meaning: str) -> None:
    """A failing or busy meter says nothing about its register map: BAD while it lasts, never refused,
    never split."""
    dev = device(free_port(), interval=0.05)
    meter = MappedMeter(meter_words(()), exception=code)
    failing: list[tuple[int, int, int]] = []

    async def body(readings: list[Reading], status: SourceStatus) -> None:
        await until(lambda: sum(r.channel == "m1_kw_total" for r in readings) >= 10, 30, "10 failed cycles")
        assert status.refused("m1") == {} and metrics.POINTS_REFUSED.get(device="m1") == 0
        failing.extend(meter.requests)
        meter.exception = None
        await until(lambda: bool(readings) and readings[-1].quality == Quality.GOOD, 10, "good readings")
        assert status.refused("m1") == {}

    readings = poll(meter, dev, body)
    # While the meter failed, the agent kept reading the coalesced requests as they were: no split.
    assert set(failing) == {(r.function, r.address, r.count) for g in poll_groups(dev) for r in g.requests}
    bad = [r for r in readings if r.quality == Quality.BAD]
    assert len(bad) >= 10 * len(dev.points) and all(r.value is None for r in bad)
    good = {r.channel: r.value for r in readings if r.quality == Quality.GOOD}
    assert good == {f"m1_{k}": published(k) for k in PROFILE.points}


# `kilnwatch agent check --probe` and `kilnwatch agent probe --profile`, as separate processes.


async def cli(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.cli", "agent", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


def test_check_probe_lists_the_points_the_meter_refuses_and_exits_1(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(
        CONFIG.format(broker=free_port(), health=free_port(), modbus=port, interval=1, retry=600)
    )

    async def scenario() -> tuple[int, str]:
        async with mapped_meter(port, MappedMeter(meter_words())):
            return await cli("check", str(config), "--probe")

    code, out = asyncio.run(scenario())
    assert code == 1, out
    total = len(PROFILE.points)
    assert f"probe modbus m1: {total - len(MISSING)} of {total} points answered" in out
    for key in MISSING:
        address = PROFILE.points[key].fields["address"]
        assert f"  m1_{key}: FC3 {address}: exception 2 (illegal data address)\n" in out
    assert out.count("exception") == len(MISSING)


def test_probe_profile_reports_which_profile_points_the_meter_answers() -> None:
    port = free_port()
    url = f"modbus://127.0.0.1:{port}"

    async def scenario() -> list[tuple[int, str]]:
        meter = MappedMeter(meter_words())
        async with mapped_meter(port, meter):
            lacking = await cli("probe", url, "--profile", "schneider-pm5100")
            meter.words = meter_words(())
            return [lacking, await cli("probe", url, "--profile", "schneider-pm5100")]

    (code, out), (full_code, full) = asyncio.run(scenario())
    total = len(PROFILE.points)
    assert code == 1, out
    summary = (
        f"{total - len(MISSING)} of {total} profile points answered; "
        f"refused: {', '.join(MISSING)} (exception 2 illegal data address)"
    )
    assert out.splitlines()[-1] == summary
    assert "  i_n             FC3 3005: exception code 2 (illegal data address)" in out
    kw = re.search(r"^  kw_total\s+(\S+) kW\s+FC3 3059 float32 ABCD \[", out, flags=re.M)
    assert kw is not None and float(kw.group(1)) == published("kw_total")
    assert re.search(r"^  meter_name\s+'Raw mill'\s+FC3 29 string20", out, flags=re.M)
    assert full_code == 0, full
    assert full.splitlines()[-1] == f"{total} of {total} profile points answered"
