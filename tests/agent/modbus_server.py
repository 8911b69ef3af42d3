"""Servers for agent tests: a small pymodbus server holding known registers, a meter with gaps in its map
(a raw Modbus TCP server of the test's own, independent of pymodbus), and a device that never answers."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

from tests.servers import wait_for_port


def words(fmt: str, value: float | int) -> list[int]:
    raw = struct.pack(fmt, value)
    return [raw[i] << 8 | raw[i + 1] for i in range(0, len(raw), 2)]


def registers() -> list[int]:
    """Unit 1's holding registers: a weigh feeder at 0 (CDAB) and a PM5100 float/int64 pair further up."""
    regs = [0] * 40
    kg = 4_277_000_123
    regs[0:2] = words(">I", kg)[::-1]  # uint32 low word first
    regs[2:4] = words(">f", 42.5)[::-1]  # float32 low word first
    regs[10:12] = words(">f", 3812.25)  # float32 big-endian
    regs[20:24] = words(">q", 81_234_567)  # int64 Wh
    return regs


@contextlib.asynccontextmanager
async def modbus_server(port: int) -> AsyncIterator[None]:
    store = ModbusDeviceContext(
        hr=ModbusSequentialDataBlock(1, registers()), ir=ModbusSequentialDataBlock(1, [0] * 10)
    )
    server = ModbusTcpServer(
        ModbusServerContext(devices={1: store}, single=False), address=("127.0.0.1", port)
    )
    task = asyncio.create_task(server.serve_forever())
    await asyncio.to_thread(wait_for_port, port)
    try:
        yield
    finally:
        await server.shutdown()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def blackhole(port: int) -> AsyncIterator[None]:
    """Accepts connections and reads requests, never answers: a device that hangs."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1024):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


@dataclass
class MappedMeter:
    """A meter that has only the registers in ``words`` (function → address → word), as a real one of a
    neighbouring model or firmware has only its own: a read that touches any register it lacks gets
    exception 02, a length outside 1..``max_count`` gets 03, any other function 01. While ``exception`` is
    set, every read gets that code instead (04 device failure, 06 busy). ``requests`` logs every read as
    ``(function, address, count)``; the test may change ``words`` while the server runs."""

    words: dict[int, dict[int, int]]
    max_count: int = 125
    exception: int | None = None
    requests: list[tuple[int, int, int]] = field(default_factory=list)

    def answer(self, pdu: bytes) -> bytes:
        function = pdu[0]
        if function not in (3, 4) or len(pdu) != 5:
            return bytes([function | 0x80, 1])
        address, count = struct.unpack(">HH", pdu[1:])
        self.requests.append((function, address, count))
        code = self.refusal(function, address, count)
        if code is not None:
            return bytes([function | 0x80, code])
        table = self.words[function]
        return bytes([function, 2 * count]) + struct.pack(
            f">{count}H", *(table[a] for a in range(address, address + count))
        )

    def refusal(self, function: int, address: int, count: int) -> int | None:
        if self.exception is not None:
            return self.exception
        if not 1 <= count <= self.max_count:
            return 3
        table = self.words.get(function, {})
        return 2 if any(a not in table for a in range(address, address + count)) else None


@contextlib.asynccontextmanager
async def mapped_meter(port: int, meter: MappedMeter) -> AsyncIterator[MappedMeter]:
    """Serve ``meter`` with Modbus TCP framing (MBAP header, any unit id) on 127.0.0.1:``port``."""
    connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections[task] = writer
        try:
            while True:
                transaction, _, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                reply = meter.answer(await reader.readexactly(length - 1))
                writer.write(struct.pack(">HHHB", transaction, 0, len(reply) + 1, unit) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the master hung up, or the server is closing
        finally:
            writer.close()
            connections.pop(task)

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield meter
    finally:
        server.close()
        for writer in list(connections.values()):  # the handlers see end of file and return
            writer.close()
        if connections:
            await asyncio.wait(list(connections), timeout=5)
