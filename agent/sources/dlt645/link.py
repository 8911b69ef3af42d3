"""One DL/T 645 line (a local serial port, or a transparent TCP gateway), shared by every meter on it.

The lock makes the meters behind one connection take turns: an RS-485 line carries one frame at a time, and
a transparent gateway just copies bytes to it. Each request waits for its own reply: frames that are not
that reply (the echo of the request, which many RS-485 adapters hear; another meter's frame; a late reply
to an earlier identifier) are skipped, since a DL/T 645 reply names the address and identifier it answers.

After a failed exchange (timeout, garbled reply, a broken connection) the connection is closed and opened
afresh for the next request, so nothing of the failed exchange can be read as the next answer.

The serial port is pyserial's, opened non-blocking (``timeout=0``): the event loop watches its file
descriptor (``loop.add_reader``) and reads what has arrived, so no thread blocks on the line. That needs a
POSIX system, which is what gateways run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import serial

from agent.sources.dlt645 import frame
from agent.sources.dlt645.config import Dlt645Meter
from agent.sources.dlt645.connections import endpoint

T = TypeVar("T")
#: Bytes asked of the transport at once: a few replies' worth.
CHUNK = 512


class TransportError(Exception):
    """No usable answer: connect failed, timed out, garbled reply, or the connection broke."""


class Stream(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes:
        """The next bytes that arrive (at least one); OSError if the connection ended."""
        ...

    def close(self) -> None: ...


class TcpStream:
    """A transparent gateway: the meters' bytes, unchanged, over a TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> TcpStream:
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def receive(self) -> bytes:
        data = await self._reader.read(CHUNK)
        if not data:
            raise ConnectionResetError("the gateway closed the connection")
        return data

    def close(self) -> None:
        self._writer.close()


class SerialStream:
    """A local serial port, read when the event loop sees its descriptor readable."""

    def __init__(self, meter: Dlt645Meter) -> None:
        self._port = serial.Serial(
            str(meter.serial_port), baudrate=meter.baudrate, bytesize=meter.bytesize, parity=meter.parity,
            stopbits=meter.stopbits, timeout=0,
        )  # fmt: skip
        self._port.reset_input_buffer()  # whatever the line carried while nobody listened

    async def send(self, data: bytes) -> None:
        self._port.write(data)  # a request is ~20 bytes: the kernel takes them at once

    async def receive(self) -> bytes:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        fd = self._port.fileno()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        return bytes(self._port.read(self._port.in_waiting or 1))  # SerialException (an OSError) if gone

    def close(self) -> None:
        self._port.close()


class Link:
    """The connection shared by ``meters`` (they all have the same endpoint); requests go one at a time."""

    def __init__(self, meters: Sequence[Dlt645Meter]) -> None:
        self.settings = meters[0]
        self.name = endpoint(self.settings)
        self._lock = asyncio.Lock()
        self._stream: Stream | None = None
        self._buffer = bytearray()

    async def read(self, address: str, di: int, timeout: float, preamble: bool) -> bytes:
        """The value bytes of ``di`` from the meter at ``address``; ``AbnormalReply`` if it has none."""
        request = frame.read_request(address, di, preamble)
        return await self._exchange(request, lambda f: frame.read_reply(f, address, di), timeout)

    async def read_address(self, timeout: float, preamble: bool) -> str:
        """The address of the only meter on the line (broadcast read-address command)."""
        return await self._exchange(frame.read_address_request(preamble), frame.address_reply, timeout)

    async def _exchange(self, request: bytes, match: Callable[[frame.Frame], T | None], timeout: float) -> T:
        async with self._lock:
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that arrives as
                # the answer does, and a poller that cannot be cancelled hangs the agent's stop and reload.
                async with asyncio.timeout(timeout):
                    return await self._send_and_wait(request, match)
            except TimeoutError as exc:
                self.close()
                raise TransportError(f"no answer within {timeout:g} s") from exc
            except (OSError, frame.FrameError) as exc:
                self.close()
                raise TransportError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc

    async def _send_and_wait(self, request: bytes, match: Callable[[frame.Frame], T | None]) -> T:
        stream = await self._connected()
        self._buffer.clear()
        await stream.send(request)
        while True:
            found = frame.take_frame(self._buffer)
            if found is None:
                self._buffer += await stream.receive()
                continue
            answer = match(found)
            if answer is not None:
                return answer

    async def _connected(self) -> Stream:
        if self._stream is None:
            d = self.settings
            if d.transport == "serial":
                self._stream = SerialStream(d)
            else:
                self._stream = await TcpStream.open(str(d.host), int(d.port or 0))
        return self._stream

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
