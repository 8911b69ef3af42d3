"""OPC UA security against the simulated DCS run with certificates: every policy and mode, username and X.509
logins, the persistent client certificate, and the server trust list (reject, name the file, TOFU)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.sources.opcua.config import OpcuaServer
from agent.sources.opcua.poller import OpcuaPoller
from agent.sources.opcua.probe import probe_opcua
from agent.sources.opcua.security import (
    CLIENT_CERT,
    CLIENT_KEY,
    SecurityError,
    load_or_create_identity,
)
from agent.sources.reading import Reading
from agent.wire import Quality
from simulators.kiln.opcua_server import ALL_POLICIES, SERVER_CERT, ensure_server_certificate
from tests.servers import free_port, stop, wait_for_port

FEED = "nsu=urn:kilnwatch:sim:dcs;s=KilnLine1.KilnFeed_tph"


@dataclass
class SecureDcs:
    url: str
    server_cert: Path
    agent_dir: Path  # the agent's cert_dir: its certificate (also a login certificate) and trusted/


@pytest.fixture(autouse=True)
def quiet_asyncua() -> None:
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)


@pytest.fixture(scope="module")
def dcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureDcs]:
    """One secured simulator process for the module: every policy (and None), user op/pw, and the agent's
    certificate as a login certificate; no anonymous logins."""
    root = tmp_path_factory.mktemp("opcua-pki")
    agent_dir, server_dir = root / "agent", root / "server"
    identity = load_or_create_identity(agent_dir, None)
    server_cert = ensure_server_certificate(server_dir)
    (agent_dir / "trusted").mkdir()
    shutil.copy(server_cert, agent_dir / "trusted" / "dcs.der")
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "simulators.kiln.opcua_server",
        "--port",
        str(port),
        "--cert-dir",
        str(server_dir),
    ]
    cmd += [arg for policy in (*ALL_POLICIES, "None") for arg in ("--policy", policy)]
    cmd += ["--user", "op:pw", "--user-cert", str(identity.cert)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, 60, proc)
        yield SecureDcs(f"opc.tcp://127.0.0.1:{port}/kilnwatch/dcs", server_cert, agent_dir)
    finally:
        stop(proc)


def probe(dcs: SecureDcs, **security: Any) -> list[tuple[str, object, str]]:
    return asyncio.run(probe_opcua(dcs.url, [FEED], 4.0, **security))


@pytest.mark.parametrize(("policy", "mode"), [("None", "None")] + [tuple(p.split(":")) for p in ALL_POLICIES])
def test_every_policy_and_mode_connects(dcs: SecureDcs, policy: str, mode: str) -> None:
    login = {"username": "op", "password": "pw", "cert_dir": str(dcs.agent_dir)}
    [(_, value, status)] = probe(dcs, security_policy=policy, security_mode=mode, **login)
    assert status == "Good" and isinstance(value, float) and 300 < value < 360


@pytest.mark.parametrize(
    "settings",
    [
        {
            "security_policy": "Basic256Sha256",
            "security_mode": "SignAndEncrypt",
            "username": "op",
            "password": "pw",
        },
        {"security_policy": "Aes256Sha256RsaPss", "security_mode": "Sign", "auth": "certificate"},
    ],
    ids=["Basic256Sha256-SignAndEncrypt-username", "Aes256Sha256RsaPss-Sign-certificate"],
)
def test_poller_subscribes_over_a_secure_channel(dcs: SecureDcs, settings: dict[str, str]) -> None:
    config = OpcuaServer.model_validate(
        {
            "name": "dcs",
            "endpoint": dcs.url,
            "mode": "subscribe",
            "publishing_interval": 0.2,
            "cert_dir": str(dcs.agent_dir),
            "points": [{"name": "feed", "node": FEED}],
            **settings,
        }
    )

    async def scenario() -> list[Reading]:
        readings: list[Reading] = []
        task = asyncio.create_task(OpcuaPoller(config, readings.extend).run())
        deadline = time.monotonic() + 20
        while sum(r.quality == Quality.GOOD for r in readings) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return readings

    readings = asyncio.run(scenario())
    assert sum(r.quality == Quality.GOOD for r in readings) >= 3
    assert all(r.quality == Quality.GOOD for r in readings)  # no failed attempt on the way


def test_wrong_password_and_unknown_login_certificate_are_refused(dcs: SecureDcs, tmp_path: Path) -> None:
    common = {"security_policy": "Basic256Sha256", "cert_dir": str(dcs.agent_dir)}
    with pytest.raises(ConnectionError, match="BadUserAccessDenied"):
        probe(dcs, username="op", password="wrong", **common)
    other = load_or_create_identity(tmp_path / "other", None)
    with pytest.raises(ConnectionError, match="BadUserAccessDenied"):
        probe(dcs, auth="certificate", user_certificate=str(other.cert), user_key=str(other.key), **common)


def test_untrusted_server_certificate_is_rejected_naming_the_file_to_trust(
    dcs: SecureDcs, tmp_path: Path
) -> None:
    settings = {
        "security_policy": "Basic256Sha256",
        "cert_dir": str(tmp_path),
        "username": "op",
        "password": "pw",
    }
    with pytest.raises(SecurityError, match="is not trusted") as caught:
        probe(dcs, **settings)
    rejected = tmp_path / "rejected" / next((tmp_path / "rejected").iterdir()).name
    message = str(caught.value)
    assert f"move {rejected} into {tmp_path / 'trusted'}/" in message
    assert rejected.read_bytes() == dcs.server_cert.read_bytes()
    # Both folders exist from the first run, so the instruction works as written ("cp x trusted" into a
    # missing folder would make a file named "trusted").
    assert (tmp_path / "trusted").is_dir()
    shutil.move(rejected, tmp_path / "trusted")  # what the operator does after checking the fingerprint
    assert probe(dcs, **settings)[0][2] == "Good"


def test_accept_first_pins_the_first_certificate_and_refuses_a_changed_one(
    dcs: SecureDcs, tmp_path: Path
) -> None:
    settings = {
        "security_policy": "Aes128Sha256RsaOaep",
        "cert_dir": str(tmp_path),
        "accept_first": True,
        "username": "op",
        "password": "pw",
    }
    assert probe(dcs, **settings)[0][2] == "Good"
    pinned = tmp_path / "trusted" / "probe.der"
    assert pinned.read_bytes() == dcs.server_cert.read_bytes()
    # Pretend the first contact was an impostor: its certificate is pinned, so the real one is refused.
    key = cert_gen.generate_private_key()
    uri = [x509.UniformResourceIdentifier("urn:impostor")]
    impostor = cert_gen.generate_self_signed_app_certificate(
        key, "x", {}, uri, [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    pinned.write_bytes(impostor.public_bytes(Encoding.DER))
    with pytest.raises(SecurityError, match="is not trusted"):
        probe(dcs, **settings)


def test_client_certificate_is_made_once_and_reused(tmp_path: Path) -> None:
    first = load_or_create_identity(tmp_path, "urn:plant1:kiln-gw")
    cert_bytes = first.cert.read_bytes()
    assert (first.cert.name, first.key.name) == (CLIENT_CERT, CLIENT_KEY)
    assert first.key.stat().st_mode & 0o777 == 0o600
    cert = x509.load_der_x509_certificate(cert_bytes)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:plant1:kiln-gw"]
    again = load_or_create_identity(tmp_path, None)  # a restart: same pair, URI taken from the certificate
    assert again.application_uri == "urn:plant1:kiln-gw" and again.cert.read_bytes() == cert_bytes
    with pytest.raises(SecurityError, match="set application_uri = 'urn:plant1:kiln-gw'"):
        load_or_create_identity(tmp_path, "urn:other")
    first.key.unlink()
    with pytest.raises(SecurityError, match=f"{CLIENT_KEY} is missing"):
        load_or_create_identity(tmp_path, None)


def test_server_certificate_file_is_kept_across_simulator_restarts(tmp_path: Path) -> None:
    made = ensure_server_certificate(tmp_path)
    assert made.name == SERVER_CERT
    before = made.read_bytes()
    assert ensure_server_certificate(tmp_path).read_bytes() == before
