"""A server that does not trust the agent's client certificate, as most plant servers do on first contact.

The server is the simulated DCS (a real asyncua server) with ``refuse_untrusted``: it answers CreateSession
with BadCertificateUntrusted for a client certificate not in its ``trusted`` folder, which it reads again at
every connect. What this prevents: asyncua's bare "BadCertificateUntrusted" (or an AssertionError, or a
closed socket, from other servers) reaching the operator with no hint that the fix is on the server, and which
file to trust there; a first run that tells the operator to move a file into a folder that does not exist; an
agent that must be restarted once the server trusts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.sources.opcua.config import OpcuaServer
from agent.sources.opcua.connection import close_client, open_session
from agent.sources.opcua.poller import OpcuaPoller
from agent.sources.opcua.security import CLIENT_CERT, ClientCertificateRefused, fingerprint
from agent.sources.reading import Reading
from agent.wire import Quality
from simulators.kiln.model import KilnLine
from simulators.kiln.opcua_server import DcsServer, SimSecurity
from tests.servers import free_port

FEED = "nsu=urn:kilnwatch:sim:dcs;s=KilnLine1.KilnFeed_tph"
POLICY = "Basic256Sha256"


@pytest.fixture(autouse=True)
def quiet_asyncua() -> Iterator[None]:
    logger = logging.getLogger("asyncua")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def settings(agent_dir: Path) -> dict[str, object]:
    # accept_first: the agent pins the server's certificate on first contact, so the only refusal left is
    # the server's refusal of the agent's certificate (and the agent's cert_dir starts empty: a first run).
    return {"security_policy": POLICY, "cert_dir": str(agent_dir), "accept_first": True}


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.cli", "agent", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode(), err.decode()


def probe_args(url: str, agent_dir: Path) -> list[str]:
    text = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in settings(agent_dir).items()}
    security = [arg for k, v in text.items() for arg in ("--security", f"{k}={v}")]
    return ["probe", url, "--node", FEED, *security, "--timeout", "4"]


def assert_names_the_refusal(message: str, cert: Path) -> None:
    assert "the server refused the agent's certificate" in message, message
    assert "BadCertificateUntrusted" in message, message
    assert str(cert) in message, message
    assert fingerprint(cert.read_bytes()) in message, message
    assert "copy it into the server's trusted certificates folder" in message, message
    assert "the agent keeps retrying and connects once the server trusts it" in message, message


def test_a_server_refusing_the_agents_certificate_is_named_with_the_file_to_trust_until_trusted(
    tmp_path: Path,
) -> None:
    agent_dir, server_dir = tmp_path / "agent", tmp_path / "server"
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/kilnwatch/dcs"
    security = SimSecurity(
        server_dir, (f"{POLICY}:SignAndEncrypt",), allow_anonymous=True, refuse_untrusted=True
    )
    server = OpcuaServer.model_validate(
        {"name": "dcs", "endpoint": url, "timeout": 4.0, "points": [{"name": "feed", "node": FEED}],
         **settings(agent_dir)}
    )  # fmt: skip
    cert = agent_dir / CLIENT_CERT

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        dcs = await DcsServer.start(port, KilnLine(seed=3).rates, security=security)
        try:
            # The library call the poller makes: the refusal as a ClientCertificateRefused.
            with pytest.raises(ClientCertificateRefused) as refused:
                await open_session(server)
            seen["error"] = str(refused.value)
            seen["folders"] = [(agent_dir / d).is_dir() for d in ("trusted", "rejected")]
            seen["pinned"] = (agent_dir / "trusted" / "dcs.der").is_file()
            # The command an operator runs on site says the same, and fails.
            seen["probe_refused"] = await cli(*probe_args(url, agent_dir))

            # The poller keeps retrying (reporting the point missing) while the server refuses it...
            readings: list[tuple[float, Reading]] = []
            sink = lambda rs: readings.extend((time.monotonic(), r) for r in rs)  # noqa: E731
            poller = asyncio.create_task(OpcuaPoller(server, sink).run())
            try:
                deadline = time.monotonic() + 30
                while not readings:
                    assert time.monotonic() < deadline and not poller.done(), "the poller reported nothing"
                    await asyncio.sleep(0.05)
                seen["while_refused"] = [r for _, r in readings]
                # ...and connects, without a restart, once the certificate is trusted as the message says.
                shutil.copy(cert, security.trusted / cert.name)
                trusted_at = time.monotonic()
                while not any(r.quality == Quality.GOOD for _, r in readings):
                    assert time.monotonic() < trusted_at + 40 and not poller.done(), "never connected"
                    await asyncio.sleep(0.05)
                seen["connected_after_s"] = (
                    next(t for t, r in readings if r.quality == Quality.GOOD) - trusted_at
                )
            finally:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            session = await open_session(server)
            seen["namespaces"] = session.namespaces
            await close_client(session.client)
            seen["probe_trusted"] = await cli(*probe_args(url, agent_dir))
        finally:
            await dcs.stop()
        return seen

    seen = asyncio.run(scenario())
    assert_names_the_refusal(str(seen["error"]), cert)
    assert seen["folders"] == [True, True]  # made on the first connect attempt
    assert seen["pinned"]
    assert list(security.rejected.iterdir()), "the server keeps the refused certificate for its operator"

    code, out, err = seen["probe_refused"]  # type: ignore[misc]
    assert code == 2, (out, err)
    assert_names_the_refusal(err, cert)

    assert seen["while_refused"] and all(
        r.quality == Quality.BAD and r.value is None
        for r in seen["while_refused"]  # type: ignore[attr-defined]
    )
    print(f"\nconnected {seen['connected_after_s']:.2f} s after the server trusted the agent's certificate")
    assert "urn:kilnwatch:sim:dcs" in seen["namespaces"]  # type: ignore[operator]

    code, out, err = seen["probe_trusted"]  # type: ignore[misc]
    assert code == 0, (out, err)
    assert out.startswith(f"{FEED} = ") and out.rstrip().endswith("Good"), out
