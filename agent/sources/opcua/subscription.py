"""Subscribe mode: one subscription per session, one monitored item per point, and a no-data watchdog.

The watchdog is this module's reason to exist beside asyncua's own subscription code. A subscription can die
without the TCP connection dropping (a PLC download or a server that drops sessions when it is busy), and then
the client just hears nothing: peers' trackers have many reports of agents that sat silent until restarted.
The server must send at least a keep-alive every few publishing intervals, so here silence longer than
``watchdog_s`` (or a Bad status-change notification) raises, and the poller tears the session down and builds
a new one. asyncua's own stale-subscription watchdog does not see this subscription, so two watchdogs do not
fight over it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from asyncua import ua
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent, Subscription

from agent.sources.opcua.config import OpcuaPoint, OpcuaServer
from agent.sources.opcua.connection import Session
from agent.sources.opcua.quality import missing, to_reading
from agent.sources.reading import Sink, now_ms

log = structlog.get_logger("agent.opcua")

#: Notifications buffered between asyncua's publish loop and this consumer (which only appends to a list).
QUEUE_MAX = 100_000


class WatchdogExpired(Exception):
    """No notification and no keep-alive within the watchdog time: the subscription is presumed dead."""


def keepalive_count(server: OpcuaServer) -> int:
    """Publishing intervals between keep-alives: about three keep-alives per watchdog period."""
    return max(1, int(server.effective_watchdog_s / 3 / server.publishing_interval))


def subscription_parameters(server: OpcuaServer) -> ua.CreateSubscriptionParameters:
    keepalive = keepalive_count(server)
    return ua.CreateSubscriptionParameters(
        RequestedPublishingInterval=server.publishing_interval * 1000,
        # The server drops the subscription after this many intervals without a Publish request from us.
        RequestedLifetimeCount=keepalive * 10,
        RequestedMaxKeepAliveCount=keepalive,
        MaxNotificationsPerPublish=0,  # no limit
        PublishingEnabled=True,
        Priority=0,
    )


def monitored_item(
    point: OpcuaPoint, server: OpcuaServer, handle: int, node_id: ua.NodeId
) -> ua.MonitoredItemCreateRequest:
    """The point's monitoring request; a point's own setting wins over the server's."""
    sampling = point.sampling_interval
    if sampling is None:
        sampling = (
            server.publishing_interval if server.sampling_interval is None else server.sampling_interval
        )
    deadband = server.deadband if point.deadband is None else point.deadband
    params = ua.MonitoringParameters(
        ClientHandle=handle,
        SamplingInterval=sampling * 1000,
        QueueSize=point.queue_size or server.queue_size,
        DiscardOldest=True,
    )
    if deadband > 0:
        kind = point.deadband_type or server.deadband_type
        params.Filter = ua.DataChangeFilter(
            Trigger=ua.DataChangeTrigger.StatusValue,
            DeadbandType=ua.DeadbandType.Percent if kind == "percent" else ua.DeadbandType.Absolute,
            DeadbandValue=deadband,
        )
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=params,
    )


class Subscriber:
    """Runs ``points`` as monitored items of one subscription until the session fails, then raises."""

    def __init__(
        self,
        server: OpcuaServer,
        points: list[OpcuaPoint],
        sink: Sink,
        on_data: Callable[[], None] | None = None,
    ) -> None:
        """``on_data`` is called after each value the server sends (the poller resets its backoff on the
        first one)."""
        self.server = server
        self._sink = sink
        self._on_data = on_data
        self._by_handle = {handle: point for handle, point in enumerate(points, start=1)}

    async def run(self, session: Session) -> None:
        sub = Subscription(
            session.client.uaclient.session,
            subscription_parameters(self.server),
            queue_maxsize=QUEUE_MAX,
            overflow=OverflowPolicy.WARN,
        )
        revised = await sub.init()
        watchdog = self._watchdog(revised)
        pending = dict(self._by_handle)  # handle → point not (yet) monitored
        await self._monitor(session, sub, pending)
        started = retried = time.monotonic()
        check = min(1.0, watchdog / 4)
        while True:
            event = await sub.next_event(timeout=check)
            if session.lost.is_set():
                raise ConnectionError("connection to the server lost")
            if isinstance(event, DataChangeEvent):
                self._deliver(event)
            elif isinstance(event, StatusChangeEvent) and not event.notification.Status.is_good():
                raise ConnectionError(f"subscription ended by the server: {event.notification.Status.name}")
            now = time.monotonic()
            idle = now - max(started, sub.last_publish_at or started)
            if idle > watchdog:
                raise WatchdogExpired(
                    f"no notification or keep-alive for {idle:.1f} s (watchdog {watchdog:g} s)"
                )
            if pending and now - retried > watchdog:
                retried = now
                await self._monitor(session, sub, pending)

    def _watchdog(self, revised: ua.CreateSubscriptionResult) -> float:
        """The configured watchdog, stretched if the server revised the keep-alive period beyond it."""
        keepalive_s = revised.RevisedMaxKeepAliveCount * revised.RevisedPublishingInterval / 1000
        watchdog = max(self.server.effective_watchdog_s, 1.5 * keepalive_s)
        if watchdog > self.server.effective_watchdog_s:
            log.warning(
                "server keeps a longer keep-alive period; watchdog stretched",
                server=self.server.name,
                keepalive_s=keepalive_s,
                watchdog_s=watchdog,
            )
        return watchdog

    async def _monitor(self, session: Session, sub: Subscription, pending: dict[int, OpcuaPoint]) -> None:
        """Create monitored items for ``pending`` points; those the server refuses stay pending, reported
        missing, and are tried again every watchdog period (a PLC download may bring the node back)."""
        first = len(pending) == len(self._by_handle)  # log refusals once per session, not at every retry
        requests, refused = [], {}
        for handle, point in pending.items():
            node_id = session.node_id(point.node)
            if node_id is None:
                refused[point.name] = "namespace not on the server"
            else:
                requests.append(monitored_item(point, self.server, handle, node_id))
        results = await sub.create_monitored_items(requests) if requests else []
        for request, result in zip(requests, results, strict=True):
            handle = request.RequestedParameters.ClientHandle
            if isinstance(result, ua.StatusCode):
                refused[pending[handle].name] = result.name
            else:
                del pending[handle]
        if refused and first:
            log.warning("nodes not monitored", server=self.server.name, nodes=refused)
        if pending:
            self._sink(missing([p.name for p in pending.values()], now_ms()))

    def _deliver(self, event: DataChangeEvent) -> None:
        point = self._by_handle.get(event.data.monitored_item.ClientHandle)
        value = event.data.monitored_item.Value
        if point is None or value is None:
            return
        self._sink([to_reading(point.name, point.scale, value, now_ms(), self.server.timestamp)])
        if self._on_data is not None:
            self._on_data()
