"""Publish the outbox over MQTT (QoS 1), in seq order, deleting a batch only when the broker has PUBACKed it.

Threads: paho runs its network loop in its own thread (``loop_start``), reconnecting with backoff by itself.
Its callbacks only post events to a queue; one worker thread owns the in-flight table (MQTT message id → seq)
and is the only caller of ``publish()`` for data. This matters: paho calls ``on_publish`` while holding its
internal message lock, which ``publish()`` also takes, so a callback that waited on our own lock while another
thread held it inside ``publish()`` would deadlock. With one worker, a PUBACK can never be handled before the
publish that produced its message id has been recorded.

Delivery: at most ``max_inflight`` batches are unacknowledged at a time. If the connection drops, paho keeps
the unacknowledged QoS 1 messages and re-sends them, in their original order, after it reconnects; the outbox
still holds them too, so a process restart replays them from disk. Duplicates are possible (at-least-once);
the collector removes them by (agent, epoch, seq).

On every connect the agent publishes a retained ``online`` status and a retained birth message (channel
metadata); the broker publishes the retained ``offline`` last will if the agent vanishes, and ``stop()``
publishes ``offline`` itself on a clean shutdown (a clean disconnect suppresses the will).
"""

from __future__ import annotations

import queue
import threading
import time

import paho.mqtt.client as mqtt
import structlog

from agent import wire
from agent.config import MqttSection
from agent.outbox import Outbox
from agent.sources.reading import now_ms

log = structlog.get_logger("agent.publisher")


class Publisher:
    """Drains ``outbox`` to the broker; call ``notify()`` after each append, ``stop()`` once at the end."""

    def __init__(
        self,
        settings: MqttSection,
        client_id: str,
        site: str,
        agent: str,
        outbox: Outbox,
        channels: list[dict[str, str]],
    ) -> None:
        self.settings = settings
        self.site, self.agent = site, agent
        self.outbox = outbox
        self.channels = channels
        self.connected = threading.Event()
        self.acked = 0
        self._unreachable_logged = False
        self._events: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self._inflight: dict[int, int] = {}  # MQTT mid → outbox seq; touched by the worker thread only
        self._last_sent = -1
        self._data_topic = wire.data_topic(site, agent, settings.root)
        self._status_topic = wire.status_topic(site, agent, settings.root)
        self._worker = threading.Thread(target=self._work, name="kilnwatch-publisher", daemon=True)
        self._client = self._make_client(client_id)

    def _make_client(self, client_id: str) -> mqtt.Client:
        v5 = self.settings.protocol == "5"
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
        )
        if self.settings.username is not None:
            client.username_pw_set(self.settings.username, self.settings.password)
        client.max_inflight_messages_set(self.settings.max_inflight)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.will_set(self._status_topic, self._status("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        return client

    def start(self) -> None:
        self._worker.start()
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        self._client.loop_start()

    def notify(self) -> None:
        """A batch was appended to the outbox: publish it if the window allows."""
        self._events.put(("pump", 0))

    def stop(self, drain_timeout: float = 2.0) -> None:
        """Wait up to ``drain_timeout`` s for the outbox to empty, publish ``offline``, disconnect."""
        deadline = time.monotonic() + drain_timeout
        while self.connected.is_set() and len(self.outbox) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._events.put(("stop", 0))
        self._worker.join()
        if self.connected.is_set():
            info = self._client.publish(self._status_topic, self._status("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.5, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                log.warning("offline status not confirmed", error=str(exc))
        self._client.disconnect()
        self._client.loop_stop()
        log.info("publisher stopped", pending=len(self.outbox))

    # paho's network thread: only post events.

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused connection", reason=str(reason))
            return
        self._unreachable_logged = False
        self.connected.set()
        self._events.put(("connected", 0))

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        if not self._unreachable_logged:  # once per outage; paho keeps retrying with backoff
            log.warning("broker unreachable, retrying", host=self.settings.host, port=self.settings.port)
            self._unreachable_logged = True

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if self.connected.is_set():
            log.warning("broker connection lost", reason=str(reason), in_flight=len(self._inflight))
        self.connected.clear()

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object
    ) -> None:
        self._events.put(("acked", mid))

    # The worker thread: owns the in-flight table and publishes data.

    def _work(self) -> None:
        while True:
            kind, mid = self._events.get()
            if kind == "stop":
                return
            try:
                if kind == "connected":
                    self._announce()
                elif kind == "acked":
                    seq = self._inflight.pop(mid, None)
                    if seq is not None:
                        self.outbox.ack(seq)
                        self.acked += 1
                self._pump()
            except Exception:  # the worker must survive anything (e.g. a full disk)
                log.exception("publisher worker error", event=kind)

    def _announce(self) -> None:
        log.info(
            "connected to broker", host=self.settings.host, port=self.settings.port, pending=len(self.outbox)
        )
        t_ms = now_ms()
        self._client.publish(self._status_topic, self._status("online", t_ms), qos=1, retain=True)
        birth = wire.encode_birth(self.site, self.agent, self.outbox.epoch, t_ms, self.channels)
        self._client.publish(
            wire.birth_topic(self.site, self.agent, self.settings.root), birth, qos=1, retain=True
        )

    def _pump(self) -> None:
        if not self.connected.is_set():
            return
        room = self.settings.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for entry in self.outbox.pending(room, after=self._last_sent):
            info = self._client.publish(self._data_topic, entry.payload, qos=1)
            # paho keeps every QoS 1 message (even when the link just dropped) and re-sends it on reconnect.
            self._inflight[info.mid] = entry.seq
            self._last_sent = entry.seq

    def _status(self, state: str, t_ms: int | None = None) -> bytes:
        return wire.encode_status(
            self.site, self.agent, state, self.outbox.epoch, now_ms() if t_ms is None else t_ms
        )
