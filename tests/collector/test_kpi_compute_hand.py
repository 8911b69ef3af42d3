"""`kilnwatch kpi compute` on readings small enough to check every KPI by hand (GB 16780-2021)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SITE = """
[site]
id = "hand"
timezone = "Asia/Shanghai"
base_interval_s = 900

[lines.L1]
[lines.L1.settings]
whr_treatment = "none"
process_factor = "china_ets"
grid_factor = "national_aef_2023"

[[lab]]
valid_from = 2026-11-01T00:00:00+08:00
value = 25.0

[channels."a/elec_kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "consumption"
carrier = "electricity"

[channels."a/whr_kwh"]
kind = "energy_total"
unit = "MWh"
line = "L1"
role = "credit"
carrier = "electricity"

[channels."a/coal_kg"]
kind = "mass_total"
unit = "kg"
line = "L1"
role = "consumption"
carrier = "coal"
fuel = "bituminous"

[channels."a/clinker_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "output"
carrier = "clinker"

[channels."a/cement_mill_kw"]
kind = "power"
unit = "kW"
line = "L1"
role = "consumption"
carrier = "electricity"
boundary = "cement_prep"
gap_limit_s = 7200

[channels."a/cement_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "output"
carrier = "cement"
boundary = "cement_prep"
"""

# One local hour, 2026-11-02 00:00–01:00 Asia/Shanghai = 2026-11-01 16:00–17:00 UTC, readings at both ends.
READINGS = """timestamp,channel,value,quality
2026-11-01T16:00:00Z,a/elec_kwh,1000,0
2026-11-01T17:00:00Z,a/elec_kwh,6500,0
2026-11-01T16:00:00Z,a/whr_kwh,10.0,0
2026-11-01T17:00:00Z,a/whr_kwh,13.5,0
2026-11-01T16:00:00Z,a/coal_kg,10000,0
2026-11-01T17:00:00Z,a/coal_kg,23500,0
2026-11-01T16:00:00Z,a/clinker_t,500,0
2026-11-01T17:00:00Z,a/clinker_t,600,0
2026-11-01T16:00:00Z,a/cement_mill_kw,2000,0
2026-11-01T17:00:00Z,a/cement_mill_kw,4000,0
2026-11-01T16:00:00Z,a/cement_t,0,0
2026-11-01T17:00:00Z,a/cement_t,120,0
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    site, readings = tmp_path / "site.toml", tmp_path / "readings.csv"
    site.write_text(SITE)
    readings.write_text(READINGS)
    return site, readings


def run_compute(site: Path, readings: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "agent.cli",
        "kpi",
        "compute",
        "--site",
        str(site),
        "--readings",
        str(readings),
    ]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=120)


def test_every_clinker_kpi_matches_the_hand_computation(files: tuple[Path, Path]) -> None:
    proc = run_compute(*files, "--period", "hour", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    assert doc["start"] == "2026-11-01T16:00:00Z" and doc["end"] == "2026-11-01T17:00:00Z"

    clinker_t = 600 - 500  # 100 t
    elec_kwh = 6500 - 1000  # 5500 kWh
    whr_kwh = (13.5 - 10.0) * 1000  # 3.5 MWh = 3500 kWh
    coal_t = (23500 - 10000) / 1000  # 13.5 t
    ncv = 25.0  # MJ/kg, from the lab entry

    # GB/T 2589: 1 kgce = 29.3076 MJ. Coal: 13.5 t × 1000 kg/t × 25 MJ/kg / 29.3076 = 11515.4 kgce
    coal_kgce_per_t = coal_t * 1000 * ncv / 29.3076 / clinker_t  # 115.154 kgce/t
    elec_kwh_per_t = elec_kwh / clinker_t  # 55.0 kWh/t
    comprehensive = coal_kgce_per_t + 0.1229 * elec_kwh_per_t  # 115.154 + 6.7595 = 121.914 kgce/t
    assert doc["clinker_t"] == pytest.approx(clinker_t, rel=1e-12)
    assert doc["electricity_kwh"] == pytest.approx(elec_kwh, rel=1e-12)
    assert doc["whr_kwh"] == pytest.approx(whr_kwh, rel=1e-12)
    assert doc["coal_kgce_per_t"] == pytest.approx(coal_kgce_per_t, rel=1e-9)
    assert doc["electricity_kwh_per_t"] == pytest.approx(elec_kwh_per_t, rel=1e-12)
    assert doc["comprehensive_kgce_per_t"] == pytest.approx(comprehensive, rel=1e-9)
    # GB 16780-2021 Table 2: 121.9 kgce/t > 117 (grade 3) → no grade; > baseline 117 → red.
    assert doc["comprehensive_grade"] is None
    assert doc["electricity_grade"] == 2  # 48 < 55.0 ≤ 57
    assert doc["band"] == "red"

    # CO2: fuel = 13.5 t × 25 GJ/t × 0.02618 tC/GJ × 0.93 × 44/12 = 30.2168 t
    co2_fuel = coal_t * ncv * 0.02618 * 0.93 * 44 / 12
    co2_process = clinker_t * 0.535  # 53.5 t, China ETS default
    co2_elec = (elec_kwh - whr_kwh) / 1000 * 0.5306  # 2.0 MWh net purchased × 0.5306 t/MWh = 1.0612 t
    assert doc["co2_fuel_t"] == pytest.approx(co2_fuel, rel=1e-9)
    assert doc["co2_process_t"] == pytest.approx(co2_process, rel=1e-12)
    assert doc["co2_electricity_t"] == pytest.approx(co2_elec, rel=1e-9)
    assert doc["co2_total_t_per_t"] == pytest.approx(
        (co2_fuel + co2_process + co2_elec) / clinker_t, rel=1e-9
    )

    # Cement preparation: trapezoid of 2000 → 4000 kW over 1 h = 3000 kWh, over 120 t cement = 25 kWh/t.
    assert doc["cement_prep_kwh_per_t"] == pytest.approx((2000 + 4000) / 2 * 1.0 / 120, rel=1e-9)
    assert doc["coverage"] == pytest.approx(1.0)
    assert doc["provenance"]["grid_factor"]["vintage"] == 2023


def test_csv_output_has_one_row_per_line_and_period(files: tuple[Path, Path]) -> None:
    proc = run_compute(*files, "--period", "day", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.strip().splitlines()
    assert "comprehensive_kgce_per_t" in header.split(",")
    # 16:00–17:00 UTC is 00:00–01:00 local on 2026-11-02: one local day, one line.
    assert len(rows) == 1


def test_a_fuel_without_a_lab_value_is_an_error_that_says_what_to_add(files: tuple[Path, Path]) -> None:
    site, readings = files
    site.write_text(SITE.replace("2026-11-01T00:00:00+08:00", "2026-12-01T00:00:00+08:00"))
    proc = run_compute(site, readings, "--period", "hour")
    assert proc.returncode == 2
    assert "a/coal_kg" in proc.stderr and "[[lab]]" in proc.stderr


def test_a_bad_row_names_file_and_line(files: tuple[Path, Path]) -> None:
    site, readings = files
    readings.write_text(READINGS + "2026-11-01T17:00:00Z,a/elec_kwh,notanumber,0\n")
    proc = run_compute(site, readings)
    assert proc.returncode == 2
    assert f"{readings}: line 14" in proc.stderr
