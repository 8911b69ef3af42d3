"""GB 16780-2021 grades, clinker-ratio and altitude corrections, NDRC bands: hand-computed boundaries."""

from __future__ import annotations

import pytest

from kpi.standards import (
    CEMENT_PREP_ELECTRICITY,
    CLINKER_COAL,
    CLINKER_ELECTRICITY,
    CLINKER_ENERGY,
    NDRC_CLINKER_ENERGY,
    altitude_corrected,
    altitude_factor,
    band,
    cement_energy_table,
    grade,
    ndrc_edition_label,
)


def test_grade_table_values_and_labels():
    assert CLINKER_ENERGY.limits == (100.0, 107.0, 117.0)
    assert CLINKER_ELECTRICITY.limits == (48.0, 57.0, 61.0)
    assert CLINKER_COAL.limits == (94.0, 100.0, 109.0)
    assert CEMENT_PREP_ELECTRICITY.limits == (26.0, 29.0, 34.0)
    assert CLINKER_ENERGY.standard == "GB 16780-2021" and CLINKER_ENERGY.confidence == "CONFIRMED-2nd"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(95.0, 1), (100.0, 1), (100.01, 2), (107.0, 2), (112.54, 3), (117.0, 3), (117.01, None)],
)
def test_grade_boundaries_are_inclusive(value, expected):
    assert grade(value, CLINKER_ENERGY) == expected


def test_grade_rejects_nan():
    with pytest.raises(ValueError):
        grade(float("nan"), CLINKER_ENERGY)


def test_cement_limits_move_with_clinker_ratio():
    # 80 % clinker = +5 points: 80 + 5 × 1.10 = 85.5; 87 + 5 × 1.15 = 92.75; 94 + 5 × 1.20 = 100.0.
    assert cement_energy_table(80.0).limits == pytest.approx((85.5, 92.75, 100.0))
    # 70 %: −5 points: 80 − 5.5 = 74.5; 87 − 5.75 = 81.25; 94 − 6 = 88.0.
    assert cement_energy_table(70.0).limits == pytest.approx((74.5, 81.25, 88.0))
    assert cement_energy_table(75.0).limits == (80.0, 87.0, 94.0)


def test_altitude_factor():
    # K_H = 1.179 − 0.211 × P/101325: at 101325 Pa 0.968;
    # at 79500 Pa (≈ 2000 m) 1.179 − 0.211 × 0.78460 = 1.01345.
    assert altitude_factor(101325.0) == pytest.approx(1.179 - 0.211)
    assert altitude_factor(79500.0) == pytest.approx(1.179 - 0.211 * 79500 / 101325)
    assert altitude_factor(79500.0) == pytest.approx(1.0134, abs=1e-4)


def test_altitude_correction_only_above_1500_m_and_only_grade_3():
    k = 1.179 - 0.211 * 79500 / 101325
    corrected = altitude_corrected(CLINKER_ENERGY, 2000.0, 79500.0)
    assert corrected.limits == pytest.approx((100.0, 107.0, 117.0 * k))
    assert altitude_corrected(CLINKER_ENERGY, 1500.0, 84500.0) is CLINKER_ENERGY  # at 1500 m: not above
    assert altitude_corrected(CEMENT_PREP_ELECTRICITY, 3000.0, 70000.0) is CEMENT_PREP_ELECTRICITY


def test_ndrc_benchmark_and_baseline_with_editions():
    for edition in ("2021", "2023"):
        entry = NDRC_CLINKER_ENERGY[edition]
        assert (entry.benchmark, entry.baseline) == (100.0, 117.0)
    assert ndrc_edition_label("2021") == "2021 (发改产业〔2021〕1609号)"
    assert ndrc_edition_label("2023") == "2023 (发改产业〔2023〕723号)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(99.0, "green"), (100.0, "green"), (100.5, "amber"), (117.0, "amber"), (117.1, "red")],
)
def test_band(value, expected):
    assert band(value, 100.0, 117.0) == expected


def test_band_rejects_inverted_thresholds():
    with pytest.raises(ValueError):
        band(100.0, 117.0, 100.0)
