"""``kilnwatch agent ...``: run the agent, or check a config file before deploying it.

Protocol libraries are imported inside the command bodies, so ``kilnwatch --help`` stays fast on a gateway.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    from agent.sources.modbus.coalesce import poll_groups
    from agent.sources.modbus.connections import describe

    cfg = _load(config)
    typer.echo(f"agent {cfg.agent.id} at site {cfg.agent.site}: config OK")
    tls = "TLS" + (" with client certificate" if cfg.mqtt.cert_file else "") if cfg.mqtt.tls else "no TLS"
    typer.echo(
        f"mqtt {cfg.mqtt.host}:{cfg.mqtt.port} (MQTT {cfg.mqtt.protocol}, {tls}), outbox {cfg.outbox.path},"
        f" health {'http://' + cfg.health.listen if cfg.health.listen else 'off'}"
    )
    total_points = total_requests = 0
    for device in cfg.modbus:
        groups = poll_groups(device)
        requests = sum(len(g.requests) for g in groups)
        total_points += len(device.points)
        total_requests += requests
        layouts = [
            (g.interval, ", ".join(f"FC{r.function} {r.address}+{r.count}" for r in g.requests))
            for g in groups
        ]
        every = f"every {layouts[0][0] if len(layouts) == 1 else device.interval:g} s"
        spans = layouts[0][1] if len(layouts) == 1 else "; ".join(f"every {i:g} s: {s}" for i, s in layouts)
        profile = f", profile {device.profile}" if device.profile else ""
        typer.echo(
            f"  modbus {device.name}: {describe(device)} unit {device.unit}{profile}, {every}, "
            f"{len(device.points)} points in {requests} request(s) ({spans})"
        )
    for server in cfg.opcua:
        total_points += len(server.points)
        modes = [p.mode or server.mode for p in server.points]
        polled, subscribed = modes.count("poll"), modes.count("subscribe")
        typer.echo(
            f"  opcua {server.name}: {server.endpoint}, security {server.security_policy}"
            f" ({server.effective_security_mode}), login {server.effective_auth};"
            f" {polled} node(s) read every {server.interval:g} s,"
            f" {subscribed} subscribed (publishing every {server.publishing_interval:g} s)"
        )
    typer.echo(
        f"{len(cfg.modbus)} Modbus devices, {len(cfg.opcua)} OPC UA servers, {total_points} points, "
        f"{total_requests} Modbus requests per cycle"
    )


@agent_app.command("probe")
def probe(
    url: Annotated[
        str,
        typer.Argument(
            help="modbus://HOST[:PORT], rtu-over-tcp://HOST:PORT, "
            "rtu:///dev/ttyUSB0?baud=9600&parity=E, or opc.tcp://HOST:PORT/PATH",
            show_default=False,
        ),
    ],
    unit: Annotated[int, typer.Option("--unit", "-u", help="Modbus unit (slave) id.")] = 1,
    read: Annotated[
        list[str] | None,
        typer.Option(
            "--read",
            "-r",
            help="ADDRESS[:TYPE[:ORDER]], repeatable: "
            "TYPE int16..float64, stringN, bitN or bit; ORDER ABCD CDAB BADC DCBA or all.",
        ),
    ] = None,
    function: Annotated[
        int,
        typer.Option(
            "--function", "-f", min=1, max=4, help="1 coils, 2 discrete inputs, 3 holding, 4 input registers."
        ),
    ] = 3,
    base: Annotated[int, typer.Option("--base", min=0, max=1, help="1 if addresses count from 1.")] = 0,
    profile: Annotated[str | None, typer.Option(help="Read every point of this meter profile.")] = None,
    ct_ratio: Annotated[float, typer.Option(help="CT ratio for --profile points that apply it.")] = 1.0,
    pt_ratio: Annotated[float, typer.Option(help="PT ratio for --profile points that apply it.")] = 1.0,
    node: Annotated[
        list[str] | None,
        typer.Option("--node", "-n", help="OPC UA node id, repeatable (opc.tcp:// URLs; none: browse)."),
    ] = None,
    security: Annotated[
        list[str] | None,
        typer.Option(
            help="OPC UA connection setting KEY=VALUE (keys of an opcua section), repeatable, "
            "e.g. security_policy=Basic256Sha256."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.")] = 2.0,
) -> None:
    """Read a device once and print decoded values with their raw registers; publishes nothing."""
    from agent.config_model import TextValue
    from agent.probe import run_probe

    # Command-line text is read by each key's type, like a ${VAR} in a config file ("accept_first=true").
    settings = {
        key: TextValue(value, f"--security {key}=")
        for key, value in (item.partition("=")[::2] for item in security or [])
    }
    status = run_probe(url, unit=unit, reads=read, function=function, base=base, profile=profile,
                       ct_ratio=ct_ratio, pt_ratio=pt_ratio, nodes=node, security=settings,
                       timeout=timeout, echo=typer.echo)  # fmt: skip
    raise typer.Exit(status)


@agent_app.command("run")
def run(config: Path = ConfigPath) -> None:
    """Poll the sources in CONFIG and publish to its broker until SIGTERM or Ctrl-C."""
    import asyncio

    from agent.logs import configure
    from agent.runner import run_agent

    cfg = _load(config)
    configure(cfg.agent.log_level)
    asyncio.run(run_agent(cfg, config_path=config))
