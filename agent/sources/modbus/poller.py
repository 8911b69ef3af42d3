"""Poll Modbus devices: one shared ``Link`` per connection, one task per poll group, failures isolated.

Each device's points are split into poll groups by interval (``coalesce.poll_groups``), and every group polls
in its own task on its own schedule; all tasks of the devices on one connection take turns on its ``Link``.
So a device that times out costs only its own cycle (and, on a shared gateway or RS-485 line, the line time
of its own attempts); after a transport failure all of that device's groups back off together, exponentially
up to ``MAX_BACKOFF_S``, instead of holding the line every cycle.

Quality: when a request fails at the transport level (timeout, connection lost) the points not yet read in
that cycle are reported BAD with no value, so the collector sees the gap, and the rest of the cycle is
skipped; a Modbus exception reply (e.g. illegal data address) marks only the points of that request BAD, since
the device itself answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from agent import metrics
from agent.sources.base import SourceStatus
from agent.sources.modbus.coalesce import PollGroup, Request, poll_groups
from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.connections import by_connection, connection_problems, endpoint
from agent.sources.modbus.link import ExceptionReply, Link, TransportError
from agent.sources.reading import Reading, Sink, now_ms
from agent.wire import Quality

log = structlog.get_logger("agent.modbus")

#: Longest pause between attempts on a device that keeps failing, in seconds.
MAX_BACKOFF_S = 60.0


@dataclass
class Backoff:
    """A device's failure state, shared by its poll groups so that one outage backs them all off."""

    base: float
    failures: int = 0
    retry_at: float = 0.0

    def failed(self, started: float, now: float) -> bool:
        """Record a failed cycle that began at ``started``; True on the first failure of an outage.

        A failure another group already recorded while this cycle ran is the same outage: one step, not two.
        """
        if self.retry_at > started:
            return False
        self.failures += 1
        self.retry_at = now + min(self.base * 2 ** (self.failures - 1), MAX_BACKOFF_S)
        return self.failures == 1


class ModbusPoller:
    """Polls ``devices`` until cancelled, handing each poll group's readings to ``sink``."""

    def __init__(
        self, devices: Iterable[ModbusDevice], sink: Sink, status: SourceStatus | None = None
    ) -> None:
        self.devices = list(devices)
        self._status = status or SourceStatus()
        problems = connection_problems(self.devices)
        if problems:
            raise ValueError("; ".join(problems))
        self._sink = sink
        self._links = {name: Link(group) for name, group in by_connection(self.devices).items()}

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                for device in self.devices:
                    groups = poll_groups(device)
                    if not groups:
                        continue
                    backoff = Backoff(base=groups[0].interval)
                    for group in groups:
                        name = f"modbus:{device.name}:{group.interval:g}s"
                        tasks.create_task(self._run_group(device, group, backoff), name=name)
        finally:
            for link in self._links.values():
                link.close()

    async def _run_group(self, device: ModbusDevice, group: PollGroup, backoff: Backoff) -> None:
        link = self._links[endpoint(device)]
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            await asyncio.sleep(max(0.0, max(due, backoff.retry_at) - loop.time()))
            started = loop.time()
            readings, error = await poll_requests(link, device, group.requests)
            metrics.observe_poll(device.name, loop.time() - started, error is None)
            self._sink(readings)
            if error is None:
                if backoff.failures:
                    log.info("device recovered", device=device.name, failed_cycles=backoff.failures)
                    backoff.failures = 0
                due += group.interval
                if due < loop.time():  # overran: skip the missed cycles rather than bursting
                    due = loop.time() + group.interval
                continue
            if backoff.failed(started, loop.time()):  # log the transition, not every failed cycle
                log.warning("device not answering", device=device.name, connection=link.name,
                            unit=device.unit, error=error)  # fmt: skip
            due = loop.time() + group.interval


async def poll_requests(
    link: Link, device: ModbusDevice, requests: Iterable[Request]
) -> tuple[list[Reading], str | None]:
    """One cycle of ``requests``: ``(readings, error)``; ``error`` says why the transport failed, if so."""
    readings: list[Reading] = []
    requests = list(requests)
    for n, request in enumerate(requests):
        registers: list[int] | None = None
        error: TransportError | None = None
        for attempt in range(device.retries + 1):
            try:
                registers = await link.read(
                    request.function, request.address, request.count, device.unit, device.timeout,
                    device.inter_frame_delay,
                )  # fmt: skip
                break
            except ExceptionReply as exc:
                log.warning("exception reply", device=device.name, function=request.function,
                            address=request.address, count=request.count, error=str(exc))  # fmt: skip
                break
            except TransportError as exc:
                error = exc
                log.debug("request failed", device=device.name, attempt=attempt + 1, error=str(exc))
        t_ms = now_ms()
        if registers is None and error is not None:
            lost = [s.point.name for r in requests[n:] for s in r.spans]
            return readings + [Reading(name, t_ms, None, Quality.BAD) for name in lost], str(error)
        for span in request.spans:
            if registers is None:
                readings.append(Reading(span.point.name, t_ms, None, Quality.BAD))
            else:
                value = span.value(request.registers_of(span, registers))
                readings.append(Reading(span.point.name, t_ms, value, Quality.GOOD))
    return readings, None
