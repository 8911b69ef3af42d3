"""Poll an OPC UA server: every configured node in one Read call per interval.

Polling rather than subscriptions keeps this first version's failure handling simple and observable: each
cycle either returns every node's DataValue or fails as a whole. On failure every point is reported BAD, the
session is thrown away, and the next attempt opens a new session and resolves the node ids again, so a PLC
download that renumbers namespaces (``nsu=`` ids) or a server restart is recovered from without a restart of
the agent (the most common OPC UA complaint in peers' issue trackers).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import UTC

import structlog
from asyncua import Client, ua

from agent.config import OpcuaServer
from agent.sources.reading import Reading, Sink, now_ms
from agent.wire import Quality

log = structlog.get_logger("agent.opcua")

MAX_BACKOFF_S = 60.0


def quality_of(status: ua.StatusCode) -> Quality:
    """OPC UA's three status classes map one to one onto the wire's qualities."""
    if status.is_good():
        return Quality.GOOD
    if status.is_uncertain():
        return Quality.UNCERTAIN
    return Quality.BAD


def time_of(value: ua.DataValue, fallback_ms: int) -> int:
    """Source timestamp if the server gives one, else the server's, else ours (ms since the Unix epoch)."""
    stamp = value.SourceTimestamp or value.ServerTimestamp
    if stamp is None:
        return fallback_ms
    if stamp.tzinfo is None:  # asyncua hands out naive UTC datetimes
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


def resolve_node_id(text: str, namespaces: list[str]) -> ua.NodeId:
    """Parse a configured node id; ``nsu=<uri>;`` is looked up in the server's namespace array."""
    if text.startswith("nsu="):
        uri, _, rest = text[4:].partition(";")
        if uri not in namespaces:
            raise LookupError(f"namespace {uri!r} is not in the server's namespace array")
        text = f"ns={namespaces.index(uri)};{rest}"
    return ua.NodeId.from_string(text)


def to_reading(name: str, scale: float, value: ua.DataValue, received_ms: int) -> Reading:
    """One DataValue → reading; a value that is not a finite number is BAD with no value."""
    t_ms = time_of(value, received_ms)
    raw = value.Value.Value if value.Value is not None else None
    quality = quality_of(value.StatusCode) if value.StatusCode is not None else Quality.GOOD
    if isinstance(raw, bool | int | float) and math.isfinite(float(raw)):
        return Reading(name, t_ms, float(raw) * scale, quality)
    return Reading(name, t_ms, None, Quality.BAD)


class OpcuaPoller:
    """Reads ``server``'s points every interval until cancelled, handing each cycle's readings to ``sink``."""

    def __init__(self, server: OpcuaServer, sink: Sink) -> None:
        self.server = server
        self._sink = sink

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            client = Client(self.server.endpoint, timeout=self.server.timeout)
            try:
                await asyncio.wait_for(client.connect(), self.server.timeout * 2)
                namespaces = await client.get_namespace_array()
                nodes = [client.get_node(resolve_node_id(p.node, namespaces)) for p in self.server.points]
                if failures:
                    log.info("server recovered", server=self.server.name, failed_cycles=failures)
                failures = 0
                due = loop.time()
                while True:
                    values = await asyncio.wait_for(client.read_attributes(nodes), self.server.timeout)
                    received = now_ms()
                    self._sink(
                        [
                            to_reading(p.name, p.scale, v, received)
                            for p, v in zip(self.server.points, values, strict=True)
                        ]
                    )
                    due += self.server.interval
                    if due < loop.time():
                        due = loop.time() + self.server.interval
                    await asyncio.sleep(due - loop.time())
            except Exception as exc:  # any failure of a cycle ends the session; the agent must keep running
                if not failures:
                    log.warning(
                        "server not answering", server=self.server.name, error=f"{type(exc).__name__}: {exc}"
                    )
                failures += 1
                t_ms = now_ms()
                self._sink([Reading(p.name, t_ms, None, Quality.BAD) for p in self.server.points])
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), 1.0)
            backoff = min(self.server.interval * 2 ** (failures - 1), MAX_BACKOFF_S)
            await asyncio.sleep(max(backoff, self.server.interval))
