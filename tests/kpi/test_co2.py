"""CO2 by source: hand-computed fuel, process and electricity emissions."""

from __future__ import annotations

import pytest

from kpi.co2 import (
    CLINKER_PROCESS_FACTORS,
    DEFAULT_FUELS,
    GRID_FACTORS,
    clinker_process_co2_t,
    electricity_co2_t,
    fuel_co2_t,
    oxide_process_ef_t_per_t,
)


def test_bituminous_coal_emission_factor():
    # 1 t × 23.204 GJ/t × 0.02618 tC/GJ × 0.93 × 44/12 = 2.0715 tCO2 (domain.md §5.1: "2.07 tCO2/t coal").
    b = DEFAULT_FUELS["bituminous"]
    co2 = fuel_co2_t(1.0, b.ncv_gj_per_unit, b.carbon_t_per_gj, b.oxidation)
    assert co2 == pytest.approx(23.204 * 0.02618 * 0.93 * 44 / 12)
    assert co2 == pytest.approx(2.07, abs=0.005)


def test_demo_coal_per_hour():
    # 28.08 t at 23 GJ/t, 0.02618 tC/GJ, 93 %: 28.08 × 23 × 0.02618 × 0.93 × 3.6667 = 57.657 t.
    assert fuel_co2_t(28.08, 23.0, 0.02618, 0.93) == pytest.approx(28.08 * 23.0 * 0.02618 * 0.93 * 44 / 12)
    assert fuel_co2_t(28.08, 23.0, 0.02618, 0.93) == pytest.approx(57.657, abs=1e-3)


def test_oxidation_must_be_a_fraction():
    with pytest.raises(ValueError, match="oxidation"):
        fuel_co2_t(1.0, 23.0, 0.02618, 93.0)


def test_process_default_factors():
    assert CLINKER_PROCESS_FACTORS["china_ets"].t_per_t == 0.535
    assert CLINKER_PROCESS_FACTORS["csi"].t_per_t == 0.525
    assert CLINKER_PROCESS_FACTORS["ipcc"].t_per_t == 0.507
    # 208.333 t clinker × 0.535 = 111.458 t CO2.
    assert clinker_process_co2_t(208.333, 0.535) == pytest.approx(208.333 * 0.535)


def test_oxide_method_worked_example():
    # domain.md §5.1: 65 % CaO, 2 % MgO → 0.65 × 44/56 + 0.02 × 44/40 = 0.51071 + 0.022 = 0.533 t/t.
    assert oxide_process_ef_t_per_t(0.65, 0.02) == pytest.approx(0.65 * 44 / 56 + 0.02 * 44 / 40)
    assert oxide_process_ef_t_per_t(0.65, 0.02) == pytest.approx(0.533, abs=5e-4)


def test_oxide_method_subtracts_non_carbonate_oxides():
    # 1 % CaO from slag: (0.65 − 0.01) × 44/56 + 0.02 × 44/40 = 0.50286 + 0.022 = 0.52486.
    assert oxide_process_ef_t_per_t(0.65, 0.02, 0.01, 0.0) == pytest.approx(0.64 * 44 / 56 + 0.02 * 44 / 40)


def test_oxide_method_rejects_percentages_and_impossible_shares():
    with pytest.raises(ValueError, match="cao"):
        oxide_process_ef_t_per_t(65.0, 2.0)
    with pytest.raises(ValueError, match="non-carbonate"):
        oxide_process_ef_t_per_t(0.65, 0.02, 0.70, 0.0)


def test_grid_factors_carry_vintage_and_authority():
    assert GRID_FACTORS["national_ets_2022"].t_per_mwh == 0.5703
    aef = {y: GRID_FACTORS[f"national_aef_{y}"].t_per_mwh for y in (2021, 2022, 2023)}
    assert aef == {2021: 0.5568, 2022: 0.5366, 2023: 0.5306}
    assert GRID_FACTORS["chongqing_2021"].t_per_mwh == 0.4743
    assert GRID_FACTORS["chongqing_2022"].t_per_mwh == 0.5227
    assert GRID_FACTORS["chongqing_2022"].vintage == 2022
    assert GRID_FACTORS["chongqing_2022"].confidence == "CONFIRMED-2nd"


def test_electricity_co2():
    # 4170 kWh net purchased = 4.170 MWh × 0.5306 t/MWh = 2.2126 t.
    assert electricity_co2_t(4170.0, 0.5306) == pytest.approx(4.170 * 0.5306)
