"""Clinker-line indicators at the demo plant's operating point, by hand (one hour, docs/demo-plant.md)."""

from __future__ import annotations

import pytest

from kpi.clinker import (
    ClinkerInputs,
    ClinkerOxides,
    ClinkerSettings,
    FuelUse,
    cement_prep_kwh_per_t,
    clinker_indicators,
)
from kpi.clinker_co2 import SubstituteUse
from kpi.co2 import GRID_FACTORS

# One hour at the demo operating point: 208.333 t clinker, 28.08 t coal at 23 MJ/kg (bituminous carbon
# 0.02618 tC/GJ, oxidation 93 %), 11.46 MW clinker-system electricity → 11 460 kWh, 7.29 MW WHR → 7 290 kWh.
COAL = FuelUse("coal", 28.08, 23.0, 0.02618, 0.93)
HOUR = ClinkerInputs(clinker_t=208.333, electricity_kwh=11460.0, whr_kwh=7290.0, fuels=(COAL,), coverage=0.98)

# Hand arithmetic shared by the tests below.
COAL_KGCE = 28.08 * 1000 * 23.0 / 29.3076  # 645 840 MJ / 29.3076 MJ/kgce = 22 036.6 kgce
COAL_PER_T = COAL_KGCE / 208.333  # 105.776 kgce/t
ELEC_PER_T = 11460.0 / 208.333  # 55.008 kWh/t
WHR_PER_T = 7290.0 / 208.333  # 34.992 kWh/t
CO2_PROCESS = 208.333 * 0.535  # 111.458 t
CO2_FUEL = 28.08 * 23.0 * 0.02618 * 0.93 * 44 / 12  # 57.657 t
CO2_ELEC = (11460.0 - 7290.0) / 1000 * 0.5306  # 4.170 MWh net purchased × 0.5306 = 2.2126 t


def test_demo_hour_without_whr_credit():
    r = clinker_indicators(HOUR, ClinkerSettings())
    assert r.coal_kgce_per_t == pytest.approx(COAL_PER_T)
    assert r.coal_kgce_per_t == pytest.approx(105.78, abs=0.01)
    assert r.electricity_kwh_per_t == pytest.approx(ELEC_PER_T)
    # comprehensive: 105.776 + 0.1229 × 55.008 = 105.776 + 6.760 = 112.536 kgce/t
    assert r.comprehensive_kgce_per_t == pytest.approx(COAL_PER_T + 0.1229 * ELEC_PER_T)
    assert r.comprehensive_kgce_per_t == pytest.approx(112.54, abs=0.01)
    assert r.coal_grade == 3  # 100 < 105.78 ≤ 109
    assert r.electricity_grade == 2  # 48 < 55.01 ≤ 57
    assert r.comprehensive_grade == 3  # 107 < 112.54 ≤ 117
    assert r.band == "amber"  # 100 < 112.54 ≤ 117
    assert r.fuel_kgce == pytest.approx(COAL_KGCE)
    assert r.net_purchased_kwh == 11460.0 - 7290.0
    assert r.coverage == 0.98


def test_demo_hour_co2():
    r = clinker_indicators(HOUR, ClinkerSettings())
    assert r.co2_process_t == pytest.approx(CO2_PROCESS)
    assert r.co2_fuel_t == pytest.approx(CO2_FUEL)
    assert r.co2_electricity_t == pytest.approx(CO2_ELEC)
    assert r.co2_total_t == pytest.approx(CO2_PROCESS + CO2_FUEL + CO2_ELEC)  # 171.33 t
    # per tonne: 0.535 + 0.2768 + 0.0106 = 0.8224 tCO2/t, inside domain.md §7.3's 0.82–0.88.
    assert r.co2_total_t_per_t == pytest.approx((CO2_PROCESS + CO2_FUEL + CO2_ELEC) / 208.333)
    assert r.co2_total_t_per_t == pytest.approx(0.8224, abs=1e-4)
    assert r.co2_process_t_per_t == pytest.approx(0.535)
    assert r.co2_electricity_t_per_t == pytest.approx(CO2_ELEC / 208.333)


def test_whr_deducted_from_coal():
    r = clinker_indicators(HOUR, ClinkerSettings(whr_treatment="deduct_from_coal"))
    # 105.776 − 7290 × 0.1229 / 208.333 = 105.776 − 4.3005 = 101.475 kgce/t
    coal = COAL_PER_T - 7290.0 * 0.1229 / 208.333
    assert r.coal_kgce_per_t == pytest.approx(coal)
    assert r.electricity_kwh_per_t == pytest.approx(ELEC_PER_T)
    assert r.comprehensive_kgce_per_t == pytest.approx(coal + 0.1229 * ELEC_PER_T)  # 108.24
    assert r.comprehensive_grade == 3 and r.coal_grade == 3
    assert r.co2_electricity_t == pytest.approx(CO2_ELEC)  # CO2 always on net purchased power


def test_whr_deducted_from_electricity():
    r = clinker_indicators(HOUR, ClinkerSettings(whr_treatment="deduct_from_electricity"))
    # (11 460 − 7 290) / 208.333 = 20.016 kWh/t → grade 1; comprehensive 105.776 + 0.1229 × 20.016 = 108.236
    assert r.electricity_kwh_per_t == pytest.approx(ELEC_PER_T - WHR_PER_T)
    assert r.electricity_grade == 1
    assert r.comprehensive_kgce_per_t == pytest.approx(COAL_PER_T + 0.1229 * (ELEC_PER_T - WHR_PER_T))


def test_equal_value_basis():
    r = clinker_indicators(
        HOUR, ClinkerSettings(electricity_basis="equal", supply_coal_rate_gce_per_kwh=300.7)
    )
    # 105.776 + 0.3007 × 55.008 = 105.776 + 16.541 = 122.317 kgce/t → worse than grade 3, red
    assert r.comprehensive_kgce_per_t == pytest.approx(COAL_PER_T + 0.3007 * ELEC_PER_T)
    assert r.comprehensive_grade is None
    assert r.band == "red"
    assert r.provenance["electricity"]["kgce_per_kwh"] == pytest.approx(300.7 / 1000)


def test_oxide_method_and_other_grid_factor():
    settings = ClinkerSettings(
        clinker_oxides=ClinkerOxides(cao=0.65, mgo=0.02), grid_factor=GRID_FACTORS["chongqing_2022"]
    )
    r = clinker_indicators(HOUR, settings)
    assert r.co2_process_t == pytest.approx(208.333 * (0.65 * 44 / 56 + 0.02 * 44 / 40))  # 0.5327 t/t
    assert r.co2_electricity_t == pytest.approx(4.170 * 0.5227)
    assert r.provenance["process_co2"]["method"].startswith("oxide")
    assert r.provenance["grid_factor"]["vintage"] == 2022


def test_no_clinker_gives_none_not_inf():
    r = clinker_indicators(
        ClinkerInputs(clinker_t=0.0, electricity_kwh=500.0, whr_kwh=0.0, fuels=(COAL,), coverage=1.0),
        ClinkerSettings(),
    )
    assert (
        r.coal_kgce_per_t is None and r.electricity_kwh_per_t is None and r.comprehensive_kgce_per_t is None
    )
    assert r.coal_grade is None and r.band is None and r.co2_total_t_per_t is None
    assert r.co2_process_t == 0.0
    assert r.co2_electricity_t == pytest.approx(0.5 * 0.5306)  # 500 kWh still purchased: 0.5 MWh × 0.5306
    assert r.fuel_kgce == pytest.approx(COAL_KGCE)


def test_diesel_ignition_oil_adds_to_coal():
    # + 0.5 t diesel at 42.652 MJ/kg: 0.5 × 1000 × 42.652 / 29.3076 = 727.66 kgce → +3.4928 kgce/t
    diesel = FuelUse("diesel", 0.5, 42.652, 0.02020, 0.98)
    r = clinker_indicators(
        ClinkerInputs(208.333, 11460.0, 7290.0, (COAL, diesel), 1.0),
        ClinkerSettings(),
    )
    assert r.coal_kgce_per_t == pytest.approx((COAL_KGCE + 0.5 * 1000 * 42.652 / 29.3076) / 208.333)
    assert r.co2_fuel_t == pytest.approx(CO2_FUEL + 0.5 * 42.652 * 0.02020 * 0.98 * 44 / 12)


def test_altitude_moves_the_grade_3_limit():
    # At 3000 m (≈ 70 100 Pa) K_H = 1.179 − 0.211 × 70100/101325 = 1.03302; coal limit 109 × K = 112.60 ≥ 111,
    # so a plant at 111 kgce/t coal is grade 3 there but worse than grade 3 at sea level.
    coal_t = 111.0 * 208.333 * 29.3076 / 23.0 / 1000  # coal mass giving 111 kgce/t
    inputs = ClinkerInputs(208.333, 0.0, 0.0, (FuelUse("coal", coal_t, 23.0, 0.02618, 0.93),), 1.0)
    assert clinker_indicators(inputs, ClinkerSettings()).coal_grade is None
    high = clinker_indicators(inputs, ClinkerSettings(altitude_m=3000.0, pressure_pa=70100.0))
    assert high.coal_grade == 3
    limit = high.provenance["grade_tables"]["clinker_comprehensive_coal"]["limits"][2]
    assert limit == pytest.approx(109.0 * (1.179 - 0.211 * 70100 / 101325))


def test_provenance_records_editions_factors_and_settings():
    r = clinker_indicators(HOUR, ClinkerSettings(ndrc_edition="2021"))
    p = r.provenance
    assert p["standard"] == "GB 16780-2021"
    assert p["ndrc"]["edition"] == "2021 (发改产业〔2021〕1609号)"
    assert p["whr_treatment"] == {"setting": "none", "confidence": "UNCONFIRMED"}
    assert p["electricity"]["kgce_per_kwh"] == 0.1229
    assert p["grid_factor"]["t_per_mwh"] == 0.5306 and p["grid_factor"]["vintage"] == 2023
    assert p["process_co2"]["clinker_factor"]["t_per_t"] == 0.535
    assert p["kgce_kj"] == 29307.6


def test_invalid_inputs_and_settings_raise():
    with pytest.raises(ValueError, match="coverage"):
        clinker_indicators(ClinkerInputs(1.0, 1.0, 0.0, (), 1.5), ClinkerSettings())
    with pytest.raises(ValueError, match="electricity_kwh"):
        clinker_indicators(ClinkerInputs(1.0, float("nan"), 0.0, (), 1.0), ClinkerSettings())
    with pytest.raises(ValueError, match="whr_treatment"):
        ClinkerSettings(whr_treatment="credit")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ndrc_edition"):
        ClinkerSettings(ndrc_edition="2019")  # type: ignore[arg-type]


def test_cement_prep_electricity():
    # Demo cement mill 8.33 MW for one hour over 277.8 t cement: 8330 / 277.8 = 29.99 kWh/t
    # (grade 3: 29 < x ≤ 34).
    assert cement_prep_kwh_per_t(8330.0, 277.8) == pytest.approx(8330.0 / 277.8)
    assert cement_prep_kwh_per_t(8330.0, 0.0) is None


# 5 t RDF at 15 MJ/kg, 0.025 tC/GJ, oxidation 97 %, 40 % of its carbon biogenic.
RDF = FuelUse("rdf", 5.0, 15.0, 0.025, 0.97, alternative=True, biogenic_fraction=0.4)
RDF_KGCE = 5.0 * 1000 * 15.0 / 29.3076  # 75 000 MJ / 29.3076 = 2 559.06 kgce
RDF_CO2 = 5.0 * 15.0 * 0.025 * 0.97 * 44 / 12  # 75 GJ × 0.025 tC/GJ × 0.97 × 3.6667 = 6.66875 t


def test_alternative_fuel_counted_by_default_with_biogenic_memo():
    inputs = ClinkerInputs(208.333, 11460.0, 7290.0, (COAL, RDF), 1.0)
    r = clinker_indicators(inputs, ClinkerSettings())
    # coal term (22 036.6 + 2 559.06) / 208.333 = 118.06 kgce/t
    assert r.coal_kgce_per_t == pytest.approx((COAL_KGCE + RDF_KGCE) / 208.333)
    assert r.alternative_fuel_kgce == pytest.approx(RDF_KGCE)
    # fossil CO2: coal 57.657 + 60 % of 6.66875 = 57.657 + 4.00125; memo: 40 % = 2.6675 t
    assert r.co2_fuel_t == pytest.approx(CO2_FUEL + 0.6 * RDF_CO2)
    assert r.co2_biogenic_memo_t == pytest.approx(0.4 * RDF_CO2)
    assert r.co2_biogenic_memo_t == pytest.approx(2.6675)
    assert r.co2_total_t == pytest.approx(CO2_PROCESS + CO2_FUEL + 0.6 * RDF_CO2 + CO2_ELEC)


def test_alternative_fuel_excluded_from_the_coal_term():
    inputs = ClinkerInputs(208.333, 11460.0, 7290.0, (COAL, RDF), 1.0)
    r = clinker_indicators(inputs, ClinkerSettings(alternative_fuel_treatment="exclude"))
    assert r.coal_kgce_per_t == pytest.approx(COAL_PER_T)  # 105.776: RDF left out
    assert r.fuel_kgce == pytest.approx(COAL_KGCE + RDF_KGCE)  # the raw total is kept
    assert r.provenance["alternative_fuel_treatment"]["setting"] == "exclude"


def test_unknown_alternative_fuel_treatment_is_refused():
    with pytest.raises(ValueError, match="alternative_fuel_treatment"):
        ClinkerSettings(alternative_fuel_treatment="half")  # type: ignore[arg-type]


def test_ckd_and_substitute_deductions_in_process_co2():
    inputs = ClinkerInputs(
        208.333, 11460.0, 7290.0, (COAL,), 1.0, ckd_t=5.0, substitutes=(SubstituteUse("carbide_slag", 10.0),)
    )
    r = clinker_indicators(inputs, ClinkerSettings(ckd_calcination=0.5))
    # CSI CKD factor with EF_cli 0.535 and d 0.5: x = 0.535 / 1.535 = 0.348534; x·d = 0.174267;
    # EF_CKD = 0.174267 / (1 − 0.174267) = 0.211046 t/t → 5 t CKD = 1.05523 t
    x = 0.535 / 1.535
    ef_ckd = x * 0.5 / (1 - x * 0.5)
    assert ef_ckd == pytest.approx(0.211046, abs=1e-6)
    # ETS deduction: 10 t carbide slag × 0.480 = 4.8 t; process = 111.458 − 4.8 + 1.05523 = 107.713 t
    assert r.co2_process_t == pytest.approx(CO2_PROCESS - 4.8 + 5.0 * ef_ckd)
    assert r.co2_process_t == pytest.approx(107.713, abs=1e-3)
    terms = r.provenance["process_co2"]["terms_t"]
    assert terms["deductions"] == pytest.approx(4.8) and terms["dust"] == pytest.approx(5.0 * ef_ckd)
