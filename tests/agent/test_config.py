"""Config loading: every error names the file, the key path and the fix; env references expand."""

from __future__ import annotations

import gzip
import typing
from pathlib import Path

import pytest

from agent import wire
from agent.config import ConfigError, load_config
from agent.config_fields import Kind

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
    assert 'agent.toml: modbus[0].unit: expected an integer, got the string "three"' in message
    assert "give a whole number without quotes" in message and "unit id" in message


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


# Strict values: what lax pydantic would coerce is refused, with the key and the line to write instead.


STRICT_CASES = [
    (
        "port = 1884",
        'port = "1883"',
        'mqtt.port: expected an integer, got the string "1883" — write port = 1883 without quotes',
    ),
    ("port = 1884", "port = true", "mqtt.port: expected an integer, got true — give a number"),
    ("unit = 3", "unit = 3.5", "modbus[0].unit: expected an integer, got the number 3.5 — give a whole"),
    ("unit = 3", "unit = 3.0", "write unit = 3, without the decimal point"),
    (
        "scale = 0.001",
        'scale = "0.001"',
        'points[0].scale: expected a number, got the string "0.001" — write scale = 0.001 without quotes',
    ),
    (
        "[mqtt]",
        '[mqtt]\ntls = "true"',
        'mqtt.tls: expected true or false, got the string "true" — write tls = true without quotes',
    ),
    (
        'name = "kiln_kw"',
        "name = 5",
        'modbus[0].points[1].name: expected a string, got the number 5 — write name = "5" in quotes',
    ),
    ("unit = 3", "unit = 3\naddress_base = true", "modbus[0].address_base: expected one of 0, 1; got true"),
    (
        "address = 3059",
        'address = 3059\nfunction = "4"',
        "points[1].function: expected one of 1, 2, 3, 4; got '4' — write function = 4 without quotes",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), STRICT_CASES)
def test_values_are_strict_and_the_message_gives_the_fix(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    message = error_of(write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'agent.toml'}: ")
    assert expected in message


def test_toml_types_that_pydantic_would_call_wrong_are_accepted(tmp_path: Path) -> None:
    """An integer for a float key, a string for a path key, an array for a list: what TOML gives."""
    text = GOOD.replace("unit = 3", "unit = 3\ntimeout = 2\ninterval = 5\nct_ratio = 20").replace(
        'type = "int64"', 'type = "int64"\nratios = "ct"'
    )
    device = load_config(write(tmp_path, text)).modbus[0]
    assert (device.timeout, device.interval, device.ct_ratio) == (2.0, 5.0, 20.0)
    assert all(isinstance(v, float) for v in (device.timeout, device.interval, device.ct_ratio))
    assert isinstance(load_config(write(tmp_path, GOOD)).outbox.path, Path)


@pytest.mark.parametrize(
    ("written", "where", "suggested"),
    [
        ("slave = 1", "modbus[0].slave", "unit"),
        ("slave_id = 1", "modbus[0].slave_id", "unit"),
        ("unit_id = 1", "modbus[0].unit_id", "unit"),
        ("poll_interval = 2", "modbus[0].poll_interval", "interval"),
        ('ip = "10.0.0.6"', "modbus[0].ip", "host"),
        ("baud = 9600", "modbus[0].baud", "baudrate"),
    ],
)
def test_unknown_key_suggests_the_word_people_mean(
    tmp_path: Path, written: str, where: str, suggested: str
) -> None:
    message = error_of(write(tmp_path, GOOD.replace("unit = 3", f"unit = 3\n{written}")))
    key = written.split(" = ")[0]
    assert f"{where}: unknown key {key!r} — did you mean {suggested!r}?" in message


def test_a_synonym_is_only_suggested_where_its_key_exists(tmp_path: Path) -> None:
    # A point's 'unit' is its engineering unit, so 'slave' there is not a misspelt unit id.
    message = error_of(write(tmp_path, GOOD.replace('unit = "kWh"', 'unit = "kWh"\nslave = 1')))
    assert "modbus[0].points[0].slave: unknown key 'slave'" in message and "'unit'?" not in message
    message = error_of(write(tmp_path, GOOD.replace('site = "plant1"', 'site = "plant1"\ninterval = 2')))
    assert "agent.interval: unknown key 'interval' — did you mean 'batch_interval'?" in message


def test_a_whole_environment_reference_takes_the_type_of_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """port = "${PORT}" reads as port = <the number>; a password of digits stays a string."""
    text = GOOD.replace(
        "port = 1884",
        'port = "${KW_TEST_PORT:-1883}"\nusername = "${KW_TEST_USER:-7}"\n'
        'password = "${KW_TEST_PW:-123456}"\nclient_id = "gw-${KW_TEST_N:-1}"',
    ).replace("[agent]", '[agent]\nbatch_interval = "${KW_TEST_BATCH:-2}"')
    path = write(tmp_path, text)
    for name in ("KW_TEST_PORT", "KW_TEST_USER", "KW_TEST_PW", "KW_TEST_N", "KW_TEST_BATCH"):
        monkeypatch.delenv(name, raising=False)
    cfg = load_config(path)
    assert (cfg.mqtt.port, cfg.mqtt.username, cfg.mqtt.password) == (1883, "7", "123456")
    assert (cfg.mqtt.client_id, cfg.agent.batch_interval) == ("gw-1", 2.0)
    assert type(cfg.mqtt.password) is str
    monkeypatch.setenv("KW_TEST_PORT", "1883.5")
    message = error_of(path)
    assert 'mqtt.port: expected an integer, got the text "1883.5" from ${KW_TEST_PORT:-1883}' in message
    assert "set KW_TEST_PORT (or the default after ':-') to a whole number" in message
    monkeypatch.setenv("KW_TEST_PORT", "true")
    assert "mqtt.port: expected an integer" in error_of(path)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (gzip.compress(GOOD.encode()), "it is gzip-compressed"),
        (GOOD.encode("utf-16"), "it is UTF-16"),
        (GOOD.encode("utf-16-le"), "NUL bytes"),
        (("# Kühler\n" + GOOD).encode("latin-1"), "byte 0xfc on line 1 is not UTF-8"),
    ],
)
def test_a_file_that_is_not_utf8_text_says_so(tmp_path: Path, data: bytes, why: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(data)
    message = error_of(path)
    assert message.startswith(f"{path}: not UTF-8 text (") and message.endswith("— save it as UTF-8")
    assert why in message


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_config(path).agent.id == "gw1"
