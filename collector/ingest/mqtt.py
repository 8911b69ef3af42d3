"""MQTT ingest: a persistent QoS 1 session, and an acknowledgement only after the ledger has the batch.

paho's ``manual_ack`` holds the PUBACK until :meth:`Ingest.handle` has applied (or dead-lettered) the
message, so the broker redelivers whatever a crashed collector had not finished. Bad input never stops
the collector: it is counted by reason, logged and kept in the ledger's dead letters.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt
import structlog

from agent import wire
from agent.mqtt_settings import connect_options, make_client
from agent.tls import diagnose
from collector.config import CollectorConfig
from collector.ingest.apply import ApplyResult, apply_batch
from collector.ledger.sqlite import Ledger
from collector.site import Site

log = structlog.get_logger("collector.ingest.mqtt")


class Ingest:
    """Validates and applies messages. ``on_accepted`` sees every valid batch before it is applied (the
    sinks' raw readings), ``on_applied`` every newly applied one (which KPI periods changed)."""

    def __init__(
        self,
        site: Site,
        ledger: Ledger,
        *,
        max_future_s: float = 300.0,
        max_payload_bytes: int = wire.MAX_PAYLOAD_BYTES,
        on_accepted: Callable[[wire.Batch], None] | None = None,
        on_applied: Callable[[wire.Batch, ApplyResult], None] | None = None,
    ) -> None:
        self.site = site
        self.ledger = ledger
        self.max_future_ms = int(max_future_s * 1000)
        self.max_payload_bytes = max_payload_bytes
        self.on_accepted = on_accepted
        self.on_applied = on_applied
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handle(self, topic: str, payload: bytes) -> None:
        """Process one message completely. Never raises for bad input: rejects are dead-lettered."""
        try:
            site, agent, kind = wire.parse_topic(topic)
            if site != self.site.site.id:
                raise wire.WireError(
                    "site", f"topic site {site!r} is not this collector's {self.site.site.id!r}"
                )
            if agent not in self.site.agents:
                raise wire.WireError("unknown_agent", f"agent {agent!r} is not in the site model")
            if kind == "data":
                self._data(site, agent, payload)
            elif kind == "birth":
                self.ledger.put_birth(agent, site, wire.decode_json_message(payload))
                self._count("births")
            else:
                doc = wire.decode_json_message(payload)
                log.info("agent.status", agent=agent, state=doc.get("state"))
                self._count("status")
        except wire.WireError as exc:
            self.reject(topic, payload, exc.reason, exc.detail)

    def _data(self, site: str, agent: str, payload: bytes) -> None:
        batch = wire.decode_batch(payload, self.max_payload_bytes)
        if batch.site != site or batch.agent != agent:
            raise wire.WireError(
                "spoofed", f"payload says {batch.site}/{batch.agent}, topic says {site}/{agent}"
            )
        limit = int(time.time() * 1000) + self.max_future_ms
        future = [t for t in batch.t_ms if t > limit]
        if future:
            raise wire.WireError(
                "future_timestamp", f"{len(future)} reading(s) later than now + max_future_s"
            )
        if self.on_accepted is not None:
            # Before the ledger commit: a crash in between redelivers the batch, which the ledger then
            # skips as a duplicate, so the raw readings must already be queued for the sinks (writes are
            # idempotent, a second copy overwrites the first).
            self.on_accepted(batch)
        result = apply_batch(self.ledger, self.site, batch)
        if result.duplicate:
            self._count("duplicates")
            return
        self._count("batches")
        self._count("readings", result.readings)
        for name in ("unmapped", "late", "rollovers", "resets", "flagged", "exchanges"):
            if value := getattr(result, name):
                self._count(name, value)
                log.warning(f"readings.{name}", agent=agent, seq=batch.seq, count=value)
        if self.on_applied is not None:
            self.on_applied(batch, result)

    def reject(self, topic: str, payload: bytes, reason: str, detail: str) -> None:
        self._count(f"rejected.{reason}")
        log.warning("message.rejected", topic=topic, reason=reason, detail=detail[:300], size=len(payload))
        self.ledger.dead_letter(topic, reason, detail, payload)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n


class MqttIngest:
    """The MQTT side: subscribe to the site's data, births and status; hand each message to Ingest."""

    def __init__(self, cfg: CollectorConfig, ingest: Ingest) -> None:
        self.cfg = cfg.mqtt
        self.ingest = ingest
        #: Set once the broker has acknowledged our subscriptions: from then on nothing published is missed.
        self.ready = threading.Event()
        self._sub_mid: int | None = None
        # The agent's [mqtt] section and client helper: protocol, username/password, TLS and mutual TLS.
        # Persistent: the broker keeps our QoS 1 messages while we are away (MQTT 5: the session never
        # expires); manual_ack: PUBACK only once the ledger has the batch.
        self.client = make_client(self.cfg, self.cfg.client_id, persistent=True, manual_ack=True)
        self._tls = self.cfg.tls_context()
        self._failure_logged = False
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _filters(self) -> list[str]:
        site = self.ingest.site.site.id
        prefix = f"$share/{self.cfg.shared_group}/" if self.cfg.shared_group else ""
        return [prefix + wire.subscription(k, site, self.cfg.root) for k in ("data", "birth", "status")]

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("mqtt.connect_failed", reason=str(reason))
            return
        self._failure_logged = False
        _, self._sub_mid = client.subscribe([(f, 1) for f in self._filters()])
        log.info("mqtt.connected", host=self.cfg.host, port=self.cfg.port, filters=self._filters())

    def _on_subscribe(self, _c: mqtt.Client, _u: object, mid: int, reasons: list, _p: object) -> None:
        if mid == self._sub_mid:
            if any(getattr(r, "is_failure", False) for r in reasons):
                log.error("mqtt.subscribe_refused", reasons=[str(r) for r in reasons])
                return
            self.ready.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        self.ready.clear()
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

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self.ingest.handle(msg.topic, msg.payload)
        except Exception:
            # Not acknowledged: the broker redelivers after reconnect. Logged with the traceback.
            log.exception("message.failed", topic=msg.topic)
            return
        client.ack(msg.mid, msg.qos)

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, **connect_options(self.cfg, persistent=True))
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
