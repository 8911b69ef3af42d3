"""Lab inputs over time ranges (coal lots, clinker oxides, clinker ratio) and their provenance, by hand.

Two local hours, 2026-11-02 00:00–02:00 Asia/Shanghai (2026-11-01 16:00–18:00 UTC). The coal lot changes at
01:00, the clinker is sampled each hour, and the cement recipe's clinker ratio comes from the lab.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.kpis.line_kpis import MissingLabValue
from collector.kpis.offline import compute
from collector.site import load_site

SITE = """
[site]
id = "lab"

[lines.L1]

[[lab]]                      # entry 0: coal lot A
valid_from = 2026-11-02T00:00:00+08:00
valid_to = 2026-11-02T01:00:00+08:00
value = 25.0
source = "lot A, report 1101"

[[lab]]                      # entry 1: coal lot B
valid_from = 2026-11-02T01:00:00+08:00
value = 22.0
source = "lot B, report 1102"

[[lab]]                      # entry 2
quantity = "carbon_t_per_gj"
valid_from = 2026-11-02T00:00:00+08:00
value = 0.026
source = "lot A ultimate analysis"

[[lab]]                      # entry 3
quantity = "carbon_t_per_gj"
valid_from = 2026-11-02T01:00:00+08:00
value = 0.0265
source = "lot B ultimate analysis"

[[lab]]                      # entry 4
quantity = "clinker_cao"
line = "L1"
valid_from = 2026-11-02T00:00:00+08:00
value = 0.65
source = "XRF sample 00h"

[[lab]]                      # entry 5
quantity = "clinker_cao"
line = "L1"
valid_from = 2026-11-02T01:00:00+08:00
value = 0.66
source = "XRF sample 01h"

[[lab]]                      # entry 6
quantity = "clinker_mgo"
line = "L1"
valid_from = 2026-11-02T00:00:00+08:00
value = 0.02
source = "XRF"

[[lab]]                      # entry 7
quantity = "clinker_ratio"
line = "L1"
valid_from = 2026-11-01T00:00:00+08:00
value = 0.75
source = "P.O 42.5 recipe"

[channels."a/elec_kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "consumption"
carrier = "electricity"

[channels."a/coal_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "consumption"
carrier = "coal"

[channels."a/clinker_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "output"
carrier = "clinker"

[channels."a/mill_kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "consumption"
carrier = "electricity"
boundary = "cement_prep"

[channels."a/cement_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "output"
carrier = "cement"
boundary = "cement_prep"
"""

READINGS = """timestamp,channel,value,quality
2026-11-01T16:00:00Z,a/elec_kwh,0,0
2026-11-01T17:00:00Z,a/elec_kwh,5000,0
2026-11-01T18:00:00Z,a/elec_kwh,12000,0
2026-11-01T16:00:00Z,a/coal_t,100,0
2026-11-01T17:00:00Z,a/coal_t,112,0
2026-11-01T18:00:00Z,a/coal_t,127,0
2026-11-01T16:00:00Z,a/clinker_t,0,0
2026-11-01T17:00:00Z,a/clinker_t,100,0
2026-11-01T18:00:00Z,a/clinker_t,220,0
2026-11-01T16:00:00Z,a/mill_kwh,0,0
2026-11-01T17:00:00Z,a/mill_kwh,4500,0
2026-11-01T18:00:00Z,a/mill_kwh,9000,0
2026-11-01T16:00:00Z,a/cement_t,0,0
2026-11-01T17:00:00Z,a/cement_t,150,0
2026-11-01T18:00:00Z,a/cement_t,300,0
"""


def _compute(tmp_path: Path, site_text: str = SITE, period: str = "day") -> list[dict]:
    site = tmp_path / "site.toml"
    readings = tmp_path / "readings.csv"
    site.write_text(site_text)
    readings.write_text(READINGS)
    return compute(load_site(site), readings, period)


def test_coal_lots_weighted_by_what_was_fired_under_them(tmp_path: Path) -> None:
    (doc,) = _compute(tmp_path)
    # hour 1: 12 t of lot A at 25 MJ/kg = 300 GJ; hour 2: 15 t of lot B at 22 MJ/kg = 330 GJ → 630 GJ
    (fuel,) = doc["fuels"]
    assert fuel["mass_t"] == pytest.approx(27.0)
    assert fuel["ncv_mj_per_kg"] == pytest.approx(630 / 27)  # mass-weighted 23.333 MJ/kg
    # carbon per heat weighted by heat: (300 × 0.026 + 330 × 0.0265) / 630 = 16.545 / 630 = 0.026262 tC/GJ
    assert fuel["carbon_t_per_gj"] == pytest.approx(16.545 / 630)
    # coal term: 630 000 MJ / 29.3076 = 21 496.1 kgce over 220 t clinker = 97.709 kgce/t
    coal = 630_000 / 29.3076 / 220
    assert doc["coal_kgce_per_t"] == pytest.approx(coal)
    assert doc["comprehensive_kgce_per_t"] == pytest.approx(coal + 0.1229 * 12_000 / 220)  # + 6.7036
    # CO2 of combustion: 16.545 tC × 0.93 oxidation (bituminous default) × 44/12 = 56.4185 t
    assert doc["co2_fuel_t"] == pytest.approx(16.545 * 0.93 * 44 / 12)


def test_clinker_oxides_per_sample_give_the_process_co2(tmp_path: Path) -> None:
    (doc,) = _compute(tmp_path)
    # hour 1: 100 t × (0.65 × 44/56 + 0.02 × 44/40) = 100 × 0.532714 = 53.2714 t
    # hour 2: 120 t × (0.66 × 44/56 + 0.02 × 44/40) = 120 × 0.540571 = 64.8686 t → 118.140 t
    expected = 100 * (0.65 * 44 / 56 + 0.02 * 44 / 40) + 120 * (0.66 * 44 / 56 + 0.02 * 44 / 40)
    assert doc["co2_process_t"] == pytest.approx(expected)
    assert doc["provenance"]["process_co2"]["method"].startswith("oxide")
    cao = doc["provenance"]["process_co2"]["clinker_factor"]["cao"]
    assert cao == pytest.approx((65 + 79.2) / 220)  # weighted by the clinker made under each sample


def test_cement_from_the_recipe_clinker_ratio(tmp_path: Path) -> None:
    (doc,) = _compute(tmp_path)
    clinker = 630_000 / 29.3076 / 220 + 0.1229 * 12_000 / 220  # 104.413 kgce/t
    # 300 t cement × 0.75 = 225 t clinker; (225 × 104.413 + 9 000 kWh × 0.1229) / 300 = 78.310 + 3.687
    assert doc["cement_clinker_ratio_pct"] == pytest.approx(75.0)
    assert doc["cement_comprehensive_kgce_per_t"] == pytest.approx((225 * clinker + 9000 * 0.1229) / 300)
    assert doc["cement_comprehensive_grade"] == 2  # 80 < 81.997 ≤ 87 (limits at 75 %)
    assert doc["cement_prep_kwh_per_t"] == pytest.approx(30.0)  # 9 000 / 300
    assert doc["cement_prep_grade"] == 3  # 29 < 30 ≤ 34


def test_every_lab_entry_used_is_in_the_provenance(tmp_path: Path) -> None:
    hour1, hour2 = _compute(tmp_path, period="hour")[:2]
    assert [e["entry"] for e in hour1["lab_inputs"]] == [0, 2, 4, 6, 7]
    assert [e["entry"] for e in hour2["lab_inputs"]] == [1, 3, 5, 6, 7]
    assert hour1["lab_inputs"][0]["source"] == "lot A, report 1101"
    assert hour2["lab_inputs"][2] == {
        "entry": 5, "quantity": "clinker_cao", "carrier": "coal", "line": "L1",
        "valid_from": "2026-11-02T01:00:00+08:00", "value": 0.66, "source": "XRF sample 01h",
    }  # fmt: skip


def test_clinker_made_without_an_oxide_sample_is_an_error(tmp_path: Path) -> None:
    late = SITE.replace(
        "valid_from = 2026-11-02T00:00:00+08:00\nvalue = 0.65",
        "valid_from = 2026-11-02T00:30:00+08:00\nvalue = 0.65",
    )
    with pytest.raises(MissingLabValue, match="clinker_cao"):
        _compute(tmp_path, late)


def test_cement_without_a_clinker_ratio_is_reported_missing(tmp_path: Path) -> None:
    no_ratio = SITE.replace(
        'quantity = "clinker_ratio"', 'quantity = "clinker_ratio"\nvalid_to = 2026-11-01T12:00:00+08:00'
    )
    (doc,) = _compute(tmp_path, no_ratio)
    assert doc["cement_comprehensive_kgce_per_t"] is None
    assert "clinker_ratio" in doc["cement_missing"][0]
    assert doc["cement_prep_kwh_per_t"] == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('quantity = "clinker_cao"\nline = "L1"\nvalue = 65', "fraction"),
        ('quantity = "clinker_cao"\nvalue = 0.65', "add line"),
        ('quantity = "clinker_cao"\nline = "L9"\nvalue = 0.65', "define [lines.L9]"),
        ("value = 25\nvalid_to = 2026-10-01T00:00:00+08:00", "valid_to must be after"),
    ],
)
def test_bad_lab_entries_name_the_fix(tmp_path: Path, entry: str, message: str) -> None:
    from agent.config_load import ConfigError

    site = tmp_path / "site.toml"
    site.write_text(SITE + f"\n[[lab]]\nvalid_from = 2026-11-02T00:00:00+08:00\n{entry}\n")
    with pytest.raises(ConfigError, match="lab") as err:
        load_site(site)
    assert message in str(err.value)


RDF_AND_CKD = """
[[lab]]
carrier = "alternative_fuel"
valid_from = 2026-11-02T00:00:00+08:00
value = 16.0
source = "RDF lot 7"

[channels."a/rdf_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "consumption"
carrier = "alternative_fuel"
fuel = "rdf"

[channels."a/ckd_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "output"
carrier = "ckd"
"""

MORE_READINGS = """2026-11-01T16:00:00Z,a/rdf_t,0,0
2026-11-01T18:00:00Z,a/rdf_t,4,0
2026-11-01T16:00:00Z,a/ckd_t,0,0
2026-11-01T18:00:00Z,a/ckd_t,3,0
"""


def test_alternative_fuel_and_kiln_dust_channels(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    readings = tmp_path / "readings.csv"
    site.write_text(
        SITE.replace("[lines.L1]", "[lines.L1]\n[lines.L1.settings]\nckd_calcination = 0.4") + RDF_AND_CKD
    )
    readings.write_text(READINGS + MORE_READINGS)
    (doc,) = compute(load_site(site), readings, "day")
    coal_gj, rdf_gj = 630.0, 4 * 16.0  # 4 t RDF at the lab's 16 MJ/kg = 64 GJ
    # RDF counted in the coal term by default: (630 000 + 64 000) MJ / 29.3076 / 220 t
    assert doc["coal_kgce_per_t"] == pytest.approx((coal_gj + rdf_gj) * 1000 / 29.3076 / 220)
    assert doc["alternative_fuel_kgce"] == pytest.approx(rdf_gj * 1000 / 29.3076)
    # RDF CO2 with the table's 0.025 tC/GJ, oxidation 1.0, 50 % biogenic: 64 × 0.025 × 44/12 = 5.8667 t,
    # half of it memo
    rdf_co2 = rdf_gj * 0.025 * 1.0 * 44 / 12
    assert doc["co2_biogenic_memo_t"] == pytest.approx(0.5 * rdf_co2)
    assert doc["co2_fuel_t"] == pytest.approx(16.545 * 0.93 * 44 / 12 + 0.5 * rdf_co2)
    # CKD: EF_cli from the oxides = 144.14 / 220 = 0.536994; x = EF/(1+EF); EF_CKD = x·0.4 / (1 − x·0.4)
    ef_cli = (100 * (0.65 * 44 / 56 + 0.02 * 44 / 40) + 120 * (0.66 * 44 / 56 + 0.02 * 44 / 40)) / 220
    x = ef_cli / (1 + ef_cli)
    ef_ckd = x * 0.4 / (1 - x * 0.4)
    assert doc["co2_process_t"] == pytest.approx(220 * ef_cli + 3 * ef_ckd)
