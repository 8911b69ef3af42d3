"""The DCS on OPC UA, read by an asyncua client: node ids, types, values, updates, security and status."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulators.kiln.model import KilnLine
from simulators.kiln.opcua_server import SERVER_CERT, DcsServer, SimSecurity
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


def test_secured_dcs_offers_only_its_policies_checks_logins_and_sets_status(tmp_path: Path) -> None:
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    key = cert_gen.generate_private_key()
    names = [x509.UniformResourceIdentifier("urn:test:client"), x509.DNSName("localhost")]
    cert = cert_gen.generate_self_signed_app_certificate(
        key, "c", {}, names, [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    (tmp_path / "c.der").write_bytes(cert.public_bytes(Encoding.DER))
    (tmp_path / "c.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
    security = SimSecurity(tmp_path / "server", ("Basic256Sha256:SignAndEncrypt",), {"op": "pw"})

    async def read_ncv(url: str, password: str) -> ua.DataValue:
        client = Client(url)
        client.application_uri = "urn:test:client"
        await client.set_security(
            SecurityPolicyBasic256Sha256, str(tmp_path / "c.der"), str(tmp_path / "c.pem")
        )
        client.set_user("op")
        client.set_password(password)
        async with client:
            idx = await client.get_namespace_index("urn:kilnwatch:sim:dcs")
            return await client.get_node(ua.NodeId("KilnLine1.Coal_NCV_MJkg", idx)).read_data_value(
                raise_on_bad_status=False
            )

    async def main() -> None:
        port = free_port()
        url = f"opc.tcp://127.0.0.1:{port}/kilnwatch/dcs"
        dcs = await DcsServer.start(port, KilnLine(seed=2).rates, security=security)
        try:
            endpoints = await Client(url).connect_and_get_server_endpoints()
            offered = {(e.SecurityPolicyUri.rsplit("#", 1)[1], e.SecurityMode.name) for e in endpoints}
            assert offered == {("Basic256Sha256", "SignAndEncrypt")}
            assert endpoints[0].ServerCertificate == (tmp_path / "server" / SERVER_CERT).read_bytes()
            assert (await read_ncv(url, "pw")).Value.Value == 23.0
            with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
                await read_ncv(url, "wrong")
            await dcs.set_status("Coal_NCV_MJkg", "UncertainLastUsableValue", 1_700_000_000_000)
            value = await read_ncv(url, "pw")
            assert value.StatusCode.name == "UncertainLastUsableValue" and value.Value.Value == 23.0
        finally:
            await dcs.stop()

    asyncio.run(main())
