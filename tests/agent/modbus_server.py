"""A small pymodbus server holding known registers, and a device that never answers, for agent tests."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

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
