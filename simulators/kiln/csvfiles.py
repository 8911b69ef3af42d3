"""The CSV formats the simulator writes: ground truth and generated readings (docs/demo-plant.md).

Times are whole milliseconds since the Unix epoch inside the simulator and ISO 8601 UTC with milliseconds and
a 'Z' in the files, so a truth row's time is exactly the model instant it describes. Numbers are written with
Python's shortest round-trip ``repr``: reading a file back gives the very float the simulator held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TextIO

import numpy as np

from simulators.kiln.model import TRUTH_COLUMNS

TRUTH_HEADER = ",".join(("t", *TRUTH_COLUMNS)) + "\n"
READINGS_HEADER = "timestamp,channel,value,quality\n"


def iso_utc_ms(epoch_ms: Sequence[int] | np.ndarray) -> list[str]:
    """``2026-10-31T16:00:00.000Z`` for each time given in milliseconds since the epoch."""
    stamps = np.datetime_as_string(np.asarray(epoch_ms, dtype="datetime64[ms]"), unit="ms")
    return [s + "Z" for s in stamps.tolist()]


def write_truth_rows(
    out: TextIO, stamps: Sequence[str], truth: Mapping[str, Sequence[float] | np.ndarray]
) -> None:
    """One truth row per stamp, columns in ``TRUTH_COLUMNS`` order (the header is the caller's)."""
    columns = [[repr(v) for v in np.asarray(truth[c], dtype=np.float64).tolist()] for c in TRUTH_COLUMNS]
    for stamp, values in zip(stamps, zip(*columns, strict=True), strict=True):
        out.write(stamp + "," + ",".join(values) + "\n")


def write_readings(out: TextIO, stamps: Sequence[str], channels: Mapping[str, np.ndarray]) -> None:
    """Rows ``timestamp,channel,value,0`` ordered by time, then by channel in the mapping's order."""
    prefixes = ["," + name + "," for name in channels]
    columns = [[repr(v) for v in np.asarray(vals, dtype=np.float64).tolist()] for vals in channels.values()]
    for stamp, values in zip(stamps, zip(*columns, strict=True), strict=True):
        out.write("".join([stamp + p + v + ",0\n" for p, v in zip(prefixes, values, strict=True)]))
