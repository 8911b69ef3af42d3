"""Fault: the broker is stopped for two minutes and started again, while the agent keeps polling.

Nothing is lost: seq has no hole, and every reading the agent's pollers handed over (its own count, from
/metrics) is on the wire. Polling goes on through the outage at the configured period. Nothing is duplicated
downstream: copies on the wire are counted, and after de-duplication by (agent, epoch, seq) no reading
appears twice. Order is kept: seqs first arrive in increasing order. The backlog replays at the configured
rate with the readings' original times (every counter reading matches the simulator's truth at an instant
between its channel's previous stamp and its own). /healthz says 503 during the outage and 200 after; memory
stays flat.

What is checked is what the data says, not how long things took: on a loaded machine an answer can arrive
late or a cycle overrun (the poller then skips the missed cycles, ``agent.sources.modbus.poller``), which
stretches the time between two readings without losing any. So there is no bound on the longest gap between
readings; the worst one is printed.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from tests.faults import plant
from tests.servers import Mosquitto, free_port

INTERVAL = 0.5
OUTAGE_S = 120.0
REPLAY_RATE = 2000.0  # the default of [outbox] replay_rate
#: The plant's devices and their channels (plant.CONFIG and plant.KILN_METER): one poll group each.
DEVICES = {"raw_mill_meter": ("raw_mill_kw", "raw_mill_kwh"), "kiln_meter": ("kiln_kw",)}
#: The raw mill's energy register counts whole Wh; the channel is in kWh (scale 0.001).
KWH_STEP = 0.001


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
            with plant.broker_down(broker):
                stopped, stopped_at = time.monotonic(), time.time()
                plant.wait_until(lambda: plant.healthz(health)[0] == 503, 30, "/healthz to report the outage")
                during = plant.healthz(health)[1]
                time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))  # the outage itself
                backlog = plant.healthz(health)[1]["outbox"]["batches"]
            restarted, restarted_at = time.monotonic(), time.time()
            plant.wait_until(
                lambda: plant.healthz(health)[1]["outbox"]["batches"] == 0, 120, "the backlog to drain"
            )
            drained, seen = time.monotonic(), observer.distinct()
            plant.wait_until(lambda: observer.distinct() >= seen + 4, 30, "live traffic again")
            assert plant.healthz(health)[0] == 200
            counted_from = time.time()
            after = plant.scrape(health)
            counted_to = time.time()
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

    # Every reading the pollers handed over by the scrape is on the wire. The agent stamps a reading before
    # its cycle is counted, so all counted readings are stamped before ``counted_to``; of those stamped before
    # ``counted_from`` only the cycle then in progress (one per device: one reading per channel) may be
    # uncounted yet.
    for device, channels in DEVICES.items():
        stamps = [t for channel in channels for t, _, _ in observer.readings(channel)]
        counted = plant.readings_counted(after, device)
        stamped_to = sum(t <= counted_to * 1000 for t in stamps)
        stamped_from = sum(t <= counted_from * 1000 for t in stamps)
        assert stamped_from - len(channels) <= counted <= stamped_to, (device, counted, stamped_to)

    # Polling went on through the outage at the configured period: the poller keeps an absolute schedule, so
    # the median step between readings is the period however the answers' delays vary, and at most a tenth
    # of the outage's cycles may be lost to overruns.
    gaps = {}
    for channel in (c for channels in DEVICES.values() for c in channels):
        times = [t for t, _, _ in observer.readings(channel)]
        steps = plant.gaps(times)
        gaps[channel] = max(steps)
        assert abs(statistics.median(steps) - INTERVAL) <= 0.1 * INTERVAL, (channel, statistics.median(steps))
        cycles = sum(stopped_at * 1000 <= t <= restarted_at * 1000 for t in times)
        assert cycles >= 0.9 * (restarted_at - stopped_at) / INTERVAL, (channel, cycles)

    start = plant.counter_start("raw_mill_kwh")
    low, high = truth.start_range(observer.readings("raw_mill_kwh"), "raw_mill_kwh", KWH_STEP)
    assert low <= start <= high, (
        f"raw_mill_kwh readings off the truth: meter start {start} not in [{low}, {high}]"
    )

    replayed = sorted((t, key) for key, t in observer.arrival.items() if t >= restarted)[:backlog]
    span = replayed[-1][0] - replayed[0][0]
    rate = (len(replayed) - 1) / span if span > 0 else float("inf")
    worst = max(gaps, key=gaps.__getitem__)
    print(
        f"outage: {next_seq} batches, {len(readings)} readings, {observer.duplicates()} duplicate copies; "
        f"backlog {backlog} replayed in {span:.1f} s ({rate:.1f} batches/s, limit {REPLAY_RATE:g}), "
        f"drained {drained - restarted:.1f} s after the restart; longest step between readings "
        f"{gaps[worst]:.2f} s ({worst}); readings allow the meter start −{(start - low) * 1000:.1f} / "
        f"+{(high - start) * 1000:.1f} Wh; "
        f"RSS {before['process_resident_memory_bytes'] / 1e6:.1f} → "
        f"{after['process_resident_memory_bytes'] / 1e6:.1f} MB"
    )
    assert backlog >= 0.8 * OUTAGE_S / INTERVAL
    # A backlog within the token bucket's one-second burst goes out unpaced; a longer one is paced.
    assert len(replayed) <= REPLAY_RATE or rate <= REPLAY_RATE * 1.3, "the replay was not rate-limited"
    assert during["mqtt"]["connected"] is False and "outbox not draining" in during["problems"][0]
    assert after["kilnwatch_mqtt_connects_total"] >= 2
    assert after["process_resident_memory_bytes"] - before["process_resident_memory_bytes"] < 30e6
