"""Publish the outbox over MQTT (QoS 1), in seq order, deleting a batch only when the broker has PUBACKed it.

Threads: paho runs its network loop in its own thread (``loop_start``), reconnecting with backoff by itself.
Its callbacks only post events to a queue; one worker thread owns the in-flight table (MQTT message id → seq)
and is the only caller of ``publish()`` for data. This matters: paho calls ``on_publish`` while holding its
internal message lock, which ``publish()`` also takes, so a callback that waited on our own lock while another
thread held it inside ``publish()`` would deadlock. With one worker, a PUBACK can never be handled before the
publish that produced its message id has been recorded.

Delivery: at most ``max_inflight`` batches are unacknowledged at a time (fewer if an MQTT 5 broker announces a
smaller Receive Maximum). If the connection drops, paho keeps the unacknowledged QoS 1 messages and re-sends
them, in their original order, after it reconnects; the outbox still holds them too, so a process restart
replays them from disk. Duplicates are possible (at-least-once); the collector removes them by
(agent, epoch, seq). An MQTT 5 broker can refuse a batch in its PUBACK (e.g. "Not authorized"): the batch
stays in the outbox and is sent again after a backoff, one batch at a time until the broker accepts again (a
long refusal costs one batch per retry, not a window). Batches already in flight when the broker changes its
mind may be accepted before the refused one: across a refusal, order is not guaranteed, only delivery. MQTT
3.1.1 has no way to say no, so a broker that drops a 3.1.1 publish by ACL still acknowledges it.

Replay rate: publishing is paced by a token bucket of ``replay_rate`` batches per second (burst: one second's
worth; default 2000/s). Live traffic (one batch per ``batch_interval``) never feels it; a backlog after an
outage or a restart drains oldest first at that rate, and live batches queue behind it, so the wire stays in
seq order. What makes a replay fast is keeping the window full and the disk out of the way: the worker takes
every event that is waiting in one round, publishes the next batches first and then deletes all the
acknowledged ones in one SQLite transaction (one fsync per round, not per batch). Measured against a local
Mosquitto: thousands of batches/s (``benchmarks/outbox_replay.py``, docs/performance-agent.md).

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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import metrics, wire
from agent.mqtt_settings import MqttSection, make_client
from agent.outbox import Outbox
from agent.sources.reading import now_ms
from agent.tls import diagnose

log = structlog.get_logger("agent.publisher")

#: Longest wait before re-sending a batch an MQTT 5 broker refused, in seconds.
MAX_REFUSAL_BACKOFF_S = 60.0
#: Most events (mostly PUBACKs) the worker takes in one round: one outbox transaction and one pump each.
MAX_EVENTS_PER_ROUND = 1000


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
        replay_rate: float = 2000.0,
    ) -> None:
        self.settings = settings
        self.site, self.agent = site, agent
        self.outbox = outbox
        self.channels = channels
        self.connected = threading.Event()
        self.acked = 0
        self.last_ack: float | None = None  # Unix time of the last PUBACKed data batch
        self.last_error: str | None = None  # why the last connection attempt failed, in plain words
        self.refusal: str | None = None  # the reason while an MQTT 5 broker keeps refusing batches
        self._v5 = settings.protocol == "5"
        self._tls = settings.tls_context()  # also for naming why a connection failed (``diagnose``)
        self._failure_logged = False
        self._closing = False  # set by stop(): the disconnect that follows is ours
        self._events: queue.SimpleQueue[tuple[str, int, str | None]] = queue.SimpleQueue()
        # Touched by the worker thread only:
        self._inflight: dict[int, int] = {}  # MQTT mid → outbox seq
        self._done: list[int] = []  # seqs acknowledged this round, deleted from the outbox at its end
        self._last_sent = -1
        self._window = settings.max_inflight
        self._rate, self._burst = replay_rate, max(1.0, replay_rate)
        self._tokens, self._refilled = self._burst, time.monotonic()
        self._wake_at: float | None = None  # when the worker must pump again without an event
        self._hold_until = 0.0  # no data publishes before this (after a refusal)
        self._retry_from: int | None = None
        self._refusals = 0  # refusals in a row; while > 0, batches go one at a time
        self._stop_deadline: float | None = None  # set by stop(): finish in-flight acks, then exit
        self._data_topic = wire.data_topic(site, agent, settings.root)
        self._status_topic = wire.status_topic(site, agent, settings.root)
        self._json = self._json_properties(PacketTypes.PUBLISH)
        self._worker = threading.Thread(target=self._work, name="kilnwatch-publisher", daemon=True)
        self._client = self._make_client(client_id)

    def _json_properties(self, packet_type: int) -> Properties | None:
        """MQTT 5: say the payload is UTF-8 JSON. No message expiry: a batch must never expire at the broker
        while a collector's persistent session is offline."""
        if not self._v5:
            return None
        props = Properties(packet_type)
        props.PayloadFormatIndicator = 1
        props.ContentType = "application/json"
        return props

    def _make_client(self, client_id: str) -> mqtt.Client:
        client = make_client(self.settings, client_id)  # protocol, login and TLS as the collector's
        client.max_inflight_messages_set(self.settings.max_inflight)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.will_set(
            self._status_topic,
            self._status("offline"),
            qos=1,
            retain=True,
            properties=self._json_properties(PacketTypes.WILLMESSAGE),
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        return client

    def start(self) -> None:
        self._worker.start()
        # A clean session (MQTT 5: clean start, session expiry 0): the agent subscribes to nothing, and its
        # unacknowledged batches live in the outbox, not in a broker session.
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive,
            clean_start=True if self._v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        )
        self._client.loop_start()

    def notify(self) -> None:
        """A batch was appended to the outbox: publish it if the window and the rate allow."""
        self._events.put(("pump", 0, None))

    def stop(self, drain_timeout: float = 2.0, final: bool = True) -> None:
        """Stop publishing and disconnect, waiting up to ``drain_timeout`` s for acknowledgements.

        ``final`` (shutdown): wait for the whole outbox to empty, then publish ``offline``. Otherwise (a
        config reload, with a new publisher to follow): wait only for the batches in flight, and leave the
        retained status ``online``. Whatever is not acknowledged stays in the outbox for the next publisher.
        """
        deadline = time.monotonic() + drain_timeout
        while final and self.connected.is_set() and len(self.outbox) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop_deadline = deadline
        self._events.put(("stop", 0, None))
        self._worker.join()
        if final and self.connected.is_set():
            info = self._client.publish(
                self._status_topic, self._status("offline"), qos=1, retain=True, properties=self._json
            )
            try:
                info.wait_for_publish(timeout=max(0.5, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                log.warning("offline status not confirmed", error=str(exc))
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()
        metrics.CONNECTED.set(0)
        log.info("publisher stopped", pending=len(self.outbox), final=final)

    def status(self) -> dict[str, object]:
        """What /healthz shows about the broker link."""
        return {
            "connected": self.connected.is_set(),
            "host": self.settings.host,
            "port": self.settings.port,
            "protocol": self.settings.protocol,
            "tls": self.settings.tls,
            "acked": self.acked,
            "last_ack_age_s": None if self.last_ack is None else round(time.time() - self.last_ack, 3),
            "last_error": self.last_error,
            "refusal": self.refusal,
        }

    # paho's network thread: only post events (and log connection trouble once per outage).

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: mqtt.ReasonCode, props: object
    ) -> None:
        if reason.is_failure:
            self.last_error = f"the broker refused the connection: {reason}"
            if not self._failure_logged:
                log.warning(
                    "broker refused connection",
                    reason=str(reason),
                    fix="check mqtt.username / mqtt.password and the broker's ACL",
                )
                self._failure_logged = True
            return
        receive_max = getattr(props, "ReceiveMaximum", None) if self._v5 else None
        self._window = min(self.settings.max_inflight, receive_max or self.settings.max_inflight)
        self._failure_logged = False
        self.last_error = None
        self.connected.set()
        metrics.CONNECTED.set(1)
        metrics.CONNECTS.inc()
        self._events.put(("connected", 0, None))

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._connection_failed()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        if self._closing:
            return
        if self.connected.is_set():
            log.warning("broker connection lost", reason=str(reason))
            self.connected.clear()
            metrics.CONNECTED.set(0)
        else:  # dropped before CONNACK: e.g. the broker rejected our certificate after the TLS handshake
            self._connection_failed()

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason: mqtt.ReasonCode, props: object
    ) -> None:
        self._events.put(("acked", mid, str(reason) if reason.is_failure else None))

    def _connection_failed(self) -> None:
        """Once per outage, find out why in a side thread (paho's thread must not block) and log it."""
        if self._failure_logged:
            return
        self._failure_logged = True
        threading.Thread(target=self._explain_failure, name="kilnwatch-mqtt-diagnose", daemon=True).start()

    def _explain_failure(self) -> None:
        reason = diagnose(self.settings.host, self.settings.port, self._tls)
        if not self.connected.is_set():  # paho may have got through while we looked
            self.last_error = reason
        log.warning(
            "cannot connect to broker, retrying",
            host=self.settings.host,
            port=self.settings.port,
            reason=reason,
            pending=len(self.outbox),
        )

    # The worker thread: owns the in-flight table and publishes data.

    def _work(self) -> None:
        while True:
            timeout = None if self._wake_at is None else max(0.0, self._wake_at - time.monotonic())
            try:
                events = [self._events.get(timeout=timeout)]
            except queue.Empty:
                events = [("tick", 0, None)]
            # Take everything that is already waiting: during a replay that is many PUBACKs, deleted from the
            # outbox in one transaction and answered with one pump, instead of one commit and one query each.
            while len(events) < MAX_EVENTS_PER_ROUND:
                try:
                    events.append(self._events.get_nowait())
                except queue.Empty:
                    break
            try:
                try:
                    self._handle(events)
                    if self._stop_deadline is not None:
                        idle = not self._inflight or not self.connected.is_set()
                        if idle or time.monotonic() >= self._stop_deadline:
                            return
                        self._wake_at = min(self._stop_deadline, time.monotonic() + 0.05)
                        continue
                    # Publish the next batches before deleting the acknowledged ones: the commit's fsync then
                    # overlaps their round trip to the broker instead of stalling the window.
                    self._pump()
                finally:
                    self._forget()
            except Exception:  # the worker must survive anything (e.g. a full disk)
                log.exception("publisher worker error", events=sorted({kind for kind, _, _ in events}))

    def _handle(self, events: list[tuple[str, int, str | None]]) -> None:
        """Apply a round of events in arrival order; acknowledged seqs are collected for ``_forget``."""
        for kind, value, reason in events:
            if kind == "connected":
                self._announce()
            elif kind == "acked":
                self._acked(value, reason)

    def _acked(self, mid: int, refused: str | None) -> None:
        seq = self._inflight.pop(mid, None)
        if seq is None:  # status and birth messages
            return
        if refused is not None:
            self._refused(seq, refused)
            return
        self._done.append(seq)
        if self.refusal is not None:
            log.info("broker accepts batches again", seq=seq)
            self.refusal = None
        self._refusals = 0

    def _forget(self) -> None:
        """Delete this round's acknowledged batches from the outbox in one transaction, then count them.

        If that fails (a full disk), they stay in the outbox and are sent again by the next publisher or
        after a restart: a duplicate, which at-least-once allows, never a loss.
        """
        done, self._done = self._done, []
        if not done:
            return
        self.outbox.ack_many(done)
        self.acked += len(done)
        self.last_ack = time.time()
        metrics.ACKED.inc(len(done))
        metrics.LAST_ACK.set(self.last_ack)

    def _refused(self, seq: int, reason: str) -> None:
        """An MQTT 5 broker said no: keep the batch, pause, then send again from it (order kept)."""
        metrics.REFUSED.inc(reason=reason)
        self._refusals += 1
        backoff = min(2.0 ** (self._refusals - 1), MAX_REFUSAL_BACKOFF_S)
        self._hold_until = time.monotonic() + backoff
        self._retry_from = seq if self._retry_from is None else min(self._retry_from, seq)
        if self.refusal != reason:
            log.error(
                "broker refused a batch; it stays in the outbox and is retried",
                seq=seq,
                reason=reason,
                topic=self._data_topic,
                fix="allow this client to publish to the topic (broker ACL) or fix the broker's limits",
            )
        self.refusal = reason

    def _announce(self) -> None:
        log.info(
            "connected to broker",
            host=self.settings.host,
            port=self.settings.port,
            protocol=self.settings.protocol,
            tls=self.settings.tls,
            pending=len(self.outbox),
        )
        t_ms = now_ms()
        status = self._status("online", t_ms)
        self._client.publish(self._status_topic, status, qos=1, retain=True, properties=self._json)
        birth = wire.encode_birth(self.site, self.agent, self.outbox.epoch, t_ms, self.channels)
        self._client.publish(
            wire.birth_topic(self.site, self.agent, self.settings.root),
            birth,
            qos=1,
            retain=True,
            properties=self._json,
        )

    def _pump(self) -> None:
        """Publish what the in-flight window and the token bucket allow, oldest first."""
        self._wake_at = None
        if not self.connected.is_set():
            return
        now = time.monotonic()
        if now < self._hold_until:
            self._wake_at = self._hold_until
            return
        if self._retry_from is not None:  # re-send from the refused batch on, in order
            self._last_sent = min(self._last_sent, self._retry_from - 1)
            self._retry_from = None
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        room = min(self._window - len(self._inflight), int(self._tokens))
        if self._refusals:  # after a refusal, probe with one batch at a time until one is accepted
            room = min(room, 0 if self._inflight else 1)
        if room <= 0:
            if self._tokens < 1:
                self._wake_at = now + (1 - self._tokens) / self._rate
            return
        entries = self.outbox.pending(room, after=self._last_sent)
        for entry in entries:
            info = self._client.publish(self._data_topic, entry.payload, qos=1, properties=self._json)
            # paho keeps every QoS 1 message (even when the link just dropped) and re-sends it on reconnect.
            self._inflight[info.mid] = entry.seq
            self._last_sent = entry.seq
            self._tokens -= 1
        metrics.PUBLISHED.inc(len(entries))
        if len(entries) == room and self._tokens < 1:  # there may be more: come back when a token is due
            self._wake_at = now + (1 - self._tokens) / self._rate

    def _status(self, state: str, t_ms: int | None = None) -> bytes:
        return wire.encode_status(
            self.site, self.agent, state, self.outbox.epoch, now_ms() if t_ms is None else t_ms
        )
