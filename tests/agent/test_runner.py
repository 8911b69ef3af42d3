"""The whole agent: a pymodbus server → run_agent → real Mosquitto, read back by a subscriber; and the CLI."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from typer.testing import CliRunner

from agent import wire
from agent.commands import agent_app
from agent.config import ConfigError, load_config
from agent.runner import run_agent, stall_limits
from tests.agent.modbus_server import modbus_server
from tests.servers import Mosquitto, free_port

CONFIG = """
[agent]
id = "gw1"
site = "plant1"
batch_interval = 0.5

[mqtt]
port = {broker}
protocol = "{protocol}"

[health]
listen = ""

[outbox]
path = "outbox.db"

[[modbus]]
name = "feeder"
host = "127.0.0.1"
port = {modbus}
order = "CDAB"
interval = 0.25

[[modbus.points]]
name = "coal_t"
address = 0
type = "uint32"
scale = 0.001
unit = "t"
kind = "mass_total"

[[modbus.points]]
name = "coal_tph"
address = 2
type = "float32"
unit = "t/h"
kind = "mass_rate"
"""


def subscribe(port: int) -> tuple[mqtt.Client, dict[str, list[bytes]]]:
    got: dict[str, list[bytes]] = {"data": [], "birth": [], "status": []}
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="runner-sub", clean_session=False)
    client.on_connect = lambda c, *_: c.subscribe("kilnwatch/v1/plant1/#", qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda c, u, m: got[m.topic.rsplit("/", 1)[1]].append(m.payload)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert ready.wait(10)
    return client, got


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_agent_publishes_decoded_readings_and_goes_offline(
    protocol: str, broker: Mosquitto, tmp_path: Path
) -> None:
    modbus = free_port()
    path = tmp_path / "agent.toml"
    path.write_text(CONFIG.format(broker=broker.port, modbus=modbus, protocol=protocol))
    config = load_config(path)
    client, got = subscribe(broker.port)

    async def scenario() -> None:
        stop = asyncio.Event()
        async with modbus_server(modbus):
            agent = asyncio.create_task(run_agent(config, stop))
            await asyncio.sleep(3.0)
            stop.set()
            await agent

    asyncio.run(scenario())
    client.disconnect()
    client.loop_stop()

    batches = [wire.decode_batch(p) for p in got["data"]]
    assert len(batches) >= 4
    assert [b.seq for b in batches] == list(range(len(batches)))
    assert {b.agent for b in batches} == {"gw1"} and len({b.epoch for b in batches}) == 1
    readings = [(c, v, q) for b in batches for c, v, q in zip(b.channels, b.values, b.quality, strict=True)]
    assert {c for c, _, _ in readings} == {"coal_t", "coal_tph"}
    # tests/agent/modbus_server.py holds 4_277_000_123 kg and 42.5 t/h, low word first.
    assert {(c, round(v, 3), q) for c, v, q in readings} == {
        ("coal_t", 4_277_000.123, 0),
        ("coal_tph", 42.5, 0),
    }
    birth = json.loads(got["birth"][-1])
    assert [ch["name"] for ch in birth["channels"]] == ["coal_t", "coal_tph"]
    assert birth["channels"][0] == {
        "name": "coal_t",
        "kind": "mass_total",
        "unit": "t",
        "device": "feeder",
        "source": "modbus",
    }
    assert [json.loads(s)["state"] for s in got["status"]][-1] == "offline"
    assert (tmp_path / "outbox.db").exists()


def test_check_prints_requests_and_errors_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(CONFIG.format(broker=1883, modbus=5020, protocol="3.1.1"))
    result = CliRunner().invoke(agent_app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "feeder: 127.0.0.1:5020 unit 1" in result.output
    assert "2 points in 1 request(s) (FC3 0+4)" in result.output

    path.write_text(
        CONFIG.format(broker=1883, modbus=5020, protocol="3.1.1").replace(
            'type = "float32"', 'type = "float"'
        )
    )
    result = CliRunner().invoke(agent_app, ["check", str(path)])
    assert result.exit_code == 2
    assert f"{path}: modbus[0].points[1].type: expected one of" in result.stderr


@pytest.mark.parametrize("command", ["check", "run"])
def test_missing_config_exits_2(command: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(agent_app, [command, str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "cannot read the file" in result.stderr


def test_operations_settings_are_validated(tmp_path: Path) -> None:
    """replay_rate must let a backlog drain; health.listen must be host:port (or "" for off)."""
    path = tmp_path / "agent.toml"
    base = CONFIG.format(broker=1883, modbus=5020, protocol="5")

    def problems(text: str) -> list[str]:
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_config(path)
        return err.value.problems

    assert problems(base.replace("[outbox]", "[outbox]\nreplay_rate = 3")) == [
        f"{path}: outbox: replay_rate 3 batches/s must be at least twice the live rate (1 batch per "
        "agent.batch_interval = 0.5 s) so a backlog drains: raise it to 4 or more"
    ]
    assert problems(base.replace('listen = ""', 'listen = "9108"')) == [
        f"{path}: health.listen: '9108' is not host:port: write e.g. '127.0.0.1:9108', or \"\" for off"
    ]
    path.write_text(base.replace('listen = ""', 'listen = "[::1]:9200"\nstall_s = 30'))
    config = load_config(path)
    assert config.health.address == ("::1", 9200) and config.outbox.replay_rate == 2000
    # A device may go stall_s plus three intervals without a cycle before /healthz fails.
    assert stall_limits(config) == {"feeder": 30.75}
