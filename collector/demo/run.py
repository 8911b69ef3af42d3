"""``kilnwatch demo``: the whole chain on one machine, and the KPIs next to the simulator's truth.

The simulator and the agent run as their own processes (as on a real site), the broker (amqtt) and the
collector in this one. On exit the run's KPIs are compared with the truth the simulator integrated over the
same window, channel by channel, and printed.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table

from agent import logs
from collector.config import CollectorConfig, CollectorSection, MqttSection
from collector.demo.embedded_broker import embedded_broker
from collector.kpis.document import SHOWN
from collector.kpis.line_kpis import BaseTable, period_kpis
from collector.ledger.sql import Ledger
from collector.service import Collector
from collector.site import Site, load_site
from collector.sites import Sites
from kpi.units import ELECTRICITY_KGCE_PER_KWH_EQUIVALENT, KGCE_MJ

DEMO_DIR = Path(__file__).resolve().parents[2] / "deploy" / "demo"
#: Truth columns behind each counted channel of the demo site model.
TRUTH_COLUMN = {
    "raw_mill_kwh": "raw_mill_kwh", "kiln_kwh": "kiln_kwh", "coal_mill_kwh": "coal_mill_kwh",
    "cooler_kwh": "cooler_kwh", "aux_kwh": "aux_kwh", "whr_kwh": "whr_kwh",
    "cement_mill_kwh": "cement_mill_kwh", "coal_kiln_t": "coal_kiln_t", "coal_calciner_t": "coal_calciner_t",
    "clinker_t": "clinker_t", "cement_t": "cement_t",
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[3:5]} exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on port {port} after {timeout} s")


@contextlib.contextmanager
def process(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def read_truth(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    t = np.array([datetime.fromisoformat(r["t"]).timestamp() for r in rows])
    return t, {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k != "t"}


def truth_between(
    truth: tuple[np.ndarray, dict[str, np.ndarray]], column: str, t0: float, t1: float
) -> float:
    t, cols = truth
    return float(np.interp(t1, t, cols[column]) - np.interp(t0, t, cols[column]))


def compare_with_truth(ledger: Ledger, site: Site, truth_path: Path) -> dict:
    """Measured KPIs over the run vs the simulator's truth over each channel's own first..last reading."""
    windows = ledger.good_windows()
    truth = read_truth(truth_path)
    measured_q: dict[str, float] = {}
    true_q: dict[str, float] = {}
    rows = ledger.increments(0, 2**62)
    for channel, (t0_ms, t1_ms) in windows.items():
        point = channel.split("/", 1)[1]
        if point in TRUTH_COLUMN:
            true_q[point] = truth_between(truth, TRUTH_COLUMN[point], t0_ms / 1000, t1_ms / 1000)
            measured_q[point] = sum(q for ch, _, q, _ in rows if ch == channel)
    step = float(site.site.base_interval_s)
    first = min(w[0] for w in windows.values()) / 1000
    last = max(w[1] for w in windows.values()) / 1000
    lo, hi = np.floor(first / step) * step, np.ceil(last / step) * step
    table = BaseTable.from_rows(
        rows, lo, max(hi, lo + step), step,
        {c: (a / 1000.0, b / 1000.0) for c, (a, b) in windows.items()}, ledger.events(0, 2**62),
    )  # fmt: skip
    (doc,) = period_kpis(site, table, "run", np.array([lo, max(hi, lo + step)]), np.array([last - first]))

    clinker = true_q["clinker_t"]
    elec = sum(true_q[k] for k in ("raw_mill_kwh", "kiln_kwh", "coal_mill_kwh", "cooler_kwh", "aux_kwh"))
    ncv = float(truth[1]["coal_ncv_mj_per_kg"][-1])
    coal_kgce = (true_q["coal_kiln_t"] + true_q["coal_calciner_t"]) * 1000 * ncv / KGCE_MJ
    true_kpis = {
        "clinker_t": clinker,
        "electricity_kwh_per_t": elec / clinker,
        "coal_kgce_per_t": coal_kgce / clinker,
        "comprehensive_kgce_per_t": (coal_kgce + ELECTRICITY_KGCE_PER_KWH_EQUIVALENT * elec) / clinker,
        "cement_prep_kwh_per_t": true_q["cement_mill_kwh"] / true_q["cement_t"],
    }
    return {
        "window": {"start": doc["start"], "seconds": round(last - first, 3)},
        "kpis": {
            k: {
                "measured": doc[k],
                "truth": v,
                "error_pct": None if not v else 100.0 * (doc[k] - v) / v,
            }
            for k, v in true_kpis.items()
        },
        "quantities": {
            k: {
                "measured": measured_q[k],
                "truth": v,
                "error_pct": 100.0 * (measured_q[k] - v) / v if v else None,
            }
            for k, v in true_q.items()
        },
        "measured": doc,
    }


def _table(collector: Collector, elapsed: float) -> Table:
    table = Table(title=f"Kilnwatch demo — live KPIs ({elapsed:.0f} s)", expand=False)
    table.add_column("line / period")
    for field in SHOWN:
        table.add_column(field.title, justify="right")
    for doc in collector.latest:
        cells = ["—" if doc.get(f.name) is None else f.fmt.format(doc[f.name]) for f in SHOWN]
        table.add_row(f"{doc['line']} {doc['period']} {doc['start'][11:16]}Z", *cells)
    c = collector.ingest.counters
    rejected = sum(v for k, v in c.items() if k.startswith("rejected."))
    events = "  ".join(f"{k} {c[k]}" for k in ("rollovers", "resets", "exchanges", "flagged") if c.get(k))
    caption = f"batches {c['batches']}  readings {c['readings']}  rejected {rejected}  {events}"
    table.caption = caption.rstrip()
    return table


def run_demo(duration: float = 60.0, workdir: Path | None = None, console: Console | None = None) -> dict:
    console = console or Console()
    logs.configure("warning")
    work = Path(workdir or tempfile.mkdtemp(prefix="kilnwatch-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    modbus, opcua, mqtt_port = free_port(), free_port(), free_port()
    truth = work / "truth.csv"
    exe = [sys.executable, "-m", "agent.cli"]
    env = {
        **os.environ,
        "KILNWATCH_MODBUS_PORT": str(modbus),
        "KILNWATCH_OPCUA_ENDPOINT": f"opc.tcp://127.0.0.1:{opcua}/kilnwatch/dcs",
        "KILNWATCH_MQTT_PORT": str(mqtt_port),
        "KILNWATCH_OUTBOX": str(work / "agent-outbox.sqlite"),
    }
    site = load_site(DEMO_DIR / "site.toml")
    cfg = CollectorConfig(
        collector=CollectorSection(
            site_model=DEMO_DIR / "site.toml",
            ledger=work / "ledger.sqlite",
            periods=("hour", "day"),
        ),
        mqtt=MqttSection(port=mqtt_port, client_id="kilnwatch-demo-collector", protocol="3.1.1"),
    )
    console.print(f"[bold]Kilnwatch demo[/] — working folder {work}")
    sim_args = [
        *exe,
        "sim",
        "kiln",
        "--modbus-port",
        str(modbus),
        "--opcua-port",
        str(opcua),
        "--truth",
        str(truth),
    ]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with (
        embedded_broker(mqtt_port),
        process(sim_args, work / "simulator.log") as sim,
    ):
        wait_for_port(modbus, sim)
        wait_for_port(opcua, sim)
        collector = Collector(cfg, Sites.single(site))
        collector.start()
        collector.mqtt.ready.wait(10)
        start = time.monotonic()
        with process([*exe, "agent", "run", str(DEMO_DIR / "agent.toml")], work / "agent.log", env):
            try:
                with Live(_table(collector, 0), console=console, refresh_per_second=2) as live:
                    while not stop.wait(1.0):
                        collector.compute_kpis()
                        elapsed = time.monotonic() - start
                        live.update(_table(collector, elapsed))
                        if duration and elapsed >= duration:
                            break
            except KeyboardInterrupt:
                pass
        time.sleep(1.0)  # the agent's last batch, already acknowledged, reaches the collector
        collector.close()
    ledger = Ledger.open(cfg.collector.ledger)
    try:
        result = compare_with_truth(ledger, site, truth)
    finally:
        ledger.close()
    result["counters"] = dict(collector.ingest.counters)
    _print_result(console, result)
    return result


def _print_result(console: Console, result: dict) -> None:
    console.print()
    table = Table(title=f"KPIs over the run ({result['window']['seconds']:.0f} s) vs the simulator's truth")
    for col in ("indicator", "measured", "truth", "error"):
        table.add_column(col, justify="right" if col != "indicator" else "left")
    for name, row in result["kpis"].items():
        err = "—" if row["error_pct"] is None else f"{row['error_pct']:+.3f} %"
        table.add_row(name, f"{row['measured']:.3f}", f"{row['truth']:.3f}", err)
    console.print(table)
    events = result["measured"]["counter_events"]
    flagged = [e for e in events if e["kind"] == "implausible"]
    console.print(
        f"counter events: {len(events)} ({len(flagged)} flagged as implausible"
        f"{', kept out of the totals' if any(not e['counted'] for e in flagged) else ''})"
    )
    for e in events:
        state = "counted" if e["counted"] else "NOT counted"
        pair = f"{e['v0']:g} → {e['v1']:g}"
        console.print(f"  {e['t1']} {e['channel']}: {e['kind']} {pair}, {e['qty']:g} {state}")
