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

from collector.broker_acl.command import broker_acl
from collector.ingest.deadletter_cli import deadletter_app

collector_app = typer.Typer(help="Central collector: MQTT → ledger → KPIs → InfluxDB.", no_args_is_help=True)
collector_app.command("broker-acl")(broker_acl)
collector_app.add_typer(deadletter_app, name="deadletter")
kpi_app = typer.Typer(help="Offline KPI computation from readings files.", no_args_is_help=True)


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _load(config: Path):
    """Collector config and its site models, or exit 2 with the message naming file, key and fix."""
    from agent.config_load import ConfigError
    from collector.config import load_config
    from collector.sites import load_sites

    try:
        cfg = load_config(config)
        return cfg, load_sites(cfg.collector.site_model)
    except ConfigError as exc:
        _fail(str(exc))


@collector_app.command("run")
def collector_run(config: Annotated[Path, typer.Argument(help="Collector TOML config.")]) -> None:
    """Run the collector until SIGINT/SIGTERM (which drain: what was received is applied and acknowledged);
    SIGHUP reloads the site models."""
    from agent import logs
    from collector.ledger.sql import LedgerError
    from collector.service import Collector

    cfg, sites = _load(config)
    logs.configure(cfg.collector.log_level)
    stop, reload = threading.Event(), threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    try:
        collector = Collector(cfg, sites)
    except LedgerError as exc:
        _fail(str(exc))
    collector.run(stop, reload)


@collector_app.command("check")
def collector_check(config: Annotated[Path, typer.Argument(help="Collector TOML config.")]) -> None:
    """Validate the collector config and its site model; name the key and the fix on error."""
    cfg, sites = _load(config)
    for site in sites.values():
        typer.echo(
            f"ok: site {site.site.id}, {len(site.lines)} line(s), {len(site.channels)} channel(s), "
            f"agents {sorted(site.agents)}"
        )
    typer.echo(f"sink {cfg.influx.api if cfg.influx else 'none (ledger only)'}")


READINGS_HELP = "Readings: CSV (plain or gzip) or Parquet with timestamp, channel, value, quality."
FROM_HELP = "Compute from the period holding this site-local date or time (or one with an offset)."
TO_HELP = "Compute periods up to this site-local date or time, exclusive (or one with an offset)."


def _site_datetime(text: str, option: str, timezone: str) -> datetime:
    """A time given on the command line: a naive date or time is in the site model's time zone, one with
    an offset (``+08:00``, ``Z``) is taken as it is."""
    from zoneinfo import ZoneInfo

    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        _fail(
            f"{option} {text!r}: give a site-local date or time such as 2026-11-01 or 2026-11-01T08:00,"
            " or a time with an offset such as 2026-11-01T08:00+08:00"
        )
    return t if t.tzinfo else t.replace(tzinfo=ZoneInfo(timezone))


def _site_time(text: str | None, option: str, timezone: str) -> float | None:
    """``--from``/``--to`` as epoch seconds (see ``_site_datetime``)."""
    return None if text is None else _site_datetime(text, option, timezone).timestamp()


def _warner(readings: Path):
    """Channel mismatches go to standard error; the exit code stays 0."""
    return lambda message: typer.echo(f"warning: {readings}: {message}", err=True)


@kpi_app.command("compute")
def kpi_compute(
    site: Annotated[Path, typer.Option(help="Site model TOML.")],
    readings: Annotated[Path, typer.Option(help=READINGS_HELP)],
    period: Annotated[str, typer.Option(help="hour, shift, day, month or year.")] = "day",
    format: Annotated[Literal["json", "csv"], typer.Option(help="Output format.")] = "json",
    out: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
    start: Annotated[str | None, typer.Option("--from", help=FROM_HELP)] = None,
    end: Annotated[str | None, typer.Option("--to", help=TO_HELP)] = None,
    naive_times: Annotated[
        Literal["refuse", "site"],
        typer.Option(help="Timestamps without an offset: refuse them, or read them in the site's time zone."),
    ] = "refuse",
    quality: Annotated[
        Literal["auto", "opc-da", "opc-ua"],
        typer.Option(
            help="Numeric quality: auto (0/1/2, OPC DA bytes 3-255, OPC UA status codes), opc-da, opc-ua."
        ),
    ] = "auto",
) -> None:
    """Compute KPIs per line and period from a readings file, with the live collector's kernels."""
    from agent.config_load import ConfigError
    from collector.kpis.csv_out import csv_table
    from collector.kpis.line_kpis import MissingLabValue
    from collector.kpis.offline import compute
    from collector.readings.file import ReadingsError
    from collector.site import load_site

    try:
        model = load_site(site)
        start_s = _site_time(start, "--from", model.site.timezone)
        end_s = _site_time(end, "--to", model.site.timezone)
        naive_tz = model.site.timezone if naive_times == "site" else None
        docs = compute(
            model,
            readings,
            period,
            start_s,
            end_s,
            warn=_warner(readings),
            naive_tz=naive_tz,
            quality=quality,
        )
    except (ConfigError, ReadingsError, MissingLabValue, ValueError) as exc:
        _fail(str(exc))
    fh = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    try:
        if format == "json":
            fh.write(json.dumps(docs, indent=2, ensure_ascii=False) + "\n")  # json.dump: ~5× slower
        else:
            columns, rows = csv_table(docs)
            writer = csv.DictWriter(fh, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if out:
            fh.close()


@kpi_app.command("deviations")
def kpi_deviations(
    site: Annotated[Path, typer.Option(help="Site model TOML.")],
    readings: Annotated[Path, typer.Option(help=READINGS_HELP)],
    fit_from: Annotated[str, typer.Option(help="Baseline period start (site-local date or time).")],
    fit_to: Annotated[str, typer.Option(help="Baseline period end, exclusive.")],
    period: Annotated[str, typer.Option(help="hour, shift, day or month.")] = "day",
    start: Annotated[str | None, typer.Option("--from", help=FROM_HELP)] = None,
    end: Annotated[str | None, typer.Option("--to", help=TO_HELP)] = None,
    naive_times: Annotated[
        Literal["refuse", "site"],
        typer.Option(help="Timestamps without an offset: refuse them, or read them in the site's time zone."),
    ] = "refuse",
    quality: Annotated[
        Literal["auto", "opc-da", "opc-ua"],
        typer.Option(
            help="Numeric quality: auto (0/1/2, OPC DA bytes 3-255, OPC UA status codes), opc-da, opc-ua."
        ),
    ] = "auto",
) -> None:
    """Fit each line's energy baseline (energy = a + b × clinker) and flag drift with CUSUM and EWMA."""
    from agent.config_load import ConfigError
    from collector.kpis.deviations import deviation_report
    from collector.kpis.line_kpis import MissingLabValue
    from collector.kpis.offline import compute
    from collector.readings.file import ReadingsError
    from collector.site import load_site

    try:
        model = load_site(site)
        bounds = [
            int(_site_datetime(t, option, model.site.timezone).timestamp() * 1000)
            for t, option in ((fit_from, "--fit-from"), (fit_to, "--fit-to"))
        ]
        start_s = _site_time(start, "--from", model.site.timezone)
        end_s = _site_time(end, "--to", model.site.timezone)
        naive_tz = model.site.timezone if naive_times == "site" else None
        docs = compute(
            model,
            readings,
            period,
            start_s,
            end_s,
            warn=_warner(readings),
            naive_tz=naive_tz,
            quality=quality,
        )
        report = deviation_report(docs, *bounds)
    except (ConfigError, ReadingsError, MissingLabValue, ValueError) as exc:
        _fail(str(exc))
    json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


@kpi_app.command("exchange")
def kpi_exchange(
    site: Annotated[Path, typer.Option(help="Site model TOML; the record is appended to it.")],
    channel: Annotated[str, typer.Option(help="The counter channel whose meter was replaced.")],
    at: Annotated[str, typer.Option(help="When (site-local time, or ISO with an offset).")],
    old_final: Annotated[float, typer.Option(help="The old meter's final reading, in its own units.")],
    new_initial: Annotated[float, typer.Option(help="The new meter's reading when it was fitted.")] = 0.0,
    new_rollover: Annotated[
        float | None, typer.Option(help="The new meter's counter modulus (default: the channel's).")
    ] = None,
    new_ratio: Annotated[
        float, typer.Option(help="Scale of the new meter's readings to the channel's unit (CT/PT change).")
    ] = 1.0,
    note: Annotated[str, typer.Option(help="Work order, fitter, meter serial numbers.")] = "",
) -> None:
    """Record a meter exchange: it wins over what the readings suggest, live (at the collector's next
    start) and in ``kpi compute``."""
    from pydantic import ValidationError

    from agent.config_load import ConfigError
    from collector.kpis.exchanges import record_exchange
    from collector.site import MeterExchange, load_site

    try:
        when = _site_datetime(at, "--at", load_site(site).site.timezone)
        record = MeterExchange(
            channel=channel, at=when, old_final=old_final, new_initial=new_initial,
            new_rollover=new_rollover, new_ratio=new_ratio, note=note,
        )  # fmt: skip
        model = record_exchange(site, record)
    except ValidationError as exc:
        _fail(f"{site}: meter exchange not recorded: " + "; ".join(e["msg"] for e in exc.errors()))
    except ConfigError as exc:
        _fail(f"meter exchange not recorded, {site} left as it was: {exc}")
    count = len(model.exchanges(channel))
    typer.echo(f"recorded: {channel} meter exchange at {when.isoformat()} ({count} for this channel)")


def demo(
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 = until Ctrl-C.")] = 60.0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write KPIs next to the truth as JSON.")
    ] = None,
    workdir: Annotated[Path | None, typer.Option(help="Keep ledger, outbox and truth here.")] = None,
) -> None:
    """Run the demo plant end to end on one machine: simulator, agent, embedded broker, collector."""
    from collector.demo.run import run_demo

    result = run_demo(duration=duration, workdir=workdir)
    if json_out:
        json_out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
