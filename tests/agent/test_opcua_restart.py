"""Recovery after repeated OPC UA server restarts: the simulated DCS (a real asyncua server in its own
process) is stopped three times, for 5, 15 and 40 s, and started again on the same port while the agent's
poller, in this process, keeps one node polled and one subscribed.

What it prevents: a reconnect backoff that keeps growing across outages or caps at 30 s, so that after a long
outage the agent waits up to half a minute after the PLC is back before it reads again. For every restart a
GOOD reading of both nodes must arrive within 5 s of the restarted server listening, and the outage must show
as missing readings (BAD, no value), never as made-up values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from agent.sources.opcua.config import OpcuaServer
from agent.sources.opcua.poller import OpcuaPoller
from agent.sources.reading import Reading
from agent.wire import Quality
from tests.servers import free_port, stop

NSU = "nsu=urn:kilnwatch:sim:dcs;s=KilnLine1."
#: (outage length in s, how the server goes away): a power loss (SIGKILL) and an orderly stop (SIGTERM).
OUTAGES = ((5.0, signal.SIGKILL), (15.0, signal.SIGTERM), (40.0, signal.SIGKILL))
RESUME_WITHIN_S = 5.0


@pytest.fixture(autouse=True)
def quiet_asyncua() -> Iterator[None]:
    logger = logging.getLogger("asyncua")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def start_dcs(port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "simulators.kiln.opcua_server", "--port", str(port), "--tick", "0.2"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


def listening_since(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> float:
    """Wait until ``port`` accepts connections; return the monotonic time of the last refused attempt
    before that, so the server started listening after it (recovery times measured from it are upper
    bounds, never flattering)."""
    deadline = time.monotonic() + timeout
    last_refused = time.monotonic()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the DCS exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return last_refused
        except OSError:
            last_refused = time.monotonic()
        time.sleep(0.02)
    raise TimeoutError(f"the DCS was not listening on {port} after {timeout} s")


def config(port: int) -> OpcuaServer:
    return OpcuaServer.model_validate(
        {
            "name": "dcs",
            "endpoint": f"opc.tcp://127.0.0.1:{port}/kilnwatch/dcs",
            "interval": 0.2,
            "publishing_interval": 0.2,
            "points": [
                {"name": "feed", "node": NSU + "KilnFeed_tph", "mode": "poll"},
                {"name": "fan", "node": NSU + "IDFan_kW", "mode": "subscribe"},
            ],
        }
    )


Arrivals = list[tuple[float, Reading]]


async def first_good(
    arrivals: Arrivals, channel: str, since: float, timeout: float, poller: asyncio.Task
) -> float:
    """Arrival time of the first GOOD reading of ``channel`` after ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not poller.done(), f"the poller ended: {poller}"
        for arrived, reading in arrivals:
            if arrived > since and reading.channel == channel and reading.quality == Quality.GOOD:
                return arrived
        await asyncio.sleep(0.02)
    raise AssertionError(f"no GOOD reading of {channel} within {timeout} s")


@pytest.mark.slow
def test_data_resumes_within_5_s_of_each_of_three_server_restarts_after_outages_of_5_to_40_s() -> None:
    port = free_port()
    procs = [start_dcs(port)]
    figures: list[dict[str, float]] = []

    async def scenario() -> Arrivals:
        arrivals: Arrivals = []
        started = time.monotonic()
        await asyncio.to_thread(listening_since, port, procs[0])
        # A restarted server is launched a little less than its shortest start-up time so far before the
        # outage ends, so that it is down (not listening) for about the outage length, and the test does not
        # take 4 start-ups longer; the figures give the length actually measured.
        startup = time.monotonic() - started
        sink = lambda rs: arrivals.extend((time.monotonic(), r) for r in rs)  # noqa: E731
        poller = asyncio.create_task(OpcuaPoller(config(port), sink).run())
        try:
            for channel in ("feed", "fan"):
                await first_good(arrivals, channel, 0.0, 30, poller)
            for outage, sig in OUTAGES:
                await asyncio.sleep(1.0)  # serve a little before the next outage
                proc = procs[-1]
                killed = time.monotonic()
                proc.send_signal(sig)
                await asyncio.to_thread(proc.wait, 30)
                await asyncio.sleep(max(0.0, outage - 0.8 * startup - (time.monotonic() - killed)))
                launched = time.monotonic()
                procs.append(start_dcs(port))
                listening = await asyncio.to_thread(listening_since, port, procs[-1])
                startup = min(startup, listening - launched)
                down = [r for t, r in arrivals if killed + 0.5 < t < listening]
                assert down, "the outage must show as missing readings"
                assert all(r.quality == Quality.BAD and r.value is None for r in down)
                resumed = {
                    ch: await first_good(arrivals, ch, listening, 60, poller) for ch in ("feed", "fan")
                }
                figures.append(
                    {
                        "outage_s": listening - killed,
                        "feed_s": resumed["feed"] - listening,
                        "fan_s": resumed["fan"] - listening,
                    }
                )
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        return arrivals

    try:
        arrivals = asyncio.run(scenario())
    finally:
        for proc in procs:
            stop(proc)
    print("\nOPC UA recovery after server restarts (seconds from listening again to the first GOOD reading):")
    for (_, sig), f in zip(OUTAGES, figures, strict=True):
        print(
            f"  {signal.Signals(sig).name:7} outage {f['outage_s']:5.1f} s (not listening): "
            f"polled node {f['feed_s']:.2f} s, subscribed node {f['fan_s']:.2f} s"
        )
    assert len(figures) == len(OUTAGES)
    for (outage, _), f in zip(OUTAGES, figures, strict=True):
        assert f["outage_s"] >= 0.8 * outage, figures  # the outages were about as long as intended
        assert f["feed_s"] < RESUME_WITHIN_S and f["fan_s"] < RESUME_WITHIN_S, figures
    good = [r.t_ms for _, r in arrivals if r.channel == "feed" and r.quality == Quality.GOOD]
    assert good == sorted(good)  # time keeps moving forward across the restarts
