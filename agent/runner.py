"""The agent's main loop: pollers → batches → outbox → publisher, until SIGTERM or SIGINT.

Pollers run one task per device (or OPC UA server) and hand their readings to a buffer. Every
``agent.batch_interval`` seconds the buffer becomes one ``wire.Batch`` (split above ``MAX_READINGS`` so a
message stays far below the collector's size limit), is written to the outbox, and the publisher is woken.
One batch per interval rather than per device keeps the message rate low (a Python subscriber, not the broker,
is the bottleneck) while every reading keeps its own timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine

import structlog

from agent import wire
from agent.config import AgentConfig
from agent.outbox import Outbox
from agent.publisher import Publisher
from agent.sources.reading import Reading, Sink

log = structlog.get_logger("agent.runner")

#: Readings per batch: ~40 bytes each in JSON, so ~200 kB, a fifth of wire.MAX_PAYLOAD_BYTES.
MAX_READINGS = 5000


def channel_metadata(config: AgentConfig) -> list[dict[str, str]]:
    """The birth message's channel list: what each channel measures and where it comes from."""
    channels = [
        {"name": p.name, "kind": p.kind, "unit": p.unit, "device": d.name, "source": "modbus"}
        for d in config.modbus
        for p in d.points
    ]
    channels += [
        {"name": p.name, "kind": p.kind, "unit": p.unit, "device": s.name, "source": "opcua"}
        for s in config.opcua
        for p in s.points
    ]
    return channels


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


async def run_agent(config: AgentConfig, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT arrives); then flush, publish offline, close."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)

    outbox = Outbox(config.outbox.path, config.outbox.max_bytes, config.outbox.max_age_s)
    publisher = Publisher(
        config.mqtt, config.client_id, config.agent.site, config.agent.id, outbox, channel_metadata(config)
    )
    buffer: list[Reading] = []

    def flush() -> None:
        if not buffer:
            return
        for batch in to_batches(buffer, config.agent.site, config.agent.id, outbox.epoch):
            store(outbox, batch)
        buffer.clear()
        publisher.notify()

    log.info(
        "agent starting",
        agent=config.agent.id,
        site=config.agent.site,
        epoch=outbox.epoch,
        pending=len(outbox),
        modbus_devices=len(config.modbus),
        opcua_servers=len(config.opcua),
    )
    publisher.start()
    tasks = [asyncio.create_task(coro, name=name) for name, coro in _pollers(config, buffer.extend)]
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), config.agent.batch_interval)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # a poller bug must not leave a silently half-dead agent
            flush()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        flush()
        await asyncio.to_thread(publisher.stop)
        outbox.close()
        log.info("agent stopped", agent=config.agent.id)


def _pollers(config: AgentConfig, sink: Sink) -> list[tuple[str, Coroutine[None, None, None]]]:
    """Modbus devices share one poller (it groups them by connection); each OPC UA server has its own.

    Each protocol's library is imported only when configured: asyncua alone takes a second to import.
    """
    pollers: list[tuple[str, Coroutine[None, None, None]]] = []
    if config.modbus:
        from agent.sources.modbus.poller import ModbusPoller

        pollers.append(("modbus", ModbusPoller(config.modbus, sink).run()))
    if config.opcua:
        from agent.sources.opcua.poller import OpcuaPoller

        pollers += [(f"opcua:{s.name}", OpcuaPoller(s, sink).run()) for s in config.opcua]
    return pollers
