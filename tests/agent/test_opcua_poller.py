"""The OPC UA poller against a real asyncua server: values, quality, timestamps, nsu= ids, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from asyncua import Server, ua

from agent.sources.opcua.config import OpcuaServer
from agent.sources.opcua.poller import OpcuaPoller
from agent.sources.reading import Reading
from agent.wire import Quality
from tests.servers import free_port

URI = "urn:kilnwatch:test:dcs"
SOURCE_TIME = datetime(2026, 11, 20, 8, 0, 0, 250000, tzinfo=UTC)


@contextlib.asynccontextmanager
async def dcs(port: int) -> AsyncIterator[Server]:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/test/dcs")
    # A namespace registered first shifts the index, so only nsu= resolution finds the right one.
    await server.register_namespace("urn:other")
    idx = await server.register_namespace(URI)
    line = await server.nodes.objects.add_object(ua.NodeId("KilnLine1", idx), "KilnLine1")
    feed = await line.add_variable(ua.NodeId("KilnLine1.KilnFeed_tph", idx), "KilnFeed_tph", 327.5)
    temp = await line.add_variable(ua.NodeId("KilnLine1.KilnInletTemp_C", idx), "KilnInletTemp_C", 1050.0)
    await line.add_variable(ua.NodeId("KilnLine1.WHR_kW", idx), "WHR_kW", 7290.0)
    await feed.write_value(
        ua.DataValue(ua.Variant(327.5, ua.VariantType.Double), SourceTimestamp=SOURCE_TIME)
    )
    await temp.write_value(
        ua.DataValue(
            ua.Variant(1050.0, ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
        )
    )
    async with server:
        yield server


def config(port: int) -> OpcuaServer:
    return OpcuaServer.model_validate(
        {
            "name": "dcs",
            "endpoint": f"opc.tcp://127.0.0.1:{port}/test/dcs",
            "interval": 0.2,
            "timeout": 2.0,
            "points": [
                {"name": "feed", "node": f"nsu={URI};s=KilnLine1.KilnFeed_tph", "kind": "mass_rate"},
                {"name": "inlet_temp", "node": f"nsu={URI};s=KilnLine1.KilnInletTemp_C"},
                {"name": "whr_mw", "node": "ns=3;s=KilnLine1.WHR_kW", "scale": 0.001},
            ],
        }
    )


@pytest.fixture(autouse=True)
def quiet_asyncua() -> None:
    logging.getLogger("asyncua").setLevel(logging.ERROR)


def test_reads_values_quality_and_timestamps() -> None:
    async def scenario() -> list[Reading]:
        port = free_port()
        readings: list[Reading] = []
        async with dcs(port):
            task = asyncio.create_task(OpcuaPoller(config(port), readings.extend).run())
            await asyncio.sleep(2.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return readings

    readings = asyncio.run(scenario())
    latest = {r.channel: r for r in readings}
    assert len(readings) >= 6 and len(readings) % 3 == 0  # whole cycles: three nodes per Read
    assert latest["feed"].value == 327.5 and latest["feed"].quality == Quality.GOOD
    # The source timestamp, 2026-11-20T08:00:00.250Z: 56 years with 14 leap days = 20454 days to 2026-01-01,
    # + 323 days to 20 Nov = 20777 days; x 86400 + 8 h = 1_795_161_600 s.
    assert latest["feed"].t_ms == 1_795_161_600_250
    assert latest["inlet_temp"].value == 1050.0 and latest["inlet_temp"].quality == Quality.UNCERTAIN
    assert latest["whr_mw"].value == pytest.approx(7.29) and latest["whr_mw"].quality == Quality.GOOD


def recovered(readings: list[Reading]) -> bool:
    qualities = [r.quality for r in readings if r.channel == "feed"]
    return Quality.BAD in qualities and Quality.GOOD in qualities[qualities.index(Quality.BAD) :]


def test_reconnects_after_a_server_restart() -> None:
    async def scenario() -> list[Reading]:
        port = free_port()
        readings: list[Reading] = []
        task = None
        async with dcs(port):
            task = asyncio.create_task(OpcuaPoller(config(port), readings.extend).run())
            await asyncio.sleep(1.0)
        await asyncio.sleep(1.0)  # server gone: the poller reports BAD and backs off
        async with dcs(port):
            # Wait for recovery instead of a fixed time: the backoff step and a busy machine decide when.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not recovered(readings):
                await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return readings

    readings = asyncio.run(scenario())
    feed = [r for r in readings if r.channel == "feed"]
    qualities = [r.quality for r in feed]
    assert Quality.BAD in qualities
    first_bad = qualities.index(Quality.BAD)
    assert Quality.GOOD in qualities[:first_bad] and Quality.GOOD in qualities[first_bad:]
    assert all(r.value is None for r in feed if r.quality == Quality.BAD)
