"""MQTT over TLS against a real Mosquitto that requires client certificates (mutual TLS), MQTT 3.1.1 and 5:
the right certificates connect and deliver; no client certificate, or a CA that did not sign the broker's
certificate, is refused with a reason that names the setting to fix, and the outbox keeps every batch."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.outbox import Outbox
from agent.tls import make_context
from tests import servers
from tests.agent.test_publisher import Subscriber, batch_payload, make_publisher, wait_until

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> servers.Pki:
    return servers.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(pki: servers.Pki, tmp_path: Path) -> Iterator[servers.Mosquitto]:
    with servers.mosquitto(tmp_path / "mosquitto", listener_options=pki.tls_listener()) as broker:
        yield broker


def client_context(pki: servers.Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_mutual_tls_delivers(
    protocol: str, pki: servers.Pki, tls_broker: servers.Mosquitto, tmp_path: Path
) -> None:
    sub = Subscriber(tls_broker.port, protocol, tls=client_context(pki))
    outbox = Outbox(tmp_path / "o.db")
    for _ in range(10):
        outbox.append(lambda s: batch_payload(s, outbox.epoch))
    publisher = make_publisher(
        tls_broker,
        outbox,
        protocol=protocol,
        tls=True,
        ca_file=pki.ca,
        cert_file=pki.client_cert,
        key_file=pki.client_key,
    )
    publisher.start()
    try:
        assert wait_until(lambda: len(sub.data()) == 10 and len(outbox) == 0, 15)
        assert [json.loads(p)["seq"] for p in sub.data()] == list(range(10))
        assert publisher.status()["tls"] is True and publisher.last_error is None
    finally:
        publisher.stop()
        assert wait_until(lambda: sub.states()[-1:] == ["offline"], 5)
        sub.close()
        outbox.close()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_without_a_client_certificate_the_broker_refuses(
    protocol: str, pki: servers.Pki, tls_broker: servers.Mosquitto, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "o.db")
    outbox.append(lambda s: batch_payload(s, outbox.epoch))
    publisher = make_publisher(tls_broker, outbox, protocol=protocol, tls=True, ca_file=pki.ca)
    publisher.start()
    try:
        assert wait_until(lambda: publisher.last_error is not None, 15)
        assert "TLSV13_ALERT_CERTIFICATE_REQUIRED" in publisher.last_error
        assert "set mqtt.cert_file and mqtt.key_file" in publisher.last_error
        assert not publisher.connected.is_set() and len(outbox) == 1
    finally:
        publisher.stop(drain_timeout=0.1)
        outbox.close()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_a_wrong_ca_is_refused_with_the_fix(
    protocol: str, pki: servers.Pki, tls_broker: servers.Mosquitto, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "o.db")
    keys = dict(tls=True, ca_file=pki.other_ca, cert_file=pki.client_cert, key_file=pki.client_key)
    publisher = make_publisher(tls_broker, outbox, protocol=protocol, **keys)
    publisher.start()
    try:
        assert wait_until(lambda: publisher.last_error is not None, 15)
        assert publisher.last_error.startswith("TLS failed (CERTIFICATE_VERIFY_FAILED")
        assert "mqtt.ca_file must hold the CA that signed it" in publisher.last_error
        assert not publisher.connected.is_set()
    finally:
        publisher.stop(drain_timeout=0.1)
        outbox.close()


def test_agent_process_logs_why_tls_fails(
    pki: servers.Pki, tls_broker: servers.Mosquitto, tmp_path: Path
) -> None:
    """What an operator sees in the journal: one warning per outage naming the reason and the key to fix."""
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""[agent]
id = "gw1"
site = "plant1"

[mqtt]
port = {tls_broker.port}
tls = true
ca_file = "{pki.other_ca}"
cert_file = "{pki.client_cert}"
key_file = "{pki.client_key}"

[health]
listen = ""
"""
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "agent", "run", str(config)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    try:
        lines: list[str] = []
        while not any("cannot connect to broker" in line for line in lines):
            line = agent.stderr.readline()
            assert line, f"agent exited without the warning: {lines}"
            lines.append(line)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.communicate(timeout=20)
    warning = json.loads(next(line for line in lines if "cannot connect to broker" in line))
    assert warning["level"] == "warning" and "CERTIFICATE_VERIFY_FAILED" in warning["reason"]
    assert "mqtt.ca_file" in warning["reason"]


def test_tls_settings_are_validated_at_load(pki: servers.Pki, tmp_path: Path) -> None:
    def problems(mqtt: str) -> str:
        path = tmp_path / "agent.toml"
        path.write_text(f'[agent]\nid = "gw1"\nsite = "plant1"\n\n[mqtt]\n{mqtt}\n')
        with pytest.raises(ConfigError) as err:
            load_config(path)
        return str(err.value)

    path = tmp_path / "agent.toml"
    assert problems(f'ca_file = "{pki.ca}"') == (
        f"{path}: mqtt: tls is off but ca_file is set: set tls = true, or remove it"
    )
    assert problems(f'tls = true\ncert_file = "{pki.client_cert}"') == (
        f"{path}: mqtt: cert_file and key_file go together: set both, or neither"
    )
    missing = tmp_path / "nope.pem"
    assert problems(f'tls = true\nca_file = "{missing}"').startswith(
        f"{path}: mqtt.ca_file: '{missing}' is not a readable file: fix the path"
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert f"mqtt: ca_file '{garbage}': not a PEM CA certificate" in problems(
        f'tls = true\nca_file = "{garbage}"'
    )
    mixed = f'tls = true\ncert_file = "{pki.client_cert}"\nkey_file = "{pki.server_key}"'
    assert "cannot load" in problems(mixed) and "belong together" in problems(mixed)
    assert problems('password = "x"').endswith(
        "mqtt: password needs username: set username, or remove password"
    )
    path.write_text(
        f'[agent]\nid = "gw1"\nsite = "plant1"\n\n[mqtt]\ntls = true\nport = 8883\nca_file = "{pki.ca}"\n'
        f'cert_file = "{pki.client_cert}"\nkey_file = "{pki.client_key}"\ninsecure = true\n'
    )
    mqtt = load_config(path).mqtt
    assert mqtt.tls and mqtt.ca_file == pki.ca
    assert make_context(mqtt.ca_file, None, None, insecure=True).check_hostname is False
    assert make_context(None, None, None, insecure=False).verify_mode == ssl.CERT_REQUIRED
