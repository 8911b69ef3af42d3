"""`python -m benchmarks.kpi_offline` at a tiny size: it runs, and its three implementations agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_offline_benchmark_runs_and_its_implementations_agree(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.kpi_offline",
        "--days",
        "2",
        "--repeats",
        "1",
        "--keep",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2 day(s) × 1440 readings/day × 40 channels = 115,240 rows" in proc.stdout
    assert "agreement on 2 days × (clinker t, electricity kWh)" in proc.stdout and ": agree" in proc.stdout
    for row in ("(a) kpi compute from CSV", "(b) kpi compute from Parquet", "(c) pandas read_csv"):
        assert row in proc.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"site.toml", "readings.csv", "readings.parquet"}
