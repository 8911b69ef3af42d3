"""``kilnwatch agent ...``: run the agent, or check a config file before deploying it.

Protocol libraries are imported inside the command bodies, so ``kilnwatch --help`` stays fast on a gateway.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from agent.config import AgentConfig

agent_app = typer.Typer(
    help="Edge agent: poll Modbus / OPC UA sources and publish over MQTT.", no_args_is_help=True
)

ConfigPath = typer.Argument(..., help="The agent's TOML config file.", show_default=False)


def _load(path: Path) -> AgentConfig:
    from agent.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@agent_app.command("check")
def check(config: Path = ConfigPath) -> None:
    """Validate CONFIG and print its devices, points and the Modbus requests one poll makes."""
    from agent.sources.modbus.coalesce import device_requests

    cfg = _load(config)
    typer.echo(f"agent {cfg.agent.id} at site {cfg.agent.site}: config OK")
    typer.echo(f"mqtt {cfg.mqtt.host}:{cfg.mqtt.port} (MQTT {cfg.mqtt.protocol}), outbox {cfg.outbox.path}")
    total_points = total_requests = 0
    for device in cfg.modbus:
        requests = device_requests(device)
        total_points += len(device.points)
        total_requests += len(requests)
        spans = ", ".join(f"FC{r.function} {r.address}+{r.count}" for r in requests)
        typer.echo(
            f"  modbus {device.name}: {device.host}:{device.port} unit {device.unit}, every "
            f"{device.interval:g} s, {len(device.points)} points in {len(requests)} request(s) ({spans})"
        )
    for server in cfg.opcua:
        total_points += len(server.points)
        typer.echo(
            f"  opcua {server.name}: {server.endpoint}, every {server.interval:g} s, "
            f"{len(server.points)} nodes in 1 read"
        )
    typer.echo(
        f"{len(cfg.modbus)} Modbus devices, {len(cfg.opcua)} OPC UA servers, {total_points} points, "
        f"{total_requests} Modbus requests per cycle"
    )


@agent_app.command("run")
def run(config: Path = ConfigPath) -> None:
    """Poll the sources in CONFIG and publish to its broker until SIGTERM or Ctrl-C."""
    import asyncio

    from agent.logs import configure
    from agent.runner import run_agent

    cfg = _load(config)
    configure(cfg.agent.log_level)
    asyncio.run(run_agent(cfg))
