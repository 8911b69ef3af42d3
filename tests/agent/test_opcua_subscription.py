"""Subscribe mode against the simulated DCS: notifications become readings with quality and the device's time,
deadbands hold back small changes, refused nodes are reported missing, and the no-data watchdog rebuilds a
subscription the server dropped without closing the connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from agent.sources.opcua.config import OpcuaServer
from agent.sources.opcua.poller import OpcuaPoller
from agent.sources.reading import Reading, now_ms
from agent.wire import Quality
from simulators.kiln.model import KilnLine
from simulators.kiln.opcua_server import DcsServer
from tests.servers import free_port

NS = "nsu=urn:kilnwatch:sim:dcs;s=KilnLine1."
T0 = 1_795_161_600_000  # 2026-11-20T08:00:00Z, the device time written with the values


@pytest.fixture(autouse=True)
def quiet_asyncua() -> None:
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)


def server(port: int, **settings: Any) -> OpcuaServer:
    return OpcuaServer.model_validate(
        {"name": "dcs", "endpoint": f"opc.tcp://127.0.0.1:{port}/kilnwatch/dcs", **settings}
    )


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


Body = Callable[[list[list[Reading]]], Coroutine[Any, Any, None]]


async def with_pollers(configs: list[OpcuaServer], body: Body) -> list[list[Reading]]:
    """Run one poller per config while ``body(outputs)`` runs; return each poller's readings."""
    outputs: list[list[Reading]] = [[] for _ in configs]
    tasks = [
        asyncio.create_task(OpcuaPoller(c, out.extend).run()) for c, out in zip(configs, outputs, strict=True)
    ]
    try:
        await body(outputs)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return outputs


def of(readings: list[Reading], channel: str) -> list[Reading]:
    return [r for r in readings if r.channel == channel]


def test_notifications_quality_deadband_and_refused_nodes() -> None:
    rates = dict(KilnLine(seed=3).rates)
    feed0 = rates["kiln_feed_tph"]

    async def scenario() -> tuple[list[list[Reading]], int, int]:
        port = free_port()
        dcs = await DcsServer.start(port, rates)
        await dcs.update(rates, T0)
        subscribed = server(
            port,
            mode="subscribe",
            publishing_interval=0.1,
            points=[
                {"name": "feed", "node": NS + "KilnFeed_tph", "deadband": 5.0},
                {"name": "inlet", "node": NS + "KilnInletTemp_C"},
                {"name": "whr_mw", "node": NS + "WHR_GrossGen_kW", "scale": 0.001},
                {"name": "no_such_node", "node": "ns=2;s=KilnLine1.Nope"},
                {"name": "no_such_ns", "node": "nsu=urn:nope;s=X"},
            ],
        )
        polled = server(
            port,
            interval=0.2,
            timestamp="agent",
            points=[{"name": "inlet_polled", "node": NS + "KilnInletTemp_C"}],
        )

        async def body(outputs: list[list[Reading]]) -> None:
            await until(lambda: bool(of(outputs[0], "feed")) and bool(of(outputs[1], "inlet_polled")))
            rates["kiln_feed_tph"] = feed0 + 1.0  # inside the deadband: not reported
            await dcs.update(rates, T0 + 1000)
            await asyncio.sleep(0.5)
            rates["kiln_feed_tph"] = feed0 + 12.0
            await dcs.update(rates, T0 + 2000)
            await dcs.set_status("KilnInletTemp_C", "UncertainLastUsableValue", T0 + 3000)
            await until(lambda: any(r.quality == Quality.UNCERTAIN for r in of(outputs[0], "inlet")))
            await dcs.set_status("KilnInletTemp_C", "BadSensorFailure", T0 + 4000)
            await until(lambda: any(r.quality == Quality.BAD for r in of(outputs[0], "inlet")))
            await asyncio.sleep(0.5)

        start = now_ms()
        try:
            outputs = await with_pollers([subscribed, polled], body)
        finally:
            await dcs.stop()
        return outputs, start, now_ms()

    (subscribed, polled), start, end = asyncio.run(scenario())
    feed = of(subscribed, "feed")
    assert [(r.t_ms, r.value, r.quality) for r in feed] == [
        (T0, feed0, Quality.GOOD),
        (T0 + 2000, feed0 + 12.0, Quality.GOOD),
    ]
    inlet = [(r.t_ms, r.quality) for r in of(subscribed, "inlet")]
    assert inlet == [(T0, Quality.GOOD), (T0 + 3000, Quality.UNCERTAIN), (T0 + 4000, Quality.BAD)]
    uncertain, bad = of(subscribed, "inlet")[1:]
    assert uncertain.value == rates["kiln_inlet_temp_c"] and bad.value is None
    assert of(subscribed, "whr_mw")[0].value == pytest.approx(rates["whr_kw"] / 1000)
    for name in ("no_such_node", "no_such_ns"):
        refused = of(subscribed, name)
        assert refused and all(r.quality == Quality.BAD and r.value is None for r in refused)
    inlet_polled = of(polled, "inlet_polled")
    assert all(start <= r.t_ms <= end for r in inlet_polled)  # timestamp = "agent"
    assert inlet_polled[0].quality == Quality.GOOD and inlet_polled[-1].quality == Quality.BAD


def test_watchdog_rebuilds_a_subscription_the_server_dropped_silently() -> None:
    """The connection stays up but the server forgot the subscription (as after a PLC download): no more
    notifications or keep-alives. The watchdog must notice, report the points missing, and resubscribe."""
    line = KilnLine(seed=4)

    async def scenario() -> tuple[list[Reading], float, int]:
        port = free_port()
        dcs = await DcsServer.start(port, line.rates)
        config = server(
            port,
            mode="subscribe",
            publishing_interval=0.2,
            watchdog_s=1.5,
            points=[{"name": "feed", "node": NS + "KilnFeed_tph"}],
        )
        marks: dict[str, float] = {}

        async def body(outputs: list[list[Reading]]) -> None:
            async def refresh() -> None:  # the plant keeps changing, so a live subscription always reports
                while True:
                    line.step(60.0)
                    await dcs.update(line.rates, now_ms())
                    await asyncio.sleep(0.1)

            refresher = asyncio.create_task(refresh())
            try:
                await until(lambda: len(outputs[0]) >= 3)
                assert await dcs.drop_subscriptions() == 1
                marks["dropped"] = time.monotonic()
                await until(lambda: any(r.quality == Quality.BAD for r in outputs[0]))
                marks["missing"] = time.monotonic()
                await until(lambda: outputs[0][-1].quality == Quality.GOOD)
                marks["count"] = dcs.subscription_count()
            finally:
                refresher.cancel()

        try:
            (readings,) = await with_pollers([config], body)
        finally:
            await dcs.stop()
        return readings, marks["missing"] - marks["dropped"], int(marks["count"])

    readings, noticed_after, subscriptions = asyncio.run(scenario())
    assert 1.0 <= noticed_after <= 10.0  # the watchdog (1.5 s) fired; not before about its time
    first_bad = next(i for i, r in enumerate(readings) if r.quality == Quality.BAD)
    assert readings[first_bad].value is None
    assert any(r.quality == Quality.GOOD for r in readings[first_bad:])
    assert subscriptions == 1  # resubscribed on the same server, no leftover subscription
