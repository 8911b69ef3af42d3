"""The publisher against a real Mosquitto: exact payloads, retained status and birth, no loss in an outage."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from agent import wire
from agent.config import MqttSection
from agent.outbox import Outbox
from agent.publisher import Publisher
from tests.servers import Mosquitto

SITE, AGENT = "plant1", "gw1"
CHANNELS = [{"name": "kiln_kwh", "kind": "energy_total", "unit": "kWh", "device": "m1", "source": "modbus"}]


class Subscriber:
    """A persistent-session QoS 1 subscriber, as the collector will be, recording what arrives."""

    def __init__(self, port: int) -> None:
        self.messages: dict[str, list[bytes]] = {"data": [], "birth": [], "status": []}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub", clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{wire.DEFAULT_ROOT}/v1/{SITE}/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages[msg.topic.rsplit("/", 1)[1]].append(msg.payload)

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


def make_publisher(broker: Mosquitto, outbox: Outbox, window: int = 5) -> Publisher:
    settings = MqttSection(host="127.0.0.1", port=broker.port, keepalive=5, max_inflight=window)
    return Publisher(settings, "kilnwatch-gw1", SITE, AGENT, outbox, CHANNELS)


def test_every_batch_arrives_exactly_as_stored(broker: Mosquitto, tmp_path: Path) -> None:
    sub = Subscriber(broker.port)
    outbox = Outbox(tmp_path / "o.db")
    stored = [outbox.append(lambda s: batch_payload(s, outbox.epoch)) for _ in range(40)]
    expected = [batch_payload(s, outbox.epoch) for s in stored]  # built again, independently of the outbox
    publisher = make_publisher(broker, outbox)
    publisher.start()
    try:
        assert wait_until(lambda: len(sub.data()) >= 40 and len(outbox) == 0, 20)
        assert sub.data() == expected
        assert publisher.acked == 40
        birth = json.loads(sub.messages["birth"][-1])
        assert (birth["agent"], birth["epoch"], birth["channels"]) == (AGENT, outbox.epoch, CHANNELS)
        assert json.loads(sub.messages["status"][-1])["state"] == "online"
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
