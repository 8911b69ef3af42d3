"""Footprint of the agent and the collector on the demo plant: import time, peak RSS, CPU share.

``python -m benchmarks.footprint [seconds]`` starts the simulator, a Mosquitto of its own, the agent and the
collector as separate processes (as deployed), lets them run, then reads each process's peak RSS (VmHWM) and
CPU time from /proc. Import times are measured in fresh interpreters. Figures go to docs/collector.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests import servers

REPO = Path(__file__).resolve().parents[1]
KILNWATCH = [sys.executable, "-m", "agent.cli"]


def import_seconds(module: str, runs: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(runs)]
    return min(times)


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MB, CPU seconds user+system) of a live process."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm_kb / 1024, (int(fields[11]) + int(fields[12])) / ticks


def main(seconds: float = 60.0) -> None:
    print(f"import agent.runner      {import_seconds('agent.runner') * 1000:7.0f} ms")
    print(f"import collector.service {import_seconds('collector.service') * 1000:7.0f} ms")
    work = Path(tempfile.mkdtemp(prefix="kilnwatch-footprint-"))
    modbus, opcua = servers.free_port(), servers.free_port()
    with servers.mosquitto(work / "mosquitto") as broker:
        (work / "collector.toml").write_text(
            f'[collector]\nsite_model = "{REPO}/deploy/demo/site.toml"\nledger = "ledger.sqlite"\n'
            f"[mqtt]\nport = {broker.port}\n"
        )
        env = os.environ | {
            "KILNWATCH_MODBUS_PORT": str(modbus),
            "KILNWATCH_OPCUA_ENDPOINT": f"opc.tcp://127.0.0.1:{opcua}/kilnwatch/dcs",
            "KILNWATCH_MQTT_PORT": str(broker.port),
            "KILNWATCH_OUTBOX": str(work / "outbox.sqlite"),
        }
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        sim = subprocess.Popen(
            [*KILNWATCH, "sim", "kiln", "--modbus-port", str(modbus), "--opcua-port", str(opcua)], **quiet
        )
        servers.wait_for_port(opcua, timeout=30, proc=sim)
        collector = subprocess.Popen([*KILNWATCH, "collector", "run", str(work / "collector.toml")], **quiet)
        agent_cmd = [*KILNWATCH, "agent", "run", f"{REPO}/deploy/demo/agent.toml"]
        agent = subprocess.Popen(agent_cmd, env=env, **quiet)
        start = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - start
        for name, proc in (("agent", agent), ("collector", collector)):
            rss, cpu = proc_stats(proc.pid)
            share = 100 * cpu / wall
            print(f"{name:9s} peak RSS {rss:6.1f} MB  CPU {share:5.1f} % of one core over {wall:.0f} s")
        for proc in (agent, collector, sim):
            servers.stop(proc)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
