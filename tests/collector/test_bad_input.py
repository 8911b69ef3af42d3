"""Bad input over a real Mosquitto: counted, logged, dead-lettered; the collector keeps going."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent import wire
from collector.config import CollectorConfig, CollectorSection, MqttSection
from collector.service import Collector
from collector.site import load_site

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "deploy" / "demo" / "site.toml"


def wait_until(pred, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def good_batch(seq: int, t_ms: int, kwh: float) -> bytes:
    batch = wire.Batch("demo-plant", "kiln-gw", "e1", seq)
    batch.add("raw_mill_kwh", t_ms, kwh)
    return wire.encode_batch(batch)


@pytest.fixture
def collector(broker, tmp_path: Path):
    cfg = CollectorConfig(
        collector=CollectorSection(
            site_model=SITE, ledger=tmp_path / "ledger.sqlite", max_payload_bytes=10_000
        ),
        mqtt=MqttSection(port=broker.port, client_id="collector-under-test"),
    )
    c = Collector(cfg, load_site(SITE))
    c.start()
    assert c.mqtt.ready.wait(10)
    yield c
    c.close()


def test_malformed_messages_are_dead_lettered_and_ingest_continues(broker, collector: Collector) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bad-publisher")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    topic = wire.data_topic("demo-plant", "kiln-gw")
    now = int(time.time() * 1000)
    bad = {
        "not_json": (topic, b"{this is not json"),
        "version": (topic, json.dumps({"v": 99}).encode()),
        "schema": (topic, json.dumps({"v": 1, "site": "demo-plant", "agent": "kiln-gw", "epoch": "e",
                                      "seq": 1, "readings": [["x", "yesterday", 1, 0]]}).encode()),
        # Python's json would accept NaN: the wire decoder must not.
        "non_finite": (topic, good_batch(1, now, 1.0).replace(b"1.0,0]", b"NaN,0]")),
        "future_timestamp": (topic, good_batch(2, now + 3_600_000, 1.0)),
        "unknown_agent": (wire.data_topic("demo-plant", "intruder"), good_batch(3, now, 1.0)),
        "site": (wire.data_topic("other-plant", "kiln-gw"), good_batch(4, now, 1.0)),
        "spoofed": (wire.data_topic("demo-plant", "kiln-gw"),
                    good_batch(5, now, 1.0).replace(b'"agent":"kiln-gw"', b'"agent":"kiln-gx"')),
        "too_large": (topic, b" " * 20_000),
    }  # fmt: skip
    # The collector subscribes to its own site only; the other site's message must not even arrive.
    for t, payload in bad.values():
        pub.publish(t, payload, qos=1).wait_for_publish(5)
    # Valid batches after the bad ones: 1000 kWh then 1010 kWh ten seconds later, and a duplicate.
    pub.publish(topic, good_batch(10, now - 10_000, 1000.0), qos=1).wait_for_publish(5)
    pub.publish(topic, good_batch(11, now, 1010.0), qos=1).wait_for_publish(5)
    pub.publish(topic, good_batch(11, now, 1010.0), qos=1).wait_for_publish(5)
    pub.loop_stop()

    counters = collector.ingest.counters
    wait_until(lambda: counters["batches"] == 2 and counters["duplicates"] == 1)
    expected = set(bad) - {"site"}
    assert {k.removeprefix("rejected.") for k in counters if k.startswith("rejected.")} == expected
    assert all(counters[f"rejected.{r}"] == 1 for r in expected)
    letters = collector.deadletters.list()
    assert sorted(letter.reason for letter in letters) == sorted(expected)
    # The payload is kept byte for byte so it can be inspected or replayed.
    (not_json,) = [letter for letter in letters if letter.reason == "not_json"]
    assert collector.deadletters.get(not_json.id)[1] == bad["not_json"][1]

    # The valid batches were applied: 10 kWh on the raw mill's counter.
    collector.compute_kpis()
    rows = collector.ledger.increments(0, 2**62)
    assert sum(q for ch, _, q, _ in rows if ch == "kiln-gw/raw_mill_kwh") == pytest.approx(10.0)


def test_a_restarted_collector_skips_what_it_already_applied(broker, tmp_path: Path) -> None:
    cfg = CollectorConfig(
        collector=CollectorSection(site_model=SITE, ledger=tmp_path / "ledger.sqlite"),
        mqtt=MqttSection(port=broker.port, client_id="restarting-collector"),
    )
    site = load_site(SITE)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    topic = wire.data_topic("demo-plant", "kiln-gw")
    now = int(time.time() * 1000)

    first = Collector(cfg, site)
    first.start()
    assert first.mqtt.ready.wait(10)
    pub.publish(topic, good_batch(1, now - 20_000, 500.0), qos=1).wait_for_publish(5)
    pub.publish(topic, good_batch(2, now - 10_000, 505.0), qos=1).wait_for_publish(5)
    wait_until(lambda: first.ingest.counters["batches"] == 2)
    first.close()

    # While it is down: a replay of batch 2 (an agent that never saw the PUBACK) and a new batch 3.
    pub.publish(topic, good_batch(2, now - 10_000, 505.0), qos=1).wait_for_publish(5)
    pub.publish(topic, good_batch(3, now, 512.0), qos=1).wait_for_publish(5)
    pub.loop_stop()

    second = Collector(cfg, site)
    stop = threading.Event()
    second.start()
    try:
        wait_until(
            lambda: second.ingest.counters["batches"] == 1 and second.ingest.counters["duplicates"] == 1
        )
        rows = second.ledger.increments(0, 2**62)
        # 500 → 505 → 512 kWh: 12 kWh, the replayed batch not counted twice.
        assert sum(q for ch, _, q, _ in rows if ch == "kiln-gw/raw_mill_kwh") == pytest.approx(12.0)
    finally:
        stop.set()
        second.close()
