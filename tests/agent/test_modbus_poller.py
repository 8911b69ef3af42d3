"""The Modbus poller against a real pymodbus server: decoded values; a dead device delays no other."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics

import pytest

from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.poller import ModbusPoller
from agent.sources.reading import Reading
from agent.wire import Quality
from tests.agent.modbus_server import blackhole, modbus_server
from tests.servers import free_port


async def collect(devices: list[ModbusDevice], seconds: float) -> list[Reading]:
    readings: list[Reading] = []
    task = asyncio.create_task(ModbusPoller(devices, readings.extend).run())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return readings


def device(name: str, port: int, unit: int = 1, **kw: object) -> ModbusDevice:
    points = kw.pop("points", None) or [
        {"name": f"{name}_t", "address": 0, "type": "uint32", "order": "CDAB", "scale": 0.001},
        {"name": f"{name}_tph", "address": 2, "type": "float32", "order": "CDAB"},
        {"name": f"{name}_kw", "address": 10, "type": "float32"},
        {"name": f"{name}_kwh", "address": 20, "type": "int64", "scale": 0.001},
    ]
    return ModbusDevice.model_validate(
        {"name": name, "host": "127.0.0.1", "port": port, "unit": unit, "points": points, **kw}
    )


def test_values_decode_from_a_live_server() -> None:
    async def scenario() -> list[Reading]:
        port = free_port()
        async with modbus_server(port):
            return await collect([device("feeder", port, interval=0.2)], 0.7)

    readings = asyncio.run(scenario())
    latest = {r.channel: r for r in readings}
    assert latest["feeder_t"].value == pytest.approx(4_277_000.123)
    assert latest["feeder_tph"].value == 42.5
    assert latest["feeder_kw"].value == 3812.25
    assert latest["feeder_kwh"].value == pytest.approx(81_234.567)
    assert {r.quality for r in readings} == {Quality.GOOD}


def test_exception_reply_marks_only_that_device_bad() -> None:
    async def scenario() -> list[Reading]:
        port = free_port()
        async with modbus_server(port):
            # unit 9 does not exist behind this "gateway": exception replies, same connection as unit 1.
            return await collect(
                [device("good", port, interval=0.2), device("ghost", port, unit=9, interval=0.2)], 0.7
            )

    readings = asyncio.run(scenario())
    assert {r.quality for r in readings if r.channel.startswith("good")} == {Quality.GOOD}
    ghost = [r for r in readings if r.channel.startswith("ghost")]
    assert ghost and all(r.quality == Quality.BAD and r.value is None for r in ghost)


def test_a_hanging_device_does_not_delay_the_others() -> None:
    interval, timeout = 0.2, 1.0

    async def scenario() -> list[Reading]:
        live, dead = free_port(), free_port()
        async with modbus_server(live), blackhole(dead):
            devices = [
                device("live", live, interval=interval),
                device("dead", dead, interval=interval, timeout=timeout, retries=1),
            ]
            return await collect(devices, 4.0)

    readings = asyncio.run(scenario())
    live_times = sorted({r.t_ms for r in readings if r.channel == "live_kw"})
    periods = [(b - a) / 1000 for a, b in itertools.pairwise(live_times)]
    # 4 s at 0.2 s: ~20 polls, evenly spaced, while the dead device spends 2 s (2 attempts x 1 s) per cycle.
    assert len(live_times) >= 17
    assert statistics.median(periods) == pytest.approx(interval, abs=0.03)
    assert max(periods) < interval + 0.15
    dead = [r for r in readings if r.channel.startswith("dead")]
    assert dead and all(r.quality == Quality.BAD and r.value is None for r in dead)
    # Two failed cycles at most in 4 s: 2 s each, then backoff; the live device was never held up meanwhile.
    assert len({r.t_ms for r in dead}) <= 2
