"""Float and PV rolled glass under GB 21340-2019: hand-computed day, capacity classes, correction, CO2."""

from __future__ import annotations

import math

import pytest

from kpi.carbonates import CarbonateUse, CarbonUse
from kpi.co2 import GRID_FACTORS
from kpi.furnace import FurnaceFuel
from kpi.glass import (
    FLOAT_GLASS_TABLES,
    KG_PER_WEIGHT_BOX,
    NDRC_FLOAT_GLASS,
    NDRC_PV_ROLLED_GLASS,
    PV_ROLLED_GLASS_TABLES,
    GlassCorrection,
    GlassInputs,
    GlassSettings,
    float_glass_capacity_class,
    float_glass_table,
    glass_indicators,
    pv_rolled_glass_capacity_class,
    pv_rolled_glass_table,
)
from kpi.standards import grade

# One day of a 600 t/d float line: 540 t qualified glass; natural gas 8.5 × 10⁴ Nm³ at 389.31 GJ/10⁴ Nm³
# (default 0.01530 tC/GJ, oxidation 99 %); 32 400 kWh; batch: soda ash 95 t at 99.2 %, dolomite 90 t at 98 %,
# limestone 15 t at 97 %, carbon powder 0.3 t at 85 % C.
GAS = FurnaceFuel("natural gas", 8.5, "1e4 Nm3", 0.01530, 0.99, ncv_gj_per_unit=389.31)
BATCH = (
    CarbonateUse("Na2CO3", 95.0, 0.992),
    CarbonateUse("CaMg(CO3)2", 90.0, 0.98),
    CarbonateUse("CaCO3", 15.0, 0.97),
)
CARBON = (CarbonUse(0.3, 0.85),)
DAY = GlassInputs(600.0, 540.0, 32400.0, (GAS,), 0.99, carbonates=BATCH, carbon=CARBON)

BOXES = 540.0 * 1000 / 50  # 10 800 weight boxes
GAS_KGCE = 8.5 * 389.31 * 1000 / 29.3076  # 3 309 135 MJ / 29.3076 MJ/kgce = 112 910.5 kgce
ELEC_KGCE = 32400.0 * 0.1229  # 3 981.96 kgce
PER_BOX = (GAS_KGCE + ELEC_KGCE) / BOXES  # 116 892.4 / 10 800 = 10.823 kgce/box
CO2_GAS = 8.5 * 389.31 * 0.01530 * 0.99 * 44 / 12  # 183.786 t
CO2_PROCESS = 95 * 0.992 * 0.4149 + 90 * 0.98 * 0.4773 + 15 * 0.97 * 0.4397 + 0.3 * 0.85 * 44 / 12  # 88.531 t
CO2_ELEC = 32400.0 / 1000 * 0.5306  # 17.191 t


def _with_capacity(capacity: float) -> GlassInputs:
    return GlassInputs(capacity, 540.0, 32400.0, (GAS,), 1.0)


def test_float_tables_match_domain_sheet():
    assert FLOAT_GLASS_TABLES["500_to_800"].limits == (9.5, 11.5, 13.5)
    assert FLOAT_GLASS_TABLES["over_800"].limits == (8.0, 10.0, 12.0)
    assert FLOAT_GLASS_TABLES["up_to_500"].limits[2] == 14.0
    assert FLOAT_GLASS_TABLES["up_to_500"].limits[:2] == (-math.inf, -math.inf)  # grades 1 and 2 undefined
    assert PV_ROLLED_GLASS_TABLES["up_to_300"].limits == (300.0, 300.0, 400.0)
    assert PV_ROLLED_GLASS_TABLES["over_300"].limits == (260.0, 260.0, 370.0)
    assert all(
        t.standard == "GB 21340-2019" and t.confidence == "CONFIRMED-2nd" for t in FLOAT_GLASS_TABLES.values()
    )
    assert (
        FLOAT_GLASS_TABLES["over_800"].unit == "kgce/重量箱"
        and PV_ROLLED_GLASS_TABLES["over_300"].unit == "kgce/t"
    )
    assert KG_PER_WEIGHT_BOX == 50.0


def test_ndrc_levels_and_labels():
    for edition in ("2021", "2023"):
        mid, big = NDRC_FLOAT_GLASS[edition]["500_to_800"], NDRC_FLOAT_GLASS[edition]["over_800"]
        assert (mid.benchmark, mid.baseline) == (9.5, 13.5)
        assert (big.benchmark, big.baseline) == (8.0, 12.0)
        assert mid.value_confidence == big.value_confidence == "UNCONFIRMED"
        assert "up_to_500" not in NDRC_FLOAT_GLASS[edition]
    assert NDRC_FLOAT_GLASS["2021"]["over_800"].document_confidence == "UNCONFIRMED"
    assert NDRC_FLOAT_GLASS["2023"]["over_800"].document_confidence == "CONFIRMED"
    assert NDRC_PV_ROLLED_GLASS["2021"] == {}
    pv = NDRC_PV_ROLLED_GLASS["2023"]
    assert (pv["up_to_300"].benchmark, pv["up_to_300"].baseline) == (300.0, 400.0)
    assert (pv["over_300"].benchmark, pv["over_300"].baseline) == (260.0, 370.0)


def test_float_day_energy_grade_and_band():
    r = glass_indicators(DAY, GlassSettings())
    assert r.weight_boxes == pytest.approx(BOXES)
    assert r.fuel_kgce == pytest.approx(GAS_KGCE)
    assert r.electricity_kgce == pytest.approx(ELEC_KGCE)
    assert r.total_kgce == pytest.approx(GAS_KGCE + ELEC_KGCE)
    # (112 910.47 + 3 981.96) / 10 800 = 10.8234 kgce/重量箱
    assert r.comprehensive_energy == pytest.approx(PER_BOX)
    assert r.comprehensive_energy == pytest.approx(10.8234, abs=1e-4)
    assert r.energy_unit == "kgce/重量箱"
    assert r.comprehensive_kgce_per_t == pytest.approx(PER_BOX * 20)  # 20 boxes per t: 216.47 kgce/t
    assert r.capacity_class == "500_to_800"
    assert r.grade == 2  # 9.5 < 10.82 ≤ 11.5
    assert r.band == "amber"  # 9.5 < 10.82 ≤ 13.5
    assert r.coverage == 0.99 and r.product == "float"


def test_float_day_co2():
    r = glass_indicators(DAY, GlassSettings())
    assert r.co2_fuel_t == pytest.approx(CO2_GAS)
    assert r.co2_process_t == pytest.approx(CO2_PROCESS)
    assert r.co2_electricity_t == pytest.approx(CO2_ELEC)
    assert r.co2_total_t == pytest.approx(CO2_GAS + CO2_PROCESS + CO2_ELEC)  # 289.51 t
    # per t: 0.3403 + 0.1639 + 0.0318 = 0.5361 tCO2/t glass
    assert r.co2_total_t_per_t == pytest.approx((CO2_GAS + CO2_PROCESS + CO2_ELEC) / 540)
    assert r.co2_total_t_per_t == pytest.approx(0.5361, abs=1e-4)
    assert r.co2_process_t_per_t == pytest.approx(CO2_PROCESS / 540)
    assert len(r.process.carbonates) == 3 and r.process.carbon_t == pytest.approx(0.3 * 0.85 * 44 / 12)


def test_output_in_weight_boxes_gives_the_same_result():
    boxes = GlassInputs(600.0, 10800.0, 32400.0, (GAS,), 0.99, output_unit="weight_box")
    r = glass_indicators(boxes, GlassSettings())
    assert r.glass_t == pytest.approx(540.0)  # 10 800 × 50 kg / 1000
    assert r.comprehensive_energy == pytest.approx(PER_BOX)


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [(300.0, "up_to_500"), (500.0, "up_to_500"), (500.5, "500_to_800"), (800.0, "500_to_800"),
     (800.5, "over_800"), (1200.0, "over_800")],
)  # fmt: skip
def test_float_capacity_class_boundaries(capacity, expected):
    assert float_glass_capacity_class(capacity) == expected


@pytest.mark.parametrize(
    ("capacity", "expected"), [(250.0, "up_to_300"), (300.0, "up_to_300"), (300.5, "over_300")]
)
def test_pv_capacity_class_boundaries(capacity, expected):
    assert pv_rolled_glass_capacity_class(capacity) == expected


def test_same_line_graded_in_each_capacity_class():
    # 10.823 kgce/box: ≤ 500 t/d → grade 3 (≤ 14.0), no NDRC level; 800 t/d → grade 2; 801 t/d → grade 3
    # (10.0 < 10.82 ≤ 12.0), amber (8.0 < 10.82 ≤ 12.0).
    small = glass_indicators(_with_capacity(500.0), GlassSettings())
    assert (small.grade, small.band) == (3, None)
    assert small.provenance["ndrc"]["levels"] is None
    assert small.provenance["grade_table"]["limits"] == [None, None, 14.0]
    assert glass_indicators(_with_capacity(800.0), GlassSettings()).grade == 2
    big = glass_indicators(_with_capacity(801.0), GlassSettings())
    assert (big.grade, big.band) == (3, "amber")


def test_up_to_500_never_reaches_grade_1_or_2():
    table = float_glass_table(450.0)
    assert grade(7.0, table) == 3  # far below every other class's grade 1, still only grade 3 here
    assert grade(14.0, table) == 3
    assert grade(14.01, table) is None


def test_correction_multiplies_every_limit_but_not_ndrc():
    # V_c = 1.05 × 1.0 × 1.1 × 1.0 = 1.155:
    # 9.5 × 1.155 = 10.9725; 11.5 × 1.155 = 13.2825; 13.5 × 1.155 = 15.5925.
    correction = GlassCorrection(a=1.05, c=1.1)
    assert correction.v_c == pytest.approx(1.155)
    assert float_glass_table(600.0, correction).limits == pytest.approx((10.9725, 13.2825, 15.5925))
    r = glass_indicators(DAY, GlassSettings(correction=correction))
    assert r.grade == 1  # 10.82 ≤ 10.9725
    assert r.band == "amber"  # NDRC 9.5 / 13.5 are not corrected
    expected = {
        "a": 1.05,
        "b": 1.0,
        "c": 1.1,
        "d": 1.0,
        "v_c": pytest.approx(1.155),
        "confidence": "UNCONFIRMED",
    }
    assert r.provenance["correction"] == expected
    assert r.provenance["ndrc"]["corrected"] is False
    # d = 1.1 alone on the ≤ 500 class: 14.0 × 1.1 = 15.4; undefined grades stay undefined.
    small = float_glass_table(500.0, GlassCorrection(d=1.1))
    assert small.limits[2] == pytest.approx(15.4) and small.limits[:2] == (-math.inf, -math.inf)


def test_default_correction_returns_the_standard_table():
    assert float_glass_table(600.0) is FLOAT_GLASS_TABLES["500_to_800"]
    assert glass_indicators(DAY, GlassSettings()).provenance["correction"]["v_c"] == 1.0


def test_pv_rolled_glass_per_tonne():
    # 250 t/d PV line, 230 t: gas 5.2 × 10⁴ Nm³ → 5.2 × 389.31 × 1000 / 29.3076 = 69 074.6 kgce;
    # 30 000 kWh × 0.1229 = 3 687 kgce; (69 074.6 + 3 687) / 230 = 316.35 kgce/t.
    gas = FurnaceFuel("natural gas", 5.2, "1e4 Nm3", 0.01530, 0.99, ncv_gj_per_unit=389.31)
    pv = GlassInputs(250.0, 230.0, 30000.0, (gas,), 1.0, product="pv_rolled")
    expected = (5.2 * 389.31 * 1000 / 29.3076 + 30000 * 0.1229) / 230
    r = glass_indicators(pv, GlassSettings())
    assert r.comprehensive_energy == pytest.approx(expected)
    assert r.comprehensive_energy == pytest.approx(316.35, abs=0.01)
    assert r.energy_unit == "kgce/t" and r.weight_boxes is None
    assert r.grade == 3  # 300 < 316.35 ≤ 400 (grades 1 and 2 are both 300)
    assert r.band == "amber"  # 2023 proxy 300 / 400
    assert glass_indicators(pv, GlassSettings(ndrc_edition="2021")).band is None  # not in the 2021 edition
    assert r.provenance["correction"]["v_c"] is None
    # 310 t/d: 260 / 260 / 370 → still grade 3, amber (260 < 316.35 ≤ 370).
    bigger = GlassInputs(310.0, 230.0, 30000.0, (gas,), 1.0, product="pv_rolled")
    assert glass_indicators(bigger, GlassSettings()).grade == 3
    assert grade(280.0, pv_rolled_glass_table(250.0)) == 1 and grade(280.0, pv_rolled_glass_table(310.0)) == 3


def test_equal_value_basis():
    r = glass_indicators(DAY, GlassSettings(electricity_basis="equal", supply_coal_rate_gce_per_kwh=300.7))
    # (112 910.47 + 32 400 × 0.3007) / 10 800 = (112 910.47 + 9 742.68) / 10 800 = 11.3568 kgce/box
    assert r.comprehensive_energy == pytest.approx((GAS_KGCE + 32400 * 0.3007) / BOXES)
    assert r.grade == 2
    assert r.provenance["electricity"]["kgce_per_kwh"] == pytest.approx(0.3007)


def test_whr_reduces_co2_but_not_energy():
    inputs = GlassInputs(600.0, 540.0, 32400.0, (GAS,), 1.0, whr_kwh=5000.0)
    r = glass_indicators(inputs, GlassSettings(grid_factor=GRID_FACTORS["chongqing_2022"]))
    assert r.comprehensive_energy == pytest.approx(PER_BOX)
    assert r.net_purchased_kwh == 27400.0  # 32 400 − 5 000
    assert r.co2_electricity_t == pytest.approx(27.4 * 0.5227)
    assert r.provenance["grid_factor"]["region"] == "Chongqing"
    assert r.provenance["whr"]["confidence"] == "UNCONFIRMED"


def test_fuel_by_kgce_factor():
    # 85 000 m³ natural gas at the GB/T 2589 reference 1.2143 kgce/m³ = 103 215.5 kgce; its heat is
    # 1.2143 × 29.3076 / 1000 = 0.035588 GJ/m³, so CO2 = 85 000 × 0.035588 × 0.0153 × 0.99 × 44/12.
    gas = FurnaceFuel("natural gas", 85000.0, "m3", 0.01530, 0.99, kgce_per_unit=1.2143)
    assert gas.kgce == pytest.approx(85000 * 1.2143)
    assert gas.heat_gj_per_unit == pytest.approx(1.2143 * 29.3076 / 1000)
    assert gas.co2_t == pytest.approx(85000 * 1.2143 * 29.3076 / 1000 * 0.0153 * 0.99 * 44 / 12)


def test_no_glass_gives_none_not_inf():
    r = glass_indicators(GlassInputs(600.0, 0.0, 1000.0, (GAS,), 1.0), GlassSettings())
    assert r.comprehensive_energy is None and r.comprehensive_kgce_per_t is None
    assert r.grade is None and r.band is None and r.co2_total_t_per_t is None
    assert r.fuel_kgce == pytest.approx(GAS_KGCE)
    assert r.co2_electricity_t == pytest.approx(1.0 * 0.5306)


def test_provenance_records_standard_edition_and_constants():
    p = glass_indicators(DAY, GlassSettings(ndrc_edition="2021")).provenance
    assert p["standard"] == "GB 21340-2019"
    assert p["kg_per_weight_box"] == {"value": 50.0, "confidence": "UNCONFIRMED"}
    assert p["ndrc"]["edition"] == "2021 (发改产业〔2021〕1609号)"
    assert (p["ndrc"]["benchmark"], p["ndrc"]["baseline"]) == (9.5, 13.5)
    assert p["grade_table"] == {"limits": [9.5, 11.5, 13.5], "unit": "kgce/重量箱",
                                "clause": "float glass, 500 < design capacity ≤ 800 t/d",
                                "confidence": "CONFIRMED-2nd"}  # fmt: skip
    assert p["electricity"] == {"basis": "equivalent", "kgce_per_kwh": 0.1229, "confidence": "CONFIRMED"}
    assert p["grid_factor"]["t_per_mwh"] == 0.5306 and p["kgce_kj"] == 29307.6
    assert p["fuels"][0]["ncv_gj_per_unit"] == 389.31 and p["fuels"][0]["unit"] == "1e4 Nm3"
    assert p["process_co2"]["factors"]["Na2CO3"]["t_co2_per_t"] == 0.4149


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: FurnaceFuel("gas", 1.0, "m3", 0.0153, 0.99), "exactly one"),
        (
            lambda: FurnaceFuel("gas", 1.0, "m3", 0.0153, 0.99, ncv_gj_per_unit=0.0356, kgce_per_unit=1.2),
            "exactly one",
        ),
        (lambda: FurnaceFuel("gas", 1.0, "m3", 0.0153, 99.0, ncv_gj_per_unit=0.0356), "oxidation"),
        (lambda: FurnaceFuel("gas", -1.0, "m3", 0.0153, 0.99, ncv_gj_per_unit=0.0356), "quantity"),
        (lambda: FurnaceFuel("gas", 1.0, "m3", 0.0153, 0.99, kgce_per_unit=float("nan")), "kgce_per_unit"),
        (lambda: GlassInputs(0.0, 540.0, 1.0, (), 1.0), "design_capacity"),
        (lambda: GlassInputs(600.0, -1.0, 1.0, (), 1.0), "output"),
        (lambda: GlassInputs(600.0, 540.0, float("nan"), (), 1.0), "electricity_kwh"),
        (lambda: GlassInputs(600.0, 540.0, 1.0, (), 1.5), "coverage"),
        (lambda: GlassInputs(600.0, 540.0, 1.0, (), 1.0, whr_kwh=-5.0), "whr_kwh"),
        (lambda: GlassInputs(600.0, 540.0, 1.0, (), 1.0, output_unit="m2"), "output_unit"),  # type: ignore[arg-type]
        (lambda: GlassInputs(600.0, 540.0, 1.0, (), 1.0, product="tempered"), "product"),  # type: ignore[arg-type]
        (lambda: GlassInputs(250.0, 1.0, 1.0, (), 1.0, output_unit="weight_box", product="pv_rolled"), "PV"),
        (lambda: GlassCorrection(a=0.0), "correction factor a"),
        (lambda: GlassCorrection(d=float("inf")), "correction factor d"),
        (lambda: GlassSettings(ndrc_edition="2019"), "ndrc_edition"),  # type: ignore[arg-type]
        (lambda: GlassSettings(electricity_basis="primary"), "electricity basis"),  # type: ignore[arg-type]
        (lambda: float_glass_capacity_class(float("nan")), "design_capacity"),
    ],
)
def test_invalid_inputs_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_correction_on_pv_glass_is_rejected():
    pv = GlassInputs(250.0, 230.0, 1.0, (), 1.0, product="pv_rolled")
    with pytest.raises(ValueError, match="float glass only"):
        glass_indicators(pv, GlassSettings(correction=GlassCorrection(c=1.05)))
