"""One OPC UA session: open it (security, login, namespace array), resolve node ids in it, close it.

A session is never repaired in place. When anything goes wrong the poller closes it and opens a new one, which
also reads the namespace array again, so ``nsu=`` node ids follow a server whose namespace indexes changed
after a restart or a PLC download.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from asyncua import Client, ua

from agent.sources.opcua.config import OpcuaServer
from agent.sources.opcua.security import configure_security

#: The server frees a session we abandoned (network cut) after this long. Short, because PLCs often allow
#: only a few sessions and a reconnect must not find them all taken by our own dead ones.
SESSION_TIMEOUT_MS = 60_000
APPLICATION_NAME = "Kilnwatch agent"
PRODUCT_URI = "urn:kilnwatch:agent"


def resolve_node_id(text: str, namespaces: list[str]) -> ua.NodeId:
    """Parse a configured node id; ``nsu=<uri>;`` is looked up in the server's namespace array."""
    if text.startswith("nsu="):
        uri, _, rest = text[4:].partition(";")
        if uri not in namespaces:
            raise LookupError(f"namespace {uri!r} is not in the server's namespace array")
        text = f"ns={namespaces.index(uri)};{rest}"
    return ua.NodeId.from_string(text)


@dataclass
class Session:
    """A connected client, the namespace array it read, and an event set when asyncua sees the link die."""

    name: str
    client: Client
    namespaces: list[str]
    lost: asyncio.Event

    def node_id(self, text: str) -> ua.NodeId | None:
        """The node id in this session, or None if its ``nsu=`` namespace is not on the server (the caller
        reports the point missing rather than failing the whole server)."""
        try:
            return resolve_node_id(text, self.namespaces)
        except LookupError:
            return None


def new_client(server: OpcuaServer) -> Client:
    """A client set up for ``server`` but not yet secured or connected."""
    # asyncua probes the server every watchdog_intervall with a read that may take up to that long, so a
    # dead link (no TCP reset, e.g. a cable pulled) is noticed within about two request timeouts.
    client = Client(server.endpoint, timeout=server.timeout, watchdog_intervall=server.timeout)
    client.name = client.description = APPLICATION_NAME
    client.product_uri = PRODUCT_URI
    client.session_timeout = SESSION_TIMEOUT_MS
    return client


async def open_session(server: OpcuaServer) -> Session:
    """Connect with ``server``'s security and login; raises (after cleaning up) if any step fails."""
    client = new_client(server)
    lost = asyncio.Event()

    async def on_lost(_exc: Exception) -> None:
        lost.set()

    client.connection_lost_callback = on_lost
    try:
        async with asyncio.timeout(server.timeout * 3):
            await configure_security(client, server)
            await client.connect()
            namespaces = await client.get_namespace_array()
    except BaseException:
        await close_client(client)
        raise
    return Session(server.name, client, namespaces, lost)


async def close_client(client: Client, timeout: float = 2.0) -> None:
    """End the session on the server if it still answers (freeing its slot and subscriptions), stop
    asyncua's background tasks, and close the socket; never raises, since the link may already be dead."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close_session(), timeout)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close_secure_channel(), timeout / 2)
    with contextlib.suppress(Exception):
        client.disconnect_socket()
