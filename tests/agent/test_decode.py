"""Register decoding for every type × byte/word order, against values encoded with struct by hand."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.sources.modbus.coalesce import spans
from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.decode import decode, decode_bit, decode_raw, decode_string, register_count

# Where each byte of the big-endian value (index 0 = most significant) travels in the register stream,
# written out per width from the order names' definition (docs: "ABCD" = big endian, "CDAB" = low word first,
# "BADC" = bytes swapped in each word, "DCBA" = little endian).
STREAM = {
    2: {"ABCD": [0, 1], "CDAB": [0, 1], "BADC": [1, 0], "DCBA": [1, 0]},
    4: {"ABCD": [0, 1, 2, 3], "CDAB": [2, 3, 0, 1], "BADC": [1, 0, 3, 2], "DCBA": [3, 2, 1, 0]},
    8: {
        "ABCD": [0, 1, 2, 3, 4, 5, 6, 7],
        "CDAB": [6, 7, 4, 5, 2, 3, 0, 1],
        "BADC": [1, 0, 3, 2, 5, 4, 7, 6],
        "DCBA": [7, 6, 5, 4, 3, 2, 1, 0],
    },
}
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
TYPES = {
    "int16": (">h", st.integers(-(2**15), 2**15 - 1)),
    "uint16": (">H", st.integers(0, 2**16 - 1)),
    "int32": (">i", st.integers(-(2**31), 2**31 - 1)),
    "uint32": (">I", st.integers(0, 2**32 - 1)),
    "int64": (">q", st.integers(-(2**63), 2**63 - 1)),
    "uint64": (">Q", st.integers(0, 2**64 - 1)),
    "float32": (">f", st.floats(width=32, allow_nan=False)),
    "float64": (">d", st.floats(allow_nan=False)),
}


def registers_for(fmt: str, value: int | float, order: str) -> list[int]:
    big = struct.pack(fmt, value)
    stream = bytes(big[i] for i in STREAM[len(big)][order])
    return [stream[i] << 8 | stream[i + 1] for i in range(0, len(stream), 2)]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_", list(TYPES))
def test_every_type_and_order_round_trips(type_: str, order: str) -> None:
    fmt, values = TYPES[type_]

    @given(values)
    def check(value: int | float) -> None:
        registers = registers_for(fmt, value, order)
        assert len(registers) == register_count(type_)
        assert decode_raw(registers, type_, order) == value

    check()


def test_known_float32_layouts() -> None:
    # 1.0f = 0x3F800000: the four layouts of the same value, written out by hand.
    assert decode_raw([0x3F80, 0x0000], "float32", "ABCD") == 1.0
    assert decode_raw([0x0000, 0x3F80], "float32", "CDAB") == 1.0
    assert decode_raw([0x803F, 0x0000], "float32", "BADC") == 1.0
    assert decode_raw([0x0000, 0x803F], "float32", "DCBA") == 1.0


def test_known_integer_layouts() -> None:
    # 0x01020304 = 16909060; -2 as int16 = 0xFFFE; 2**32 + 5 as uint64 low word first.
    assert decode_raw([0x0102, 0x0304], "uint32", "ABCD") == 16909060
    assert decode_raw([0x0304, 0x0102], "uint32", "CDAB") == 16909060
    assert decode_raw([0x0201, 0x0403], "uint32", "BADC") == 16909060
    assert decode_raw([0x0403, 0x0201], "uint32", "DCBA") == 16909060
    assert decode_raw([0xFFFE], "int16", "ABCD") == -2
    assert decode_raw([0xFEFF], "int16", "BADC") == -2
    assert decode_raw([0x0005, 0x0000, 0x0001, 0x0000], "uint64", "CDAB") == 2**32 + 5


def test_scale_and_offset() -> None:
    # A DTSD1352 power register: 1234 W-ish counts × 0.001 × CT 20 = 24.68 kW; offset shifts afterwards.
    assert math.isclose(decode([0x0000, 0x04D2], "int32", "ABCD", scale=0.02), 24.68)
    assert math.isclose(decode([0x0000, 0x04D2], "int32", "ABCD", scale=0.02, offset=-4.68), 20.0)
    # A Wh int64 counter 81_234_567 Wh → 81234.567 kWh.
    assert math.isclose(decode([0, 0, 0x04D7, 0x8A87], "int64", "ABCD", scale=0.001), 81234.567)


def test_wrong_register_count_is_refused() -> None:
    with pytest.raises(ValueError, match="float32 needs 2 registers"):
        decode_raw([1], "float32", "ABCD")


@pytest.mark.parametrize("order", ORDERS)
def test_a_bit_of_a_register_follows_the_byte_order(order: str) -> None:
    # 0x8001 as uint16: bit 15 and bit 0 set. The register stream holds its bytes in the order's layout.
    (register,) = registers_for(">H", 0x8001, order)
    assert [decode_bit(register, bit, order) for bit in range(16)] == [1] + [0] * 14 + [1]
    (register,) = registers_for(">H", 1 << 9, order)
    assert [b for b in range(16) if decode_bit(register, b, order)] == [9]


def test_bit_outside_a_register_is_refused() -> None:
    with pytest.raises(ValueError, match=r"bit must be 0\.\.15"):
        decode_bit(0xFFFF, 16)


@pytest.mark.parametrize("order", ORDERS)
def test_strings_strip_nul_padding(order: str) -> None:
    # "PM5110" in 20 registers, NUL-padded, as a meter's model register; odd length pads the last register.
    text = b"PM5110".ljust(40, b"\0")
    stream = text if order in ("ABCD", "CDAB") else bytes(text[i ^ 1] for i in range(len(text)))
    registers = list(struct.unpack(">20H", stream))
    assert decode_string(registers, order) == "PM5110"
    assert decode_string(list(struct.unpack(">2H", b"abc\0"))) == "abc"


def test_span_values_apply_scale_ratios_and_offset_once() -> None:
    # DTSD1352 power: int32 0.001 kW secondary, CT 20 × PT 1 → primary kW; frequency applies no ratio.
    device = ModbusDevice.model_validate(
        {
            "name": "aux",
            "host": "127.0.0.1",
            "ct_ratio": 20,
            "pt_ratio": 2,
            "points": [
                {"name": "kw", "address": 0, "type": "int32", "scale": 0.001, "kind": "power"},
                {"name": "hz", "address": 2, "type": "uint16", "scale": 0.01},
                {"name": "a", "address": 3, "type": "uint16", "scale": 0.01, "ratios": "ct", "offset": -1},
                {"name": "flag", "address": 4, "type": "uint16", "bit": 2},
            ],
        }
    )
    by_name = {s.point.name: s for s in spans(device)}
    assert by_name["kw"].value(registers_for(">i", 1234, "ABCD")) == pytest.approx(1234 * 0.001 * 20 * 2)
    assert by_name["hz"].value([4999]) == pytest.approx(49.99)
    assert by_name["a"].value([500]) == pytest.approx(5.0 * 20 - 1)
    assert by_name["flag"].value([0b100]) == 1.0 and by_name["flag"].value([0b011]) == 0.0
