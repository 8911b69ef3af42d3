"""MQTT ingest: a persistent QoS 1 session, messages applied in groups, each acknowledged after its commit.

paho's ``manual_ack`` holds every PUBACK until the group holding the message has been applied (or the
message dead-lettered), so the broker redelivers whatever a crashed collector had not finished. paho's
network thread only queues messages; one worker thread takes what has arrived — up to
``group_max_messages``, waiting at most ``group_window_ms`` after the first — and applies it in one ledger
transaction (group commit: one fsync for up to a thousand messages instead of one each).

A group that fails on the ledger (PostgreSQL restarting, a full disk) is retried with backoff, unacknowledged,
until it applies; it is never dropped. On stop, the worker finishes what was received before the client
disconnects, so SIGTERM loses nothing and leaves nothing half-applied.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import structlog

from agent import wire
from agent.mqtt_settings import connect_options, make_client
from agent.tls import diagnose
from collector.config import CollectorConfig
from collector.ingest.apply import GroupResult
from collector.ingest.handle import Ingest, Message
from collector.ledger.sql import UNAVAILABLE

log = structlog.get_logger("collector.mqtt")

#: Seconds between retries of a group the ledger refused, growing to the cap.
RETRY_FIRST_S, RETRY_CAP_S = 0.5, 10.0


class MqttIngest:
    """The MQTT side: subscribe to every served site's data, births and status; apply them in groups."""

    def __init__(
        self,
        cfg: CollectorConfig,
        ingest: Ingest,
        on_group: Callable[[int, GroupResult, float, float], None] | None = None,
    ) -> None:
        self.cfg = cfg.mqtt
        self.group_max = cfg.collector.group_max_messages
        self.window_s = cfg.collector.group_window_ms / 1000.0
        self.ingest = ingest
        self.on_group = on_group  # (messages, result, apply seconds, oldest message's receive time)
        #: Set once the broker has acknowledged our subscriptions: from then on nothing published is missed.
        self.ready = threading.Event()
        self.connected = threading.Event()
        self.disconnected_since: float | None = time.monotonic()
        self.reconnects = 0
        self._sub_mid: int | None = None
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._stop_now = threading.Event()
        self._worker = threading.Thread(target=self._work, name="collector-ingest", daemon=True)
        # The agent's [mqtt] section and client helper: protocol, username/password, TLS and mutual TLS.
        # Persistent: the broker keeps our QoS 1 messages while we are away; manual_ack: PUBACK only once
        # the ledger has the group.
        self.client = make_client(self.cfg, self.cfg.client_id, persistent=True, manual_ack=True)
        self._tls = self.cfg.tls_context()
        self._failure_logged = False
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _filters(self) -> list[str]:
        prefix = f"$share/{self.cfg.shared_group}/" if self.cfg.shared_group else ""
        return [
            prefix + wire.subscription(k, site, self.cfg.root)
            for site in sorted(self.ingest.sites)
            for k in ("data", "birth", "status")
        ]

    def resubscribe(self) -> None:
        """After a site-model reload: subscribe to the sites now served (unsubscribing those dropped is not
        needed: their messages are rejected as unknown sites and dead-lettered, visibly)."""
        if self.connected.is_set():
            _, self._sub_mid = self.client.subscribe([(f, 1) for f in self._filters()])

    # -- paho callbacks (network thread: never block here) --------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("mqtt.connect_failed", reason=str(reason), host=self.cfg.host, port=self.cfg.port)
            return
        if self._failure_logged or self.reconnects:
            log.info("mqtt.reconnected", host=self.cfg.host, port=self.cfg.port)
        self._failure_logged = False
        self.reconnects += 1
        self.connected.set()
        self.disconnected_since = None
        self.ingest.stats.broker_connected(True)
        _, self._sub_mid = client.subscribe([(f, 1) for f in self._filters()])
        log.info("mqtt.connected", host=self.cfg.host, port=self.cfg.port, sites=len(self.ingest.sites))

    def _on_subscribe(self, _c: mqtt.Client, _u: object, mid: int, reasons: list, _p: object) -> None:
        if mid == self._sub_mid:
            if any(getattr(r, "is_failure", False) for r in reasons):
                log.error("mqtt.subscribe_refused", reasons=[str(r) for r in reasons])
                return
            self.ready.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        self.ready.clear()
        self.connected.clear()
        self.disconnected_since = time.monotonic()
        self.ingest.stats.broker_connected(False)
        failed = getattr(reason, "is_failure", False)
        (log.warning if failed else log.info)("mqtt.disconnected", reason=str(reason))

    def _on_connect_fail(self, _c: mqtt.Client, _u: object) -> None:
        """Once per outage, find out why in a side thread (paho's thread must not block) and log it."""
        if not self._failure_logged:
            self._failure_logged = True
            threading.Thread(
                target=self._explain_failure, name="collector-mqtt-diagnose", daemon=True
            ).start()

    def _explain_failure(self) -> None:
        reason = diagnose(self.cfg.host, self.cfg.port, self._tls)
        log.warning("mqtt.cannot_connect", host=self.cfg.host, port=self.cfg.port, reason=reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(Message(msg.topic, msg.payload, time.time(), msg.mid, msg.qos))

    # -- the worker ----------------------------------------------------------------------------------------
    def _take_group(self) -> list[Message]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        group = [first]
        deadline = time.monotonic() + self.window_s
        while len(group) < self.group_max:
            try:
                group.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                break
            try:
                group.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return group

    def _work(self) -> None:
        while True:
            group = self._take_group()
            if not group:
                if self._stop.is_set():
                    return
                continue
            self._apply(group)

    def _apply(self, group: list[Message]) -> None:
        delay = RETRY_FIRST_S
        self.ingest.stats.group_started(group[0].received_s)
        while True:
            started = time.perf_counter()
            try:
                result = self.ingest.handle_group(group)
                break
            except UNAVAILABLE as exc:
                # Nothing of the group is applied or acknowledged: retry until the ledger takes it.
                log.error("ledger.unavailable", messages=len(group), error=str(exc), retry_in_s=delay)
                if self._stop_now.wait(delay):
                    return
                delay = min(delay * 2, RETRY_CAP_S)
            except Exception:
                # A defect, not an outage: find the message that triggers it, keep it as a dead letter with
                # the traceback logged, and apply the rest.
                log.exception("group.failed", messages=len(group))
                if len(group) > 1:
                    half = len(group) // 2
                    self._apply(group[:half])
                    self._apply(group[half:])
                    return
                self.ingest.reject_many(
                    [(group[0], "internal_error", "the collector failed on it: see its log")]
                )
                result = GroupResult()
                break
        apply_s = time.perf_counter() - started
        for m in group:
            if m.qos:
                self.client.ack(m.mid, m.qos)
        self.ingest.stats.observe_group(len(group), result.readings, apply_s, group[0].received_s)
        if self.on_group is not None:
            self.on_group(len(group), result, apply_s, group[0].received_s)

    # -- life cycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._worker.start()
        options = connect_options(self.cfg, persistent=True, receive_maximum=self._receive_maximum())
        self.client.connect_async(self.cfg.host, self.cfg.port, **options)
        self.client.loop_start()

    def _receive_maximum(self) -> int | None:
        """Room for a group being applied and the next one arriving (MQTT 5 only; 65535 at most)."""
        return min(2 * self.group_max, 65535) if self.cfg.protocol == "5" else None

    def stop(self, timeout: float = 30.0) -> None:
        """Apply and acknowledge what was received, then disconnect; what is still unapplied after
        ``timeout`` (a ledger that stays down) is left unacknowledged for the broker to redeliver."""
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join(timeout)
            if self._worker.is_alive():
                self._stop_now.set()
                self._worker.join(5.0)
        self.client.disconnect()
        self.client.loop_stop()
