"""Simulated DL/T 645 lines: meters sharing one RS-485 line, served on a TCP port and/or a pseudo-terminal.

A ``Line`` plays the wire: every meter hears every request and the addressed one answers after
``answer_delay`` seconds (real meters take 20-500 ms). Answers from several meters at once (a wildcard read
of the address with two meters on the line) collide: they are merged byte by byte with AND, as the
dominant (0) bits of the drivers win, which leaves a frame no checksum accepts. A request that arrives while
the line is still busy with the previous one is counted in ``overlaps``: a master that waits for each answer
never causes one.

* ``serve_tcp``: a transparent gateway (serial server): the line's raw frames over TCP, any number of
  connections (a gateway serves one at a time in practice; the agent opens one per line).
* ``PtyLine``: a pseudo-terminal pair; the agent opens ``path`` (the slave) as its serial port, the line
  serves the master end. The line keeps the slave open too, so the pair lives while the agent reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable, Sequence

from simulators.dlt645.meter import SimulatedMeter
from simulators.dlt645.wire import Request, take_requests


class Line:
    def __init__(self, meters: Sequence[SimulatedMeter], answer_delay: float = 0.0) -> None:
        self.meters = list(meters)
        self.answer_delay = answer_delay
        self.requests = 0
        self.overlaps = 0
        self._busy = False

    async def exchange(self, request: Request) -> bytes | None:
        """What the line carries back after ``request``: one meter's reply, a collision, or nothing."""
        self.requests += 1
        if self._busy:
            self.overlaps += 1
        self._busy = True
        try:
            await asyncio.sleep(self.answer_delay)
            replies = [r for r in (m.answer(request) for m in self.meters) if r is not None]
        finally:
            self._busy = False
        if len(replies) <= 1:
            return replies[0] if replies else None
        merged = bytearray(b"\xff" * max(len(r) for r in replies))
        for r in replies:
            for i, b in enumerate(r):
                merged[i] &= b
        return bytes(merged)

    def feed(
        self, buffer: bytearray, data: bytes, write: Callable[[bytes], None], tasks: set[asyncio.Task[None]]
    ) -> None:
        """Take ``data`` from the master; answer each whole request in a task of ``tasks`` (overlaps show)."""
        buffer += data

        async def answer(request: Request) -> None:
            out = await self.exchange(request)
            if out is not None:
                write(out)

        for request in take_requests(buffer):
            task = asyncio.create_task(answer(request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


async def serve_tcp(line: Line, port: int, host: str = "127.0.0.1") -> asyncio.Server:
    """Serve ``line`` as a transparent gateway on ``host:port`` (``port`` 0: any free port)."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer, tasks = bytearray(), set[asyncio.Task[None]]()
        try:
            while data := await reader.read(1024):
                line.feed(buffer, data, writer.write, tasks)
        except ConnectionError:
            pass
        finally:
            for task in list(tasks):
                task.cancel()
            writer.close()

    return await asyncio.start_server(connection, host, port)


class PtyLine:
    """``line`` on a pseudo-terminal: open ``path`` as the serial port; ``close()`` ends it."""

    def __init__(self, line: Line) -> None:
        self.line = line
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or line editing before the agent's pyserial sets its own mode
        self.path = os.ttyname(self._slave)
        self._buffer = bytearray()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:  # the agent's side is between close and reopen
            return
        self.line.feed(self._buffer, data, self._write, self._tasks)

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self._master, data)

    def close(self) -> None:
        self._loop.remove_reader(self._master)
        for task in list(self._tasks):
            task.cancel()
        os.close(self._master)
        os.close(self._slave)
