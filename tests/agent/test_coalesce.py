"""Coalescing a device's points into Modbus requests: function codes, the 125-register limit, holes."""

from __future__ import annotations

from agent.config import ModbusDevice
from agent.sources.modbus.coalesce import device_requests


def device(points: list[dict], **kw: object) -> ModbusDevice:
    return ModbusDevice.model_validate({"name": "m", "host": "127.0.0.1", "points": points, **kw})


def layout(dev: ModbusDevice) -> list[tuple[int, int, int, list[str]]]:
    return [(r.function, r.address, r.count, [s.point.name for s in r.spans]) for r in device_requests(dev)]


def test_contiguous_points_share_one_request() -> None:
    dev = device(
        [
            {"name": "t", "address": 0, "type": "uint32"},
            {"name": "tph", "address": 2, "type": "float32"},
        ]
    )
    assert layout(dev) == [(3, 0, 4, ["t", "tph"])]


def test_gap_limit_splits_requests() -> None:
    points = [
        {"name": "a", "address": 0, "type": "uint16"},
        {"name": "b", "address": 5, "type": "uint16"},  # hole of 4 registers (1..4)
        {"name": "c", "address": 20, "type": "uint16"},  # hole of 14 registers (6..19)
    ]
    assert layout(device(points, max_gap=4)) == [(3, 0, 6, ["a", "b"]), (3, 20, 1, ["c"])]
    assert layout(device(points, max_gap=3)) == [(3, 0, 1, ["a"]), (3, 5, 1, ["b"]), (3, 20, 1, ["c"])]
    assert layout(device(points, max_gap=14)) == [(3, 0, 21, ["a", "b", "c"])]


def test_function_codes_never_mix() -> None:
    dev = device(
        [
            {"name": "hr", "address": 10, "type": "float32"},
            {"name": "ir", "address": 10, "type": "float32", "function": 4},
            {"name": "hr2", "address": 12, "type": "float32"},
        ]
    )
    assert layout(dev) == [(3, 10, 4, ["hr", "hr2"]), (4, 10, 2, ["ir"])]


def test_request_never_exceeds_max_registers() -> None:
    # 70 float64 values back to back = 280 registers: 31 per request at most (124 registers), so 3 requests.
    points = [{"name": f"p{i}", "address": 4 * i, "type": "float64"} for i in range(70)]
    requests = device_requests(device(points))
    assert [(r.address, r.count) for r in requests] == [(0, 124), (124, 124), (248, 32)]
    assert sum(len(r.spans) for r in requests) == 70
    small = device_requests(device(points[:6], max_registers=10))
    assert [(r.address, r.count) for r in small] == [(0, 8), (8, 8), (16, 8)]


def test_address_base_one_shifts_to_protocol_addresses() -> None:
    # Register numbers 40001-style manuals: address 1 is protocol address 0.
    dev = device([{"name": "a", "address": 1, "type": "uint32"}], address_base=1)
    assert layout(dev) == [(3, 0, 2, ["a"])]


def test_overlapping_points_read_once_and_slice_right() -> None:
    dev = device(
        [
            {"name": "whole", "address": 100, "type": "uint32"},
            {"name": "low", "address": 101, "type": "uint16"},
        ]
    )
    (request,) = device_requests(dev)
    assert (request.address, request.count) == (100, 2)
    registers = [0xAAAA, 0xBBBB]
    by_name = {s.point.name: request.registers_of(s, registers) for s in request.spans}
    assert by_name == {"whole": [0xAAAA, 0xBBBB], "low": [0xBBBB]}


def test_point_order_defaults_to_the_device_order() -> None:
    dev = device(
        [
            {"name": "a", "address": 0, "type": "uint32"},
            {"name": "b", "address": 2, "type": "uint32", "order": "DCBA"},
        ],
        order="CDAB",
    )
    (request,) = device_requests(dev)
    assert [s.order for s in request.spans] == ["CDAB", "DCBA"]
