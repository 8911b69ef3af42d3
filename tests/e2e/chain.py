"""The live chain for end-to-end tests: simulator and agent as processes, real Mosquitto, the collector.

An independent observer subscribes to the broker before the agent starts and records every batch the agent
published, so "every reading arrived" and "the KPIs match the truth over the same window" are checked against
what actually went over the wire, not against the collector's own counters.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

from agent import wire
from tests.servers import free_port, stop, wait_for_port

REPO = Path(__file__).resolve().parents[2]
KILNWATCH = [sys.executable, "-m", "agent.cli"]


@dataclass
class Observer:
    """Counts distinct batches and readings on the wire, and each channel's first/last good reading.

    ``series`` keeps every reading of each channel as (t_ms, value, quality), for checks reading by reading.
    """

    port: int
    batches: set[tuple[str, int]] = field(default_factory=set)
    readings: int = 0
    windows: dict[str, list[int]] = field(default_factory=dict)
    series: dict[str, list[tuple[int, float | None, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="observer", clean_session=False)
        subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", self.port)
        self.client.subscribe(wire.subscription("data"), qos=1)
        self.client.loop_start()
        assert subscribed.wait(10), "the observer's subscription was not acknowledged"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        batch = wire.decode_batch(msg.payload)
        with self.lock:
            if (batch.epoch, batch.seq) in self.batches:
                return
            self.batches.add((batch.epoch, batch.seq))
            self.readings += len(batch)
            for ch, t, v, q in zip(batch.channels, batch.t_ms, batch.values, batch.quality, strict=True):
                self.series.setdefault(ch, []).append((t, v, q))
                if q == wire.Quality.GOOD and v is not None:
                    w = self.windows.setdefault(ch, [t, t])
                    w[0], w[1] = min(w[0], t), max(w[1], t)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def good(self, channel: str) -> list[tuple[int, float, int | None]]:
        """(t_ms, value, previous stamp) of the channel's good readings, by time; None before the first.

        The previous stamp (of the channel's previous reading, good or not) bounds when the meter was read: a
        poll group's cycles run one after another, so the request went out after the previous reading was
        stamped, and the agent stamps a reading when its answer arrives. The meter was read in (previous
        stamp, own stamp], however slowly a loaded machine answered.
        """
        with self.lock:
            rows = sorted(self.series[channel])
        previous = [None, *(t for t, _, _ in rows[:-1])]
        return [
            (t, v, t_prev)
            for (t, v, q), t_prev in zip(rows, previous, strict=True)
            if q == wire.Quality.GOOD and v is not None
        ]


@contextlib.contextmanager
def live_plant(
    workdir: Path, broker_port: int, sim_args: tuple[str, ...] = (), agent_first: bool = False
) -> Iterator[tuple[Path, Observer, subprocess.Popen]]:
    """Simulator (with ``sim_args`` added) + observer + agent; yields (truth file, observer, agent).

    ``agent_first``: start the agent before the simulator and wait for its first batch (of BAD readings: no
    meter answers yet). For tests of events the simulator stages at fixed times after it starts (a rollover, a
    meter exchange): the agent's start-up, which a loaded machine stretches by many seconds, then happens
    before the simulator's clock starts, and cannot run past the events. Once the meters answer, the agent's
    next retry comes within its backoff, which doubles from the poll interval and so is at most about as long
    as the simulator took to start.
    """
    modbus, opcua = free_port(), free_port()
    truth = workdir / "truth.csv"
    observer = None
    agent = None
    sim = None
    env = os.environ | {
        "KILNWATCH_MODBUS_PORT": str(modbus),
        "KILNWATCH_OPCUA_ENDPOINT": f"opc.tcp://127.0.0.1:{opcua}/kilnwatch/dcs",
        "KILNWATCH_MQTT_PORT": str(broker_port),
        "KILNWATCH_OUTBOX": str(workdir / "outbox.sqlite"),
    }

    def start_agent() -> subprocess.Popen:
        return subprocess.Popen(
            [*KILNWATCH, "agent", "run", str(REPO / "deploy" / "demo" / "agent.toml")],
            stdout=(workdir / "agent.log").open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
        )

    try:
        observer = Observer(broker_port)
        if agent_first:
            agent = start_agent()
            wait_until(lambda: observer.batches or agent.poll() is not None, 60, "the agent's first batch")
            assert agent.poll() is None, "the agent died at start"
        sim = subprocess.Popen(
            [*KILNWATCH, "sim", "kiln", "--modbus-port", str(modbus), "--opcua-port", str(opcua),
             "--truth", str(truth), "--truth-interval", "0.1", *sim_args],
            stdout=(workdir / "sim.log").open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(modbus, timeout=30, proc=sim)
        wait_for_port(opcua, timeout=30, proc=sim)
        if agent is None:
            agent = start_agent()
        yield truth, observer, agent
    finally:
        if agent is not None:
            stop(agent)
        if observer is not None:
            observer.close()
        if sim is not None:
            sim.send_signal(signal.SIGTERM)
            stop(sim)


def wait_until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def read_truth(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    t = np.array([datetime.fromisoformat(r["t"]).timestamp() * 1000 for r in rows])
    return t, {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k != "t"}


def true_quantity(truth, column: str, window_ms: list[int]) -> float:
    """The simulator's exact integral of ``column`` between a channel's first and last reading."""
    t, cols = truth
    return float(np.interp(window_ms[1], t, cols[column]) - np.interp(window_ms[0], t, cols[column]))


def truth_bounds(truth, column: str, t_ms: float) -> tuple[float, float]:
    """The truth at the rows either side of ``t_ms`` (equal on a row; the first or last row outside them): a
    counter's value at ``t_ms`` lies between them, because it never decreases. No interpolation."""
    t, cols = truth
    i = int(np.searchsorted(t, t_ms, side="left"))
    after = cols[column][min(i, len(t) - 1)]
    before = after if i < len(t) and t[i] == t_ms else cols[column][max(i - 1, 0)]
    return float(before), float(after)


def start_range(
    truth, column: str, rows: list[tuple[int, float, int | None]], step: float
) -> tuple[float, float]:
    """The counter starts (its value where the truth is 0) that all ``rows`` allow: (low, high).

    A totaliser shows ``start + truth(s)`` floored to its register ``step``, read at an instant ``s`` in
    (previous stamp, own stamp] (``Observer.good``); so a reading ``v`` allows starts in
    [v − truth(own stamp), v + step − truth(previous stamp)], each truth taken at the row on the safe side
    (``truth_bounds``; the simulator writes a row every 0.1 s). Rows without a previous stamp bound only from
    below. A loaded machine widens the intervals; it cannot move them apart.
    """
    low, high = -float("inf"), float("inf")
    for t, v, t_prev in rows:
        low = max(low, v - truth_bounds(truth, column, t)[1])
        if t_prev is not None:
            high = min(high, v + step - truth_bounds(truth, column, t_prev)[0])
    return low, high
