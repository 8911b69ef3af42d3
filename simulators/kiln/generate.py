"""Generated history: days of the line as the demo agent would have published it, plus the truth.

The whole run is computed as arrays (wander path, rates, cumulative sums, register quantisation) with the same
equations as the live plant, so a generated week takes seconds. Each step's readings are the registers at the
step's start: totalisers show the counter at that instant, instantaneous points the rate held over the step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import structlog

from simulators.kiln import quantise
from simulators.kiln.csvfiles import (
    READINGS_HEADER,
    TRUTH_HEADER,
    iso_utc_ms,
    write_readings,
    write_truth_rows,
)
from simulators.kiln.model import TRUTH_RATES, KilnLine, integrate_path, process_rates
from simulators.kiln.points import DCS_POINTS, MODBUS_POINTS

log = structlog.get_logger(__name__)

DEFAULT_START = datetime(2026, 11, 1, tzinfo=timezone(timedelta(hours=8)))  # local midnight, Asia/Shanghai
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def channel_values(rates: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every point's published values (doc units, after register quantisation and scaling), by point name."""
    values = {}
    for p in MODBUS_POINTS:
        quantity = truth[p.source] if p.is_counter else rates[p.source]
        values[p.name] = quantise.scaled(p, quantise.register_value(p, quantity))
    for d in DCS_POINTS:
        values[d.name] = rates[d.source]
    return values


def generate(
    days: float,
    step_s: float,
    out_dir: Path,
    start: datetime | None = None,
    seed: int = 1,
    agent: str = "kiln-gw",
) -> dict:
    """Write ``out_dir/readings.csv`` and ``out_dir/truth.csv`` for ``days`` at one sample per ``step_s``.

    ``start`` must be timezone-aware (default 2026-11-01 00:00 in Asia/Shanghai). Samples are taken at
    ``start + k·step`` for ``k = 0 .. days·86400/step``, so the last truth row holds the totals for the run.
    """
    start = start or DEFAULT_START
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware, e.g. 2026-11-01T00:00:00+08:00")
    step_ms = round(step_s * 1000)
    if step_ms <= 0:
        raise ValueError(f"step must be at least 1 ms, got {step_s} s")
    steps = round(days * 86_400_000 / step_ms)
    dt_s = step_ms / 1000.0

    line = KilnLine(seed=seed)
    rates = process_rates(line.plant, line.wander.path(steps, dt_s))
    truth = integrate_path(rates, dt_s)
    channels = channel_values(rates, truth)
    start_ms = (start - EPOCH) // timedelta(milliseconds=1)
    stamps = iso_utc_ms(start_ms + np.arange(steps + 1, dtype=np.int64) * step_ms)

    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "truth.csv").open("w", encoding="ascii", newline="") as out:
        out.write(TRUTH_HEADER)
        write_truth_rows(out, stamps, truth)
    with (out_dir / "readings.csv").open("w", encoding="ascii", newline="") as out:
        out.write(READINGS_HEADER)
        write_readings(out, stamps, {f"{agent}/{name}": v for name, v in channels.items()})

    summary = {
        "steps": steps,
        "rows": (steps + 1) * len(channels),
        "channels": len(channels),
        "start": stamps[0],
        "end": stamps[-1],
        "truth": {c: float(truth[c][-1]) for c in TRUTH_RATES},
        "readings": str(out_dir / "readings.csv"),
        "truth_file": str(out_dir / "truth.csv"),
    }
    log.info("sim.generated", rows=summary["rows"], channels=summary["channels"], out=str(out_dir))
    return summary
