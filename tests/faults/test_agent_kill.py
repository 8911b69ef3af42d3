"""Fault: the agent is killed with SIGKILL mid-stream (MQTT 5) and started again.

The broker is frozen (SIGSTOP) for a moment before the kill, so the agent dies with batches published but not
acknowledged. Every batch the agent had stored before the kill must arrive (the outbox is read straight from
disk after the kill, so "stored" is the agent's own record); the restarted agent keeps the epoch and carries
seq on; each channel's readings are continuous apart from the downtime; the broker publishes the retained
last will "offline" for the vanished agent, and the new run announces "online" again.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from pathlib import Path

from tests.faults import plant
from tests.servers import Mosquitto, free_port

INTERVAL = 0.5
DOWNTIME = 3.0


def test_sigkill_loses_nothing_stored(broker: Mosquitto, tmp_path: Path) -> None:
    health = free_port()
    with plant.simulator(tmp_path) as sim:
        config = tmp_path / "agent.toml"
        config.write_text(
            plant.agent_config(
                tmp_path, broker.port, sim.modbus_port, health, protocol="5", interval=INTERVAL
            )
        )
        observer = plant.Wire(broker.port)
        log, outbox = tmp_path / "agent.log", tmp_path / "outbox.db"
        agent = plant.start_agent(config, log)
        try:
            plant.wait_until(lambda: observer.distinct() >= 12, 60, "12 batches before the kill")
            # Freeze the broker first, so the agent dies with batches published but not acknowledged.
            broker.proc.send_signal(signal.SIGSTOP)
            plant.wait_until(
                lambda: len(plant.outbox_state(outbox)[2]) >= 3, 30, "3 batches stored and not acknowledged"
            )
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait()
            killed_at = time.time()
            epoch, next_seq, unacked = plant.outbox_state(outbox)
            broker.proc.send_signal(signal.SIGCONT)
            assert len(unacked) >= 3, unacked
            plant.wait_until(lambda: observer.states()[-1:] == ["offline"], 15, "the last will")
            time.sleep(DOWNTIME)  # the agent is down for this long, at least
            restarted_at = time.time()
            agent = plant.start_agent(config, log)
            plant.wait_until(
                lambda: observer.distinct() >= next_seq + 12, 60, "every stored batch and 12 new ones"
            )
            seen_at = time.time()
            assert observer.states()[-1] == "online"
            assert plant.stop_agent(agent) == 0
        finally:
            if agent.poll() is None:
                plant.stop_agent(agent)
            observer.close()
        truth = plant.Truth(sim.truth)

    final_epoch, final_next, left = plant.outbox_state(tmp_path / "outbox.db")
    plant.wait_until(lambda: observer.distinct() == final_next, 10, "the last batches")
    seqs = observer.first_seen_seqs()
    print(
        f"kill: {next_seq} batches stored before SIGKILL ({len(unacked)} not yet acknowledged), "
        f"{final_next} in all, {observer.duplicates()} duplicate copies on the wire, {len(left)} left"
    )
    assert final_epoch == epoch and observer.epochs() == {epoch}
    assert sorted(seqs) == list(range(final_next)), "a seq is missing on the wire"
    assert seqs[:next_seq] == list(range(next_seq))  # everything from before the kill came first, in order
    readings = observer.all_readings()
    assert len(readings) == len(set(readings)), "a reading arrived in two distinct batches"

    for channel in ("raw_mill_kw", "raw_mill_kwh", "kiln_kw"):
        times = [t for t, _, _ in observer.readings(channel)]
        steps = plant.gaps(times)
        # The downtime's hole: no reading is stamped between the kill and the restart, so one step spans
        # them, from the last poll of the killed process to the first of the new one (which the test saw).
        (at,) = [
            i
            for i, (t, g) in enumerate(zip(times, steps, strict=False))
            if t / 1000 <= killed_at <= t / 1000 + g
        ]
        assert restarted_at <= times[at + 1] / 1000 <= seen_at, (channel, steps[at])
        # Apart from it, continuous at the configured period (what the data says, not a stopwatch: late
        # answers stretch single steps, the poller's absolute schedule keeps the median at the period).
        live = steps[:at] + steps[at + 1 :]
        assert abs(statistics.median(live) - INTERVAL) <= 0.1 * INTERVAL, (channel, statistics.median(live))
        assert len(times) >= 0.9 * sum(live) / INTERVAL, (channel, len(times), sum(live))
    # Replayed from disk with their original times: every counter reading matches the truth at an instant
    # between its channel's previous stamp and its own (the register counts whole Wh: a 0.001 kWh step).
    start = plant.counter_start("raw_mill_kwh")
    low, high = truth.start_range(observer.readings("raw_mill_kwh"), "raw_mill_kwh", 0.001)
    assert low <= start <= high, (
        f"raw_mill_kwh readings off the truth: meter start {start} not in [{low}, {high}]"
    )
