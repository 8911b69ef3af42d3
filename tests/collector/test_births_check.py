"""Births checked against the site model over a real Mosquitto: a channel whose unit disagrees is held
(kept raw, not counted, listed as a problem) and counted from its raw readings once the birth or the site
model is corrected, so nothing held is lost."""

from __future__ import annotations

from pathlib import Path

from agent import wire
from tests.collector.live_collector import (
    Publisher,
    batch,
    birth,
    config,
    hours_ago_aligned,
    kpis_in_time,
    running,
    site_toml,
    total,
    wait_until,
)

END = 2**62
TOPIC = wire.data_topic("plant-a", "gw")
BIRTH = wire.birth_topic("plant-a", "gw")
#: The agent's meter in Wh where the model says kWh: counted as is, it would be 1,000 times too large.
WRONG = [("kwh", "energy_total", "Wh"), ("kw", "power", "kW")]
RIGHT = [("kwh", "energy_total", "kWh"), ("kw", "power", "kW")]
#: Counter readings, one a minute: 1000, 1004, 1010, 1010.5.
READINGS = (1000.0, 1004.0, 1010.0, 1010.5)


def test_a_birth_in_wh_holds_the_channel_until_a_corrected_birth_releases_it(broker, tmp_path: Path) -> None:
    model = tmp_path / "plant-a.toml"
    model.write_text(site_toml("plant-a"))
    t0 = hours_ago_aligned(2)
    pub = Publisher(broker.port)
    with running(config(tmp_path, broker.port, model, "collector-births")) as c:
        counters = c.ingest.counters
        pub.send(BIRTH, birth("plant-a", "gw", WRONG)).wait_for_publish(10)
        wait_until(lambda: counters["births"] == 1, "the Wh birth")
        (problem,) = c.ingest.problems.values()
        assert (problem.site, problem.agent, problem.point) == ("plant-a", "gw", "kwh")
        assert problem.birth == "energy_total in Wh" and problem.model == "energy_total in kWh"
        assert "Wh" in problem.text() and "kWh" in problem.text() and "gw/kwh" in problem.text()

        # Three batches while held; the power channel (whose birth agrees) is counted meanwhile.
        pub.send_all(
            [
                (
                    TOPIC,
                    batch(
                        "plant-a",
                        "gw",
                        i,
                        [("kwh", t0 + 60_000 * i, READINGS[i]), ("kw", t0 + 60_000 * i, 120.0)],
                    ),
                )
                for i in range(3)
            ]
        )
        wait_until(lambda: counters["batches"] == 3, "three batches")
        assert counters["held"] == 3  # one held kwh reading per batch
        rows = c.ledger.increments(0, END, "plant-a")
        assert [r for r in rows if r[0] == "gw/kwh"] == []
        # 120 kW for 2 minutes (readings at t0+0, +60 s, +120 s): 120 × 120 / 3600 = 4 kWh.
        assert total(rows, "gw/kw") == 4.0
        assert c.ledger.readings_count() == 6  # held readings are kept raw

        # The agent is fixed: its corrected birth releases the channel, counted from its raw readings.
        pub.send(BIRTH, birth("plant-a", "gw", RIGHT)).wait_for_publish(10)
        wait_until(lambda: counters["births"] == 2, "the corrected birth")
        assert c.ingest.problems == {}
        # 1010 − 1000 = 10 kWh from the three held readings.
        wait_until(lambda: total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == 10.0, "the release")

        # Counted as usual from then on: last − first of all readings, 1010.5 − 1000 = 10.5 kWh.
        pub.send(TOPIC, batch("plant-a", "gw", 3, [("kwh", t0 + 180_000, READINGS[3])])).wait_for_publish(10)
        wait_until(lambda: counters["batches"] == 4, "the fourth batch")
        assert total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == READINGS[3] - READINGS[0] == 10.5
        assert counters["held"] == 3
        # Only the hour that has readings is recomputed: 10.5 kWh on the counter + 4 kWh of power = 14.5 kWh.
        docs = kpis_in_time(c)
        assert [(d["start_ms"], d["electricity_kwh"]) for d in docs] == [(t0, 14.5)]
    pub.close()


def test_a_reloaded_site_model_that_agrees_with_the_birth_releases_the_channel(
    broker, tmp_path: Path
) -> None:
    """The meter really counts Wh: the site model is corrected instead, and the held readings are counted
    in its unit (Wh → kWh)."""
    model = tmp_path / "plant-a.toml"
    model.write_text(site_toml("plant-a"))
    t0 = hours_ago_aligned(2)
    pub = Publisher(broker.port)
    with running(config(tmp_path, broker.port, model, "collector-births-reload")) as c:
        counters = c.ingest.counters
        pub.send(BIRTH, birth("plant-a", "gw", WRONG)).wait_for_publish(10)
        wait_until(lambda: counters["births"] == 1, "the Wh birth")
        # Wh readings, one a minute: 1,000,000 → 1,004,000 → 1,012,500 Wh.
        wh = (1_000_000.0, 1_004_000.0, 1_012_500.0)
        pub.send_all(
            [(TOPIC, batch("plant-a", "gw", i, [("kwh", t0 + 60_000 * i, wh[i])])) for i in range(3)]
        )
        wait_until(lambda: counters["batches"] == 3, "three batches")
        assert counters["held"] == 3
        assert total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == 0.0

        model.write_text(site_toml("plant-a", kwh_unit="Wh"))
        assert c.reload() is True
        assert c.ingest.problems == {}
        # (1,012,500 − 1,000,000) Wh × 0.001 = 12.5 kWh.
        assert total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == 12.5
        # Only the hour that has readings is recomputed, with the 12.5 kWh.
        docs = kpis_in_time(c)
        assert [(d["start_ms"], d["electricity_kwh"]) for d in docs] == [(t0, 12.5)]
    pub.close()


def test_a_held_channel_stays_held_across_a_restart(broker, tmp_path: Path) -> None:
    """The birth is in the ledger: a restarted collector holds the channel again before any new birth."""
    model = tmp_path / "plant-a.toml"
    model.write_text(site_toml("plant-a"))
    cfg = config(tmp_path, broker.port, model, "collector-births-restart")
    t0 = hours_ago_aligned(2)
    pub = Publisher(broker.port)
    with running(cfg) as c:
        pub.send(BIRTH, birth("plant-a", "gw", WRONG)).wait_for_publish(10)
        wait_until(lambda: c.ingest.counters["births"] == 1, "the Wh birth")
    with running(cfg) as c:
        assert list(c.ingest.problems) == ["plant-a/gw/kwh"]
        pub.send_all(
            [(TOPIC, batch("plant-a", "gw", i, [("kwh", t0 + 60_000 * i, READINGS[i])])) for i in range(2)]
        )
        wait_until(lambda: c.ingest.counters["batches"] == 2, "two batches")
        assert c.ingest.counters["held"] == 2
        assert total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == 0.0
    pub.close()


def test_a_site_model_corrected_while_the_collector_was_down_counts_the_held_readings(
    broker, tmp_path: Path
) -> None:
    """The operator fixes the model and restarts the collector (instead of SIGHUP): at start the stored
    birth agrees with the model, so the channel is no longer held, and what was held must be counted."""
    model = tmp_path / "plant-a.toml"
    model.write_text(site_toml("plant-a"))
    cfg = config(tmp_path, broker.port, model, "collector-births-fixed-offline")
    t0 = hours_ago_aligned(2)
    wh = (1_000_000.0, 1_004_000.0, 1_012_500.0)
    pub = Publisher(broker.port)
    with running(cfg) as c:
        pub.send(BIRTH, birth("plant-a", "gw", WRONG)).wait_for_publish(10)
        wait_until(lambda: c.ingest.counters["births"] == 1, "the Wh birth")
        pub.send_all(
            [(TOPIC, batch("plant-a", "gw", i, [("kwh", t0 + 60_000 * i, wh[i])])) for i in range(3)]
        )
        wait_until(lambda: c.ingest.counters["batches"] == 3, "three batches")
        assert c.ingest.counters["held"] == 3
    model.write_text(site_toml("plant-a", kwh_unit="Wh"))
    with running(cfg) as c:
        assert c.ingest.problems == {}
        # (1,012,500 − 1,000,000) Wh × 0.001 = 12.5 kWh, as after a reload.
        assert total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == 12.5
    pub.close()


def test_a_channel_held_after_counting_resumes_from_its_last_counted_reading(broker, tmp_path: Path) -> None:
    """Counted, then held by a wrong birth (a reconfigured meter), then released: the release recomputes
    from the last counted reading, so neither the counted nor the held deltas are lost or doubled."""
    model = tmp_path / "plant-a.toml"
    model.write_text(site_toml("plant-a"))
    t0 = hours_ago_aligned(2)
    pub = Publisher(broker.port)
    with running(config(tmp_path, broker.port, model, "collector-births-midway")) as c:
        counters = c.ingest.counters
        pub.send(BIRTH, birth("plant-a", "gw", RIGHT)).wait_for_publish(10)
        wait_until(lambda: counters["births"] == 1, "the first birth")
        pub.send_all(
            [(TOPIC, batch("plant-a", "gw", i, [("kwh", t0 + 60_000 * i, READINGS[i])])) for i in range(2)]
        )
        wait_until(lambda: counters["batches"] == 2, "two counted batches")
        assert total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == 4.0  # 1004 − 1000
        pub.send(BIRTH, birth("plant-a", "gw", WRONG)).wait_for_publish(10)
        wait_until(lambda: counters["births"] == 2, "the Wh birth")
        pub.send_all(
            [(TOPIC, batch("plant-a", "gw", i, [("kwh", t0 + 60_000 * i, READINGS[i])])) for i in (2, 3)]
        )
        wait_until(lambda: counters["batches"] == 4, "two held batches")
        assert counters["held"] == 2
        assert total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == 4.0
        pub.send(BIRTH, birth("plant-a", "gw", RIGHT)).wait_for_publish(10)
        wait_until(lambda: counters["births"] == 3, "the corrected birth")
        # 1010.5 − 1000 = 10.5 kWh: 4 counted before the hold, 6.5 released.
        wait_until(lambda: total(c.ledger.increments(0, END, "plant-a"), "gw/kwh") == 10.5, "the release")
        docs = kpis_in_time(c)
        assert [(d["start_ms"], d["electricity_kwh"]) for d in docs] == [(t0, 10.5)]
    pub.close()
