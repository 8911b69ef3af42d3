"""Collector ingest throughput, broker to ledger and InfluxDB: ``python -m benchmarks.collector_ingest``.

Not a test (no timed assertions). One process starts its own Mosquitto and InfluxDB 1.6.7 on free loopback
ports (``tests/servers.py``, never the machine's services), writes the site models of a fleet
(``simulators.fleet``: by default 300 agents over 10 sites, 31 readings per batch, 100 batches per agent)
and measures two consumers of the same preloaded traffic:

- ``kilnwatch collector run`` in a subprocess, configured as shipped (a TOML file with ``[influx]`` v1), with
  the SQLite ledger or (``--ledger postgres``) a PostgreSQL ledger of its own;
- the naive baseline, written below: a paho subscriber doing ``json.loads`` and one InfluxDB ``/write`` per
  message (keep-alive HTTP), no ledger, no de-duplication.

To measure the consumer and not the publisher, each consumer's persistent session (its client id, QoS 1) is
made first and the whole load is published while both are away, so the broker holds it for each. A run is
timed from the consumer's start until every batch is in the ledger (its ``batches`` table, read from
outside the collector; the naive consumer: every message handled) AND InfluxDB holds every reading
(``SELECT count(value)``), so a fast figure cannot hide a loss: a run that does not get there within
``--timeout`` fails with the counts it reached. It prints readings/s for both and their ratio, the
collector's CPU seconds and peak RSS (``/proc``) and InfluxDB's points and ``/write`` requests per
consumer (its ``/debug/vars``).

If the collector fails (exits, or stalls short of the counts), the benchmark says so with the end of the
collector's log, still measures the baseline, and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt
import paho.mqtt.client as mqtt

from agent import logs, wire
from agent.mqtt_settings import MqttSection, connect_options, make_client
from simulators import fleet
from tests import servers
from tests.influx_read import influxql

COLLECTOR_ID, NAIVE_ID = "bench-collector", "bench-naive"
COLLECTOR_DB, NAIVE_DB = "collector", "naive"
POLL_S = 0.2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    name: str
    readings: int
    ledger_s: float | None  # start → every batch applied (or handled, for the baseline)
    first_s: float | None  # start → first batch applied: the consumer's start-up
    done_s: float | None  # start → every batch applied and every reading in InfluxDB
    problem: str | None = None
    collector: bool = False  # the collector's run: a ledger, and KPIs among InfluxDB's points
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    points: int | None = None
    write_requests: int | None = None
    groups: dict[str, float] | None = None  # the collector's own /metrics: ledger transactions

    @property
    def rate(self) -> float:
        return self.readings / self.done_s if self.done_s else 0.0

    @property
    def steady_rate(self) -> float:
        """Readings/s from the first applied batch on: without the consumer's start-up."""
        if not self.done_s or self.first_s is None or self.done_s <= self.first_s:
            return 0.0
        return self.readings / (self.done_s - self.first_s)


# -- the broker side ---------------------------------------------------------------------------------------
def make_session(port: int, client_id: str, filters: list[str], protocol: str) -> None:
    """Subscribe once with a persistent session and leave, so the broker queues every later message for
    ``client_id`` (MQTT 3.1.1 clean_session false, MQTT 5 a session that never expires), as the shared
    client helper connects the collector."""
    settings = MqttSection(host="127.0.0.1", port=port, protocol=protocol)
    client = make_client(settings, client_id, persistent=True)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in filters])
    client.connect("127.0.0.1", port, **connect_options(settings, persistent=True))
    client.loop_start()
    try:
        if not subscribed.wait(30):
            raise TimeoutError(f"{client_id}: no SUBACK within 30 s")
    finally:
        client.disconnect()
        client.loop_stop()


def collector_filters(spec: fleet.FleetSpec) -> list[str]:
    return [wire.subscription(kind, site) for site in spec.site_ids for kind in ("data", "birth", "status")]


# -- InfluxDB ----------------------------------------------------------------------------------------------
def influx_count(url: str, database: str) -> int:
    series = influxql(url, database, "SELECT count(value) FROM reading")
    return series[0]["values"][0][1] if series else 0


def influx_writes(url: str) -> tuple[int, int]:
    """(points written OK, /write requests) so far, from the server's own counters."""
    with urllib.request.urlopen(f"{url}/debug/vars", timeout=10) as response:
        stats = json.loads(response.read())
    httpd = [v["values"] for k, v in stats.items() if k.startswith("httpd")]
    return sum(v.get("pointsWrittenOK", 0) for v in httpd), sum(v.get("writeReq", 0) for v in httpd)


def create_database(url: str, name: str) -> None:
    data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'}).encode()
    with urllib.request.urlopen(f"{url}/query", data=data, timeout=10) as response:
        assert response.status == 200


# -- waiting for a consumer --------------------------------------------------------------------------------
class Stalled(Exception):
    """The consumer exited or stopped short of the counts; the message says how far it got."""


def wait_until(
    done: Callable[[], bool], deadline: float, alive: Callable[[], str | None], what: Callable[[], str]
) -> float:
    """Poll ``done`` until true; returns the time it first was. ``alive`` names why the consumer is gone."""
    while True:
        if done():
            return time.perf_counter()
        if (gone := alive()) is not None:
            raise Stalled(f"{gone}; {what()}")
        if time.perf_counter() > deadline:
            raise Stalled(f"timed out; {what()}")
        time.sleep(POLL_S)


# -- the collector -----------------------------------------------------------------------------------------
def collector_config(work: Path, broker: int, influx: str, ledger_url: str | None, http_port: int) -> Path:
    """The collector's TOML as an operator writes it: the fleet's folder of site models, [influx] v1, its
    /metrics on ``http_port``."""
    ledger = f'ledger_url = "{ledger_url}"' if ledger_url else 'ledger = "ledger.sqlite"'
    path = work / "collector.toml"
    path.write_text(
        f"""[collector]
site_model = "sites"
{ledger}
http = "127.0.0.1:{http_port}"

[mqtt]
host = "127.0.0.1"
port = {broker}
protocol = "5"
client_id = "{COLLECTOR_ID}"

[influx]
api = "v1"
url = "{influx}"
database = "{COLLECTOR_DB}"
"""
    )
    return path


BATCHES_QUERY = "SELECT count(*), coalesce(sum(n), 0) FROM batches"


class SqliteLedgerCount:
    """Batches and their readings in the SQLite ledger, read-only from outside the collector; zero until
    the collector has made the file and its tables."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> tuple[int, int]:
        if not self.path.exists():
            return 0, 0
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)) as db:
            try:
                count, readings = db.execute(BATCHES_QUERY).fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return 0, 0
                raise
        return int(count), int(readings)


class PostgresLedgerCount:
    """The same from the PostgreSQL ledger, over a connection of the benchmark's own."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def __call__(self) -> tuple[int, int]:
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=5, autocommit=True) as db:
            try:
                count, readings = db.execute(BATCHES_QUERY).fetchone()
            except psycopg.errors.UndefinedTable:
                return 0, 0
        return int(count), int(readings)


#: The collector's histograms of its ledger transactions (collector/ops/stats.py), read when it has them.
GROUP_SAMPLES = {
    "kilnwatch_collector_group_messages_count": "groups",
    "kilnwatch_collector_group_messages_sum": "messages",
    "kilnwatch_collector_group_apply_seconds_sum": "apply_s",
}


def group_metrics(port: int) -> dict[str, float] | None:
    """Ledger transactions, the messages in them and their seconds from the collector's /metrics; None
    when it serves none (an older collector) or lacks the histograms."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in GROUP_SAMPLES:
            found[GROUP_SAMPLES[name]] = float(value)
    return found if len(found) == len(GROUP_SAMPLES) and found["groups"] else None


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, user + system, of the process and its waited-for children; peak RSS in MB)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = sum(int(x) for x in fields[11:15]) / CLOCK_TICKS  # utime, stime, cutime, cstime
    status = Path(f"/proc/{pid}/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return cpu, hwm_kb / 1024


def run_collector(
    config: Path,
    ledger: Callable[[], tuple[int, int]],
    influx: str,
    batches: int,
    readings: int,
    timeout: float,
    metrics_port: int | None = None,
) -> Run:
    log_path = config.parent / "collector.log"
    exe = Path(sys.executable).with_name("kilnwatch")
    name = "kilnwatch collector run"
    before = influx_writes(influx)
    with log_path.open("wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen([str(exe), "collector", "run", str(config)], stdout=log, stderr=log)
    deadline = start + timeout
    first: float | None = None
    applied = (0, 0)

    def alive() -> str | None:
        if proc.poll() is None:
            return None
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        return f"the collector exited with code {proc.returncode}; the end of its log:\n  " + "\n  ".join(
            tail
        )

    def ledger_done() -> bool:
        nonlocal first, applied
        applied = ledger()
        if applied[0] and first is None:
            first = time.perf_counter()
        return applied[0] >= batches

    stored = 0

    def influx_done() -> bool:
        nonlocal stored
        stored = influx_count(influx, COLLECTOR_DB) if COLLECTOR_DB in databases(influx) else 0
        return stored >= readings

    def progress() -> str:
        return f"{applied[0]:,} of {batches:,} batches in the ledger, {stored:,} of {readings:,} in InfluxDB"

    try:
        in_ledger = wait_until(ledger_done, deadline, alive, progress)
        in_influx = wait_until(influx_done, deadline, alive, progress)
        cpu, rss = proc_usage(proc.pid)
        run = Run(name, readings, in_ledger - start, first - start, max(in_ledger, in_influx) - start)
        run.cpu_s, run.peak_rss_mb = cpu, rss
        run.groups = group_metrics(metrics_port) if metrics_port is not None else None
        problems = []
        if applied[1] != readings:
            problems.append(f"the ledger's batches hold {applied[1]:,} readings, not {readings:,}")
        if applied[0] != batches or stored != readings:
            problems.append(f"{progress()} (more than sent)")
        run.problem = "; ".join(problems) or None
    except Stalled as exc:
        run = Run(name, readings, None, None if first is None else first - start, None, str(exc))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    after = influx_writes(influx)
    run.points, run.write_requests = after[0] - before[0], after[1] - before[1]
    run.collector = True
    return run


def databases(url: str) -> set[str]:
    params = urllib.parse.urlencode({"q": "SHOW DATABASES"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=10) as response:
        series = json.loads(response.read())["results"][0].get("series", [])
    return {row[0] for s in series for row in s.get("values", [])}


# -- the naive baseline ------------------------------------------------------------------------------------
class Naive:
    """paho subscriber: per message ``json.loads``, line protocol by f-string, one ``/write``, then PUBACK."""

    def __init__(self, port: int, influx: str) -> None:
        self.handled = 0
        self.errors: list[str] = []
        target = urllib.parse.urlsplit(influx)
        self.http = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        self.path = f"/write?db={NAIVE_DB}&precision=ms"
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=NAIVE_ID, protocol=mqtt.MQTTv311, clean_session=False
        )
        self.client.on_message = self._message
        self.port = port

    def _message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        tags = f"agent={doc['agent']},site={doc['site']}"
        body = "\n".join(
            f"reading,{tags},channel={ch} value={float(v)!r},quality={q}i {t}"
            for ch, t, v, q in doc["readings"]
        )
        self.http.request("POST", self.path, body.encode(), {"Content-Type": "text/plain"})
        response = self.http.getresponse()
        response.read()
        if response.status != 204:
            self.errors.append(f"/write answered {response.status}")
        self.handled += 1

    def start(self) -> None:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.http.close()


def run_naive(port: int, influx: str, messages: int, readings: int, timeout: float) -> Run:
    name = "naive: paho, json.loads, one /write per message"
    before = influx_writes(influx)
    consumer = Naive(port, influx)
    start = time.perf_counter()
    consumer.start()
    stored = 0

    def influx_done() -> bool:
        nonlocal stored
        stored = influx_count(influx, NAIVE_DB)
        return stored >= readings

    def alive() -> str | None:
        return f"/write failed: {consumer.errors[0]}" if consumer.errors else None

    def progress() -> str:
        return (
            f"{consumer.handled:,} of {messages:,} messages handled, {stored:,} of {readings:,} in InfluxDB"
        )

    try:
        handled = wait_until(lambda: consumer.handled >= messages, start + timeout, alive, progress)
        in_influx = wait_until(influx_done, start + timeout, alive, progress)
        run = Run(name, readings, handled - start, None, max(handled, in_influx) - start)
        if stored != readings:
            run.problem = f"{stored:,} readings in InfluxDB, not {readings:,}"
    except Stalled as exc:
        run = Run(name, readings, None, None, None, str(exc))
    finally:
        consumer.stop()
    after = influx_writes(influx)
    run.points, run.write_requests = after[0] - before[0], after[1] - before[1]
    return run


# -- report ------------------------------------------------------------------------------------------------
def report(run: Run) -> None:
    if run.problem is not None and run.done_s is None:
        print(f"{run.name}: FAILED: {run.problem}")
    else:
        print(
            f"{run.name}: all {run.readings:,} readings in InfluxDB after {run.done_s:.2f} s: "
            f"{run.rate:,.0f} readings/s"
        )
        if run.first_s is not None:
            print(
                f"  start-up (to the first batch in the ledger) {run.first_s:.2f} s; every batch in it after "
                f"{run.ledger_s:.2f} s; after start-up {run.steady_rate:,.0f} readings/s"
            )
        if run.problem is None:
            holders = "the ledger and InfluxDB hold" if run.collector else "InfluxDB holds"
            print(f"  every reading accounted for: {holders} {run.readings:,}")
        else:
            print(f"  NOT accounted for: {run.problem}")
    if run.cpu_s is not None:
        share = run.cpu_s / run.done_s * 100 if run.done_s else 0.0
        print(
            f"  collector process: {run.cpu_s:.1f} CPU s ({share:.0f} % of one core), "
            f"peak RSS {run.peak_rss_mb:.0f} MB"
        )
    if run.groups is not None:
        g = run.groups
        print(
            f"  collector's /metrics: {g['groups']:,.0f} ledger transactions of "
            f"{g['messages'] / g['groups']:,.1f} messages on average, {g['apply_s']:.1f} s applying in all"
        )
    if run.write_requests:
        print(
            f"  InfluxDB: {run.points:,} points{' (readings and KPIs)' if run.collector else ''} in "
            f"{run.write_requests:,} /write requests ({run.points / run.write_requests:,.0f} points/request)"
        )


def versions() -> str:
    broker = subprocess.run(
        [servers.binary("mosquitto", "mosquitto"), "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    influx = subprocess.run(
        [servers.binary("influxd", "influxdb"), "version"], capture_output=True, text=True, check=False
    ).stdout.split(" (")[0]
    python = sys.version.split()[0]
    return f"{os.cpu_count()} CPUs, Python {python}, paho-mqtt {paho.mqtt.__version__}, {broker}, {influx}"


def load_average() -> str:
    """The machine's 1-minute load: other work on a shared box slows both consumers, the collector most."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


@contextlib.contextmanager
def ledger_server(kind: str, work: Path) -> Iterator[str | None]:
    """The PostgreSQL cluster of ``--ledger postgres`` (its DSN), or nothing for the SQLite file."""
    if kind == "sqlite":
        yield None
        return
    with servers.postgresql(work / "postgres") as pg:
        yield pg.dsn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.collector_ingest", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--agents", type=int, default=300, help="agents in all (default 300)")
    parser.add_argument("--sites", type=int, default=10, help="sites the agents are spread over (default 10)")
    parser.add_argument("--channels", type=int, default=31, help="readings per batch (default 31)")
    parser.add_argument("--batches-per-agent", type=int, default=100, help="default 100")
    parser.add_argument("--ledger", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds each consumer may take")
    parser.add_argument("--keep", type=Path, help="work in this folder and leave it (logs, ledger, config)")
    args = parser.parse_args(argv)
    logs.configure("warning")
    if args.agents % args.sites:
        parser.error(f"--agents {args.agents} is not a multiple of --sites {args.sites}")
    rate = 1.0
    periods = args.batches_per_agent
    t0_ms = int(time.time() * 1000) - round(periods * 1000 / rate)  # as if sent live until now
    spec = fleet.FleetSpec(args.sites, args.agents // args.sites, args.channels, rate, periods, t0_ms)
    truth = fleet.truth(spec)
    batches, readings = truth["batches"]["unique"], truth["readings"]["unique"]
    print(
        f"collector ingest: {args.sites} sites × {spec.agents_per_site} agents × {args.channels} channels, "
        f"{periods} batches per agent = {batches:,} batches, {readings:,} readings; ledger {args.ledger}"
    )
    print(f"{versions()}; {load_average()} at the start")
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            work = args.keep
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kw-ingest-")))
        broker = stack.enter_context(servers.mosquitto(work / "mosquitto"))
        influx = stack.enter_context(servers.influxdb1(work / "influx")).url
        ledger_url = stack.enter_context(ledger_server(args.ledger, work))
        fleet.site_models(spec, work / "sites")
        metrics_port = servers.free_port()
        config = collector_config(work, broker.port, influx, ledger_url, metrics_port)
        create_database(influx, NAIVE_DB)
        make_session(broker.port, COLLECTOR_ID, collector_filters(spec), "5")
        make_session(broker.port, NAIVE_ID, [wire.subscription("data")], "3.1.1")
        sent = fleet.publish(spec, "127.0.0.1", broker.port, paced=False)
        print(
            f"preloaded: {sent.messages:,} batches (+ {sent.births} retained births) published in "
            f"{sent.seconds:.1f} s, held by Mosquitto for both consumers"
        )
        ledger = PostgresLedgerCount(ledger_url) if ledger_url else SqliteLedgerCount(work / "ledger.sqlite")
        collector = run_collector(config, ledger, influx, batches, readings, args.timeout, metrics_port)
        report(collector)
        print(f"  ({load_average()} at its end)")
        naive = run_naive(broker.port, influx, sent.messages, readings, args.timeout)
        report(naive)
        print(f"  ({load_average()} at its end)")
    if collector.rate and naive.rate:
        print(
            f"ratio collector / naive: {collector.rate / naive.rate:.2f} (whole runs, the collector's "
            f"start-up included); {collector.steady_rate / naive.rate:.2f} after its start-up"
        )
    return 0 if collector.problem is None and naive.problem is None else 1


if __name__ == "__main__":
    sys.exit(main())
