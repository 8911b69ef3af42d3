"""Each login's password, kept in one environment file per login under ``<out>/secrets/``.

``secrets/<site>/<agent>.env`` is the gateway's ``/etc/kilnwatch/agent.env`` as it is (the systemd unit's
``EnvironmentFile``; ``deploy/INSTALL-agent.md``), and ``secrets/<collector user>.env`` a collector's, so the
operator hands each machine exactly its own secret and nothing else. The files are the passwords' only
record: a re-run reads them and keeps every password, and makes new ones only for logins without a file.
"""

from __future__ import annotations

from pathlib import Path

from agent.config_load import ConfigError
from collector.broker_acl.passwords import new_password
from collector.broker_acl.private_files import write_private

ENV_USERNAME = "KILNWATCH_MQTT_USERNAME"
ENV_PASSWORD = "KILNWATCH_MQTT_PASSWORD"
SECRETS = "secrets"


def agent_secrets(out: Path, site: str, agent: str) -> Path:
    return out / SECRETS / site / f"{agent}.env"


def collector_secrets(out: Path, username: str) -> Path:
    return out / SECRETS / f"{username}.env"


def read_password(path: Path) -> str | None:
    """The password an existing secrets file holds, None if there is no file."""
    if not path.exists():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == ENV_PASSWORD and value.strip():
            return value.strip()
    raise ConfigError(
        [
            f"{path}: {ENV_PASSWORD}: missing or empty — put the login's password back"
            f" ({ENV_PASSWORD}=...), or delete the file to give the login a new password"
        ]
    )


def password_for(path: Path) -> tuple[str, bool]:
    """``(password, created)``: the file's password, or a new one if there is no file yet."""
    password = read_password(path)
    return (new_password(), True) if password is None else (password, False)


def write_secrets(path: Path, username: str, password: str, what: str) -> None:
    write_private(
        path,
        f"# Broker login of {what}, written by `kilnwatch collector broker-acl`. Secret: keep it mode 0600.\n"
        f"{ENV_USERNAME}={username}\n"
        f"{ENV_PASSWORD}={password}\n",
    )


def stale_secrets(out: Path, current: set[Path]) -> list[Path]:
    """Secrets files of logins that are gone (an agent no site model names, a collector user no longer
    given): their users are gone from the broker's files, the files are left for the operator to delete."""
    folder = out / SECRETS
    files = [*folder.glob("*.env"), *folder.glob("*/*.env")] if folder.is_dir() else []
    return sorted(p for p in files if p not in current)
