"""Group a device's points into as few Modbus requests as its limits allow.

A request costs 5-50 ms on a real meter and the connection carries one at a time, so reading 20 scattered
registers one by one can take a second. Points with the same function code are merged while the request stays
within ``max_registers`` (125 is the protocol's limit for FC 3/4) and the unused registers between two points
stay within ``max_gap`` (reading a few unused registers is cheaper than another round trip, but some meters
answer "illegal data address" for holes in their map: ``max_gap = 0`` then reads only contiguous runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.config import ModbusDevice, ModbusPoint
from agent.sources.modbus.decode import register_count


@dataclass(frozen=True, slots=True)
class Span:
    """One point placed in the protocol's address space: ``address`` is 0-based, after ``address_base``."""

    point: ModbusPoint
    function: int
    address: int
    count: int
    order: str

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Request:
    """One read: ``count`` registers from ``address`` with ``function``; ``spans`` lie inside it."""

    function: int
    address: int
    count: int
    spans: tuple[Span, ...]

    def registers_of(self, span: Span, registers: list[int]) -> list[int]:
        """The slice of this request's response that belongs to ``span``."""
        start = span.address - self.address
        return registers[start : start + span.count]


def spans(device: ModbusDevice) -> list[Span]:
    """The device's points in protocol addresses, with the device's defaults applied."""
    return [
        Span(
            point=p,
            function=p.function,
            address=p.address - device.address_base,
            count=register_count(p.type),
            order=p.order or device.order,
        )
        for p in device.points
    ]


def coalesce(items: Iterable[Span], max_registers: int = 125, max_gap: int = 16) -> list[Request]:
    """Merge spans into requests, in (function, address) order. Overlapping spans share registers."""
    requests: list[Request] = []
    group: list[Span] = []
    start = end = 0
    for span in sorted(items, key=lambda s: (s.function, s.address, s.count)):
        fits = (
            group
            and span.function == group[0].function
            and span.address - end <= max_gap
            and max(end, span.end) - start <= max_registers
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
    """The requests one poll of ``device`` makes, within its configured limits."""
    return coalesce(spans(device), device.max_registers, device.max_gap)
