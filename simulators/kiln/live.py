"""The live plant: the model stepped in wall-clock time behind Modbus, an OPC UA DCS and a truth file.

Model time is whole milliseconds of the wall clock (``time.time_ns() // 1e6``). The model is advanced on every
tick and also on every Modbus read, so a register always shows the counter at the instant it was read; truth
rows carry the exact model instant they describe. A reading timestamped by its client therefore lines up with
the truth file to within the client's own timing, and truth between rows is linear to well below 0.01 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import structlog
from pymodbus.server import ModbusTcpServer

from simulators.kiln import quantise
from simulators.kiln.csvfiles import TRUTH_HEADER, iso_utc_ms, write_truth_rows
from simulators.kiln.meters import State
from simulators.kiln.modbus_server import start_modbus_server
from simulators.kiln.model import KilnLine
from simulators.kiln.opcua_server import DcsServer
from simulators.kiln.points import MODBUS_POINTS

log = structlog.get_logger(__name__)


#: Totaliser points by name.
POINTS = {p.name: p for p in MODBUS_POINTS if p.is_counter}


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class MeterEvents:
    """Counter events to stage on the live plant, for tests of the collector's counter rules.

    ``presets``: point name → the totaliser's register value at the start (e.g. just below its modulus, so
    it rolls over within a short run). ``replacements``: point name → seconds after the start at which its
    meter is replaced by a new one counting from 0.
    """

    presets: Mapping[str, int | float] = field(default_factory=dict)
    replacements: Mapping[str, float] = field(default_factory=dict)


class LivePlant:
    """A ``KilnLine`` tied to the wall clock; ``state()`` brings it to the current millisecond first."""

    def __init__(self, seed: int, start_ms: int, events: MeterEvents | None = None) -> None:
        self.line = KilnLine(seed=seed)
        self.t_ms = self.start_ms = start_ms
        self.events = events or MeterEvents()
        unknown = (set(self.events.presets) | set(self.events.replacements)) - set(POINTS)
        if unknown:
            raise ValueError(f"not totaliser points: {sorted(unknown)}; use one of {sorted(POINTS)}")
        self.counters: dict[str, tuple[int | float, float]] = {
            name: (start, 0.0) for name, start in self.events.presets.items()
        }
        self.replaced: set[str] = set()

    def advance_to(self, t_ms: int) -> None:
        """Step the model to ``t_ms``; a clock that went backwards leaves it where it is."""
        if t_ms > self.t_ms:
            self.line.step((t_ms - self.t_ms) / 1000.0)
            self.t_ms = t_ms
            for name, after_s in self.events.replacements.items():
                if name not in self.replaced and t_ms >= self.start_ms + after_s * 1000:
                    point = POINTS[name]
                    old_final = quantise.scaled(point, self.state_now().register(point)).item()
                    self.counters[name] = (0, self.line.truth[point.source])
                    self.replaced.add(name)
                    log.info("sim.meter_replaced", point=name, t_ms=t_ms, old_final=old_final)

    def state(self) -> State:
        self.advance_to(wall_ms())
        return self.state_now()

    def state_now(self) -> State:
        """What the meters show at the model's current instant."""
        return State(rates=dict(self.line.rates), truth=dict(self.line.truth), counters=dict(self.counters))


class TruthFile:
    """The live truth CSV: header at open, then one flushed row per call so a reader sees it at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: TextIO = path.open("w", encoding="ascii", newline="")
        self._out.write(TRUTH_HEADER)
        self._last_ms: int | None = None

    def row(self, plant: LivePlant) -> None:
        """Write the plant's truth at its current instant (once per instant)."""
        if plant.t_ms == self._last_ms:
            return
        self._last_ms = plant.t_ms
        truth = {k: [v] for k, v in plant.line.truth.items()}
        write_truth_rows(self._out, iso_utc_ms([plant.t_ms]), truth)
        self._out.flush()

    def close(self) -> None:
        self._out.close()


async def _accepting(port: int, timeout_s: float = 10.0) -> None:
    """Return once ``127.0.0.1:port`` accepts a TCP connection."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def run_live(
    modbus_port: int,
    opcua_port: int | None,
    truth_path: Path | None,
    tick_s: float = 0.1,
    truth_interval_s: float = 1.0,
    seed: int = 1,
    stop: asyncio.Event | None = None,
    events: MeterEvents | None = None,
) -> None:
    """Run the plant until ``stop`` is set; logs ``sim.ready`` once both servers accept connections.

    The truth file gets a row of zeros at the start (before any server listens), a row about every
    ``truth_interval_s``, and a last row when the run stops.
    """
    stop = stop or asyncio.Event()
    plant = LivePlant(seed, wall_ms(), events)
    truth = TruthFile(truth_path) if truth_path is not None else None
    if truth is not None:
        truth.row(plant)
    modbus: ModbusTcpServer | None = None
    dcs: DcsServer | None = None
    try:
        modbus = await start_modbus_server(plant.state, modbus_port)
        if opcua_port is not None:
            dcs = await DcsServer.start(opcua_port, plant.state().rates)
            await _accepting(opcua_port)
        await _accepting(modbus_port)
        log.info("sim.ready", modbus_port=modbus_port, opcua_port=opcua_port, truth=str(truth_path or ""))
        interval_ms = round(truth_interval_s * 1000)
        next_row_ms = plant.t_ms + interval_ms
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_s)
            plant.advance_to(wall_ms())
            if dcs is not None:
                await dcs.update(plant.line.rates, plant.t_ms)
            if truth is not None and plant.t_ms >= next_row_ms:
                truth.row(plant)
                next_row_ms = max(next_row_ms + interval_ms, plant.t_ms + 1)
        plant.advance_to(wall_ms())
        if truth is not None:
            truth.row(plant)
    finally:
        if modbus is not None:
            await modbus.shutdown()
        if dcs is not None:
            await dcs.stop()
        if truth is not None:
            truth.close()
        log.info("sim.stopped", elapsed_s=plant.line.elapsed_s)
