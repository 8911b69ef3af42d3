"""The publisher against a real Mosquitto: exact payloads, retained status and birth, no loss in an outage."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import metrics, wire
from agent.mqtt_settings import MqttSection
from agent.outbox import Outbox
from agent.publisher import Publisher
from tests import servers
from tests.servers import Mosquitto

SITE, AGENT = "plant1", "gw1"
CHANNELS = [{"name": "kiln_kwh", "kind": "energy_total", "unit": "kWh", "device": "m1", "source": "modbus"}]


class Subscriber:
    """A persistent-session QoS 1 subscriber, as the collector will be, recording what arrives (and when)."""

    def __init__(
        self,
        port: int,
        protocol: str = "3.1.1",
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.messages: dict[str, list[bytes]] = {"data": [], "birth": [], "status": []}
        self.arrived: list[float] = []  # monotonic time of each data message
        self.properties: list[object] = []  # MQTT 5 properties of each data message
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        v5 = protocol == "5"
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="test-sub",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{wire.DEFAULT_ROOT}/v1/{SITE}/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        if v5:  # a persistent session, as MQTT 5 spells it
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            kind = msg.topic.rsplit("/", 1)[1]
            self.messages[kind].append(msg.payload)
            if kind == "data":
                self.arrived.append(time.monotonic())
                self.properties.append(msg.properties)

    def states(self) -> list[str]:
        with self.lock:
            return [json.loads(p)["state"] for p in self.messages["status"]]

    def data(self) -> list[bytes]:
        with self.lock:
            return list(self.messages["data"])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def batch_payload(seq: int, epoch: str) -> bytes:
    batch = wire.Batch(SITE, AGENT, epoch, seq)
    batch.add("kiln_kwh", 1_732_420_000_000 + seq, 81234.5 + seq, wire.Quality.GOOD)
    return wire.encode_batch(batch)


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def make_publisher(
    broker: Mosquitto, outbox: Outbox, window: int = 5, replay_rate: float = 20.0, **mqtt_keys: object
) -> Publisher:
    settings = MqttSection(host="127.0.0.1", port=broker.port, keepalive=5, max_inflight=window, **mqtt_keys)
    return Publisher(settings, "kilnwatch-gw1", SITE, AGENT, outbox, CHANNELS, replay_rate)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_every_batch_arrives_exactly_as_stored(protocol: str, broker: Mosquitto, tmp_path: Path) -> None:
    sub = Subscriber(broker.port, protocol)
    outbox = Outbox(tmp_path / "o.db")
    stored = [outbox.append(lambda s: batch_payload(s, outbox.epoch)) for _ in range(40)]
    expected = [batch_payload(s, outbox.epoch) for s in stored]  # built again, independently of the outbox
    publisher = make_publisher(broker, outbox, protocol=protocol)
    publisher.start()
    try:
        # The outbox empties a moment before the worker counts the last ack: wait for both.
        assert wait_until(lambda: len(sub.data()) >= 40 and len(outbox) == 0 and publisher.acked == 40, 20)
        assert sub.data() == expected
        assert publisher.acked == 40
        birth = json.loads(sub.messages["birth"][-1])
        assert (birth["agent"], birth["epoch"], birth["channels"]) == (AGENT, outbox.epoch, CHANNELS)
        assert json.loads(sub.messages["status"][-1])["state"] == "online"
        if protocol == "5":  # JSON says so; no message expiry, so a late collector still gets everything
            props = sub.properties[-1]
            assert (props.ContentType, props.PayloadFormatIndicator) == ("application/json", 1)
            assert not hasattr(props, "MessageExpiryInterval")
    finally:
        publisher.stop()
        assert wait_until(lambda: json.loads(sub.messages["status"][-1])["state"] == "offline", 5)
        sub.close()
        outbox.close()


def test_broker_outage_loses_nothing_and_keeps_order(broker: Mosquitto, tmp_path: Path) -> None:
    sub = Subscriber(broker.port)
    outbox = Outbox(tmp_path / "o.db")
    publisher = make_publisher(broker, outbox)
    publisher.start()
    produced: list[int] = []
    stop = threading.Event()

    def produce() -> None:  # the runner's role: one batch every 50 ms, whatever the broker does
        while not stop.is_set():
            produced.append(outbox.append(lambda s: batch_payload(s, outbox.epoch)))
            publisher.notify()
            time.sleep(0.05)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(1.0)
        broker.stop()
        time.sleep(3.0)
        during_outage = len(outbox)
        broker.restart()
        time.sleep(1.5)
        stop.set()
        producer.join()
        assert during_outage > 30  # batches kept piling up in the outbox while the broker was gone
        assert wait_until(lambda: len(outbox) == 0, 30), f"{len(outbox)} batches never acknowledged"
        assert wait_until(lambda: {json.loads(p)["seq"] for p in sub.data()} >= set(produced), 30)
    finally:
        stop.set()
        publisher.stop()
        sub.close()
        outbox.close()

    seqs = [json.loads(p)["seq"] for p in sub.data()]
    first_seen = list(
        dict.fromkeys(seqs)
    )  # at-least-once: re-sends may repeat a batch, never reorder new ones
    assert first_seen == produced == list(range(len(produced)))
    for p in sub.data():
        assert p == batch_payload(json.loads(p)["seq"], outbox.epoch)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_last_will_marks_a_vanished_agent_offline(protocol: str, broker: Mosquitto, tmp_path: Path) -> None:
    """The link dies without DISCONNECT: the broker publishes the retained will; the agent reconnects."""
    sub = Subscriber(broker.port, protocol)
    outbox = Outbox(tmp_path / "o.db")
    publisher = make_publisher(broker, outbox, protocol=protocol)
    publisher.start()
    try:
        assert wait_until(lambda: sub.states() == ["online"], 10)
        publisher._client.socket().shutdown(socket.SHUT_RDWR)  # as if the gateway lost power
        assert wait_until(lambda: sub.states()[:2] == ["online", "offline"], 10)
        assert wait_until(lambda: sub.states()[-1] == "online" and len(sub.states()) >= 3, 15)
        offline = json.loads(sub.messages["status"][1])
        assert (offline["agent"], offline["epoch"]) == (AGENT, outbox.epoch)
    finally:
        publisher.stop()
        sub.close()
        outbox.close()


def test_replay_is_rate_limited_in_order_while_live_batches_keep_coming(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """A 60-batch backlog at replay_rate 10/s takes ~5 s after the first second's burst, never less; batches
    appended meanwhile go out after it, in seq order."""
    sub = Subscriber(broker.port)
    outbox = Outbox(tmp_path / "o.db")
    for _ in range(60):
        outbox.append(lambda s: batch_payload(s, outbox.epoch))
    publisher = make_publisher(broker, outbox, window=20, replay_rate=10.0)
    publisher.start()
    try:
        for _ in range(6):  # live traffic at 2 batches/s during the replay
            time.sleep(0.5)
            outbox.append(lambda s: batch_payload(s, outbox.epoch))
            publisher.notify()
        assert wait_until(lambda: len(sub.data()) >= 66 and len(outbox) == 0, 30)
    finally:
        publisher.stop()
        sub.close()
        outbox.close()
    seqs = [json.loads(p)["seq"] for p in sub.data()]
    assert seqs == list(range(66))
    # After the burst (10 tokens), the other 56 batches are paced at 10/s: ≥ 5.6 s, minus timer slack.
    span = sub.arrived[-1] - sub.arrived[0]
    rate = (66 - 10) / span
    print(f"replay: 66 batches in {span:.2f} s, {rate:.1f} batches/s after the burst (limit 10)")
    assert 5.0 <= span <= 20.0, span


def test_username_password(tmp_path: Path) -> None:
    users = servers.password_file(tmp_path, {"gw1": "s3cret", "collector": "c0llect"})
    options = ["allow_anonymous false", f"password_file {users}"]
    with servers.mosquitto(tmp_path / "m", options=options) as broker:
        sub = Subscriber(broker.port, username="collector", password="c0llect")
        outbox = Outbox(tmp_path / "o.db")
        outbox.append(lambda s: batch_payload(s, outbox.epoch))
        wrong = make_publisher(broker, outbox, username="gw1", password="guess")
        wrong.start()
        try:
            assert wait_until(lambda: wrong.last_error is not None, 10)
            assert "refused the connection: Not authorized" in wrong.last_error
            assert not wrong.connected.is_set() and len(outbox) == 1
        finally:
            wrong.stop(drain_timeout=0.1)
        right = make_publisher(broker, outbox, username="gw1", password="s3cret")
        right.start()
        try:
            assert wait_until(lambda: len(sub.data()) == 1 and len(outbox) == 0, 10)
        finally:
            right.stop()
            sub.close()
            outbox.close()


def test_mqtt5_refused_batches_stay_until_the_broker_accepts_them(tmp_path: Path) -> None:
    """An ACL denies the data topic: the MQTT 5 PUBACK says "Not authorized", nothing leaves the outbox.
    Once the ACL allows it (broker reloads on SIGHUP), the same batches go out, then new ones in order.

    Batches in flight when the broker changed its mind may be accepted before the refused ones, so only
    delivery, not order, is checked across the refusal."""
    acl = tmp_path / "acl"
    own = f"{wire.DEFAULT_ROOT}/v1/{SITE}/{AGENT}"
    acl.write_text(f"topic read {wire.DEFAULT_ROOT}/#\ntopic write {own}/status\ntopic write {own}/birth\n")
    with servers.mosquitto(tmp_path / "m", options=["allow_anonymous true", f"acl_file {acl}"]) as broker:
        sub = Subscriber(broker.port)
        outbox = Outbox(tmp_path / "o.db")
        refused_before = metrics.REFUSED.get(reason="Not authorized")
        publisher = make_publisher(broker, outbox, protocol="5")
        publisher.start()
        try:
            for _ in range(5):
                outbox.append(lambda s: batch_payload(s, outbox.epoch))
                publisher.notify()
            assert wait_until(lambda: publisher.refusal == "Not authorized", 10)
            time.sleep(1.0)
            assert len(outbox) == 5 and sub.data() == [] and publisher.acked == 0
            assert metrics.REFUSED.get(reason="Not authorized") > refused_before
            acl.write_text(acl.read_text() + f"topic write {own}/data\n")
            broker.proc.send_signal(signal.SIGHUP)
            assert wait_until(lambda: len(outbox) == 0, 40), "refused batches were not sent again"
            assert publisher.refusal is None
            for _ in range(5):
                outbox.append(lambda s: batch_payload(s, outbox.epoch))
                publisher.notify()
            assert wait_until(lambda: len(outbox) == 0 and len(set(sub.data())) == 10, 10)
        finally:
            publisher.stop()
            sub.close()
            outbox.close()
    first_seen = list(dict.fromkeys(json.loads(p)["seq"] for p in sub.data()))
    assert sorted(first_seen[:5]) == [0, 1, 2, 3, 4] and first_seen[5:] == [5, 6, 7, 8, 9]
