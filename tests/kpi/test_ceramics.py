"""Building and sanitary ceramics, GB 21252-2023: tables, absorption boundaries, thickness factor, a day."""

from __future__ import annotations

import pytest

from kpi.carbonates import CarbonateUse
from kpi.ceramics import (
    ALUMINA_BALL,
    CERAMIC_PANEL,
    EXTRUDED_PANEL_TILE,
    SANITARY_TABLES,
    TILE_TABLES,
    CeramicsInputs,
    CeramicsSettings,
    absorption_class,
    ceramics_indicators,
    ceramics_table,
    ndrc_proxy,
    sanitary_absorption_class,
    tile_absorption_class,
)
from kpi.furnace import FurnaceFuel
from kpi.standards import grade

# One day of a porcelain-tile line (E = 0.3 %): 20 000 m² qualified tiles; kiln natural gas 70 000 m³ at the
# GB/T 2589 reference 1.2143 kgce/m³; spray-dryer coal 8 t at 23.204 GJ/t (bituminous defaults 0.02618 tC/GJ,
# 93 %); 60 000 kWh; body carbonates: 12 t limestone at 95 %.
GAS = FurnaceFuel("natural gas", 70000.0, "m3", 0.01530, 0.99, kgce_per_unit=1.2143)
COAL = FurnaceFuel("coal", 8.0, "t", 0.02618, 0.93, ncv_gj_per_unit=23.204)
TILE_DAY = CeramicsInputs(
    "tile", 20000.0, 60000.0, (GAS, COAL), 0.97, water_absorption_pct=0.3,
    carbonates=(CarbonateUse("CaCO3", 12.0, 0.95),),
)  # fmt: skip

GAS_KGCE = 70000 * 1.2143  # 85 001.0 kgce
COAL_KGCE = 8.0 * 23.204 * 1000 / 29.3076  # 185 632 MJ / 29.3076 = 6 333.92 kgce
ELEC_KGCE = 60000 * 0.1229  # 7 374.0 kgce
PER_M2 = (GAS_KGCE + COAL_KGCE + ELEC_KGCE) / 20000  # 98 708.92 / 20 000 = 4.9354 kgce/m²
CO2_GAS = 70000 * 1.2143 * 29.3076 / 1000 * 0.01530 * 0.99 * 44 / 12  # 2 491.18 GJ → 138.357 t
CO2_COAL = 8.0 * 23.204 * 0.02618 * 0.93 * 44 / 12  # 16.572 t
CO2_PROCESS = 12.0 * 0.95 * 0.4397  # 5.0126 t
CO2_ELEC = 60000 / 1000 * 0.5306  # 31.836 t


def test_tables_match_domain_sheet():
    assert TILE_TABLES["E<=0.2"].limits == (4.5, 5.5, 7.0)
    assert TILE_TABLES["0.2<E<=0.5"].limits == (4.0, 4.9, 6.5)
    assert TILE_TABLES["0.5<E<=10"].limits == (3.4, 3.7, 4.6)
    assert TILE_TABLES["E>10"].limits == (3.2, 3.5, 4.5)
    assert CERAMIC_PANEL.limits == (6.0, 8.7, 13.2)
    assert EXTRUDED_PANEL_TILE.limits == (226.0, 238.0, 253.0)
    assert SANITARY_TABLES["E<=0.3"].limits == (350.0, 500.0, 630.0)
    assert SANITARY_TABLES["E>0.3"].limits == (300.0, 460.0, 610.0)
    assert ALUMINA_BALL.limits == (295.0, 320.0, 370.0)
    assert TILE_TABLES["E>10"].unit == CERAMIC_PANEL.unit == "kgce/m²"
    assert EXTRUDED_PANEL_TILE.unit == ALUMINA_BALL.unit == SANITARY_TABLES["E>0.3"].unit == "kgce/t"
    for table in (
        *TILE_TABLES.values(),
        CERAMIC_PANEL,
        EXTRUDED_PANEL_TILE,
        *SANITARY_TABLES.values(),
        ALUMINA_BALL,
    ):
        assert table.standard == "GB 21252-2023" and table.confidence == "CONFIRMED-2nd"


@pytest.mark.parametrize(
    ("e_pct", "expected"),
    [(0.0, "E<=0.2"), (0.2, "E<=0.2"), (0.1 + 0.1, "E<=0.2"), (0.2001, "0.2<E<=0.5"), (0.5, "0.2<E<=0.5"),
     (0.5001, "0.5<E<=10"), (10.0, "0.5<E<=10"), (10.01, "E>10"), (18.0, "E>10")],
)  # fmt: skip
def test_tile_absorption_boundaries_are_inclusive_upper(e_pct, expected):
    assert tile_absorption_class(e_pct) == expected


@pytest.mark.parametrize(
    ("e_pct", "expected"),
    [(0.0, "E<=0.3"), (0.3, "E<=0.3"), (0.1 + 0.2, "E<=0.3"), (0.3001, "E>0.3"), (0.31, "E>0.3")],
)
def test_sanitary_absorption_boundaries(e_pct, expected):
    # 0.1 + 0.2 = 0.30000000000000004 in binary floating point: rounding must keep it in the E ≤ 0.3 % class.
    assert sanitary_absorption_class(e_pct) == expected


def test_tile_grade_changes_across_the_10_pct_boundary():
    # 4.6 kgce/m²: E = 10 % → 3.4 / 3.7 / 4.6 → grade 3; E = 10.01 % → 3.2 / 3.5 / 4.5 → worse than grade 3.
    assert grade(4.6, ceramics_table("tile", 10.0)) == 3
    assert grade(4.6, ceramics_table("tile", 10.01)) is None
    # 4.2 kgce/m²: E = 0.2 % → grade 1 (≤ 4.5); E = 0.21 % → grade 2 (4.0 < 4.2 ≤ 4.9).
    assert grade(4.2, ceramics_table("tile", 0.2)) == 1
    assert grade(4.2, ceramics_table("tile", 0.21)) == 2
    # 3.6 kgce/m²: E = 0.5 % → grade 1 (≤ 4.0); E = 0.51 % → grade 2 (3.4 < 3.6 ≤ 3.7).
    assert grade(3.6, ceramics_table("tile", 0.5)) == 1
    assert grade(3.6, ceramics_table("tile", 0.51)) == 2


def test_table_selection_for_unclassed_products():
    assert ceramics_table("panel") is CERAMIC_PANEL
    assert ceramics_table("extruded") is EXTRUDED_PANEL_TILE
    assert ceramics_table("alumina_ball", water_absorption_pct=0.1) is ALUMINA_BALL  # E is not used here
    assert absorption_class("panel", None) is None
    assert grade(300.0, ALUMINA_BALL) == 2  # 295 < 300 ≤ 320
    assert grade(253.0, EXTRUDED_PANEL_TILE) == 3


def test_thickness_factor_multiplies_tile_and_panel_limits():
    # × 1.02: 4.0 × 1.02 = 4.08; 4.9 × 1.02 = 4.998; 6.5 × 1.02 = 6.63.
    assert ceramics_table("tile", 0.3, 1.02).limits == pytest.approx((4.08, 4.998, 6.63))
    # panel × 1.1: 6.6 / 9.57 / 14.52.
    assert ceramics_table("panel", thickness_factor=1.1).limits == pytest.approx((6.6, 9.57, 14.52))
    assert ceramics_table("tile", 0.3, 1.0) is TILE_TABLES["0.2<E<=0.5"]


@pytest.mark.parametrize("product", ["extruded", "sanitary", "alumina_ball"])
def test_thickness_factor_rejected_where_it_does_not_apply(product):
    with pytest.raises(ValueError, match="tiles and panels only"):
        ceramics_table(product, 0.5, 1.05)


def test_tile_day_energy_grade_and_band():
    r = ceramics_indicators(TILE_DAY, CeramicsSettings())
    assert r.fuel_kgce == pytest.approx(GAS_KGCE + COAL_KGCE)
    assert r.electricity_kgce == pytest.approx(ELEC_KGCE)
    # (85 001.0 + 6 333.92 + 7 374.0) / 20 000 = 4.9354 kgce/m²
    assert r.comprehensive_energy == pytest.approx(PER_M2)
    assert r.comprehensive_energy == pytest.approx(4.9354, abs=1e-4)
    assert (r.energy_unit, r.output_unit) == ("kgce/m²", "m2")
    assert r.absorption_class == "0.2<E<=0.5"
    assert r.grade == 3  # 4.9 < 4.9354 ≤ 6.5
    assert r.band == "amber"  # proxy 4.0 < 4.9354 ≤ 6.5
    assert r.coverage == 0.97


def test_tile_day_with_thickness_factor():
    r = ceramics_indicators(TILE_DAY, CeramicsSettings(thickness_factor=1.02))
    assert r.grade == 2  # 4.08 < 4.9354 ≤ 4.998
    assert r.band == "amber"  # the NDRC proxy is not corrected: 4.0 / 6.5
    assert r.provenance["grade_table"]["limits"] == pytest.approx([4.08, 4.998, 6.63])
    assert r.provenance["ndrc"]["benchmark"] == 4.0 and r.provenance["ndrc"]["baseline"] == 6.5
    assert r.provenance["thickness_factor"] == {"value": 1.02, "applies": True, "confidence": "UNCONFIRMED"}


def test_tile_day_co2():
    r = ceramics_indicators(TILE_DAY, CeramicsSettings())
    assert r.co2_fuel_t == pytest.approx(CO2_GAS + CO2_COAL)
    assert r.co2_process_t == pytest.approx(CO2_PROCESS)
    assert r.co2_electricity_t == pytest.approx(CO2_ELEC)
    total = CO2_GAS + CO2_COAL + CO2_PROCESS + CO2_ELEC  # 138.357 + 16.572 + 5.013 + 31.836 = 191.778 t
    assert r.co2_total_t == pytest.approx(total)
    assert r.co2_total_t == pytest.approx(191.778, abs=1e-3)
    assert r.co2_total_t_per_unit == pytest.approx(total / 20000)  # 0.009589 t = 9.59 kg CO2/m²
    assert r.co2_process_t_per_unit == pytest.approx(CO2_PROCESS / 20000)


def test_sanitary_ware_switches_table_at_0_3_pct():
    # 150 t sanitary ware: gas 37 000 m³ at 35.6 MJ/m³ → 1 317 200 MJ / 29.3076 = 44 943.97 kgce;
    # 40 000 kWh × 0.1229 = 4 916 kgce; (44 943.97 + 4 916) / 150 = 332.40 kgce/t.
    gas = FurnaceFuel("natural gas", 37000.0, "m3", 0.01530, 0.99, ncv_gj_per_unit=0.0356)
    expected = (37000 * 35.6 / 29.3076 + 40000 * 0.1229) / 150

    def day(e_pct: float) -> CeramicsInputs:
        return CeramicsInputs("sanitary", 150.0, 40000.0, (gas,), 1.0, water_absorption_pct=e_pct)

    at = ceramics_indicators(day(0.3), CeramicsSettings())
    assert at.comprehensive_energy == pytest.approx(expected)
    assert at.comprehensive_energy == pytest.approx(332.40, abs=0.01)
    assert (at.energy_unit, at.output_unit) == ("kgce/t", "t")
    assert (at.grade, at.band) == (1, "green")  # E ≤ 0.3 %: 332.40 ≤ 350 (proxy benchmark 350)
    above = ceramics_indicators(day(0.31), CeramicsSettings())
    assert (above.grade, above.band) == (2, "amber")  # E > 0.3 %: 300 < 332.40 ≤ 460; proxy 300 / 610


def test_ndrc_proxy_is_labelled_unconfirmed():
    proxy = ndrc_proxy(SANITARY_TABLES["E<=0.3"], "2023")
    assert (proxy.benchmark, proxy.baseline) == (350.0, 630.0)
    assert proxy.value_confidence == "UNCONFIRMED"
    assert proxy.document_confidence == "CONFIRMED" and proxy.edition == "2023"
    assert "proxy" in proxy.note
    p = ceramics_indicators(TILE_DAY, CeramicsSettings(ndrc_edition="2021")).provenance["ndrc"]
    assert p["edition"] == "2021 (发改产业〔2021〕1609号)" and p["value_confidence"] == "UNCONFIRMED"


def test_equal_value_basis_and_whr():
    inputs = CeramicsInputs("panel", 5000.0, 20000.0, (GAS,), 1.0, whr_kwh=4000.0)
    r = ceramics_indicators(
        inputs, CeramicsSettings(electricity_basis="equal", supply_coal_rate_gce_per_kwh=300.7)
    )
    # (85 001.0 + 20 000 × 0.3007) / 5 000 = (85 001.0 + 6 014) / 5 000 = 18.203 kgce/m² → worse than grade 3
    assert r.comprehensive_energy == pytest.approx((GAS_KGCE + 20000 * 0.3007) / 5000)
    assert r.grade is None and r.band == "red"  # > 13.2
    assert r.net_purchased_kwh == 16000.0  # 20 000 − 4 000
    assert r.co2_electricity_t == pytest.approx(16.0 * 0.5306)
    assert r.absorption_class is None


def test_no_output_gives_none_not_inf():
    r = ceramics_indicators(CeramicsInputs("alumina_ball", 0.0, 100.0, (COAL,), 1.0), CeramicsSettings())
    assert r.comprehensive_energy is None and r.grade is None and r.band is None
    assert r.co2_total_t_per_unit is None
    assert r.fuel_kgce == pytest.approx(COAL_KGCE)


def test_provenance_records_standard_table_and_factors():
    p = ceramics_indicators(TILE_DAY, CeramicsSettings()).provenance
    assert p["standard"] == "GB 21252-2023"
    assert p["water_absorption_pct"] == 0.3 and p["absorption_class"] == "0.2<E<=0.5"
    assert p["grade_table"]["limits"] == [4.0, 4.9, 6.5] and p["grade_table"]["confidence"] == "CONFIRMED-2nd"
    assert p["electricity"]["kgce_per_kwh"] == 0.1229
    assert [f["name"] for f in p["fuels"]] == ["natural gas", "coal"]
    assert p["fuels"][0]["kgce_per_unit"] == 1.2143
    assert p["process_co2"]["factors"]["CaCO3"]["t_co2_per_t"] == 0.4397


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: CeramicsInputs("tile", 1.0, 1.0, (), 1.0), "water_absorption_pct"),  # E missing
        (lambda: CeramicsInputs("sanitary", 1.0, 1.0, (), 1.0), "water_absorption_pct"),
        (
            lambda: CeramicsInputs("tile", 1.0, 1.0, (), 1.0, water_absorption_pct=-0.1),
            "water_absorption_pct",
        ),
        (
            lambda: CeramicsInputs("tile", 1.0, 1.0, (), 1.0, water_absorption_pct=101.0),
            "water_absorption_pct",
        ),
        (
            lambda: CeramicsInputs("tile", 1.0, 1.0, (), 1.0, water_absorption_pct=float("nan")),
            "water_absorption",
        ),
        (lambda: CeramicsInputs("brick", 1.0, 1.0, (), 1.0), "unknown ceramic product"),  # type: ignore[arg-type]
        (lambda: CeramicsInputs("panel", -1.0, 1.0, (), 1.0), "output"),
        (lambda: CeramicsInputs("panel", 1.0, 1.0, (), 2.0), "coverage"),
        (lambda: ceramics_table("panel", thickness_factor=0.0), "thickness_factor"),
        (lambda: ceramics_table("panel", thickness_factor=float("nan")), "thickness_factor"),
        (lambda: CeramicsSettings(ndrc_edition="2025"), "ndrc_edition"),  # type: ignore[arg-type]
    ],
)
def test_invalid_inputs_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_thickness_factor_setting_rejected_for_sanitary_ware():
    inputs = CeramicsInputs("sanitary", 150.0, 1.0, (), 1.0, water_absorption_pct=0.2)
    with pytest.raises(ValueError, match="tiles and panels only"):
        ceramics_indicators(inputs, CeramicsSettings(thickness_factor=1.05))
