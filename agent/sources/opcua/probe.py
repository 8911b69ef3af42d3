"""``kilnwatch agent probe opc.tcp://...``: read a few nodes once, or list the variables a server has.

Setting up OPC UA on site usually starts with two questions: can the gateway reach the server with this
security, and what are the node ids? The probe answers both with the agent's own connection code
(certificates, trust list, login), so a probe that works means the agent's config will too. With no nodes it
browses the Objects folder a few levels deep and lists each variable with its value, skipping the standard
``Server`` object (namespace 0), so the plant's tags are not buried under diagnostics.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from asyncua import Node, ua
from pydantic import ValidationError

from agent.config_messages import describe_errors
from agent.sources.base import Echo, PointAnswer
from agent.sources.opcua.config import OpcuaServer
from agent.sources.opcua.connection import Session, close_client, open_session
from agent.sources.opcua.quality import to_reading
from agent.sources.reading import now_ms
from agent.wire import Quality

#: Browsing stops after this many variables, so a probe of a large server stays quick and readable.
MAX_BROWSED = 500
BROWSE_DEPTH = 3
NodeResult = tuple[str, object, str]


async def probe_opcua(url: str, nodes: list[str], timeout: float = 4.0, **security: Any) -> list[NodeResult]:
    """Return ``(node id, value, status name)`` for each of ``nodes``, or for the browsed variables if none.

    ``security`` takes the ``[[opcua]]`` keys: ``security_policy``, ``security_mode``, ``auth``,
    ``username``, ``password``, ``cert_dir``, ``trust_dir``, ``accept_first``, ``application_uri``,
    ``user_certificate`` and ``user_key``. Invalid settings raise ValueError naming the key, and so does an
    untrusted server certificate (``SecurityError``, naming the file to trust); a server that cannot be
    reached or refuses the login raises ConnectionError.
    """
    try:
        server = OpcuaServer.model_validate(
            {"name": "probe", "endpoint": url, "timeout": timeout, **security}
        )
    except ValidationError as exc:
        problems = [
            f"{'settings' if key == '(top level)' else key}: {sentence}"
            for key, sentence in describe_errors(exc.errors(), OpcuaServer)
        ]
        raise ValueError("; ".join(problems)) from None
    try:
        session = await open_session(server)
    except ValueError:
        raise  # SecurityError: the message names the certificate file to trust or the setting to change
    except Exception as exc:
        detail = f": {exc}" if str(exc) else ""
        raise ConnectionError(f"cannot open a session on {url}: {type(exc).__name__}{detail}") from exc
    try:
        if nodes:
            return await _read(session, nodes)
        return await _browse(session)
    finally:
        await close_client(session.client)


async def _values(session: Session, texts: list[str]) -> list[ua.DataValue | None]:
    """The Value attribute of each node in one Read; None for a node id this server cannot have (a ``nsu=``
    namespace it lacks, or text that is no node id)."""
    ids: list[ua.NodeId | None] = []
    for text in texts:
        try:
            ids.append(session.node_id(text))
        except (ValueError, ua.UaError):
            ids.append(None)
    found = [node_id for node_id in ids if node_id is not None]
    values = iter(await session.client.read_attributes([session.client.get_node(n) for n in found]))
    return [None if node_id is None else next(values) for node_id in ids]


async def _read(session: Session, texts: list[str]) -> list[NodeResult]:
    results: list[NodeResult] = []
    for text, value in zip(texts, await _values(session, texts), strict=True):
        results.append((text, None, "BadNodeIdUnknown") if value is None else _result(text, value))
    return results


def _result(text: str, value: ua.DataValue) -> NodeResult:
    raw = value.Value.Value if value.Value is not None else None
    status = value.StatusCode.name if value.StatusCode is not None else "Good"
    return text, raw, status


def _display_id(node_id: ua.NodeId, namespaces: list[str]) -> str:
    """``nsu=<uri>;...`` for the plant's namespaces: that form survives a server renumbering them."""
    text = node_id.to_string()
    if node_id.NamespaceIndex == 0 or node_id.NamespaceIndex >= len(namespaces):
        return text
    return f"nsu={namespaces[node_id.NamespaceIndex]};{text.split(';', 1)[1]}"


async def _browse(session: Session) -> list[NodeResult]:
    """Variables under Objects, breadth first through BROWSE_DEPTH levels of objects; the standard objects
    of namespace 0 (``Server`` and its diagnostics) are skipped."""
    client = session.client
    found: list[ua.NodeId] = []
    level: list[Node] = [client.nodes.objects]
    for depth in range(BROWSE_DEPTH):
        below: list[Node] = []
        for node in level:
            for ref in await node.get_children_descriptions():
                if depth == 0 and ref.NodeId.NamespaceIndex == 0:
                    continue
                if ref.NodeClass == ua.NodeClass.Variable:
                    found.append(ref.NodeId)
                elif ref.NodeClass == ua.NodeClass.Object:
                    below.append(client.get_node(ref.NodeId))
        level = below
    found = found[:MAX_BROWSED]
    values = await client.read_attributes([client.get_node(n) for n in found]) if found else []
    return [_result(_display_id(n, session.namespaces), v) for n, v in zip(found, values, strict=True)]


async def probe_points(server: OpcuaServer, timeout: float) -> list[PointAnswer]:
    """``check --probe``: every point of ``server`` read once, with its value, or why it has none (the
    node's bad status, a node id the server lacks, or why no session opened, for every point).

    A point counts as answered exactly when the agent would publish a value for it: its value goes through
    the poller's own ``to_reading`` (so it is scaled, and a Good status with a value that is not a number
    is not an answer)."""
    server = server.model_copy(update={"timeout": timeout})
    try:
        session = await open_session(server)
    except Exception as exc:  # SecurityError names the file to trust; the rest is an outage
        why = str(exc) if isinstance(exc, ValueError) else f"no session: {type(exc).__name__} {exc}".strip()
        return [PointAnswer(p.name, error=why) for p in server.points]
    try:
        values = await _values(session, [p.node for p in server.points])
    except Exception as exc:
        return [PointAnswer(p.name, error=f"read failed: {type(exc).__name__} {exc}") for p in server.points]
    finally:
        await close_client(session.client)
    answers = []
    for point, value in zip(server.points, values, strict=True):
        if value is None:
            answers.append(PointAnswer(point.name, error=f"{point.node}: namespace not on the server"))
            continue
        reading = to_reading(point.name, point.scale, value, now_ms(), "agent")
        if reading.quality is not Quality.BAD:
            answers.append(PointAnswer(point.name, reading.value))
            continue
        status = value.StatusCode.name if value.StatusCode is not None else "Good"
        if status.startswith("Bad"):
            answers.append(PointAnswer(point.name, error=f"{point.node}: {status}"))
        else:
            raw = value.Value.Value if value.Value is not None else None
            answers.append(PointAnswer(point.name, error=f"{point.node}: not a number ({raw!r})"))
    return answers


#: The ``probe`` command's options this source takes, by name (the others are for other protocols).
OPTIONS = ("node", "security", "timeout")


def run_probe(url: str, options: dict[str, Any], echo: Echo = print) -> int:
    """The ``probe`` command for ``opc.tcp://`` URLs: read ``--node``s once, or browse; the exit status."""
    foreign = [name for name in options if name not in OPTIONS]
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        print(f"agent probe: {flags}: not for opc.tcp:// URLs (see kilnwatch agent probe --help)",
              file=sys.stderr)  # fmt: skip
        return 2
    nodes, timeout = options.get("node") or [], options.get("timeout", 4.0)
    try:
        results = asyncio.run(probe_opcua(url, nodes, timeout, **options.get("security", {})))
    except ValueError as exc:  # bad settings, an untrusted server certificate
        print(f"agent probe: {exc}", file=sys.stderr)
        return 2
    except (OSError, TimeoutError) as exc:  # unreachable server or refused login (ConnectionError)
        print(f"agent probe: {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for node, value, status in results:
        shown = (
            repr(value) if isinstance(value, str) else f"{value:.12g}" if isinstance(value, float) else value
        )
        echo(f"{node} = {shown}  {status}")
    return 0 if all(str(status).startswith("Good") for _, _, status in results) else 1
