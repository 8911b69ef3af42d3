"""Fault test with real processes: the DCS server is SIGKILLed and restarted on the same port while the
agent's poller, in this process, stays subscribed. Data must resume without restarting the poller, the outage
must show as missing readings (BAD, no value), never as made-up values, and time must keep moving forward."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import time

from agent.sources.opcua.config import OpcuaServer
from agent.sources.opcua.poller import OpcuaPoller
from agent.sources.reading import Reading
from agent.wire import Quality
from tests.servers import free_port, stop, wait_for_port

NODE = "nsu=urn:kilnwatch:sim:dcs;s=KilnLine1.KilnFeed_tph"


def start_dcs(port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "simulators.kiln.opcua_server", "--port", str(port), "--tick", "0.2"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


def config(port: int) -> OpcuaServer:
    return OpcuaServer.model_validate(
        {
            "name": "dcs",
            "endpoint": f"opc.tcp://127.0.0.1:{port}/kilnwatch/dcs",
            "mode": "subscribe",
            "publishing_interval": 0.2,
            "points": [{"name": "feed", "node": NODE, "kind": "mass_rate"}],
        }
    )


async def first_good_after(arrivals: list[tuple[float, Reading]], since: float, timeout: float) -> float:
    """Monotonic arrival time of the first GOOD reading that arrived after ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for arrived, reading in arrivals:
            if arrived > since and reading.quality == Quality.GOOD:
                return arrived
        await asyncio.sleep(0.05)
    raise AssertionError(f"no GOOD reading within {timeout} s")


def test_subscription_resumes_after_the_server_is_killed_and_restarted() -> None:
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    port = free_port()
    procs = [start_dcs(port)]

    async def scenario() -> dict[str, float]:
        arrivals: list[tuple[float, Reading]] = []
        await asyncio.to_thread(wait_for_port, port, 60, procs[0])
        poller = asyncio.create_task(
            OpcuaPoller(config(port), lambda rs: arrivals.extend((time.monotonic(), r) for r in rs)).run()
        )
        try:
            await first_good_after(arrivals, 0.0, 30)
            await asyncio.sleep(1.5)
            killed = time.monotonic()
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            await asyncio.sleep(3.0)  # the PLC is down for a while
            restarted = time.monotonic()
            procs.append(start_dcs(port))
            await asyncio.to_thread(wait_for_port, port, 60, procs[1])
            ready = time.monotonic()
            resumed = await first_good_after(arrivals, ready, 60)
            await asyncio.sleep(1.5)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        before = [r for t, r in arrivals if t < killed]
        outage = [r for t, r in arrivals if killed + 0.5 < t < resumed]
        after = [r for t, r in arrivals if t >= resumed]
        assert before and all(r.quality == Quality.GOOD for r in before)
        assert outage, "the outage must be reported as missing readings"
        assert all(r.quality == Quality.BAD and r.value is None for r in outage)
        good_after = [r for r in after if r.quality == Quality.GOOD]
        assert len(good_after) >= 3
        stamps = [r.t_ms for r in good_after]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert stamps[0] > before[-1].t_ms
        return {
            "down_s": restarted - killed,
            "resume_after_ready_s": resumed - ready,
            "gap_s": resumed - killed,
        }

    try:
        timings = asyncio.run(scenario())
    finally:
        for proc in procs:
            stop(proc)
    print(
        f"\nOPC UA resume: server down {timings['down_s']:.1f} s; data back "
        f"{timings['resume_after_ready_s']:.2f} s after the restarted server listened "
        f"({timings['gap_s']:.1f} s after the kill)"
    )
    assert timings["resume_after_ready_s"] < 5  # the wait while the server is unreachable is capped at 2 s
