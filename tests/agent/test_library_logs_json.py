"""The protocol libraries' own log records (asyncua, pymodbus, paho log through stdlib ``logging``) come out
as JSON lines like the agent's events, so a log shipper can parse every line of the agent's stderr.

What this prevents: a plain-text ``WARNING:asyncua...`` line, or a multi-line Python traceback from a
library's ``logger.exception``, in the middle of the JSON log: the shipper drops or splits it, and the one
line that says why a server went away is lost.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import structlog

from agent import logs, wire
from tests.servers import Mosquitto, free_port, stop, wait_for_port

NSU = "nsu=urn:kilnwatch:sim:dcs;s=KilnLine1."


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo ``logs.configure``: root handlers and level, library levels, structlog, the except hooks."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    libraries = {name: logging.getLogger(name).level for name in logs.LIBRARY_LOGGERS}
    config = structlog.get_config()
    hooks = sys.excepthook, threading.excepthook
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, lib_level in libraries.items():
            logging.getLogger(name).setLevel(lib_level)
        structlog.configure(**config)
        sys.excepthook, threading.excepthook = hooks
        logging.captureWarnings(False)
        logs._handler = None


def configured_json(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    logs.configure("info", json=True)
    return out


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_stdlib_library_warning_is_one_json_line_with_its_logger_name(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = configured_json(monkeypatch)
    logging.getLogger("asyncua.client.ua_session").warning(
        "close_session was called but %s", "connection is closed"
    )
    logging.getLogger("asyncua").info("one socket opened")  # library INFO is below the libraries' level
    logging.getLogger("pymodbus.logging").warning("Connection to (%s, %d) failed", "127.0.0.1", 502)
    [asyncua, pymodbus] = lines(out)
    assert asyncua["logger"] == "asyncua.client.ua_session"
    assert asyncua["event"] == "close_session was called but connection is closed"
    assert asyncua["level"] == "warning" and asyncua["timestamp"].endswith("Z")
    assert (
        pymodbus["logger"] == "pymodbus.logging"
        and pymodbus["event"] == "Connection to (127.0.0.1, 502) failed"
    )


def test_a_library_exception_traceback_is_one_field_of_one_json_line(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = configured_json(monkeypatch)
    try:
        raise ConnectionError("Connection is closed")
    except ConnectionError:
        logging.getLogger("asyncua.client.ua_session.UaSession").exception("Publish iteration crashed")
    [line] = lines(out)
    assert line["logger"] == "asyncua.client.ua_session.UaSession"
    assert line["level"] == "error" and line["event"] == "Publish iteration crashed"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].rstrip().endswith("ConnectionError: Connection is closed")


# The whole agent, `kilnwatch agent run`, as a process: a DCS that goes away makes asyncua log, and a Modbus
# meter that is not there makes pymodbus log.

CONFIG = """
[agent]
id = "gw1"
site = "plant1"
batch_interval = 0.25

[mqtt]
port = {broker}

[outbox]
path = "outbox.db"

[health]
listen = "127.0.0.1:{health}"

[[modbus]]
name = "m1"
host = "127.0.0.1"
port = {modbus}
profile = "schneider-pm5100"

[[opcua]]
name = "dcs"
endpoint = "opc.tcp://127.0.0.1:{dcs}/kilnwatch/dcs"
mode = "subscribe"
interval = 0.2
publishing_interval = 0.2

[[opcua.points]]
name = "dcs_feed"
node = "{nsu}KilnFeed_tph"

[[opcua.points]]
name = "dcs_fan"
node = "{nsu}IDFan_kW"
mode = "poll"
"""


@contextlib.contextmanager
def good_readings(port: int) -> Iterator[set[str]]:
    """Channels of which the broker delivered a GOOD reading on the site's data topic."""
    seen: set[str] = set()
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="logs-test")
    client.on_connect = lambda c, *_: c.subscribe(wire.data_topic("plant1", "gw1"), qos=1)
    client.on_subscribe = lambda *_: ready.set()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        batch = wire.decode_batch(message.payload)
        seen.update(ch for ch, q in zip(batch.channels, batch.quality, strict=True) if q == wire.Quality.GOOD)

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert ready.wait(10)
        yield seen
    finally:
        client.loop_stop()
        client.disconnect()


def wait_until(predicate: object, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert proc.poll() is None, f"the agent exited with {proc.returncode} while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_agent_stderr_stays_json_lines_when_a_vanishing_server_makes_asyncua_log(
    tmp_path: Path, broker: Mosquitto
) -> None:
    dcs_port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(
        CONFIG.format(broker=broker.port, health=free_port(), modbus=free_port(), dcs=dcs_port, nsu=NSU)
    )
    dcs = subprocess.Popen(
        [sys.executable, "-m", "simulators.kiln.opcua_server", "--port", str(dcs_port), "--tick", "0.2"],
        stdout=subprocess.DEVNULL,
    )
    agent: subprocess.Popen | None = None
    stderr: list[str] = []
    try:
        wait_for_port(dcs_port, 60, dcs)
        with good_readings(broker.port) as good:
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "agent", "run", str(config)],
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            reader = threading.Thread(target=lambda: stderr.extend(agent.stderr), daemon=True)  # type: ignore[union-attr]
            reader.start()
            wait_until(lambda: {"dcs_feed", "dcs_fan"} <= good, 60, "GOOD readings of both nodes", agent)
            dcs.send_signal(signal.SIGKILL)  # the DCS loses power while subscribed and polled
            dcs.wait()
            wait_until(
                lambda: any('"logger": "asyncua' in line for line in stderr), 30, "an asyncua line", agent
            )
            wait_until(
                lambda: any("server not available" in line for line in stderr), 30, "the agent's line", agent
            )
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
            reader.join(10)
    finally:
        stop(dcs)
        if agent is not None:
            stop(agent)
    assert agent.returncode == 0, "".join(stderr)
    records = []
    for line in stderr:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line on the agent's stderr: {line!r}\n{''.join(stderr)}")
    assert all(isinstance(r, dict) and {"event", "level", "logger", "timestamp"} <= r.keys() for r in records)
    library = [r for r in records if r["logger"].startswith(("asyncua", "pymodbus", "paho"))]
    assert any(r["logger"].startswith("asyncua") for r in library), "".join(stderr)
    assert any(r["logger"].startswith("pymodbus") for r in library), "".join(stderr)
    assert all(r["level"] in ("warning", "error", "critical") for r in library)  # no library INFO chatter
    for r in records:
        if "exception" in r:
            assert r["exception"].startswith("Traceback"), r
    names = sorted({r["logger"] for r in library})
    print(f"\n{len(records)} JSON lines, {len(library)} from libraries: {names}")
    for r in library:
        print("  ", json.dumps(r)[:300])
