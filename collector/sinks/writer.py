"""What the dispatcher needs from a sink: write lines or raise ``SinkError``."""

from __future__ import annotations

from typing import Protocol


class Writer(Protocol):
    def write(self, lines: list[str]) -> None:
        """Write every line or raise ``SinkError``; a rewrite of the same lines must be harmless."""
        ...

    def close(self) -> None: ...
