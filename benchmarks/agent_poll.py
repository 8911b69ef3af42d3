"""Modbus requests per cycle, agent CPU and memory at 10,000 points/s: ``python -m benchmarks.agent_poll``.

Not a test (no timed assertions). One run prints two tables:

1. Requests per poll cycle for every meter profile in ``agent/sources/modbus/profiles``, for the demo plant
   (``deploy/demo/agent.toml``) and for this benchmark's plant, as the agent's own coalescer
   (``coalesce.poll_groups``) builds them, against one request per point (every point is one contiguous
   register block, so that is what a master without coalescing sends), and with ``max_gap = 0`` (only
   contiguous runs merged, for meters that refuse reads across holes in their map). The request count is what
   bounds a cycle on a real meter (5-50 ms per round trip), so it is the figure coalescing exists to cut.
2. A real agent process (``kilnwatch agent run``, as deployed) polling 100 simulated meters × 100 uint16
   holding registers every second, i.e. 10,000 points/s, publishing to a Mosquitto of the benchmark's own.
   The meters are 100 pymodbus unit ids behind ``--gateways`` Modbus TCP ports (default 4 × 25, like
   RS-485 lines behind serial-to-TCP gateways: one line carries at most 32 unit loads) served by one separate
   process. After the first batch arrives and a warm-up, the agent's CPU time (utime + stime from
   /proc/<pid>/stat) is measured over a steady-state window, as % of one core; peak RSS is VmHWM from
   /proc/<pid>/status (the whole life, start-up included). The simulator's, the broker's and this process's
   CPU are printed separately: on a 2-core machine they compete with the agent. Points/s is counted on the
   wire by a paho subscriber (each batch once, by (epoch, seq)): good readings stamped in a whole number of
   poll periods that starts in the pause between cycles, so the count is exact, not ± a cycle per meter.

The figures and their discussion are in docs/performance-agent.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import paho.mqtt.client as mqtt

from agent import wire
from agent.config import load_config
from agent.sources.modbus import profiles
from agent.sources.modbus.coalesce import poll_groups
from agent.sources.modbus.config import ModbusDevice
from tests import servers
from tests.faults.plant import scrape, start_agent

REPO = Path(__file__).resolve().parents[1]
SITE, AGENT = "bench", "poll-gw"
METERS, REGISTERS, INTERVAL_S = 100, 100, 1.0
TARGET_POINTS_S = METERS * REGISTERS / INTERVAL_S
#: Goals from the issue, for the agent process alone.
CPU_GOAL_PCT, RSS_GOAL_MB = 25.0, 120.0
#: The count is exact (see Observer.quiet_phase_ms), so this slack is for real misses only: a device that
#: overran its interval on the shared machine loses that cycle; 1 % of the target is one cycle of every meter
#: in 100 s, far beyond what a healthy agent loses.
POINTS_GOAL_SHARE = 0.99
PERIOD_MS = round(INTERVAL_S * 1000)
GOOD, BAD = 'quality="good"', 'quality="bad"'


# 1. Requests per cycle


def cycle_requests(devices: list[ModbusDevice]) -> tuple[int, int, int]:
    """(points, requests per cycle as configured, requests with ``max_gap = 0``) over ``devices``."""
    points = sum(len(d.points) for d in devices)
    coalesced = sum(len(g.requests) for d in devices for g in poll_groups(d))
    no_gaps = [d.model_copy(update={"max_gap": 0}) for d in devices]
    contiguous = sum(len(g.requests) for d in no_gaps for g in poll_groups(d))
    return points, coalesced, contiguous


def request_table(bench_plant: list[ModbusDevice]) -> None:
    """Print one row per profile (a device with every point of it), then the demo and benchmark plants."""
    rows = [
        (name, [ModbusDevice.model_validate({"name": "meter", "host": "127.0.0.1", "profile": name})])
        for name in profiles.names()
    ]
    rows.append(("demo plant (deploy/demo/agent.toml)", load_config(REPO / "deploy/demo/agent.toml").modbus))
    rows.append((f"benchmark plant ({METERS} × {REGISTERS} uint16)", bench_plant))
    print("Modbus requests per poll cycle (one-per-point: one request per point's contiguous register block)")
    head = ("profile", "points", "coalesced", "one-per-point", "ratio", "max_gap=0")
    print(f"{head[0]:<40} {head[1]:>7} {head[2]:>10} {head[3]:>14} {head[4]:>7} {head[5]:>10}")
    for name, devices in rows:
        points, coalesced, contiguous = cycle_requests(devices)
        ratio = f"{points / coalesced:.1f}x"
        print(f"{name:<40} {points:>7,} {coalesced:>10,} {points:>14,} {ratio:>7} {contiguous:>10,}")
    print()


# 2. The agent at 10,000 points/s


def placement(meter: int, ports: list[int]) -> tuple[int, int]:
    """(port, unit id) of meter ``meter``: meters are dealt round-robin over the gateways, units from 1."""
    return ports[meter % len(ports)], meter // len(ports) + 1


def serve(ports: list[int], meters: int) -> None:
    """Run the simulated gateways until killed: the entry point of the server process.

    Registers hold fixed, distinct values (meter × 100 + register): the agent decodes and publishes every
    reading whether or not it changed, so changing values would only add the simulator's own CPU.
    """
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    def device(unit: int, meter: int) -> SimDevice:
        values = [meter * 100 + r for r in range(REGISTERS)]
        holding = [SimData(0, count=REGISTERS, values=values, datatype=DataType.REGISTERS, readonly=True)]
        absent = [SimData(0, datatype=DataType.INVALID)]
        no_bits = [SimData(0, values=0, datatype=DataType.BITS, readonly=True)]
        return SimDevice(unit, simdata=(no_bits, no_bits, holding, absent))

    async def run() -> None:
        by_port: dict[int, list[SimDevice]] = {}
        for meter in range(meters):
            port, unit = placement(meter, ports)
            by_port.setdefault(port, []).append(device(unit, meter))
        for port, devices in by_port.items():
            await ModbusTcpServer(devices, address=("127.0.0.1", port)).serve_forever(background=True)
        await asyncio.Event().wait()

    asyncio.run(run())


def modbus_toml(ports: list[int]) -> str:
    """The plant's devices: one per meter, one uint16 point per register, polled every INTERVAL_S."""
    parts = []
    for meter in range(METERS):
        port, unit = placement(meter, ports)
        points = ",\n".join(
            f'{{ name = "m{meter:03d}_r{r:03d}", address = {r}, type = "uint16" }}' for r in range(REGISTERS)
        )
        parts.append(
            f'[[modbus]]\nname = "meter{meter:03d}"\nhost = "127.0.0.1"\nport = {port}\nunit = {unit}\n'
            f"interval = {INTERVAL_S}\npoints = [\n{points}\n]\n"
        )
    return "\n".join(parts)


def bench_devices(ports: list[int]) -> list[ModbusDevice]:
    """The plant's devices as the agent validates them, for the request table."""
    return [ModbusDevice.model_validate(table) for table in tomllib.loads(modbus_toml(ports))["modbus"]]


def agent_toml(mqtt_port: int, health_port: int, ports: list[int]) -> str:
    """The agent's whole config: the plant, the benchmark's broker, metrics on ``health_port``."""
    return (
        f'[agent]\nid = "{AGENT}"\nsite = "{SITE}"\nbatch_interval = 1.0\n\n'
        f"[mqtt]\nport = {mqtt_port}\n\n"
        '[outbox]\npath = "outbox.db"\n\n'
        f'[health]\nlisten = "127.0.0.1:{health_port}"\n\n'
        f"{modbus_toml(ports)}"
    )


class Observer:
    """Counts the readings on the agent's data topic by their own timestamps, each batch once.

    Counting by reading time rather than arrival time makes the window exact: a batch published just after
    the window still counts for the readings it carries from inside it.
    """

    def __init__(self, port: int) -> None:
        self._lock = threading.Lock()
        self._batches: set[tuple[str, int]] = set()
        self._good_ms: list[int] = []
        self.bad = 0
        self.latest_ms = 0
        subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="agent-poll-observer")
        self._client.on_connect = lambda c, *_: c.subscribe(wire.data_topic(SITE, AGENT), qos=1)
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise RuntimeError("the observer's subscription was not acknowledged")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        batch = wire.decode_batch(msg.payload)
        with self._lock:
            if (batch.epoch, batch.seq) in self._batches:
                return
            self._batches.add((batch.epoch, batch.seq))
            good = [t for t, q in zip(batch.t_ms, batch.quality, strict=True) if q == wire.Quality.GOOD]
            self._good_ms += good
            self.bad += len(batch) - len(good)
            self.latest_ms = max([self.latest_ms, *batch.t_ms])

    def quiet_phase_ms(self) -> int:
        """The middle of the longest pause between poll cycles, as milliseconds into the poll period.

        Every device's cycle recurs once per period at a fixed phase (the poller schedules ``due +=
        interval``), and all start together, so the cycles bunch up and leave a long pause. A window that
        starts in that pause and lasts whole periods holds exactly one cycle per device per period: its count
        is exact, where an edge falling among the cycles would cut some of them in or out by timing jitter.
        """
        with self._lock:
            phases = sorted({t % PERIOD_MS for t in self._good_ms[-round(2 * TARGET_POINTS_S) :]})
        pauses = itertools.pairwise([*phases, phases[0] + PERIOD_MS])
        width, after = max((b - a, a) for a, b in pauses)
        return (after + width // 2) % PERIOD_MS

    def good_between(self, start_ms: int, end_ms: int) -> int:
        """Good readings stamped in [start_ms, end_ms): called once, after the window's batches arrived."""
        with self._lock:
            return sum(start_ms <= t < end_ms for t in self._good_ms)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process: start-up spikes count, as they do on a gateway."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024


@dataclass(frozen=True)
class Run:
    """What one measured window gave; CPU shares are % of one core over ``seconds``.

    ``good`` counts readings stamped in ``counted_s``, a whole number of poll periods that starts in the pause
    between cycles (``Observer.quiet_phase_ms``): an agent that misses no cycle counts exactly the target.
    """

    seconds: float
    counted_s: float
    cpu_pct: dict[str, float]
    rss_mb: dict[str, float]
    good: int
    bad_on_wire: int
    metrics: dict[str, float]

    @property
    def points_s(self) -> float:
        return self.good / self.counted_s


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, agent: subprocess.Popen, log: Path
) -> None:
    """Poll ``condition()`` until true; fail with the agent's log tail if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if agent.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            state = f"the agent exited with {agent.returncode}" if agent.poll() is not None else "timed out"
            raise RuntimeError(f"{state} waiting for {what}; agent log:\n{tail}")
        time.sleep(0.1)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (``servers.free_port`` called in a row may return one port twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def measure(duration: float, warmup: float, ports: list[int]) -> Run:
    """Start simulator, broker, observer and agent; measure one window; stop everything, even on error."""
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kilnwatch-agent-poll-")))
        sim = subprocess.Popen(
            [sys.executable, "-c", f"from benchmarks.agent_poll import serve; serve({ports!r}, {METERS})"],
            cwd=REPO,
            stdout=(work / "sim.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        stack.callback(servers.stop, sim)
        for port in ports:
            servers.wait_for_port(port, timeout=30, proc=sim)
        broker = stack.enter_context(servers.mosquitto(work / "mosquitto"))
        assert broker.proc is not None
        observer = Observer(broker.port)
        stack.callback(observer.close)
        health_port = servers.free_port()
        config_path = work / "agent.toml"
        config_path.write_text(agent_toml(broker.port, health_port, ports))
        log = work / "agent.log"
        agent = start_agent(config_path, log)
        stack.callback(servers.stop, agent)

        wait_until(lambda: observer.latest_ms > 0, 60, "the first batch", agent, log)
        time.sleep(warmup)
        pids = {
            "kilnwatch agent": agent.pid,
            "Modbus gateways (pymodbus sim)": sim.pid,
            "mosquitto": broker.proc.pid,
            "observer (this process)": os.getpid(),
        }
        periods = max(1, round(duration / INTERVAL_S))
        window_s = periods * INTERVAL_S
        now_ms = int(time.time() * 1000)
        start_ms = now_ms + (observer.quiet_phase_ms() - now_ms) % PERIOD_MS
        end_ms = start_ms + periods * PERIOD_MS
        time.sleep(max(0.0, start_ms / 1000 - time.time()))
        start, cpu0 = time.time(), {name: cpu_seconds(pid) for name, pid in pids.items()}
        wait_until(lambda: time.time() >= end_ms / 1000, window_s + 5, "the window's end", agent, log)
        end, cpu1 = time.time(), {name: cpu_seconds(pid) for name, pid in pids.items()}
        rss = {name: peak_rss_mb(pid) for name, pid in pids.items() if pid != os.getpid()}
        # Readings stamped before the end go out within a batch interval; wait for two, then count.
        wait_until(lambda: observer.latest_ms >= end_ms + 2000, 30, "the window's last batches", agent, log)
        seconds = end - start
        return Run(
            seconds=seconds,
            counted_s=window_s,
            cpu_pct={name: 100 * (cpu1[name] - cpu0[name]) / seconds for name in pids},
            rss_mb=rss,
            good=observer.good_between(start_ms, end_ms),
            bad_on_wire=observer.bad,
            metrics=scrape(health_port),
        )


def summed(metrics: dict[str, float], prefix: str, label: str = "") -> float:
    """Sum of every series of ``prefix`` (whose labels contain ``label``) in a /metrics scrape."""
    return sum(v for k, v in metrics.items() if k.startswith(prefix + "{") and label in k)


def report(run: Run, gateways: int, warmup: float) -> None:
    """Print the process table, the wire count with the agent's own metrics beside it, and the goals."""
    per_gateway = -(-METERS // gateways)
    print(
        f"Agent at {TARGET_POINTS_S:,.0f} points/s: {METERS} meters × {REGISTERS} uint16 holding registers "
        f"every {INTERVAL_S:g} s, on {gateways} Modbus TCP gateway port(s) × up to {per_gateway} unit ids"
    )
    print(f"steady-state window {run.seconds:.1f} s, after the first batch + {warmup:g} s warm-up")
    print(f"{'process':<32} {'CPU % of one core':>18} {'peak RSS MB':>12}")
    for name, cpu in run.cpu_pct.items():
        rss = f"{run.rss_mb[name]:12.1f}" if name in run.rss_mb else f"{'-':>12}"
        print(f"{name:<32} {cpu:>18.1f} {rss}")
    m = run.metrics
    cycles = summed(m, "kilnwatch_poll_duration_seconds_count")
    mean_cycle_ms = 1000 * summed(m, "kilnwatch_poll_duration_seconds_sum") / cycles if cycles else 0.0
    print(
        f"good readings on the wire stamped in {run.counted_s:g} whole poll periods: {run.good:,} = "
        f"{run.points_s:,.0f} points/s "
        f"({100 * run.points_s / TARGET_POINTS_S:.1f} % of {TARGET_POINTS_S:,.0f})"
    )
    print(
        f"since start: bad readings on the wire {run.bad_on_wire:,}; agent metrics: readings good "
        f"{summed(m, 'kilnwatch_readings_total', GOOD):,.0f}, bad "
        f"{summed(m, 'kilnwatch_readings_total', BAD):,.0f}, failed device cycles "
        f"{summed(m, 'kilnwatch_poll_failed_cycles_total'):,.0f}, mean device cycle {mean_cycle_ms:.1f} ms, "
        f"outbox backlog at the end {m.get('kilnwatch_outbox_batches', 0):,.0f} batch(es)"
    )
    print()
    agent = "kilnwatch agent"
    floor = POINTS_GOAL_SHARE * TARGET_POINTS_S
    cpu, rss = run.cpu_pct[agent], run.rss_mb[agent]
    goals = [
        ("agent CPU, % of one core", cpu, f"≤ {CPU_GOAL_PCT:g}", cpu <= CPU_GOAL_PCT),
        ("agent peak RSS, MB", rss, f"≤ {RSS_GOAL_MB:g}", rss <= RSS_GOAL_MB),
        ("points/s published", run.points_s, f"≥ {floor:,.0f}", run.points_s >= floor),
    ]
    print(f"{'goal':<28} {'measured':>10} {'goal':>10}  result")
    for what, measured, goal, met in goals:
        print(f"{what:<28} {measured:>10,.1f} {goal:>10}  {'met' if met else 'NOT met'}")


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (``platform.processor()`` is empty on Linux)."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds of steady state measured (whole seconds)"
    )
    parser.add_argument("--quick", action="store_true", help="a 10 s window (smoke run)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the first batch, unmeasured")
    parser.add_argument("--gateways", type=int, default=4, help="Modbus TCP ports the 100 meters sit behind")
    args = parser.parse_args()
    duration = 10.0 if args.quick else args.duration
    mosquitto = subprocess.run(
        [servers.binary("mosquitto", "mosquitto"), "-h"], capture_output=True, text=True
    ).stdout.splitlines()[0]
    print(
        f"{os.cpu_count()} CPUs ({cpu_model()}), shared machine: figures are noisy; Python "
        f"{platform.python_version()}, pymodbus {version('pymodbus')}, paho-mqtt {version('paho-mqtt')}, "
        f"{mosquitto}"
    )
    print()
    ports = free_ports(args.gateways)
    request_table(bench_devices(ports))
    report(measure(duration, args.warmup, ports), args.gateways, args.warmup)


if __name__ == "__main__":
    main()
