"""``probe_opcua`` against the simulated DCS: read given nodes once, or browse to discover node ids."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.sources.opcua.probe import probe_opcua
from simulators.kiln.model import KilnLine
from simulators.kiln.opcua_server import DcsServer
from simulators.kiln.points import DCS_POINTS
from tests.servers import free_port

NSU = "nsu=urn:kilnwatch:sim:dcs;s=KilnLine1."


def test_probe_reads_nodes_and_browses_the_address_space() -> None:
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    rates = KilnLine(seed=5).rates

    async def scenario() -> tuple[list, list]:
        port = free_port()
        url = f"opc.tcp://127.0.0.1:{port}/kilnwatch/dcs"
        dcs = await DcsServer.start(port, rates)
        try:
            await dcs.set_status("IDFan_kW", "BadSensorFailure", 1_795_161_600_000)
            nodes = [
                NSU + "KilnFeed_tph",
                "ns=2;s=KilnLine1.IDFan_kW",
                "ns=2;s=KilnLine1.Nope",
                "nsu=urn:x;s=y",
            ]
            read = await probe_opcua(url, nodes, 2.0)
            browsed = await probe_opcua(url, [], 2.0)
        finally:
            await dcs.stop()
        return read, browsed

    read, browsed = asyncio.run(scenario())
    assert read == [
        (NSU + "KilnFeed_tph", rates["kiln_feed_tph"], "Good"),
        ("ns=2;s=KilnLine1.IDFan_kW", None, "BadSensorFailure"),  # a Bad value is not sent
        ("ns=2;s=KilnLine1.Nope", None, "BadNodeIdUnknown"),
        ("nsu=urn:x;s=y", None, "BadNodeIdUnknown"),
    ]
    # Browsing lists the plant's variables (not the Server object's) in the nsu= form a config should use.
    assert {node for node, _, _ in browsed} == {NSU + p.node for p in DCS_POINTS}
    assert (NSU + "KilnFeed_tph", rates["kiln_feed_tph"], "Good") in browsed


def test_probe_reports_an_unreachable_server_as_a_connection_error() -> None:
    with pytest.raises(ConnectionError, match=r"cannot open a session on opc.tcp://127.0.0.1:\d+/"):
        asyncio.run(probe_opcua(f"opc.tcp://127.0.0.1:{free_port()}/", ["ns=2;s=x"], 1.0))


def test_probe_rejects_invalid_security_settings_before_connecting() -> None:
    with pytest.raises(ValueError, match="needs cert_dir"):
        asyncio.run(probe_opcua("opc.tcp://127.0.0.1:1/", [], 1.0, security_policy="Basic256Sha256"))
    with pytest.raises(ValueError, match="security_policy"):
        asyncio.run(probe_opcua("opc.tcp://127.0.0.1:1/", [], 1.0, security_policy="Basic128Rsa15"))
