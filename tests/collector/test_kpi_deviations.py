"""`kilnwatch kpi deviations`: a line's baseline fitted on its own days, and a step in energy caught.

40 days of a clinker line whose daily energy is 50 000 kgce + 100 kgce/t × clinker, plus seeded noise of
σ = 2 000 kgce; from day 30 the line needs 5 % more energy at the same output (a worn burner, say). The
baseline is fitted on days 0–19. The step is ~27 000 kgce ≈ 13 σ, so the tabular CUSUM (k = 0.5 σ, h = 5 σ)
must raise on day 30, and nothing may be raised before it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

SITE = """
[site]
id = "drift"

[lines.L1]

[[lab]]
valid_from = 2026-01-01T00:00:00+08:00
value = 25.0

[channels."a/coal_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "consumption"
carrier = "coal"

[channels."a/clinker_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "output"
carrier = "clinker"
"""

DAYS, STEP_DAY = 40, 30
A_KGCE, B_KGCE_PER_T, SIGMA = 50_000.0, 100.0, 2_000.0


def _readings(path: Path) -> None:
    rng = np.random.default_rng(7)
    clinker = 5000 + 400 * np.sin(np.arange(DAYS) * 0.7)  # t/day, 4 600–5 400
    kgce = A_KGCE + B_KGCE_PER_T * clinker + rng.normal(0, SIGMA, DAYS)
    kgce[STEP_DAY:] *= 1.05
    coal_t = kgce * 29.3076 / (1000 * 25.0)  # kgce → t of coal at 25 MJ/kg
    start = datetime(2026, 9, 30, 16, tzinfo=UTC)  # 2026-10-01 00:00 Asia/Shanghai
    rows = ["timestamp,channel,value,quality"]
    totals = {"a/coal_t": 0.0, "a/clinker_t": 0.0}
    for day in range(DAYS + 1):
        stamp = (start + timedelta(days=day)).isoformat().replace("+00:00", "Z")
        rows += [f"{stamp},{name},{value!r},0" for name, value in totals.items()]
        if day < DAYS:
            totals["a/coal_t"] += float(coal_t[day])
            totals["a/clinker_t"] += float(clinker[day])
    path.write_text("\n".join(rows) + "\n")


def test_a_five_percent_step_is_flagged_on_its_first_day(tmp_path: Path) -> None:
    site, readings = tmp_path / "site.toml", tmp_path / "readings.csv"
    site.write_text(SITE)
    _readings(readings)
    cmd = [sys.executable, "-m", "agent.cli", "kpi", "deviations", "--site", str(site), "--readings",
           str(readings), "--fit-from", "2026-10-01", "--fit-to", "2026-10-21"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (report,) = json.loads(proc.stdout)

    baseline = report["baseline"]
    assert baseline["n"] == 20  # days 0–19
    # OLS on 20 noisy days recovers the generating line: slope 100 kgce/t within a few %, σ near 2 000
    assert baseline["slope"] == pytest.approx(B_KGCE_PER_T, rel=0.15)
    assert baseline["residual_std"] == pytest.approx(SIGMA, rel=0.5)

    days = [p["start"] for p in report["periods"]]
    assert len(days) == DAYS
    raises = [e for e in report["events"] if e["kind"] == "raise"]
    first = {d: min(days.index(e["start"]) for e in raises if e["detector"] == d) for d in ("cusum", "ewma")}
    assert first["cusum"] == STEP_DAY
    assert STEP_DAY <= first["ewma"] <= STEP_DAY + 2
    assert all(e["side"] == "high" for e in raises)
    # the residual of the first stepped day is about 5 % of its energy (~27 000 kgce), far above noise
    step = report["periods"][STEP_DAY]
    assert step["residual_kgce"] > 5 * SIGMA


def test_a_baseline_period_without_production_is_a_clear_error(tmp_path: Path) -> None:
    site, readings = tmp_path / "site.toml", tmp_path / "readings.csv"
    site.write_text(SITE)
    _readings(readings)
    cmd = [sys.executable, "-m", "agent.cli", "kpi", "deviations", "--site", str(site), "--readings",
           str(readings), "--fit-from", "2027-01-01", "--fit-to", "2027-02-01"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no period of the readings starts inside the baseline period" in proc.stderr
    assert "--fit-from/--fit-to within 2026-09-30T16:00:00Z" in proc.stderr
