"""The Modbus side read by real masters (pymodbus client, Debian's mbpoll), decoded here with ``struct``.

The server runs in the test's event loop on a free loopback port and serves a ``KilnLine`` that the test
steps by hand, so every expected register value is computed here from the model's rates and truth.
"""

from __future__ import annotations

import asyncio
import math
import re
import struct
from collections.abc import Awaitable, Callable

from pymodbus.client import AsyncModbusTcpClient

from simulators.kiln.meters import State
from simulators.kiln.modbus_server import start_modbus_server
from simulators.kiln.model import KilnLine
from tests.servers import binary, free_port

Reader = Callable[[int, int, int, int], Awaitable[list[int]]]


def f32(words: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">HH", *words))[0]


def f32_cdab(words: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">HH", words[1], words[0]))[0]


def as_f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


def i32(words: list[int]) -> int:
    return struct.unpack(">i", struct.pack(">HH", *words))[0]


def u32(words: list[int]) -> int:
    return struct.unpack(">I", struct.pack(">HH", *words))[0]


def u32_cdab(words: list[int]) -> int:
    return struct.unpack(">I", struct.pack(">HH", words[1], words[0]))[0]


def i64(words: list[int]) -> int:
    return struct.unpack(">q", struct.pack(">HHHH", *words))[0]


def f64(words: list[int]) -> float:
    return struct.unpack(">d", struct.pack(">HHHH", *words))[0]


def serve(line: KilnLine, body: Callable[[int, Reader], Awaitable[None]]) -> None:
    """Run ``body(port, read)`` against a server of ``line``; ``read(unit, fc, address, count)`` -> words."""

    async def main() -> None:
        port = free_port()
        server = await start_modbus_server(lambda: State(line.rates, line.truth), port)
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        try:
            assert await client.connect()

            async def read(unit: int, fc: int, address: int, count: int) -> list[int]:
                call = client.read_holding_registers if fc == 3 else client.read_input_registers
                rr = await call(address, count=count, device_id=unit)
                assert not rr.isError(), (unit, fc, address, rr)
                return rr.registers

            await body(port, read)
        finally:
            client.close()
            await server.shutdown()

    asyncio.run(main())


def test_contract_points_decode_to_model_values() -> None:
    line = KilnLine(seed=3)
    seen: dict[str, object] = {}

    async def body(_port: int, read: Reader) -> None:
        start = {
            "raw_mill": i64(await read(1, 3, 3203, 4)),
            "kiln": i64(await read(2, 3, 3203, 4)),
            "whr": i64(await read(6, 3, 3203, 4)),
            "coal_mill": i32(await read(3, 3, 62, 2)),
            "cooler": f32(await read(4, 3, 0x101E, 2)),
            "aux": u32(await read(5, 3, 0x000A, 2)),
            "cement_mill": f64(await read(7, 4, 801, 4)),
            **{p: u32_cdab(await read(u, 3, 0, 2)) for u, p in ((10, "coal_kiln"), (11, "coal_calciner"))},
            **{p: u32_cdab(await read(u, 3, 0, 2)) for u, p in ((12, "clinker"), (13, "cement"))},
        }
        for _ in range(37):
            line.step(97.3)
        r, t = line.rates, line.truth

        # PM5100 (units 1, 2, 6): float32 kW at 3059, int64 Wh at 3203 (whole Wh, floored).
        for unit, section in ((1, "raw_mill"), (2, "kiln"), (6, "whr")):
            assert f32(await read(unit, 3, 3059, 2)) == as_f32(r[f"{section}_kw"])
            wh = i64(await read(unit, 3, 3203, 4))
            assert wh - start[section] == math.floor(t[f"{section}_kwh"] * 1000)
        # ADW300 (unit 3): int32 W at 36, int32 0.01 kWh at 62.
        assert i32(await read(3, 3, 36, 2)) == round(r["coal_mill_kw"] * 1000)
        assert i32(await read(3, 3, 62, 2)) - start["coal_mill"] == math.floor(t["coal_mill_kwh"] * 100)
        # DTSU666 (unit 4): float32 0.1 W at 0x2012, float32 kWh at 0x101E (float32 steps of 0.125 kWh here).
        assert f32(await read(4, 3, 0x2012, 2)) == as_f32(r["cooler_kw"] * 10_000)
        cooler = f32(await read(4, 3, 0x101E, 2))
        assert 0 <= start["cooler"] + t["cooler_kwh"] - cooler < 0.125
        # DTSD1352 (unit 5): secondary values, CT 20. int32 0.001 kW at 0x016A, uint32 0.01 kWh at 0x000A.
        assert i32(await read(5, 3, 0x016A, 2)) == round(r["aux_kw"] / 20 * 1000)
        aux_steps = u32(await read(5, 3, 0x000A, 2)) - start["aux"]
        assert aux_steps == math.floor(t["aux_kwh"] / 20 * 100)
        assert abs(aux_steps * 0.01 * 20 - t["aux_kwh"]) < 0.2
        # PAC3200 (unit 7) on input registers: float32 W at 65, float64 Wh at 801.
        assert f32(await read(7, 4, 65, 2)) == as_f32(r["cement_mill_kw"] * 1000)
        assert abs(f64(await read(7, 4, 801, 4)) - start["cement_mill"] - t["cement_mill_kwh"] * 1000) < 1e-3
        # Scales (units 10-13): uint32 kg and float32 t/h, low word first.
        for unit, product in ((10, "coal_kiln"), (11, "coal_calciner"), (12, "clinker"), (13, "cement")):
            kg = u32_cdab(await read(unit, 3, 0, 2))
            assert kg - start[product] == math.floor(t[f"{product}_t"] * 1000)
            assert f32_cdab(await read(unit, 3, 2, 2)) == as_f32(r[f"{product}_tph"])
        seen["start"] = start

    serve(line, body)
    # The counters start where the doc says (clinker) and at plausible non-zero readings elsewhere.
    start = seen["start"]
    assert isinstance(start, dict)
    assert start["clinker"] == 4_277_000_000
    assert all(v > 0 for v in start.values())


def test_whole_blocks_look_like_real_meters() -> None:
    line = KilnLine(seed=4)
    line.step(30.0)

    async def body(_port: int, read: Reader) -> None:
        kw = line.rates["raw_mill_kw"]
        # PM5100 2999..3110 in one request, as tools that read whole blocks do (112 registers).
        block = await read(1, 3, 2999, 112)

        def at(address: int) -> list[int]:
            return block[address - 2999 : address - 2999 + 2]

        i_avg, u_ll, pf = f32(at(3009)), f32(at(3025)), f32(at(3083))
        assert 9_800 < u_ll < 10_200 and 0 < pf <= 1
        assert abs(math.sqrt(3) * u_ll * i_avg * pf / 1000 - kw) < 1e-3 * kw
        assert abs(sum(f32(at(a)) for a in (3053, 3055, 3057)) - kw) < 1e-3 * kw
        assert abs(f32(at(3027)) * math.sqrt(3) - u_ll) < 1e-3 * u_ll
        assert 49.8 < f32(at(3109)) < 50.2
        name = struct.pack(">20H", *await read(1, 3, 29, 20)).rstrip(b"\0").decode("ascii")
        assert name == "Raw mill"
        # ADW300 voltages (uint16, 0.1 V) and currents (uint16, 0.01 A).
        adw = await read(3, 3, 20, 18)
        u_an, i_a = adw[0] * 0.1, adw[6] * 0.01
        p_w = i32(await read(3, 3, 36, 2))
        assert abs(3 * u_an * i_a * 0.88 - p_w) < 2e-3 * p_w
        # DTSD1352: frequency in 0.01 Hz, total active energy = forward energy (nothing exported).
        assert 4980 < (await read(5, 3, 0x0077, 1))[0] < 5020
        assert u32(await read(5, 3, 0x0000, 2)) == u32(await read(5, 3, 0x000A, 2))
        # Belt scale: belt load (kg/m) × speed (m/s) × 3.6 = t/h.
        scale = await read(12, 3, 0, 8)
        assert abs(f32_cdab(scale[6:8]) * f32_cdab(scale[4:6]) * 3.6 - f32_cdab(scale[2:4])) < 1e-3

    serve(line, body)


def test_pm5100_p_total_is_at_protocol_address_3059() -> None:
    line = KilnLine(seed=1)  # at the operating point: raw mill 3800 kW, kiln 5400 kW

    async def body(_port: int, read: Reader) -> None:
        regs = await read(1, 3, 3057, 6)  # P_c, P_total, gap
        assert f32(regs[0:2]) == as_f32(3800 / 3)
        assert f32(regs[2:4]) == 3800.0
        assert f32(await read(2, 3, 3059, 2)) == 5400.0

    serve(line, body)


def test_meters_answer_only_on_their_function_code_and_refuse_writes() -> None:
    line = KilnLine(seed=1)

    async def body(port: int, read: Reader) -> None:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        assert await client.connect()
        try:
            # Modbus exception 02 = illegal data address, 04 = server device failure.
            assert (await client.read_holding_registers(65, count=2, device_id=7)).exception_code == 2
            assert (await client.read_input_registers(3059, count=2, device_id=1)).exception_code == 2
            assert (await client.write_register(3059, 0, device_id=1)).exception_code == 2
            assert (await client.read_holding_registers(0, count=2, device_id=42)).exception_code == 4
        finally:
            client.close()
        assert f32(await read(1, 3, 3059, 2)) == 3800.0  # unchanged by the refused write

    serve(line, body)


def test_clinker_register_wraps_at_2_pow_32_kg() -> None:
    line = KilnLine(seed=1)
    # 2^32 - 4,277,000,000 = 17,967,296 kg to the wrap; 1.5 t past it the register holds 1500 kg.
    line.truth["clinker_t"] = 17_967.296 + 1.5

    async def body(_port: int, read: Reader) -> None:
        assert u32_cdab(await read(12, 3, 0, 2)) == 1500

    serve(line, body)


async def mbpoll(port: int, *args: str) -> list[str]:
    """Run Debian's mbpoll once and return the value column of its ``[ref]: value`` lines."""
    proc = await asyncio.create_subprocess_exec(
        binary("mbpoll", "mbpoll"),
        "-m",
        "tcp",
        "-p",
        str(port),
        "-1",
        *args,
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return re.findall(r"^\[\d+\]:\s+(\S+)", out.decode(), flags=re.M)


def test_mbpoll_reads_what_struct_decodes() -> None:
    line = KilnLine(seed=6)
    line.step(1234.5)

    async def body(port: int, read: Reader) -> None:
        # float32 ABCD: -B (big-endian words); -0 = 0-based protocol address, without it -r is 1-based.
        raw_mill = f32(await read(1, 3, 3059, 2))
        for args in (("-0", "-r", "3059"), ("-r", "3060")):
            (value,) = await mbpoll(port, "-a", "1", "-t", "4:float", "-B", "-c", "1", *args)
            assert math.isclose(float(value), raw_mill, rel_tol=1e-5)
        # PAC3200 on the input-register table (-t 3).
        (value,) = await mbpoll(port, "-a", "7", "-t", "3:float", "-B", "-0", "-r", "65", "-c", "1")
        assert math.isclose(float(value), f32(await read(7, 4, 65, 2)), rel_tol=1e-5)
        # Scale registers are low word first: mbpoll's default word order.
        (value,) = await mbpoll(port, "-a", "12", "-t", "4:float", "-0", "-r", "2", "-c", "1")
        assert math.isclose(float(value), f32_cdab(await read(12, 3, 2, 2)), rel_tol=1e-5)
        (value,) = await mbpoll(port, "-a", "10", "-t", "4:int", "-0", "-r", "0", "-c", "1")
        assert int(value) == u32_cdab(await read(10, 3, 0, 2))
        (value,) = await mbpoll(port, "-a", "3", "-t", "4:int", "-B", "-0", "-r", "36", "-c", "1")
        assert int(value) == i32(await read(3, 3, 36, 2))
        # int64 and float64 counters: mbpoll has no 64-bit types, so read the words raw and join them here.
        words = [
            int(v, 16) for v in await mbpoll(port, "-a", "1", "-t", "4:hex", "-0", "-r", "3203", "-c", "4")
        ]
        assert i64(words) == i64(await read(1, 3, 3203, 4))
        words = [
            int(v, 16) for v in await mbpoll(port, "-a", "7", "-t", "3:hex", "-0", "-r", "801", "-c", "4")
        ]
        assert f64(words) == f64(await read(7, 4, 801, 4))

    serve(line, body)


def _mbap_exchange(port: int, unit: int, pdu: bytes) -> bytes:
    """Send one Modbus TCP request built here byte by byte (MBAP header: transaction id, protocol 0, length,
    unit) and return the reply's PDU: the server is judged on the wire, not through a client library that
    might refuse to send a request the spec forbids."""
    import socket

    frame = struct.pack(">HHHB", 0x1234, 0, len(pdu) + 1, unit) + pdu
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(frame)
        header = b""
        while len(header) < 7:
            header += s.recv(7 - len(header))
        tid, proto, length, reply_unit = struct.unpack(">HHHB", header)
        assert (tid, proto, reply_unit) == (0x1234, 0, unit)
        body = b""
        while len(body) < length - 1:
            body += s.recv(length - 1 - len(body))
    return body


def test_coil_writes_and_reads_of_0_or_126_registers_get_the_exceptions_a_meter_answers() -> None:
    """Modbus Application Protocol v1.1b3 §6.3/6.4: a read's quantity is 1..125 (0x7D), else exception 03;
    a meter without coils answers FC05/FC15 with exception 01 (illegal function) and writes nothing. The reply
    to an exception is the function code + 0x80, then the exception code."""
    line = KilnLine(seed=1)

    async def body(port: int, read: Reader) -> None:
        def ask(pdu: bytes) -> bytes:
            return _mbap_exchange(port, 1, pdu)

        # FC03 at 3059 (the PM5100's P total), quantity 0 and 126: 0x83 0x03.
        assert await asyncio.to_thread(ask, struct.pack(">BHH", 3, 3059, 0)) == bytes([0x83, 0x03])
        assert await asyncio.to_thread(ask, struct.pack(">BHH", 3, 3059, 126)) == bytes([0x83, 0x03])
        assert await asyncio.to_thread(ask, struct.pack(">BHH", 4, 0, 126)) == bytes([0x84, 0x03])
        assert await asyncio.to_thread(ask, struct.pack(">BHH", 3, 3059, 0xFFFF)) == bytes([0x83, 0x03])
        # FC05 write single coil 0 ON (0xFF00) and FC15 write 8 coils from 0 (1 byte 0xFF): 0x85/0x8F 0x01.
        assert await asyncio.to_thread(ask, struct.pack(">BHH", 5, 0, 0xFF00)) == bytes([0x85, 0x01])
        write_coils = struct.pack(">BHHB", 15, 0, 8, 1) + b"\xff"
        assert await asyncio.to_thread(ask, write_coils) == bytes([0x8F, 0x01])
        # A quantity inside 1..125 is served, and the registers are what they were before (nothing written).
        reply = await asyncio.to_thread(ask, struct.pack(">BHH", 3, 3059, 2))
        assert reply[:2] == bytes([0x03, 4])
        assert struct.unpack(">f", reply[2:6])[0] == 3800.0 == f32(await read(1, 3, 3059, 2))

    serve(line, body)
