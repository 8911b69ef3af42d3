"""Live: a counter that rolls over and a meter replaced mid-run, through the real chain, lose nothing.

The simulator presets the clinker belt scale's uint32 kg register 1 200 kg below its modulus 2^32 kg (at
~58 kg/s it wraps about 20 s into the run) and replaces the kiln's PM5100 energy meter 30 s in by a new one
counting from 0 Wh. Both are timed from the simulator's start, so the agent is started (and polling) first:
its start-up, which a loaded machine stretches, cannot then run past them (it did once: the first reading
came after the wrap). The agent polls them over Modbus and publishes over Mosquitto; the collector applies
the counter rules, and the KPI document must list the rollover and the reset it applied — and no flagged
jump.

Two checks, neither on a stopwatch. The collector's totals must equal the counter rules applied by hand to
the readings on the wire (exactly: a lost rollover would be off by 4 294 967 t, a replacement read as a
rollover or dropped by ~72 000 kWh or by the new meter's count). And every reading on the wire must agree
with the simulator's truth at an instant between the channel's previous stamp and its own (the meter is read
after the previous answer arrived and before this one did): so the values are the meters' and the times the
readings' own, however late a loaded machine answers.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from collector.config import CollectorConfig, CollectorSection, MqttSection
from collector.service import Collector
from collector.site import load_site
from simulators.kiln.points import MODBUS_POINTS
from tests.e2e.chain import REPO, live_plant, read_truth, start_range, truth_bounds, wait_until

pytestmark = pytest.mark.slow
SITE = REPO / "deploy" / "demo" / "site.toml"
MODULUS_KG = 2**32
PRESET_KG = MODULUS_KG - 1_200  # below the rollover window's top: 0.9 × 2^32 = 3.87e9 kg
(KILN_KWH,) = [p for p in MODBUS_POINTS if p.name == "kiln_kwh"]
OLD_KILN_KWH = KILN_KWH.start * KILN_KWH.scale  # what the old meter showed when the simulator started


def test_rollover_and_meter_replacement_live_match_the_truth(tmp_path: Path, broker) -> None:
    cfg = CollectorConfig(
        collector=CollectorSection(site_model=SITE, ledger=tmp_path / "ledger.sqlite", periods=("day",)),
        mqtt=MqttSection(port=broker.port, client_id="e2e-counter-events"),
    )
    collector = Collector(cfg, load_site(SITE))
    collector.start()
    assert collector.mqtt.ready.wait(10)
    sim_args = ("--preset", f"clinker_t={PRESET_KG}", "--replace-meter", "kiln_kwh@30")
    try:
        with live_plant(tmp_path, broker.port, sim_args, agent_first=True) as (truth_path, observer, agent):
            wait_until(lambda: observer.batches, 60, "the agent's first batch")
            kinds = lambda: {(e.channel, e.kind) for e in collector.ledger.events(0, 2**62)}  # noqa: E731
            wanted = {("kiln-gw/clinker_t", "rollover"), ("kiln-gw/kiln_kwh", "reset")}
            wait_until(lambda: wanted <= kinds(), 120, "the rollover and the replacement to arrive")
            time.sleep(5)  # a few polls on the new meter and past the wrap
            assert agent.poll() is None, "the agent died during the run"
        published = len(observer.batches)
        wait_until(lambda: collector.ingest.counters["batches"] >= published, 60, "the collector to catch up")
        (doc,) = [d for d in collector.compute_kpis() if d["period"] == "day"][-1:]
    finally:
        collector.close()
    truth = read_truth(truth_path)
    events = {(e["channel"], e["kind"]) for e in doc["counter_events"]}
    assert {("kiln-gw/clinker_t", "rollover"), ("kiln-gw/kiln_kwh", "reset")} <= events
    assert not [e for e in doc["counter_events"] if e["kind"] == "implausible"]
    reset = next(e for e in doc["counter_events"] if e["kind"] == "reset")
    assert reset["v0"] > 7e7 and reset["v1"] < 100  # old PM5100 at ~71.9 MWh → new meter from 0 (kWh)

    # Clinker: one wrap on the wire; the register counts kg (scale 0.001), so its modulus is 2^32 × 0.001 t.
    clinker = observer.good("clinker_t")
    steps = [b[1] - a[1] for a, b in itertools.pairwise(clinker)]
    wraps = [i for i, d in enumerate(steps) if d < 0]
    assert len(wraps) == 1, wraps
    modulus_t = MODULUS_KG * 0.001
    expected_clinker = sum(steps) + modulus_t  # every step, the wrap's (negative) one plus one modulus
    unwrapped = [(t, v + (modulus_t if i > wraps[0] else 0.0), p) for i, (t, v, p) in enumerate(clinker)]
    low, high = start_range(truth, "clinker_t", unwrapped, step=0.001)
    assert low <= PRESET_KG * 0.001 <= high, ("clinker_t readings off the truth", low, high)

    # Kiln energy: one reset on the wire; the new meter's first reading is what it counted since it went in.
    kiln = observer.good("kiln_kwh")
    steps = [b[1] - a[1] for a, b in itertools.pairwise(kiln)]
    (cut,) = [i for i, d in enumerate(steps) if d < 0]
    old, new = kiln[: cut + 1], kiln[cut + 1 :]
    assert (old[-1][1], new[0][1]) == (reset["v0"], reset["v1"])
    expected_kiln = sum(d for d in steps if d >= 0) + new[0][1]
    low, high = start_range(truth, "kiln_kwh", old, step=0.001)
    assert low <= OLD_KILN_KWH <= high, ("old kiln meter readings off the truth", low, high)
    # The new meter started at 0 at the exchange, after the old meter's last read and before its own first:
    # its start (value at the truth's zero) is −truth(exchange), with the exchange in (old[-1]'s previous
    # stamp, new[0]'s stamp].
    low, high = start_range(truth, "kiln_kwh", new[1:], step=0.001)
    exchange_low, exchange_high = (
        -truth_bounds(truth, "kiln_kwh", new[0][0])[1],
        -truth_bounds(truth, "kiln_kwh", old[-1][2])[0],
    )
    assert max(low, exchange_low) <= min(high, exchange_high), ("new kiln meter off the truth", low, high)
    # What the old meter counted after its last poll and before it came off the wall: no reading shows it,
    # so the reset rule cannot (an exchange record with the fitter's final reading would); the simulator
    # logs that final reading. It is at most the truth between the last old read and the first new answer.
    log_lines = (tmp_path / "sim.log").read_text().splitlines()
    old_final = next(json.loads(line)["old_final"] for line in log_lines if "old_final" in line)
    unseen = old_final - reset["v0"]
    most = (
        truth_bounds(truth, "kiln_kwh", new[0][0])[1] - truth_bounds(truth, "kiln_kwh", old[-1][2])[0] + 0.001
    )
    assert 0 <= unseen <= most, (unseen, most)

    for point, expected in (("clinker_t", expected_clinker), ("kiln_kwh", expected_kiln)):
        measured = doc["channels"][f"kiln-gw/{point}"]["quantity"]
        # Sums of float64 differences of values up to ~4.3e6: rounding is ~1e-9 t per step.
        assert measured == pytest.approx(expected, rel=1e-6), point
    print(
        f"counter events: clinker {expected_clinker:.3f} t over {len(clinker)} readings, kiln "
        f"{expected_kiln:.3f} kWh over {len(kiln)} readings, {unseen:.3f} kWh unseen at the exchange"
    )
