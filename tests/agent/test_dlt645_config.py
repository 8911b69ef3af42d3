"""``[[dlt645]]`` validation, through ``kilnwatch agent check`` as an operator meets it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.commands import agent_app
from agent.config import load_config
from agent.sources.dlt645.config import Dlt645Meter

ROOT = Path(__file__).resolve().parents[2]
HEAD = '[agent]\nid = "gw"\nsite = "s"\n'
SERIAL = {"name": "m", "serial_port": "/dev/ttyUSB0", "address": "000012345678"}
GATEWAY = {"transport": "tcp", "host": "gw", "port": 4001}


def toml_table(section: str, values: dict[str, object]) -> str:
    lines = [f"{k} = {v!r}".replace("'", '"').replace("True", "true") for k, v in values.items()]
    return f"[[{section}]]\n" + "\n".join(lines) + "\n"


def check(tmp_path: Path, body: str) -> tuple[int, str, str]:
    path = tmp_path / "agent.toml"
    path.write_text(HEAD + body)
    result = CliRunner().invoke(agent_app, ["check", str(path)])
    return result.exit_code, result.output, result.stderr


def test_the_example_config_passes_check() -> None:
    result = CliRunner().invoke(agent_app, ["check", str(ROOT / "agent/sources/dlt645/example.toml")])
    assert result.exit_code == 0, result.output
    assert (
        "dlt645 kiln_main_drive: serial /dev/ttyUSB0 2400 8E1 meter 000012345678, every 10 s" in result.output
    )
    assert "3 DL/T 645 meters, 7 points" in result.output


@pytest.mark.parametrize(
    ("meter", "message"),
    [
        ({**SERIAL, "address": "12345678"}, "address: '12345678' is not a meter address: it has exactly 12 "
         "decimal digits (or is 'AAAAAAAAAAAA' for the only meter on the line): pad it with leading zeros, "
         "'000012345678'"),
        ({**SERIAL, "address": "00001234567X"}, "is not a meter address"),
        ({**SERIAL, "address": 12345678}, "address: expected a string, got the number 12345678"),
        ({"name": "m", "address": "000012345678"}, "serial_port: missing required key 'serial_port'"),
        ({**SERIAL, "host": "10.0.0.5"}, "host and port are not used with transport 'serial'"),
        ({**SERIAL, "parity": "X"}, "parity: expected one of N, E, O"),
        ({"name": "m", "transport": "tcp", "host": "gw", "address": "000012345678"},
         "missing required key 'port': set the gateway's port for transport 'tcp'"),
        ({"name": "m", "transport": "tcp", "host": "gw", "port": 4001, "baudrate": 9600,
          "address": "000012345678"}, "baudrate: serial settings are for transport 'serial' only"),
        ({**SERIAL, "ct_ratio": 40}, "ct_ratio = 40 multiplies no point"),
    ],
)  # fmt: skip
def test_meter_settings_are_checked(tmp_path: Path, meter: dict[str, object], message: str) -> None:
    code, _, stderr = check(tmp_path, toml_table("dlt645", meter))
    assert code == 2
    assert message in stderr, stderr


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ({"name": "p", "di": "0001000"}, "points[0].di: '0001000' is neither a data identifier of 8 hex"),
        ({"name": "p", "di": "energy_imports"}, "nor a known name (energy_total, energy_import_total"),
        ({"name": "p", "di": "00030000"}, "points[0]: point 'p': identifier 00030000 is not in the table of "
         "known identifiers: set its layout"),
        ({"name": "p", "di": "00030000", "layout": "XXXXX.XX"}, "points[0].layout: 'XXXXX.XX' is not a"),
    ],
)  # fmt: skip
def test_points_are_checked(tmp_path: Path, point: dict[str, object], message: str) -> None:
    code, _, stderr = check(tmp_path, toml_table("dlt645", SERIAL) + toml_table("dlt645.points", point))
    assert code == 2
    assert message in stderr, stderr


def test_known_identifiers_bring_their_layout_unit_kind_and_ratios() -> None:
    meter = Dlt645Meter.model_validate(
        {**SERIAL, "ct_ratio": 40.0, "pt_ratio": 100.0, "points": [
            {"name": "kwh", "di": "energy_import_total"},
            {"name": "v", "di": "02010100"},
            {"name": "a", "di": "current_a", "unit": "mA", "scale": 1000.0},
            {"name": "pf", "di": "power_factor_total"},
            {"name": "kvarh", "di": "00030000", "layout": "xxxxxx.xx", "signed": True, "kind": "analog"},
        ]}
    )  # fmt: skip
    kwh, volts, amps, pf, kvarh = meter.points
    assert (kwh.di, kwh.layout, kwh.unit, kwh.kind, kwh.signed) == ("00010000", "XXXXXX.XX", "kWh",
                                                                    "energy_total", False)  # fmt: skip
    assert [meter.ratio_factor(p) for p in meter.points] == [4000.0, 100.0, 40.0, 1.0, 1.0]
    assert (volts.label, amps.unit, amps.signed, pf.unit) == ("02010100 voltage_a", "mA", True, "")
    assert (kvarh.label, kvarh.layout, kvarh.applied_ratios) == ("00030000", "XXXXXX.XX", "none")


def test_meters_sharing_a_line_must_fit_together(tmp_path: Path) -> None:
    body = (
        toml_table("dlt645", {**SERIAL, "name": "a"})
        + toml_table("dlt645", {**SERIAL, "name": "b", "parity": "N", "address": "000012345679"})
        + toml_table("dlt645", {**SERIAL, "name": "c"})
        + toml_table("dlt645", {**SERIAL, "name": "d", "address": "AAAAAAAAAAAA"})
        + toml_table("dlt645", {**GATEWAY, "name": "e", "address": "aaaaaaaaaaaa"})
    )
    code, _, stderr = check(tmp_path, body)
    assert code == 2
    path = tmp_path / "agent.toml"
    expected = (
        f"{path}: dlt645[1].parity: 'N' differs from 'E' of dlt645[0] on the same connection /dev/ttyUSB0"
    )
    assert expected in stderr
    assert "dlt645[2].address: '000012345678' is also the address of dlt645[0] on /dev/ttyUSB0" in stderr
    assert "dlt645[3].address: the wildcard 'AAAAAAAAAAAA' reaches every meter on /dev/ttyUSB0" in stderr
    assert "dlt645[4]" not in stderr  # alone behind its gateway: the wildcard is fine

    ok = toml_table("dlt645", {**SERIAL, "name": "a"})
    ok += toml_table("dlt645.points", {"name": "p", "di": "power_total"})
    ok += toml_table("dlt645", {**GATEWAY, "name": "e", "address": "AAAAAAAAAAAA"})
    code, output, stderr = check(tmp_path, ok)
    assert code == 0, stderr
    assert (
        "dlt645 a: serial /dev/ttyUSB0 2400 8E1 meter 000012345678, every 5 s, 1 points in 1 read(s) "
        "(02030000 power_total)" in output
    )
    assert "dlt645 e: tcp gw:4001 meter AAAAAAAAAAAA, every 5 s, 0 points in 0 read(s) ()" in output
    config = load_config(tmp_path / "agent.toml")
    assert [t.name for t in config.dlt645] == ["a", "e"]
