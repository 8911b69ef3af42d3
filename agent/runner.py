"""The agent's main loop: pollers → batches → outbox → publisher, until SIGTERM or SIGINT; SIGHUP reloads.

Each source's pollers (``agent.sources``) hand their readings to a buffer. Every
``agent.batch_interval`` seconds the buffer becomes one ``wire.Batch`` (split above ``MAX_READINGS`` so a
message stays far below the collector's size limit), is written to the outbox, and the publisher is woken.
One batch per interval rather than per device keeps the message rate low (a Python subscriber, not the broker,
is the bottleneck) while every reading keeps its own timestamp.

Reload (SIGHUP, ``systemctl reload``): the config file is read and validated again; if it is invalid the
problems are logged (file, key, fix) and the agent carries on with the config it has. Otherwise the pollers
are restarted with the new config at once (readings already polled are stored first), then the publisher is
replaced: the old one waits for its in-flight acknowledgements and disconnects without announcing
``offline``, the new one connects and publishes the new birth. The outbox is never closed, so epoch and seq
carry on and every stored batch is still delivered. ``agent.id``, ``agent.site`` and ``outbox.path`` name
the stream itself and need a restart; a reload that changes them is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Coroutine
from pathlib import Path

import structlog

from agent import health, metrics, wire
from agent.config import AgentConfig, ConfigError, load_config
from agent.outbox import Outbox
from agent.publisher import Publisher
from agent.sources.base import SourceStatus
from agent.sources.reading import Reading, Sink
from agent.wire import Quality

log = structlog.get_logger("agent.runner")

#: Readings per batch: ~40 bytes each in JSON, so ~200 kB, a fifth of wire.MAX_PAYLOAD_BYTES.
MAX_READINGS = 5000


def channel_metadata(config: AgentConfig) -> list[dict[str, str]]:
    """The birth message's channel list: what each channel measures and where it comes from."""
    return [
        channel.as_dict()
        for source, tables in config.sources()
        for table in tables
        for channel in source.channels(table)
    ]


def to_batches(readings: list[Reading], site: str, agent: str, epoch: str) -> list[wire.Batch]:
    """Readings → batches of at most MAX_READINGS (seq is filled in when the outbox stores each one)."""
    batches = []
    for start in range(0, len(readings), MAX_READINGS):
        batch = wire.Batch(site, agent, epoch, seq=0)
        for r in readings[start : start + MAX_READINGS]:
            batch.add(r.channel, r.t_ms, r.value, r.quality)
        batches.append(batch)
    return batches


def store(outbox: Outbox, batch: wire.Batch) -> int:
    """Write one batch to the outbox under its next seq; returns the seq."""

    def encode(seq: int) -> bytes:
        batch.seq = seq
        return wire.encode_batch(batch)

    return outbox.append(encode)


def stall_limits(config: AgentConfig) -> dict[str, float]:
    """Polled device → seconds it may go without a cycle before /healthz fails (each source decides)."""
    limits = {}
    for source, tables in config.sources():
        for table in tables:
            limit = source.stall_limit(table, config.health.stall_s)
            if limit is not None:
                limits[table.name] = limit
    return limits


async def run_agent(
    config: AgentConfig, stop: asyncio.Event | None = None, config_path: str | Path | None = None
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT arrives); then flush, publish offline, close.

    SIGHUP reloads ``config_path`` (the file ``config`` came from); without it, SIGHUP only logs that a
    restart is needed.
    """
    await Agent(config, Path(config_path) if config_path is not None else None).run(stop or asyncio.Event())


class Agent:
    """One agent process: the outbox lives as long as the process; pollers and publisher are per config."""

    def __init__(self, config: AgentConfig, config_path: Path | None) -> None:
        self.config = config
        self.config_path = config_path
        self.started = time.time()
        self.outbox = Outbox(config.outbox.path, config.outbox.max_bytes, config.outbox.max_age_s)
        self.publisher = self._new_publisher()
        self.health: health.HealthServer | None = None
        self._buffer: list[Reading] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._hup = asyncio.Event()
        self._last_cycle: dict[str, float] = {}
        self._last_good: dict[str, float] = {}
        self._status = SourceStatus()
        self._previous_ack: float | None = None  # the replaced publisher's last ack, across reloads
        self._limits = stall_limits(config)
        self._device_of = {c["name"]: c["device"] for c in channel_metadata(config)}
        self._device_names = _device_names(config)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._hup.set)
        metrics.REGISTRY.add_collector(self._collect)
        log.info(
            "agent starting",
            agent=self.config.agent.id,
            site=self.config.agent.site,
            epoch=self.outbox.epoch,
            pending=len(self.outbox),
            sources={source.key: len(tables) for source, tables in self.config.sources() if tables},
        )
        watchdog: asyncio.Task[None] | None = None
        try:
            self.publisher.start()
            await self._start_health()
            self._start_pollers()
            health.sd_notify("READY=1")
            interval = health.watchdog_interval()
            if interval is not None:
                watchdog = asyncio.create_task(self._watchdog(interval), name="watchdog")
            while not stop.is_set():
                await self._wait(stop)
                for task in self._tasks:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # a poller bug must not leave a silently half-dead agent
                self._flush()
                if self._hup.is_set():
                    await self._reload()
        finally:
            health.sd_notify("STOPPING=1")
            if watchdog is not None:
                watchdog.cancel()
            await self._stop_pollers()
            self._flush()
            await asyncio.to_thread(self.publisher.stop)
            await self._stop_health()
            metrics.REGISTRY.remove_collector(self._collect)
            self.outbox.close()
            log.info("agent stopped", agent=self.config.agent.id)

    # Reload

    async def _reload(self) -> None:
        self._hup.clear()
        if self.config_path is None:
            metrics.RELOADS.inc(result="error")
            log.error("cannot reload: the agent was started without a config file path", fix="restart it")
            return
        begun = time.monotonic()
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            metrics.RELOADS.inc(result="error")
            log.error(
                "config reload failed; still running the previous config",
                file=str(self.config_path),
                problems=exc.problems,
                fix="correct the file, then reload again",
            )
            return
        old = self.config
        fixed = [
            key
            for key, before, after in (
                ("agent.id", old.agent.id, new.agent.id),
                ("agent.site", old.agent.site, new.agent.site),
                ("outbox.path", old.outbox.path, new.outbox.path),
            )
            if before != after
        ]
        if fixed:
            metrics.RELOADS.inc(result="error")
            log.error(
                "config reload refused; still running the previous config",
                file=str(self.config_path),
                keys=fixed,
                fix="these keys identify the data stream: restart the agent to change them",
            )
            return
        if new.agent.log_level != old.agent.log_level:
            log.warning("agent.log_level takes effect at the next restart", log_level=new.agent.log_level)
        health.sd_notify("RELOADING=1")
        await self._stop_pollers()
        self._flush()  # what the old pollers read goes out under the old config
        self.config = new
        self.outbox.max_bytes, self.outbox.max_age_s = new.outbox.max_bytes, new.outbox.max_age_s
        self._limits = stall_limits(new)
        self._device_of = {c["name"]: c["device"] for c in channel_metadata(new)}
        self._device_names = _device_names(new)
        self._start_pollers()
        old_publisher, self._previous_ack = self.publisher, self.publisher.last_ack or self._previous_ack
        await asyncio.to_thread(old_publisher.stop, 2.0, False)
        self.publisher = self._new_publisher()
        self.publisher.start()
        if new.health != old.health:
            await self._stop_health()
            await self._start_health()
        metrics.RELOADS.inc(result="ok")
        log.info(
            "config reloaded",
            file=str(self.config_path),
            took_s=round(time.monotonic() - begun, 3),
            changed=[k for k in type(new).model_fields if getattr(old, k) != getattr(new, k)],
            pending=len(self.outbox),
        )
        health.sd_notify("READY=1")

    # Pieces

    def _new_publisher(self) -> Publisher:
        c = self.config
        return Publisher(
            c.mqtt,
            c.client_id,
            c.agent.site,
            c.agent.id,
            self.outbox,
            channel_metadata(c),
            c.outbox.replay_rate,
        )

    def _sink(self, readings: list[Reading]) -> None:
        """Every poller's sink: count the cycle for metrics and health, then buffer (never blocks)."""
        if readings:
            device = self._device_of.get(readings[0].channel, "unknown")
            metrics.observe_cycle(device, readings)
            now = self._last_cycle[device] = time.time()
            if any(r.quality == Quality.GOOD for r in readings):
                self._last_good[device] = now
        self._buffer.extend(readings)

    def _flush(self) -> None:
        if not self._buffer:
            return
        for batch in to_batches(
            self._buffer, self.config.agent.site, self.config.agent.id, self.outbox.epoch
        ):
            store(self.outbox, batch)
        self._buffer.clear()
        self.publisher.notify()

    def _start_pollers(self) -> None:
        self._tasks = [
            asyncio.create_task(coro, name=name)
            for name, coro in _pollers(self.config, self._sink, self._status)
        ]

    async def _stop_pollers(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._status.clear()

    async def _wait(self, stop: asyncio.Event) -> None:
        """Sleep one batch interval, or less if asked to stop or reload."""
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._hup.wait())}
        try:
            await asyncio.wait(
                waiters, timeout=self.config.agent.batch_interval, return_when="FIRST_COMPLETED"
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _start_health(self) -> None:
        address = self.config.health.address
        if address is None:
            return
        server = health.HealthServer(*address, check=self.check, metrics=metrics.REGISTRY.render)
        try:
            await server.start()
        except OSError as exc:  # metrics must never cost the data: log, and run without the endpoint
            log.error(
                "health endpoint not started",
                listen=self.config.health.listen,
                error=str(exc),
                fix='pick a free health.listen address (or "" for none), then reload',
            )
            return
        self.health = server

    async def _stop_health(self) -> None:
        if self.health is not None:
            await self.health.close()
            self.health = None

    @staticmethod
    async def _watchdog(interval: float) -> None:
        """Ping systemd's watchdog from the event loop: if the loop wedges, systemd restarts the agent."""
        while True:
            health.sd_notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def check(self) -> tuple[bool, dict[str, object]]:
        """The /healthz verdict and details (see agent.health.assess)."""
        snap = health.Snapshot(
            now=time.time(),
            started=self.started,
            stall_s=self.config.health.stall_s,
            dead_pollers=[t.get_name() for t in self._tasks if t.done()],
            devices={
                name: health.DeviceSnapshot(
                    self._last_cycle.get(name),
                    self._last_good.get(name),
                    self._limits.get(name),
                    self._status.refused(name),
                )
                for name in self._device_names
            },
            outbox_batches=len(self.outbox),
            outbox_bytes=self.outbox.bytes,
            outbox_oldest=self.outbox.oldest_created(),
            dropped=self.outbox.dropped_by_reason(),
            mqtt=self.publisher.status(),
            last_ack=self.publisher.last_ack or self._previous_ack,
            identity={
                "agent": self.config.agent.id,
                "site": self.config.agent.site,
                "epoch": self.outbox.epoch,
            },
        )
        return health.assess(snap)

    def _collect(self) -> list[metrics.Sample]:
        """Outbox and process gauges, read at scrape time."""
        oldest = self.outbox.oldest_created()
        samples = [
            metrics.Sample("kilnwatch_outbox_batches", "gauge", "Batches in the outbox.", len(self.outbox)),
            metrics.Sample(
                "kilnwatch_outbox_bytes", "gauge", "Payload bytes in the outbox.", self.outbox.bytes
            ),
            metrics.Sample(
                "kilnwatch_outbox_oldest_age_seconds",
                "gauge",
                "Age of the oldest batch in the outbox (0 when empty).",
                0.0 if oldest is None else max(0.0, time.time() - oldest),
            ),
            *(
                metrics.Sample(
                    "kilnwatch_outbox_dropped_total",
                    "counter",
                    "Batches dropped by the outbox bounds since it was created, by reason.",
                    n,
                    {"reason": reason},
                )
                for reason, n in self.outbox.dropped_by_reason().items()
            ),
            metrics.Sample(
                "kilnwatch_agent_info",
                "gauge",
                "The agent's identity; the epoch changes only when the outbox file is new.",
                1,
                {"agent": self.config.agent.id, "site": self.config.agent.site, "epoch": self.outbox.epoch},
            ),
        ]
        rss = metrics.resident_memory_bytes()
        if rss is not None:
            samples.append(
                metrics.Sample(
                    "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss
                )
            )
        return samples


def _device_names(config: AgentConfig) -> list[str]:
    return [table.name for _, tables in config.sources() for table in tables]


def _pollers(
    config: AgentConfig, sink: Sink, status: SourceStatus
) -> list[tuple[str, Coroutine[None, None, None]]]:
    """Every source's poller tasks; each imports its protocol library only when it has tables."""
    return [poller for source, tables in config.sources() for poller in source.pollers(tables, sink, status)]
