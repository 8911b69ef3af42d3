"""Regression: a poller cancelled while its device's reply was arriving kept polling, and the agent's stop
(and a config reload, which cancels the pollers) hung for ever.

Python 3.11's ``asyncio.wait_for`` loses a cancellation that arrives as the awaited call completes. The
DL/T 645 link waited for answers with it, and pymodbus (like asyncua) does inside every request, so with a
fast local meter roughly one cancellation in two was lost (the suite hung in a Modbus test's clean-up).
The DL/T 645 link now uses ``asyncio.timeout``, and library calls go through
``agent.sources.cancellable``. Each test cancels a poller at many different moments of its cycle against a
real server that answers at once, and requires it to stop every time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from agent.sources.dlt645.config import Dlt645Meter
from agent.sources.dlt645.poller import Dlt645Poller
from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.poller import ModbusPoller
from agent.sources.reading import Reading
from simulators.dlt645.line import Line, serve_tcp
from simulators.dlt645.meter import SimulatedMeter
from tests.agent.modbus_server import MappedMeter, mapped_meter
from tests.servers import free_port

ROUNDS = 40
#: A cancelled poller stops at its next await; this is margin for a loaded machine, not a timing claim.
STOP_WITHIN_S = 5.0


async def cancel_many_times(start: Callable[[list[Reading]], Coroutine[Any, Any, None]]) -> None:
    """Start a poller ROUNDS times, let it run for a different number of replies each time, cancel it, and
    require it to end."""
    for n in range(ROUNDS):
        readings: list[Reading] = []
        task = asyncio.create_task(start(readings))
        deadline = asyncio.get_running_loop().time() + 20
        while len(readings) < 1 + n % 5:  # cancel at a different point of the cycle each round
            assert asyncio.get_running_loop().time() < deadline and not task.done(), "no readings"
            await asyncio.sleep(0.001 * (n % 3))
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=STOP_WITHIN_S)
        assert done, f"round {n}: the poller ignored its cancellation and kept polling"
        with contextlib.suppress(asyncio.CancelledError):
            task.result()


def test_a_modbus_poller_cancelled_as_a_reply_arrives_still_stops() -> None:
    port = free_port()
    meter = MappedMeter({3: {a: a % 65536 for a in range(3000, 3010)}})
    points = [{"name": f"p{a}", "address": a, "type": "uint16", "unit": "", "kind": "analog"}
              for a in range(3000, 3010, 2)]  # fmt: skip
    device = ModbusDevice.model_validate(
        {"name": "m1", "host": "127.0.0.1", "port": port, "interval": 0.001, "max_gap": 0, "points": points}
    )

    async def main() -> None:
        async with mapped_meter(port, meter):
            await cancel_many_times(lambda sink: ModbusPoller([device], sink.extend).run())

    asyncio.run(main())


def test_a_dlt645_poller_cancelled_as_an_answer_arrives_still_stops() -> None:
    address = "000012345678"
    line = Line([SimulatedMeter(address, primary_kw=1200.0, preamble=False)])

    async def main() -> None:
        server = await serve_tcp(line, 0)
        port = server.sockets[0].getsockname()[1]
        meter = Dlt645Meter.model_validate({
            "name": "m", "transport": "tcp", "host": "127.0.0.1", "port": port, "address": address,
            "interval": 0.001, "preamble": False,
            "points": [{"name": "e", "di": "energy_import_total"}, {"name": "p", "di": "power_total"}],
        })  # fmt: skip
        try:
            await cancel_many_times(lambda sink: Dlt645Poller([meter], sink.extend).run())
        finally:
            server.close()

    asyncio.run(main())
