"""The ``kilnwatch`` command: one sub-command group per role.

Each role's commands live beside the role's code and import their heavy dependencies inside the command
body, so ``kilnwatch agent ...`` on a gateway never loads numba, InfluxDB or web packages.
"""

from __future__ import annotations

import typer

from agent.commands import agent_app
from collector.cli import collector_app, demo, kpi_app
from simulators.cli import sim_app

app = typer.Typer(
    name="kilnwatch",
    help="Energy monitoring for kilns and furnaces: agent, collector, simulators, KPIs, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(agent_app, name="agent")
app.add_typer(collector_app, name="collector")
app.add_typer(sim_app, name="sim")
app.add_typer(kpi_app, name="kpi")
app.command("demo")(demo)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
