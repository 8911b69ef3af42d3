"""`kpi compute --format csv`: a spreadsheet user can retrace the figures per meter and per event.

One local hour (2026-11-02 00:00–01:00 Asia/Shanghai = 2026-11-01 16:00–17:00 UTC). By hand:

- ``a/kwh`` (counter): 100 → 400 at 16:30, the meter replaced (drop to 50) at 16:45, 150 at 17:00:
  300 + 50 (the reset counts the new value) + 100 = 450 kWh; coverage: the 16:00 → 16:30 pair is longer
  than the 1200 s gap limit, so 30 of 60 min = 0.5; complete 1.0 (the delta across the gap is whole).
- ``a/kw`` (rate): 1000 kW at 16:00 and 17:00, bad at 16:30: bridged, 1000 kWh; coverage 1.0.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

SITE = """
[site]
id = "csv"

[lines.L1]

[channels."a/kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "consumption"
carrier = "electricity"
gap_limit_s = 1200

[channels."a/kw"]
kind = "power"
unit = "kW"
line = "L1"
role = "info"
carrier = "electricity"
gap_limit_s = 3600
"""
READINGS = """timestamp,channel,value,quality
2026-11-01T16:00:00Z,a/kwh,100,good
2026-11-01T16:30:00Z,a/kwh,400,good
2026-11-01T16:45:00Z,a/kwh,50,good
2026-11-01T17:00:00Z,a/kwh,150,good
2026-11-01T16:00:00Z,a/kw,1000,good
2026-11-01T16:30:00Z,a/kw,0,bad
2026-11-01T17:00:00Z,a/kw,1000,good
"""


def test_csv_has_a_column_per_channel_quantity_and_the_counter_events(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(SITE)
    (tmp_path / "r.csv").write_text(READINGS)
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "kpi", "compute", "--site", str(tmp_path / "site.toml"),
         "--readings", str(tmp_path / "r.csv"), "--period", "hour", "--format", "csv"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert float(row["channel:a/kwh:quantity"]) == pytest.approx(450.0)  # 300 + 50 + 100
    assert float(row["channel:a/kwh:coverage"]) == pytest.approx(0.5)
    assert float(row["channel:a/kwh:complete"]) == pytest.approx(1.0)
    assert float(row["channel:a/kw:quantity"]) == pytest.approx(1000.0)  # 1000 kW × 1 h, bridged
    assert float(row["channel:a/kw:coverage"]) == pytest.approx(1.0)
    assert row["start_local"] == "2026-11-02T00:00:00+08:00"
    assert row["counter_events_n"] == "1" and row["flagged_not_counted_n"] == "0"
    (event,) = json.loads(row["counter_events"])
    assert (event["kind"], event["v0"], event["v1"], event["qty"]) == ("reset", 400.0, 50.0, 50.0)
