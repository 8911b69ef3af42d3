"""Random passwords and their Mosquitto 2.x hashes, computed here so the collector host needs no
``mosquitto_passwd``.

Mosquitto 2.0 stores ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`` with a 12-byte salt; 101
iterations is what ``mosquitto_passwd`` itself writes. Each password is 24 random bytes (192 bits), so a
stolen password file cannot be brute-forced whatever the iteration count, and every connect stays cheap for
the broker when a whole plant reconnects at once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

ITERATIONS = 101
SALT_BYTES = 12


def new_password() -> str:
    """32 characters of ``A-Z a-z 0-9 _ -``: safe unquoted in an environment file and in TOML."""
    return secrets.token_urlsafe(24)


def mosquitto_hash(password: str, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"
