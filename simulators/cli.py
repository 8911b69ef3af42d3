"""``kilnwatch sim ...`` commands: run the simulated plant live, or generate its history to files.

Heavy imports (numpy, pymodbus, asyncua) happen inside the command body, so other roles' commands stay quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simulators.fleet.command import fleet

sim_app = typer.Typer(
    help="Simulated plants (Modbus meters, OPC UA DCS) with ground truth.", no_args_is_help=True
)
sim_app.command("fleet")(fleet)


@sim_app.command("kiln")
def kiln(
    modbus_port: Annotated[int | None, typer.Option(help="Modbus TCP port on 127.0.0.1 (live run).")] = None,
    opcua_port: Annotated[
        int | None, typer.Option(help="OPC UA port on 127.0.0.1 (live run; omit for none).")
    ] = None,
    truth: Annotated[Path | None, typer.Option(help="Ground-truth CSV to write (live run).")] = None,
    tick: Annotated[float, typer.Option(help="Model step and DCS refresh period, s (live run).")] = 0.1,
    truth_interval: Annotated[float, typer.Option(help="Seconds between truth rows (live run).")] = 1.0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (live run).")] = None,
    generate: Annotated[
        bool, typer.Option("--generate", help="Write readings.csv and truth.csv instead.")
    ] = False,
    days: Annotated[float, typer.Option(help="Days to generate.")] = 1.0,
    step: Annotated[float, typer.Option(help="Seconds between generated samples.")] = 60.0,
    out: Annotated[Path | None, typer.Option(help="Output folder for --generate.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the process model.")] = 1,
    agent: Annotated[
        str, typer.Option(help="Agent id in generated channel ids (<agent>/<point>).")
    ] = "kiln-gw",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    preset: Annotated[
        list[str] | None,
        typer.Option(help="POINT=REGISTER: a totaliser's register at the start, e.g. near its modulus."),
    ] = None,
    replace_meter: Annotated[
        list[str] | None,
        typer.Option(help="POINT@SECONDS: replace that meter by a new one counting from 0 (live run)."),
    ] = None,
) -> None:
    """The 5000 t/d clinker line of docs/demo-plant.md: Modbus meters, an OPC UA DCS and ground truth."""
    from agent import logs

    logs.configure(log_level)
    if generate:
        if out is None:
            raise typer.BadParameter("--generate needs --out DIR", param_hint="--out")
        _generate(days, step, out, seed, agent)
        return
    if modbus_port is None:
        raise typer.BadParameter(
            "a live run needs --modbus-port (or use --generate)", param_hint="--modbus-port"
        )
    _run_live(modbus_port, opcua_port, truth, tick, truth_interval, seed, duration,
              _meter_events(preset or [], replace_meter or []))  # fmt: skip


def _meter_events(presets: list[str], replacements: list[str]):
    from simulators.kiln.live import MeterEvents

    def split(items: list[str], sep: str, option: str) -> dict[str, float]:
        out = {}
        for item in items:
            name, _, number = item.partition(sep)
            try:
                out[name] = float(number)
            except ValueError:
                raise typer.BadParameter(f"{item!r}: expected POINT{sep}NUMBER", param_hint=option) from None
        return out

    starts = {k: int(v) if v.is_integer() else v for k, v in split(presets, "=", "--preset").items()}
    return MeterEvents(starts, split(replacements, "@", "--replace-meter"))


def _generate(days: float, step: float, out: Path, seed: int, agent: str) -> None:
    from rich.console import Console

    from simulators.kiln.generate import generate

    console = Console(stderr=True)
    with console.status(f"generating {days} d at {step} s into {out} ..."):
        summary = generate(days, step, out, seed=seed, agent=agent)
    span = f"{summary['start']} .. {summary['end']}"
    console.print(f"{summary['rows']} readings on {summary['channels']} channels, {span}")


def _run_live(
    modbus_port: int,
    opcua_port: int | None,
    truth: Path | None,
    tick: float,
    truth_interval: float,
    seed: int,
    duration: float | None,
    events=None,
) -> None:
    import asyncio
    import logging
    import signal

    from simulators.kiln.live import run_live

    # asyncua warns at start-up that a security-None endpoint cannot verify users: expected for the simulator.
    logging.getLogger("asyncua").setLevel(logging.ERROR)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        await run_live(modbus_port, opcua_port, truth, tick, truth_interval, seed, stop, events)

    asyncio.run(main())


@sim_app.command("dlt645")
def dlt645(
    port: Annotated[
        int | None, typer.Option(help="Serve the line as a transparent TCP gateway on 127.0.0.1:PORT.")
    ] = None,
    pty: Annotated[
        bool, typer.Option("--pty", help="Serve the line on a pseudo-terminal; its path is printed.")
    ] = False,
    meter: Annotated[
        list[str] | None, typer.Option(help="A meter's 12-digit address, repeatable (default 000012345678).")
    ] = None,
    kw: Annotated[float, typer.Option(help="Each meter's primary load, kW (negative: export).")] = 1500.0,
    ct: Annotated[float, typer.Option(help="CT ratio: the meters report secondary values.")] = 1.0,
    pt: Annotated[float, typer.Option(help="PT ratio: the meters report secondary values.")] = 1.0,
    preamble: Annotated[bool, typer.Option(help="Start each reply with the FE wake-up bytes.")] = True,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """DL/T 645-2007 meters on a simulated line (TCP gateway and/or pty) that integrate their load."""
    import asyncio
    import re
    import signal

    from simulators.dlt645.live import run_live
    from simulators.dlt645.meter import SimulatedMeter

    if port is None and not pty:
        raise typer.BadParameter("give --port N, --pty, or both", param_hint="--port")
    addresses = meter or ["000012345678"]
    for address in addresses:
        if not re.fullmatch(r"\d{12}", address):
            raise typer.BadParameter(f"{address!r} is not 12 decimal digits", param_hint="--meter")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        meters = [SimulatedMeter(a, kw, ct, pt, preamble=preamble) for a in addresses]
        await run_live(meters, port, pty, stop, lambda line: typer.echo(line))

    asyncio.run(main())
