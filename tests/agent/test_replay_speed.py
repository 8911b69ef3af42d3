"""Replay of a backlog to a real Mosquitto: fast, complete, in order, and nothing lost if the broker goes.

The property is "a backlog drains fast", not a stopwatch: the floor (300 batches/s) is far below what the
publisher does on a quiet 2-core machine (thousands/s, docs/performance-agent.md), so a loaded CI machine
still passes, while the former one-commit-per-ack, 20/s behaviour would fail it by a wide margin.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt

from agent import wire
from agent.mqtt_settings import MqttSection
from agent.outbox import Outbox
from agent.publisher import Publisher
from tests import servers
from tests.servers import Mosquitto

SITE, AGENT = "plant1", "gw1"
BACKLOG = 5000
FLOOR = 300.0  # batches/s


def payload(seq: int, epoch: str) -> bytes:
    """A batch as the agent makes it for the demo plant: 22 readings of one poll cycle (~1 kB)."""
    batch = wire.Batch(SITE, AGENT, epoch, seq)
    for i in range(22):
        batch.add(f"meter{i:02d}_kwh", 1_732_420_000_000 + seq * 1000 + i, 81234.5 + seq + i * 0.5)
    return wire.encode_batch(batch)


def backlog(path: Path, count: int) -> Outbox:
    outbox = Outbox(path)
    outbox._db.execute("PRAGMA synchronous=OFF")  # setup only: no fsync per append while filling
    for _ in range(count):
        outbox.append(lambda s: payload(s, outbox.epoch))
    outbox._db.execute("PRAGMA synchronous=FULL")
    return outbox


def publisher_for(broker: Mosquitto, outbox: Outbox) -> Publisher:
    """A publisher with the defaults of [mqtt] and [outbox] (max_inflight, replay_rate), as an agent runs."""
    settings = MqttSection(host="127.0.0.1", port=broker.port, keepalive=5)
    return Publisher(settings, "kilnwatch-gw1", SITE, AGENT, outbox, [])


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class MosquittoSub:
    """``mosquitto_sub`` (C, its own process: no GIL shared with the publisher), persistent session, QoS 1."""

    def __init__(self, port: int, count: int, out: Path) -> None:
        args = [servers.binary("mosquitto_sub", "mosquitto-clients"), "-h", "127.0.0.1", "-p", str(port)]
        args += ["-t", wire.data_topic(SITE, AGENT), "-q", "1", "-c", "-i", "test-replay-sub"]
        subprocess.run([*args, "-E"], check=True, capture_output=True, timeout=20)  # session, subscribed
        self.out = out
        with out.open("wb") as f:
            self.proc = subprocess.Popen([*args, "-C", str(count)], stdout=f, stderr=subprocess.DEVNULL)

    def received(self) -> list[bytes]:
        return self.out.read_bytes().splitlines()

    def close(self) -> None:
        servers.stop(self.proc)


class Subscriber:
    """A paho persistent-session QoS 1 subscriber that reconnects, as the collector does."""

    def __init__(self, port: int) -> None:
        self.payloads: list[bytes] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub", clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(wire.data_topic(SITE, AGENT), qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.payloads.append(msg.payload)

    def received(self) -> list[bytes]:
        with self.lock:
            return list(self.payloads)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_backlog_drains_fast_complete_and_in_order_while_live_batches_keep_coming(
    broker: Mosquitto, tmp_path: Path
) -> None:
    outbox = backlog(tmp_path / "o.db", BACKLOG)
    live_count = 20
    total = BACKLOG + live_count
    sub = MosquittoSub(broker.port, total, tmp_path / "sub.out")
    publisher = publisher_for(broker, outbox)
    appended: dict[int, float] = {}  # live seq → when it was stored

    def live() -> None:  # the runner's role during the replay: live batches, 20 a second
        for _ in range(live_count):
            appended[outbox.append(lambda s: payload(s, outbox.epoch))] = time.monotonic()
            publisher.notify()
            time.sleep(0.05)

    def backlog_gone() -> bool:
        oldest = outbox.pending(1)
        return not oldest or oldest[0].seq >= BACKLOG

    producer = threading.Thread(target=live)
    start = time.monotonic()
    publisher.start()
    producer.start()
    try:
        assert wait_until(backlog_gone, 60), f"{len(outbox)} batches never acknowledged"
        drained = time.monotonic() - start
        producer.join()
        assert wait_until(lambda: len(outbox) == 0, 30), f"{len(outbox)} batches never acknowledged"
        sub.proc.wait(30)
        done = time.monotonic()
    finally:
        producer.join()
        publisher.stop()
        sub.close()
    received = sub.received()
    # Exactly what was stored, each once, in seq order (no broker trouble here, so no re-sends either).
    assert received == [payload(seq, outbox.epoch) for seq in range(total)]
    assert publisher.acked == total and len(outbox) == 0
    outbox.close()
    rate = BACKLOG / drained
    print(f"replay: {BACKLOG} batches drained in {drained:.2f} s = {rate:,.0f} batches/s (floor {FLOOR:g})")
    assert rate >= FLOOR, f"{rate:.0f} batches/s"
    # Live batches went out behind the backlog, not starved by it: the last one was on the wire within
    # seconds of being stored (at the floor rate the whole backlog takes 17 s).
    assert done - appended[total - 1] < 30


def test_a_broker_that_goes_away_midway_loses_nothing(broker: Mosquitto, tmp_path: Path) -> None:
    """The broker stops in the middle of a replay: what it had not acknowledged stays in the outbox, and
    all of it goes out after the broker is back (paho reconnects by itself). Duplicates are allowed as the
    at-least-once contract says: the agent re-sends at most the window that was in flight at the cut (seqs it
    had not yet seen acknowledged); the broker may also redeliver to the subscriber what that subscriber had
    not acknowledged (its own QoS 1 session, older seqs). Order of first arrival is kept."""
    outbox = backlog(tmp_path / "o.db", BACKLOG)
    epoch = outbox.epoch
    sub = Subscriber(broker.port)
    publisher = publisher_for(broker, outbox)
    window = publisher.settings.max_inflight
    publisher.start()
    try:
        assert wait_until(lambda: publisher.acked >= BACKLOG // 3, 60)
        broker.stop()
        assert wait_until(lambda: not publisher.connected.is_set(), 10)
        # The worker may still be applying PUBACKs that arrived before the cut: wait until the outbox holds
        # still (the same depth over 0.3 s) with every batch either acknowledged or in it.

        def settled() -> bool:
            before = (publisher.acked, len(outbox))
            time.sleep(0.3)
            return before == (publisher.acked, len(outbox)) and sum(before) == BACKLOG

        assert wait_until(settled, 10)
        acked, left = publisher.acked, len(outbox)
        remaining = [entry.seq for entry in outbox.pending(BACKLOG)]
        assert 0 < left < BACKLOG and acked + left == BACKLOG
        # Only acknowledged batches left the outbox; the rest is still there, oldest first.
        assert remaining == sorted(remaining) and len(remaining) == left
        time.sleep(0.5)
        assert len(outbox) == left  # nothing leaves while the broker is away
        broker.start()
        assert wait_until(lambda: len(outbox) == 0, 60), f"{len(outbox)} batches never acknowledged"
        assert wait_until(lambda: len(set(sub.received())) == BACKLOG, 30)
    finally:
        publisher.stop()
        sub.close()
        outbox.close()
    received = sub.received()
    first_seen = [json.loads(p)["seq"] for p in dict.fromkeys(received)]
    assert first_seen == list(range(BACKLOG)), "a batch is missing or arrived out of order"
    assert set(received) == {payload(seq, epoch) for seq in range(BACKLOG)}
    copies = Counter(json.loads(p)["seq"] for p in received)
    resent = sum(n - 1 for seq, n in copies.items() if seq >= acked)  # the agent's re-sends
    redelivered = sum(n - 1 for seq, n in copies.items() if seq < acked)  # the broker's, to the subscriber
    print(
        f"broker stopped after {acked} acks with {left} batches left; duplicate copies: {resent} re-sent by "
        f"the agent (window {window}), {redelivered} redelivered by the broker"
    )
    assert resent <= window, resent


def test_ack_many_deletes_exactly_the_acknowledged_batches_in_one_go(tmp_path: Path) -> None:
    """The group delete behind a fast replay: only the given seqs go (more than one DELETE's worth of them,
    with holes, unknown and repeated seqs), depth and bytes follow, and it all survives a reopen."""
    outbox = backlog(tmp_path / "o.db", 1200)
    size = len(payload(0, outbox.epoch))
    acked = [seq for seq in range(1100) if seq % 7] + [5000, 1, 1]  # 7, 14, ... stay (a refused batch)
    outbox.ack_many(acked)
    kept = [seq for seq in range(1200) if seq not in set(acked)]
    assert [entry.seq for entry in outbox.pending(2000)] == kept
    assert len(outbox) == len(kept) and abs(outbox.bytes - len(kept) * size) <= len(kept) * 8
    outbox.ack_many([])
    outbox.close()
    reopened = Outbox(tmp_path / "o.db")
    assert [entry.seq for entry in reopened.pending(2000)] == kept and len(reopened) == len(kept)
    reopened.close()
