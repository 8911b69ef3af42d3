"""Cement indicators and clinker output reconciliation, computed by hand from GB 16780-2021's structure."""

from __future__ import annotations

import pytest

from kpi.cement import (
    CementInputs,
    CementSettings,
    ClinkerInventory,
    cement_indicators,
    reconcile_clinker_output,
)
from kpi.clinker import FuelUse

DRYER_COAL = FuelUse("slag dryer coal", 2.0, 23.0, 0.02618, 0.93)
DRYER_KGCE = 2.0 * 1000 * 23.0 / 29.3076  # 46 000 MJ / 29.3076 MJ/kgce = 1 569.559 kgce


def test_cement_with_purchased_clinker_and_a_dryer_at_75_percent():
    inputs = CementInputs(
        cement_t=1000.0, own_clinker_t=700.0, purchased_clinker_t=50.0, prep_electricity_kwh=30_000.0,
        fuels=(DRYER_COAL,),
    )  # fmt: skip
    r = cement_indicators(inputs, own_clinker_kgce_per_t=110.0, settings=CementSettings())
    # clinker ratio (700 + 50) / 1000 = 75 % → limits 80 / 87 / 94 unchanged
    assert r.clinker_ratio_pct == pytest.approx(75.0)
    assert r.limits_kgce_per_t == pytest.approx((80.0, 87.0, 94.0))
    # own 700 × 110 = 77 000; purchased 50 × 117 (default: grade-3 limit) = 5 850;
    # electricity 30 000 × 0.1229 = 3 687; dryer 1 569.559 → 88 106.559 kgce / 1 000 t = 88.107 kgce/t
    expected = (700 * 110.0 + 50 * 117.0 + 30_000 * 0.1229 + DRYER_KGCE) / 1000.0
    assert expected == pytest.approx(88.1066, abs=1e-4)
    assert r.comprehensive_kgce_per_t == pytest.approx(expected)
    assert r.comprehensive_grade == 3  # 87 < 88.107 ≤ 94
    assert r.prep_electricity_kwh_per_t == pytest.approx(30.0)  # 30 000 / 1 000
    assert r.prep_electricity_grade == 3  # 29 < 30 ≤ 34
    assert r.missing == ()
    assert r.provenance["purchased_clinker"]["kgce_per_t"] == 117.0


def test_clinker_ratio_moves_the_limits():
    inputs = CementInputs(cement_t=1000.0, own_clinker_t=800.0, prep_electricity_kwh=28_000.0)
    r = cement_indicators(inputs, own_clinker_kgce_per_t=105.0, settings=CementSettings())
    # ratio 80 % = 75 + 5 points → limits 80 + 5 × 1.10 = 85.5, 87 + 5 × 1.15 = 92.75, 94 + 5 × 1.20 = 100
    assert r.limits_kgce_per_t == pytest.approx((85.5, 92.75, 100.0))
    # (800 × 105 + 28 000 × 0.1229) / 1 000 = (84 000 + 3 441.2) / 1 000 = 87.4412 kgce/t
    assert r.comprehensive_kgce_per_t == pytest.approx(87.4412)
    assert r.comprehensive_grade == 2  # 85.5 < 87.44 ≤ 92.75 (would be grade 3 against the 75 % table)
    assert r.prep_electricity_grade == 2  # 26 < 28 ≤ 29
    assert r.prep_electricity_kwh_per_t == pytest.approx(28.0)


def test_supplier_declared_energy_and_equal_value_electricity():
    settings = CementSettings(
        electricity_basis="equal", supply_coal_rate_gce_per_kwh=300.7,
        purchased_clinker_kgce_per_t=104.0, purchased_clinker_source="supplier declaration 2026-10",
    )  # fmt: skip
    inputs = CementInputs(
        cement_t=500.0, own_clinker_t=0.0, prep_electricity_kwh=15e3, purchased_clinker_t=350.0
    )
    r = cement_indicators(inputs, own_clinker_kgce_per_t=None, settings=settings)
    # grinding plant: all clinker purchased. (350 × 104 + 15 000 × 0.3007) / 500 = (36 400 + 4 510.5) / 500
    assert r.comprehensive_kgce_per_t == pytest.approx(81.821)
    assert r.clinker_ratio_pct == pytest.approx(70.0)  # 350 / 500
    # limits at 70 %: 80 − 5 × 1.10 = 74.5, 87 − 5 × 1.15 = 81.25, 94 − 5 × 1.20 = 88 → 81.82 is grade 3
    assert r.comprehensive_grade == 3
    assert r.provenance["purchased_clinker"]["source"] == "supplier declaration 2026-10"


def test_altitude_raises_only_the_grade_3_cement_limit():
    inputs = CementInputs(cement_t=1000.0, own_clinker_t=750.0, prep_electricity_kwh=30_000.0)
    settings = CementSettings(altitude_m=2000.0, pressure_pa=79_500.0)
    r = cement_indicators(inputs, own_clinker_kgce_per_t=120.0, settings=settings)
    # K_H = 1.179 − 0.211 × 79 500 / 101 325 = 1.179 − 0.165552 = 1.013448; 94 × 1.013448 = 95.2641
    assert r.limits_kgce_per_t == pytest.approx((80.0, 87.0, 95.2641), abs=1e-4)
    # (750 × 120 + 3 687) / 1 000 = 93.687 ≤ 95.264 → grade 3
    assert r.comprehensive_kgce_per_t == pytest.approx(93.687)
    assert r.comprehensive_grade == 3


def test_unknown_own_clinker_energy_is_reported_missing_not_zero():
    inputs = CementInputs(cement_t=1000.0, own_clinker_t=750.0, prep_electricity_kwh=30_000.0)
    r = cement_indicators(inputs, own_clinker_kgce_per_t=None, settings=CementSettings())
    assert r.comprehensive_kgce_per_t is None and r.comprehensive_grade is None
    assert r.missing == ("own_clinker_kgce_per_t",)
    assert r.prep_electricity_kwh_per_t == pytest.approx(30.0)  # the section figure does not need it


def test_no_cement_no_per_tonne_values():
    r = cement_indicators(CementInputs(0.0, 0.0, 100.0), 110.0, CementSettings())
    assert r.comprehensive_kgce_per_t is None and r.prep_electricity_kwh_per_t is None
    assert r.clinker_ratio_pct is None


def test_clinker_ratio_above_100_percent_is_not_graded():
    r = cement_indicators(CementInputs(100.0, 120.0, 3000.0), 110.0, CementSettings())
    assert r.comprehensive_kgce_per_t is None
    assert r.missing == ("clinker_ratio_pct in (0, 100]",)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cement_t": -1.0, "own_clinker_t": 0.0, "prep_electricity_kwh": 0.0},
        {"cement_t": 1.0, "own_clinker_t": float("nan"), "prep_electricity_kwh": 0.0},
        {"cement_t": 1.0, "own_clinker_t": 0.0, "prep_electricity_kwh": float("inf")},
    ],
)
def test_bad_cement_inputs_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be finite"):
        CementInputs(**kwargs)


STOCKTAKE = ClinkerInventory(
    opening_stock_t=11_500, closing_stock_t=12_000, dispatched_t=4_800, purchased_received_t=300
)


def test_meter_and_inventory_agree_within_threshold():
    # dispatched 4 800 + closing 12 000 − opening 11 500 − purchased 300 = 5 000 t own production
    inv = STOCKTAKE
    assert inv.produced_t == 5000.0
    check = reconcile_clinker_output(5080.0, inv)
    assert check.difference_pct == pytest.approx(1.6)  # (5 080 − 5 000) / 5 000 = 1.6 % ≤ 2 %
    assert not check.flagged


def test_meter_and_inventory_disagree_beyond_threshold():
    inv = STOCKTAKE
    check = reconcile_clinker_output(4850.0, inv)
    assert check.difference_pct == pytest.approx(-3.0)  # (4 850 − 5 000) / 5 000 = −3 %
    assert check.flagged
    assert not reconcile_clinker_output(4850.0, inv, threshold_pct=3.5).flagged


def test_inventory_shows_no_production_but_the_scale_does():
    inv = ClinkerInventory(opening_stock_t=1000, closing_stock_t=900, dispatched_t=100)
    check = reconcile_clinker_output(50.0, inv)
    assert check.inventory_t == 0.0 and check.difference_pct is None and check.flagged


def test_bad_inventory_is_refused():
    with pytest.raises(ValueError, match="closing_stock_t"):
        ClinkerInventory(opening_stock_t=0, closing_stock_t=-5, dispatched_t=0)
