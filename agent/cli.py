"""The ``kilnwatch`` command: one sub-command group per role, each loaded only when it is called.

A gateway installs ``kilnwatch[agent]`` only: no numba, no InfluxDB client, no collector dependencies. So
the root command must not import a role's module before that role's command runs: ``kilnwatch agent ...``
loads ``agent.commands`` and nothing of the collector or the simulators. Each role's module in turn imports
its heavy dependencies inside the command bodies, so ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import typer
from typer.core import TyperGroup


class Role(NamedTuple):
    module: str
    attribute: str  # a typer.Typer (a group) or a function (one command)


ROLES = {
    "agent": Role("agent.commands", "agent_app"),
    "collector": Role("collector.cli", "collector_app"),
    "sim": Role("simulators.cli", "sim_app"),
    "kpi": Role("collector.cli", "kpi_app"),
    "demo": Role("collector.cli", "demo"),
}


_COMPLETION = ("install_completion", "show_completion")


class LazyRoles(TyperGroup):
    """A group whose sub-commands are imported on first use, by name."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(ROLES)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        role = ROLES.get(cmd_name)
        if role is None:
            return None
        target = getattr(importlib.import_module(role.module), role.attribute)
        if not isinstance(target, typer.Typer):
            single = typer.Typer()
            single.command(cmd_name)(target)
            target = single
        command = typer.main.get_command(target)
        command.name = cmd_name
        # Shell completion is installed from the root command, not from each role's.
        command.params = [p for p in command.params if p.name not in _COMPLETION]
        return command


app = typer.Typer(
    name="kilnwatch",
    cls=LazyRoles,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def kilnwatch() -> None:
    """Energy monitoring for kilns and furnaces: agent, collector, simulators, KPIs, demo."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
