"""Poll DL/T 645 meters: one shared ``Link`` per line, one task per meter, failures isolated.

Every meter polls on its own schedule (its ``interval``) in its own task; the tasks of the meters on one line
take turns on its ``Link``, one request at a time. A meter that stops answering costs only its own cycle
(and, on a shared line, the line time of its own attempts); after a transport failure it backs off,
exponentially from its interval up to a minute (``agent.sources.backoff``), instead of holding the line
every cycle. What one cycle reports is described in ``cycle``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

from agent import metrics
from agent.sources.backoff import Backoff
from agent.sources.base import SourceStatus
from agent.sources.dlt645.config import Dlt645Meter
from agent.sources.dlt645.connections import by_connection, connection_problems, endpoint
from agent.sources.dlt645.cycle import MeterCycle
from agent.sources.dlt645.link import Link
from agent.sources.reading import Sink

log = structlog.get_logger("agent.dlt645")


class Dlt645Poller:
    """Polls ``meters`` until cancelled, handing each meter cycle's readings to ``sink``."""

    def __init__(self, meters: Iterable[Dlt645Meter], sink: Sink, status: SourceStatus | None = None) -> None:
        self.meters = list(meters)
        problems = connection_problems(self.meters)
        if problems:
            raise ValueError("; ".join(problems))
        self._sink = sink
        self._status = status or SourceStatus()
        self._links = {name: Link(group) for name, group in by_connection(self.meters).items()}

    async def run(self) -> None:
        for meter in self.meters:  # a scrape shows 0, not nothing, for a meter that refuses no point
            metrics.POINTS_REFUSED.set(0, device=meter.name)
        try:
            async with asyncio.TaskGroup() as tasks:
                for meter in self.meters:
                    if meter.points:
                        tasks.create_task(self._run_meter(meter), name=f"dlt645:{meter.name}")
        finally:
            for link in self._links.values():
                link.close()
            for meter in self.meters:  # what these pollers learned goes with them (reload, stop)
                metrics.POINTS_REFUSED.set(0, device=meter.name)

    async def _run_meter(self, meter: Dlt645Meter) -> None:
        link = self._links[endpoint(meter)]
        cycle = MeterCycle(meter, self._status)
        backoff = Backoff(base=meter.interval)
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            await asyncio.sleep(max(0.0, max(due, backoff.retry_at) - loop.time()))
            started = loop.time()
            readings, error = await cycle.run(link)
            metrics.observe_poll(meter.name, loop.time() - started, error is None)
            self._sink(readings)
            if error is None:
                if backoff.failures:
                    log.info("meter recovered", meter=meter.name, failed_cycles=backoff.failures)
                    backoff.failures = 0
                due += meter.interval
                if due < loop.time():  # overran: skip the missed cycles rather than bursting
                    due = loop.time() + meter.interval
                continue
            if backoff.failed(started, loop.time()):  # log the transition, not every failed cycle
                log.warning("meter not answering", meter=meter.name, connection=link.name,
                            address=meter.address, error=error)  # fmt: skip
            due = loop.time() + meter.interval
