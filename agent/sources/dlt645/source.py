"""DL/T 645-2007 meters (serial RS-485 or a transparent TCP gateway) as a source of the agent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.sources.base import Echo, PointAnswer, Poller, Source, SourceStatus
from agent.sources.dlt645.config import Dlt645Meter
from agent.sources.reading import Sink


class Dlt645Source(Source):
    key = "dlt645"
    title = "DL/T 645 meter"
    config = Dlt645Meter
    schemes = ("dlt645",)

    def problems(self, tables: Sequence[Any]) -> list[str]:
        from agent.sources.dlt645.connections import connection_problems

        # Meters sharing a line must agree on its settings and have distinct addresses.
        return connection_problems(tables)

    def stall_limit(self, table: Any, stall_s: float) -> float | None:
        return stall_s + 3 * table.interval

    def pollers(self, tables: Sequence[Any], sink: Sink, status: SourceStatus) -> list[Poller]:
        """One poller for every meter: it groups them by line, one request at a time on each."""
        if not tables:
            return []
        from agent.sources.dlt645.poller import Dlt645Poller

        return [("dlt645", Dlt645Poller(tables, sink, status).run())]

    def describe(self, table: Any) -> str:
        from agent.sources.dlt645.connections import describe

        reads = list(dict.fromkeys(p.label for p in table.points))
        preamble = "" if table.preamble else ", no preamble"
        return (
            f"dlt645 {table.name}: {describe(table)} meter {table.address}{preamble}, "
            f"every {table.interval:g} s, {len(table.points)} points in {len(reads)} read(s) "
            f"({', '.join(reads)})"
        )

    async def probe(self, table: Any, timeout: float) -> list[PointAnswer]:
        from agent.sources.dlt645.probe import probe_points

        return await probe_points(table, timeout)

    def probe_url(self, url: str, options: dict[str, Any], echo: Echo) -> int:
        from agent.sources.dlt645.probe import run_probe

        return run_probe(url, options, echo)


SOURCE = Dlt645Source()
