"""The sources this agent speaks, in the order their sections appear in docs and ``check`` output.

Registering a source is one entry here: its package's ``SOURCE`` (see ``agent.sources.base``).
"""

from __future__ import annotations

import importlib

from agent.sources.base import Source

#: Package names under ``agent.sources``; each is also the config section of its tables.
NAMES = ("modbus", "opcua", "dlt645")


def _load() -> tuple[Source, ...]:
    return tuple(importlib.import_module(f"agent.sources.{name}").SOURCE for name in NAMES)


SOURCES: tuple[Source, ...] = _load()
BY_KEY: dict[str, Source] = {source.key: source for source in SOURCES}


def for_url(url: str) -> Source | None:
    """The source whose probe takes ``url``'s scheme."""
    scheme = url.partition("://")[0].lower()
    return next((s for s in SOURCES if scheme in s.schemes), None)
