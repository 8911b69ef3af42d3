"""Modbus TCP, RTU and RTU over TCP as a source of the agent (see ``agent.sources.base``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.sources.base import Echo, PointAnswer, Poller, Source, SourceStatus
from agent.sources.modbus.config import ModbusDevice
from agent.sources.reading import Sink


class ModbusSource(Source):
    key = "modbus"
    title = "Modbus device"
    config = ModbusDevice
    schemes = ("modbus", "rtu-over-tcp", "rtu")

    def problems(self, tables: Sequence[Any]) -> list[str]:
        from agent.sources.modbus.connections import connection_problems

        # Devices sharing a line must agree on its settings.
        return connection_problems(tables)

    def stall_limit(self, table: Any, stall_s: float) -> float | None:
        # a device's fastest poll group sets how often a cycle is due
        return stall_s + 3 * min([table.interval, *(p.interval or table.interval for p in table.points)])

    def pollers(self, tables: Sequence[Any], sink: Sink, status: SourceStatus) -> list[Poller]:
        """One poller for every device: it groups them by connection, one request at a time on each."""
        if not tables:
            return []
        from agent.sources.modbus.poller import ModbusPoller

        return [("modbus", ModbusPoller(tables, sink, status).run())]

    def describe(self, table: Any) -> str:
        from agent.sources.modbus.coalesce import poll_groups
        from agent.sources.modbus.connections import describe

        groups = poll_groups(table)
        requests = sum(len(g.requests) for g in groups)
        layouts = [
            (g.interval, ", ".join(f"FC{r.function} {r.address}+{r.count}" for r in g.requests))
            for g in groups
        ]
        every = f"every {layouts[0][0] if len(layouts) == 1 else table.interval:g} s" if layouts else "idle"
        spans = layouts[0][1] if len(layouts) == 1 else "; ".join(f"every {i:g} s: {s}" for i, s in layouts)
        profile = f", profile {table.profile}" if table.profile else ""
        return (
            f"modbus {table.name}: {describe(table)} unit {table.unit}{profile}, {every}, "
            f"{len(table.points)} points in {requests} request(s) ({spans})"
        )

    async def probe(self, table: Any, timeout: float) -> list[PointAnswer]:
        from agent.sources.modbus.probe import probe_points

        return await probe_points(table, timeout)

    def probe_url(self, url: str, options: dict[str, Any], echo: Echo) -> int:
        from agent.sources.modbus.probe import run_probe

        return run_probe(url, options, echo)


SOURCE = ModbusSource()
