"""DataValue → Reading: OPC UA status classes onto the wire's qualities, and which timestamp a reading keeps.

Shared by polling, subscriptions and the probe command, so a value means the same thing whichever way it
arrived.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal

from asyncua import ua

from agent.sources.reading import Reading
from agent.wire import Quality

TimestampMode = Literal["source", "server", "agent"]


def quality_of(status: ua.StatusCode | None) -> Quality:
    """OPC UA's three status classes map one to one onto the wire's qualities (no status means Good)."""
    if status is None or status.is_good():
        return Quality.GOOD
    if status.is_uncertain():
        return Quality.UNCERTAIN
    return Quality.BAD


def _ms(stamp: datetime) -> int:
    if stamp.tzinfo is None:  # asyncua hands out naive UTC datetimes
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


def time_of(value: ua.DataValue, received_ms: int, mode: TimestampMode = "source") -> int:
    """The reading's time in ms since the Unix epoch.

    ``source`` is when the device sampled the value (what KPIs want), ``server`` when the server last saw it
    (for devices with unreliable clocks), ``agent`` when the agent received it. A timestamp the server left
    out falls back to the other one, then to the agent's clock, so a reading always has a time.
    """
    if mode == "agent":
        return received_ms
    first, second = (
        (value.SourceTimestamp, value.ServerTimestamp)
        if mode == "source"
        else (value.ServerTimestamp, value.SourceTimestamp)
    )
    stamp = first or second
    return received_ms if stamp is None else _ms(stamp)


def to_reading(
    name: str, scale: float, value: ua.DataValue, received_ms: int, mode: TimestampMode = "source"
) -> Reading:
    """One DataValue → reading. A value that is not a finite number is BAD with no value; a Bad status
    never carries a value either, so a stale number cannot leak into KPIs as if it were current."""
    t_ms = time_of(value, received_ms, mode)
    quality = quality_of(value.StatusCode)
    raw = value.Value.Value if value.Value is not None else None
    if quality is Quality.BAD or not isinstance(raw, bool | int | float) or not math.isfinite(float(raw)):
        return Reading(name, t_ms, None, Quality.BAD)
    return Reading(name, t_ms, float(raw) * scale, quality)


def missing(names: list[str], t_ms: int) -> list[Reading]:
    """Readings that say "no value at t_ms" (BAD, null): gaps are explicit, never filled with guesses."""
    return [Reading(name, t_ms, None, Quality.BAD) for name in names]
