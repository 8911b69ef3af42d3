"""The plant's DCS on OPC UA: one Double variable per ``points.DCS_POINTS`` entry under ``KilnLine1``.

Node ids are strings ``ns=<idx>;s=KilnLine1.<Name>`` in namespace ``urn:kilnwatch:sim:dcs``. Values carry the
model instant as their source timestamp, so a client can line a value up with the truth file. By default the
endpoint has security None (docs/demo-plant.md); ``SimSecurity`` adds signed and encrypted endpoints, user
logins and X.509 logins, so the agent's security can be tested against a real server. With
``refuse_untrusted`` it also refuses client certificates that are not in ``<cert_dir>/trusted/``, as plant
servers do, so the agent's "the server refused the agent's certificate" path is tested against one too.

``python -m simulators.kiln.opcua_server --port P [...]`` runs the DCS on its own, stepping the model: a
process that tests can kill (SIGKILL) and start again on the same port to play a PLC restart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulators.kiln.points import DCS_POINTS

NAMESPACE = "urn:kilnwatch:sim:dcs"
ENDPOINT_PATH = "/kilnwatch/dcs"
LINE = "KilnLine1"
APPLICATION_URI = "urn:kilnwatch:sim:dcs:server"
SERVER_CERT = "server-cert.der"
SERVER_KEY = "server-key.pem"
#: The secure endpoints a secured simulator offers unless told otherwise: every policy and mode the agent has.
ALL_POLICIES = tuple(
    f"{policy}:{mode}"
    for policy in ("Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss")
    for mode in ("Sign", "SignAndEncrypt")
)


@dataclass
class SimSecurity:
    """Security of a simulated DCS. ``cert_dir`` holds the server's certificate and key (made there on first
    start, then reused, so a restarted server keeps the certificate its clients trust)."""

    cert_dir: Path
    policies: Sequence[str] = ALL_POLICIES  # "Policy:Mode"; add "None" for an unsecured endpoint too
    users: Mapping[str, str] = field(default_factory=dict)  # user name → password
    user_certs: Sequence[Path] = ()  # certificates (DER or PEM) accepted for X.509 login
    allow_anonymous: bool = False
    #: Refuse (BadCertificateUntrusted) a client application certificate not in ``trusted``; it is saved to
    #: ``rejected`` for the operator to move into ``trusted``. Off: every client certificate is accepted.
    refuse_untrusted: bool = False

    @property
    def trusted(self) -> Path:
        return self.cert_dir / "trusted"

    @property
    def rejected(self) -> Path:
        return self.cert_dir / "rejected"

    @property
    def cert(self) -> Path:
        return self.cert_dir / SERVER_CERT

    @property
    def key(self) -> Path:
        return self.cert_dir / SERVER_KEY


def ensure_server_certificate(cert_dir: Path, host: str = "127.0.0.1") -> Path:
    """Make a self-signed server certificate in ``cert_dir`` unless one is there; returns its path."""
    cert_path, key_path = cert_dir / SERVER_CERT, cert_dir / SERVER_KEY
    if cert_path.exists() and key_path.exists():
        return cert_path
    cert_dir.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(APPLICATION_URI),
        x509.DNSName(host),
        x509.DNSName(socket.gethostname()),
    ]
    eku = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = cert_gen.generate_self_signed_app_certificate(key, "Kilnwatch simulated DCS", {}, names, eku, 3650)
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    return cert_path


def _der(path: Path) -> bytes:
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return data


class SimUsers:
    """asyncua user manager: user names with passwords, and client certificates allowed to log in."""

    def __init__(self, users: Mapping[str, str], user_certs: Sequence[Path], anonymous: bool) -> None:
        self._users = dict(users)
        self._certs = {_der(p) for p in user_certs}
        self._anonymous = anonymous

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username is not None:
            ok = username in self._users and self._users[username] == password
            return User(role=UserRole.User, name=username) if ok else None
        if certificate is not None and certificate in self._certs:
            return User(role=UserRole.User, name="x509")
        # asyncua passes the channel's certificate for anonymous logins too, so an unknown certificate can
        # only be refused when anonymous logins are: a simulator may be that lax, a plant server should not.
        return User(role=UserRole.User) if self._anonymous else None


class ClientTrustList:
    """asyncua certificate validator: a client certificate must be in the ``trusted`` folder, which is read
    again at every CreateSession, so a certificate copied there is trusted without a server restart."""

    def __init__(self, trusted: Path, rejected: Path) -> None:
        self._trusted, self._rejected = trusted, rejected
        trusted.mkdir(parents=True, exist_ok=True)
        rejected.mkdir(parents=True, exist_ok=True)

    async def __call__(self, cert: x509.Certificate, app_description: ua.ApplicationDescription) -> None:
        der = cert.public_bytes(Encoding.DER)
        if der in {_der(p) for p in sorted(self._trusted.iterdir()) if p.is_file()}:
            return
        (self._rejected / f"{hashlib.sha256(der).hexdigest()[:16]}.der").write_bytes(der)
        raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)


def _policy_types(policies: Sequence[str]) -> list[ua.SecurityPolicyType]:
    out = []
    for text in policies:
        name = "NoSecurity" if text == "None" else text.replace(":", "_")
        out.append(getattr(ua.SecurityPolicyType, name))
    return out


async def _secure(server: Server, security: SimSecurity, host: str) -> None:
    ensure_server_certificate(security.cert_dir, host)
    await server.set_application_uri(APPLICATION_URI)
    await server.load_certificate(str(security.cert))
    await server.load_private_key(str(security.key))
    server.set_security_policy(_policy_types(security.policies))
    tokens: list[type] = []
    if security.allow_anonymous:
        tokens.append(ua.AnonymousIdentityToken)
    if security.users:
        tokens.append(ua.UserNameIdentityToken)
    if security.user_certs:
        tokens.append(ua.X509IdentityToken)
    server.set_identity_tokens(tokens)
    if security.refuse_untrusted:
        server.set_certificate_validator(ClientTrustList(security.trusted, security.rejected))


class DcsServer:
    """An asyncua server holding the DCS tags; ``update`` writes a new set of rates into them."""

    def __init__(self, server: Server, namespace_index: int) -> None:
        self._server = server
        self._idx = namespace_index
        self._nodes = {p.source: ua.NodeId(f"{LINE}.{p.node}", namespace_index) for p in DCS_POINTS}

    @classmethod
    async def start(
        cls,
        port: int,
        rates: Mapping[str, float],
        host: str = "127.0.0.1",
        security: SimSecurity | None = None,
    ) -> DcsServer:
        """Create the address space with ``rates`` as initial values and start listening (~1-3 s)."""
        user_manager = (
            SimUsers(security.users, security.user_certs, security.allow_anonymous)
            if security is not None
            else None
        )
        server = Server(user_manager=user_manager)
        await server.init()
        server.set_endpoint(f"opc.tcp://{host}:{port}{ENDPOINT_PATH}")
        server.set_server_name("Kilnwatch simulated DCS")
        if security is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            await _secure(server, security, host)
        idx = await server.register_namespace(NAMESPACE)
        line = await server.nodes.objects.add_object(ua.NodeId(LINE, idx), ua.QualifiedName(LINE, idx))
        for p in DCS_POINTS:
            await line.add_variable(
                ua.NodeId(f"{LINE}.{p.node}", idx),
                ua.QualifiedName(p.node, idx),
                float(rates[p.source]),
                varianttype=ua.VariantType.Double,
            )
        await server.start()
        return cls(server, idx)

    async def update(self, rates: Mapping[str, float], epoch_ms: int) -> None:
        stamp = datetime.fromtimestamp(epoch_ms / 1000, UTC)
        for source, node_id in self._nodes.items():
            value = ua.DataValue(
                ua.Variant(float(rates[source]), ua.VariantType.Double),
                SourceTimestamp=stamp,
                ServerTimestamp=stamp,
            )
            await self._server.write_attribute_value(node_id, value)

    async def set_status(self, node: str, status: str, epoch_ms: int) -> None:
        """Give ``KilnLine1.<node>`` a status code by name (e.g. 'BadSensorFailure'), keeping its value:
        what a DCS does when an instrument fails or a value is substituted."""
        node_id = ua.NodeId(f"{LINE}.{node}", self._idx)
        current = self._server.read_attribute_value(node_id)
        stamp = datetime.fromtimestamp(epoch_ms / 1000, UTC)
        value = ua.DataValue(
            current.Value,
            StatusCode=ua.StatusCode(getattr(ua.StatusCodes, status)),
            SourceTimestamp=stamp,
            ServerTimestamp=stamp,
        )
        await self._server.write_attribute_value(node_id, value)

    async def drop_subscriptions(self) -> int:
        """Forget every subscription but keep the connections, as a PLC may after a program download: the
        client hears nothing more and must notice by itself. Returns how many were dropped."""
        service = self._server.iserver.subscription_service
        ids = list(service.subscriptions)
        await service.delete_subscriptions(ids)
        return len(ids)

    def subscription_count(self) -> int:
        return len(self._server.iserver.subscription_service.subscriptions)

    async def stop(self) -> None:
        await self._server.stop()


async def serve(
    port: int, host: str, security: SimSecurity | None, tick_s: float, seed: int, stop: asyncio.Event
) -> None:
    """Run the DCS with the model stepped in wall-clock time until ``stop`` is set."""
    from simulators.kiln.model import KilnLine

    line = KilnLine(seed=seed)
    dcs = await DcsServer.start(port, line.rates, host, security)
    print(f"ready opc.tcp://{host}:{port}{ENDPOINT_PATH}", flush=True)
    last = time.monotonic()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_s)
            now = time.monotonic()
            line.step(now - last)
            last = now
            await dcs.update(line.rates, time.time_ns() // 1_000_000)
    finally:
        await dcs.stop()


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The simulated kiln DCS alone, on OPC UA.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tick", type=float, default=0.2, help="model step and value refresh period, s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cert-dir", type=Path, help="server certificate folder; enables security")
    parser.add_argument(
        "--policy", action="append", help="Policy:Mode or None (repeatable; default: every secure one)"
    )
    parser.add_argument("--user", action="append", default=[], help="NAME:PASSWORD (repeatable)")
    parser.add_argument("--user-cert", action="append", default=[], type=Path, help="cert for X.509 login")
    parser.add_argument("--anonymous", action="store_true", help="also accept anonymous logins")
    parser.add_argument(
        "--refuse-untrusted",
        action="store_true",
        help="refuse client certificates not in CERT_DIR/trusted (refused ones go to CERT_DIR/rejected)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _arguments(argv)
    logging.basicConfig(level=logging.ERROR)
    security = None
    if args.cert_dir is not None:
        users = dict(u.split(":", 1) for u in args.user)
        policies = tuple(args.policy or ALL_POLICIES)
        security = SimSecurity(
            args.cert_dir, policies, users, args.user_cert, args.anonymous, args.refuse_untrusted
        )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(args.port, args.host, security, args.tick, args.seed, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
