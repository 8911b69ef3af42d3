"""The DCS on OPC UA, read by an asyncua client: node ids, types, values and their updates."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from asyncua import Client, ua

from simulators.kiln.model import KilnLine
from simulators.kiln.opcua_server import DcsServer
from tests.servers import free_port

NODES = (
    "KilnFeed_tph",
    "KilnCoal_tph",
    "CalcinerCoal_tph",
    "ClinkerBeltScale_tph",
    "KilnInletTemp_C",
    "PreheaterExitTemp_C",
    "WHR_GrossGen_kW",
    "IDFan_kW",
    "Coal_NCV_MJkg",
)


async def read_all(client: Client, idx: int) -> dict[str, float]:
    out = {}
    for name in NODES:
        node = client.get_node(ua.NodeId(f"KilnLine1.{name}", idx))
        assert await node.read_data_type_as_variant_type() == ua.VariantType.Double
        out[name] = await node.read_value()
    return out


def test_dcs_nodes_serve_the_model_rates() -> None:
    line = KilnLine(seed=8)

    async def main() -> None:
        port = free_port()
        dcs = await DcsServer.start(port, line.rates)
        try:
            async with Client(f"opc.tcp://127.0.0.1:{port}/kilnwatch/dcs") as client:
                idx = await client.get_namespace_index("urn:kilnwatch:sim:dcs")
                first = await read_all(client, idx)
                r = line.rates
                assert first["ClinkerBeltScale_tph"] == r["clinker_tph"]
                assert first["KilnFeed_tph"] == r["kiln_feed_tph"]
                assert first["Coal_NCV_MJkg"] == 23.0
                # Coal: 40 / 60 of clinker × heat / NCV = 208.33 × 3.10 / 23.0 = 28.08 t/h at the start.
                coal = first["KilnCoal_tph"] + first["CalcinerCoal_tph"]
                assert abs(coal - 208.3333 * 3.10 / 23.0) < 1e-3
                assert abs(first["KilnCoal_tph"] / coal - 0.4) < 1e-12
                assert 1000 <= first["KilnInletTemp_C"] <= 1150
                assert 280 <= first["PreheaterExitTemp_C"] <= 330
                assert 2000 <= first["IDFan_kW"] <= 3000

                for _ in range(20):
                    line.step(60.0)
                await dcs.update(line.rates, 1_700_000_000_000)
                second = await read_all(client, idx)
                assert second["ClinkerBeltScale_tph"] == line.rates["clinker_tph"]
                assert second["WHR_GrossGen_kW"] == line.rates["whr_kw"]
                assert second["ClinkerBeltScale_tph"] != first["ClinkerBeltScale_tph"]
                node = client.get_node(ua.NodeId("KilnLine1.IDFan_kW", idx))
                value = await node.read_data_value()
                stamp = value.SourceTimestamp
                stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)  # OPC UA times are UTC
                assert stamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # 1.7e12 ms after the epoch
        finally:
            await dcs.stop()

    asyncio.run(main())
