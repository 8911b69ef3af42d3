"""``kilnwatch agent probe``, run as a separate process against the simulator's meters, and its dispatch of
``opc.tcp://`` URLs to ``agent.probe_opcua``."""

from __future__ import annotations

import asyncio
import re
import struct
import sys
from collections.abc import Awaitable, Callable

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.sources.modbus.probe import ProbeError, build_device, parse_read, run_probe
from simulators.kiln.meters import State
from simulators.kiln.modbus_server import start_modbus_server
from simulators.kiln.model import KilnLine
from tests.servers import free_port

Probe = Callable[..., Awaitable[tuple[int, str, str]]]


def f32(value: float) -> float:
    return struct.unpack(">f", struct.pack(">f", value))[0]


def words(fmt: str, value: float) -> str:
    raw = struct.pack(fmt, value)
    return " ".join(f"{raw[i]:02X}{raw[i + 1]:02X}" for i in range(0, len(raw), 2))


def with_simulator(line: KilnLine, body: Callable[[Probe], Awaitable[None]]) -> None:
    """Run ``body(probe)``; ``probe(*args)`` runs ``agent probe modbus://...:PORT *args`` in a subprocess."""

    async def main() -> None:
        port = free_port()
        server = await start_modbus_server(lambda: State(line.rates, line.truth), port)

        async def probe(*args: str) -> tuple[int, str, str]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent.cli", "agent", "probe", f"modbus://127.0.0.1:{port}", *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            return int(proc.returncode or 0), out.decode(), err.decode()

        try:
            await body(probe)
        finally:
            await server.shutdown()

    asyncio.run(main())


def values(out: str) -> dict[str, str]:
    """``FC3 3059 float32 ABCD = 3800  [...]`` lines → {"FC3 3059 float32 ABCD": "3800"}."""
    return dict(re.findall(r"^(FC\d \d+ \S+ \S+) = (.+?)  \[", out, flags=re.M))


def test_reads_print_values_and_raw_registers_in_every_order() -> None:
    line = KilnLine(seed=1)  # at the operating point: raw mill 3800 kW

    async def body(probe: Probe) -> None:
        code, out, err = await probe(
            "--unit", "1", "-r", "3059:float32:all", "-r", "3203:int64", "-r", "29:string20"
        )
        assert code == 0, err
        got = values(out)
        assert got["FC3 3059 float32 ABCD"] == "3800"
        assert f"[{words('>f', 3800.0)}]" in out
        # The same registers read in the wrong orders: what an operator sees when the order is off.
        swapped = struct.unpack("<f", struct.pack(">f", 3800.0))[0]
        assert float(got["FC3 3059 float32 DCBA"]) == pytest.approx(swapped, rel=1e-6)
        assert set(got) >= {f"FC3 3059 float32 {o}" for o in ("ABCD", "CDAB", "BADC", "DCBA")}
        assert int(got["FC3 3203 int64 ABCD"]) == 48_213_557_120
        assert got["FC3 29 string20 ABCD"] == "'Raw mill'"

    with_simulator(line, body)


def test_base_function_and_orders_reach_the_right_registers() -> None:
    line = KilnLine(seed=4)
    line.step(60.0)

    async def body(probe: Probe) -> None:
        # Manual register 3060 with --base 1 is protocol address 3059.
        code, out, _ = await probe("-u", "1", "--base", "1", "-r", "3060:float32")
        assert code == 0 and values(out)["FC3 3059 float32 ABCD"] == f"{f32(line.rates['raw_mill_kw']):.9g}"
        # PAC3200 on input registers; a belt scale low word first; hex addresses; a DTSD1352 uint16.
        code, out, _ = await probe("-u", "7", "-f", "4", "-r", "65:float32")
        w = f32(line.rates["cement_mill_kw"] * 1000)
        assert code == 0 and float(values(out)["FC4 65 float32 ABCD"]) == pytest.approx(w, rel=1e-8)
        code, out, _ = await probe("-u", "12", "-r", "2:float32:cdab", "-r", "0:uint32:CDAB")
        got = values(out)
        assert float(got["FC3 2 float32 CDAB"]) == pytest.approx(f32(line.rates["clinker_tph"]), rel=1e-8)
        assert int(got["FC3 0 uint32 CDAB"]) > 4_277_000_000
        code, out, _ = await probe("-u", "5", "-r", "0x0077", "-r", "0x0077:bit0")
        assert code == 0 and 4980 < int(values(out)["FC3 119 uint16 ABCD"]) < 5020

    with_simulator(line, body)


def test_profile_reads_every_point_with_its_unit() -> None:
    line = KilnLine(seed=1)

    async def body(probe: Probe) -> None:
        code, out, err = await probe("-u", "5", "--profile", "acrel-dtsd1352", "--ct-ratio", "20")
        assert code == 0, err
        assert out.startswith("acrel-dtsd1352: Acrel DTSD1352")
        assert "[CONFIRMED-2nd; source: public Arduino library ACREL_DTSD1352.h" in out
        kw = re.search(r"^  kw_total\s+(\S+) kW\s+FC3 362 int32 ABCD", out, flags=re.M)
        secondary_w = round(line.rates["aux_kw"] / 20 * 1000)  # the register: 0.001 kW on the CT's secondary
        assert kw is not None and float(kw.group(1)) == pytest.approx(secondary_w / 1000 * 20)
        code, out, _ = await probe("-u", "1", "--profile", "schneider-pm5100")
        assert re.search(r"^  meter_name\s+'Raw mill'\s+FC3 29 string20  meter name$", out, flags=re.M)
        assert re.search(
            r"^  kwh_import\s+48213557.12 kWh\s+FC3 3203 int64 ABCD \[0000 000B", out, flags=re.M
        )

    with_simulator(line, body)


def test_failures_and_mistakes_have_their_own_exit_status() -> None:
    line = KilnLine(seed=1)

    async def body(probe: Probe) -> None:
        code, out, _ = await probe("-u", "1", "-r", "9000:float32", "-r", "3059:float32")
        assert code == 1
        assert "FC3 9000 float32: exception code 2 (illegal data address)" in out
        assert values(out)["FC3 3059 float32 ABCD"] == "3800"  # the good read is still shown
        code, _, err = await probe("-u", "1", "-r", "3059:flaot32")
        assert code == 2 and "type 'flaot32' is not one of int16" in err
        code, _, err = await probe("-u", "1", "--profile", "siemens-pac320")
        assert code == 2 and "unknown profile 'siemens-pac320' — did you mean 'siemens-pac3200'?" in err
        code, _, err = await probe("-u", "1")
        assert code == 2 and "nothing to read" in err

    with_simulator(line, body)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3059:float32:ABDC", "order 'ABDC' is not one of ABCD, CDAB, BADC, DCBA, all"),
        ("x3059", "'x3059' is not an address"),
        ("3059:bit16", "a register has bits 0..15"),
        ("65535:float32", "outside the Modbus range"),
        ("1:2:3:4", "write ADDRESS[:TYPE[:ORDER]]"),
    ],
)
def test_read_specs_are_checked(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_read(text)


def test_read_spec_forms() -> None:
    assert parse_read("0x2012:float32").address == 0x2012
    assert parse_read("3060:float32", base=1).address == 3059
    spec = parse_read("7", function=1)
    assert (spec.type, spec.count, spec.bit) == ("bit", 1, None)
    with pytest.raises(ValueError, match="go with type 'bit'"):
        parse_read("7:uint16", function=2)
    assert parse_read("29:string20").count == 20


def test_unknown_schemes_and_foreign_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """No source takes ``http://``: the command says so through the registry. The Modbus probe refuses a
    serial setting it does not know and an option of another protocol."""
    result = CliRunner().invoke(app, ["agent", "probe", "http://10.0.0.5", "-r", "0"])
    assert result.exit_code == 2
    assert "'http://10.0.0.5': use one of modbus://, rtu-over-tcp://, rtu://, opc.tcp://" in result.stderr
    assert run_probe("rtu:///dev/ttyUSB0?speed=9600", {"read": ["0"]}) == 2
    assert "unknown setting 'speed'" in capsys.readouterr().err
    assert run_probe("modbus://10.0.0.5", {"read": ["0"], "node": ["ns=2;s=x"]}) == 2
    assert "--node: not for Modbus URLs" in capsys.readouterr().err


def test_opc_tcp_urls_go_to_the_opcua_probe_and_an_unreachable_server_exits_1() -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}/"  # nothing listens there
    runner = CliRunner()
    result = runner.invoke(app, ["agent", "probe", url, "--node", "ns=2;s=x", "--timeout", "1"])
    assert result.exit_code == 1, result.output
    assert f"agent probe: {url}: ConnectionError: cannot open a session" in result.stderr
    result = runner.invoke(app, ["agent", "probe", url, "--security", "security_policy=Basic256Sha256"])
    assert result.exit_code == 2, result.output
    assert "security_policy 'Basic256Sha256' needs cert_dir" in result.stderr


def test_serial_settings_in_the_url_are_read_by_their_key_types() -> None:
    """Query values are text; the strict config models read them like a ${VAR}: baud=19200 is a number."""
    device = build_device("rtu:///dev/ttyUSB0?baud=19200&parity=e&stopbits=2&bytesize=7", 1, 1.0)
    assert (device.baudrate, device.parity, device.stopbits, device.bytesize) == (19200, "E", 2, 7)
    with pytest.raises(
        ProbeError, match='baudrate: expected an integer, got the text "fast" from baud= in the URL'
    ):
        build_device("rtu:///dev/ttyUSB0?baud=fast", 1, 1.0)
