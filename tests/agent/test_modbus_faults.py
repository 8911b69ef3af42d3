"""One dead meter must not spoil the others (peers.md §7.3, §9.2 complaint 3), measured with real processes.

The simulator runs as its own process (``kilnwatch sim kiln``) and a "hung" meter as another: a raw TCP server
that accepts connections and reads requests but never answers. The agent polls a healthy PM5100 alone, then
the same meter beside the hung one (timeouts, retries, backoff) and beside a unit on the healthy meter's own
connection that answers every request with a Modbus exception (illegal data address). The healthy meter's
poll period and request latency are compared between the two runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.link import Link
from agent.sources.modbus.poller import ModbusPoller
from agent.sources.reading import Reading
from agent.wire import Quality
from tests.servers import free_port, stop, wait_for_port

INTERVAL = 0.25
RUN_S = 5.0

HUNG_METER = """
import socket, sys, threading
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
def swallow(conn):
    while conn.recv(1024):
        pass
while True:
    conn, _ = server.accept()
    threading.Thread(target=swallow, args=(conn,), daemon=True).start()
"""


@contextlib.contextmanager
def process(args: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=30.0, proc=proc)
        yield
    finally:
        stop(proc)


def run_agent(devices: list[ModbusDevice]) -> list[Reading]:
    readings: list[Reading] = []

    async def main() -> None:
        task = asyncio.create_task(ModbusPoller(devices, readings.extend).run())
        await asyncio.sleep(RUN_S)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    return readings


def timed_reads(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, int], list[float]]:
    """Request latency per (connection, unit), lock wait included: what a shared line costs a device."""
    latencies: dict[tuple[str, int], list[float]] = {}
    read = Link.read

    async def timed(self: Link, function: int, address: int, count: int, unit: int, *args: Any) -> list[int]:
        start = time.perf_counter()
        try:
            return await read(self, function, address, count, unit, *args)
        finally:
            latencies.setdefault((self.name, unit), []).append(time.perf_counter() - start)

    monkeypatch.setattr(Link, "read", timed)
    return latencies


def stats(readings: list[Reading], channel: str, latency: list[float]) -> dict[str, float]:
    times = sorted({r.t_ms for r in readings if r.channel == channel})
    periods = [(b - a) / 1000 for a, b in itertools.pairwise(times)]
    return {
        "polls": len(times),
        "median_period": statistics.median(periods),
        "p90_period": statistics.quantiles(periods, n=10)[-1],
        "max_period": max(periods),
        "median_latency": statistics.median(latency),
        "max_latency": max(latency),
    }


def show(label: str, s: dict[str, float]) -> str:
    ms = {k: v * 1000 for k, v in s.items()}
    return (
        f"{label}: {s['polls']:.0f} polls in {RUN_S:g} s at {INTERVAL:g} s; period median "
        f"{ms['median_period']:.0f} ms, p90 {ms['p90_period']:.0f} ms, max {ms['max_period']:.0f} ms; "
        f"request latency median {ms['median_latency']:.1f} ms, max {ms['max_latency']:.1f} ms"
    )


def test_a_hung_meter_and_an_erroring_meter_do_not_slow_a_healthy_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim_port, hung_port = free_port(), free_port()
    sim = [
        sys.executable,
        "-m",
        "agent.cli",
        "sim",
        "kiln",
        "--modbus-port",
        str(sim_port),
        "--log-level",
        "error",
    ]
    hung = [sys.executable, "-c", HUNG_METER, str(hung_port)]

    def device(name: str, port: int, unit: int, **kw: object) -> ModbusDevice:
        return ModbusDevice.model_validate(
            {"name": name, "host": "127.0.0.1", "port": port, "unit": unit, "interval": INTERVAL, **kw}
        )

    healthy = device(
        "healthy", sim_port, 1, profile="schneider-pm5100", profile_points=["kw_total", "kwh_import"]
    )
    # Answers every request with exception 2: same meter model, a register its map does not have.
    erroring = device(
        "erroring", sim_port, 2, points=[{"name": "erroring_x", "address": 9000, "type": "float32"}]
    )
    hung_meter = device("hung", hung_port, 1, profile="schneider-pm5100", profile_points=["kw_total"],
                        timeout=1.0, retries=1)  # fmt: skip

    with process(sim, sim_port), process(hung, hung_port):
        latencies = timed_reads(monkeypatch)
        key = (f"127.0.0.1:{sim_port}", 1)
        alone = run_agent([healthy])
        alone_stats = stats(alone, "healthy_kw_total", latencies.pop(key))
        together = run_agent([healthy, erroring, hung_meter])
        together_stats = stats(together, "healthy_kw_total", latencies[key])

    print("\n" + show("healthy meter alone      ", alone_stats))
    print(show("beside hung + erroring   ", together_stats))
    hung_readings = [r for r in together if r.channel == "hung_kw_total"]
    erroring_readings = [r for r in together if r.channel == "erroring_x"]
    print(f"hung meter: {len(hung_readings)} failed cycles (timeout 1 s x 2 attempts, then backoff); "
          f"erroring meter: {len(erroring_readings)} exception replies")  # fmt: skip

    for readings in (alone, together):
        assert {r.quality for r in readings if r.channel.startswith("healthy")} == {Quality.GOOD}
    assert hung_readings and all(r.quality == Quality.BAD and r.value is None for r in hung_readings)
    assert len(hung_readings) <= 3  # 2 s per failed cycle, then backoff: never every interval
    assert erroring_readings and all(r.quality == Quality.BAD and r.value is None for r in erroring_readings)
    assert len(erroring_readings) >= 0.5 * RUN_S / INTERVAL  # exceptions are answers: polled on schedule
    # The healthy meter keeps its schedule (generous bounds: the machine is shared and busy).
    expected_polls = RUN_S / INTERVAL
    for s in (alone_stats, together_stats):
        assert s["polls"] >= 0.7 * expected_polls
        assert 0.8 * INTERVAL <= s["median_period"] <= 1.5 * INTERVAL
    assert together_stats["median_latency"] <= max(3 * alone_stats["median_latency"], 0.05)
