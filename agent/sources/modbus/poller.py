"""Poll Modbus devices: one shared ``Link`` per connection, one task per poll group, failures isolated.

Each device's points are split into poll groups by interval (``coalesce.poll_groups``), and every group polls
in its own task on its own schedule; all tasks of the devices on one connection take turns on its ``Link``.
So a device that times out costs only its own cycle (and, on a shared gateway or RS-485 line, the line time
of its own attempts); after a transport failure all of that device's groups back off together, exponentially
up to a minute (``agent.sources.backoff``), instead of holding the line every cycle.

Quality: when a request fails at the transport level (timeout, connection lost) the points not yet read in
that cycle are reported BAD with no value, so the collector sees the gap, and the rest of the cycle is
skipped. A Modbus exception reply is an answer: for 02/03 the group's requests heal (``healing``) so that
only the points the device refuses stay BAD; other codes mark that request's points BAD for the cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

from agent import metrics
from agent.sources.backoff import Backoff
from agent.sources.base import SourceStatus
from agent.sources.modbus.coalesce import poll_groups
from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.connections import by_connection, connection_problems, endpoint
from agent.sources.modbus.healing import HealingGroup
from agent.sources.modbus.link import Link
from agent.sources.reading import Sink

log = structlog.get_logger("agent.modbus")


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
        for device in self.devices:  # a scrape shows 0, not nothing, for a device that refuses no point
            metrics.POINTS_REFUSED.set(0, device=device.name)
        try:
            async with asyncio.TaskGroup() as tasks:
                for device in self.devices:
                    groups = poll_groups(device)
                    if not groups:
                        continue
                    backoff = Backoff(base=groups[0].interval)
                    for group in groups:
                        name = f"modbus:{device.name}:{group.interval:g}s"
                        healing = HealingGroup(device, group, self._status)
                        tasks.create_task(self._run_group(healing, group.interval, backoff), name=name)
        finally:
            for link in self._links.values():
                link.close()
            for device in self.devices:  # what these pollers learned goes with them (reload, stop)
                metrics.POINTS_REFUSED.set(0, device=device.name)

    async def _run_group(self, group: HealingGroup, interval: float, backoff: Backoff) -> None:
        device = group.device
        link = self._links[endpoint(device)]
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            await asyncio.sleep(max(0.0, max(due, backoff.retry_at) - loop.time()))
            started = loop.time()
            readings, error = await group.cycle(link)
            metrics.observe_poll(device.name, loop.time() - started, error is None)
            self._sink(readings)
            if error is None:
                if backoff.failures:
                    log.info("device recovered", device=device.name, failed_cycles=backoff.failures)
                    backoff.failures = 0
                due += interval
                if due < loop.time():  # overran: skip the missed cycles rather than bursting
                    due = loop.time() + interval
                continue
            if backoff.failed(started, loop.time()):  # log the transition, not every failed cycle
                log.warning("device not answering", device=device.name, connection=link.name,
                            unit=device.unit, error=error)  # fmt: skip
            due = loop.time() + interval
