"""Live: a counter that rolls over and a meter replaced mid-run, through the real chain, lose nothing.

The simulator presets the clinker belt scale's uint32 kg register 1 200 kg below its modulus 2^32 kg (at
~58 kg/s it wraps about 20 s into the run) and replaces the kiln's PM5100 energy meter 30 s in by a new one
counting from 0 Wh. The agent polls them over Modbus and publishes over Mosquitto; the collector applies
the counter rules. Both channels' totals must equal the simulator's exact integrals over the readings'
window, and the KPI document must list the rollover and the reset it applied — and no flagged jump.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from collector.config import CollectorConfig, CollectorSection, MqttSection
from collector.service import Collector
from collector.site import load_site
from tests.e2e.chain import REPO, live_plant, read_truth, true_quantity, wait_until

pytestmark = pytest.mark.slow
SITE = REPO / "deploy" / "demo" / "site.toml"
MODULUS_KG = 2**32
PRESET_KG = MODULUS_KG - 1_200  # below the rollover window's top: 0.9 × 2^32 = 3.87e9 kg


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
        with live_plant(tmp_path, broker.port, sim_args) as (truth_path, observer, agent):
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
    # What the old meter counted after its last poll and before it came off the wall: no reading shows it,
    # so the reset rule cannot (an exchange record with the fitter's final reading would); the simulator
    # logs that final reading.
    log_lines = (tmp_path / "sim.log").read_text().splitlines()
    old_final = next(json.loads(line)["old_final"] for line in log_lines if "old_final" in line)
    unseen = old_final - reset["v0"]
    assert 0 <= unseen < 60  # ≤ one poll interval of the kiln drives (~3–5 MW)
    for point, lost in (("clinker_t", 0.0), ("kiln_kwh", unseen)):
        expected = true_quantity(truth, point, observer.windows[point]) - lost
        measured = doc["channels"][f"kiln-gw/{point}"]["quantity"]
        # 0.5 %: the agent stamps a reading when the response arrives, the simulator reads its counter when
        # the request does; over ~40 s that skew, not the counter rules, is the error. A lost rollover would
        # be off by 4 294 967 t; a replacement read as a rollover or dropped, by ~72 000 kWh or ~50 kWh.
        assert measured == pytest.approx(expected, rel=5e-3), point
