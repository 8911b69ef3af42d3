"""Bad collector configuration and site models stop start-up with file, key and fix named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collector.config import load_config
from collector.config_errors import ConfigError
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
    assert "'collector.ledgr': unknown key 'ledgr' — did you mean 'ledger'?" in text
    assert "'collector.kpi_interval_s'" in text and "'soon'" in text
    assert "'collector.site_model': missing required key" in text


def test_a_site_model_path_that_does_not_exist_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "collector.toml", '[collector]\nsite_model = "nowhere.toml"\n')
    with pytest.raises(ConfigError, match=r"collector.site_model.*nowhere.toml does not exist"):
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
