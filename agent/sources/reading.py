"""What every source hands to the runner: readings, already scaled, with their quality and time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from agent.wire import Quality


class Reading(NamedTuple):
    channel: str
    t_ms: int
    value: float | None
    quality: Quality


#: Called by a poller once per device cycle; must not block (the runner only buffers).
Sink = Callable[[list[Reading]], None]


def now_ms() -> int:
    """Wall-clock time in integer ms since the Unix epoch, the wire format's time base."""
    return time.time_ns() // 1_000_000
