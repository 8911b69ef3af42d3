"""The DL/T 645 poller against simulated meters behind a real TCP gateway (``simulators.dlt645``), and against
small hand-written peers on real sockets for the faults a simulated meter does not make (garbled replies,
values that are not BCD)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from agent.sources.base import SourceStatus
from agent.sources.dlt645.config import Dlt645Meter
from agent.sources.dlt645.poller import Dlt645Poller
from agent.sources.reading import Reading
from agent.wire import Quality
from simulators.dlt645.line import Line, serve_tcp
from simulators.dlt645.meter import Layout, SimulatedMeter
from simulators.dlt645.wire import Request, reply, take_requests

ADDRESS = "000012345678"
Cycles = list[list[Reading]]


@contextlib.asynccontextmanager
async def gateway(line: Line) -> AsyncIterator[int]:
    server = await serve_tcp(line, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def meter_config(port: int, points: Sequence[dict[str, Any]], **kw: Any) -> Dlt645Meter:
    settings = {"name": "m", "transport": "tcp", "host": "127.0.0.1", "port": port, "address": ADDRESS,
                "interval": 0.1, "timeout": 1.0, **kw}  # fmt: skip
    return Dlt645Meter.model_validate({**settings, "points": list(points)})


async def poll(
    meters: Sequence[Dlt645Meter],
    until: Callable[[Cycles], bool],
    timeout: float = 20.0,
    status: SourceStatus | None = None,
) -> Cycles:
    """Run the poller until ``until(cycles)`` holds (each cycle one sink call), or fail after ``timeout``."""
    cycles: Cycles = []
    task = asyncio.create_task(Dlt645Poller(meters, cycles.append, status).run())
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while not until(cycles):
            assert asyncio.get_running_loop().time() < deadline, (
                f"condition not met in {timeout} s: {cycles[-3:]}"
            )
            assert not task.done(), task
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return cycles


def of(cycles: Cycles, channel: str) -> list[Reading]:
    return [r for cycle in cycles for r in cycle if r.channel == channel]


def good(cycles: Cycles, channel: str, n: int) -> bool:
    return sum(r.quality == Quality.GOOD for r in of(cycles, channel)) >= n


def test_values_are_decoded_and_multiplied_by_the_ratios_once() -> None:
    meter = SimulatedMeter(ADDRESS, primary_kw=1200.0, ct=40.0, pt=100.0, primary_v=5773.5, power_factor=0.9)
    names = ["energy_import_total", "energy_total", "power_total", "voltage_a", "current_a",
             "power_factor_total", "frequency"]  # fmt: skip
    line = Line([meter])

    async def scenario() -> Cycles:
        async with gateway(line) as port:
            config = meter_config(port, [{"name": n, "di": n} for n in names], ct_ratio=40.0, pt_ratio=100.0)
            return await poll([config], lambda c: all(good(c, n, 3) for n in names))

    cycles = asyncio.run(scenario())
    assert {r.quality for c in cycles for r in c} == {Quality.GOOD}
    ratios = {"energy_import_total": 4000, "energy_total": 4000, "power_total": 4000, "voltage_a": 100,
              "current_a": 40, "power_factor_total": 1, "frequency": 1}  # fmt: skip
    dis = {"energy_import_total": 0x00010000, "energy_total": 0x00000000, "power_total": 0x02030000,
           "voltage_a": 0x02010100, "current_a": 0x02020100, "power_factor_total": 0x02060000,
           "frequency": 0x02800002}  # fmt: skip
    for name in names:
        sent = [a.value * ratios[name] for a in meter.answers if a.di == dis[name]]
        published = [r.value for r in of(cycles, name)]
        # Every answer, in order, scaled once (the poller may have been stopped after one more answer).
        assert published == pytest.approx(sent[: len(published)]) and len(sent) - len(published) <= 1, name
    latest = {name: of(cycles, name)[-1].value for name in names}
    assert latest["power_total"] == pytest.approx(1200.0)  # 0.3000 kW secondary × 4000
    assert latest["voltage_a"] == pytest.approx(5773.5, abs=5)  # 57.7 V secondary (one decimal) × 100
    assert latest["frequency"] == 50.0 and latest["power_factor_total"] == 0.9
    # 48213.55 kWh primary at the start = 12.05 kWh secondary (2 decimals), 40 kWh steps after × 4000.
    assert latest["energy_import_total"] == pytest.approx(meter.import_kwh, abs=40)
    assert line.overlaps == 0


def test_meters_behind_one_gateway_take_turns() -> None:
    meters = [SimulatedMeter(ADDRESS), SimulatedMeter("000012345679", primary_kw=-20.0)]
    line = Line(meters, answer_delay=0.03)  # a meter's answer time: any pipelining would overlap
    points = [{"name": "kw", "di": "power_total"}, {"name": "kwh", "di": "energy_import_total"}]

    async def scenario() -> Cycles:
        async with gateway(line) as port:
            configs = [
                meter_config(port, [{**p, "name": f"a_{p['name']}"} for p in points], name="a"),
                meter_config(port, [{**p, "name": f"b_{p['name']}"} for p in points], name="b",
                             address="000012345679"),
            ]  # fmt: skip
            return await poll(configs, lambda c: good(c, "a_kw", 5) and good(c, "b_kw", 5))

    cycles = asyncio.run(scenario())
    assert {r.quality for c in cycles for r in c} == {Quality.GOOD}
    assert of(cycles, "b_kw")[-1].value == -20.0  # exporting: the sign bit
    assert line.overlaps == 0 and line.requests >= 20
    assert {len(c) for c in cycles} == {2}  # one sink call per meter cycle, both points


class MeterGainingAnIdentifier(SimulatedMeter):
    """A meter that answers its communication address (04000401) only once ``updated`` is set: a firmware
    update, the one way a register map changes in the field."""

    updated = False

    def true_values(self) -> dict[int, tuple[float, Layout]]:
        values = super().true_values()
        if self.updated:
            values[0x04000401] = (float(self.address), Layout(12, 0))
        return values


def test_an_identifier_the_meter_lacks_is_refused_retried_rarely_and_recovers() -> None:
    meter = MeterGainingAnIdentifier(ADDRESS)
    status = SourceStatus()
    points = [{"name": "kwh", "di": "energy_import_total"}, {"name": "addr", "di": "04000401",
              "layout": "XXXXXXXXXXXX"}]  # fmt: skip
    reason = "abnormal reply, error word 0x02: no requested data"

    seen: dict[str, Any] = {}

    def until(cycles: Cycles) -> bool:
        """After 5 good cycles, note what the poller knows, then let the meter gain the identifier."""
        if not seen and good(cycles, "kwh", 5):
            seen.update(refused=status.refused("m"), asked=meter.reads.count(0x04000401), cycles=len(cycles))
            meter.updated = True
        return good(cycles, "addr", 1)

    async def scenario() -> Cycles:
        async with gateway(Line([meter])) as port:
            return await poll([meter_config(port, points, refused_retry=1.0)], until, status=status)

    cycles = asyncio.run(scenario())
    assert seen["refused"] == {"addr": reason}
    assert seen["asked"] == 1  # refused once, then not asked every cycle
    before = cycles[: seen["cycles"]]
    assert all(
        r.quality == Quality.BAD and r.value is None for r in of(before, "addr")
    )  # reported every cycle
    assert len(of(before, "addr")) == seen["cycles"] >= 5
    assert all(r.quality == Quality.GOOD for r in of(cycles, "kwh"))
    assert of(cycles, "addr")[-1].value == 12345678.0  # read again after refused_retry, and answered
    assert status.refused("m") == {}


def test_a_meter_that_does_not_answer_is_bad_backs_off_and_spares_the_others() -> None:
    meter = SimulatedMeter(ADDRESS)
    seconds, timeout = 3.0, 0.25
    points = [{"name": "kw", "di": "power_total"}]

    async def scenario() -> Cycles:
        async with gateway(Line([meter])) as port:
            configs = [
                meter_config(port, points, name="live"),
                meter_config(port, [{"name": "gone_kw", "di": "power_total"}], name="gone",
                             address="000099999999", timeout=timeout, retries=0),
            ]  # fmt: skip
            started = asyncio.get_running_loop().time()
            # A span of time is the point here: how often the silent meter is tried in it.
            return await poll(configs, lambda _: asyncio.get_running_loop().time() - started > seconds)

    cycles = asyncio.run(scenario())
    gone = of(cycles, "gone_kw")
    assert gone and all(r.quality == Quality.BAD and r.value is None for r in gone)
    # Backoff 0.1, 0.2, 0.4, 0.8, 1.6 s after attempts of 0.25 s each: at most 6 attempts in 3 s.
    assert len(gone) <= 6
    live = of(cycles, "kw")
    assert all(r.quality == Quality.GOOD for r in live)
    assert len(live) >= 0.4 * seconds / 0.1


@contextlib.asynccontextmanager
async def peer(answer: Callable[[Request], bytes]) -> AsyncIterator[int]:
    """A hand-written meter on a real TCP port: ``answer(request)`` gives the bytes sent back."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        while data := await reader.read(1024):
            buffer += data
            for request in take_requests(buffer):
                writer.write(answer(request))
        writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def test_garbled_replies_and_undecodable_values_are_bad_readings() -> None:
    def answer(request: Request) -> bytes:
        di = int.from_bytes(request.data, "little")
        if di == 0x02010100:  # FF FF: the meter has no value now
            return reply(ADDRESS, 0x91, request.data + b"\xff\xff", preamble=True)
        frame = bytearray(reply(ADDRESS, 0x91, request.data + bytes.fromhex("00 75 03"), preamble=False))
        if di == 0x02030100:
            frame[-2] ^= 0x5A  # checksum off: noise on the line
        return bytes(frame)

    points = [{"name": "v", "di": "voltage_a"}, {"name": "kw", "di": "power_total"}]

    async def scenario() -> tuple[Cycles, Cycles]:
        async with peer(answer) as port:
            first = await poll([meter_config(port, points)], lambda c: len(c) >= 3)
            garbled = [{"name": "kw_a", "di": "power_a"}]
            second = await poll([meter_config(port, garbled, retries=1)], lambda c: len(c) >= 1)
            return first, second

    first, second = asyncio.run(scenario())
    assert all(r.quality == Quality.BAD and r.value is None for r in of(first, "v"))
    assert all(r.value == 3.75 and r.quality == Quality.GOOD for r in of(first, "kw"))  # the cycle goes on
    assert [(r.quality, r.value) for r in of(second, "kw_a")] == [(Quality.BAD, None)]


def test_a_missing_serial_port_is_a_transport_error_not_a_crash() -> None:
    config = Dlt645Meter.model_validate(
        {"name": "m", "serial_port": "/dev/nonexistent-kilnwatch", "address": ADDRESS, "interval": 0.1,
         "points": [{"name": "kw", "di": "power_total"}]}
    )  # fmt: skip
    cycles = asyncio.run(poll([config], lambda c: len(c) >= 2))
    assert all(r.quality == Quality.BAD and r.value is None for r in of(cycles, "kw"))
