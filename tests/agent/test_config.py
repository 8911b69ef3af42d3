"""Config loading: every error names the file, the key path and the fix; env references expand."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from agent import wire
from agent.config import ConfigError, Kind, load_config

GOOD = """
[agent]
id = "gw1"
site = "plant1"

[mqtt]
port = 1884

[outbox]
path = "data/outbox.db"

[[modbus]]
name = "meter1"
host = "10.0.0.5"
unit = 3

[[modbus.points]]
name = "kiln_kwh"
address = 3203
type = "int64"
scale = 0.001
unit = "kWh"
kind = "energy_total"

[[modbus.points]]
name = "kiln_kw"
address = 3059
type = "float32"

[[opcua]]
name = "dcs"
endpoint = "opc.tcp://10.0.0.9:4840/"

[[opcua.points]]
name = "feed_tph"
node = "nsu=urn:kilnwatch:sim:dcs;s=KilnLine1.KilnFeed_tph"
kind = "mass_rate"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.agent.id == "gw1" and cfg.mqtt.port == 1884 and cfg.mqtt.root == wire.DEFAULT_ROOT
    assert cfg.client_id == "kilnwatch-gw1"
    assert cfg.outbox.path == (tmp_path / "data" / "outbox.db").resolve()  # relative to the config's folder
    device = cfg.modbus[0]
    assert (device.port, device.order, device.address_base, device.interval) == (502, "ABCD", 0, 1.0)
    assert device.points[1].kind == "analog" and device.points[1].function == 3


def test_kind_values_match_the_wire_module() -> None:
    assert typing.get_args(Kind) == wire.ChannelKind.ALL


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("address = 3059", "adress = 3059"))
    message = error_of(path)
    assert str(path) in message
    assert "modbus[0].points[1].adress: unknown key 'adress' — did you mean 'address'?" in message
    # and the now-missing address is reported too, on its own line
    assert "modbus[0].points[1].address: missing required key 'address'" in message


def test_misspelt_type_lists_the_choices(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, GOOD.replace('type = "float32"', 'type = "flaot32"')))
    assert message.startswith(f"{tmp_path / 'agent.toml'}: modbus[0].points[1].type: ")
    assert (
        "expected one of int16, uint16, int32, uint32, int64, uint64, float32, float64; got 'flaot32'"
        in message
    )
    assert "did you mean 'float32'?" in message


def test_wrong_value_type_names_key_and_value(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, GOOD.replace("unit = 3", 'unit = "three"')))
    assert "agent.toml: modbus[0].unit: input should be a valid integer" in message
    assert "got 'three'" in message and "unit id" in message


def test_missing_device_address_says_what_to_set(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, GOOD.replace('host = "10.0.0.5"\n', "")))
    assert message == (
        f"{tmp_path / 'agent.toml'}: modbus[0].host: missing required key 'host': "
        "set the device's IP address or hostname"
    )


def test_duplicate_point_names_are_refused(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, GOOD.replace('name = "feed_tph"', 'name = "kiln_kw"')))
    assert "opcua[0].points[0].name: duplicate name 'kiln_kw' (also modbus[0].points[1])" in message


def test_invalid_names_and_node_ids(tmp_path: Path) -> None:
    text = GOOD.replace('name = "kiln_kw"', 'name = "kiln/kw"').replace("nsu=urn:kilnwatch:sim:dcs;s=", "x=")
    message = error_of(write(tmp_path, text))
    assert "modbus[0].points[1].name: 'kiln/kw' is not a valid name" in message
    assert "opcua[0].points[0].node: 'x=KilnLine1.KilnFeed_tph' is not a node id" in message


def test_address_below_base(tmp_path: Path) -> None:
    text = GOOD.replace("unit = 3", "unit = 3\naddress_base = 1").replace("address = 3203", "address = 0")
    assert "modbus[0]: point 'kiln_kwh': address 0 is below address_base 1" in error_of(write(tmp_path, text))
    text = GOOD.replace("address = 3203", "address = 65533")  # an int64 needs 65533..65536
    assert "point 'kiln_kwh': int64 at 65533 runs past register 65535" in error_of(write(tmp_path, text))


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, GOOD + "\n[mqtt\n"))
    assert message.startswith(f"{tmp_path / 'agent.toml'}: not valid TOML")


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read the file" in error_of(tmp_path / "nope.toml")


def test_environment_references_expand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = GOOD.replace('host = "10.0.0.5"', 'host = "${KW_TEST_HOST:-10.9.9.9}"\nport = "${KW_TEST_PORT}"')
    path = write(tmp_path, text)
    monkeypatch.delenv("KW_TEST_HOST", raising=False)
    monkeypatch.setenv("KW_TEST_PORT", "5020")
    device = load_config(path).modbus[0]
    assert (device.host, device.port) == ("10.9.9.9", 5020)
    monkeypatch.setenv("KW_TEST_HOST", "meter.local")
    assert load_config(path).modbus[0].host == "meter.local"
    monkeypatch.delenv("KW_TEST_PORT")
    message = error_of(path)
    assert "modbus[0].port: environment variable 'KW_TEST_PORT' is not set" in message


def test_demo_config_has_every_point_of_the_plant() -> None:
    cfg = load_config(Path(__file__).parents[2] / "deploy" / "demo" / "agent.toml")
    assert (cfg.agent.id, cfg.agent.site) == ("kiln-gw", "demo-plant")
    points = {p.name: (d.unit, p.function, p.address, p.type, d.order, p.scale, p.unit, p.kind)
              for d in cfg.modbus for p in d.points}  # fmt: skip
    # Transcribed from the table in docs/demo-plant.md.
    expected = {
        "raw_mill_kw": (1, 3, 3059, "float32", "ABCD", 1.0, "kW", "power"),
        "raw_mill_kwh": (1, 3, 3203, "int64", "ABCD", 0.001, "kWh", "energy_total"),
        "kiln_kw": (2, 3, 3059, "float32", "ABCD", 1.0, "kW", "power"),
        "kiln_kwh": (2, 3, 3203, "int64", "ABCD", 0.001, "kWh", "energy_total"),
        "coal_mill_kw": (3, 3, 36, "int32", "ABCD", 0.001, "kW", "power"),
        "coal_mill_kwh": (3, 3, 62, "int32", "ABCD", 0.01, "kWh", "energy_total"),
        "cooler_kw": (4, 3, 0x2012, "float32", "ABCD", 0.0001, "kW", "power"),
        "cooler_kwh": (4, 3, 0x101E, "float32", "ABCD", 1.0, "kWh", "energy_total"),
        "aux_kw": (5, 3, 0x016A, "int32", "ABCD", 0.001 * 20, "kW", "power"),
        "aux_kwh": (5, 3, 0x000A, "uint32", "ABCD", 0.01 * 20, "kWh", "energy_total"),
        "whr_kw": (6, 3, 3059, "float32", "ABCD", 1.0, "kW", "power"),
        "whr_kwh": (6, 3, 3203, "int64", "ABCD", 0.001, "kWh", "energy_total"),
        "cement_mill_kw": (7, 4, 65, "float32", "ABCD", 0.001, "kW", "power"),
        "cement_mill_kwh": (7, 4, 801, "float64", "ABCD", 0.001, "kWh", "energy_total"),
    }
    for unit, name in ((10, "coal_kiln"), (11, "coal_calciner"), (12, "clinker"), (13, "cement")):
        expected[f"{name}_t"] = (unit, 3, 0, "uint32", "CDAB", 0.001, "t", "mass_total")
        expected[f"{name}_tph"] = (unit, 3, 2, "float32", "CDAB", 1.0, "t/h", "mass_rate")
    assert points.keys() == expected.keys()
    for name, (unit, fc, address, type_, order, scale, unit_, kind) in expected.items():
        got = points[name]
        assert got[:5] == (unit, fc, address, type_, order), name
        assert got[5] == pytest.approx(scale), name
        assert got[6:] == (unit_, kind), name
    opcua = {p.name: (p.node.rsplit(".", 1)[1], p.unit, p.kind) for p in cfg.opcua[0].points}
    assert opcua == {
        "dcs_kiln_feed_tph": ("KilnFeed_tph", "t/h", "mass_rate"),
        "dcs_kiln_coal_tph": ("KilnCoal_tph", "t/h", "mass_rate"),
        "dcs_calciner_coal_tph": ("CalcinerCoal_tph", "t/h", "mass_rate"),
        "dcs_clinker_tph": ("ClinkerBeltScale_tph", "t/h", "mass_rate"),
        "dcs_kiln_inlet_temp": ("KilnInletTemp_C", "°C", "analog"),
        "dcs_preheater_exit_temp": ("PreheaterExitTemp_C", "°C", "analog"),
        "dcs_whr_kw": ("WHR_GrossGen_kW", "kW", "power"),
        "dcs_id_fan_kw": ("IDFan_kW", "kW", "power"),
        "dcs_coal_ncv": ("Coal_NCV_MJkg", "MJ/kg", "analog"),
    }
    assert all(d.interval == 1.0 for d in cfg.modbus) and cfg.opcua[0].interval == 1.0


def test_file_keys_are_relative_to_the_config_folder_wherever_the_agent_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.pem").write_text("not checked until tls is on")
    text = GOOD.replace(
        'endpoint = "opc.tcp://10.0.0.9:4840/"', 'endpoint = "opc.tcp://10.0.0.9:4840/"\ncert_dir = "pki"'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(write(tmp_path, text))
    assert cfg.opcua[0].cert_dir == (tmp_path / "pki").resolve()
    no_outbox = load_config(write(tmp_path, text.replace('[outbox]\npath = "data/outbox.db"\n', "")))
    assert no_outbox.outbox.path == (tmp_path / "outbox.db").resolve()
    # a TLS file that does not exist is named with where it was looked for
    tls = text.replace("port = 1884", 'port = 1884\ntls = true\nca_file = "pki/missing.pem"')
    assert f"{(tmp_path / 'pki' / 'missing.pem').resolve()}" in error_of(write(tmp_path, tls))


def test_devices_sharing_a_line_must_agree_on_its_settings(tmp_path: Path) -> None:
    shared = GOOD.replace(
        "[[opcua]]",
        '[[modbus]]\nname = "meter2"\nhost = "10.0.0.5"\nunit = 4\ntransport = "rtu-over-tcp"\n\n[[opcua]]',
    )
    message = error_of(write(tmp_path, shared))
    assert "modbus[1].transport: 'rtu-over-tcp' differs from 'tcp' of modbus[0]" in message
