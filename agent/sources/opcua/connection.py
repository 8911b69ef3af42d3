"""One OPC UA session: open it (security, login, namespace array), resolve node ids in it, close it.

A session is never repaired in place. When anything goes wrong the poller closes it and opens a new one, which
also reads the namespace array again, so ``nsu=`` node ids follow a server whose namespace indexes changed
after a restart or a PLC download. A server that refuses the agent's certificate is reported as such
(``security.client_refusal``): asyncua's own errors for it do not say so, and which step of the connect failed
is watched with asyncua's ``Observer`` hook to tell a refusal from an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.observer import Observer

from agent.sources.opcua.config import OpcuaServer
from agent.sources.opcua.security import client_refusal, configure_security

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


class ConnectSteps(Observer):
    """Which OPC UA service a ``connect()`` failed in: the first request that failed, or OpenSecureChannel if
    the socket opened but the secure channel never did (that exchange is not an observed request)."""

    def __init__(self) -> None:
        self._states: set[UaClientState] = set()
        self._failed: str | None = None

    def on_state_change(self, state: UaClientState) -> None:
        self._states.add(state)

    def on_request(self, request_type: str, duration: float, error: BaseException | None) -> None:
        if error is not None and self._failed is None:
            self._failed = request_type.removesuffix("Request")

    @property
    def failed_step(self) -> str | None:
        if self._failed is not None:
            return self._failed
        if UaClientState.SOCKET_OPEN in self._states and UaClientState.CHANNEL_OPEN not in self._states:
            return "OpenSecureChannel"
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
            identity = await configure_security(client, server)
            steps = ConnectSteps()
            client.uaclient.observer = steps
            try:
                await client.connect()
            except Exception as exc:
                refusal = None
                if identity is not None and server.security_policy != "None":
                    refusal = client_refusal(exc, steps.failed_step, identity.cert)
                if refusal is not None:
                    raise refusal from exc
                raise
            namespaces = await client.get_namespace_array()
    except BaseException:
        await close_client(client)
        raise
    return Session(server.name, client, namespaces, lost)


async def close_client(client: Client, timeout: float = 2.0) -> None:
    """End the session on the server if it still answers (freeing its slot and subscriptions), stop
    asyncua's background tasks, and close the socket; never raises, since the link may already be dead.

    The secure channel is closed only if there is one: asyncua warns about closing a channel it does not
    have, which would be one useless log line per reconnect attempt while the server is down.
    """
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close_session(), timeout)
    if client.uaclient.state is UaClientState.CHANNEL_OPEN:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close_secure_channel(), timeout / 2)
    with contextlib.suppress(Exception):
        client.disconnect_socket()
