"""Replay of a stored backlog to a real Mosquitto: ``python -m benchmarks.outbox_replay [N] [--baseline M]``.

Not a test (no timed assertions). One process starts its own Mosquitto on a free loopback port (as
``tests/servers.py`` does, never 1883), fills an outbox with ``N`` batches (default 20,000) made as the agent
makes them (``wire.Batch`` of ``--readings`` readings, default 22 as in the demo plant: about 0.9 kB), and
times how long each publisher takes from its start until the outbox is empty and a subscriber has received
every batch:

- ``naive``: the obvious implementation, written below: read the oldest batch, paho ``publish`` at QoS 1,
  ``wait_for_publish``, delete it with its own commit, repeat. It drains ``--baseline`` batches (default
  2,000; at its rate the whole ``N`` would take minutes), which is enough for a rate.
- ``agent``: ``agent.publisher.Publisher`` with the defaults of ``[mqtt]`` and ``[outbox]`` (max_inflight,
  replay_rate), as a configured agent runs it.
- ``agent, no rate limit``: the same with ``replay_rate`` out of the way: what the code itself can do here.
- ``agent, former defaults``: max_inflight 20 and replay_rate 20/s, the defaults before this benchmark was
  written, over ``--former`` batches (default 200; 0 skips it).

Each set runs twice: on loopback, and over a link with ``--rtt-ms`` of round-trip time (default 20 ms, a
plant network or VPN to a central broker; 0 skips it), made by a TCP proxy in its own process that delays
every chunk by half the RTT each way (latency only, no bandwidth limit). On that link the former defaults
run over ``--former`` batches too, and the naive baseline over a tenth of ``--baseline``.

The subscriber is ``mosquitto_sub`` (a C client, persistent session, QoS 1) in its own process, connected to
the broker directly, so the observer does not compete with the publisher for this process's GIL. Every run
checks that each stored batch arrived byte for byte and that batches first arrived in seq order, so a fast
figure cannot hide a loss. It prints batches/s, the ratio to the naive baseline on the same link, and the
projected time to drain a day's backlog of an agent sending one batch per second (86,400 batches, while live
batches keep coming). The figures are in docs/performance-agent.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt
import paho.mqtt.client as mqtt
import structlog

from agent import wire
from agent.config import OutboxSection
from agent.mqtt_settings import MqttSection
from agent.outbox import Outbox
from agent.publisher import Publisher
from tests import servers

SITE, AGENT = "plant1", "gw1"
T0_MS = 1_732_420_000_000
DAY_BATCHES = 86_400  # one day of an agent with agent.batch_interval = 1 s
LIVE_RATE = 1.0  # batches/s that keep coming while the backlog drains
TIMEOUT_S = 600.0
#: The defaults before replay was made fast, for the "former defaults" row.
FORMER_REPLAY_RATE, FORMER_MAX_INFLIGHT = 20.0, 20


def payload(seq: int, epoch: str, readings: int) -> bytes:
    """One batch as the agent encodes it: ``readings`` energy counters read in the same second."""
    batch = wire.Batch(SITE, AGENT, epoch, seq)
    for i in range(readings):
        batch.add(f"meter{i:02d}_kwh", T0_MS + seq * 1000 + i * 7, 81234.5 + seq * 0.25 + i)
    return wire.encode_batch(batch)


def fill(path: Path, count: int, readings: int) -> tuple[Outbox, list[bytes]]:
    """An outbox holding ``count`` batches; returns it and the payloads, built again independently."""
    outbox = Outbox(path)
    # Setup only, not measured: no fsync per append while filling (each append is its own transaction).
    outbox._db.execute("PRAGMA synchronous=OFF")
    seqs = [outbox.append(lambda s: payload(s, outbox.epoch, readings)) for _ in range(count)]
    outbox._db.execute("PRAGMA synchronous=FULL")
    return outbox, [payload(seq, outbox.epoch, readings) for seq in seqs]


class Subscriber:
    """``mosquitto_sub`` on the data topic, persistent session, QoS 1, writing one payload per line."""

    def __init__(self, port: int, count: int, workdir: Path, name: str) -> None:
        self.out = workdir / f"{name}.out"
        args = [servers.binary("mosquitto_sub", "mosquitto-clients"), "-h", "127.0.0.1", "-p", str(port)]
        args += ["-t", wire.data_topic(SITE, AGENT), "-q", "1", "-c", "-i", f"bench-{name}"]
        # Make the session first (-E: exit once subscribed), so nothing published from now on is missed.
        subprocess.run([*args, "-E"], check=True, capture_output=True, timeout=20)
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen([*args, "-C", str(count)], stdout=out, stderr=subprocess.DEVNULL)

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            servers.stop(self.proc)

    def payloads(self) -> list[bytes]:
        return self.out.read_bytes().splitlines()


@dataclass
class Run:
    name: str
    count: int
    seconds: float  # start → outbox empty and every batch received
    emptied: float  # start → outbox empty
    problem: str | None
    limit: float = float("inf")  # replay_rate, if any

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def sustained(self) -> float:
        """The rate a long backlog sees: a short run's figure includes the token bucket's first burst."""
        return min(self.rate, self.limit)


def check(stored: list[bytes], received: list[bytes]) -> str | None:
    """None if every stored batch arrived byte for byte and first arrived in seq order, else what is wrong."""
    expected = set(stored)
    strangers = [p for p in received if p not in expected]
    if strangers:
        return f"{len(strangers)} received payload(s) differ from every stored batch"
    first_seen = [json.loads(p)["seq"] for p in dict.fromkeys(received)]
    want = [json.loads(p)["seq"] for p in stored]
    if len(first_seen) != len(want):
        return f"{len(want) - len(first_seen)} of {len(want)} batches never arrived"
    if first_seen != want:
        return "batches arrived out of seq order"
    return None


def naive(broker: servers.Mosquitto, port: int, outbox: Outbox, stored: list[bytes], workdir: Path) -> Run:
    """The baseline: one batch at a time, wait for its PUBACK, delete it with its own commit."""
    sub = Subscriber(broker.port, len(stored), workdir, f"naive-{port}")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-naive-pub")
    topic = wire.data_topic(SITE, AGENT)
    start = time.perf_counter()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        while entries := outbox.pending(1):
            client.publish(topic, entries[0].payload, qos=1).wait_for_publish(timeout=30)
            outbox.ack(entries[0].seq)
        emptied = time.perf_counter() - start
        sub.wait(TIMEOUT_S)
        seconds = time.perf_counter() - start
    finally:
        client.disconnect()
        client.loop_stop()
    name = "naive: publish, wait_for_publish, commit, one at a time"
    return Run(name, len(stored), seconds, emptied, check(stored, sub.payloads()))


def agent(
    broker: servers.Mosquitto,
    port: int,
    outbox: Outbox,
    stored: list[bytes],
    workdir: Path,
    key: str,
    rate: float,
    inflight: int | None = None,
) -> Run:
    """The agent's publisher, made as the runner makes it (``[mqtt]`` defaults), draining the outbox."""
    sub = Subscriber(broker.port, len(stored), workdir, f"{key}-{port}")
    settings = MqttSection(host="127.0.0.1", port=port)
    if inflight is not None:
        settings = settings.model_copy(update={"max_inflight": inflight})
    publisher = Publisher(settings, f"bench-{key}-pub", SITE, AGENT, outbox, [], rate)
    start = time.perf_counter()
    publisher.start()
    try:
        deadline = start + TIMEOUT_S
        while len(outbox) and time.perf_counter() < deadline:
            time.sleep(0.001)
        emptied = time.perf_counter() - start
        sub.wait(max(1.0, deadline - time.perf_counter()))
        seconds = time.perf_counter() - start
    finally:
        publisher.stop(drain_timeout=1.0)
    limit = f"replay_rate {rate:g}/s" if rate < 1e9 else "no replay_rate limit"
    name = f"agent: max_inflight {settings.max_inflight}, {limit}"
    name += {"agent": " (defaults)", "former": " (former defaults)"}.get(key, "")
    return Run(name, len(stored), seconds, emptied, check(stored, sub.payloads()), rate)


def _delay_proxy(listen: int, target: int, one_way_s: float) -> None:
    """Forward 127.0.0.1:``listen`` to ``target``, each chunk ``one_way_s`` late in each direction."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await chunks.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                chunks.put_nowait((loop.time() + one_way_s, data))
        chunks.put_nowait((loop.time() + one_way_s, b""))
        with contextlib.suppress(OSError):
            await sender

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


@contextlib.contextmanager
def slow_link(target: int, rtt_ms: float) -> Iterator[int]:
    """A port that reaches ``target`` with ``rtt_ms`` of round trip, served by a process of its own."""
    port = servers.free_port()
    proc = multiprocessing.get_context("spawn").Process(
        target=_delay_proxy, args=(port, target, rtt_ms / 2000), daemon=True
    )
    proc.start()
    try:
        servers.wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.join(10)


def drain_time(rate: float) -> str:
    """How long a day's backlog takes at ``rate`` while live batches keep coming at LIVE_RATE."""
    seconds = DAY_BATCHES / (rate - LIVE_RATE)
    if seconds < 120:
        return f"{seconds:,.0f} s"
    return f"{seconds / 60:,.1f} min" if seconds < 7200 else f"{seconds / 3600:,.1f} h"


def versions() -> str:
    broker = subprocess.run(
        [servers.binary("mosquitto", "mosquitto"), "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    python = sys.version.split()[0]
    return f"{os.cpu_count()} CPUs, Python {python}, paho-mqtt {paho.mqtt.__version__}, {broker}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.outbox_replay")
    parser.add_argument("batches", nargs="?", type=int, default=20_000, help="backlog the agent drains")
    parser.add_argument("--baseline", type=int, default=2_000, help="backlog the naive baseline drains")
    parser.add_argument("--readings", type=int, default=22, help="readings per batch (demo plant: 22)")
    parser.add_argument("--former", type=int, default=200, help="backlog for the former defaults; 0: skip")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="round trip of the second link; 0: skip")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    print(versions())
    plans: list[tuple[str, int, float | None, int | None]] = [
        ("naive", min(args.baseline, args.batches), None, None),
        ("agent", args.batches, OutboxSection().replay_rate, None),
        ("unlimited", args.batches, 1e9, None),
    ]
    if args.former:
        plans.append(("former", args.former, FORMER_REPLAY_RATE, FORMER_MAX_INFLIGHT))
    links = [("loopback", 0.0)] + (
        [(f"link with {args.rtt_ms:g} ms RTT", args.rtt_ms)] if args.rtt_ms else []
    )
    results: list[tuple[str, list[Run]]] = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        with servers.mosquitto(work / "mosquitto") as broker:
            for link, rtt in links:
                runs: list[Run] = []
                with slow_link(broker.port, rtt) if rtt else contextlib.nullcontext(broker.port) as port:
                    for key, count, rate, inflight in plans:
                        if rtt and key == "naive":
                            count = max(1, count // 10)  # one round trip per batch: a tenth is enough
                        outbox, stored = fill(work / f"{key}-{port}.db", count, args.readings)
                        if rate is None and not results:
                            print(
                                f"batches of {args.readings} readings, {outbox.bytes / count:,.0f} bytes each"
                            )
                        try:
                            if rate is None:
                                runs.append(naive(broker, port, outbox, stored, work))
                            else:
                                runs.append(agent(broker, port, outbox, stored, work, key, rate, inflight))
                        finally:
                            outbox.close()
                results.append((link, runs))
    for link, runs in results:
        baseline = runs[0].rate
        print(
            f"\n{link + ': publisher':<58} {'batches':>8} {'s':>7} {'batches/s':>10} {'ratio':>7}  "
            "day's backlog*"
        )
        for run in runs:
            ratio = run.rate / baseline
            print(
                f"{run.name:<58} {run.count:>8,} {run.seconds:>7.2f} {run.rate:>10,.0f} "
                f"{ratio:>6.{1 if ratio >= 1 else 2}f}x  {drain_time(run.sustained)}"
            )
    print(
        f"* projected: {DAY_BATCHES:,} batches (a day offline at 1 batch/s) drain in "
        f"{DAY_BATCHES:,} / (rate - {LIVE_RATE:g}) s while live batches keep coming;\n  rate is the measured "
        "one capped at replay_rate (a short run's figure includes the first second's burst)"
    )
    every = [(link, run) for link, runs in results for run in runs]
    for link, run in every:
        verdict = run.problem or f"all {run.count:,} batches arrived, byte for byte, in seq order"
        print(f"{link}, {run.name}: {verdict}")
    return 1 if any(run.problem for _, run in every) else 0


if __name__ == "__main__":
    sys.exit(main())
