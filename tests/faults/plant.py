"""Real processes for fault tests: the simulated plant, the agent, and an independent observer on the wire.

The observer is a plain paho subscriber with a persistent session, like a collector. It keeps every copy of
every batch it receives, so a test can count duplicates against distinct batches (the collector's dedupe key
is (agent, epoch, seq)), check that seq has no holes, and check each channel's readings for gaps in time.
The simulator's truth file is the independent reference for values: every counter reading must match the
truth at an instant between its channel's previous stamp and its own (``Truth.start_range``), which holds
only if replayed readings kept their original times.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from agent import wire
from simulators.kiln.points import MODBUS_POINTS
from tests.servers import Mosquitto, free_port, stop, wait_for_port

REPO = Path(__file__).resolve().parents[2]
KILNWATCH = [sys.executable, "-m", "agent.cli"]
SITE, AGENT = "plant1", "gw1"
#: A truth row every simulator tick (0.1 s): a counter read between two rows is bounded by them exactly.
TRUTH_ROWS = ("--truth-interval", "0.1")

#: Two PM5100 meters of the simulated plant (units 1 and 2): power and the int64 Wh energy counter each.
CONFIG = """
[agent]
id = "{agent}"
site = "plant1"
batch_interval = 0.5

[mqtt]
port = {mqtt_port}
protocol = "{protocol}"
keepalive = 5

[outbox]
path = "{outbox}"
max_bytes = {max_bytes}

[health]
listen = "127.0.0.1:{health_port}"
stall_s = {stall_s}

[[modbus]]
name = "raw_mill_meter"
host = "127.0.0.1"
port = {modbus_port}
unit = 1
interval = {interval}

[[modbus.points]]
name = "raw_mill_kw"
address = 3059
type = "float32"
unit = "kW"
kind = "power"

[[modbus.points]]
name = "raw_mill_kwh"
address = 3203
type = "int64"
scale = 0.001
unit = "kWh"
kind = "energy_total"
{extra}"""

KILN_METER = """
[[modbus]]
name = "kiln_meter"
host = "127.0.0.1"
port = {modbus_port}
unit = 2
interval = {interval}

[[modbus.points]]
name = "kiln_kw"
address = 3059
type = "float32"
unit = "kW"
kind = "power"
"""


def agent_config(
    workdir: Path,
    mqtt_port: int,
    modbus_port: int,
    health_port: int,
    *,
    protocol: str = "3.1.1",
    interval: float = 0.5,
    max_bytes: int = 256 * 1024 * 1024,
    stall_s: float = 10.0,
    kiln_meter: bool = True,
    agent: str = AGENT,
) -> str:
    keys = dict(mqtt_port=mqtt_port, modbus_port=modbus_port, interval=interval)
    return CONFIG.format(
        agent=agent,
        protocol=protocol,
        outbox=workdir / "outbox.db",
        max_bytes=max_bytes,
        health_port=health_port,
        stall_s=stall_s,
        extra=KILN_METER.format(**keys) if kiln_meter else "",
        **keys,
    )


@dataclass
class Simulator:
    proc: subprocess.Popen
    modbus_port: int
    truth: Path


@contextlib.contextmanager
def simulator(workdir: Path) -> Iterator[Simulator]:
    """``kilnwatch sim kiln`` with Modbus only (no OPC UA: faster to start, and not what these tests test)."""
    port, truth = free_port(), workdir / "truth.csv"
    log = (workdir / "sim.log").open("ab")
    proc = subprocess.Popen(
        [*KILNWATCH, "sim", "kiln", "--modbus-port", str(port), "--truth", str(truth), *TRUTH_ROWS],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=60, proc=proc)
        yield Simulator(proc, port, truth)
    finally:
        proc.send_signal(signal.SIGTERM)
        stop(proc)


def start_agent(
    config: Path, log: Path, command: list[str] | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """The agent as the service runs it: ``kilnwatch agent run CONFIG``, JSON logs appended to ``log``."""
    return subprocess.Popen(
        [*(command or [*KILNWATCH, "agent", "run"]), str(config)],
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=None if env is None else os.environ | env,
    )


@contextlib.contextmanager
def broker_down(broker: Mosquitto) -> Iterator[None]:
    """The broker stopped, its port kept: bound but not listening, so connects are refused as with no broker.

    A port nobody holds can be taken while the broker is down: by another process's ``free_port()`` (tests
    run side by side on CI) or by a client's own reconnect picking it as its ephemeral source port (a TCP
    self-connect). Either way the restarted broker fails with "Address already in use". A bound socket keeps
    the port out of both, and is closed just before the broker binds it again.
    """
    broker.stop()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # over the closed connections' TIME_WAIT
    try:
        holder.bind(("127.0.0.1", broker.port))
        yield
    finally:
        holder.close()
    broker.start()


def stop_agent(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


class Wire:
    """An independent subscriber recording every copy of every batch, plus status and birth messages."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.copies: list[tuple[str, int]] = []  # (epoch, seq) of every data message, duplicates included
        self.batches: dict[tuple[str, int], wire.Batch] = {}  # first copy of each
        self.arrival: dict[tuple[str, int], float] = {}  # monotonic time of each first copy
        self.status: list[dict] = []
        self.births: list[dict] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="fault-wire", clean_session=False
        )
        # Subscribe on every connect: a broker restart must not silently end the observation.
        self.client.on_connect = lambda c, *_: c.subscribe(f"{wire.DEFAULT_ROOT}/v1/{SITE}/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the observer's subscription was not acknowledged"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[1]
        with self.lock:
            if kind == "status":
                self.status.append(json.loads(msg.payload))
            elif kind == "birth":
                self.births.append(json.loads(msg.payload))
            else:
                batch = wire.decode_batch(msg.payload)
                key = (batch.epoch, batch.seq)
                self.copies.append(key)
                if key not in self.batches:
                    self.batches[key] = batch
                    self.arrival[key] = time.monotonic()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def distinct(self) -> int:
        with self.lock:
            return len(self.batches)

    def duplicates(self) -> int:
        with self.lock:
            return len(self.copies) - len(self.batches)

    def epochs(self) -> set[str]:
        with self.lock:
            return {epoch for epoch, _ in self.batches}

    def first_seen_seqs(self) -> list[int]:
        """Seqs in the order their first copy arrived: increasing if the wire kept order."""
        with self.lock:
            return list(dict.fromkeys(seq for _, seq in self.copies))

    def states(self) -> list[str]:
        with self.lock:
            return [s["state"] for s in self.status]

    def readings(self, channel: str) -> list[tuple[int, float | None, int]]:
        """(t_ms, value, quality) of ``channel`` over all distinct batches, by time."""
        with self.lock:
            rows = [
                (t, v, q)
                for b in self.batches.values()
                for ch, t, v, q in zip(b.channels, b.t_ms, b.values, b.quality, strict=True)
                if ch == channel
            ]
        return sorted(rows)

    def all_readings(self) -> list[tuple[str, int]]:
        with self.lock:
            return [(ch, t) for b in self.batches.values() for ch, t in zip(b.channels, b.t_ms, strict=True)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def healthz(port: int) -> tuple[int, dict]:
    status, body = http_get(port, "/healthz")
    return status, json.loads(body)


def scrape(port: int) -> dict[str, float]:
    """/metrics as {'name{labels}': value}."""
    _, body = http_get(port, "/metrics")
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def readings_counted(metrics: dict[str, float], device: str) -> int:
    """The agent's own count of the readings its pollers handed over for ``device``, every quality."""
    prefix = f'kilnwatch_readings_total{{device="{device}",'
    return int(sum(value for key, value in metrics.items() if key.startswith(prefix)))


def counter_start(point: str) -> float:
    """What the simulated totaliser ``point`` showed when the simulator started, in the channel's unit."""
    (found,) = [p for p in MODBUS_POINTS if p.name == point]
    return found.start * found.scale


def outbox_state(path: Path) -> tuple[str, int, list[int]]:
    """(epoch, next seq, stored seqs) read straight from the agent's SQLite file."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        seqs = [row[0] for row in db.execute("SELECT seq FROM batches ORDER BY seq")]
    return meta["epoch"], int(meta["next_seq"]), seqs


def log_events(log: Path) -> list[dict]:
    events = []
    for line in log.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            events.append(json.loads(line))
    return events


def gaps(times_ms: list[int]) -> list[float]:
    """Seconds between consecutive readings."""
    return [(b - a) / 1000 for a, b in itertools.pairwise(times_ms)]


class Truth:
    """The simulator's truth CSV: cumulative quantities since its start, linear between rows."""

    def __init__(self, path: Path) -> None:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        self.t = [datetime.fromisoformat(r["t"]).timestamp() * 1000 for r in rows]
        self.columns = {k: [float(r[k]) for r in rows] for k in rows[0] if k != "t"}

    def at(self, column: str, t_ms: float) -> float:
        values, i = self.columns[column], bisect.bisect_right(self.t, t_ms)
        if i == 0 or i == len(self.t):
            raise ValueError(f"{t_ms} is outside the truth file")
        t0, t1 = self.t[i - 1], self.t[i]
        return values[i - 1] + (values[i] - values[i - 1]) * (t_ms - t0) / (t1 - t0)

    def bounds(self, column: str, t_ms: float) -> tuple[float, float]:
        """The truth at the rows either side of ``t_ms`` (equal on a row): a counter's value at ``t_ms`` lies
        between them, because it never decreases. No interpolation, so no assumption about its rate."""
        values, i = self.columns[column], bisect.bisect_left(self.t, t_ms)
        if i == 0 or i == len(self.t):
            raise ValueError(f"{t_ms} is outside the truth file")
        return values[i] if self.t[i] == t_ms else values[i - 1], values[i]

    def start_range(
        self, readings: list[tuple[int, float | None, int]], column: str, step: float
    ) -> tuple[float, float]:
        """The meter start values that every good reading of counter ``column`` allows: (low, high).

        A totaliser shows ``start + truth(s)`` floored to its register ``step``, where ``s`` is the instant
        the simulator answered the request. That instant lies after the channel's previous reading was
        stamped (a poll group's cycles run one after another) and no later than the reading's own stamp (the
        agent stamps when the answer arrives). So a reading ``v`` stamped ``t`` after ``t_prev`` allows
        starts in [v − truth(t), v + step − truth(t_prev)], each truth taken at the row on the safe side
        (``bounds``). The readings agree with the truth and kept their own times if these intervals overlap
        around the start the simulator gave the meter (``counter_start``): low ≤ start ≤ high.

        No stopwatch is involved: a loaded machine that answers late only widens a reading's interval, while
        a reading restamped later than it was taken (e.g. at replay) moves its interval below the others.
        """
        low, high = -float("inf"), float("inf")
        for (t_prev, _, _), (t, v, q) in itertools.pairwise(readings):
            if q != wire.Quality.GOOD or v is None or t >= self.t[-1]:
                continue
            low = max(low, v - self.bounds(column, t)[1])
            high = min(high, v + step - self.bounds(column, t_prev)[0])
        return low, high
