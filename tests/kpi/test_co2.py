"""CO2 by source: hand-computed fuel, process, electricity and heat CO2, biogenic split, factor tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpi.co2 import (
    ALTERNATIVE_FUELS,
    CLINKER_PROCESS_FACTORS,
    DEFAULT_FUELS,
    DEFAULT_HEAT_FACTOR,
    GRID_FACTORS,
    FuelCarbon,
    clinker_process_co2_t,
    electricity_co2_t,
    fuel_co2_split,
    fuel_co2_t,
    heat_co2_t,
    oxide_process_ef_t_per_t,
)
from kpi.confidence import CONFIDENCE_LABELS


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


def test_ets_default_factors_for_other_clinker_types():
    # domain.md §5.1, ETS 2025 [CONFIRMED-2nd]: white 0.550, sulfo/ferro-aluminate 0.413, aluminate 0.292.
    expected = {"china_ets_white": 0.550, "china_ets_sulfoaluminate": 0.413, "china_ets_aluminate": 0.292}
    for key, value in expected.items():
        assert CLINKER_PROCESS_FACTORS[key].t_per_t == value
        assert CLINKER_PROCESS_FACTORS[key].confidence == "CONFIRMED-2nd"
    assert CLINKER_PROCESS_FACTORS["china_ets"].source.startswith(
        "China national ETS cement guideline (2025) default, Portland clinker;"
    )


def test_grid_factor_table_2023_regions_and_variants():
    regions_2023 = {
        "north_china_2023": 0.6361,  # 华北
        "northeast_china_2023": 0.5122,  # 东北
        "east_china_2023": 0.5500,  # 华东
        "central_china_2023": 0.5271,  # 华中
        "northwest_china_2023": 0.5543,  # 西北
        "south_china_2023": 0.4042,  # 南方
        "southwest_china_2023": 0.2472,  # 西南
    }
    for key, value in regions_2023.items():
        f = GRID_FACTORS[key]
        assert (f.t_per_mwh, f.vintage, f.authority, f.confidence) == (value, 2023, "MEE + NBS", "CONFIRMED")
    assert GRID_FACTORS["national_aef_2023_excl_market_nonfossil"].t_per_mwh == 0.6096
    assert GRID_FACTORS["national_aef_2022_excl_market_nonfossil"].t_per_mwh == 0.5856
    assert GRID_FACTORS["national_fossil_power_2023"].t_per_mwh == 0.8273
    sw_2022 = GRID_FACTORS["southwest_china_2022"]
    assert (sw_2022.t_per_mwh, sw_2022.vintage, sw_2022.confidence) == (0.2268, 2022, "CONFIRMED-2nd")


def test_grid_factor_table_provinces():
    provinces = {
        ("sichuan", 2021): 0.1255,
        ("sichuan", 2022): 0.1404,
        ("yunnan", 2021): 0.1235,
        ("yunnan", 2022): 0.1073,
        ("chongqing", 2021): 0.4743,
        ("chongqing", 2022): 0.5227,
    }
    for (province, year), value in provinces.items():
        f = GRID_FACTORS[f"{province}_{year}"]
        assert (f.t_per_mwh, f.vintage, f.region.lower()) == (value, year, province)
        assert f.confidence == "CONFIRMED-2nd"


def test_every_factor_carries_a_known_label_and_a_source():
    rows = [*GRID_FACTORS.values(), *CLINKER_PROCESS_FACTORS.values(), *DEFAULT_FUELS.values(),
            *ALTERNATIVE_FUELS.values(), DEFAULT_HEAT_FACTOR]  # fmt: skip
    for row in rows:
        assert row.confidence in CONFIDENCE_LABELS
        assert row.source


def test_fossil_fuels_have_no_biogenic_carbon_and_alternative_fuels_are_unconfirmed():
    assert all(f.biogenic_fraction == 0.0 for f in DEFAULT_FUELS.values())
    assert set(ALTERNATIVE_FUELS) == {"waste_tyres", "rdf", "sewage_sludge", "wood_chips", "rice_husk"}
    assert all(f.confidence == "UNCONFIRMED" for f in ALTERNATIVE_FUELS.values())
    assert ALTERNATIVE_FUELS["waste_tyres"].biogenic_fraction == 0.27
    for biomass in ("sewage_sludge", "wood_chips", "rice_husk"):
        assert ALTERNATIVE_FUELS[biomass].biogenic_fraction == 1.0
    # Tyres: carbon stored so that CC × 44/12 gives back the cited 85 kgCO2/GJ = 0.085 tCO2/GJ.
    assert ALTERNATIVE_FUELS["waste_tyres"].carbon_t_per_gj * 44 / 12 == pytest.approx(0.085)


def test_tyres_split_into_fossil_and_biogenic_memo():
    # 10 t × 28 GJ/t × (0.085 × 12/44) tC/GJ × 1.0 × 44/12 = 10 × 28 × 0.085 = 23.8 t CO2 in all;
    # fossil = 23.8 × (1 − 0.27) = 17.374 t (counted); biogenic memo = 23.8 × 0.27 = 6.426 t (reported only).
    tyres = ALTERNATIVE_FUELS["waste_tyres"]
    split = fuel_co2_split(10.0, tyres.ncv_gj_per_unit, tyres.carbon_t_per_gj, tyres.oxidation,
                           tyres.biogenic_fraction)  # fmt: skip
    assert split.fossil_t == pytest.approx(17.374)
    assert split.biogenic_memo_t == pytest.approx(6.426)
    fossil, memo = split  # a plain (fossil_t, biogenic_memo_t) pair
    assert (fossil, memo) == (split.fossil_t, split.biogenic_memo_t)


def test_lab_values_replace_the_placeholder_defaults():
    # RDF with a lab NCV 18 GJ/t, carbon 0.026 tC/GJ, 40 % biogenic carbon, 5 t:
    # total = 5 × 18 × 0.026 × 1.0 × 44/12 = 8.58 t; fossil = 8.58 × 0.6 = 5.148 t; memo = 3.432 t.
    split = fuel_co2_split(5.0, 18.0, 0.026, 1.0, 0.40)
    assert split.fossil_t == pytest.approx(5 * 18 * 0.026 * 44 / 12 * 0.6)
    assert split.fossil_t == pytest.approx(5.148)
    assert split.biogenic_memo_t == pytest.approx(3.432)


def test_split_of_a_fossil_fuel_is_all_fossil_and_of_biomass_all_memo():
    coal = DEFAULT_FUELS["bituminous"]
    total = fuel_co2_t(1.0, coal.ncv_gj_per_unit, coal.carbon_t_per_gj, coal.oxidation)
    split = fuel_co2_split(1.0, coal.ncv_gj_per_unit, coal.carbon_t_per_gj, coal.oxidation, 0.0)
    assert split == (total, 0.0)
    # Rice husk, 2 t: 2 × 11.6 × 0.0273 × 1.0 × 44/12 = 2.3222 t, all memo.
    husk = ALTERNATIVE_FUELS["rice_husk"]
    split = fuel_co2_split(2.0, husk.ncv_gj_per_unit, husk.carbon_t_per_gj, husk.oxidation, 1.0)
    assert split.fossil_t == 0.0
    assert split.biogenic_memo_t == pytest.approx(2 * 11.6 * 0.0273 * 44 / 12)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1.0, 23.0, 0.026, 0.93, 1.2), "biogenic_fraction"),
        ((1.0, 23.0, 0.026, 0.93, -0.1), "biogenic_fraction"),
        ((-1.0, 23.0, 0.026, 0.93, 0.0), "mass_t"),
        ((1.0, -23.0, 0.026, 0.93, 0.0), "ncv_gj_per_t"),
        ((1.0, 23.0, float("nan"), 0.93, 0.0), "carbon_t_per_gj"),
        ((1.0, 23.0, 0.026, 93.0, 0.0), "oxidation"),
    ],
)
def test_fuel_split_rejects_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        fuel_co2_split(*args)


def test_fuel_record_rejects_fractions_outside_unit_interval():
    with pytest.raises(ValueError, match="biogenic_fraction"):
        FuelCarbon("x", 20.0, "t", 0.025, 1.0, "UNCONFIRMED", "test", biogenic_fraction=1.5)
    with pytest.raises(ValueError, match="oxidation"):
        FuelCarbon("x", 20.0, "t", 0.025, 98.0, "UNCONFIRMED", "test")


@given(
    mass=st.floats(0.0, 1e5),
    ncv=st.floats(0.0, 50.0),
    cc=st.floats(0.0, 0.04),
    of=st.floats(0.0, 1.0),
    bio=st.floats(0.0, 1.0),
)
def test_fossil_plus_biogenic_is_the_total(mass, ncv, cc, of, bio):
    split = fuel_co2_split(mass, ncv, cc, of, bio)
    total = fuel_co2_t(mass, ncv, cc, of)
    assert split.fossil_t >= 0.0
    assert split.biogenic_memo_t >= 0.0
    assert split.fossil_t + split.biogenic_memo_t == pytest.approx(total, rel=1e-12, abs=1e-9)
    assert split.biogenic_memo_t == pytest.approx(total * bio, rel=1e-12, abs=1e-9)


def test_heat_co2_default_factor():
    # domain.md §5.1 [CONFIRMED-2nd]: 0.11 tCO2/GJ. 1 250 GJ net purchased × 0.11 = 137.5 t.
    assert DEFAULT_HEAT_FACTOR.t_per_gj == 0.11
    assert DEFAULT_HEAT_FACTOR.confidence == "CONFIRMED-2nd"
    assert heat_co2_t(1250.0) == pytest.approx(137.5)
    # A supplier's factor replaces it: 1 250 GJ × 0.095 = 118.75 t.
    assert heat_co2_t(1250.0, 0.095) == pytest.approx(118.75)


def test_heat_net_export_is_negative_and_bad_inputs_raise():
    # Purchased 300 GJ, exported 500 GJ → net −200 GJ × 0.11 = −22 t (purchased minus exported, GB/T 32151.8).
    assert heat_co2_t(300.0 - 500.0) == pytest.approx(-22.0)
    with pytest.raises(ValueError, match="factor_t_per_gj"):
        heat_co2_t(100.0, -0.11)
    with pytest.raises(ValueError, match="net_purchased_gj"):
        heat_co2_t(float("inf"))
