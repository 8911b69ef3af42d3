"""``kilnwatch sim fleet``: write the fleet's site models, publish its traffic, write its truth.

Kept out of ``simulators/cli.py`` so the fleet's options live with the fleet; that module only registers
it. Imports of the fleet and paho happen in the command body, so ``kilnwatch --help`` stays quick.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer


def fleet(
    site_models: Annotated[Path, typer.Option(help="Folder to write one site model per site into.")],
    truth: Annotated[Path, typer.Option(help="JSON file to write the ground truth to, after the run.")],
    sites: Annotated[int, typer.Option(min=1, help="Sites (plants).")] = 10,
    agents_per_site: Annotated[int, typer.Option(min=1, help="Agents (gateways) per site.")] = 30,
    channels: Annotated[
        int, typer.Option(min=1, help="Channels per agent: one reading each per batch.")
    ] = 31,
    rate: Annotated[float, typer.Option(min=0.001, max=1000, help="Batches per second per agent.")] = 1.0,
    duration: Annotated[float | None, typer.Option(help="Seconds of batches (rate × duration each).")] = None,
    batches: Annotated[
        int | None, typer.Option(min=1, help="Batches per agent, instead of --duration.")
    ] = None,
    host: Annotated[str, typer.Option(help="MQTT broker host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MQTT broker port.")] = 1883,
    duplicates: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction of batches sent twice (replay after a lost PUBACK).")
    ] = 0.0,
    outage_s: Annotated[
        float,
        typer.Option(min=0, help="Hold the first site's batches this long, a third in; send them late."),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of every channel's rate and start.")] = 1,
    burst: Annotated[
        bool, typer.Option("--burst", help="Publish as fast as the broker acknowledges, stamped in the past.")
    ] = False,
) -> None:
    """A fleet of simulated agents publishing energy counters over MQTT, with ground truth (load tests)."""
    from agent import logs
    from simulators.fleet import FleetSpec, publish, write_truth
    from simulators.fleet import site_models as write_models

    logs.configure("info")
    if (duration is None) == (batches is None):
        raise typer.BadParameter(
            "give --duration SECONDS or --batches COUNT (one of them)", param_hint="--duration"
        )
    periods = batches if batches is not None else max(1, math.floor(duration * rate + 1e-9))
    now_ms = int(time.time() * 1000)
    # A burst is stamped as if it had been published live up to now: the collector rejects future readings.
    t0_ms = now_ms - round(periods * 1000 / rate) if burst else now_ms
    try:
        spec = FleetSpec(sites, agents_per_site, channels, rate, periods, t0_ms, seed, duplicates, outage_s)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    files = write_models(spec, site_models)
    typer.echo(f"{len(files)} site model(s) in {site_models}")
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    result = publish(spec, host, port, paced=not burst, stop=stopped.is_set)
    if stopped.is_set():
        typer.echo(f"stopped after {result.messages} message(s); no truth written (it describes whole runs)")
        raise typer.Exit(1)
    doc = write_truth(spec, truth)
    typer.echo(
        f"published {doc['batches']['published']} batches ({doc['batches']['unique']} unique, "
        f"{result.replays} replayed) of {channels} readings in {result.seconds:.1f} s; truth in {truth}"
    )
