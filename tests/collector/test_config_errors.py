"""Bad collector configuration and site models stop start-up with file, key and fix named."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config_load import ConfigError
from collector.config import load_config
from collector.site import load_site

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_key_wrong_type_and_missing_key_are_each_named(tmp_path: Path) -> None:
    path = write(tmp_path, "collector.toml", '[collector]\nledgr = "x"\nkpi_interval_s = "soon"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert text.startswith(str(path))
    assert f"{path}: collector.ledgr: unknown key 'ledgr' — did you mean 'ledger'?" in text
    assert f'{path}: collector.kpi_interval_s: expected a number, got the string "soon"' in text
    assert f"{path}: collector.site_model: missing required key" in text


def test_a_site_model_path_that_does_not_exist_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "collector.toml", '[collector]\nsite_model = "nowhere.toml"\n')
    with pytest.raises(
        ConfigError, match=r"collector.site_model: '.*nowhere.toml' does not exist — point it"
    ):
        load_config(path)


def test_site_model_unit_that_does_not_fit_the_kind(tmp_path: Path) -> None:
    site = (REPO / "deploy" / "demo" / "site.toml").read_text()
    bad = site.replace('[channels."kiln-gw/raw_mill_kwh"]\nkind = "energy_total"\nunit = "kWh"',
                       '[channels."kiln-gw/raw_mill_kwh"]\nkind = "energy_total"\nunit = "kw"')  # fmt: skip
    assert bad != site
    with pytest.raises(ConfigError) as err:
        load_site(write(tmp_path, "site.toml", bad))
    assert "channels.kiln-gw/raw_mill_kwh" in str(err.value)
    assert "unit 'kw' does not fit kind 'energy_total'; use one of MWh, Wh, kWh" in str(err.value)


def test_a_channel_on_an_undefined_line_says_which_line_to_define(tmp_path: Path) -> None:
    site = (REPO / "deploy" / "demo" / "site.toml").read_text().replace('line = "L1"', 'line = "L9"', 1)
    with pytest.raises(ConfigError, match=r"names line 'L9'; define \[lines.L9\]"):
        load_site(write(tmp_path, "site.toml", site))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ('shift_starts = ["07:30", "15:30", "23:30"]\nbase_interval_s = 3600', "must fall on base intervals"),
        ('shift_starts = ["7h30"]', "must be a local hour 0..23 or a time 'HH:MM'"),
        ("shift_starts = [16, 8]", "increasing within one day"),
    ],
)
def test_a_bad_shift_pattern_is_named(tmp_path: Path, pattern: str, message: str) -> None:
    site = (REPO / "deploy" / "demo" / "site.toml").read_text()
    bad = site.replace("base_interval_s = 900\nshift_starts = [0, 8, 16]", pattern)
    assert bad != site
    with pytest.raises(ConfigError, match="site") as err:
        load_site(write(tmp_path, "site.toml", bad))
    assert message in str(err.value)


def test_collector_check_exits_2_with_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, "collector.toml", "[collector]\nsite_model = 5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "collector", "check", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert str(path) in proc.stderr and "collector.site_model" in proc.stderr


def test_the_shipped_demo_configs_are_valid() -> None:
    site = load_site(REPO / "deploy" / "demo" / "site.toml")
    assert site.agents == {"kiln-gw"} and len(site.channels) == 31


COLLECTOR = """[collector]
site_model = "site.toml"
kpi_interval_s = 10
periods = ["hour", "day"]

[mqtt]
port = 1883
"""
AUX = 'boundary = "clinker"\nrollover = 42949672.96'  # the aux meter's channel: a uint32 counter in 0.01 kWh


def collector_config(tmp_path: Path, text: str) -> Path:
    write(tmp_path, "site.toml", (REPO / "deploy" / "demo" / "site.toml").read_text())
    return write(tmp_path, "collector.toml", text)


def error_of(load, path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ")
    return text


COLLECTOR_CASES = [
    (
        "port = 1883",
        'port = "1883"',
        'mqtt.port: expected an integer, got the string "1883" — write port = 1883 without quotes',
    ),
    ("port = 1883", "port = true", "mqtt.port: expected an integer, got true — give a number"),
    (
        "kpi_interval_s = 10",
        'kpi_interval_s = "10"',
        'collector.kpi_interval_s: expected a number, got the string "10" — '
        "write kpi_interval_s = 10 without quotes",
    ),
    ('periods = ["hour", "day"]', 'periods = "hour"', 'got the string "hour" — write periods = ["hour"]'),
    ("[mqtt]", "[mqtt]\nkeepalive = 30.5", "mqtt.keepalive: expected an integer, got the number 30.5"),
    (
        "[mqtt]",
        "[mqtt]\nkeepalive_s = 60",
        "mqtt.keepalive_s: renamed to keepalive, the agent's key — write keepalive = 60",
    ),
    (
        "[mqtt]",
        '[mqtt]\ntopic_root = "kw"',
        'mqtt.topic_root: renamed to root, the agent\'s key — write root = "kw"',
    ),
    ("[mqtt]", "[mqtt]\nmax_inflight = 5", "mqtt.max_inflight: the collector publishes nothing"),
    ("kpi_interval_s = 10", "interval = 10", "unknown key 'interval' — did you mean 'kpi_interval_s'?"),
]


@pytest.mark.parametrize(("old", "new", "expected"), COLLECTOR_CASES)
def test_collector_values_are_strict_and_the_fix_is_named(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    text = COLLECTOR.replace(old, new, 1)
    assert text != COLLECTOR
    assert expected in error_of(load_config, collector_config(tmp_path, text))


def test_collector_config_takes_what_toml_gives(tmp_path: Path) -> None:
    """An array for a tuple key, a string for a path key, an integer for a float key."""
    cfg = load_config(collector_config(tmp_path, COLLECTOR))
    assert cfg.collector.periods == ("hour", "day")
    assert cfg.collector.site_model == tmp_path / "site.toml"
    assert cfg.collector.kpi_interval_s == 10.0 and isinstance(cfg.collector.kpi_interval_s, float)


SITE_CASES = [
    (
        AUX,
        'boundary = "clinker"\nrollover = "1e6"',
        'channels.kiln-gw/aux_kwh.rollover: expected a number, got the string "1e6" — '
        "write rollover = 1e6 without quotes",
    ),
    (
        AUX,
        'boundary = "clinker"\nmodulus = 1e6',
        "channels.kiln-gw/aux_kwh.modulus: unknown key 'modulus' — did you mean 'rollover'?",
    ),
    (AUX, 'boundary = "clinker"\nmax_value = 1e6', "unknown key 'max_value' — did you mean 'rollover'?"),
    (
        AUX,
        'boundary = "clinker"\nrollover = true',
        "channels.kiln-gw/aux_kwh.rollover: expected a number, got true — give a number",
    ),
    (
        "base_interval_s = 900",
        "base_interval_s = 900.5",
        "site.base_interval_s: expected an integer, got the number 900.5 — give a whole number",
    ),
    ('timezone = "Asia/Shanghai"', 'tz = "Asia/Shanghai"', "unknown key 'tz' — did you mean 'timezone'?"),
    (
        'quantity = "ncv_mj_per_kg"',
        'quantity = "ncv"',
        "lab[0].quantity: expected one of ncv_mj_per_kg, carbon_t_per_gj, biogenic_fraction",
    ),
    ('quantity = "ncv_mj_per_kg"', 'quantity = "ncv"', "got 'ncv' — did you mean 'ncv_mj_per_kg'?"),
    (
        "valid_from = 2020-01-01T00:00:00+08:00",
        'valid_from = "2020-01-01T00:00:00+08:00"',
        'lab[0].valid_from: expected a date-time, got the string "2020-01-01T00:00:00+08:00" — '
        "write valid_from = 2020-01-01T00:00:00+08:00 without quotes",
    ),
    (
        "shift_starts = [0, 8, 16]",
        "shift_starts = [0, true, 16]",
        "site.shift_starts[1]: expected an integer or a string, got true",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), SITE_CASES)
def test_site_model_values_are_strict_and_the_fix_is_named(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    site = (REPO / "deploy" / "demo" / "site.toml").read_text()
    bad = site.replace(old, new, 1)
    assert bad != site
    assert expected in error_of(load_site, write(tmp_path, "site.toml", bad))


def test_site_model_takes_what_toml_gives(tmp_path: Path) -> None:
    site = (REPO / "deploy" / "demo" / "site.toml").read_text()
    model = load_site(
        write(tmp_path, "site.toml", site.replace(AUX, 'boundary = "clinker"\nrollover = 42949673'))
    )
    assert model.channels["kiln-gw/aux_kwh"].rollover == 42949673.0  # an integer for a float key
    assert model.site.shift_starts == (0, 8, 16)  # an array for a tuple key
    assert model.lab[0].valid_from.utcoffset() is not None  # a TOML date-time


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (gzip.compress(b"[site]\nid = 'x'\n"), "it is gzip-compressed"),
        ("[site]\nid = 'x'\n".encode("utf-16"), "it is UTF-16"),
        ("# Kühler\n[site]\n".encode("latin-1"), "byte 0xfc on line 1 is not UTF-8"),
    ],
)
def test_a_site_model_that_is_not_utf8_text_says_so(tmp_path: Path, data: bytes, why: str) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes(data)
    message = error_of(load_site, path)
    assert message.startswith(f"{path}: not UTF-8 text (") and message.endswith("— save it as UTF-8")
    assert why in message
