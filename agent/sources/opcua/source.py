"""OPC UA (poll or subscribe, with security) as a source of the agent (see ``agent.sources.base``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.sources.base import Echo, PointAnswer, Poller, Source, SourceStatus
from agent.sources.opcua.config import OpcuaServer
from agent.sources.reading import Sink


class OpcuaSource(Source):
    key = "opcua"
    title = "OPC UA server"
    config = OpcuaServer
    path_keys = ("cert_dir", "trust_dir", "user_certificate", "user_key")
    schemes = ("opc.tcp",)

    def stall_limit(self, table: Any, stall_s: float) -> float | None:
        """Servers with no polled node are not watched: a quiet node legitimately sends nothing, and the
        subscription's own watchdog rebuilds a dead one."""
        if any((p.mode or table.mode) == "poll" for p in table.points):
            return stall_s + 3 * table.interval
        return None

    def pollers(self, tables: Sequence[Any], sink: Sink, status: SourceStatus) -> list[Poller]:
        """One poller per server, each with its own session."""
        if not tables:
            return []
        from agent.sources.opcua.poller import OpcuaPoller

        return [(f"opcua:{s.name}", OpcuaPoller(s, sink).run()) for s in tables]

    def describe(self, table: Any) -> str:
        modes = [p.mode or table.mode for p in table.points]
        return (
            f"opcua {table.name}: {table.endpoint}, security {table.security_policy}"
            f" ({table.effective_security_mode}), login {table.effective_auth};"
            f" {modes.count('poll')} node(s) read every {table.interval:g} s,"
            f" {modes.count('subscribe')} subscribed (publishing every {table.publishing_interval:g} s)"
        )

    async def probe(self, table: Any, timeout: float) -> list[PointAnswer]:
        from agent.sources.opcua.probe import probe_points

        return await probe_points(table, timeout)

    def probe_url(self, url: str, options: dict[str, Any], echo: Echo) -> int:
        from agent.sources.opcua.probe import run_probe

        return run_probe(url, options, echo)


SOURCE = OpcuaSource()
