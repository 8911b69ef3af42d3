"""End to end: live simulator → agent (Modbus + OPC UA) → real Mosquitto → collector → real InfluxDB.

Run twice: InfluxDB 1.6.7 through the v1 `/write` API, and VictoriaMetrics through the v2 write API
(influxdb-client). Each run checks that every reading the agent published is in the store, counted, and
that the KPIs over the run match the simulator's exact integrals within 0.5 %.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from collector.config import CollectorConfig, CollectorSection, MqttSection
from collector.service import Collector
from collector.sinks import InfluxConfig
from collector.site import load_site
from tests.e2e.chain import REPO, live_plant, read_truth, true_quantity, wait_until
from tests.influx_read import influx_rows, influxql, vm_flushed_export

pytestmark = pytest.mark.slow
RUN_SECONDS = 60
SITE = REPO / "deploy" / "demo" / "site.toml"
CLINKER_SYSTEM = ("raw_mill_kwh", "kiln_kwh", "coal_mill_kwh", "cooler_kwh", "aux_kwh")


def run_chain(tmp_path: Path, broker_port: int, influx: InfluxConfig):
    cfg = CollectorConfig(
        collector=CollectorSection(site_model=SITE, ledger=tmp_path / "ledger.sqlite", periods=("hour",)),
        mqtt=MqttSection(port=broker_port, client_id="e2e-collector"),
        influx=influx,
    )
    collector = Collector(cfg, load_site(SITE))
    collector.start()
    assert collector.mqtt.ready.wait(10)
    with live_plant(tmp_path, broker_port) as (truth_path, observer, agent):
        wait_until(lambda: observer.batches, 60, "the agent's first batch")
        time.sleep(RUN_SECONDS)
        assert agent.poll() is None, "the agent died during the run"
    # The agent is stopped: the observer has everything published. Wait for the collector to apply it all.
    published = len(observer.batches)
    wait_until(lambda: collector.ingest.counters["batches"] >= published, 60, "the collector to catch up")
    collector.compute_kpis()
    assert collector.sinks is not None and collector.sinks.flush(60)
    return collector, observer, read_truth(truth_path)


def true_kpis(observer, truth) -> dict[str, float]:
    """GB 16780-2021 formulas on the simulator's truth, each quantity over its channel's own window."""

    def q(point: str, column: str | None = None) -> float:
        return true_quantity(truth, column or point, observer.windows[point])

    clinker = q("clinker_t")
    elec = sum(q(p) for p in CLINKER_SYSTEM)
    ncv = truth[1]["coal_ncv_mj_per_kg"][-1]  # MJ/kg, constant in the simulator
    coal_kgce = (q("coal_kiln_t") + q("coal_calciner_t")) * 1000 * ncv / 29.3076  # GB/T 2589: 29.3076 MJ/kgce
    return {
        "clinker_t": clinker,
        "electricity_kwh_per_t": elec / clinker,
        "coal_kgce_per_t": coal_kgce / clinker,
        "comprehensive_kgce_per_t": (coal_kgce + 0.1229 * elec) / clinker,
    }


def measured_kpis(docs: list[dict]) -> dict[str, float]:
    """Ratios over the whole run from the per-hour totals (the run may straddle an hour edge)."""
    clinker = sum(d["clinker_t"] for d in docs)
    elec = sum(d["electricity_kwh"] for d in docs)
    fuel = sum(d["fuel_kgce"] for d in docs)
    return {
        "clinker_t": clinker,
        "electricity_kwh_per_t": elec / clinker,
        "coal_kgce_per_t": fuel / clinker,
        "comprehensive_kgce_per_t": (fuel + 0.1229 * elec) / clinker,
    }


def test_influxdb_1_6_over_the_v1_api(tmp_path: Path, broker, influx1) -> None:
    influx = InfluxConfig(api="v1", url=influx1.url, database="kilnwatch")
    collector, observer, truth = run_chain(tmp_path, broker.port, influx)
    try:
        # Every reading on the wire is in InfluxDB, once (same series + timestamp would overwrite).
        (series,) = influxql(influx1.url, "kilnwatch", "SELECT count(quality) FROM reading")
        assert series["values"][0][1] == observer.readings == collector.ingest.counters["readings"]
        assert observer.readings > RUN_SECONDS * 25  # 31 channels at 1 s, allowing for start-up

        # KPIs as stored in InfluxDB, against the simulator's truth.
        docs = influx_rows(influx1.url, "kilnwatch", "SELECT * FROM kpi WHERE period = 'hour'")
        assert docs and all(d["line"] == "L1" for d in docs)
        measured, expected = measured_kpis(docs), true_kpis(observer, truth)
        for name, value in expected.items():
            assert measured[name] == pytest.approx(value, rel=5e-3), name
    finally:
        collector.close()


def test_victoriametrics_over_the_v2_api(tmp_path: Path, broker, vm) -> None:
    influx = InfluxConfig(api="v2", url=vm.url, org="kilnwatch", bucket="kilnwatch", token="e2e")
    collector, observer, truth = run_chain(tmp_path, broker.port, influx)
    try:
        samples = vm_flushed_export(vm.url, '{__name__="reading_quality"}')
        assert sum(len(s["values"]) for s in samples) == observer.readings
        assert len(samples) == 31  # one series per channel of the demo plant

        docs = collector.ledger.kpis("hour")
        measured, expected = measured_kpis(docs), true_kpis(observer, truth)
        for name, value in expected.items():
            assert measured[name] == pytest.approx(value, rel=5e-3), name
        # The KPI documents reached the store too. VictoriaMetrics keeps every rewrite of an hour's KPI
        # (it does not overwrite equal timestamps), so the final value must be among that hour's samples.
        stored: dict[tuple[str, int], list[float]] = {}
        for s in vm_flushed_export(vm.url, '{__name__="kpi_comprehensive_kgce_per_t"}'):
            for ts, v in zip(s["timestamps"], s["values"], strict=True):
                stored.setdefault((s["metric"]["line"], ts), []).append(v)
        for d in docs:
            final = pytest.approx(d["comprehensive_kgce_per_t"], rel=1e-12)
            assert any(v == final for v in stored[(d["line"], d["start_ms"])])
    finally:
        collector.close()
