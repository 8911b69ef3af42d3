"""A simulated DL/T 645-2007 three-phase meter that knows its true energy.

The plant's load is ``primary_kw`` (import when positive, export when negative), piecewise constant: it
changes only through ``set_power``, and the counters integrate it exactly (kW × seconds / 3600) at each
change and each read, so the meter's true energy is known to the last joule at any instant.

Like a meter connected through instrument transformers, it reports **secondary** values: powers and energies
divided by ``ct × pt``, currents by ``ct``, voltages by ``pt`` (the standard's XX.XXXX kW power layout,
79.9999 kW signed, only fits a large load on the secondary side). Numbers are quantised to each layout's
decimals; an energy counter rolls over past its last digit, an instantaneous value is clamped to its range.

It answers a read of an identifier it has (control 91H), an abnormal reply with error word 02H ("no
requested data", control D1H) for one it has not, the read-address command (13H) with its address (93H),
and nothing at all for frames to other addresses or of other functions. An address byte AAH in a request
is a wildcard. Every answer is kept in ``answers``, so a test knows exactly what went on the wire. The
combined active energy (00000000) is import + export, the usual combination word.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from simulators.dlt645.wire import Request, bcd_address, reply

READ, READ_ADDRESS = 0x11, 0x13
NO_DATA = 0x02
WILDCARD_BYTE = 0xAA


@dataclass(frozen=True)
class Layout:
    """How the standard lays a value out: digits (2 a byte), decimals, sign bit, counter (rolls over)."""

    digits: int
    decimals: int
    signed: bool = False
    counter: bool = False


ENERGY = Layout(8, 2, counter=True)
COMBINED = Layout(8, 2, signed=True, counter=True)
VOLTAGE, CURRENT, POWER = Layout(4, 1), Layout(6, 3, signed=True), Layout(6, 4, signed=True)
FACTOR, FREQUENCY = Layout(4, 3, signed=True), Layout(4, 2)


def encode(value: float, layout: Layout) -> tuple[float, bytes]:
    """``(the number sent, its value bytes least significant first)`` for ``value`` in ``layout``."""
    magnitude = round(abs(value) * 10**layout.decimals)
    top = 10**layout.digits
    if layout.signed:
        top = 8 * 10 ** (layout.digits - 1)  # the sign takes the top bit, so the top digit is 0-7
    magnitude = magnitude % top if layout.counter else min(magnitude, top - 1)
    negative = layout.signed and value < 0 and magnitude > 0
    digits = bytearray.fromhex(f"{magnitude:0{layout.digits}d}")  # most significant byte first
    if negative:
        digits[0] |= 0x80
    sent = magnitude / 10**layout.decimals
    return (-sent if negative else sent), bytes(reversed(digits))


@dataclass(frozen=True)
class Answer:
    """One read the meter answered: when (Unix seconds), which DI, the number sent and its value bytes."""

    t: float
    di: int
    value: float
    raw: bytes


@dataclass
class SimulatedMeter:
    address: str
    primary_kw: float = 1500.0
    ct: float = 1.0
    pt: float = 1.0
    #: Phase-to-neutral voltage on the primary side.
    primary_v: float = 230.0
    power_factor: float = 0.92
    frequency_hz: float = 50.0
    import_kwh: float = 48_213.55
    export_kwh: float = 0.0
    preamble: bool = True
    clock: Callable[[], float] = time.time
    answers: list[Answer] = field(default_factory=list)
    #: Every identifier a master asked this meter for, answered or not, in order.
    reads: list[int] = field(default_factory=list)
    _since: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._since = self.clock()

    def set_power(self, kw: float) -> None:
        """The load changes now; energy up to now is counted at the old power."""
        self._integrate()
        self.primary_kw = kw

    def _integrate(self) -> None:
        now = self.clock()
        kwh = self.primary_kw * (now - self._since) / 3600
        if kwh >= 0:
            self.import_kwh += kwh
        else:
            self.export_kwh -= kwh
        self._since = now

    def true_values(self) -> dict[int, tuple[float, Layout]]:
        """Every identifier this meter has: its true secondary value now, and its layout."""
        self._integrate()
        ratio = self.ct * self.pt
        kw = self.primary_kw / ratio
        amps = abs(self.primary_kw) * 1000 / (3 * self.primary_v * self.power_factor) / self.ct
        amps = math.copysign(amps, self.primary_kw)
        kvar = kw * math.tan(math.acos(self.power_factor))
        values = {
            0x00000000: ((self.import_kwh + self.export_kwh) / ratio, COMBINED),
            0x00010000: (self.import_kwh / ratio, ENERGY),
            0x00020000: (self.export_kwh / ratio, ENERGY),
            0x02030000: (kw, POWER),
            0x02040000: (kvar, POWER),
            0x02060000: (math.copysign(self.power_factor, self.primary_kw), FACTOR),
            0x02800002: (self.frequency_hz, FREQUENCY),
        }
        for phase in (1, 2, 3):
            values[0x02010000 | phase << 8] = (self.primary_v / self.pt, VOLTAGE)
            values[0x02020000 | phase << 8] = (amps, CURRENT)
            values[0x02030000 | phase << 8] = (kw / 3, POWER)
        return values

    def addressed_by(self, address: bytes) -> bool:
        return all(a in (b, WILDCARD_BYTE) for a, b in zip(address, bcd_address(self.address), strict=True))

    def answer(self, request: Request) -> bytes | None:
        """The meter's reply to ``request``, or None if it stays silent."""
        if not self.addressed_by(request.address) or request.control & 0x80:
            return None
        if request.control == READ_ADDRESS:
            return reply(self.address, 0x93, bcd_address(self.address), self.preamble)
        if request.control != READ or len(request.data) != 4:
            return None
        di = int.from_bytes(request.data, "little")
        self.reads.append(di)
        known = self.true_values().get(di)
        if known is None:
            return reply(self.address, 0xD1, bytes([NO_DATA]), self.preamble)
        sent, raw = encode(*known)
        self.answers.append(Answer(self.clock(), di, sent, raw))
        return reply(self.address, 0x91, request.data + raw, self.preamble)
