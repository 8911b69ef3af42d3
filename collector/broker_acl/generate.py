"""Write the broker's password file, ACL and the logins' secrets files for every site a collector serves."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import structlog

from collector.broker_acl.accounts import Account, agent_accounts, collector_account
from collector.broker_acl.credentials import (
    agent_secrets,
    collector_secrets,
    password_for,
    stale_secrets,
    write_secrets,
)
from collector.broker_acl.mosquitto_files import acl_file, password_file
from collector.broker_acl.private_files import write_private
from collector.sites import Sites

log = structlog.get_logger("collector.broker_acl")

PASSWORD_FILE = "passwd"
ACL_FILE = "acl"


@dataclass(frozen=True)
class Login:
    account: Account
    secrets: Path
    what: str


@dataclass
class Written:
    """What a run wrote: logins given a new password, logins that kept theirs, and leftover secrets."""

    out: Path
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)


def write_broker_files(sites: Sites, out: Path, root: str, collector_users: list[str]) -> Written:
    """Every id and every existing secrets file is checked before anything is written, so an error leaves
    ``out`` as it was. Each collector process has a login of its own (the broker ties a session to it)."""
    logins = [
        Login(collector_account(sites, root, user), collector_secrets(out, user), f"collector {user}")
        for user in dict.fromkeys(collector_users)
    ]
    logins += [
        Login(account, agent_secrets(out, site, agent), f"agent {agent} of site {site}")
        for site, agent, account in agent_accounts(sites, root)
    ]
    passwords = [password_for(login.secrets) for login in logins]
    written = Written(out)
    for login, (password, created) in zip(logins, passwords, strict=True):
        write_secrets(login.secrets, login.account.username, password, login.what)
        (written.created if created else written.kept).append(login.account.username)
        if created:
            log.info("broker_acl.password_created", user=login.account.username, secrets=str(login.secrets))
    users = [
        (login.account.username, password) for login, (password, _) in zip(logins, passwords, strict=True)
    ]
    write_private(out / PASSWORD_FILE, password_file(users))
    write_private(out / ACL_FILE, acl_file(login.account for login in logins))
    written.stale = stale_secrets(out, {login.secrets for login in logins})
    for path in written.stale:
        log.warning("broker_acl.stale_secrets", secrets=str(path), fix="no longer a login: delete the file")
    return written
