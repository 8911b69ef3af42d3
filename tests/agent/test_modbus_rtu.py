"""Modbus RTU for real: several meters on one serial line (two ptys joined by a relay that plays the RS-485
wire and logs every frame), and RTU framing through a TCP gateway. Plus the transport settings' validation."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pty
import select
import statistics
import struct
import sys
import threading
import time
import tty
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pymodbus import FramerType
from typer.testing import CliRunner

from agent.commands import agent_app
from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.link import frame_silence
from agent.sources.modbus.poller import ModbusPoller
from agent.sources.reading import Reading
from agent.wire import Quality
from simulators.kiln.meters import State
from simulators.kiln.modbus_server import start_modbus_serial_server, start_modbus_server
from simulators.kiln.model import KilnLine
from tests.servers import free_port

READ_REQUEST_BYTES = 8  # unit, function, address (2), count (2), CRC (2)
RTU = {"transport": "rtu", "serial_port": "/dev/ttyS0"}


@dataclass
class Wire:
    """Two pseudo-terminals joined by a thread: the agent opens ``master_port``, the meters ``meter_port``.

    Requests go through whole (every read request is 8 bytes) unless addressed to a ``silent`` unit, which
    is how an absent or dead meter on RS-485 behaves: nobody answers. ``log`` holds (direction, time, bytes).
    """

    master_port: str
    meter_port: str
    silent: set[int] = field(default_factory=set)
    log: list[tuple[str, float, bytes]] = field(default_factory=list)

    def bursts(self) -> list[tuple[str, float, float, bytes]]:
        """Consecutive chunks in one direction joined: (direction, first time, last time, bytes)."""
        out: list[tuple[str, float, float, bytes]] = []
        for direction, t, data in self.log:
            if out and out[-1][0] == direction:
                d, t0, _, joined = out[-1]
                out[-1] = (d, t0, t, joined + data)
            else:
                out.append((direction, t, t, data))
        return out


@contextlib.contextmanager
def serial_wire() -> Iterator[Wire]:
    ends = [pty.openpty() for _ in range(2)]
    for _, slave in ends:
        tty.setraw(slave)  # no echo or line editing before pyserial opens the port
    (agent_master, agent_slave), (meter_master, meter_slave) = ends
    wire = Wire(os.ttyname(agent_slave), os.ttyname(meter_slave))
    stop = threading.Event()

    def relay() -> None:
        pending = b""
        while not stop.is_set():
            ready, _, _ = select.select([agent_master, meter_master], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the other side is between close and reopen
                    continue
                now = time.perf_counter()
                if fd == meter_master:
                    wire.log.append(("answer", now, data))
                    os.write(agent_master, data)
                    continue
                pending += data
                while len(pending) >= READ_REQUEST_BYTES:
                    frame, pending = pending[:READ_REQUEST_BYTES], pending[READ_REQUEST_BYTES:]
                    if frame[0] not in wire.silent:
                        wire.log.append(("request", now, frame))
                        os.write(meter_master, frame)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        yield wire
    finally:
        stop.set()
        thread.join()
        for fd in (agent_master, agent_slave, meter_master, meter_slave):
            os.close(fd)


async def poll(devices: list[ModbusDevice], seconds: float) -> list[Reading]:
    readings: list[Reading] = []
    task = asyncio.create_task(ModbusPoller(devices, readings.extend).run())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return readings


def f32(value: float) -> float:
    return struct.unpack(">f", struct.pack(">f", value))[0]


def rtu_device(
    name: str, wire: Wire, unit: int, profile: str, points: list[str], **kw: float
) -> ModbusDevice:
    return ModbusDevice.model_validate(
        {"name": name, "transport": "rtu", "serial_port": wire.master_port, "baudrate": 9600, "unit": unit,
         "profile": profile, "profile_points": points, **kw}
    )  # fmt: skip


@contextlib.asynccontextmanager
async def meters_on(wire: Wire, line: KilnLine) -> AsyncIterator[None]:
    server = await start_modbus_serial_server(lambda: State(line.rates, line.truth), wire.meter_port)
    try:
        yield
    finally:
        await server.shutdown()


def test_two_meters_on_one_line_are_read_in_turn_with_the_pause_between_frames() -> None:
    line = KilnLine(seed=2)
    pause = 0.03

    async def scenario(wire: Wire) -> list[Reading]:
        async with meters_on(wire, line):
            devices = [
                rtu_device("raw_mill", wire, 1, "schneider-pm5100", ["kw_total", "kwh_import"],
                           interval=0.2, inter_frame_delay=pause),
                rtu_device("coal_mill", wire, 3, "acrel-adw300", ["kw_total", "kwh_import"],
                           interval=0.2, inter_frame_delay=pause),
            ]  # fmt: skip
            return await poll(devices, 2.0)

    with serial_wire() as wire:
        readings = asyncio.run(scenario(wire))
    latest = {r.channel: r for r in readings}
    assert {r.quality for r in readings} == {Quality.GOOD}
    assert latest["raw_mill_kw_total"].value == f32(line.rates["raw_mill_kw"])
    assert latest["coal_mill_kw_total"].value == pytest.approx(round(line.rates["coal_mill_kw"] * 1e3) / 1e3)
    assert latest["raw_mill_kwh_import"].value == pytest.approx(48_213_557.120)  # the contract's start
    assert latest["coal_mill_kwh_import"].value == pytest.approx(9_876_543.21)

    bursts = wire.bursts()
    if bursts[-1][0] == "request":  # the poll in flight when the test stopped the poller
        bursts.pop()
    directions = [b[0] for b in bursts]
    # One frame on the wire at a time: strictly request, answer, request, answer ...
    assert directions == ["request", "answer"] * (len(bursts) // 2)
    units = [b[3][0] for b in bursts]
    assert all(req == ans for req, ans in zip(units[0::2], units[1::2], strict=True))
    assert set(units) == {1, 3} and len(bursts) >= 2 * 12
    gaps = [nxt[1] - prev[2] for prev, nxt in itertools.pairwise(bursts) if nxt[0] == "request"]
    quiet = f"min {min(gaps) * 1000:.1f} ms, median {statistics.median(gaps) * 1000:.1f} ms"
    print(
        f"\nRTU line: {len(bursts) // 2} requests; quiet before each: {quiet} (pause {pause * 1000:.0f} ms)"
    )
    assert min(gaps) >= pause - 0.005


def test_a_silent_meter_on_the_line_costs_the_others_only_its_own_attempts() -> None:
    line = KilnLine(seed=2)
    interval, timeout, seconds = 0.2, 0.3, 4.0

    async def scenario(wire: Wire) -> list[Reading]:
        async with meters_on(wire, line):
            devices = [
                rtu_device("live", wire, 1, "schneider-pm5100", ["kw_total"], interval=interval),
                rtu_device("dead", wire, 9, "schneider-pm5100", ["kw_total"], interval=interval,
                           timeout=timeout, retries=0),
            ]  # fmt: skip
            return await poll(devices, seconds)

    with serial_wire() as wire:
        wire.silent.add(9)
        readings = asyncio.run(scenario(wire))
    live = sorted(r.t_ms for r in readings if r.channel == "live_kw_total")
    dead = [r for r in readings if r.channel == "dead_kw_total"]
    periods = [(b - a) / 1000 for a, b in itertools.pairwise(live)]
    spread = f"median period {statistics.median(periods):.3f} s, max {max(periods):.3f} s"
    print(f"\nline with a silent unit: live {len(live)} polls, {spread}; silent unit {len(dead)} attempts")
    assert all(r.quality == Quality.GOOD for r in readings if r.channel == "live_kw_total")
    assert dead and all(r.quality == Quality.BAD and r.value is None for r in dead)
    # Backoff 0.2, 0.4, 0.8, 1.6 s: at most ~5 attempts in 4 s, each holding the line for one timeout.
    assert len(dead) <= 6
    assert len(live) >= 0.6 * seconds / interval
    assert statistics.median(periods) <= 1.5 * interval
    assert max(periods) <= interval + timeout + 0.3  # delayed by one silent attempt at most


def test_rtu_frames_through_a_tcp_gateway() -> None:
    line = KilnLine(seed=3)

    async def scenario() -> list[Reading]:
        port = free_port()
        server = await start_modbus_server(lambda: State(line.rates, line.truth), port, framer=FramerType.RTU)
        gateway = {"transport": "rtu-over-tcp", "host": "127.0.0.1", "port": port, "interval": 0.2,
                   "timeout": 0.5, "profile_points": ["kw_total"]}  # fmt: skip
        devices = [
            ModbusDevice.model_validate({"name": "cooler", "unit": 4, "profile": "chint-dtsu666", **gateway}),
            ModbusDevice.model_validate(
                {"name": "cement", "unit": 7, "profile": "siemens-pac3200", **gateway}
            ),
        ]
        try:
            return await poll(devices, 1.2)
        finally:
            await server.shutdown()

    readings = asyncio.run(scenario())
    latest = {r.channel: r for r in readings}
    assert {r.quality for r in readings} == {Quality.GOOD}
    assert latest["cooler_kw_total"].value == pytest.approx(f32(line.rates["cooler_kw"] * 10_000) * 0.0001)
    assert latest["cement_kw_total"].value == pytest.approx(f32(line.rates["cement_mill_kw"] * 1000) * 0.001)


def test_frame_silence_is_three_and_a_half_characters() -> None:
    def rtu(**kw: object) -> ModbusDevice:
        return ModbusDevice.model_validate(
            {"name": "m", "transport": "rtu", "serial_port": "/dev/ttyS", **kw}
        )

    assert frame_silence(rtu(baudrate=9600)) == pytest.approx(3.5 * 10 / 9600)  # 8N1: 10 bits a character
    assert frame_silence(rtu(baudrate=9600, parity="E")) == pytest.approx(3.5 * 11 / 9600)
    assert frame_silence(rtu(baudrate=1200, stopbits=2, parity="O")) == pytest.approx(3.5 * 12 / 1200)
    assert frame_silence(rtu(baudrate=38400)) == 0.00175  # fixed above 19200 bit/s
    assert frame_silence(ModbusDevice.model_validate({"name": "m", "host": "h"})) == 0.0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"transport": "rtu"}, "serial_port: missing required key 'serial_port': set the serial device"),
        ({**RTU, "host": "10.0.0.5"}, "not used with transport 'rtu'"),
        ({**RTU, "unit": 0}, "unit 0 is the broadcast address"),
        ({**RTU, "parity": "X"}, "parity: expected one of N, E, O"),
        ({"host": "10.0.0.5", "baudrate": 19200}, "baudrate: serial settings are for transport 'rtu' only"),
        ({"transport": "rtu-over-tcp"}, "host: missing required key 'host'"),
        ({"transport": "rtu-over-tcp", "host": "gw", "serial_port": "/dev/ttyS0"}, "serial_port: serial"),
        ({"transport": "modbus", "host": "gw"}, "transport: expected one of tcp, rtu, rtu-over-tcp"),
    ],
)  # fmt: skip
def test_transport_settings_are_checked(tmp_path: Path, settings: dict[str, object], message: str) -> None:
    lines = [f"{k} = {v!r}".replace("'", '"') for k, v in {"name": "m", **settings}.items()]
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nid = "gw"\nsite = "s"\n[[modbus]]\n' + "\n".join(lines) + "\n")
    result = CliRunner().invoke(agent_app, ["check", str(path)])
    assert result.exit_code == 2
    assert message in result.stderr, result.stderr


def test_devices_sharing_a_connection_must_agree_on_it(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    body = """[agent]
id = "gw"
site = "s"
[[modbus]]
name = "a"
transport = "rtu"
serial_port = "/dev/ttyUSB0"
unit = 1
[[modbus]]
name = "b"
transport = "rtu"
serial_port = "/dev/ttyUSB0"
unit = 2
parity = "E"
[[modbus]]
name = "c"
host = "10.0.0.9"
[[modbus]]
name = "d"
transport = "rtu-over-tcp"
host = "10.0.0.9"
"""
    path.write_text(body)
    result = CliRunner().invoke(agent_app, ["check", str(path)])
    assert result.exit_code == 2
    expected = (
        f"{path}: modbus[1].parity: 'E' differs from 'N' of modbus[0] on the same connection /dev/ttyUSB0"
    )
    assert expected in result.stderr
    assert "modbus[3].transport: 'rtu-over-tcp' differs from 'tcp' of modbus[2]" in result.stderr
    line = {"transport": "rtu", "serial_port": "/dev/ttyUSB0"}
    devices = [ModbusDevice.model_validate({"name": "a", **line}),
               ModbusDevice.model_validate({"name": "b", "parity": "E", **line})]  # fmt: skip
    with pytest.raises(ValueError, match="must agree on parity"):
        ModbusPoller(devices, print)
    path.write_text(body.replace('parity = "E"\n', "").replace('transport = "rtu-over-tcp"\n', ""))
    result = CliRunner().invoke(agent_app, ["check", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "modbus a: rtu /dev/ttyUSB0 9600 8N1 unit 1" in result.output


def test_a_missing_serial_port_is_a_transport_error_not_a_crash() -> None:
    device = ModbusDevice.model_validate(
        {"name": "m", "transport": "rtu", "serial_port": "/dev/nonexistent-kilnwatch", "timeout": 0.3,
         "points": [{"name": "p", "address": 0, "type": "uint16"}]}
    )  # fmt: skip
    readings = asyncio.run(poll([device], 0.8))
    assert readings and all(r.quality == Quality.BAD for r in readings)


def test_probe_reads_a_meter_on_a_serial_line() -> None:
    line = KilnLine(seed=1)

    async def scenario(wire: Wire) -> tuple[int, str, str]:
        async with meters_on(wire, line):
            url = f"rtu://{wire.master_port}?baud=9600&parity=N"
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent.cli", "agent", "probe", url, "--unit", "3", "-r", "36:int32",
                "-r", "20:uint16", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            return int(proc.returncode or 0), out.decode(), err.decode()

    with serial_wire() as wire:
        code, out, err = asyncio.run(scenario(wire))
    assert code == 0, err
    assert f"FC3 36 int32 ABCD = {round(line.rates['coal_mill_kw'] * 1000)}  [" in out
    assert {b[3][0] for b in wire.bursts()} == {3}
