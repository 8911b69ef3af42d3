"""The load fleet (``simulators.fleet``, ``kilnwatch sim fleet``): models that load, batches that decode,
a truth that equals what a consumer recomputes from the decoded batches, replays and outages in the order
an agent's outbox sends them, and every batch delivered through a real Mosquitto."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent import wire
from collector.site import load_site
from collector.sites import load_sites
from simulators import fleet
from tests.servers import Mosquitto

T0_MS = 1_764_633_600_000  # 2025-12-02T00:00:00Z


def small(**changes: object) -> fleet.FleetSpec:
    """2 sites × 3 agents × 12 channels, 2 batches/s, 20 batches each."""
    fields = {"sites": 2, "agents_per_site": 3, "channels": 12, "rate": 2.0, "periods": 20, "t0_ms": T0_MS}
    return fleet.FleetSpec(**(fields | changes))


def test_site_models_load_one_by_one_and_as_a_folder(tmp_path: Path) -> None:
    spec = small(agents_per_site=12)
    files = fleet.site_models(spec, tmp_path / "sites")
    assert [f.name for f in files] == ["site01.toml", "site02.toml"]
    for file in files:
        site = load_site(file)
        # 12 agents × 12 channels; of channels 0..11, index 4 is power and index 9 mass: 10 energy counters.
        assert len(site.channels) == 12 * 12
        kinds = defaultdict(int)
        for channel in site.channels.values():
            kinds[(channel.kind, channel.unit)] += 1
        assert kinds == {("energy_total", "kWh"): 12 * 10, ("power", "kW"): 12, ("mass_total", "t"): 12}
        assert site.agents == {f"gw{j:02d}" for j in range(1, 13)}
        # 12 agents at 10 per line: 2 lines, each named by its agents' channels.
        assert set(site.lines) == {"L1", "L2"} == {c.line for c in site.channels.values()}
    sites = load_sites(tmp_path / "sites")
    assert sorted(sites) == ["site01", "site02"]
    assert sites.channel("site02/gw12/feeder009_t") is not None


def decoded(spec: fleet.FleetSpec) -> list[wire.Batch]:
    out = []
    for topic, payload in fleet.batches(spec):
        batch = wire.decode_batch(payload)
        assert topic == wire.data_topic(batch.site, batch.agent)
        out.append(batch)
    return out


def recomputed(batches: list[wire.Batch]) -> dict[str, dict]:
    """Per channel from the decoded batches, each (agent, epoch, seq) once: the consumer's arithmetic."""
    seen: set[tuple[str, str, str, int]] = set()
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for batch in batches:
        key = (batch.site, batch.agent, batch.epoch, batch.seq)
        if key in seen:
            continue
        seen.add(key)
        for channel, t_ms, value in zip(batch.channels, batch.t_ms, batch.values, strict=True):
            series[f"{batch.site}/{batch.agent}/{channel}"].append((t_ms, value))
    out = {}
    for name, points in series.items():
        points.sort()
        values = [v for _, v in points]
        if name.endswith("_kw"):  # power: trapezoids, kW × h
            total = 0.0
            for (t0, v0), (t1, v1) in itertools.pairwise(points):
                total += (v0 + v1) / 2 * (t1 - t0) / 3_600_000
        else:
            total = values[-1] - values[0]
        out[name] = {"first": values[0], "last": values[-1], "readings": len(values), "total": total}
    return out


def assert_same_channels(mine: dict[str, dict], truth: dict[str, dict]) -> None:
    assert set(mine) == set(truth)
    for name, want in truth.items():
        got = mine[name]
        assert (got["first"], got["last"], got["readings"]) == (want["first"], want["last"], want["readings"])
        assert got["total"] == pytest.approx(want["total"], rel=1e-12, abs=1e-9), name


def test_batches_decode_and_the_truth_equals_totals_recomputed_from_them() -> None:
    spec = small(duplicates=0.2, outage_s=3.0)
    batches = decoded(spec)
    truth = fleet.truth(spec)
    assert len(batches) == truth["batches"]["published"]
    assert sum(len(b) for b in batches) == truth["readings"]["published"]
    # 2 sites × 3 agents × 20 batches, each of 12 readings, whatever the replays.
    assert truth["batches"]["unique"] == 2 * 3 * 20
    assert truth["readings"]["unique"] == 2 * 3 * 20 * 12
    mine = recomputed(batches)
    assert len(mine) == 2 * 3 * 12
    assert_same_channels(mine, truth["channels"])
    assert {got["readings"] for got in mine.values()} == {20}
    # Against the spec's rates: 19 steps of 0.5 s = 9.5 s; a counter adds rate × 9.5 / 3600 (its unit per
    # hour), within the 0.001 register resolution at both ends.
    for agent in spec.agents:
        for channel in agent.channels:
            total = mine[f"{agent.site}/{agent.agent}/{channel.point}"]["total"]
            if channel.kind == "power":  # ±5 % around the rate over 9.5 s, in kWh
                assert 0.95 * channel.rate * 9.5 / 3600 <= total <= 1.05 * channel.rate * 9.5 / 3600
            else:
                assert total == pytest.approx(channel.rate * 9.5 / 3600, abs=0.0011)


def test_each_agent_sends_increasing_seqs_of_one_epoch_one_reading_per_channel_per_batch() -> None:
    spec = small()
    per_agent: dict[tuple[str, str], list[wire.Batch]] = defaultdict(list)
    for batch in decoded(spec):
        per_agent[(batch.site, batch.agent)].append(batch)
    assert len(per_agent) == 6
    for batches in per_agent.values():
        assert [b.seq for b in batches] == list(range(20))
        assert len({b.epoch for b in batches}) == 1
        for k, batch in enumerate(batches):
            assert len(set(batch.channels)) == len(batch) == 12
            assert set(batch.t_ms) == {T0_MS + k * 500}  # 2 batches/s: 500 ms apart
    epochs = {batches[0].epoch for batches in per_agent.values()}
    assert len(epochs) == 6, "every agent has its own epoch"


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_values() -> None:
    assert list(fleet.batches(small())) == list(fleet.batches(small()))
    assert list(fleet.batches(small())) != list(fleet.batches(small(seed=2)))


def stream(spec: fleet.FleetSpec, site: str, agent: str) -> list[fleet.Message]:
    return [m for m in fleet.messages(spec) if (m.site, m.agent) == (site, agent)]


def test_a_duplicated_batch_is_sent_again_byte_for_byte_before_the_agents_next_batch() -> None:
    spec = small(sites=1, agents_per_site=4, periods=40, duplicates=0.25)
    replays = 0
    for agent in spec.agents:
        messages = stream(spec, agent.site, agent.agent)
        for i, message in enumerate(messages):
            if not message.replay:
                continue
            replays += 1
            original = messages[i - 1]
            assert not original.replay and original.seq == message.seq
            assert original.payload == message.payload
            assert message.due_s == original.due_s + 0.5  # in the next period's slot
            if i + 1 < len(messages):
                assert messages[i + 1].seq == message.seq + 1
        assert [m.seq for m in messages if not m.replay] == list(range(40))
    # 160 batches at 0.25: 40 expected, standard deviation √(160 × 0.25 × 0.75) ≈ 5.5.
    assert 18 <= replays <= 62
    assert fleet.truth(spec)["batches"] == {"unique": 160, "published": 160 + replays}
    assert not any(m.replay for m in fleet.messages(small(duplicates=0.0)))
    assert sum(m.replay for m in fleet.messages(small(duplicates=1.0))) == 2 * 3 * 20


def test_an_outage_holds_the_first_sites_batches_and_sends_them_late_in_order() -> None:
    spec = small(rate=1.0, periods=30, outage_s=5.0, outage_start_s=10.0)
    for agent in ("gw01", "gw03"):
        messages = stream(spec, "site01", agent)
        assert [m.seq for m in messages] == list(range(30)), "still in seq order, none lost"
        # Batches 10..14 (5 s at 1/s from 10 s) go out in batch 15's slot, just before it.
        assert [m.due_s for m in messages[10:16]] == [15.0] * 6
        assert [m.due_s for m in messages[:10]] == [float(k) for k in range(10)]
        other = stream(spec, "site02", agent)
        assert [m.due_s for m in other] == [float(k) for k in range(30)], "other sites are not cut off"
    # An outage until past the end: the backlog goes out in the slot after the last batch.
    tail = stream(small(rate=1.0, periods=30, outage_s=60.0, outage_start_s=25.0), "site01", "gw02")
    assert [(m.seq, m.due_s) for m in tail[25:]] == [(k, 30.0) for k in range(25, 30)]
    # Outage and replays together: the truth still counts each batch once.
    both = small(rate=1.0, periods=30, outage_s=5.0, duplicates=0.3)
    assert_same_channels(recomputed(decoded(both)), fleet.truth(both)["channels"])


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"rate": 0.0}, "rate must be in (0, 1000]"),
        ({"duplicates": 1.5}, "duplicates is a fraction"),
        ({"periods": 0}, "periods must be at least 1"),
        ({"outage_s": -1.0}, "outage_s must be >= 0"),
    ],
)
def test_a_spec_out_of_range_is_refused_naming_the_setting(changes: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("]", r"\]")):
        small(**changes)


class Counter:
    """A subscriber of its own on every data and birth topic, counting what arrives."""

    def __init__(self, broker: Mosquitto) -> None:
        self.data: list[bytes] = []
        self.births: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-counter")
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe([(wire.subscription("data"), 1), (wire.subscription("birth"), 1)])
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            if msg.topic.endswith("/data"):
                self.data.append(msg.payload)
            else:
                self.births[msg.topic] = msg.payload

    def wait_for(self, count: int, timeout: float = 60.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.data) >= count:
                    return list(self.data)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.data)} of {count} data messages arrived within {timeout} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_publishing_to_mosquitto_delivers_every_batch_and_a_birth_per_agent(broker: Mosquitto) -> None:
    spec = small(duplicates=0.1)
    counter = Counter(broker)
    try:
        result = fleet.publish(spec, "127.0.0.1", broker.port, paced=False)
        truth = fleet.truth(spec)
        assert result.messages == truth["batches"]["published"]
        received = counter.wait_for(result.messages)
        assert sorted(received) == sorted(payload for _, payload in fleet.batches(spec))
        assert len({(b.site, b.agent, b.seq) for b in map(wire.decode_batch, received)}) == 2 * 3 * 20
        assert len(counter.births) == result.births == 6
        birth = json.loads(counter.births[wire.birth_topic("site02", "gw03")])
        assert [c["name"] for c in birth["channels"]] == [c.point for c in spec.agents[-1].channels]
    finally:
        counter.close()


def test_a_paced_run_takes_its_periods(broker: Mosquitto) -> None:
    spec = small(sites=1, agents_per_site=2, rate=10.0, periods=10)
    counter = Counter(broker)
    try:
        result = fleet.publish(spec, "127.0.0.1", broker.port, births=False)
        # 10 periods at 10/s: the last goes out 0.9 s after the first, at the earliest.
        assert result.seconds >= 0.9
        assert len(counter.wait_for(20)) == 20
    finally:
        counter.close()


def kilnwatch(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("kilnwatch")
    return subprocess.run([str(exe), "sim", "fleet", *args], capture_output=True, text=True, timeout=120)


def test_the_command_writes_models_publishes_and_writes_the_truth(broker: Mosquitto, tmp_path: Path) -> None:
    counter = Counter(broker)
    try:
        proc = kilnwatch(
            *("--sites", "3", "--agents-per-site", "2", "--channels", "5", "--rate", "5", "--batches", "4"),
            *("--port", str(broker.port), "--duplicates", "0.5", "--burst", "--seed", "7"),
            *("--site-models", str(tmp_path / "sites"), "--truth", str(tmp_path / "truth.json")),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        truth = json.loads((tmp_path / "truth.json").read_text())
        # 3 sites × 2 agents × 4 batches of 5 readings.
        assert truth["batches"]["unique"] == 24 and truth["readings"]["unique"] == 120
        received = counter.wait_for(truth["batches"]["published"])
        assert_same_channels(recomputed([wire.decode_batch(p) for p in received]), truth["channels"])
        assert sorted(load_sites(tmp_path / "sites")) == ["site01", "site02", "site03"]
        # --burst stamps the run in the past, so the collector's future-time check never trips on it.
        assert max(t for p in received for t in wire.decode_batch(p).t_ms) <= time.time() * 1000
    finally:
        counter.close()


def test_the_command_wants_exactly_one_of_duration_and_batches(tmp_path: Path) -> None:
    common = ["--site-models", str(tmp_path / "s"), "--truth", str(tmp_path / "t.json"), "--port", "1"]
    for extra in ([], ["--duration", "5", "--batches", "5"]):
        proc = kilnwatch(*common, *extra)
        assert proc.returncode == 2
        assert "give --duration SECONDS or --batches COUNT" in proc.stdout + proc.stderr


def test_a_live_run_of_the_command_sends_rate_times_duration_batches_on_time(
    broker: Mosquitto, tmp_path: Path
) -> None:
    counter = Counter(broker)
    try:
        proc = kilnwatch(
            *("--sites", "1", "--agents-per-site", "2", "--channels", "3", "--rate", "4", "--duration", "1"),
            *(
                "--port",
                str(broker.port),
                "--site-models",
                str(tmp_path / "s"),
                "--truth",
                str(tmp_path / "t"),
            ),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        truth = json.loads((tmp_path / "t").read_text())
        # 4 batches/s for 1 s: 4 batches per agent, 2 agents.
        assert truth["batches"] == {"unique": 8, "published": 8}
        batches = [wire.decode_batch(p) for p in counter.wait_for(8)]
        times = sorted({b.t_ms[0] for b in batches})
        assert [t - times[0] for t in times] == [0, 250, 500, 750]
        assert truth["spec"]["t0_ms"] == times[0]
    finally:
        counter.close()
