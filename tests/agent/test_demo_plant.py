"""End to end: deploy/demo/agent.toml against the live simulated plant and a real Mosquitto."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent import wire
from agent.config import load_config
from tests.servers import Mosquitto, free_port, stop, wait_for_port

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "deploy" / "demo" / "agent.toml"

# Plausible bands around the operating point of docs/demo-plant.md (rates wander a few per cent).
BANDS = {
    "clinker_tph": (180, 240),
    "dcs_clinker_tph": (180, 240),
    "dcs_kiln_feed_tph": (280, 380),
    "coal_kiln_tph": (8, 15),
    "coal_calciner_tph": (13, 21),
    "kiln_kw": (4500, 6300),
    "raw_mill_kw": (3000, 4600),
    "whr_kw": (6000, 8600),
    "cement_mill_kw": (7000, 9700),
    "aux_kw": (40, 80),
    "dcs_coal_ncv": (20, 26),
}


@pytest.mark.slow
def test_demo_agent_reads_the_simulated_plant(broker: Mosquitto, tmp_path: Path) -> None:
    modbus, opcua = free_port(), free_port()
    kilnwatch = [sys.executable, "-c", "from agent.cli import main; main()"]
    sim = subprocess.Popen(
        [*kilnwatch, "sim", "kiln", "--modbus-port", str(modbus), "--opcua-port", str(opcua),
         "--truth", str(tmp_path / "truth.csv")],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "sim.log").open("wb"),
    )  # fmt: skip
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-sub", clean_session=False)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect("127.0.0.1", broker.port)
    client.subscribe(wire.data_topic("demo-plant", "kiln-gw"), qos=1)
    client.loop_start()
    env = {
        **os.environ,
        "KILNWATCH_MODBUS_PORT": str(modbus),
        "KILNWATCH_OPCUA_ENDPOINT": f"opc.tcp://127.0.0.1:{opcua}/kilnwatch/dcs",
        "KILNWATCH_MQTT_PORT": str(broker.port),
        "KILNWATCH_OUTBOX": str(tmp_path / "outbox.db"),
    }
    agent = None
    try:
        wait_for_port(modbus, timeout=30, proc=sim)
        wait_for_port(opcua, timeout=30, proc=sim)
        agent = subprocess.Popen(
            [*kilnwatch, "agent", "run", str(DEMO)], env=env, stderr=(tmp_path / "agent.log").open("wb")
        )
        deadline = time.monotonic() + 30
        names = {p.name for d in load_config(DEMO).modbus for p in d.points}
        names |= {p.name for s in load_config(DEMO).opcua for p in s.points}
        latest: dict[str, tuple[float | None, int]] = {}
        while time.monotonic() < deadline and not (
            latest.keys() == names and all(q == 0 for _, q in latest.values())
        ):
            time.sleep(0.5)
            for payload in list(got):
                batch = wire.decode_batch(payload)
                latest.update(zip(batch.channels, zip(batch.values, batch.quality, strict=True), strict=True))
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0
    finally:
        if agent is not None:
            stop(agent)
        stop(sim)
        client.disconnect()
        client.loop_stop()

    assert latest.keys() == names, (tmp_path / "agent.log").read_text()[-2000:]
    assert all(q == 0 for _, q in latest.values()), latest
    for name, (low, high) in BANDS.items():
        assert low <= latest[name][0] <= high, (name, latest[name])
    assert all(latest[n][0] > 0 for n in names if n.endswith(("_kwh", "_t")))  # counters start non-zero
