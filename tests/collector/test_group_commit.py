"""Group commit over a real Mosquitto: a burst of 330 messages from 10 agents is applied in far fewer
transactions than messages, and gives exactly the increments of the same messages applied one per group."""

from __future__ import annotations

from pathlib import Path

from agent import wire
from collector.ingest.apply import GroupResult
from collector.ingest.handle import Message
from collector.service import Collector
from tests.collector.live_collector import (
    Publisher,
    batch,
    config,
    hours_ago_aligned,
    running,
    site_toml,
    total,
    wait_until,
)

END = 2**62
AGENTS = tuple(f"gw{i}" for i in range(10))
STEPS = 30  # batches per agent, one a minute


def burst(t0: int) -> tuple[list[tuple[str, bytes]], list[bytes]]:
    """Agent i, minute k: counter 100·i + (i+1)·k kWh and 30·(i+1) kW (binary-exact values, so sums of
    increments are exact whatever the grouping). Every tenth batch is sent twice in a row (an agent that
    missed the PUBACK). Returns the messages and the repeated payloads."""
    messages, repeated = [], []
    for k in range(STEPS):
        for i, agent in enumerate(AGENTS):
            t = t0 + 60_000 * k
            payload = batch(
                "plant-a", agent, k, [("kwh", t, 100.0 * i + (i + 1) * k), ("kw", t, 30.0 * (i + 1))]
            )
            messages.append((wire.data_topic("plant-a", agent), payload))
            if (k * len(AGENTS) + i) % 10 == 0:
                messages.append((wire.data_topic("plant-a", agent), payload))
                repeated.append(payload)
    return messages, repeated


def recorder(collector: Collector) -> list[tuple[list[bytes], GroupResult]]:
    """Each group's payloads with its result, seen where the MQTT worker hands the group to ingest."""
    groups: list[tuple[list[bytes], GroupResult]] = []
    handle = collector.ingest.handle_group

    def recording(messages: list[Message]) -> GroupResult:
        result = handle(messages)
        groups.append(([m.payload for m in messages], result))
        return result

    collector.ingest.handle_group = recording  # type: ignore[method-assign]
    return groups


def test_a_burst_is_applied_in_groups_with_the_increments_of_one_message_per_group(
    broker, tmp_path: Path
) -> None:
    model = tmp_path / "plant-a.toml"
    model.write_text(site_toml("plant-a", agents=AGENTS))
    t0 = hours_ago_aligned(2)
    messages, repeated = burst(t0)
    assert (len(messages), len(repeated)) == (330, 30)  # 10 agents × 30 batches, every tenth twice
    grouped_cfg = config(
        tmp_path, broker.port, model, "collector-grouped", group_max_messages=100, group_window_ms=500
    )
    single_cfg = config(tmp_path, broker.port, model, "collector-single", group_max_messages=1)
    grouped_sizes: list[int] = []
    single_sizes: list[int] = []
    pub = Publisher(broker.port)
    with (
        running(grouped_cfg, on_group=lambda n, *_: grouped_sizes.append(n)) as grouped,
        running(single_cfg, on_group=lambda n, *_: single_sizes.append(n)) as single,
    ):
        groups = recorder(grouped)
        pub.send_all(messages)
        for c in (grouped, single):
            wait_until(lambda c=c: c.ingest.counters["batches"] + c.ingest.counters["duplicates"] == 330,
                       "all 330 messages applied", timeout=180)  # fmt: skip
            assert (c.ingest.counters["batches"], c.ingest.counters["duplicates"]) == (300, 30)
            assert c.ingest.counters["readings"] == 600  # 300 batches × 2 readings

        # Fewer transactions than messages, none larger than the limit; the other collector one per message.
        assert sum(grouped_sizes) == 330 and len(grouped_sizes) < 330 and max(grouped_sizes) <= 100
        assert max(grouped_sizes) > 1
        assert single_sizes == [1] * 330

        # Every increment row equal, bucket by bucket, exactly.
        rows = sorted(grouped.ledger.increments(0, END, "plant-a"))
        assert rows == sorted(single.ledger.increments(0, END, "plant-a"))
        # And right: agent i's counter rises (i+1) kWh a minute for 29 minutes, 29·(i+1) kWh; its 30·(i+1) kW
        # over 29 minutes is 29 × 30·(i+1) / 60 = 14.5·(i+1) kWh.
        for i, agent in enumerate(AGENTS):
            assert total(rows, f"{agent}/kwh") == 29 * (i + 1)
            assert total(rows, f"{agent}/kw") == 14.5 * (i + 1)
        # Σ(i+1) for i < 10 = 55: 29 × 55 = 1595 kWh and 14.5 × 55 = 797.5 kWh in all.
        assert sum(q for _, _, q, _ in rows) == 1595 + 797.5

        # A batch sent twice inside one group is applied once and counted once as a duplicate; so is a copy
        # whose first arrived in an earlier group. Checked group by group, in the order they were applied.
        assert any(payloads.count(p) == 2 for payloads, _ in groups for p in repeated), (
            "no repeated batch fell into one group (each pair was sent back to back)"
        )
        applied: set[bytes] = set()
        for payloads, result in groups:
            new = [p for p in dict.fromkeys(payloads) if p not in applied]
            assert (result.batches, result.duplicates) == (len(new), len(payloads) - len(new))
            applied.update(payloads)
        assert len(applied) == 300
    pub.close()
