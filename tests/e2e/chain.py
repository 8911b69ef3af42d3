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
    """Counts distinct batches and readings on the wire, and each channel's first/last good reading."""

    port: int
    batches: set[tuple[str, int]] = field(default_factory=set)
    readings: int = 0
    windows: dict[str, list[int]] = field(default_factory=dict)
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
                if q == wire.Quality.GOOD and v is not None:
                    w = self.windows.setdefault(ch, [t, t])
                    w[0], w[1] = min(w[0], t), max(w[1], t)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@contextlib.contextmanager
def live_plant(
    workdir: Path, broker_port: int, sim_args: tuple[str, ...] = ()
) -> Iterator[tuple[Path, Observer, subprocess.Popen]]:
    """Simulator (with ``sim_args`` added) + observer + agent; yields (truth file, observer, agent)."""
    modbus, opcua = free_port(), free_port()
    truth = workdir / "truth.csv"
    sim_log = (workdir / "sim.log").open("ab")
    sim = subprocess.Popen(
        [
            *KILNWATCH,
            "sim",
            "kiln",
            "--modbus-port",
            str(modbus),
            "--opcua-port",
            str(opcua),
            "--truth",
            str(truth),
            *sim_args,
        ],
        stdout=sim_log,
        stderr=subprocess.STDOUT,
    )
    observer = None
    agent = None
    try:
        wait_for_port(modbus, timeout=30, proc=sim)
        wait_for_port(opcua, timeout=30, proc=sim)
        observer = Observer(broker_port)
        env = os.environ | {
            "KILNWATCH_MODBUS_PORT": str(modbus),
            "KILNWATCH_OPCUA_ENDPOINT": f"opc.tcp://127.0.0.1:{opcua}/kilnwatch/dcs",
            "KILNWATCH_MQTT_PORT": str(broker_port),
            "KILNWATCH_OUTBOX": str(workdir / "outbox.sqlite"),
        }
        agent_log = (workdir / "agent.log").open("ab")
        agent = subprocess.Popen(
            [*KILNWATCH, "agent", "run", str(REPO / "deploy" / "demo" / "agent.toml")],
            stdout=agent_log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        yield truth, observer, agent
    finally:
        if agent is not None:
            stop(agent)
        if observer is not None:
            observer.close()
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
