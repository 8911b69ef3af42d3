"""Coalescing a device's points into Modbus requests: function codes, the 125-register limit, holes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.sources.modbus.coalesce import device_requests, poll_groups
from agent.sources.modbus.config import ModbusDevice


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


def test_a_point_wider_than_the_space_left_starts_a_new_request() -> None:
    # 10 registers per request: 0..7 hold four float32; an int64 at 8 would end at 12 > 10.
    points = [{"name": f"f{i}", "address": 2 * i, "type": "float32"} for i in range(4)]
    points.append({"name": "e", "address": 8, "type": "int64"})
    assert layout(device(points, max_registers=10)) == [
        (3, 0, 8, ["f0", "f1", "f2", "f3"]),
        (3, 8, 4, ["e"]),
    ]
    # Exactly filling the limit is fine.
    full = [*points[:4], {"name": "u", "address": 8, "type": "int32"}]
    assert layout(device(full, max_registers=10)) == [(3, 0, 10, ["f0", "f1", "f2", "f3", "u"])]


def test_a_point_wider_than_max_registers_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="float64 needs 4 registers, more than max_registers = 2"):
        device([{"name": "e", "address": 0, "type": "float64"}], max_registers=2)


def test_gap_exactly_at_the_limit_joins() -> None:
    points = [{"name": "a", "address": 0, "type": "uint16"}, {"name": "b", "address": 17, "type": "uint16"}]
    assert layout(device(points, max_gap=16)) == [(3, 0, 18, ["a", "b"])]
    assert len(layout(device(points, max_gap=15))) == 2


def test_coils_and_discrete_inputs_coalesce_in_bits_and_never_mix() -> None:
    points = [
        {"name": "c0", "address": 0, "function": 1},
        {"name": "c100", "address": 100, "function": 1},  # 99-bit hole: within 16 x max_gap = 256 bits
        {"name": "d5", "address": 5, "function": 2},
        {"name": "h5", "address": 5, "type": "uint16", "bit": 3},  # a bit of a holding register
        {"name": "i5", "address": 5, "type": "uint16", "function": 4},
    ]
    assert layout(device(points)) == [
        (1, 0, 101, ["c0", "c100"]),
        (2, 5, 1, ["d5"]),
        (3, 5, 1, ["h5"]),
        (4, 5, 1, ["i5"]),
    ]
    # max_gap 4 registers = 64 bits: the 99-bit hole splits; 2000 bits at most per request.
    assert [r.count for r in device_requests(device(points[:2], max_gap=4))] == [1, 1]
    many = [{"name": f"c{i}", "address": i, "function": 1} for i in range(0, 2500, 100)]
    assert [(r.address, r.count) for r in device_requests(device(many))] == [(0, 1901), (2000, 401)]


def test_bit_points_validate_their_shape() -> None:
    with pytest.raises(ValidationError, match="reads one coil/discrete input"):
        device([{"name": "c", "address": 0, "function": 1, "type": "float32"}])
    with pytest.raises(ValidationError, match="bit picks a bit of a 16-bit register"):
        device([{"name": "b", "address": 0, "type": "uint32", "bit": 3}])


@pytest.mark.parametrize(
    ("notation", "function", "protocol"),
    [("43060", 3, 3059), ("403060", 3, 3059), ("30066", 4, 65), ("40001", 3, 0), ("00001", 1, 0),
     ("10010", 2, 9), ("465536", 3, 65535)],
)  # fmt: skip
def test_register_numbers_carry_function_and_count_from_one(
    notation: str, function: int, protocol: int
) -> None:
    # The quoted manual notation ignores the device's address_base: it always counts from 1.
    for base in (0, 1):
        dev = device([{"name": "p", "address": notation, "type": "uint16"}], address_base=base)
        (request,) = device_requests(dev)
        assert (request.function, request.address) == (function, protocol)


def test_register_number_mistakes_are_explained() -> None:
    with pytest.raises(ValidationError, match="read with function 3, not 4: remove the point's function"):
        device([{"name": "p", "address": "43060", "function": 4, "type": "uint16"}])
    # Quoted addresses are register numbers only: a quoted protocol address is not silently taken as one.
    for text in ("4x3060", "40000", "3059", "0x2012"):
        with pytest.raises(ValidationError, match=f"'{text}' is not a register number such as '43060'"):
            device([{"name": "p", "address": text, "type": "uint16"}])


def test_off_by_one_base_one_and_base_zero_meet_at_the_same_register() -> None:
    # PM5100 manual register 3060 = protocol address 3059: three ways to write it, one request.
    for point, base in (({"address": 3059}, 0), ({"address": 3060}, 1), ({"address": "43060"}, 0)):
        dev = device([{"name": "kw", "type": "float32", **point}], address_base=base)
        assert layout(dev) == [(3, 3059, 2, ["kw"])]
    # A point may set its own base, overriding the device's.
    dev = device([{"name": "kw", "type": "float32", "address": 3060, "address_base": 1}])
    assert layout(dev) == [(3, 3059, 2, ["kw"])]


def test_points_with_their_own_interval_poll_as_separate_groups() -> None:
    dev = device(
        [
            {"name": "kw", "address": 0, "type": "float32"},
            {"name": "kwh", "address": 2, "type": "int64", "interval": 60},
            {"name": "hz", "address": 6, "type": "float32"},
            {"name": "kvarh", "address": 8, "type": "int64", "interval": 60},
        ],
        interval=0.5,
    )
    groups = poll_groups(dev)
    assert [g.interval for g in groups] == [0.5, 60]
    # Each group is coalesced on its own: the fast group does not read the slow counters' registers.
    assert [[(r.address, r.count) for r in g.requests] for g in groups] == [[(0, 8)], [(2, 10)]]
    assert [[s.point.name for r in g.requests for s in r.spans] for g in groups] == [
        ["kw", "hz"],
        ["kwh", "kvarh"],
    ]
