"""Generated history: counter deltas in readings.csv add up to the truth, per-tonne figures are plausible."""

from __future__ import annotations

import csv
import itertools
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators.kiln.generate import generate

MODBUS_POINTS = [
    "raw_mill_kw",
    "raw_mill_kwh",
    "kiln_kw",
    "kiln_kwh",
    "coal_mill_kw",
    "coal_mill_kwh",
    "cooler_kw",
    "cooler_kwh",
    "aux_kw",
    "aux_kwh",
    "whr_kw",
    "whr_kwh",
    "cement_mill_kw",
    "cement_mill_kwh",
    "coal_kiln_t",
    "coal_kiln_tph",
    "coal_calciner_t",
    "coal_calciner_tph",
    "clinker_t",
    "clinker_tph",
    "cement_t",
    "cement_tph",
]
DCS_POINTS = [
    "dcs_kiln_feed_tph",
    "dcs_kiln_coal_tph",
    "dcs_calciner_coal_tph",
    "dcs_clinker_tph",
    "dcs_kiln_inlet_temp",
    "dcs_preheater_exit_temp",
    "dcs_whr_kw",
    "dcs_id_fan_kw",
    "dcs_coal_ncv",
]

# Counter point -> (truth column, one register step in the point's unit).
COUNTERS = {
    "raw_mill_kwh": ("raw_mill_kwh", 0.001),  # int64 Wh
    "kiln_kwh": ("kiln_kwh", 0.001),
    "whr_kwh": ("whr_kwh", 0.001),
    "coal_mill_kwh": ("coal_mill_kwh", 0.01),  # int32 0.01 kWh
    "cooler_kwh": ("cooler_kwh", 0.125),  # float32 kWh near 1.9e6: 2^-3
    "aux_kwh": ("aux_kwh", 0.2),  # uint32 0.01 kWh secondary × CT 20
    "cement_mill_kwh": ("cement_mill_kwh", 1e-6),  # float64 Wh
    "coal_kiln_t": ("coal_kiln_t", 0.001),  # uint32 kg
    "coal_calciner_t": ("coal_calciner_t", 0.001),
    "clinker_t": ("clinker_t", 0.001),
    "cement_t": ("cement_t", 0.001),
}
CLINKER_WRAP_T = 2**32 / 1000  # 4,294,967.296 t


def read_readings(path: Path) -> tuple[list[str], dict[str, list[float]]]:
    stamps: list[str] = []
    values: dict[str, list[float]] = defaultdict(list)
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["timestamp", "channel", "value", "quality"]
        for ts, channel, value, quality in reader:
            assert quality == "0"
            if not stamps or stamps[-1] != ts:
                stamps.append(ts)
            values[channel].append(float(value))
    return stamps, values


def read_truth(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def counter_total(series: list[float], wrap: float | None = None) -> float:
    total = 0.0
    for a, b in itertools.pairwise(series):
        delta = b - a
        if wrap is not None and delta < 0:
            delta += wrap
        total += delta
    return total


@pytest.fixture(scope="module")
def one_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("gen")
    return generate(1.0, 60.0, out), out


def test_files_have_every_point_at_every_step(one_day: tuple[dict, Path]) -> None:
    summary, out = one_day
    stamps, values = read_readings(out / "readings.csv")
    assert set(values) == {f"kiln-gw/{p}" for p in MODBUS_POINTS + DCS_POINTS}
    assert len(stamps) == 24 * 60 + 1 and all(len(v) == len(stamps) for v in values.values())
    # Default start: 2026-11-01 00:00 in Asia/Shanghai (UTC+8) = 2026-10-31 16:00 UTC.
    assert stamps[0] == "2026-10-31T16:00:00.000Z" and stamps[-1] == "2026-11-01T16:00:00.000Z"
    assert stamps[1] == "2026-10-31T16:01:00.000Z"
    assert summary["rows"] == len(stamps) * 31 and summary["channels"] == 31
    truth = read_truth(out / "truth.csv")
    assert list(truth[0]) == [
        "t",
        "raw_mill_kwh",
        "kiln_kwh",
        "coal_mill_kwh",
        "cooler_kwh",
        "aux_kwh",
        "whr_kwh",
        "cement_mill_kwh",
        "coal_kiln_t",
        "coal_calciner_t",
        "clinker_t",
        "cement_t",
        "coal_kgce",
        "coal_ncv_mj_per_kg",
    ]
    assert [row["t"] for row in truth] == stamps
    assert float(truth[0]["clinker_t"]) == 0.0


def test_counter_deltas_add_up_to_the_truth(one_day: tuple[dict, Path]) -> None:
    _, out = one_day
    _, values = read_readings(out / "readings.csv")
    final = read_truth(out / "truth.csv")[-1]
    for point, (column, step) in COUNTERS.items():
        measured = counter_total(values[f"kiln-gw/{point}"])
        true = float(final[column])
        # The meter floors the exact counter: a delta is off by less than one register step (+ float noise).
        assert abs(measured - true) < step + 1e-6 * max(1.0, true), (point, measured, true)


def test_per_tonne_figures_are_in_the_plausible_bands(one_day: tuple[dict, Path]) -> None:
    _, out = one_day
    _, values = read_readings(out / "readings.csv")
    total = {p: counter_total(values[f"kiln-gw/{p}"]) for p in COUNTERS}
    clinker = total["clinker_t"]
    assert 4700 < clinker < 5300  # 5000 t/d
    electricity = sum(
        total[p] for p in ("raw_mill_kwh", "kiln_kwh", "coal_mill_kwh", "cooler_kwh", "aux_kwh")
    )
    assert 50 <= electricity / clinker <= 60  # kWh/t clinker
    coal_t = total["coal_kiln_t"] + total["coal_calciner_t"]
    heat_gj_per_t = coal_t * 1000 * 23.0 / 1000 / clinker  # kg × MJ/kg → MJ → GJ, per t clinker
    assert 3.0 <= heat_gj_per_t <= 3.2
    assert 0.39 < total["coal_kiln_t"] / coal_t < 0.41
    final = read_truth(out / "truth.csv")[-1]
    kgce_per_t = float(final["coal_kgce"]) / float(final["clinker_t"])
    assert abs(kgce_per_t - heat_gj_per_t * 1000 / 29.3076) < 0.01  # kgce = MJ / 29.3076
    assert 28 <= total["whr_kwh"] / clinker <= 40
    assert 26 <= total["cement_mill_kwh"] / total["cement_t"] <= 34


def test_power_readings_integrate_to_the_energy_counters(one_day: tuple[dict, Path]) -> None:
    _, out = one_day
    _, values = read_readings(out / "readings.csv")
    # Each kW reading is the power held over the following minute: a left sum of kW × 1/60 h.
    for section in ("raw_mill", "kiln", "coal_mill", "cooler", "aux", "whr", "cement_mill"):
        kw = values[f"kiln-gw/{section}_kw"][:-1]
        kwh = counter_total(values[f"kiln-gw/{section}_kwh"])
        assert abs(sum(kw) / 60 - kwh) < 1e-4 * kwh + 0.25, section


def test_clinker_totaliser_wraps_and_the_truth_still_adds_up(tmp_path: Path) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    generate(4.0, 300.0, tmp_path, start=start, seed=2, agent="kg")
    stamps, values = read_readings(tmp_path / "readings.csv")
    assert stamps[0] == "2026-03-01T00:00:00.000Z"
    clinker = values["kg/clinker_t"]
    drops = [i for i in range(1, len(clinker)) if clinker[i] < clinker[i - 1]]
    assert len(drops) == 1  # 17,967.296 t to the wrap at ~208 t/h: about 3.6 days in
    assert clinker[drops[0]] < 100  # back to near 0 t
    assert timedelta(days=3.3) < timedelta(minutes=5 * drops[0]) < timedelta(days=3.9)
    true = float(read_truth(tmp_path / "truth.csv")[-1]["clinker_t"])
    assert abs(counter_total(clinker, wrap=CLINKER_WRAP_T) - true) < 0.001 + 1e-9 * true


def test_cli_generate_writes_the_files(tmp_path: Path) -> None:
    kilnwatch = Path(sys.executable).with_name("kilnwatch")
    out = tmp_path / "gen"
    cmd = [str(kilnwatch), "sim", "kiln", "--generate", "--days", "0.1", "--step", "30", "--out", str(out)]
    result = subprocess.run(
        [*cmd, "--seed", "3", "--agent", "gw2"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    stamps, values = read_readings(out / "readings.csv")
    assert len(stamps) == 0.1 * 86_400 / 30 + 1  # 288 steps + the start
    assert set(values) == {f"gw2/{p}" for p in MODBUS_POINTS + DCS_POINTS}
    assert len(read_truth(out / "truth.csv")) == len(stamps)
    assert "readings on 31 channels" in result.stderr
