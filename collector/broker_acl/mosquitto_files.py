"""The text of Mosquitto's ``password_file`` and ``acl_file`` for a set of accounts.

The ACL names every topic of every user, with no patterns (``%u``): what a login may do can be read off the
file, and nothing depends on how Mosquitto substitutes a username holding ``/``. A user with no ``topic read``
line reads nothing: Mosquitto 2.0 grants such a user's SUBSCRIBE but delivers it no message, retained ones
included.
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.broker_acl.accounts import Account
from collector.broker_acl.passwords import mosquitto_hash

HEADER = "# Written by `kilnwatch collector broker-acl` from the site models: re-run it, do not edit.\n"


def password_file(logins: Iterable[tuple[str, str]]) -> str:
    """``username:$7$...`` per ``(username, password)``, and nothing else: Mosquitto documents no comments
    in this file."""
    return "".join(f"{user}:{mosquitto_hash(password)}\n" for user, password in logins)


def acl_file(accounts: Iterable[Account]) -> str:
    blocks = []
    for account in accounts:
        lines = [f"user {account.username}"]
        lines += [f"topic write {topic}" for topic in account.publish]
        lines += [f"topic read {topic}" for topic in account.read]
        blocks.append("\n".join(lines) + "\n")
    return (
        HEADER
        + "# Agents publish their own topics and read nothing; the collector reads and publishes nothing.\n\n"
        + "\n".join(blocks)
    )
