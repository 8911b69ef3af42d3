"""The plant's DCS on OPC UA: one Double variable per ``points.DCS_POINTS`` entry under ``KilnLine1``.

Node ids are strings ``ns=<idx>;s=KilnLine1.<Name>`` in namespace ``urn:kilnwatch:sim:dcs``, security None
(docs/demo-plant.md). Values carry the model instant as their source timestamp, so a client can line a value
up with the truth file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from asyncua import Server, ua

from simulators.kiln.points import DCS_POINTS

NAMESPACE = "urn:kilnwatch:sim:dcs"
ENDPOINT_PATH = "/kilnwatch/dcs"
LINE = "KilnLine1"


class DcsServer:
    """An asyncua server holding the DCS tags; ``update`` writes a new set of rates into them."""

    def __init__(self, server: Server, namespace_index: int) -> None:
        self._server = server
        self._nodes = {p.source: ua.NodeId(f"{LINE}.{p.node}", namespace_index) for p in DCS_POINTS}

    @classmethod
    async def start(cls, port: int, rates: Mapping[str, float], host: str = "127.0.0.1") -> DcsServer:
        """Create the address space with ``rates`` as initial values and start listening (~1-3 s)."""
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://{host}:{port}{ENDPOINT_PATH}")
        server.set_server_name("Kilnwatch simulated DCS")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE)
        line = await server.nodes.objects.add_object(ua.NodeId(LINE, idx), ua.QualifiedName(LINE, idx))
        for p in DCS_POINTS:
            await line.add_variable(
                ua.NodeId(f"{LINE}.{p.node}", idx),
                ua.QualifiedName(p.node, idx),
                float(rates[p.source]),
                varianttype=ua.VariantType.Double,
            )
        await server.start()
        return cls(server, idx)

    async def update(self, rates: Mapping[str, float], epoch_ms: int) -> None:
        stamp = datetime.fromtimestamp(epoch_ms / 1000, UTC)
        for source, node_id in self._nodes.items():
            value = ua.DataValue(
                ua.Variant(float(rates[source]), ua.VariantType.Double),
                SourceTimestamp=stamp,
                ServerTimestamp=stamp,
            )
            await self._server.write_attribute_value(node_id, value)

    async def stop(self) -> None:
        await self._server.stop()
