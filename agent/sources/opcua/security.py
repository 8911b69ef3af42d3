"""OPC UA security: the agent's own certificate, the server trust list, and applying both to a client.

The client certificate is made once, on first start, and then reused: a server trusts a client by its
certificate, so a certificate regenerated on every start (or when the hostname changes) would have to be
trusted again by hand each time. The server side is an explicit trust list, a folder of certificates. A
server certificate that is not in it is refused, and it is saved to ``<cert_dir>/rejected/`` so that the
operator can check it and move that one file into the trust list (peers' most common OPC UA security support
request is a self-signed server certificate the client will not trust, with no hint about what to do). Both
folders are made on the first start, so the instruction to move a file there works as written: ``cp`` into
a folder that does not exist makes a file of that name instead.

The other direction fails as often: the server does not trust the agent's certificate. asyncua reports that
in ways that do not say so (``client_refusal``), so it is translated into a message naming the agent's
certificate file and what to do on the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from asyncua import Client, ua
from asyncua.crypto import cert_gen, security_policies
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.sources.opcua.config import OpcuaServer

log = structlog.get_logger("agent.opcua")

CLIENT_CERT = "client-cert.der"
CLIENT_KEY = "client-key.pem"
CERT_DAYS = 3650  # a gateway runs for years; an expiring certificate would stop it with little warning
CERT_SUFFIXES = (".der", ".pem", ".crt", ".cer")


class SecurityError(ValueError):
    """A certificate or security setting an operator must fix (so a ValueError, like other bad settings);
    the message says how."""


class ClientCertificateRefused(SecurityError):
    """The server refused the agent's own certificate: it must be trusted on the server."""


@dataclass(frozen=True)
class ClientIdentity:
    """The agent's application instance certificate, its key, and the application URI in the certificate."""

    cert: Path
    key: Path
    application_uri: str


def default_application_uri() -> str:
    return f"urn:{socket.gethostname()}:kilnwatch:agent"


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as operators compare it with a server's certificate screen."""
    return hashlib.sha256(der).hexdigest()


def leading_certificate(der: bytes) -> bytes:
    """The first certificate of a DER blob: some servers append their CA chain to their own certificate."""
    if len(der) < 4 or der[1] != 0x82:  # a SEQUENCE with a two-byte length, as every RSA certificate has
        return der
    return der[: int.from_bytes(der[2:4], "big") + 4]


def _uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return san.value.get_values_for_type(x509.UniformResourceIdentifier)


def load_or_create_identity(cert_dir: Path, application_uri: str | None) -> ClientIdentity:
    """Reuse the certificate in ``cert_dir``, or make a self-signed one there if there is none.

    Raises SecurityError when the pair is half there, expired, or made for another application URI:
    each of these would make every server refuse the agent, so it must be fixed rather than retried.
    """
    cert_path, key_path = cert_dir / CLIENT_CERT, cert_dir / CLIENT_KEY
    remake = f"delete {cert_path} and {key_path} to make a new pair (then trust the new one on the server)"
    if cert_path.exists() != key_path.exists():
        missing = key_path if cert_path.exists() else cert_path
        raise SecurityError(f"{missing} is missing: restore it, or {remake}")
    if not cert_path.exists():
        return _create_identity(cert_path, key_path, application_uri or default_application_uri())
    cert = x509.load_der_x509_certificate(cert_path.read_bytes())
    uris = _uris(cert)
    if not uris:
        raise SecurityError(f"{cert_path} has no application URI (SubjectAltName URI): {remake}")
    if application_uri is not None and application_uri not in uris:
        raise SecurityError(
            f"{cert_path} was made for application URI {uris[0]!r}, but application_uri is "
            f"{application_uri!r}: set application_uri = {uris[0]!r}, or {remake}"
        )
    if cert.not_valid_after_utc < datetime.now(UTC):
        raise SecurityError(f"{cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}: {remake}")
    return ClientIdentity(cert_path, key_path, application_uri or uris[0])


def _create_identity(cert_path: Path, key_path: Path, uri: str) -> ClientIdentity:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    names = [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname())]
    eku = [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = cert_gen.generate_self_signed_app_certificate(key, "Kilnwatch agent", {}, names, eku, CERT_DAYS)
    # The key is written first and owner-only: a crash between the two writes leaves a pair that is
    # reported as half there, never a certificate whose key is lost.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(cert_gen.dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    log.info("client certificate created", cert=str(cert_path), application_uri=uri)
    return ClientIdentity(cert_path, key_path, uri)


def ensure_folders(*folders: Path) -> None:
    """Make the trust and rejected folders, so that every "move this file into" instruction names a folder
    that exists; a file where a folder belongs (left by a ``cp`` into the missing folder) is reported."""
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise SecurityError(
                f"{folder} is a file, but it must be a folder of certificates (copying a certificate to "
                f"{folder} before the folder existed makes such a file): rename it to {folder.name}.der, "
                f"create the folder {folder}, and move {folder.name}.der into it"
            )
        folder.mkdir(parents=True, exist_ok=True)


def _trusted(trust_dir: Path) -> set[bytes]:
    """DER bytes of every certificate in the trust folder (DER or PEM files)."""
    found: set[bytes] = set()
    if not trust_dir.is_dir():
        return found
    for path in sorted(trust_dir.iterdir()):
        if path.suffix.lower() not in CERT_SUFFIXES:
            continue
        data = path.read_bytes()
        try:
            cert = (
                x509.load_pem_x509_certificate(data)
                if data.lstrip().startswith(b"-----BEGIN")
                else x509.load_der_x509_certificate(data)
            )
        except ValueError:
            log.warning("not a certificate, ignored", file=str(path))
            continue
        found.add(cert.public_bytes(Encoding.DER))
    return found


def check_server_certificate(
    der: bytes, server: str, trust_dir: Path, rejected_dir: Path, accept_first: bool
) -> None:
    """Pass if the server's certificate is in the trust list; otherwise save it and raise SecurityError.
    Both folders exist (``prepare``).

    With ``accept_first`` the first certificate seen for ``server`` is pinned as ``<trust_dir>/<server>.der``;
    a different certificate later is refused like any other, so a swapped server is still noticed.
    """
    if der in _trusted(trust_dir):
        return
    pinned = trust_dir / f"{server}.der"
    if accept_first and not pinned.exists():
        pinned.write_bytes(der)
        log.warning("server certificate trusted on first use", server=server, file=str(pinned))
        return
    cert = x509.load_der_x509_certificate(der)
    digest = fingerprint(der)
    saved = rejected_dir / f"{server}-{digest[:16]}.der"
    saved.write_bytes(der)
    raise SecurityError(
        f"server certificate of {server!r} is not trusted ({cert.subject.rfc4514_string()}, "
        f"SHA-256 {digest}): if this is the right server, move {saved} into {trust_dir}/"
        + ("" if accept_first else " (or set accept_first = true to trust a server's first certificate)")
        + "; the agent keeps retrying and connects once it is there"
    )


#: Status codes by which a server refuses the client's application certificate. A server that does not
#: want to reveal what its trust list holds answers BadSecurityChecksFailed (OPC UA Part 4 and Part 6).
_REFUSALS = ("BadSecurityChecksFailed", "BadNoValidCertificates")
#: Refusals that trusting the certificate does not cure, and what does.
_NOT_TRUST = {
    "BadCertificateTimeInvalid": "check the gateway's clock against the certificate's validity dates",
    "BadCertificateUriInvalid": "the application URI in the certificate must be the one the agent sends "
    "(see application_uri)",
    "BadCertificateUseNotAllowed": "the server wants other key usages than the certificate has",
    "BadCertificateRevoked": "the server's administrator revoked it",
}


def _refusal(exc: BaseException, step: str | None) -> str | None:
    """How the server refused the secure connection, in words; None if ``exc`` is not a refusal."""
    code = ua.StatusCode(exc.code).name if isinstance(exc, ua.UaStatusCodeError) else None
    if code is not None and code.startswith("BadCertificate"):
        return f"the server refused the agent's certificate ({code} at {step or 'connect'})"
    if code is not None and code in _REFUSALS:
        how = f"{code} at {step or 'connect'}"
    elif isinstance(exc, AssertionError) and step == "OpenSecureChannel":
        how = "an error answer to OpenSecureChannel, which asyncua reports as a bare AssertionError"
    elif type(exc) is ConnectionError and step == "OpenSecureChannel":  # not ConnectionRefusedError & co
        how = "it closed the connection during OpenSecureChannel"
    else:
        return None
    return (
        f"the server refused the secure channel ({how}), almost always because it does not trust the "
        "agent's certificate"
    )


def client_refusal(exc: BaseException, step: str | None, cert: Path) -> ClientCertificateRefused | None:
    """The error as "the server refused the agent's certificate", or None if it is not that.

    ``step`` is the OPC UA service during which ``exc`` arose (``OpenSecureChannel``, ``CreateSession``...).
    asyncua raises, depending on how the server refuses: a ``UaStatusCodeError`` (BadCertificateUntrusted at
    CreateSession from an asyncua server; BadSecurityChecksFailed from an ERR message); a bare
    ``AssertionError`` when the server answers OpenSecureChannel with a ServiceFault (node-opcua does); or a
    ``ConnectionError`` when the server just closes the socket during OpenSecureChannel.
    """
    refused = _refusal(exc, step)
    if refused is None:
        return None
    named = f"{cert} (SHA-256 {fingerprint(cert.read_bytes())})"
    code = ua.StatusCode(exc.code).name if isinstance(exc, ua.UaStatusCodeError) else None
    if code in _NOT_TRUST:
        todo = f"{_NOT_TRUST[code]}; the certificate is {named}"
    else:
        todo = (
            f"trust {named} on the server: copy it into the server's trusted certificates folder (for the "
            "Kilnwatch simulator: <its --cert-dir>/trusted), or accept it in the server's certificate "
            "screen (often a list of rejected certificates)"
        )
    return ClientCertificateRefused(
        f"{refused}: {todo}; the agent keeps retrying and connects once the server trusts it"
    )


def _endpoint(
    endpoints: list[ua.EndpointDescription], policy_uri: str, mode: ua.MessageSecurityMode
) -> ua.EndpointDescription:
    for ep in endpoints:
        if ep.SecurityPolicyUri == policy_uri and ep.SecurityMode == mode:
            return ep
    offered = ", ".join(
        sorted({f"{ep.SecurityPolicyUri.rsplit('#', 1)[-1]}/{ep.SecurityMode.name}" for ep in endpoints})
    )
    policy = policy_uri.rsplit("#", 1)[-1]
    raise SecurityError(
        f"the server offers no {policy}/{mode.name} endpoint (it offers: {offered}): "
        "set security_policy and security_mode to one of these"
    )


def prepare(server: OpcuaServer, cert_dir: Path) -> ClientIdentity:
    """The agent's identity in ``cert_dir``, and the trust and rejected folders, made if missing."""
    identity = load_or_create_identity(cert_dir, server.application_uri)
    ensure_folders(server.trust_dir or cert_dir / "trusted", cert_dir / "rejected")
    return identity


async def configure_security(client: Client, server: OpcuaServer) -> ClientIdentity | None:
    """Apply ``server``'s policy, mode and login to ``client`` before it connects; returns the agent's
    identity (None without ``cert_dir``).

    For a secure policy this fetches the server's endpoints over an unsecured channel (as every OPC UA
    client must), checks the server's certificate against the trust list, and only then sets up the
    secure channel with it.
    """
    auth = server.effective_auth
    if auth == "username":
        client.set_user(server.username or "")
        client.set_password(server.password or "")
    if server.cert_dir is None:
        return None
    identity = await asyncio.to_thread(prepare, server, server.cert_dir)
    client.application_uri = identity.application_uri
    if server.security_policy != "None":
        policy = getattr(security_policies, f"SecurityPolicy{server.security_policy}")
        mode = getattr(ua.MessageSecurityMode, server.effective_security_mode)
        endpoint = _endpoint(await client.connect_and_get_server_endpoints(), policy.URI, mode)
        if not endpoint.ServerCertificate:
            raise SecurityError(f"the server's {server.security_policy} endpoint has no certificate")
        der = leading_certificate(endpoint.ServerCertificate)
        await asyncio.to_thread(
            check_server_certificate,
            der,
            server.name,
            server.trust_dir or server.cert_dir / "trusted",
            server.cert_dir / "rejected",
            server.accept_first,
        )
        await client.set_security(
            policy, str(identity.cert), str(identity.key), server_certificate=der, mode=mode
        )
    if auth == "certificate":
        await client.load_client_certificate(str(server.user_certificate or identity.cert))
        await client.load_private_key(server.user_key or identity.key)
    return identity
