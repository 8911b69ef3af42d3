"""``kilnwatch sim dlt645``: meters on a simulated line, served until stopped, with a slowly wandering load.

The load of each meter wanders ±5 % around its base on a 5-minute sine, stepped once a second (the
meter integrates each step exactly, see ``meter``). Endpoints are printed first, one per line, so a script
or an operator can point an agent at them: ``tcp 127.0.0.1:PORT`` and ``pty /dev/pts/N``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence

from simulators.dlt645.line import Line, PtyLine, serve_tcp
from simulators.dlt645.meter import SimulatedMeter

#: Seconds between load steps, and the period of the load's wander.
STEP_S, PERIOD_S = 1.0, 300.0


async def run_live(
    meters: Sequence[SimulatedMeter],
    port: int | None,
    pty: bool,
    stop: asyncio.Event,
    echo: Callable[[str], None] = print,
    answer_delay: float = 0.02,
) -> None:
    line = Line(meters, answer_delay)
    server = await serve_tcp(line, port) if port is not None else None
    terminal = PtyLine(line) if pty else None
    if server is not None:
        host, bound = server.sockets[0].getsockname()[:2]
        echo(f"tcp {host}:{bound}")
    if terminal is not None:
        echo(f"pty {terminal.path}")
    echo("meters " + " ".join(m.address for m in meters))
    bases = [m.primary_kw for m in meters]
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        while not stop.is_set():
            phase = 2 * math.pi * (loop.time() - started) / PERIOD_S
            for meter, base in zip(meters, bases, strict=True):
                meter.set_power(base * (1 + 0.05 * math.sin(phase)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STEP_S)
    finally:
        if terminal is not None:
            terminal.close()
        if server is not None:
            server.close()
            await server.wait_closed()
