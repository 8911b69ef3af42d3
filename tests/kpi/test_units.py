"""Hand-computed standard-coal conversions and unit normalisation (GB/T 2589-2020)."""

from __future__ import annotations

import pytest

from kpi.confidence import CONFIDENCE_LABELS
from kpi.units import (
    ELECTRICITY_KGCE_PER_KWH_EQUIVALENT,
    KGCE_KJ,
    STANDARD_COAL_FACTORS,
    electricity_kgce,
    fuel_kgce,
    to_kw,
    to_kwh,
    to_t,
    to_t_per_h,
)


def test_kgce_is_7000_kcal():
    assert pytest.approx(7000 * 4.1868) == KGCE_KJ  # 29307.6 kJ


def test_fuel_kgce():
    # 12 t coal at 23 MJ/kg: 12 × 1000 kg × 23 MJ/kg = 276 000 MJ; / 29.3076 MJ/kgce = 9417.35 kgce.
    assert fuel_kgce(12.0, 23.0) == pytest.approx(12.0 * 1000 * 23.0 / 29.3076)
    assert fuel_kgce(12.0, 23.0) == pytest.approx(9417.35, abs=0.01)


def test_reference_coal_factors_are_kcal_over_7000():
    # The Appendix A factors are kcal/kg ÷ 7000; its kJ column uses 4.1816 kJ/kcal (20908 = 5000 × 4.1816).
    # raw coal 5000 kcal/kg / 7000 = 0.7143; diesel 42652 / 4.1816 = 10200 kcal/kg / 7000 = 1.4571.
    assert STANDARD_COAL_FACTORS["raw_coal"].kgce_per_unit == pytest.approx(20908 / 4.1816 / 7000, abs=1e-4)
    assert STANDARD_COAL_FACTORS["diesel"].kgce_per_unit == pytest.approx(42652 / 4.1816 / 7000, abs=1e-4)
    # heat: 1 MJ / 29.3076 MJ/kgce = 0.03412 kgce/MJ.
    assert STANDARD_COAL_FACTORS["heat"].kgce_per_unit == pytest.approx(1 / 29.3076, abs=1e-5)
    assert all(f.confidence in CONFIDENCE_LABELS for f in STANDARD_COAL_FACTORS.values())


def test_measured_ncv_is_not_the_reference_factor():
    # 1 t at 20.908 MJ/kg through fuel_kgce: 20908 / 29307.6 = 0.7134 kgce/kg, 0.13 % below 0.7143.
    assert fuel_kgce(1.0, 20.908) / 1000 == pytest.approx(20908 / 29307.6)


def test_electricity_equivalent_value():
    # 当量值: 3600 kJ/kWh / 29307.6 kJ/kgce = 0.12284 ≈ 0.1229; 1000 kWh → 122.9 kgce.
    assert pytest.approx(3600 / 29307.6, abs=1e-4) == ELECTRICITY_KGCE_PER_KWH_EQUIVALENT
    assert electricity_kgce(1000.0, "equivalent", 300.7) == pytest.approx(1000 * 0.1229)


def test_electricity_equal_value():
    # 等价值 at 300.7 gce/kWh: 1000 kWh × 300.7 g / 1000 g/kg = 300.7 kgce.
    assert electricity_kgce(1000.0, "equal", 300.7) == pytest.approx(300.7)
    assert electricity_kgce(1000.0, "equal", 290.0) == pytest.approx(290.0)


def test_unknown_basis_raises():
    with pytest.raises(ValueError, match="basis"):
        electricity_kgce(1.0, "primary", 300.7)  # type: ignore[arg-type]


def test_unit_normalisation():
    assert to_kwh(1500.0, "Wh") == pytest.approx(1.5)
    assert to_kwh(2.0, "MWh") == 2000.0
    assert to_kwh(3.0, "kWh") == 3.0
    assert to_t(2500.0, "kg") == pytest.approx(2.5)
    assert to_kw(11.46, "MW") == pytest.approx(11460.0)
    assert to_kw(65_000.0, "W") == pytest.approx(65.0)
    assert to_t_per_h(28080.0, "kg/h") == pytest.approx(28.08)
    assert to_t_per_h(5000.0, "t/d") == pytest.approx(5000 / 24)  # 208.333 t/h


def test_unknown_unit_is_named_in_the_error():
    with pytest.raises(ValueError, match="'BTU'"):
        to_kwh(1.0, "BTU")
    with pytest.raises(ValueError, match="'lb'"):
        to_t(1.0, "lb")
    with pytest.raises(ValueError, match="'hp'"):
        to_kw(1.0, "hp")
