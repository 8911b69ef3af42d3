"""Helpers for collector tests against a real Mosquitto: small site models, a started collector, a publisher.

Why small site models of their own: the tests compute every expected number by hand, which is only
practical with one or two channels per agent (the demo plant has 31).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from agent import wire
from collector.config import CollectorConfig, CollectorSection, MqttSection
from collector.ingest.apply import GroupResult
from collector.service import Collector
from collector.sinks import InfluxConfig
from collector.sites import load_sites

#: Base interval of the test site models (the ledger's bucket), in ms.
BUCKET_MS = 900_000


def wait_until(pred: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``pred`` until true; the generous default suits a loaded 2-core CI box."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"not in {timeout} s: {what}")


def site_toml(site_id: str, agents: tuple[str, ...] = ("gw",), kwh_unit: str = "kWh") -> str:
    """A site model with, per agent, an energy counter ``<agent>/kwh`` and a power meter ``<agent>/kw``,
    both electricity consumption of the clinker system of line L1 (so both count in ``electricity_kwh``)."""
    parts = [
        f'[site]\nid = "{site_id}"\ntimezone = "UTC"\nbase_interval_s = 900\n\n[lines.L1]\ntype = "clinker"\n'
    ]
    for agent in agents:
        for point, kind, unit in (("kwh", "energy_total", kwh_unit), ("kw", "power", "kW")):
            parts.append(
                f'[channels."{agent}/{point}"]\nkind = "{kind}"\nunit = "{unit}"\nline = "L1"\n'
                'role = "consumption"\ncarrier = "electricity"\nboundary = "clinker"\n'
            )
    return "\n".join(parts)


def config(
    tmp_path: Path,
    port: int,
    site_model: Path,
    client_id: str,
    influx: InfluxConfig | None = None,
    **collector: Any,
) -> CollectorConfig:
    return CollectorConfig(
        collector=CollectorSection(
            site_model=site_model, ledger=tmp_path / f"{client_id}.sqlite", periods=("hour",), **collector
        ),
        mqtt=MqttSection(port=port, client_id=client_id),
        influx=influx,
    )


@contextmanager
def running(
    cfg: CollectorConfig, on_group: Callable[[int, GroupResult, float, float], None] | None = None
) -> Iterator[Collector]:
    """A collector on ``cfg``'s site models, subscribed before the test publishes anything; ``on_group`` is
    the MQTT worker's hook, called after each group is applied."""
    collector = Collector(cfg, load_sites(cfg.collector.site_model))
    assert collector.mqtt is not None
    collector.mqtt.on_group = on_group
    collector.start()
    try:
        assert collector.mqtt is not None and collector.mqtt.ready.wait(15), "collector never subscribed"
        yield collector
    finally:
        collector.close()


class Publisher:
    """A QoS 1 publisher standing in for the agents (the wire format is the agents' own, ``agent.wire``)."""

    def __init__(self, port: int, client_id: str = "test-agents") -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def send_all(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish without waiting for each PUBACK (a burst), then wait for all of them."""
        infos = [self.send(t, p) for t, p in messages]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def batch(site: str, agent: str, seq: int, rows: list[tuple[str, int, float]], epoch: str = "e1") -> bytes:
    """A data batch payload: ``rows`` are (point, t_ms, value), all GOOD."""
    b = wire.Batch(site, agent, epoch, seq)
    for point, t_ms, value in rows:
        b.add(point, t_ms, value)
    return wire.encode_batch(b)


def birth(site: str, agent: str, channels: list[tuple[str, str, str]]) -> bytes:
    """A birth payload: ``channels`` are (point, kind, unit)."""
    entries = [
        {"name": n, "kind": k, "unit": u, "device": "meter1", "source": "modbus"} for n, k, u in channels
    ]
    return wire.encode_birth(site, agent, "e1", int(time.time() * 1000), entries)


def hours_ago_aligned(hours: int) -> int:
    """The start (ms) of the UTC hour ``hours`` hours back: bucket and hour edges fall on known readings."""
    return (int(time.time()) // 3600 - hours) * 3_600_000


def total(rows: list[tuple[str, int, float, float]], channel: str) -> float:
    return sum(q for ch, _, q, _ in rows if ch == channel)


def kpis_in_time(collector: Collector, timeout: float = 30.0) -> list[dict]:
    """``compute_kpis()`` with a deadline: a collector that marked far too many periods for recomputation
    fails the test here instead of hanging it (the dirty periods would otherwise be computed at close)."""
    out: list[list[dict]] = []
    worker = threading.Thread(target=lambda: out.append(collector.compute_kpis()), daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"compute_kpis() still running after {timeout} s"
    return out[0]
