"""``kilnwatch collector``, ``kilnwatch kpi`` and ``kilnwatch demo``.

Heavy imports (numba kernels, MQTT, InfluxDB client) happen inside the commands, so ``kilnwatch --help``
and the agent's commands stay fast on a gateway.
"""

from __future__ import annotations

import csv
import json
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, NoReturn

import typer

collector_app = typer.Typer(help="Central collector: MQTT → ledger → KPIs → InfluxDB.", no_args_is_help=True)
kpi_app = typer.Typer(help="Offline KPI computation from readings files.", no_args_is_help=True)


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _load(config: Path):
    """Collector config and its site model, or exit 2 with the message naming file, key and fix."""
    from collector.config import load_config
    from collector.config_errors import ConfigError
    from collector.site import load_site

    try:
        cfg = load_config(config)
        return cfg, load_site(cfg.collector.site_model)
    except ConfigError as exc:
        _fail(str(exc))


@collector_app.command("run")
def collector_run(config: Annotated[Path, typer.Argument(help="Collector TOML config.")]) -> None:
    """Run the collector until SIGINT/SIGTERM."""
    from agent import logs
    from collector.service import Collector

    cfg, site = _load(config)
    logs.configure(cfg.collector.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    Collector(cfg, site).run(stop)


@collector_app.command("check")
def collector_check(config: Annotated[Path, typer.Argument(help="Collector TOML config.")]) -> None:
    """Validate the collector config and its site model; name the key and the fix on error."""
    cfg, site = _load(config)
    typer.echo(
        f"ok: site {site.site.id}, {len(site.lines)} line(s), {len(site.channels)} channel(s), "
        f"agents {sorted(site.agents)}, sink {cfg.influx.api if cfg.influx else 'none (ledger only)'}"
    )


SCALARS = (str, int, float, bool, type(None))


@kpi_app.command("compute")
def kpi_compute(
    site: Annotated[Path, typer.Option(help="Site model TOML.")],
    readings: Annotated[Path, typer.Option(help="CSV: timestamp,channel,value,quality.")],
    period: Annotated[str, typer.Option(help="hour, shift, day, month or year.")] = "day",
    format: Annotated[Literal["json", "csv"], typer.Option(help="Output format.")] = "json",
    out: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """Compute KPIs per line and period from a readings file, with the live collector's kernels."""
    from collector.config_errors import ConfigError
    from collector.line_kpis import MissingLabValue
    from collector.offline import compute
    from collector.readings_csv import ReadingsError
    from collector.site import load_site

    try:
        docs = compute(load_site(site), readings, period)
    except (ConfigError, ReadingsError, MissingLabValue, ValueError) as exc:
        _fail(str(exc))
    fh = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    try:
        if format == "json":
            json.dump(docs, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        else:
            columns = [k for k, v in docs[0].items() if isinstance(v, SCALARS)] if docs else []
            writer = csv.DictWriter(fh, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(docs)
    finally:
        if out:
            fh.close()


@kpi_app.command("deviations")
def kpi_deviations(
    site: Annotated[Path, typer.Option(help="Site model TOML.")],
    readings: Annotated[Path, typer.Option(help="CSV: timestamp,channel,value,quality.")],
    fit_from: Annotated[datetime, typer.Option(help="Baseline period start (local date or ISO time).")],
    fit_to: Annotated[datetime, typer.Option(help="Baseline period end, exclusive.")],
    period: Annotated[str, typer.Option(help="hour, shift, day or month.")] = "day",
) -> None:
    """Fit each line's energy baseline (energy = a + b × clinker) and flag drift with CUSUM and EWMA."""
    from zoneinfo import ZoneInfo

    from collector.config_errors import ConfigError
    from collector.deviations import deviation_report
    from collector.line_kpis import MissingLabValue
    from collector.offline import compute
    from collector.readings_csv import ReadingsError
    from collector.site import load_site

    try:
        model = load_site(site)
        zone = ZoneInfo(model.site.timezone)
        bounds = [
            int((t if t.tzinfo else t.replace(tzinfo=zone)).timestamp() * 1000) for t in (fit_from, fit_to)
        ]
        report = deviation_report(compute(model, readings, period), *bounds)
    except (ConfigError, ReadingsError, MissingLabValue, ValueError) as exc:
        _fail(str(exc))
    json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def demo(
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 = until Ctrl-C.")] = 60.0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write KPIs next to the truth as JSON.")
    ] = None,
    workdir: Annotated[Path | None, typer.Option(help="Keep ledger, outbox and truth here.")] = None,
) -> None:
    """Run the demo plant end to end on one machine: simulator, agent, embedded broker, collector."""
    from collector.demo import run_demo

    result = run_demo(duration=duration, workdir=workdir)
    if json_out:
        json_out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
