"""Readings files (CSV: ``timestamp,channel,value,quality``) → per-channel arrays for the kernels.

Timestamps are ISO 8601 with an offset or ``Z`` (as the simulator writes them) or integer milliseconds since
the Unix epoch. Every bad row is reported with its line number; nothing is silently skipped.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

REQUIRED = ("timestamp", "channel", "value", "quality")


class ReadingsError(ValueError):
    """A readings file that cannot be read as a whole, or a row in it; the message names file and line."""


@dataclass(frozen=True, slots=True)
class ChannelSeries:
    t_s: np.ndarray
    values: np.ndarray
    good: np.ndarray


def _parse_time(text: str) -> float:
    if text.isdigit():
        return int(text) / 1000.0
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        raise ValueError("timestamp without a time zone offset")
    return ts.timestamp()


def read_readings(path: Path) -> dict[str, ChannelSeries]:
    """Read the whole file; rows of each channel are sorted by time (files may interleave channels)."""
    t: dict[str, list[float]] = defaultdict(list)
    v: dict[str, list[float]] = defaultdict(list)
    q: dict[str, list[int]] = defaultdict(list)
    if not Path(path).is_file():
        raise ReadingsError(f"{path}: file not found")
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:4]) != REQUIRED:
            raise ReadingsError(f"{path}: line 1: expected the header {','.join(REQUIRED)}, got {header!r}")
        for line_no, row in enumerate(reader, start=2):
            try:
                ts, channel, value, quality = row
                t[channel].append(_parse_time(ts))
                v[channel].append(float(value) if value else np.nan)
                q[channel].append(int(quality))
            except ValueError as exc:
                raise ReadingsError(f"{path}: line {line_no}: {exc} in {row!r}") from None
    out = {}
    for channel in t:
        ta = np.asarray(t[channel])
        order = np.argsort(ta, kind="stable")
        va = np.asarray(v[channel])[order]
        good = ((np.asarray(q[channel])[order] == 0) & np.isfinite(va)).astype(np.uint8)
        out[channel] = ChannelSeries(ta[order], va, good)
    return out
