"""``kilnwatch collector broker-acl CONFIG --out DIR``: broker logins for the sites a collector serves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from collector.broker_acl import DEFAULT_COLLECTOR_USER

STALE = "no longer a login (no site model names the agent, or it is no collector user now) — delete the file"
COLLECTOR_USER_HELP = (
    f"The collector's broker username (default: [mqtt] username, else {DEFAULT_COLLECTOR_USER})."
)


def broker_acl(
    config: Annotated[Path, typer.Argument(help="Collector TOML config; its site_model names the sites.")],
    out: Annotated[Path, typer.Option(help="Folder for passwd, acl and secrets/ (created if missing).")],
    collector_user: Annotated[list[str] | None, typer.Option(help=COLLECTOR_USER_HELP)] = None,
) -> None:
    """Write Mosquitto's password file and ACL, and one secrets file per login; re-runs keep passwords."""
    from agent.config_load import ConfigError
    from collector.broker_acl.generate import ACL_FILE, PASSWORD_FILE, write_broker_files
    from collector.config import load_config
    from collector.sites import load_sites

    try:
        cfg = load_config(config)
        sites = load_sites(cfg.collector.site_model)
        users = collector_user or [cfg.mqtt.username or DEFAULT_COLLECTOR_USER]
        written = write_broker_files(sites, out, cfg.mqtt.root, users)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    count = len(written.created) + len(written.kept)
    typer.echo(
        f"wrote {out / PASSWORD_FILE} ({count} logins), {out / ACL_FILE} and {out / 'secrets'}/ (mode 0600)"
    )
    typer.echo(
        f"new passwords: {', '.join(written.created) or 'none'}; kept: {', '.join(written.kept) or 'none'}"
    )
    for path in written.stale:
        typer.echo(f"warning: {path}: {STALE}", err=True)
