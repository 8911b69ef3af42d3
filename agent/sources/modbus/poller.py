"""Poll Modbus TCP devices: one connection per host:port, one task per device, failures isolated.

Several unit ids often sit behind one serial gateway (one host:port); Modbus TCP gateways and pymodbus alike
handle one request at a time per connection, so devices behind the same host:port share one ``Link`` whose
lock serialises their requests. Each device polls in its own task on its own interval, so a device that
times out costs only its own cycle (and, behind a shared gateway, the lock time of its own attempts); after a
transport failure it backs off exponentially instead of holding the gateway every cycle.

Quality: a failed cycle (timeout, connection lost) reports every point of the device BAD with no value, so the
collector sees the gap; a Modbus exception reply (e.g. illegal data address) marks only the points of that
request BAD, since the device itself answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from agent.config import ModbusDevice
from agent.sources.modbus.coalesce import Request, device_requests
from agent.sources.modbus.decode import decode
from agent.sources.reading import Reading, Sink, now_ms
from agent.wire import Quality

log = structlog.get_logger("agent.modbus")

#: Longest pause between attempts on a device that keeps failing, in seconds.
MAX_BACKOFF_S = 60.0


class TransportError(Exception):
    """No usable answer: connect failed, timed out, or the connection broke. The cycle is lost."""


class ExceptionReply(Exception):
    """The device answered with a Modbus exception code; the connection is fine."""


class Link:
    """One TCP connection to host:port, shared by every unit id behind it; requests go one at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None

    async def read(self, request: Request, unit: int, timeout: float) -> list[int]:
        async with self._lock:
            try:
                client = await self._connected(timeout)
                call = client.read_holding_registers if request.function == 3 else client.read_input_registers
                reply = await asyncio.wait_for(
                    call(request.address, count=request.count, device_id=unit), timeout
                )
            except (TimeoutError, ModbusException, OSError) as exc:
                # After a timeout a late answer may still arrive: a new connection keeps the stream in step.
                self.close()
                raise TransportError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
            if reply.isError():
                raise ExceptionReply(f"exception code {getattr(reply, 'exception_code', '?')}")
            return list(reply.registers)

    async def _connected(self, timeout: float) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        # pymodbus' own retries and reconnects are off: the poller decides when to try again.
        client = AsyncModbusTcpClient(
            self.host, port=self.port, timeout=timeout, retries=0, reconnect_delay=0
        )
        if not await asyncio.wait_for(client.connect(), timeout):
            client.close()
            raise TransportError(f"cannot connect to {self.host}:{self.port}")
        self._client = client
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class ModbusPoller:
    """Polls ``devices`` until cancelled, handing each device cycle's readings to ``sink``."""

    def __init__(self, devices: Iterable[ModbusDevice], sink: Sink) -> None:
        self.devices = list(devices)
        self._sink = sink
        self._links: dict[tuple[str, int], Link] = {}
        for device in self.devices:
            self._links.setdefault((device.host, device.port), Link(device.host, device.port))

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for device in self.devices:
                    group.create_task(self._run_device(device), name=f"modbus:{device.name}")
        finally:
            for link in self._links.values():
                link.close()

    async def _run_device(self, device: ModbusDevice) -> None:
        link = self._links[(device.host, device.port)]
        requests = device_requests(device)
        loop = asyncio.get_running_loop()
        failures = 0
        due = loop.time()
        while True:
            readings, error = await poll_device(link, device, requests)
            self._sink(readings)
            if error is None:
                if failures:
                    log.info("device recovered", device=device.name, failed_cycles=failures)
                failures = 0
                due += device.interval
                if due < loop.time():  # overran: skip the missed cycles rather than bursting
                    due = loop.time() + device.interval
            else:
                if not failures:  # log the transition, not every failed cycle
                    log.warning("device not answering", device=device.name, host=device.host,
                                port=device.port, unit=device.unit, error=error)  # fmt: skip
                failures += 1
                backoff = min(device.interval * 2 ** (failures - 1), MAX_BACKOFF_S)
                due = loop.time() + max(backoff, device.interval)
            await asyncio.sleep(max(0.0, due - loop.time()))


async def poll_device(
    link: Link, device: ModbusDevice, requests: list[Request]
) -> tuple[list[Reading], str | None]:
    """One cycle of one device: ``(readings, error)``; ``error`` says why the transport failed, if it did."""
    readings: list[Reading] = []
    for request in requests:
        registers: list[int] | None = None
        error: TransportError | None = None
        for attempt in range(device.retries + 1):
            try:
                registers = await link.read(request, device.unit, device.timeout)
                break
            except ExceptionReply as exc:
                log.warning("exception reply", device=device.name, address=request.address, error=str(exc))
                break
            except TransportError as exc:
                error = exc
                log.debug("request failed", device=device.name, attempt=attempt + 1, error=str(exc))
        t_ms = now_ms()
        if registers is None and error is not None:
            return [Reading(p.name, t_ms, None, Quality.BAD) for p in device.points], str(error)
        for span in request.spans:
            if registers is None:
                readings.append(Reading(span.point.name, t_ms, None, Quality.BAD))
                continue
            raw = request.registers_of(span, registers)
            value = decode(raw, span.point.type, span.order, span.point.scale, span.point.offset)
            readings.append(Reading(span.point.name, t_ms, value, Quality.GOOD))
    return readings, None
