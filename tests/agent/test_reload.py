"""SIGHUP reload of a real agent process against the simulated plant, counted on the wire.

A point's interval is changed and a device is added; the readings show the new interval and the new channel,
the birth message lists it, the outbox carries on (one epoch, seq without a hole, no reading twice) and the
gap in the readings at the reload is about one poll. An invalid file and a change of ``agent.id`` are
refused with the file, the key and the fix in the log, and the agent keeps running on the previous config.
systemd hears READY, RELOADING, READY again and STOPPING.
"""

from __future__ import annotations

import signal
import socket
import statistics
import time
from pathlib import Path

from tests.faults import plant
from tests.servers import Mosquitto, free_port


def write(path: Path, text: str) -> None:
    """Replace the file in one step, as an editor or a deployment tool would, so a reload never reads half."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def events(log: Path, name: str) -> list[dict]:
    return [e for e in plant.log_events(log) if e.get("event") == name]


def test_sighup_reload(broker: Mosquitto, tmp_path: Path) -> None:
    health = free_port()
    config, log = tmp_path / "agent.toml", tmp_path / "agent.log"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    with plant.simulator(tmp_path) as sim, notify:
        keys = dict(mqtt_port=broker.port, modbus_port=sim.modbus_port, health_port=health)
        write(config, plant.agent_config(tmp_path, **keys, interval=1.0, kiln_meter=False))
        observer = plant.Wire(broker.port)
        agent = plant.start_agent(config, log, env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        try:
            plant.wait_until(lambda: len(observer.readings("raw_mill_kw")) >= 5, 60, "5 readings at 1 s")
            write(config, plant.agent_config(tmp_path, **keys, interval=0.25))
            reloaded_at = time.time()
            agent.send_signal(signal.SIGHUP)
            plant.wait_until(lambda: len(observer.readings("kiln_kw")) >= 12, 30, "the added device")
            time.sleep(1.0)

            good = config.read_text()
            write(config, good.replace("interval = 0.25", "intervall = 0.25", 1))
            agent.send_signal(signal.SIGHUP)
            plant.wait_until(
                lambda: events(log, "config reload failed; still running the previous config"),
                10,
                "the error",
            )
            write(config, good.replace('id = "gw1"', 'id = "gw2"'))
            agent.send_signal(signal.SIGHUP)
            plant.wait_until(
                lambda: events(log, "config reload refused; still running the previous config"),
                10,
                "the refusal",
            )
            still = observer.distinct()
            plant.wait_until(
                lambda: observer.distinct() >= still + 4, 10, "batches after the refused reloads"
            )
            values = plant.scrape(health)
            assert plant.stop_agent(agent) == 0
        finally:
            if agent.poll() is None:
                plant.stop_agent(agent)
            observer.close()
        notify.settimeout(1)
        notes = [notify.recv(100).decode() for _ in range(4)]

    assert notes == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]
    assert values['kilnwatch_config_reloads_total{result="ok"}'] == 1
    assert values['kilnwatch_config_reloads_total{result="error"}'] == 2
    failed = events(log, "config reload failed; still running the previous config")[0]
    assert failed["level"] == "error" and failed["file"] == str(config)
    assert failed["problems"] == [
        f"{config}: modbus[0].intervall: unknown key 'intervall' — did you mean 'interval'? "
        f"(allowed keys: {failed['problems'][0].split('(allowed keys: ')[1]}"
    ]
    refused = events(log, "config reload refused; still running the previous config")[0]
    assert refused["keys"] == ["agent.id"] and "restart the agent" in refused["fix"]
    done = events(log, "config reloaded")[0]
    assert set(done["changed"]) == {"modbus"}

    epoch, next_seq, left = plant.outbox_state(tmp_path / "outbox.db")
    plant.wait_until(lambda: observer.distinct() == next_seq, 10, "every batch")
    assert observer.epochs() == {epoch} and not left
    assert observer.first_seen_seqs() == list(range(next_seq))
    readings = observer.all_readings()
    assert len(readings) == len(set(readings))
    assert [c["name"] for c in observer.births[-1]["channels"]] == ["raw_mill_kw", "raw_mill_kwh", "kiln_kw"]

    times = [t / 1000 for t, _, _ in observer.readings("raw_mill_kw")]
    before = [t for t in times if t < reloaded_at]
    after = [t for t in times if t > reloaded_at]
    gap = after[0] - before[-1]  # the last poll of the old pollers to the first of the new
    steps_before = plant.gaps([int(t * 1000) for t in before])
    steps_after = plant.gaps([int(t * 1000) for t in after])
    old, new = statistics.median(steps_before), statistics.median(steps_after)
    print(
        f"reload: gap {gap:.2f} s, took {done['took_s']} s; interval {old:.2f} → {new:.2f} s; "
        f"{next_seq} batches, {observer.duplicates()} duplicate copies"
    )
    assert abs(old - 1.0) < 0.1 and abs(new - 0.25) < 0.05
    assert gap <= 2.0 and max(steps_before) <= 2.0 and max(steps_after) <= 1.0
