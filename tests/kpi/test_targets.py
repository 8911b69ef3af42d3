"""Plant targets (reference/domain.md §0), trajectories, status and combined flags: hand-computed cases."""

from __future__ import annotations

import pytest

from kpi.confidence import CONFIDENCE_LABELS
from kpi.standards import CLINKER_ELECTRICITY, CLINKER_ENERGY, NDRC_CLINKER_ENERGY
from kpi.targets import (
    TARGET_RULES,
    absolute_target,
    combined_flags,
    relative_target,
    target_status,
    target_value,
    trajectory,
)

NATIONAL = TARGET_RULES["national_clinker_2025"]


def test_named_targets_from_domain_section_0():
    assert set(TARGET_RULES) == {
        "national_clinker_2025",
        "cement_plan_2024_clinker",
        "chongqing_industry_2025",
        "chongqing_clinker_2025",
    }
    pct = {k: (r.reduction_pct, r.base_year, r.target_year, r.confidence) for k, r in TARGET_RULES.items()}
    assert pct["national_clinker_2025"] == (3.0, 2020, 2025, "CONFIRMED")
    assert pct["cement_plan_2024_clinker"] == (3.7, 2020, 2025, "CONFIRMED")
    assert pct["chongqing_industry_2025"] == (14.5, 2020, 2025, "CONFIRMED")
    assert pct["chongqing_clinker_2025"] == (3.0, 2020, 2025, "UNCONFIRMED")  # not in the Chongqing excerpts
    assert NATIONAL.indicator == CLINKER_ENERGY.indicator
    assert TARGET_RULES["chongqing_industry_2025"].indicator == "industrial_value_added_energy_intensity"
    for rule in TARGET_RULES.values():
        assert rule.confidence in CONFIDENCE_LABELS and rule.sources and rule.document and rule.label


def test_target_value():
    # 110 kgce/t in 2020: −3 % → 110 × 0.97 = 106.7; −3.7 % → 110 × 0.963 = 105.93.
    assert target_value(110.0, 3.0) == pytest.approx(106.7)
    assert target_value(110.0, 3.7) == pytest.approx(105.93)
    # Chongqing −14.5 % of 0.5 tce per 10⁴ yuan: 0.5 × 0.855 = 0.4275.
    assert target_value(0.5, 14.5) == pytest.approx(0.4275)


@pytest.mark.parametrize(
    ("year", "value"),
    [
        (2019, 110.0),  # before the base year: held at the base value
        (2020, 110.0),
        (2022.5, 110.0 - 3.3 * 0.5),  # 108.35: half way, 3.3 = 110 × 3 %
        (2023, 110.0 - 3.3 * 3 / 5),  # 108.02
        (2025, 106.7),
        (2030, 106.7),  # after the target year: held at the target
    ],
)
def test_linear_trajectory(year, value):
    assert trajectory(2020, 110.0, 2025, 3.0, year) == pytest.approx(value)


def test_target_value_and_trajectory_validation():
    with pytest.raises(ValueError, match="base_value"):
        target_value(float("nan"), 3.0)
    with pytest.raises(ValueError, match="reduction_pct must be finite and ≤ 100"):
        target_value(110.0, 101.0)
    with pytest.raises(ValueError, match=r"target_year \(2020\) must be after base_year \(2020\)"):
        trajectory(2020, 110.0, 2020, 3.0, 2020)
    with pytest.raises(ValueError, match="year must be finite"):
        trajectory(2020, 110.0, 2025, 3.0, float("nan"))


def test_relative_target_status_met_on_track_off_track():
    t = relative_target(NATIONAL, 110.0, "kgce/t")
    assert (t.target_value, t.base_year, t.base_value, t.target_year) == pytest.approx(
        (106.7, 2020, 110.0, 2025)
    )
    assert (t.document, t.confidence, t.reduction_pct) == (NATIONAL.document, "CONFIRMED", 3.0)
    # 2023 trajectory: 108.02 kgce/t.
    met = target_status(106.5, t, 2023)
    assert met.status == "met" and met.margin == pytest.approx(0.2)  # 106.7 − 106.5
    on = target_status(107.9, t, 2023)
    assert on.status == "on_track"
    assert on.trajectory_value == pytest.approx(108.02)
    assert on.margin_to_trajectory == pytest.approx(0.12)  # 108.02 − 107.9
    assert on.margin == pytest.approx(-1.2)  # 106.7 − 107.9: still 1.2 kgce/t to go
    off = target_status(108.5, t, 2023)
    assert off.status == "off_track" and off.margin_to_trajectory == pytest.approx(-0.48)  # 108.02 − 108.5
    # at the target year the trajectory is the target: 107.0 > 106.7 is off track, not on track.
    assert target_status(107.0, t, 2025).status == "off_track"
    assert target_status(t.target_value, t, 2025).status == "met"  # inclusive


def test_absolute_targets():
    t = absolute_target(
        "clinker_comprehensive_energy", "kgce/t", 104.0, 2026,
        label="plant: 104 kgce/t by 2026", document="plant energy plan", confidence="CONFIRMED",
    )  # fmt: skip
    assert t.reduction_pct is None and t.base_year is None
    check = target_status(105.0, t, 2024)
    assert (check.status, check.trajectory_value, check.margin_to_trajectory) == ("off_track", None, None)
    assert check.margin == pytest.approx(-1.0)
    with_base = absolute_target(
        "clinker_comprehensive_energy", "kgce/t", 104.0, 2026, label="x", document="plan",
        confidence="UNCONFIRMED", base_year=2022, base_value=108.0,
    )  # fmt: skip
    # 2024 is half way from 108 (2022) to 104 (2026): 106.0; 105.0 ≤ 106.0 → on track.
    assert target_status(105.0, with_base, 2024).trajectory_value == pytest.approx(106.0)
    assert target_status(105.0, with_base, 2024).status == "on_track"
    with pytest.raises(ValueError, match="both base_year and base_value"):
        absolute_target("i", "u", 1.0, 2026, label="x", document="d", confidence="CONFIRMED", base_year=2020)
    with pytest.raises(ValueError, match="target_year"):
        absolute_target(
            "i",
            "u",
            1.0,
            2020,
            label="x",
            document="d",
            confidence="CONFIRMED",
            base_year=2020,
            base_value=2.0,
        )
    with pytest.raises(ValueError, match="non-finite"):
        target_status(float("inf"), t, 2024)


def test_combined_flags():
    t = relative_target(NATIONAL, 110.0, "kgce/t")
    flags = combined_flags(107.9, CLINKER_ENERGY, NDRC_CLINKER_ENERGY["2023"], t, 2023)
    # grade 3: 107 < 107.9 ≤ 117; NDRC amber: 100 < 107.9 ≤ 117; target on track (trajectory 108.02).
    assert flags["grade"] == 3 and flags["band"] == "amber" and flags["target_status"] == "on_track"
    assert flags["grade_standard"] == "GB 16780-2021 Table 2" and flags["grade_confidence"] == "CONFIRMED-2nd"
    assert (flags["ndrc_edition"], flags["band_confidence"]) == ("2023", "UNCONFIRMED")
    assert flags["target_value"] == pytest.approx(106.7)
    assert flags["target_trajectory"] == pytest.approx(108.02)
    assert flags["target_margin"] == pytest.approx(-1.2)
    assert (flags["target_document"], flags["target_confidence"]) == (NATIONAL.document, "CONFIRMED")
    best = combined_flags(99.0, CLINKER_ENERGY, NDRC_CLINKER_ENERGY["2021"], t, 2021)
    assert (best["grade"], best["band"], best["target_status"]) == (1, "green", "met")
    worst = combined_flags(118.0, CLINKER_ENERGY, NDRC_CLINKER_ENERGY["2021"], t, 2021)
    assert (worst["grade"], worst["band"], worst["target_status"]) == (None, "red", "off_track")
    only_grade = combined_flags(50.0, CLINKER_ELECTRICITY)
    assert only_grade["grade"] == 2 and only_grade["band"] is None and only_grade["target_status"] is None


def test_combined_flags_rejects_mismatched_indicators_and_missing_year():
    t = relative_target(NATIONAL, 110.0, "kgce/t")
    with pytest.raises(ValueError, match="BenchmarkBaseline is for clinker_comprehensive_energy"):
        combined_flags(50.0, CLINKER_ELECTRICITY, NDRC_CLINKER_ENERGY["2023"])
    with pytest.raises(ValueError, match=r"Target is for clinker_comprehensive_energy \[kgce/kg\]"):
        combined_flags(107.0, CLINKER_ENERGY, None, relative_target(NATIONAL, 0.11, "kgce/kg"), 2023)
    with pytest.raises(ValueError, match="year is required"):
        combined_flags(107.0, CLINKER_ENERGY, None, t)
