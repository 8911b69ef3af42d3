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
    help="Edge agent: poll Modbus, OPC UA and DL/T 645 sources and publish over MQTT.", no_args_is_help=True
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
def check(
    config: Path = ConfigPath,
    probe: Annotated[
        bool, typer.Option("--probe", help="Also read every point once: which ones each device answers.")
    ] = False,
) -> None:
    """Validate CONFIG and print its sources, points and how one poll reads them.

    With --probe, every device is read once and each point it does not answer is listed; the exit
    status is 1 if any point went unanswered.
    """
    cfg = _load(config)
    typer.echo(f"agent {cfg.agent.id} at site {cfg.agent.site}: config OK")
    tls = "TLS" + (" with client certificate" if cfg.mqtt.cert_file else "") if cfg.mqtt.tls else "no TLS"
    typer.echo(
        f"mqtt {cfg.mqtt.host}:{cfg.mqtt.port} (MQTT {cfg.mqtt.protocol}, {tls}), outbox {cfg.outbox.path},"
        f" health {'http://' + cfg.health.listen if cfg.health.listen else 'off'}"
    )
    counts = []
    points = 0
    for source, tables in cfg.sources():
        for table in tables:
            typer.echo(f"  {source.describe(table)}")
            points += len(table.points)
        if tables:
            counts.append(f"{len(tables)} {source.title}{'s' if len(tables) != 1 else ''}")
    typer.echo(f"{', '.join(counts) or 'no sources'}, {points} points")
    if probe:
        raise typer.Exit(_probe_all(cfg))


def _probe_all(cfg: AgentConfig) -> int:
    """Read every table's points once; print each with its value, or why it has none (unanswered points
    first: they are what the reader acts on); 0 if every point answered."""
    import asyncio

    async def run() -> int:
        status = 0
        for source, tables in cfg.sources():
            for table in tables:
                answers = await source.probe(table, timeout=getattr(table, "timeout", 2.0))
                refused = [a for a in answers if not a.answered]
                typer.echo(
                    f"probe {source.key} {table.name}: {len(answers) - len(refused)} of {len(answers)} "
                    "points answered"
                )
                for answer in refused:
                    typer.echo(f"  {answer.point}: {answer.error}")
                for answer in answers:
                    if answer.answered:
                        typer.echo(f"  {answer.point} = {answer.value!r}")
                status |= 1 if refused else 0
        return status

    return asyncio.run(run())


@agent_app.command("probe")
def probe(
    url: Annotated[
        str,
        typer.Argument(
            help="modbus://HOST[:PORT], rtu-over-tcp://HOST:PORT, rtu:///dev/ttyUSB0?baud=9600&parity=E, "
            "opc.tcp://HOST:PORT/PATH, dlt645://HOST:PORT or dlt645:///dev/ttyUSB0?baud=2400",
            show_default=False,
        ),
    ],
    unit: Annotated[
        int | None, typer.Option("--unit", "-u", help="Modbus unit (slave) id; default 1.")
    ] = None,
    read: Annotated[
        list[str] | None,
        typer.Option(
            "--read",
            "-r",
            help="Modbus: ADDRESS[:TYPE[:ORDER]], repeatable: TYPE int16..float64, stringN, bitN or bit; "
            "ORDER ABCD CDAB BADC DCBA or all. DL/T 645: a data identifier such as 00010000.",
        ),
    ] = None,
    function: Annotated[
        int | None,
        typer.Option(
            "--function", "-f", min=1, max=4, help="1 coils, 2 discrete inputs, 3 holding, 4 input registers."
        ),
    ] = None,
    base: Annotated[
        int | None, typer.Option("--base", min=0, max=1, help="1 if addresses count from 1.")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Read every point of this meter profile.")] = None,
    ct_ratio: Annotated[
        float | None, typer.Option(help="CT ratio for --profile points that apply it.")
    ] = None,
    pt_ratio: Annotated[
        float | None, typer.Option(help="PT ratio for --profile points that apply it.")
    ] = None,
    meter: Annotated[
        str | None, typer.Option(help="DL/T 645 meter address, 12 digits as on its nameplate.")
    ] = None,
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
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for each answer.")] = None,
) -> None:
    """Read a device once and print decoded values with their raw data; publishes nothing."""
    from agent.config_model import TextValue
    from agent.sources.registry import SOURCES, for_url

    source = for_url(url)
    if source is None:
        schemes = ", ".join(f"{scheme}://" for s in SOURCES for scheme in s.schemes)
        typer.echo(f"agent probe: {url!r}: use one of {schemes}", err=True)
        raise typer.Exit(2)
    given = {"unit": unit, "read": read, "function": function, "base": base, "profile": profile,
             "ct_ratio": ct_ratio, "pt_ratio": pt_ratio, "meter": meter, "node": node,
             "timeout": timeout}  # fmt: skip
    options = {name: value for name, value in given.items() if value is not None}
    if security:
        # Command-line text is read by each key's type, like a ${VAR} in a config file ("accept_first=true").
        options["security"] = {
            key: TextValue(value, f"--security {key}=")
            for key, value in (item.partition("=")[::2] for item in security)
        }
    raise typer.Exit(source.probe_url(url, options, typer.echo))


@agent_app.command("run")
def run(config: Path = ConfigPath) -> None:
    """Poll the sources in CONFIG and publish to its broker until SIGTERM or Ctrl-C."""
    import asyncio

    from agent.logs import configure
    from agent.runner import run_agent

    cfg = _load(config)
    configure(cfg.agent.log_level)
    asyncio.run(run_agent(cfg, config_path=config))
