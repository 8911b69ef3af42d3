"""One OPC UA server: keep a session up, poll and/or subscribe its points, rebuild everything on failure.

Points in poll mode are read in one Read call per interval; points in subscribe mode are monitored items of
one subscription (see subscription.py for its watchdog). Failure handling is deliberately blunt, because
recovery after a server or PLC restart is where OPC UA clients most often break: any failure (a lost link,
a failed read, a dead subscription) closes the session, reports every point missing (BAD, no value, so no
made-up number reaches a KPI), waits with exponential backoff, and then opens a new session, resolves the
node ids again and recreates the subscription. The agent itself never needs a restart.
"""

from __future__ import annotations

import asyncio

import structlog
from asyncua import ua

from agent import metrics
from agent.sources.opcua.config import OpcuaPoint, OpcuaServer
from agent.sources.opcua.connection import Session, close_client, open_session
from agent.sources.opcua.quality import missing, to_reading
from agent.sources.opcua.security import SecurityError
from agent.sources.opcua.subscription import Subscriber
from agent.sources.reading import Sink, now_ms

log = structlog.get_logger("agent.opcua")

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


def point_mode(server: OpcuaServer, point: OpcuaPoint) -> str:
    return point.mode or server.mode


class OpcuaPoller:
    """Serves ``server``'s points until cancelled, handing readings to ``sink`` as they arrive."""

    def __init__(self, server: OpcuaServer, sink: Sink) -> None:
        self.server = server
        self._sink = sink
        self._polled = [p for p in server.points if point_mode(server, p) == "poll"]
        self._subscribed = [p for p in server.points if point_mode(server, p) == "subscribe"]

    async def run(self) -> None:
        if not self.server.points:
            log.info("server has no points; not connecting", server=self.server.name)
            return
        loop = asyncio.get_running_loop()
        failures = 0
        last_error = ""
        while True:
            session: Session | None = None
            opened = loop.time()
            try:
                session = await open_session(self.server)
                if failures:
                    log.info("server recovered", server=self.server.name, failed_attempts=failures)
                last_error = ""
                await self._serve(session)
            except Exception as exc:  # any failure ends the session; the agent must keep running
                if session is not None and loop.time() - opened > MAX_BACKOFF_S:
                    failures = 0  # it served for a while: a new outage, so the backoff starts afresh
                failures += 1
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if error != last_error:  # one line per distinct problem, not one per retry
                    level = log.error if isinstance(exc, SecurityError) else log.warning
                    level("server not available", server=self.server.name, error=error)
                    last_error = error
                self._sink(missing([p.name for p in self.server.points], now_ms()))
            finally:
                if session is not None:
                    await close_client(session.client)
            # A session that opens but fails at once (e.g. the server refuses the subscription) keeps
            # backing off too, so a misbehaving server is not hammered.
            await asyncio.sleep(min(FIRST_BACKOFF_S * 2 ** (failures - 1), MAX_BACKOFF_S))

    async def _serve(self, session: Session) -> None:
        """Run the poll loop and the subscription side by side; return or raise when either ends."""
        tasks = []
        if self._polled:
            tasks.append(asyncio.create_task(self._poll(session)))
        if self._subscribed:
            tasks.append(
                asyncio.create_task(Subscriber(self.server, self._subscribed, self._sink).run(session))
            )
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # re-raise the failure that ended the session

    async def _poll(self, session: Session) -> None:
        """Read every poll-mode node in one call per interval; unresolvable nodes are reported missing."""
        loop = asyncio.get_running_loop()
        resolved = [(p, session.node_id(p.node)) for p in self._polled]
        points = [p for p, node_id in resolved if node_id is not None]
        unresolved = [p.name for p, node_id in resolved if node_id is None]
        if unresolved:
            log.warning(
                "nodes not read: namespace not on the server", server=self.server.name, points=unresolved
            )
        params = ua.ReadParameters(
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            NodesToRead=[
                ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value)
                for _, node_id in resolved
                if node_id is not None
            ],
        )
        due = loop.time()
        while True:
            started = loop.time()
            values = (
                await asyncio.wait_for(session.client.uaclient.read(params), self.server.timeout)
                if points
                else []
            )
            metrics.observe_poll(
                self.server.name, loop.time() - started, True
            )  # a failed read ends the session
            received = now_ms()
            readings = [
                to_reading(p.name, p.scale, v, received, self.server.timestamp)
                for p, v in zip(points, values, strict=True)
            ]
            self._sink(readings + missing(unresolved, received))
            due += self.server.interval
            if due < loop.time():
                due = loop.time() + self.server.interval
            await asyncio.sleep(due - loop.time())
