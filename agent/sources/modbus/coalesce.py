"""Group a device's points into poll groups, and each group's points into as few requests as limits allow.

A request costs 5-50 ms on a real meter and the connection carries one at a time, so reading 20 scattered
registers one by one can take a second. Points with the same function code are merged while the request stays
within ``max_registers`` (125 is the protocol's limit for FC 3/4) and the unused registers between two points
stay within ``max_gap`` (reading a few unused registers is cheaper than another round trip, but some meters
answer "illegal data address" for holes in their map: ``max_gap = 0`` then reads only contiguous runs).
Coils and discrete inputs (FC 1/2) are counted in bits with the same byte budget: 16 bits per register of
``max_registers`` and ``max_gap``, and at most 2000 bits, the protocol's limit.

Points whose interval differs from the device's form their own poll group (energy counters every minute,
power every second), so each group is coalesced on its own: merging them would read the slow points fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.sources.modbus.config import ModbusDevice, ModbusPoint
from agent.sources.modbus.decode import BIT_FUNCTIONS, decode, decode_bit, register_count

#: Protocol limit of one read of coils or discrete inputs, in bits.
MAX_BITS = 2000


@dataclass(frozen=True, slots=True)
class Span:
    """One point placed in the protocol's address space: ``address`` is 0-based, after the address base.

    ``scale`` is the point's scale times the CT/PT ratios it applies, so the ratios are applied exactly once.
    """

    point: ModbusPoint
    function: int
    address: int
    count: int
    order: str
    scale: float

    @property
    def end(self) -> int:
        return self.address + self.count

    def value(self, words: list[int]) -> float:
        """The published value from this span's registers (or bit, for FC 1/2)."""
        p = self.point
        if self.function in BIT_FUNCTIONS:
            raw: float = words[0]
        elif p.bit is not None:
            raw = decode_bit(words[0], p.bit, self.order)
        else:
            return decode(words, p.type, self.order, self.scale, p.offset)
        return raw * self.scale + p.offset


@dataclass(frozen=True, slots=True)
class Request:
    """One read: ``count`` registers (or bits) from ``address`` with ``function``; ``spans`` lie inside it."""

    function: int
    address: int
    count: int
    spans: tuple[Span, ...]

    def registers_of(self, span: Span, registers: list[int]) -> list[int]:
        """The slice of this request's response that belongs to ``span``."""
        start = span.address - self.address
        return registers[start : start + span.count]


@dataclass(frozen=True, slots=True)
class PollGroup:
    """Points of one device polled together every ``interval`` seconds, as ``requests``."""

    interval: float
    requests: tuple[Request, ...]


def spans(device: ModbusDevice, points: Iterable[ModbusPoint] | None = None) -> list[Span]:
    """The device's points (or ``points``) in protocol addresses, with the device's defaults applied."""
    return [
        Span(
            point=p,
            function=p.function,
            address=device.protocol_address(p),
            count=1 if p.function in BIT_FUNCTIONS else register_count(p.type),
            order=p.order or device.order,
            scale=p.scale * device.ratio_factor(p),
        )
        for p in (device.points if points is None else points)
    ]


def limits(function: int, max_registers: int, max_gap: int) -> tuple[int, int]:
    """Largest request and largest hole for ``function``, in its own units (registers, or bits for FC 1/2)."""
    if function in BIT_FUNCTIONS:
        return min(MAX_BITS, 16 * max_registers), 16 * max_gap
    return max_registers, max_gap


def request_of(items: Sequence[Span]) -> Request:
    """The one request that reads ``items`` (spans of one function), from the first register to the last."""
    ordered = tuple(sorted(items, key=lambda s: (s.address, s.count)))
    start, end = ordered[0].address, max(s.end for s in ordered)
    return Request(ordered[0].function, start, end - start, ordered)


def coalesce(items: Iterable[Span], max_registers: int = 125, max_gap: int = 16) -> list[Request]:
    """Merge spans into requests, in (function, address) order. Overlapping spans share registers."""
    requests: list[Request] = []
    group: list[Span] = []
    start = end = 0
    for span in sorted(items, key=lambda s: (s.function, s.address, s.count)):
        size, gap = limits(span.function, max_registers, max_gap)
        fits = (
            group
            and span.function == group[0].function
            and span.address - end <= gap
            and max(end, span.end) - start <= size
        )
        if fits:
            group.append(span)
            end = max(end, span.end)
            continue
        if group:
            requests.append(Request(group[0].function, start, end - start, tuple(group)))
        group, start, end = [span], span.address, span.end
    if group:
        requests.append(Request(group[0].function, start, end - start, tuple(group)))
    return requests


def device_requests(device: ModbusDevice) -> list[Request]:
    """The requests that read every point of ``device`` once, within its configured limits."""
    return coalesce(spans(device), device.max_registers, device.max_gap)


def poll_groups(device: ModbusDevice) -> list[PollGroup]:
    """The device's points by interval (a point's own, else the device's), fastest first."""
    by_interval: dict[float, list[ModbusPoint]] = {}
    for p in device.points:
        by_interval.setdefault(p.interval or device.interval, []).append(p)
    return [
        PollGroup(interval, tuple(coalesce(spans(device, points), device.max_registers, device.max_gap)))
        for interval, points in sorted(by_interval.items())
    ]
