"""Fault: the broker is stopped for two minutes and started again, while the agent keeps polling.

Nothing is lost: seq has no hole and every channel has a reading every interval through the outage. Nothing
is duplicated downstream: copies on the wire are counted, and after de-duplication by (agent, epoch, seq) no
reading appears twice. Order is kept: seqs first arrive in increasing order. The backlog replays at the
configured rate with the readings' original times (each counter increase matches the simulator's truth
between the readings' own timestamps). /healthz says 503 during the outage and 200 after; memory stays flat.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.faults import plant
from tests.servers import Mosquitto, free_port

INTERVAL = 0.5
OUTAGE_S = 120.0
REPLAY_RATE = 2000.0  # the default of [outbox] replay_rate


def test_two_minute_broker_outage(broker: Mosquitto, tmp_path: Path) -> None:
    health = free_port()
    with plant.simulator(tmp_path) as sim:
        config = tmp_path / "agent.toml"
        config.write_text(
            plant.agent_config(tmp_path, broker.port, sim.modbus_port, health, interval=INTERVAL)
        )
        observer = plant.Wire(broker.port)
        agent = plant.start_agent(config, tmp_path / "agent.log")
        try:
            plant.wait_until(lambda: observer.distinct() >= 10, 60, "10 batches before the outage")
            before = plant.scrape(health)
            broker.stop()
            stopped = time.monotonic()
            plant.wait_until(lambda: plant.healthz(health)[0] == 503, 30, "/healthz to report the outage")
            during = plant.healthz(health)[1]
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
            backlog = plant.healthz(health)[1]["outbox"]["batches"]
            broker.start()
            restarted = time.monotonic()
            plant.wait_until(
                lambda: plant.healthz(health)[1]["outbox"]["batches"] == 0, 120, "the backlog to drain"
            )
            drained = time.monotonic()
            time.sleep(3)  # live traffic again
            assert plant.healthz(health)[0] == 200
            after = plant.scrape(health)
            assert plant.stop_agent(agent) == 0
        finally:
            if agent.poll() is None:
                plant.stop_agent(agent)
            observer.close()
        truth = plant.Truth(sim.truth)

    epoch, next_seq, left = plant.outbox_state(tmp_path / "outbox.db")
    plant.wait_until(lambda: observer.distinct() == next_seq, 10, "every batch")
    seqs = observer.first_seen_seqs()
    assert not left and observer.epochs() == {epoch}
    assert seqs == list(range(next_seq)), "a seq is missing or arrived out of order"
    readings = observer.all_readings()
    assert len(readings) == len(set(readings)), "a reading arrived in two distinct batches"

    worst_gap = 0.0
    for channel in ("raw_mill_kw", "raw_mill_kwh", "kiln_kw"):
        times = [t for t, _, _ in observer.readings(channel)]
        worst_gap = max(worst_gap, *plant.gaps(times))
        span = (times[-1] - times[0]) / 1000
        assert len(times) >= 0.9 * span / INTERVAL, (channel, len(times), span)
    assert worst_gap <= 4 * INTERVAL, f"a hole of {worst_gap} s in the readings"
    counter_error = truth.worst_counter_error(observer.readings("raw_mill_kwh"), "raw_mill_kwh")
    assert counter_error < 0.1, f"counter increase off the truth by {counter_error} kWh"

    replayed = sorted((t, key) for key, t in observer.arrival.items() if t >= restarted)[:backlog]
    span = replayed[-1][0] - replayed[0][0]
    rate = (len(replayed) - 1) / span
    print(
        f"outage: {next_seq} batches, {len(readings)} readings, {observer.duplicates()} duplicate copies; "
        f"backlog {backlog} replayed in {span:.1f} s ({rate:.1f} batches/s, limit {REPLAY_RATE:g}), "
        f"drained {drained - restarted:.1f} s after the restart; worst reading gap {worst_gap:.2f} s; "
        f"counter error ≤ {counter_error:.4f} kWh; RSS {before['process_resident_memory_bytes'] / 1e6:.1f} → "
        f"{after['process_resident_memory_bytes'] / 1e6:.1f} MB"
    )
    assert backlog >= 0.8 * OUTAGE_S / INTERVAL
    # A backlog within the token bucket's one-second burst goes out unpaced; a longer one is paced.
    assert len(replayed) <= REPLAY_RATE or rate <= REPLAY_RATE * 1.3, "the replay was not rate-limited"
    assert during["mqtt"]["connected"] is False and "outbox not draining" in during["problems"][0]
    assert after["kilnwatch_mqtt_connects_total"] >= 2
    assert after["process_resident_memory_bytes"] - before["process_resident_memory_bytes"] < 30e6
