"""DL/T 645 end to end: simulated meters on a real TCP gateway port and on a real pseudo-terminal line,
read by the whole agent (``agent.runner.Agent``) into a real Mosquitto, the published batches checked against
what the meters sent; and ``kilnwatch agent check --probe`` and ``agent probe`` on the same meters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from typer.testing import CliRunner

from agent import wire
from agent.commands import agent_app
from agent.config import load_config
from agent.runner import Agent
from simulators.dlt645.line import Line, PtyLine, serve_tcp
from simulators.dlt645.meter import SimulatedMeter
from tests.servers import Mosquitto

DRIVE, MILL = "000012345678", "000012345679"
IMPORT, POWER, UNKNOWN = 0x00010000, 0x02030000, 0x04000401

CONFIG = """
[agent]
id = "gw1"
site = "plant1"
batch_interval = 0.3

[mqtt]
port = {broker}

[health]
listen = ""

[outbox]
path = "outbox.db"

[[dlt645]]
name = "kiln_drive"
{line}
address = "{drive}"
ct_ratio = 40
interval = 0.2

[[dlt645.points]]
name = "drive_kwh"
di = "energy_import_total"

[[dlt645.points]]
name = "drive_kw"
di = "power_total"

[[dlt645]]
name = "coal_mill"
{line}
address = "{mill}"
interval = 0.2

[[dlt645.points]]
name = "mill_kw"
di = "02030000"

[[dlt645.points]]
name = "mill_meter_number"   # 04000401: this meter model does not have it
di = "04000401"
layout = "XXXXXXXXXXXX"
"""


@contextlib.asynccontextmanager
async def served(transport: str, line: Line) -> AsyncIterator[str]:
    """The ``[[dlt645]]`` keys that reach ``line``: a TCP gateway port, or the slave end of a pty."""
    if transport == "tcp":
        server = await serve_tcp(line, 0)
        try:
            yield f'transport = "tcp"\nhost = "127.0.0.1"\nport = {server.sockets[0].getsockname()[1]}'
        finally:
            server.close()
            await server.wait_closed()
        return
    pty = PtyLine(line)
    try:
        yield f'serial_port = "{pty.path}"'
    finally:
        pty.close()


def subscribe(port: int) -> tuple[mqtt.Client, dict[str, list[bytes]]]:
    got: dict[str, list[bytes]] = {"data": [], "birth": [], "status": []}
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dlt645-sub")
    client.on_connect = lambda c, *_: c.subscribe("kilnwatch/v1/plant1/#", qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda c, u, m: got[m.topic.rsplit("/", 1)[1]].append(m.payload)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert ready.wait(10)
    return client, got


def readings(got: dict[str, list[bytes]]) -> dict[str, list[tuple[float | None, int]]]:
    out: dict[str, list[tuple[float | None, int]]] = {}
    for payload in list(got["data"]):
        batch = wire.decode_batch(payload)
        for channel, value, quality in zip(batch.channels, batch.values, batch.quality, strict=True):
            out.setdefault(channel, []).append((value, quality))
    return out


@pytest.mark.parametrize("transport", ["tcp", "serial"])
def test_meters_are_read_into_mqtt(transport: str, broker: Mosquitto, tmp_path: Path) -> None:
    drive = SimulatedMeter(DRIVE, primary_kw=1800.0, ct=40.0)  # reports 45.0000 kW on the secondary side
    mill = SimulatedMeter(MILL, primary_kw=-12.5)  # a direct-connected meter, exporting
    line = Line([drive, mill], answer_delay=0.01)
    client, got = subscribe(broker.port)
    health: dict[str, object] = {}

    def enough() -> bool:
        seen = readings(got)
        return all(
            sum(q == 0 for _, q in seen.get(ch, [])) >= 3 for ch in ("drive_kwh", "drive_kw", "mill_kw")
        )

    async def scenario() -> None:
        async with served(transport, line) as keys:
            path = tmp_path / "agent.toml"
            path.write_text(CONFIG.format(broker=broker.port, line=keys, drive=DRIVE, mill=MILL))
            agent = Agent(load_config(path), path)
            stop = asyncio.Event()
            task = asyncio.create_task(agent.run(stop))
            deadline = asyncio.get_running_loop().time() + 30
            while not enough():
                assert asyncio.get_running_loop().time() < deadline, readings(got)
                assert not task.done()
                await asyncio.sleep(0.05)
            health.update(agent.check()[1])
            stop.set()
            await task

    try:
        asyncio.run(scenario())
    finally:
        client.disconnect()
        client.loop_stop()

    seen = readings(got)
    for channel, meter, di, ratio in (("drive_kwh", drive, IMPORT, 40), ("drive_kw", drive, POWER, 40),
                                      ("mill_kw", mill, POWER, 1)):  # fmt: skip
        published = [v for v, _ in seen[channel]]
        sent = [a.value * ratio for a in meter.answers if a.di == di]
        assert all(q == 0 for _, q in seen[channel]), channel
        # What the meter sent, in order, decoded and scaled once (its last answer may not be published yet).
        assert published == pytest.approx(sent[: len(published)]) and len(sent) - len(published) <= 1, channel
    assert seen["drive_kw"][-1][0] == pytest.approx(1800.0)
    assert seen["mill_kw"][-1][0] == pytest.approx(-12.5)
    # 48213.55 kWh primary is 1205.33875 kWh secondary: the meter shows 1205.34, × 40 = 48213.6 kWh.
    assert seen["drive_kwh"][0][0] == pytest.approx(48213.6, abs=0.4 * 40)
    assert {(v, q) for v, q in seen["mill_meter_number"]} == {(None, 2)}
    assert mill.reads.count(UNKNOWN) == 1  # refused, not asked again every cycle
    assert line.overlaps == 0
    devices = health["devices"]
    assert isinstance(devices, dict)
    assert devices["coal_mill"]["refused_points"] == {
        "mill_meter_number": "abnormal reply, error word 0x02: no requested data"
    }
    assert devices["kiln_drive"]["status"] == "ok"
    birth = json.loads(got["birth"][-1])
    assert birth["channels"][0] == {"name": "drive_kwh", "kind": "energy_total", "unit": "kWh",
                                    "device": "kiln_drive", "source": "dlt645"}  # fmt: skip
    assert birth["channels"][1]["kind"] == "power" and birth["channels"][1]["unit"] == "kW"


def test_check_probe_reads_every_point_once(tmp_path: Path) -> None:
    drive, mill = SimulatedMeter(DRIVE, ct=40.0), SimulatedMeter(MILL)

    async def scenario() -> tuple[int, str]:
        async with served("tcp", Line([drive, mill])) as keys:
            path = tmp_path / "agent.toml"
            path.write_text(CONFIG.format(broker=1883, line=keys, drive=DRIVE, mill=MILL))
            result = await asyncio.to_thread(CliRunner().invoke, agent_app, ["check", "--probe", str(path)])
            return result.exit_code, result.output

    code, output = asyncio.run(scenario())
    assert code == 1, output  # one point unanswered
    assert "probe dlt645 kiln_drive: 2 of 2 points answered" in output
    assert "probe dlt645 coal_mill: 1 of 2 points answered" in output
    assert "  mill_meter_number: 04000401: abnormal reply, error word 0x02: no requested data" in output
    assert [a.di for a in drive.answers] == [IMPORT, POWER] and mill.reads == [POWER, UNKNOWN]


async def probe(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.cli", "agent", "probe", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return int(proc.returncode or 0), out.decode(), err.decode()


def expected_lines(meter: SimulatedMeter) -> list[str]:
    """The probe's lines for the meter's answers, built from the bytes it sent."""
    shown = {IMPORT: ("00010000 energy_import_total", 2, " kWh"), POWER: ("02030000 power_total", 4, " kW")}
    return [
        f"{shown[a.di][0]} = {a.value:.{shown[a.di][1]}f}{shown[a.di][2]}  [{a.raw.hex(' ').upper()}]"
        for a in meter.answers
    ]


def test_probe_over_a_gateway_with_and_without_the_meter_address() -> None:
    meter = SimulatedMeter(DRIVE, primary_kw=37.5)

    async def scenario() -> list[tuple[int, str, str]]:
        line = Line([meter])
        server = await serve_tcp(line, 0)
        url = f"dlt645://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            return [
                await probe(url, "--meter", DRIVE, "--read", "00010000", "--read", "power_total"),
                await probe(url, "--read", "energy_import_total"),
                await probe(url, "--meter", DRIVE, "--read", "04000401"),
                await probe(url, "--unit", "3", "--read", "00010000"),
            ]
        finally:
            server.close()

    (code, out, err), (code2, out2, _), (code3, out3, _), (code4, _, err4) = asyncio.run(scenario())
    lines = expected_lines(meter)
    assert code == 0, err
    assert out.splitlines() == lines[:2]
    assert lines[1] == "02030000 power_total = 37.5000 kW  [00 50 37]"  # 37.5000 → 37 50 00, LSB first
    assert code2 == 0 and out2.splitlines() == ["meter address 000012345678", lines[2]]
    assert code3 == 1 and out3.strip() == "04000401: abnormal reply, error word 0x02: no requested data"
    assert code4 == 2 and "--unit: not for dlt645:// URLs" in err4


def test_probe_on_a_serial_line_finds_the_only_meter() -> None:
    meter = SimulatedMeter(DRIVE)

    async def scenario() -> tuple[int, str, str]:
        pty = PtyLine(Line([meter]))
        try:
            return await probe(f"dlt645://{pty.path}?baud=2400&parity=E", "--read", "00010000")
        finally:
            pty.close()

    code, out, err = asyncio.run(scenario())
    assert code == 0, err
    assert out.splitlines() == ["meter address 000012345678", *expected_lines(meter)]


def test_probe_with_two_meters_on_the_line_needs_the_address() -> None:
    meters = [SimulatedMeter(DRIVE), SimulatedMeter(MILL)]

    async def scenario() -> tuple[int, str, str]:
        pty = PtyLine(Line(meters))
        try:
            return await probe(f"dlt645://{pty.path}", "--read", "00010000", "--timeout", "0.5")
        finally:
            pty.close()

    code, out, _ = asyncio.run(scenario())
    assert code == 1
    assert "read address (13H):" in out and "give --meter ADDRESS" in out
