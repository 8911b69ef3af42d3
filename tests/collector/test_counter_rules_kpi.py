"""Counter rules through ``kilnwatch kpi compute`` (``collector.kpis.offline.compute``), checked by hand:
recorded meter exchanges, flagged jumps and their setting, WHR gross/aux/net, per-channel coverage, and a
lab value in the wrong unit refused at load.

Every case is one local hour, 2026-11-02 10:00–11:00 Asia/Shanghai, base interval 15 min.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config_load import ConfigError
from collector.kpis.offline import compute
from collector.site import load_site

KGCE_MJ = 29.3076  # GB/T 2589: 1 kgce = 29.3076 MJ
KGCE_PER_KWH = 0.1229  # electricity, equivalent value (当量值)

HEAD = """
[site]
id = "rules"
timezone = "Asia/Shanghai"
base_interval_s = 900

[lines.L1]
[lines.L1.settings]
whr_treatment = "{whr_treatment}"
"""

ELECTRICITY = """
[channels."a/elec_kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "consumption"
carrier = "electricity"
gap_limit_s = 900
"""

EXCHANGE = """
[[meter_exchange]]
channel = "a/elec_kwh"
at = 2026-11-02T10:30:00+08:00
old_final = 1012.5
new_initial = 3.0
note = "meter 1000 replaced: old register 1012.5, new register 3.0 at commissioning"
"""


def site_toml(*parts: str, whr_treatment: str = "none") -> str:
    return HEAD.format(whr_treatment=whr_treatment) + "".join(parts)


def at(hh_mm_ss: str) -> str:
    return f"2026-11-02T{hh_mm_ss}+08:00"


def kpis(tmp_path: Path, site: str, rows: list[tuple[str, str, float]], period: str = "hour") -> list[dict]:
    """Write the site model and a plain readings CSV (quality 0 = good), compute, return the documents."""
    site_path = tmp_path / "site.toml"
    readings = tmp_path / "readings.csv"
    site_path.write_text(site)
    lines = ["timestamp,channel,value,quality"]
    lines += [f"{at(t)},{channel},{value!r},0" for t, channel, value in rows]
    readings.write_text("\n".join(lines) + "\n")
    return compute(load_site(site_path), readings, period)


def one(docs: list[dict]) -> dict:
    (doc,) = docs
    assert doc["start_local"] == at("10:00:00") and doc["end_local"] == at("11:00:00")
    return doc


# --- recorded meter exchanges --------------------------------------------------------------------------

#: Old meter 1000 → 1010 (10:00, 10:15), exchanged at 10:30, new meter 5.5 → 20.0 (10:45, 11:00).
EXCHANGED = [
    ("10:00:00", "a/elec_kwh", 1000.0),
    ("10:15:00", "a/elec_kwh", 1010.0),
    ("10:45:00", "a/elec_kwh", 5.5),
    ("11:00:00", "a/elec_kwh", 20.0),
]


def test_recorded_meter_exchange_counts_old_final_and_new_initial_and_wins_over_inference(tmp_path: Path):
    doc = one(kpis(tmp_path, site_toml(ELECTRICITY, EXCHANGE), EXCHANGED))
    # (1010 − 1000) old meter + (1012.5 − 1010) old meter up to its final + (5.5 − 3.0) new meter from its
    # initial + (20.0 − 5.5) new meter = 10 + 2.5 + 2.5 + 14.5 = 29.5 kWh
    expected = (1010.0 - 1000.0) + (1012.5 - 1010.0) + (5.5 - 3.0) + (20.0 - 5.5)
    assert expected == 29.5
    assert doc["channels"]["a/elec_kwh"]["quantity"] == pytest.approx(expected, rel=1e-12)
    assert doc["electricity_kwh"] == pytest.approx(expected, rel=1e-12)
    # one event, the exchange, with the quantity across it: (1012.5 − 1010) + (5.5 − 3.0) = 5.0 kWh; no
    # "reset" for the 1010 → 5.5 pair, which the readings alone would suggest
    (event,) = doc["counter_events"]
    assert event["kind"] == "exchange" and event["channel"] == "a/elec_kwh"
    assert event["v0"] == 1012.5 and event["v1"] == 3.0
    assert event["qty"] == pytest.approx((1012.5 - 1010.0) + (5.5 - 3.0), rel=1e-12)
    assert event["counted"] is True
    assert event["t1_local"] == at("10:30:00")
    # the quantity is complete and, with readings 15 min apart and a 900 s gap limit, covered all hour
    assert doc["channels"]["a/elec_kwh"]["coverage"] == pytest.approx(1.0)
    assert doc["channels"]["a/elec_kwh"]["complete"] == pytest.approx(1.0)


def test_without_the_record_the_same_drop_is_inferred_as_a_reset_counting_the_new_reading(tmp_path: Path):
    # The inference the record overrides: 1010 → 5.5 is a reset counting 5.5 from zero, so
    # 10 + 5.5 + 14.5 = 30.0 kWh (0.5 kWh more than the fitter's record, which says the new meter
    # started at 3.0 and the old one ran on to 1012.5).
    doc = one(kpis(tmp_path, site_toml(ELECTRICITY), EXCHANGED))
    assert doc["channels"]["a/elec_kwh"]["quantity"] == pytest.approx(10.0 + 5.5 + 14.5, rel=1e-12)
    (event,) = doc["counter_events"]
    assert event["kind"] == "reset" and event["v0"] == 1010.0 and event["v1"] == 5.5
    assert event["qty"] == pytest.approx(5.5) and event["counted"] is True


def test_new_meter_ratio_scales_the_new_meters_readings(tmp_path: Path):
    # The new meter sits on a CT half as large: each of its units is 2 channel units (new_ratio 2.0).
    # (1010 − 1000) + (1012.5 − 1010) + (5.5 − 3.0) × 2 + (20.0 − 5.5) × 2 = 10 + 2.5 + 5 + 29 = 46.5 kWh
    record = EXCHANGE.replace("new_initial = 3.0", "new_initial = 3.0\nnew_ratio = 2.0")
    doc = one(kpis(tmp_path, site_toml(ELECTRICITY, record), EXCHANGED))
    expected = (1010.0 - 1000.0) + (1012.5 - 1010.0) + (5.5 - 3.0) * 2.0 + (20.0 - 5.5) * 2.0
    assert expected == 46.5
    assert doc["channels"]["a/elec_kwh"]["quantity"] == pytest.approx(expected, rel=1e-12)
    (event,) = doc["counter_events"]
    # values in each meter's own units, the quantity in the channel's: 2.5 + 2.5 × 2 = 7.5 kWh
    assert event["kind"] == "exchange" and event["v0"] == 1012.5 and event["v1"] == 3.0
    assert event["qty"] == pytest.approx(2.5 + 2.5 * 2.0, rel=1e-12)


# --- flagged (implausible) jumps ---------------------------------------------------------------------------

CLINKER = """
[channels."a/clinker_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "output"
carrier = "clinker"
max_rate_per_h = 400
"""

#: +1 t in 10 s (360 t/h: plausible), +500 t in 10 s (flagged), +1 t in 10 s.
JUMP = [
    ("10:00:00", "a/clinker_t", 500.0),
    ("10:00:10", "a/clinker_t", 501.0),
    ("10:00:20", "a/clinker_t", 1001.0),
    ("10:00:30", "a/clinker_t", 1002.0),
]


@pytest.mark.parametrize(
    ("setting", "counted", "clinker_t"),
    [
        (None, False, 1.0 + 1.0),  # the default is "exclude"
        ("exclude", False, 1.0 + 1.0),
        ("include", True, 1.0 + 500.0 + 1.0),
    ],
)
def test_implausible_jump_is_listed_and_its_setting_decides_whether_it_counts(
    tmp_path: Path, setting: str | None, counted: bool, clinker_t: float
):
    # limit 400 t/h × (10 s + 5 s window) = 1.667 t: +1 t passes, +500 t is flagged. Excluded, the
    # quantity is lower by exactly the 500 t; included (same readings, setting changed, recomputed) it is
    # restored — the event keeps the quantity either way.
    channel = CLINKER if setting is None else CLINKER + f'implausible = "{setting}"\n'
    doc = one(kpis(tmp_path, site_toml(channel), JUMP))
    assert doc["channels"]["a/clinker_t"]["quantity"] == pytest.approx(clinker_t, rel=1e-12)
    assert doc["clinker_t"] == pytest.approx(clinker_t, rel=1e-12)
    (event,) = doc["counter_events"]
    assert event["kind"] == "implausible" and event["channel"] == "a/clinker_t"
    assert (event["v0"], event["v1"]) == (501.0, 1001.0)
    assert event["t0"] == "2026-11-02T02:00:10Z" and event["t1"] == "2026-11-02T02:00:20Z"
    assert event["qty"] == pytest.approx(500.0, rel=1e-12)
    assert event["counted"] is counted


# --- waste-heat power: gross, aux, net ---------------------------------------------------------------

WHR_LINE = """
[[lab]]
valid_from = 2026-11-01T00:00:00+08:00
value = 25.0

[channels."a/coal_kg"]
kind = "mass_total"
unit = "kg"
line = "L1"
role = "consumption"
carrier = "coal"
fuel = "bituminous"

[channels."a/clinker_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "output"
carrier = "clinker"

[channels."a/whr_gross_kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "{gross_role}"
carrier = "electricity"

[channels."a/whr_aux_kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "whr_aux"
carrier = "electricity"
"""

WHR_NET = """
[channels."a/whr_net_kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "whr_net"
carrier = "electricity"
"""

WHR_READINGS = [
    ("10:00:00", "a/elec_kwh", 1000.0),
    ("11:00:00", "a/elec_kwh", 6500.0),  # E = 5500 kWh
    ("10:00:00", "a/coal_kg", 10000.0),
    ("11:00:00", "a/coal_kg", 23500.0),  # 13.5 t at 25 MJ/kg
    ("10:00:00", "a/clinker_t", 500.0),
    ("11:00:00", "a/clinker_t", 600.0),  # P = 100 t
    ("10:00:00", "a/whr_gross_kwh", 20000.0),
    ("11:00:00", "a/whr_gross_kwh", 21000.0),  # gross 1000 kWh
    ("10:00:00", "a/whr_aux_kwh", 300.0),
    ("11:00:00", "a/whr_aux_kwh", 380.0),  # aux 80 kWh
]
E_KWH, P_T, GROSS_KWH, AUX_KWH = 5500.0, 100.0, 1000.0, 80.0
NET_KWH = GROSS_KWH - AUX_KWH  # 920 kWh
COAL_KGCE_PER_T = 13.5 * 1000 * 25.0 / KGCE_MJ / P_T  # 337,500 MJ / 29.3076 / 100 t = 115.154 kgce/t


@pytest.mark.parametrize(
    ("treatment", "elec_kwh_per_t", "coal_kgce_per_t"),
    [
        ("none", E_KWH / P_T, COAL_KGCE_PER_T),  # 55.0 kWh/t, 115.154 kgce/t
        ("deduct_from_electricity", (E_KWH - NET_KWH) / P_T, COAL_KGCE_PER_T),  # (5500 − 920)/100 = 45.8
        ("deduct_from_coal", E_KWH / P_T, COAL_KGCE_PER_T - NET_KWH * KGCE_PER_KWH / P_T),  # − 1.1307
    ],
)
@pytest.mark.parametrize("gross_role", ["whr_gross", "credit"])  # "credit": older site models
def test_whr_treatments_use_net_generation_gross_minus_aux(
    tmp_path: Path, treatment: str, elec_kwh_per_t: float, coal_kgce_per_t: float, gross_role: str
):
    site = site_toml(ELECTRICITY, WHR_LINE.format(gross_role=gross_role), whr_treatment=treatment)
    doc = one(kpis(tmp_path, site, WHR_READINGS))
    assert doc["whr_gross_kwh"] == pytest.approx(GROSS_KWH, rel=1e-12)
    assert doc["whr_aux_kwh"] == pytest.approx(AUX_KWH, rel=1e-12)
    assert doc["whr_net_kwh"] == pytest.approx(NET_KWH, rel=1e-12)  # 1000 − 80 = 920
    assert doc["whr_net_metered"] is False
    assert doc["whr_kwh"] == pytest.approx(NET_KWH, rel=1e-12)
    assert doc["electricity_kwh"] == pytest.approx(E_KWH, rel=1e-12)
    assert doc["net_purchased_kwh"] == pytest.approx(E_KWH - NET_KWH, rel=1e-12)  # 4580 kWh, any treatment
    assert doc["electricity_kwh_per_t"] == pytest.approx(elec_kwh_per_t, rel=1e-12)
    assert doc["coal_kgce_per_t"] == pytest.approx(coal_kgce_per_t, rel=1e-9)
    # comprehensive = coal + 0.1229 × electricity, e.g. none: 115.154 + 0.1229 × 55 = 121.914 kgce/t
    assert doc["comprehensive_kgce_per_t"] == pytest.approx(coal_kgce_per_t + KGCE_PER_KWH * elec_kwh_per_t)


def test_a_whr_net_meter_overrides_gross_minus_aux(tmp_path: Path):
    # The net meter reads 900 kWh: that is the net, not 1000 − 80 = 920 (gross and aux still reported).
    site = site_toml(
        ELECTRICITY, WHR_LINE.format(gross_role="whr_gross"), WHR_NET, whr_treatment="deduct_from_electricity"
    )
    net_rows = [("10:00:00", "a/whr_net_kwh", 5000.0), ("11:00:00", "a/whr_net_kwh", 5900.0)]
    doc = one(kpis(tmp_path, site, WHR_READINGS + net_rows))
    assert doc["whr_net_metered"] is True
    assert doc["whr_net_kwh"] == pytest.approx(900.0, rel=1e-12)
    assert doc["whr_gross_kwh"] == pytest.approx(GROSS_KWH) and doc["whr_aux_kwh"] == pytest.approx(AUX_KWH)
    assert doc["net_purchased_kwh"] == pytest.approx(E_KWH - 900.0, rel=1e-12)  # 4600 kWh
    assert doc["electricity_kwh_per_t"] == pytest.approx((E_KWH - 900.0) / P_T, rel=1e-12)  # 46.0
    assert doc["comprehensive_kgce_per_t"] == pytest.approx(COAL_KGCE_PER_T + KGCE_PER_KWH * 46.0)


# --- coverage with a 40-minute gap ---------------------------------------------------------------------

MILL = """
[channels."a/mill_kw"]
kind = "power"
unit = "kW"
line = "L1"
role = "consumption"
carrier = "electricity"
"""


def test_40_minute_gap_lowers_coverage_of_counter_and_rate_but_only_the_rate_is_incomplete(tmp_path: Path):
    # Readings every minute 10:00–10:10 and 10:50–11:00, none in between: a 40 min (2400 s) gap, over the
    # gap limit of both channels (300 s by default, 900 s set for the counter).
    minutes = [*range(0, 11), *range(50, 61)]
    rows = []
    for m in minutes:
        stamp = "11:00:00" if m == 60 else f"10:{m:02d}:00"
        rows.append((stamp, "a/elec_kwh", 1000.0 + 10.0 * m))  # 10 kWh/min
        rows.append((stamp, "a/mill_kw", 600.0))
    doc = one(kpis(tmp_path, site_toml(ELECTRICITY, MILL), rows))
    counter, rate = doc["channels"]["a/elec_kwh"], doc["channels"]["a/mill_kw"]
    covered = (3600.0 - 2400.0) / 3600.0  # 1/3 of the hour within the gap limit
    # counter: the delta across the gap is complete (60 min × 10 = 600 kWh); only its coverage drops
    assert counter["quantity"] == pytest.approx(600.0, rel=1e-12)
    assert counter["coverage"] == pytest.approx(covered, rel=1e-12)
    assert counter["complete"] == pytest.approx(1.0)  # inside its first..last good reading
    # rate: the 40 min are missing, not zero: 600 kW × 1200 s / 3600 = 200 kWh, coverage = complete = 1/3
    assert rate["quantity"] == pytest.approx(600.0 * 1200.0 / 3600.0, rel=1e-12)
    assert rate["coverage"] == pytest.approx(covered, rel=1e-12)
    assert rate["complete"] == pytest.approx(covered, rel=1e-12)
    # the line's coverage is the least complete of its counted channels
    assert doc["coverage"] == pytest.approx(covered, rel=1e-12)
    assert doc["electricity_kwh"] == pytest.approx(600.0 + 200.0, rel=1e-12)


# --- lab values in the wrong unit ------------------------------------------------------------------------


def test_an_ncv_of_23100_is_refused_at_load_as_looking_like_kj_per_kg(tmp_path: Path):
    site = tmp_path / "site.toml"
    lab = "\n[[lab]]\nvalid_from = 2026-11-01T00:00:00+08:00\nvalue = 23100\n"
    site.write_text(site_toml(ELECTRICITY) + lab)
    with pytest.raises(ConfigError) as err:
        load_site(site)
    message = str(err.value)
    assert str(site) in message and "lab[0]" in message and "ncv_mj_per_kg" in message
    assert "23.1 MJ/kg if it is kJ/kg" in message  # 23100 kJ/kg = 23.1 MJ/kg
