"""``/healthz`` and ``/metrics`` over HTTP, and readiness/watchdog notes to systemd.

The endpoint is served by the agent's own event loop (``asyncio.start_server``, no web framework): if the
loop that runs the pollers is wedged, the endpoint stops answering too, which is exactly what a health check
should notice. Requests are tiny and rare (a scrape every 15-60 s), so a minimal HTTP/1.0 responder is enough.

Health is judged by ``assess()`` from a snapshot, so the rules are testable without a running agent:
failing (503) when a poller task ended, a polled device has had no cycle (answered or not) for longer than
``stall_s`` plus three intervals, or the outbox holds a batch older than ``stall_s`` with no acknowledgement
within ``stall_s`` (the broker is unreachable, refuses, or the publisher is stuck). A device that does not
answer is not an agent failure: its poller keeps cycling (with backoff) and reports BAD, and /healthz says
``degraded`` (still 200) and which device, as it does for a device that refuses some of its points (e.g.
Modbus exception 02 for registers a neighbouring meter model has and this one lacks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger("agent.health")

#: Header lines read per request at most; anything longer is not a health check.
_MAX_HEADER_LINES = 100


@dataclass(frozen=True)
class DeviceSnapshot:
    """One device (a Modbus unit, an OPC UA server, a meter) as /healthz reports it; times in Unix s."""

    last_cycle: float | None
    last_good: float | None
    #: seconds it may go without a cycle before the agent is failing; None: not watched (e.g. subscriptions)
    stall_limit: float | None
    #: points the device refuses (e.g. Modbus exception 02) → why
    refused: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """What the agent looks like now, for ``assess()``. Times are Unix seconds."""

    now: float
    started: float
    stall_s: float
    dead_pollers: list[str]
    devices: dict[str, DeviceSnapshot]
    outbox_batches: int
    outbox_bytes: int
    outbox_oldest: float | None
    dropped: dict[str, int]
    mqtt: dict[str, object]
    last_ack: float | None
    identity: dict[str, str] = field(default_factory=dict)


def assess(snap: Snapshot) -> tuple[bool, dict[str, object]]:
    """``(healthy, details)``; details name each problem in words an operator can act on."""
    problems = [f"poller {name} stopped" for name in snap.dead_pollers]
    warnings: list[str] = []
    devices: dict[str, object] = {}
    for name, dev in sorted(snap.devices.items()):
        cycle_age = None if dev.last_cycle is None else snap.now - dev.last_cycle
        good_age = None if dev.last_good is None else snap.now - dev.last_good
        answering = dev.last_good is not None and (dev.last_cycle is None or dev.last_good >= dev.last_cycle)
        devices[name] = {
            "status": "ok" if answering and not dev.refused else "degraded",
            "last_cycle_age_s": None if cycle_age is None else round(cycle_age, 3),
            "last_good_age_s": None if good_age is None else round(good_age, 3),
            "refused_points": dict(sorted(dev.refused.items())),
        }
        since = snap.now - (dev.last_cycle if dev.last_cycle is not None else snap.started)
        if dev.stall_limit is not None and since > dev.stall_limit:
            problems.append(
                f"device {name}: no poll cycle for {since:.0f} s (allowed {dev.stall_limit:.0f} s)"
            )
        elif dev.last_cycle is not None and not answering:
            warnings.append(f"device {name}: no good reading in its last cycle"
                            + ("" if good_age is None else f" (last good {good_age:.0f} s ago)"))  # fmt: skip
        if dev.refused:
            warnings.append(
                f"device {name}: {len(dev.refused)} point(s) refused by the device "
                f"({', '.join(sorted(dev.refused))}): remove them from the config or check the meter model"
            )
    oldest_age = None if snap.outbox_oldest is None else max(0.0, snap.now - snap.outbox_oldest)
    since_ack = snap.now - (snap.last_ack if snap.last_ack is not None else snap.started)
    if oldest_age is not None and oldest_age > snap.stall_s and since_ack > snap.stall_s:
        why = "broker not connected" if not snap.mqtt.get("connected") else "no acknowledgement"
        if snap.mqtt.get("refusal"):
            why = f"broker refuses batches: {snap.mqtt['refusal']}"
        problems.append(
            f"outbox not draining: {snap.outbox_batches} batches, oldest {oldest_age:.0f} s, {why}"
        )
    details: dict[str, object] = {
        "status": "failing" if problems else "degraded" if warnings else "ok",
        "problems": problems,
        "warnings": warnings,
        **snap.identity,
        "uptime_s": round(snap.now - snap.started, 3),
        "mqtt": snap.mqtt,
        "outbox": {
            "batches": snap.outbox_batches,
            "bytes": snap.outbox_bytes,
            "oldest_age_s": None if oldest_age is None else round(oldest_age, 3),
            "dropped": snap.dropped,
        },
        "devices": devices,
    }
    return not problems, details


class HealthServer:
    """Serves ``GET /healthz`` (JSON, 200 or 503) and ``GET /metrics`` (Prometheus text) on one address."""

    def __init__(
        self,
        host: str,
        port: int,
        check: Callable[[], tuple[bool, dict[str, object]]],
        metrics: Callable[[], str],
    ) -> None:
        self.host, self.port = host, port
        self._check, self._metrics = check, metrics
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind and serve; raises OSError if the address is taken. ``port`` 0 picks a free port."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health endpoint listening", url=f"http://{self.host}:{self.port}/healthz")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            for _ in range(_MAX_HEADER_LINES):
                if await asyncio.wait_for(reader.readline(), 5) in (b"\r\n", b"\n", b""):
                    break
            method, target = [*request.decode("latin-1").split(), "", ""][:2]
            status, ctype, body = self._respond(method, target.split("?", 1)[0])
            head = (
                f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError):
            pass  # a client that stalls or hangs up gets nothing
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _respond(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET /healthz or /metrics\n"
        if path == "/healthz":
            healthy, details = self._check()
            body = json.dumps(details, indent=1).encode() + b"\n"
            return ("200 OK" if healthy else "503 Service Unavailable"), "application/json", body
        if path == "/metrics":
            return "200 OK", "text/plain; version=0.0.4; charset=utf-8", self._metrics().encode()
        return "404 Not Found", "text/plain", b"GET /healthz or /metrics\n"


def sd_notify(state: str) -> None:
    """Tell systemd (``Type=notify``) about ``READY=1``, ``RELOADING=1``, ``STOPPING=1`` or ``WATCHDOG=1``.

    A no-op outside systemd. Implemented on a datagram socket rather than with python-systemd, which would be
    one more compiled dependency on the gateway for one line of protocol.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd", state=state, error=str(exc))


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings if systemd's ``WatchdogSec`` is on (half of it), else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6
