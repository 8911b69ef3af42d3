"""Meter profiles: the data matches reference/domain.md §7.1, reads the simulator's meters, and configs using
profiles validate with errors an operator can act on."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.commands import agent_app
from agent.runner import channel_metadata
from agent.sources.modbus import profiles
from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.poller import ModbusPoller
from agent.sources.reading import Reading
from agent.wire import Quality
from simulators.kiln.meters import METERS, State
from simulators.kiln.modbus_server import start_modbus_server
from simulators.kiln.model import KilnLine
from simulators.kiln.registers import encode
from tests.servers import free_port

# reference/domain.md §7.1, transcribed again here (not from the profile files): point → (address, type).
# Function code, word order and confidence are per meter in the reference.
DOMAIN = {
    "schneider-pm5100": (3, "ABCD", "CONFIRMED-2nd", {
        "i_a": (2999, "float32"), "i_b": (3001, "float32"), "i_c": (3003, "float32"),
        "i_n": (3005, "float32"), "i_g": (3007, "float32"), "i_avg": (3009, "float32"),
        "u_ab": (3019, "float32"),
        "u_bc": (3021, "float32"), "u_ca": (3023, "float32"), "u_ll_avg": (3025, "float32"),
        "u_an": (3027, "float32"), "u_bn": (3029, "float32"), "u_cn": (3031, "float32"),
        "u_ln_avg": (3035, "float32"), "kw_a": (3053, "float32"), "kw_b": (3055, "float32"),
        "kw_c": (3057, "float32"), "kw_total": (3059, "float32"), "kvar_total": (3067, "float32"),
        "kva_total": (3075, "float32"), "pf_total": (3083, "float32"), "freq": (3109, "float32"),
        "kwh_import": (3203, "int64"), "kwh_export": (3207, "int64"), "kvarh_import": (3219, "int64"),
        "kvarh_export": (3223, "int64"), "kvah_import": (3235, "int64"), "kvah_export": (3239, "int64"),
    }),
    "siemens-pac3200": (4, "ABCD", "CONFIRMED-2nd", {
        "u_an": (1, "float32"), "u_bn": (3, "float32"), "u_cn": (5, "float32"), "i_a": (13, "float32"),
        "i_b": (15, "float32"), "i_c": (17, "float32"), "kw_a": (25, "float32"), "kw_b": (27, "float32"),
        "kw_c": (29, "float32"), "freq": (55, "float32"), "kva_total": (63, "float32"),
        "kw_total": (65, "float32"), "kvar_total": (67, "float32"), "pf_total": (69, "float32"),
        **{name: (801 + 4 * i, "float64") for i, name in enumerate((
            "kwh_import_t1", "kwh_import_t2", "kwh_export_t1", "kwh_export_t2", "kvarh_import_t1",
            "kvarh_import_t2", "kvarh_export_t1", "kvarh_export_t2", "kvah_t1", "kvah_t2"))},
    }),
    "acrel-adw300": (3, "ABCD", "CONFIRMED-2nd", {
        "u_a": (20, "uint16"), "u_b": (21, "uint16"), "u_c": (22, "uint16"), "i_a": (26, "uint16"),
        "i_b": (27, "uint16"), "i_c": (28, "uint16"), "kw_a": (30, "int32"), "kw_b": (32, "int32"),
        "kw_c": (34, "int32"), "kw_total": (36, "int32"), "kwh_import": (62, "int32"),
        "kwh_export": (64, "int32"),
    }),
    "acrel-dtsd1352": (3, "ABCD", "CONFIRMED-2nd", {
        "kwh_total": (0x00, "uint32"), "kwh_import": (0x0A, "uint32"), "kwh_export": (0x14, "uint32"),
        "kvarh_total": (0x1E, "uint32"), "kvarh_import": (0x28, "uint32"), "kvarh_export": (0x32, "uint32"),
        "u_a": (0x61, "uint16"), "u_b": (0x62, "uint16"), "u_c": (0x63, "uint16"), "i_a": (0x64, "uint16"),
        "i_b": (0x65, "uint16"), "i_c": (0x66, "uint16"), "freq": (0x77, "uint16"), "kw_a": (0x164, "int32"),
        "kw_b": (0x166, "int32"), "kw_c": (0x168, "int32"), "kw_total": (0x16A, "int32"),
    }),
    "chint-dtsu666": (3, "ABCD", "CONFIRMED-2nd (emulator code)", {
        "u_ab": (0x2000, "float32"), "u_bc": (0x2002, "float32"), "u_ca": (0x2004, "float32"),
        "u_a": (0x2006, "float32"), "u_b": (0x2008, "float32"), "u_c": (0x200A, "float32"),
        "i_a": (0x200C, "float32"), "i_b": (0x200E, "float32"), "i_c": (0x2010, "float32"),
        "kw_total": (0x2012, "float32"), "kw_a": (0x2014, "float32"), "kw_b": (0x2016, "float32"),
        "kw_c": (0x2018, "float32"), "pf_total": (0x202A, "float32"), "freq": (0x2044, "float32"),
        "kwh_import": (0x101E, "float32"), "kwh_export": (0x1028, "float32"),
    }),
}  # fmt: skip
# Which simulator unit runs which meter model (simulators/kiln/meters.py), and the CT it is wired to.
SIM_UNITS = {"schneider-pm5100": 1, "acrel-adw300": 3, "chint-dtsu666": 4, "acrel-dtsd1352": 5,
             "siemens-pac3200": 7}  # fmt: skip
SIM_CT = {"acrel-dtsd1352": 20}
STRUCT = {"float32": ">f", "float64": ">d", "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
          "int64": ">q"}  # fmt: skip


def test_the_library_holds_the_five_meters_of_the_reference() -> None:
    assert profiles.names() == sorted(DOMAIN)


@pytest.mark.parametrize("name", sorted(DOMAIN))
def test_profile_data_matches_the_reference(name: str) -> None:
    function, order, confidence, points = DOMAIN[name]
    profile = profiles.load(name)
    assert profile.confidence == confidence and profile.source and profile.notes and profile.title
    assert {k: (p.fields["address"], p.fields["type"]) for k, p in profile.points.items()} == points
    assert {(p.fields["function"], p.fields["order"]) for p in profile.points.values()} == {(function, order)}
    # Every point validates as a config point, energies publish kWh as energy_total, powers kW as power.
    device = ModbusDevice.model_validate({"name": "m", "host": "h", "profile": name})
    assert [p.profile_point for p in device.points] == list(points)
    for p in device.points:
        if p.kind == "energy_total":
            assert p.unit == "kWh", p.name
        if p.kind == "power":
            assert p.unit == "kW", p.name
        if p.unit in ("kWh", "kW"):
            assert p.kind in ("energy_total", "power"), p.name


def test_only_the_secondary_side_meter_applies_ct_and_pt() -> None:
    applied = {name: {p.applied_ratios for p in ModbusDevice.model_validate(
        {"name": "m", "host": "h", "profile": name}).points} for name in DOMAIN}  # fmt: skip
    assert applied.pop("acrel-dtsd1352") == {"ct_pt", "ct", "pt", "none"}
    assert all(ratios == {"none"} for ratios in applied.values())


def expected_from_the_simulator(state: State) -> dict[tuple[int, int], tuple[str, float]]:
    """(unit, address) → (register type, value the registers hold), decoded here with struct."""
    truth = {}
    for meter in METERS:
        for f in meter.fields(state):
            if f.dtype != "string":
                words = encode(f.dtype, f.value, f.order)
                raw = struct.unpack(STRUCT[f.dtype], struct.pack(f">{len(words)}H", *words))[0]
                truth[meter.unit, f.address] = (f.dtype, raw)
    return truth


def profile_device(name: str, unit: int, port: int) -> ModbusDevice:
    """A device set up by its profile alone, plus the CT its simulated meter is wired to."""
    settings = {"host": "127.0.0.1", "port": port, "unit": unit, "interval": 0.3}
    return ModbusDevice.model_validate(
        {"name": name.replace("-", "_"), "profile": name, "ct_ratio": SIM_CT.get(name, 1), **settings}
    )


def test_each_profile_reads_its_meter_on_the_simulator() -> None:
    """Devices configured by nothing but ``profile`` (and the CT they are wired to) read the simulator."""
    line = KilnLine(seed=5)
    line.step(600.0)
    state = State(line.rates, line.truth)

    async def scenario() -> list[Reading]:
        port = free_port()
        server = await start_modbus_server(lambda: state, port)
        devices = [profile_device(name, unit, port) for name, unit in SIM_UNITS.items()]
        readings: list[Reading] = []
        task = asyncio.create_task(ModbusPoller(devices, readings.extend).run())
        try:
            await asyncio.sleep(1.5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await server.shutdown()
        return readings

    readings = asyncio.run(scenario())
    got = {r.channel: r for r in readings}
    truth = expected_from_the_simulator(state)
    for name, unit in SIM_UNITS.items():
        profile = profiles.load(name)
        for key, point in profile.points.items():
            reading = got[f"{name.replace('-', '_')}_{key}"]
            assert reading.quality == Quality.GOOD, (name, key)
            dtype, raw = truth[unit, point.fields["address"]]
            assert dtype == point.fields["type"], (name, key)
            ratio = SIM_CT.get(name, 1) if point.fields.get("ratios", "none") in ("ct", "ct_pt") else 1
            expected = raw * point.fields.get("scale", 1.0) * ratio
            assert reading.value == pytest.approx(expected, rel=1e-12, abs=1e-12), (name, key)
    # And against the model itself: every meter's total power in kW, within its register's resolution.
    rates = line.rates
    for name, section, step in (("schneider-pm5100", "raw_mill", 1e-3), ("acrel-adw300", "coal_mill", 1e-3),
                                ("chint-dtsu666", "cooler", 1e-3), ("acrel-dtsd1352", "aux", 0.02),
                                ("siemens-pac3200", "cement_mill", 1e-3)):  # fmt: skip
        assert abs(got[f"{name.replace('-', '_')}_kw_total"].value - rates[f"{section}_kw"]) <= step, name


CONFIG = """
[agent]
id = "gw"
site = "plant"

[[modbus]]
name = "raw_mill_meter"
host = "10.0.0.5"
unit = 1
{device}
"""


def check(tmp_path: Path, device: str) -> tuple[int, str]:
    path = tmp_path / "agent.toml"
    path.write_text(CONFIG.format(device=device))
    result = CliRunner().invoke(agent_app, ["check", str(path)])
    return result.exit_code, result.output + result.stderr


def test_unknown_profile_suggests_the_closest(tmp_path: Path) -> None:
    code, out = check(tmp_path, 'profile = "schneider-pm510"')
    assert code == 2
    assert "modbus[0].profile: unknown profile 'schneider-pm510' — did you mean 'schneider-pm5100'?" in out
    assert "known profiles: acrel-adw300, acrel-dtsd1352, chint-dtsu666, schneider-pm5100" in out


def test_unknown_profile_points_suggest_the_closest(tmp_path: Path) -> None:
    code, out = check(tmp_path, 'profile = "schneider-pm5100"\nprofile_points = ["kw_totl", "kwh_import"]')
    assert code == 2
    assert (
        "modbus[0].profile_points: 'kw_totl' is not a point of profile 'schneider-pm5100' — did you mean "
        "'kw_total'?" in out
    )
    code, out = check(tmp_path, 'profile = "schneider-pm5100"\n[[modbus.points]]\nprofile_point = "kwh_imp"')
    assert code == 2 and "points[0].profile_point: 'kwh_imp' is not a point of profile" in out
    assert "did you mean 'kwh_import'?" in out
    code, out = check(tmp_path, 'profile_points = ["kw_total"]')
    assert code == 2 and "modbus[0].profile_points: profile_points picks points of a profile" in out


def test_profile_points_are_picked_named_and_overridden(tmp_path: Path) -> None:
    device = """profile = "schneider-pm5100"
profile_points = ["kw_total", "kwh_import"]
point_prefix = "raw_mill_"

[[modbus.points]]
profile_point = "kwh_import"
name = "raw_mill_kwh"
interval = 60
"""
    code, out = check(tmp_path, device)
    assert code == 0, out
    assert "modbus raw_mill_meter: 10.0.0.5:502 unit 1, profile schneider-pm5100, every 1 s, 2 points" in out
    assert "(every 1 s: FC3 3059+2; every 60 s: FC3 3203+4)" in out
    from agent.config import load_config

    cfg = load_config(tmp_path / "agent.toml")
    assert channel_metadata(cfg) == [
        {"name": "raw_mill_kwh", "kind": "energy_total", "unit": "kWh", "device": "raw_mill_meter",
         "source": "modbus"},
        {"name": "raw_mill_kw_total", "kind": "power", "unit": "kW", "device": "raw_mill_meter",
         "source": "modbus"},
    ]  # fmt: skip
    (kwh,) = [p for p in cfg.modbus[0].points if p.profile_point == "kwh_import"]
    assert (kwh.address, kwh.type, kwh.scale, kwh.interval) == (3203, "int64", 0.001, 60)


def test_default_prefix_is_the_device_name_and_written_points_add_to_the_profile(tmp_path: Path) -> None:
    device = """profile = "acrel-adw300"
profile_points = ["kw_total"]

[[modbus.points]]
name = "raw_mill_relay"
address = 100
type = "uint16"
bit = 0
"""
    code, out = check(tmp_path, device)
    assert code == 0, out
    from agent.config import load_config

    names = [p.name for p in load_config(tmp_path / "agent.toml").modbus[0].points]
    assert names == ["raw_mill_relay", "raw_mill_meter_kw_total"]


def test_ct_ratio_on_a_primary_side_meter_is_refused(tmp_path: Path) -> None:
    # A PM5100 applies its own CT setting: multiplying again would publish 20 × the energy.
    code, out = check(tmp_path, 'profile = "schneider-pm5100"\nct_ratio = 20')
    assert code == 2 and "ct_ratio = 20 multiplies no point" in out
    code, out = check(tmp_path, 'profile = "acrel-dtsd1352"\nct_ratio = 20\npt_ratio = 100')
    assert code == 0, out
