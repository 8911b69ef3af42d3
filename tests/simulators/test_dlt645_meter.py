"""The simulated DL/T 645 meter, spoken to with request bytes written out by hand over a real TCP socket and a
real pseudo-terminal, its replies compared byte for byte with frames worked out from the standard's layout.

The meter's clock is the test's own (a list it advances), so the energy it integrates is known exactly.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
import tty
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from simulators.dlt645.line import Line, PtyLine, serve_tcp
from simulators.dlt645.meter import CURRENT, ENERGY, POWER, SimulatedMeter, encode

METER = "000012345678"
# 68 78 56 34 12 00 00 68: the header of meter 000012345678 (address LSB first); its bytes sum to 484.
HEADER = "68 78 56 34 12 00 00 68"
# Read 00010000 (DI0 first, + 33: 33 33 34 33, which sum to 51 + 51 + 52 + 51 = 205), after the FE preamble:
# CS = 484 + 0x11 (17) + 4 + 205 = 710 = 2 × 256 + 198 → C6.
READ_IMPORT = bytes.fromhex(f"FE FE FE FE {HEADER} 11 04 33 33 34 33 C6 16")
# 12345.67 kWh → 67 45 23 01 (LSB first) + 33 = 9A 78 56 34; CS = 484 + 145 + 8 + 205 + 412 = 1254 → E6.
REPLY_IMPORT = bytes.fromhex(f"{HEADER} 91 08 33 33 34 33 9A 78 56 34 E6 16")
# Read 04000401 (communication address, which this meter does not serve): 01 04 00 04 + 33 = 34 37 33 37;
# CS = 484 + 17 + 4 + (52 + 55 + 51 + 55) = 718 → 718 - 512 = 206 = CE.
READ_UNKNOWN = bytes.fromhex(f"{HEADER} 11 04 34 37 33 37 CE 16")
# The abnormal reply, error word 02 + 33 = 35: CS = 484 + 209 + 1 + 53 = 747 → EB.
REPLY_NO_DATA = bytes.fromhex(f"{HEADER} D1 01 35 EB 16")
# Read address to AA × 6: CS = 208 + 1020 + 19 = 1247 → DF; reply C = 93 with AB 89 67 45 33 33 → C3.
READ_ADDRESS = bytes.fromhex("68 AA AA AA AA AA AA 68 13 00 DF 16")
REPLY_ADDRESS = bytes.fromhex(f"{HEADER} 93 06 AB 89 67 45 33 33 C3 16")


def meter_at(clock: list[float], **kw: float) -> SimulatedMeter:
    settings = {"primary_kw": 0.0, "import_kwh": 12345.67, **kw}
    return SimulatedMeter(METER, preamble=False, clock=lambda: clock[0], **settings)


@asynccontextmanager
async def tcp(line: Line) -> AsyncIterator[Callable[[bytes, int], asyncio.Future[bytes]]]:
    """``exchange(request, reply_size)``: send ``request`` over a real TCP connection, read the reply."""
    server = await serve_tcp(line, 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    def exchange(request: bytes, size: int) -> asyncio.Future[bytes]:
        writer.write(request)
        return asyncio.ensure_future(asyncio.wait_for(reader.readexactly(size), 5))

    try:
        yield exchange
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_replies_over_tcp_are_the_standards_frames() -> None:
    clock = [1000.0]

    async def scenario() -> None:
        async with tcp(Line([meter_at(clock)])) as exchange:
            assert await exchange(READ_IMPORT, len(REPLY_IMPORT)) == REPLY_IMPORT
            assert await exchange(READ_UNKNOWN, len(REPLY_NO_DATA)) == REPLY_NO_DATA
            assert await exchange(READ_ADDRESS, len(REPLY_ADDRESS)) == REPLY_ADDRESS

    asyncio.run(scenario())


def test_frames_for_other_meters_and_garbled_frames_get_no_answer() -> None:
    clock = [1000.0]
    meter = meter_at(clock)
    other = bytes.fromhex("68 79 56 34 12 00 00 68 11 04 33 33 34 33 C7 16")  # meter ...5679: CS 710 + 1
    garbled = bytearray(READ_IMPORT)
    garbled[-2] ^= 0xFF  # wrong checksum: a meter drops the frame

    async def scenario() -> None:
        async with tcp(Line([meter])) as exchange:
            # Noise, another meter's request, a garbled one, then a good one: only the last is answered.
            reply = exchange(b"\x00\x13\x68\x02" + other + bytes(garbled) + READ_IMPORT, len(REPLY_IMPORT))
            assert await reply == REPLY_IMPORT

    asyncio.run(scenario())
    assert meter.reads == [0x00010000]


def test_energy_integrates_power_over_time_exactly() -> None:
    clock = [0.0]
    meter = meter_at(clock, primary_kw=360.0, ct=1.0, import_kwh=0.0)
    clock[0] = 100.0  # 360 kW for 100 s = 10 kWh
    meter.set_power(-180.0)
    clock[0] = 300.0  # then 180 kW exported for 200 s = 10 kWh
    values = meter.true_values()
    assert values[0x00010000][0] == pytest.approx(10.0)
    assert values[0x00020000][0] == pytest.approx(10.0)
    assert values[0x00000000][0] == pytest.approx(20.0)
    assert values[0x02030000][0] == pytest.approx(-180.0)


def test_secondary_values_and_their_encoding() -> None:
    clock = [0.0]
    meter = meter_at(clock, primary_kw=1200.0, ct=40.0, pt=100.0, primary_v=5773.5, power_factor=0.9)
    values = meter.true_values()
    assert values[0x02030000][0] == pytest.approx(0.3)  # 1200 kW / 4000
    assert values[0x02010100][0] == pytest.approx(57.735)
    assert encode(0.3, POWER) == (0.3, bytes.fromhex("00 30 00"))  # 00.3000 → 00 30 00
    assert encode(-12.3456, POWER) == (-12.3456, bytes.fromhex("56 34 92"))  # sign bit on 12 34 56
    assert encode(-1.5, CURRENT) == (-1.5, bytes.fromhex("00 15 80"))
    assert encode(1_000_000.01, ENERGY) == (0.01, bytes.fromhex("01 00 00 00"))  # the counter rolls over
    assert encode(99.0, POWER) == (79.9999, bytes.fromhex("99 99 79"))  # clamped to the signed range


def test_the_wildcard_reaches_the_meter_and_colliding_answers_are_garbage() -> None:
    clock = [1000.0]
    wildcard_read = bytes.fromhex("68 AA AA AA AA AA AA 68 11 04 33 33 34 33")
    wildcard_read += bytes([sum(wildcard_read) % 256, 0x16])

    async def scenario() -> None:
        async with tcp(Line([meter_at(clock)])) as exchange:
            assert await exchange(wildcard_read, len(REPLY_IMPORT)) == REPLY_IMPORT
        two = Line([meter_at(clock), SimulatedMeter("000012345679", clock=lambda: clock[0], preamble=False)])
        async with tcp(two) as exchange:
            collided = await exchange(READ_ADDRESS, len(REPLY_ADDRESS))
            assert collided != REPLY_ADDRESS
            assert sum(collided[:-2]) % 256 != collided[-2]  # AND of ...78 and ...79: no valid checksum

    asyncio.run(scenario())


def test_replies_on_a_pty_with_the_wake_up_preamble() -> None:
    clock = [1000.0]
    meter = meter_at(clock)
    meter.preamble = True

    def read(fd: int, size: int, timeout: float) -> bytes:
        got, deadline = b"", time.monotonic() + timeout
        while len(got) < size and select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            got += os.read(fd, size - len(got))
        return got

    async def scenario() -> bytes:
        line = PtyLine(Line([meter]))
        fd = os.open(line.path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        try:
            os.write(fd, READ_IMPORT)
            return await asyncio.to_thread(read, fd, 4 + len(REPLY_IMPORT), 5.0)
        finally:
            os.close(fd)
            line.close()

    assert asyncio.run(scenario()) == b"\xfe\xfe\xfe\xfe" + REPLY_IMPORT
