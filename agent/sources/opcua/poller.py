"""One OPC UA server: keep a session up, poll and/or subscribe its points, rebuild everything on failure.

Points in poll mode are read in one Read call per interval; points in subscribe mode are monitored items of
one subscription (see subscription.py for its watchdog). Failure handling is deliberately blunt, because
recovery after a server or PLC restart is where OPC UA clients most often break: any failure (a lost link,
a failed read, a dead subscription) closes the session, reports every point missing (BAD, no value, so no
made-up number reaches a KPI), waits with exponential backoff, and then opens a new session, resolves the
node ids again and recreates the subscription. The agent itself never needs a restart.

How long to wait follows from what a retry can fix:

- The backoff starts afresh at every successful reconnect, which is the first reading a new session
  delivers (not merely a session that opened: one that opens and fails at once, e.g. a server that refuses
  the subscription, keeps backing off, so a misbehaving server is not hammered). Each outage is then met
  with the short first steps again, however long the one before lasted.
- While the server cannot be reached at all (connection refused, reset or timed out before any session:
  it is down, restarting, or the link is cut), the wait is capped at ``UNREACHABLE_MAX_BACKOFF_S``, so data
  resumes within a few seconds of the server listening again, even after a long outage (the plant wants
  the gap to end when the PLC is back, not up to half a minute later). A connect attempt to a server that is
  not there costs one refused TCP connection, so trying every 2 s costs nothing worth saving.
- Everything else needs a human or a server-side change: a certificate or security setting (``SecurityError``,
  including a server that refuses the agent's certificate), a refused login, a server that answers but fails
  the session. Retrying those quickly fixes nothing, floods the server's audit log and may lock the account,
  so they back off up to ``MAX_BACKOFF_S``.

A problem is logged once when it starts (one line per distinct error, not one per retry), and the recovery
once, with the number of failed attempts, when the new session's first reading arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from asyncua import ua

from agent import metrics
from agent.sources.cancellable import cancellable
from agent.sources.opcua.config import OpcuaPoint, OpcuaServer
from agent.sources.opcua.connection import Session, close_client, open_session
from agent.sources.opcua.quality import missing, to_reading
from agent.sources.opcua.security import SecurityError
from agent.sources.opcua.subscription import Subscriber
from agent.sources.reading import Sink, now_ms

log = structlog.get_logger("agent.opcua")

FIRST_BACKOFF_S = 0.5
#: Cap of the wait while the server cannot be reached (see the module docstring): the longest time between
#: the server listening again and the next attempt, to which connecting and the first read add well under 1 s.
UNREACHABLE_MAX_BACKOFF_S = 2.0
#: Cap of the wait after failures a retry does not fix by itself (security, login, a failing session).
MAX_BACKOFF_S = 30.0


def unreachable(exc: BaseException, session_opened: bool) -> bool:
    """True if ``exc`` says the server is not there (down, restarting, link cut) rather than that it refuses
    the agent: a socket error or timeout before any session opened."""
    if session_opened or isinstance(exc, SecurityError):  # ClientCertificateRefused may be a ConnectionError
        return False
    return isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError)


def backoff(failures: int, cap: float) -> float:
    """Seconds before attempt ``failures + 1``: 0.5 s, doubling, at most ``cap``."""
    return min(FIRST_BACKOFF_S * 2 ** (failures - 1), cap)


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
        failures = 0
        last_error = ""

        def delivered() -> None:
            """The session's first reading: a successful (re)connect, so the backoff starts afresh."""
            nonlocal failures, last_error
            if failures:
                log.info("server recovered", server=self.server.name, failed_attempts=failures)
            failures = 0
            last_error = ""

        while True:
            session: Session | None = None
            cap = MAX_BACKOFF_S
            try:
                session = await open_session(self.server)
                await self._serve(session, delivered)
            except Exception as exc:  # any failure ends the session; the agent must keep running
                failures += 1
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if error != last_error:  # one line per distinct problem, not one per retry
                    level = log.error if isinstance(exc, SecurityError) else log.warning
                    level("server not available", server=self.server.name, error=error)
                    last_error = error
                self._sink(missing([p.name for p in self.server.points], now_ms()))
                cap = UNREACHABLE_MAX_BACKOFF_S if unreachable(exc, session is not None) else MAX_BACKOFF_S
            finally:
                if session is not None:
                    await close_client(session.client)
            await asyncio.sleep(backoff(failures, cap))

    async def _serve(self, session: Session, delivered: Callable[[], None]) -> None:
        """Run the poll loop and the subscription side by side; return or raise when either ends.
        ``delivered`` is called once, when the session hands over its first value read from the server (a
        reading that only says a node is missing does not count)."""
        pending = [delivered]

        def on_data() -> None:
            if pending:
                pending.pop()()

        tasks = []
        if self._polled:
            tasks.append(asyncio.create_task(self._poll(session, on_data)))
        if self._subscribed:
            subscriber = Subscriber(self.server, self._subscribed, self._sink, on_data=on_data)
            tasks.append(asyncio.create_task(subscriber.run(session)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # re-raise the failure that ended the session

    async def _poll(self, session: Session, on_data: Callable[[], None]) -> None:
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
            values = []
            if points:
                values = await cancellable(session.client.uaclient.read(params), self.server.timeout)
            metrics.observe_poll(
                self.server.name, loop.time() - started, True
            )  # a failed read ends the session
            received = now_ms()
            readings = [
                to_reading(p.name, p.scale, v, received, self.server.timestamp)
                for p, v in zip(points, values, strict=True)
            ]
            self._sink(readings + missing(unresolved, received))
            if readings:
                on_data()
            due += self.server.interval
            if due < loop.time():
                due = loop.time() + self.server.interval
            await asyncio.sleep(due - loop.time())
