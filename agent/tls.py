"""TLS to the broker: the SSL context from ``[mqtt]``, and plain-words diagnosis of a failed connection.

paho reports a failed TLS connection only as "connect failed" (or, when the broker rejects the client's
certificate after a TLS 1.3 handshake, as an unspecified disconnect), never with the reason. An operator
facing a refused gateway needs the reason and the key to fix, so on the first failure of an outage the
publisher calls ``diagnose()``, which repeats the connection by hand and translates the error.
"""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path

_SSL_NOISE = re.compile(r"^\[SSL: [A-Z0-9_]+\] | \(_ssl\.c:\d+\)$")

# OpenSSL reasons (``SSLError.reason``) → which setting to look at.
_HINTS = {
    "CERTIFICATE_VERIFY_FAILED": "the broker's certificate is not trusted: mqtt.ca_file must hold the CA "
    "that signed it, and mqtt.host must be a name in it (mqtt.insecure = true skips only the name check)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the broker requires a client certificate: set mqtt.cert_file and "
    "mqtt.key_file",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the broker refused the handshake (often: it requires a client "
    "certificate): set mqtt.cert_file and mqtt.key_file",
    "TLSV1_ALERT_UNKNOWN_CA": "the broker does not trust the agent's certificate: mqtt.cert_file must be "
    "signed by a CA in the broker's cafile",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker rejected the agent's certificate (expired, or not for client "
    "use): check mqtt.cert_file",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the broker says the agent's certificate expired: renew "
    "mqtt.cert_file",
    "WRONG_VERSION_NUMBER": "the port does not speak TLS: check mqtt.port (8883 is usual), or set "
    "tls = false",
}


def make_context(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None, insecure: bool
) -> ssl.SSLContext:
    """A client context that verifies the broker (system CAs unless ``ca_file``), TLS 1.2 or newer.

    Raises ``ValueError`` naming the config key when a file cannot be loaded, so a bad PEM is a config error.
    """
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"ca_file {str(ca_file)!r}: not a PEM CA certificate ({exc}): fix the file"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"cert_file {str(cert_file)!r} / key_file {str(key_file)!r}: cannot load ({exc}): both "
                "must be PEM, the key unencrypted, and belong together"
            ) from None
    context.check_hostname = not insecure
    return context


def diagnose(host: str, port: int, context: ssl.SSLContext | None, timeout: float = 5.0) -> str:
    """Connect to the broker once (TCP, then TLS if ``context``) and say what goes wrong, with the fix.

    After a TLS 1.3 handshake the broker may still reject the client certificate; that arrives as an alert on
    the first read, so the probe reads briefly: silence means the broker is waiting for CONNECT, i.e. TLS is
    fine and the problem is at the MQTT level.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            if context is None:
                return "TCP connection works: the broker closed the MQTT session (see the broker's log)"
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.settimeout(1.0)
                try:
                    tls.recv(1)
                except TimeoutError:
                    return "TLS works: the broker closed the MQTT session (see the broker's log)"
                return "the broker closed the connection right after the TLS handshake (see the broker's log)"
    except ssl.SSLError as exc:
        # "[SSL: REASON] text (_ssl.c:123)" → "text"; a failed verification has a clearer message of its own.
        detail = getattr(exc, "verify_message", None) or _SSL_NOISE.sub("", str(exc))
        hint = _HINTS.get(
            exc.reason or "", "check the broker's TLS settings and mqtt.ca_file/cert_file/key_file"
        )
        return f"TLS failed ({exc.reason}: {detail}): {hint}"
    except ConnectionResetError:
        tls_hint = (
            ": the port may not speak TLS (check mqtt.port and mqtt.tls)" if context is not None else ""
        )
        return f"connection reset by {host}:{port}{tls_hint}"
    except OSError as exc:
        return (
            f"cannot reach {host}:{port}: {exc.strerror or exc}: check mqtt.host, mqtt.port and the network"
        )
