"""Fault: the broker is down long enough to fill a tiny outbox (``max_bytes`` = 4 KiB, ~14 batches).

The outbox drops the oldest batches, counts them (``kilnwatch_outbox_dropped_total{reason="max_bytes"}``,
/healthz) and logs it; the agent keeps running; once the broker is back, the newest batches arrive. The seqs
missing on the wire are exactly the dropped ones: one run of the oldest batches of the outage.
"""

from __future__ import annotations

from pathlib import Path

from tests.faults import plant
from tests.servers import Mosquitto, free_port

MAX_BYTES = 4096


def test_full_outbox_drops_oldest_counts_and_recovers(broker: Mosquitto, tmp_path: Path) -> None:
    health = free_port()
    with plant.simulator(tmp_path) as sim:
        config = tmp_path / "agent.toml"
        config.write_text(
            plant.agent_config(tmp_path, broker.port, sim.modbus_port, health, max_bytes=MAX_BYTES, stall_s=3)
        )
        observer = plant.Wire(broker.port)
        log = tmp_path / "agent.log"
        agent = plant.start_agent(config, log)
        try:
            plant.wait_until(lambda: observer.distinct() >= 6, 60, "6 batches before the outage")
            with plant.broker_down(broker):
                plant.wait_until(
                    lambda: (
                        plant.scrape(health).get('kilnwatch_outbox_dropped_total{reason="max_bytes"}', 0)
                        >= 10
                    ),
                    60,
                    "10 dropped batches",
                )
                during = plant.scrape(health)
                status, doc = plant.healthz(health)
                assert agent.poll() is None, "the agent died with a full outbox"
            plant.wait_until(
                lambda: plant.healthz(health)[1]["outbox"]["batches"] == 0, 60, "the outbox to drain"
            )
            seen = observer.distinct()
            plant.wait_until(lambda: observer.distinct() >= seen + 2, 30, "live traffic again")
            after = plant.scrape(health)
            assert plant.stop_agent(agent) == 0
        finally:
            if agent.poll() is None:
                plant.stop_agent(agent)
            observer.close()

    assert during["kilnwatch_outbox_bytes"] <= MAX_BYTES + 400  # the bound, plus at most the newest batch
    assert status == 503 and doc["outbox"]["dropped"]["max_bytes"] >= 10
    assert "outbox not draining" in doc["problems"][0]
    dropped = after['kilnwatch_outbox_dropped_total{reason="max_bytes"}']
    assert after['kilnwatch_outbox_dropped_total{reason="max_age"}'] == 0

    _, next_seq, left = plant.outbox_state(tmp_path / "outbox.db")
    plant.wait_until(lambda: observer.distinct() == next_seq - dropped, 10, "every kept batch")
    seen = set(observer.first_seen_seqs())
    missing = sorted(set(range(next_seq)) - seen)
    print(f"outbox full: {next_seq} batches, {int(dropped)} dropped: seq {missing[0]}..{missing[-1]}")
    assert len(missing) == dropped and missing == list(range(missing[0], missing[-1] + 1))
    assert max(seen) == next_seq - 1 and missing[-1] + 1 in seen  # the newest of the outage survived
    assert not left
    warnings = [
        e for e in plant.log_events(tmp_path / "agent.log") if e.get("event", "").startswith("outbox full")
    ]
    assert warnings and all(w["reason"] == "max_bytes" for w in warnings)
    assert sum(w["count"] for w in warnings) == dropped
