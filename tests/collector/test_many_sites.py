"""One collector, a folder of site models: two plants with the same agent and channel names are kept apart;
a site added to the folder is served after ``reload()``; a broken file is refused and the old models kept."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from agent import wire
from tests.collector.live_collector import (
    BUCKET_MS,
    Publisher,
    batch,
    birth,
    config,
    hours_ago_aligned,
    running,
    site_toml,
    total,
    wait_until,
)

END = 2**62


def test_two_sites_with_the_same_names_are_counted_apart_and_a_third_is_served_after_reload(
    broker, tmp_path: Path
) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "a.toml").write_text(site_toml("plant-a"))
    (sites / "b.toml").write_text(site_toml("plant-b"))
    cfg = config(tmp_path, broker.port, sites, "collector-many-sites")
    t0 = hours_ago_aligned(2)  # a bucket edge: every reading below lies in the bucket starting at t0
    pub = Publisher(broker.port)
    with running(cfg) as c:
        counters = c.ingest.counters
        # Same agent "gw", same point "kwh", interleaved: plant-a 1000 → 1012, plant-b 5000 → 5003 kWh.
        pub.send_all(
            [
                (wire.data_topic("plant-a", "gw"), batch("plant-a", "gw", 1, [("kwh", t0 + 60_000, 1000.0)])),
                (wire.data_topic("plant-b", "gw"), batch("plant-b", "gw", 1, [("kwh", t0 + 60_000, 5000.0)])),
                (
                    wire.data_topic("plant-a", "gw"),
                    batch("plant-a", "gw", 2, [("kwh", t0 + 120_000, 1012.0)]),
                ),
                (
                    wire.data_topic("plant-b", "gw"),
                    batch("plant-b", "gw", 2, [("kwh", t0 + 120_000, 5003.0)]),
                ),
            ]
        )
        wait_until(lambda: counters["batches"] == 4, "four batches applied")
        rows_a = c.ledger.increments(0, END, "plant-a")
        rows_b = c.ledger.increments(0, END, "plant-b")
        # 1012 − 1000 = 12 kWh and 5003 − 5000 = 3 kWh, each in the one bucket starting at t0; were the two
        # sites' channels one, the 1000 → 5000 jumps would show up as (flagged or counted) deltas instead.
        assert [(r[0], r[1], r[2]) for r in rows_a] == [("gw/kwh", t0, 12.0)]
        assert [(r[0], r[1], r[2]) for r in rows_b] == [("gw/kwh", t0, 3.0)]
        assert counters["batches"] == 4 and counters["duplicates"] == 0

        # plant-c is in no model: not subscribed (its messages never arrive) and, run through ingest, refused.
        c_topic = wire.data_topic("plant-c", "gw")
        assert c.replay(c_topic, batch("plant-c", "gw", 1, [("kwh", t0 + 60_000, 7000.0)])) == (
            "rejected:unknown_site"
        )
        assert counters["rejected.unknown_site"] == 1

        # Add plant-c to the folder and reload. Its agent's retained birth (agreeing with the model) arrives
        # as soon as the new subscription is active: that is the sign plant-c is served.
        pub.send(
            wire.birth_topic("plant-c", "gw"),
            birth("plant-c", "gw", [("kwh", "energy_total", "kWh"), ("kw", "power", "kW")]),
            retain=True,
        ).wait_for_publish(10)
        (sites / "c.toml").write_text(site_toml("plant-c"))
        assert c.reload() is True
        assert sorted(c.sites) == ["plant-a", "plant-b", "plant-c"]
        wait_until(lambda: counters["births"] == 1, "plant-c's retained birth after the resubscription")
        pub.send_all(
            [
                (c_topic, batch("plant-c", "gw", 1, [("kwh", t0 + 60_000, 7000.0)])),
                (c_topic, batch("plant-c", "gw", 2, [("kwh", t0 + 180_000, 7020.5)])),
            ]
        )
        wait_until(lambda: counters["batches"] == 6, "plant-c's two batches applied")
        # 7020.5 − 7000 = 20.5 kWh for plant-c; the other two unchanged.
        assert total(c.ledger.increments(0, END, "plant-c"), "gw/kwh") == 20.5
        assert total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == 12.0
        assert total(c.ledger.increments(0, END, "plant-b"), "gw/kwh") == 3.0
        assert not c.ingest.problems

        # A broken file in the folder: the reload is refused, logged naming the file, the old models kept.
        (sites / "d.toml").write_text('[site]\nid = "plant-d"\n\n[lines.L1]\ntype = "clinker"\n\n'
                                      '[channels."gw/kwh"]\nkind = "energy_total"\nunit = "kWhh"\n'
                                      'line = "L1"\nrole = "consumption"\n')  # fmt: skip
        with capture_logs() as logs:
            assert c.reload() is False
        refused = [e for e in logs if e["event"] == "sites.reload_refused"]
        assert len(refused) == 1 and refused[0]["log_level"] == "error"
        assert refused[0]["kept"] == ["plant-a", "plant-b", "plant-c"]
        assert any("d.toml" in p and "kWhh" in p for p in refused[0]["problems"]), refused[0]["problems"]
        assert sorted(c.sites) == ["plant-a", "plant-b", "plant-c"]

        # Still serving all three: one more reading each (+8, +2, +0.5 kWh).
        pub.send_all(
            [
                (
                    wire.data_topic("plant-a", "gw"),
                    batch("plant-a", "gw", 3, [("kwh", t0 + 240_000, 1020.0)]),
                ),
                (
                    wire.data_topic("plant-b", "gw"),
                    batch("plant-b", "gw", 3, [("kwh", t0 + 240_000, 5005.0)]),
                ),
                (c_topic, batch("plant-c", "gw", 3, [("kwh", t0 + 240_000, 7021.0)])),
            ]
        )
        wait_until(lambda: counters["batches"] == 9, "the three batches after the refused reload")
        # plant-a 1020 − 1000 = 20, plant-b 5005 − 5000 = 5, plant-c 7021 − 7000 = 21 kWh.
        assert total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == 20.0
        assert total(c.ledger.increments(0, END, "plant-b"), "gw/kwh") == 5.0
        assert total(c.ledger.increments(0, END, "plant-c"), "gw/kwh") == 21.0
        assert all(
            r[1] == t0 for s in ("plant-a", "plant-b", "plant-c") for r in c.ledger.increments(0, END, s)
        )
        assert BUCKET_MS > 240_000  # every reading above is in the first bucket
    pub.close()


def test_a_site_dropped_from_the_folder_is_rejected_as_unknown_site(broker, tmp_path: Path) -> None:
    """Dropped sites are not unsubscribed: their messages still arrive and are refused, visibly."""
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "a.toml").write_text(site_toml("plant-a"))
    (sites / "b.toml").write_text(site_toml("plant-b"))
    cfg = config(tmp_path, broker.port, sites, "collector-drop-site")
    t0 = hours_ago_aligned(2)
    pub = Publisher(broker.port)
    with running(cfg) as c:
        counters = c.ingest.counters
        (sites / "b.toml").unlink()
        assert c.reload() is True
        assert sorted(c.sites) == ["plant-a"]
        payload = batch("plant-b", "gw", 1, [("kwh", t0 + 60_000, 5000.0)])
        pub.send_all(
            [
                (wire.data_topic("plant-b", "gw"), payload),
                (wire.data_topic("plant-a", "gw"), batch("plant-a", "gw", 1, [("kwh", t0 + 60_000, 1.0)])),
            ]
        )
        wait_until(lambda: counters["rejected.unknown_site"] == 1, "plant-b's batch refused")
        wait_until(lambda: counters["batches"] == 1, "plant-a's batch applied")
        (letter,) = c.deadletters.list()
        assert letter.reason == "unknown_site"
        assert c.deadletters.get(letter.id)[1] == payload
        assert c.ledger.increments(0, END, "plant-b") == []
    pub.close()


def test_two_files_claiming_one_site_id_are_refused_on_reload(broker, tmp_path: Path) -> None:
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "a.toml").write_text(site_toml("plant-a"))
    cfg = config(tmp_path, broker.port, sites, "collector-dup-id")
    with running(cfg) as c:
        (sites / "z.toml").write_text(site_toml("plant-a"))
        with capture_logs() as logs:
            assert c.reload() is False
        (refused,) = [e for e in logs if e["event"] == "sites.reload_refused"]
        assert any("z.toml" in p and "already the id of" in p for p in refused["problems"])
        assert sorted(c.sites) == ["plant-a"]
