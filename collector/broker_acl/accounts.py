"""Who may log in to the broker and which topics each login may use.

An agent logs in as ``<site>/<agent>``: the ``/`` cannot occur in a site or agent id (``wire.valid_id``), so
two plants with a ``kiln-gw`` each get two distinct users, and no agent can be confused with the collector,
whose name must not hold a ``/`` either. An agent may publish its own data, birth and status topics (status
is also its retained last will) and read nothing; the collector may read the data, birth and status topics
of every site it serves (``$share/<group>/...`` subscriptions are checked against the same topics) and
publish nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent import wire
from agent.config_load import ConfigError
from collector.broker_acl import DEFAULT_COLLECTOR_USER
from collector.sites import Sites

KINDS = ("data", "birth", "status")


@dataclass(frozen=True)
class Account:
    """One broker login: its username and the topics (filters) it may publish to and read."""

    username: str
    publish: tuple[str, ...] = ()
    read: tuple[str, ...] = ()


def agent_username(site: str, agent: str) -> str:
    return f"{site}/{agent}"


def _name_problem(name: str) -> str | None:
    """Why an id cannot be part of a username or a secrets file name, or None.

    Mosquitto's password file is ``user:hash`` split at the first ``:``, and ids name folders and files
    under ``secrets/``, so ``:``, ``.`` and ``..`` are refused on top of what topics refuse.
    """
    if not wire.valid_id(name):
        return f"{name!r} is not a valid topic level (letters, digits and _ . : - only, at most 64)"
    if ":" in name:
        return f"{name!r} holds ':', which Mosquitto's password file cannot hold in a username"
    if name in (".", ".."):
        return f"{name!r} cannot name a secrets folder or file"
    return None


def check_collector_user(name: str) -> None:
    if not name or any(c in name for c in "/: \t\n") or name in (".", ".."):
        raise ConfigError(
            [
                f"--collector-user: {name!r} cannot be the collector's username: give one without / : or"
                f" spaces, e.g. {DEFAULT_COLLECTOR_USER}"
            ]
        )


def agent_accounts(sites: Sites, root: str) -> list[tuple[str, str, Account]]:
    """``(site, agent, account)`` for every agent every site model names, sorted; a ``ConfigError`` names
    each site or agent id that cannot be a username, with its file and key."""
    problems: list[str] = []
    accounts: list[tuple[str, str, Account]] = []
    for site_id in sorted(sites):
        file = sites.files.get(site_id, "site model")
        if problem := _name_problem(site_id):
            problems.append(f"{file}: site.id: {problem} — rename the site")
            continue
        for agent in sorted(sites.agents(site_id)):
            if problem := _name_problem(agent):
                channel = next(c for c in sites[site_id].channels if c.split("/", 1)[0] == agent)
                problems.append(f"{file}: channels.{channel}: agent id {problem} — rename the agent")
                continue
            topics = (
                wire.data_topic(site_id, agent, root),
                wire.birth_topic(site_id, agent, root),
                wire.status_topic(site_id, agent, root),
            )
            accounts.append((site_id, agent, Account(agent_username(site_id, agent), publish=topics)))
    if problems:
        raise ConfigError(problems)
    return accounts


def collector_account(sites: Sites, root: str, username: str) -> Account:
    check_collector_user(username)
    filters = tuple(wire.subscription(kind, site, root) for site in sorted(sites) for kind in KINDS)
    return Account(username, read=filters)
