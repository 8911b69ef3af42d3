"""A running collector on a PostgreSQL ledger: the server going away and restarting mid-stream loses nothing
and applies nothing twice, because a group is acknowledged only after its commit and retried whole."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from agent import wire
from tests.collector.live_collector import (
    Publisher,
    batch,
    config,
    hours_ago_aligned,
    running,
    site_toml,
    wait_until,
)

END = 2**62


def test_a_postgresql_outage_and_restart_mid_stream_lose_and_double_nothing(
    broker, pg, tmp_path: Path
) -> None:
    (tmp_path / "site.toml").write_text(site_toml("plant"))
    cfg = config(tmp_path, broker.port, tmp_path / "site.toml", "collector-pg", ledger_url=pg.dsn)
    t0 = hours_ago_aligned(2)  # a bucket edge; 60 readings 10 s apart all lie in the bucket starting at t0
    topic = wire.data_topic("plant", "gw")
    messages = [
        (topic, batch("plant", "gw", seq, [("kwh", t0 + seq * 10_000, 1000.0 + 2.5 * seq)]))
        for seq in range(60)
    ]
    pub = Publisher(broker.port)
    with running(cfg) as c, capture_logs() as logs:
        counters = c.ingest.counters
        pub.send_all(messages[:20])
        wait_until(lambda: counters["batches"] == 20, "the first 20 batches applied")

        pg.stop()  # the ledger is away: these 20 arrive, fail, stay unacknowledged and are retried
        pub.send_all(messages[20:40])
        wait_until(  # the pipeline's own word that a group failed and waits to be retried
            lambda: any(e["event"] == "ledger.unavailable" and e.get("messages") for e in logs),
            "the pipeline met the outage",
        )
        assert counters["batches"] == 20
        pg.start()
        wait_until(lambda: counters["batches"] == 40, "the held-back batches applied", timeout=60)

        pub.send_all(messages[40:])
        pg.restart()  # while the last 20 are being applied: a group may be cut in the middle
        # A group whose COMMIT went through as the connection broke is retried and comes back as
        # duplicates: applied + duplicates reach 60 either way; the ledger says what was applied.
        wait_until(
            lambda: counters["batches"] + counters["duplicates"] >= 60, "every batch applied", timeout=60
        )

        assert c.ledger.batches_count() == 60
        assert c.ledger.readings_count() == 60
        # 60 readings of a counter rising 2.5 kWh per reading: 59 deltas × 2.5 = 147.5 kWh, once each
        assert [(ch, b, q) for ch, b, q, _ in c.ledger.increments(0, END, "plant")] == [("gw/kwh", t0, 147.5)]
    pub.close()
