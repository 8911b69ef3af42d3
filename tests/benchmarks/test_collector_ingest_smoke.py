"""`python -m benchmarks.collector_ingest` at a tiny size: it runs, and both consumers account for every
reading; and the benchmark's failure paths: a collector that exits, one that stalls, sizes that do not fit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import collector_ingest
from tests.servers import HttpServer, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("ledger", ["sqlite", "postgres"])
def test_the_ingest_benchmark_runs_and_every_reading_is_accounted_for(ledger: str, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "benchmarks.collector_ingest", "--agents", "4", "--sites", "2"]
    cmd += ["--batches-per-agent", "5", "--timeout", "50", "--keep", str(tmp_path), "--ledger", ledger]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr + (tmp_path / "collector.log").read_text()
    # 2 sites × 2 agents × 5 batches = 20 batches of 31 readings = 620 readings.
    assert (
        f"2 sites × 2 agents × 31 channels, 5 batches per agent = 20 batches, 620 readings; ledger {ledger}"
        in out
    )
    assert "preloaded: 20 batches (+ 4 retained births)" in out
    assert "kilnwatch collector run: all 620 readings in InfluxDB after" in out
    assert "every reading accounted for: the ledger and InfluxDB hold 620" in out
    assert "naive: paho, json.loads, one /write per message: all 620 readings in InfluxDB after" in out
    assert "every reading accounted for: InfluxDB holds 620" in out
    # The baseline writes each message's 31 readings in one request: 20 requests of 31 points.
    assert "InfluxDB: 620 points in 20 /write requests (31 points/request)" in out
    assert "collector process:" in out and "peak RSS" in out
    assert "ratio collector / naive:" in out
    assert {p.name for p in (tmp_path / "sites").iterdir()} == {"site01.toml", "site02.toml"}
    # The PostgreSQL run's ledger is the server's: no SQLite ledger file is made.
    assert (tmp_path / "ledger.sqlite").exists() == (ledger == "sqlite")


def test_a_collector_that_exits_is_reported_with_the_end_of_its_log(
    influx1: HttpServer, tmp_path: Path
) -> None:
    config = tmp_path / "collector.toml"
    config.write_text('[collector]\nsite_model = "missing"\n')
    ledger = collector_ingest.SqliteLedgerCount(tmp_path / "ledger.sqlite")
    run = collector_ingest.run_collector(config, ledger, influx1.url, 1, 31, timeout=60)
    assert run.done_s is None
    assert "the collector exited with code 2" in run.problem
    assert "collector.site_model" in run.problem, "the collector's own words are quoted"
    assert "0 of 1 batches in the ledger, 0 of 31 in InfluxDB" in run.problem


def test_a_collector_that_never_gets_there_times_out_with_the_counts_reached(
    influx1: HttpServer, tmp_path: Path
) -> None:
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "s.toml").write_text(
        '[site]\nid = "s"\n[lines.L1]\n[channels."gw/x_kwh"]\n'
        'kind = "energy_total"\nunit = "kWh"\nline = "L1"\nrole = "consumption"\n'
    )
    # No broker listens on this port: the collector runs, and nothing arrives.
    config = collector_ingest.collector_config(tmp_path, free_port(), influx1.url, None, free_port())
    ledger = collector_ingest.SqliteLedgerCount(tmp_path / "ledger.sqlite")
    run = collector_ingest.run_collector(config, ledger, influx1.url, 1, 31, timeout=8)
    assert run.done_s is None
    assert run.problem.startswith("timed out; 0 of 1 batches in the ledger"), run.problem


def test_agents_must_spread_evenly_over_the_sites(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        collector_ingest.main(["--agents", "7", "--sites", "2"])
    assert exc.value.code == 2
    assert "--agents 7 is not a multiple of --sites 2" in capsys.readouterr().err
