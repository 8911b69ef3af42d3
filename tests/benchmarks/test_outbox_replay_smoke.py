"""`python -m benchmarks.outbox_replay` at a tiny size: it runs, and every publisher delivered everything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_replay_benchmark_runs_and_every_batch_arrives() -> None:
    cmd = [sys.executable, "-m", "benchmarks.outbox_replay", "1000", "--baseline", "200", "--former", "25"]
    cmd += ["--rtt-ms", "20"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "batches of 22 readings" in out
    for link, naive in (("loopback", 200), ("link with 20 ms RTT", 20)):
        assert f"{link}: publisher" in out, out
        for row, count in (
            ("naive: publish, wait_for_publish, commit, one at a time", naive),
            ("agent: max_inflight 100, replay_rate 2000/s (defaults)", 1000),
            ("agent: max_inflight 100, no replay_rate limit", 1000),
            ("agent: max_inflight 20, replay_rate 20/s (former defaults)", 25),
        ):
            verdict = f"{link}, {row}: all {count:,} batches arrived, byte for byte, in seq order"
            assert verdict in out, out
    assert "* projected: 86,400 batches (a day offline at 1 batch/s)" in out
