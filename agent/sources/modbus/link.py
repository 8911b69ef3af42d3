"""One Modbus connection (TCP socket, serial port or RTU-over-TCP gateway), shared by every unit id on it.

The lock makes the devices behind one connection take turns, as an RS-485 line requires (only one frame on
the wire at a time) and as Modbus TCP gateways and pymodbus clients expect. Before each request the link
keeps the line quiet for the device's ``inter_frame_delay`` (slow meters need a pause after the previous
answer), and on a serial line for at least the 3.5 character times that end an RTU frame.

After a timeout the connection is closed: a late answer may still arrive, and RTU frames carry no transaction
id to tell it from the next answer, so a fresh connection (and, for serial, a flushed input buffer) keeps
requests and answers in step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ModbusException

from agent.sources.cancellable import cancellable
from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.connections import endpoint
from agent.sources.modbus.decode import BIT_FUNCTIONS

#: What the exception codes a meter may answer mean, for logs and the probe (Modbus spec §7).
EXCEPTION_CODES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
#: Modbus RTU: at more than 19200 bit/s the end-of-frame silence is a fixed 1.75 ms (spec §2.5.1.1).
FAST_LINE_SILENCE_S = 0.00175


class TransportError(Exception):
    """No usable answer: connect failed, timed out, or the connection broke. The device's cycle is lost."""


class ExceptionReply(Exception):
    """The device answered, but not with data: a Modbus exception ``code``, or too few registers (code 0)."""

    def __init__(self, code: int, text: str | None = None) -> None:
        self.code = code
        self.meaning = EXCEPTION_CODES.get(code, "unknown")
        super().__init__(text or f"exception code {code} ({self.meaning})")

    @property
    def reason(self) -> str:
        """How /healthz and ``check --probe`` name it: ``exception 2 (illegal data address)``."""
        return f"exception {self.code} ({self.meaning})" if self.code else str(self)


def frame_silence(device: ModbusDevice) -> float:
    """Seconds of quiet that end an RTU frame on ``device``'s serial line (3.5 characters); 0 for TCP."""
    if device.transport != "rtu":
        return 0.0
    if device.baudrate > 19200:
        return FAST_LINE_SILENCE_S
    bits = 1 + device.bytesize + (device.parity != "N") + device.stopbits
    return 3.5 * bits / device.baudrate


class Link:
    """The connection shared by ``devices`` (they all have the same endpoint); requests go one at a time."""

    def __init__(self, devices: Sequence[ModbusDevice]) -> None:
        self.settings = devices[0]
        self.name = endpoint(self.settings)
        # The client's own timeout must not cut short the most patient device; each request has its own.
        self._client_timeout = max(d.timeout for d in devices)
        self._silence = frame_silence(self.settings)
        self._lock = asyncio.Lock()
        self._client: ModbusBaseClient | None = None
        self._quiet_since = 0.0

    async def read(
        self, function: int, address: int, count: int, unit: int, timeout: float, pause: float = 0.0
    ) -> list[int]:
        """Registers (or 0/1 bits for FC 1/2) ``address .. address+count-1`` of ``unit``."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            wait = self._quiet_since + max(pause, self._silence) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                client = await self._connected(timeout)
                call = {
                    1: client.read_coils,
                    2: client.read_discrete_inputs,
                    3: client.read_holding_registers,
                    4: client.read_input_registers,
                }[function]
                reply = await cancellable(call(address, count=count, device_id=unit), timeout)
            except (TimeoutError, ModbusException, OSError) as exc:
                self.close()
                raise TransportError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
            except asyncio.CancelledError:
                self.close()  # the request's answer may still come: a fresh connection keeps them in step
                raise
            finally:
                self._quiet_since = loop.time()
        if reply.isError():
            raise ExceptionReply(getattr(reply, "exception_code", 0))
        values = [int(b) for b in reply.bits[:count]] if function in BIT_FUNCTIONS else list(reply.registers)
        if len(values) < count:
            raise ExceptionReply(0, f"short reply: {len(values)} of {count} values")
        return values

    async def _connected(self, timeout: float) -> ModbusBaseClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        client = self._new_client()
        if not await cancellable(client.connect(), timeout):
            client.close()
            raise TransportError(f"cannot connect to {self.name}")
        self._client = client
        return client

    def _new_client(self) -> ModbusBaseClient:
        """pymodbus' own retries and reconnects are off: the poller decides when to try again."""
        d = self.settings
        if d.transport == "rtu":
            return AsyncModbusSerialClient(
                str(d.serial_port),
                framer=FramerType.RTU,
                baudrate=d.baudrate,
                bytesize=d.bytesize,
                parity=d.parity,
                stopbits=d.stopbits,
                timeout=self._client_timeout,
                retries=0,
                reconnect_delay=0,
            )
        framer = FramerType.RTU if d.transport == "rtu-over-tcp" else FramerType.SOCKET
        return AsyncModbusTcpClient(
            str(d.host),
            port=d.port,
            framer=framer,
            timeout=self._client_timeout,
            retries=0,
            reconnect_delay=0,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
