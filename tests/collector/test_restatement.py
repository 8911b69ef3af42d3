"""Late data restates a period over a real Mosquitto: an hour of power readings, its KPIs, then a late
sample inside that hour; the hour is recomputed, the restatement recorded with its old and new values,
and the new KPI document reaches the time-series store (a real InfluxDB 1.x)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import wire
from collector.sinks import InfluxConfig
from tests.collector.live_collector import (
    Publisher,
    batch,
    config,
    hours_ago_aligned,
    kpis_in_time,
    running,
    site_toml,
    wait_until,
)
from tests.influx_read import influx_rows

TOPIC = wire.data_topic("plant-a", "gw")
#: kgCO2/kWh of ``national_aef_2023`` (MEE/NBS), the line's default grid factor.
GRID_KG_PER_KWH = 0.5306


def test_a_late_sample_inside_a_computed_hour_restates_it(broker, influx1, tmp_path: Path) -> None:
    model = tmp_path / "plant-a.toml"
    model.write_text(site_toml("plant-a"))
    influx = InfluxConfig(api="v1", url=influx1.url, database="kilnwatch")
    hour = hours_ago_aligned(3)  # an hour three hours back: in the past, so nothing is "future"
    pub = Publisher(broker.port)
    with running(config(tmp_path, broker.port, model, "collector-restate", influx=influx)) as c:
        counters = c.ingest.counters
        # One batch a minute for the hour: 120 kW at hour + 0, 60, ..., 3540 s (60 readings).
        pub.send_all(
            [(TOPIC, batch("plant-a", "gw", k, [("kw", hour + 60_000 * k, 120.0)])) for k in range(60)]
        )
        wait_until(lambda: counters["batches"] == 60, "the hour's 60 batches")
        (doc,) = kpis_in_time(c)
        # 59 one-minute trapezoids of 120 kW: 59 × 120 × 60 / 3600 = 118 kWh; covered 3540 of 3600 s.
        assert doc["start_ms"] == hour and doc["electricity_kwh"] == pytest.approx(118.0, rel=1e-12)
        assert doc["coverage"] == pytest.approx(3540 / 3600, rel=1e-12)
        assert c.ledger.restatements() == [] and counters["restatements"] == 0

        # A late batch: 720 kW at hour + 1830 s, between the samples at 1800 s and 1860 s (both 120 kW).
        # That minute was 120 × 60 = 7,200 kWs; now (120 + 720) / 2 × 30 + (720 + 120) / 2 × 30 = 25,200 kWs,
        # 18,000 kWs = 5 kWh more: 123 kWh.
        pub.send(TOPIC, batch("plant-a", "gw", 60, [("kw", hour + 1_830_000, 720.0)])).wait_for_publish(10)
        wait_until(lambda: counters["batches"] == 61, "the late batch")
        assert counters["late"] == 1
        (new,) = kpis_in_time(c)
        assert new["start_ms"] == hour and new["electricity_kwh"] == pytest.approx(123.0, rel=1e-12)
        assert new["coverage"] == pytest.approx(3540 / 3600, rel=1e-12)  # the same span, more samples

        (restated,) = c.ledger.restatements()
        assert (restated["site"], restated["line"], restated["period"], restated["start_ms"]) == (
            "plant-a", "L1", "hour", hour,
        )  # fmt: skip
        assert restated["old"]["electricity_kwh"] == pytest.approx(118.0, rel=1e-12)
        assert restated["new"]["electricity_kwh"] == pytest.approx(123.0, rel=1e-12)
        # CO2 of electricity follows: 118 × 0.5306 / 1000 = 0.0626108 t → 123 × 0.5306 / 1000 = 0.0652638 t.
        assert restated["old"]["co2_electricity_t"] == pytest.approx(118 * GRID_KG_PER_KWH / 1000, rel=1e-9)
        assert restated["new"]["co2_electricity_t"] == pytest.approx(123 * GRID_KG_PER_KWH / 1000, rel=1e-9)
        assert counters["restatements"] == 1
        (stored,) = c.ledger.kpis("hour", "plant-a")
        assert stored["electricity_kwh"] == pytest.approx(123.0, rel=1e-12)

        # The store has the restated hour: one point per (site, line, period, start), overwritten.
        assert c.sinks is not None and c.sinks.flush(60)
        (point,) = influx_rows(
            influx1.url, "kilnwatch", "SELECT electricity_kwh FROM kpi WHERE period = 'hour'"
        )
        assert point["time"] == hour and point["electricity_kwh"] == pytest.approx(123.0, rel=1e-12)

        # A late sample that changes nothing (120 kW between two 120 kW samples: 120 × 30 + 120 × 30 is the
        # same 7,200 kWs) recomputes the hour but records no restatement.
        pub.send(TOPIC, batch("plant-a", "gw", 61, [("kw", hour + 2_730_000, 120.0)])).wait_for_publish(10)
        wait_until(lambda: counters["batches"] == 62, "the second late batch")
        assert counters["late"] == 2
        (same,) = kpis_in_time(c)
        assert same["electricity_kwh"] == pytest.approx(123.0, rel=1e-12)
        assert len(c.ledger.restatements()) == 1 and counters["restatements"] == 1
    pub.close()


def test_a_counter_reading_before_the_first_one_of_the_hour_restates_it(broker, tmp_path: Path) -> None:
    """A counter's hour total is last − first: a late reading inside the hour but earlier than every other
    one widens the span it covers, so it changes the total (a reading in between would not)."""
    model = tmp_path / "plant-a.toml"
    model.write_text(site_toml("plant-a"))
    hour = hours_ago_aligned(3)
    pub = Publisher(broker.port)
    with running(config(tmp_path, broker.port, model, "collector-restate-counter")) as c:
        counters = c.ingest.counters
        # 2000 kWh at hour + 10 min, then +1.5 kWh a minute up to hour + 50 min: 2000 + 40 × 1.5 = 2060.
        pub.send_all(
            [
                (TOPIC, batch("plant-a", "gw", k, [("kwh", hour + 60_000 * (10 + k), 2000.0 + 1.5 * k)]))
                for k in range(41)
            ]
        )
        wait_until(lambda: counters["batches"] == 41, "41 batches")
        (doc,) = kpis_in_time(c)
        assert doc["electricity_kwh"] == pytest.approx(60.0, rel=1e-12)  # 2060 − 2000
        # A reading in between (at hour + 30.5 min, 2030.75 between 2030 and 2031.5) leaves it at 60 kWh.
        pub.send(TOPIC, batch("plant-a", "gw", 41, [("kwh", hour + 1_830_000, 2030.75)])).wait_for_publish(10)
        wait_until(lambda: counters["batches"] == 42, "the reading in between")
        (doc,) = kpis_in_time(c)
        assert doc["electricity_kwh"] == pytest.approx(60.0, rel=1e-12)
        assert c.ledger.restatements() == []
        # The agent's outbox delivers a reading from hour + 5 min: 1992.5 kWh. 2060 − 1992.5 = 67.5 kWh.
        pub.send(TOPIC, batch("plant-a", "gw", 42, [("kwh", hour + 300_000, 1992.5)])).wait_for_publish(10)
        wait_until(lambda: counters["batches"] == 43, "the early reading")
        (doc,) = kpis_in_time(c)
        assert doc["electricity_kwh"] == pytest.approx(67.5, rel=1e-12)
        (restated,) = c.ledger.restatements()
        assert restated["old"]["electricity_kwh"] == pytest.approx(60.0, rel=1e-12)
        assert restated["new"]["electricity_kwh"] == pytest.approx(67.5, rel=1e-12)
        assert counters["restatements"] == 1
    pub.close()
