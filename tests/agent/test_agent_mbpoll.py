"""The agent and an independent Modbus master (Debian's mbpoll, built on libmodbus) read the same registers of
the simulator and agree: float32 in both word orders, int32/uint32, uint16, and (joined from mbpoll's raw hex
words, since it has no 64-bit types) int64 and float64. mbpoll's own 1-based references (no ``-0``) meet the
agent's ``address_base = 1`` at the same register, which is the off-by-one story of peers.md §7.4."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re

from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.decode import decode_raw
from agent.sources.modbus.poller import ModbusPoller
from agent.sources.reading import Reading
from agent.wire import Quality
from simulators.kiln.meters import State
from simulators.kiln.modbus_server import start_modbus_server
from simulators.kiln.model import KilnLine
from tests.servers import binary, free_port


async def mbpoll(port: int, *args: str) -> list[str]:
    """Run mbpoll once against 127.0.0.1:``port``; the value column of its ``[ref]: value`` lines."""
    proc = await asyncio.create_subprocess_exec(
        binary("mbpoll", "mbpoll"), "-m", "tcp", "-p", str(port), "-1", *args, "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return re.findall(r"^\[\d+\]:\s+(\S+)", out.decode(), flags=re.M)


def devices(port: int) -> list[ModbusDevice]:
    """What the agent reads: one point per register under test, unscaled."""

    def device(name: str, unit: int, points: list[dict[str, object]], **kw: object) -> ModbusDevice:
        return ModbusDevice.model_validate(
            {"name": name, "host": "127.0.0.1", "port": port, "unit": unit, "interval": 0.2, "points": points,
             **kw}
        )  # fmt: skip

    return [
        # 1-based register numbers, as mbpoll's -r without -0: 3060 is protocol address 3059.
        device("pm5100", 1, [{"name": "kw", "address": 3060, "type": "float32"},
                             {"name": "wh", "address": 3204, "type": "int64"}], address_base=1),
        device("pac3200", 7, [{"name": "pac_w", "address": 65, "type": "float32", "function": 4},
                              {"name": "pac_wh", "address": 801, "type": "float64", "function": 4}]),
        device("scale", 10, [{"name": "kg", "address": 0, "type": "uint32", "order": "CDAB"},
                             {"name": "tph", "address": 2, "type": "float32", "order": "CDAB"}]),
        device("adw300", 3, [{"name": "adw_w", "address": 36, "type": "int32"}]),
        device("dtsd1352", 5, [{"name": "hz", "address": 0x0077, "type": "uint16"}]),
    ]  # fmt: skip


def test_mbpoll_and_the_agent_agree_on_every_type_and_order() -> None:
    line = KilnLine(seed=7)
    line.step(321.0)
    agent: dict[str, Reading] = {}
    master: dict[str, str | list[int]] = {}

    async def main() -> None:
        port = free_port()
        server = await start_modbus_server(lambda: State(line.rates, line.truth), port)
        readings: list[Reading] = []
        task = asyncio.create_task(ModbusPoller(devices(port), readings.extend).run())
        try:
            await asyncio.sleep(0.8)
            # -B: big-endian words (ABCD); without it mbpoll reads low word first (CDAB). No -0: 1-based.
            (master["kw"],) = await mbpoll(port, "-a", "1", "-t", "4:float", "-B", "-r", "3060")
            (master["pac_w"],) = await mbpoll(port, "-a", "7", "-t", "3:float", "-B", "-0", "-r", "65")
            (master["tph"],) = await mbpoll(port, "-a", "10", "-t", "4:float", "-0", "-r", "2")
            (master["kg"],) = await mbpoll(port, "-a", "10", "-t", "4:int", "-0", "-r", "0")
            (master["adw_w"],) = await mbpoll(port, "-a", "3", "-t", "4:int", "-B", "-0", "-r", "36")
            (master["hz"],) = await mbpoll(port, "-a", "5", "-t", "4", "-0", "-r", "119")
            hex_words = await mbpoll(port, "-a", "1", "-t", "4:hex", "-r", "3204", "-c", "4")
            master["wh"] = [int(w, 16) for w in hex_words]
            hex_words = await mbpoll(port, "-a", "7", "-t", "3:hex", "-0", "-r", "801", "-c", "4")
            master["pac_wh"] = [int(w, 16) for w in hex_words]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await server.shutdown()
        agent.update({r.channel: r for r in readings})

    asyncio.run(main())
    assert {r.quality for r in agent.values()} == {Quality.GOOD}
    value = {name: r.value for name, r in agent.items()}
    for name in ("kw", "pac_w", "tph"):  # mbpoll prints floats with 6 significant digits (%g)
        assert math.isclose(float(str(master[name])), value[name], rel_tol=1e-5), name
    for name in ("kg", "adw_w", "hz"):
        assert int(str(master[name])) == value[name], name
    # 64-bit values: mbpoll's raw words, decoded with the agent's decoder, equal what the agent published.
    assert decode_raw(master["wh"], "int64", "ABCD") == value["wh"]  # type: ignore[arg-type]
    assert decode_raw(master["pac_wh"], "float64", "ABCD") == value["pac_wh"]  # type: ignore[arg-type]
    assert value["wh"] > 48_213_557_120 and value["pac_wh"] > 104_553_190_876.0
