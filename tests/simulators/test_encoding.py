"""Register encodings and quantisation against hand-worked values (struct and arithmetic written here)."""

from __future__ import annotations

import struct

import numpy as np

from simulators.kiln import quantise
from simulators.kiln.points import MODBUS_POINTS
from simulators.kiln.registers import encode

POINTS = {p.name: p for p in MODBUS_POINTS}


def test_float32_word_orders() -> None:
    # 1.5 = 0x3FC00000: high word 0x3FC0, low word 0x0000.
    assert encode("float32", 1.5, "ABCD") == [0x3FC0, 0x0000]
    assert encode("float32", 1.5, "CDAB") == [0x0000, 0x3FC0]


def test_integer_types() -> None:
    assert encode("uint32", 0x12345678, "ABCD") == [0x1234, 0x5678]
    assert encode("uint32", 0x12345678, "CDAB") == [0x5678, 0x1234]
    assert encode("int32", -2, "ABCD") == [0xFFFF, 0xFFFE]
    # 48,213,557,120 = 0x0000_000B_39C0_7F80
    assert encode("int64", 48_213_557_120, "ABCD") == [0x0000, 0x000B, 0x39C0, 0x7F80]
    assert encode("uint16", 57735) == [57735]


def test_float64_matches_struct() -> None:
    value = 104_553_190_876.125
    words = struct.unpack(">HHHH", struct.pack(">d", value))
    assert encode("float64", value) == list(words)


def test_string_is_ascii_two_chars_per_register_nul_padded() -> None:
    assert encode("string", "PM5", words=3) == [ord("P") << 8 | ord("M"), ord("5") << 8, 0]


def test_int64_counter_floors_whole_wh() -> None:
    # 48,213,557,120 Wh start; 1.2345678 kWh later the meter shows 1234 more Wh, not 1235.
    assert quantise.counter_register(POINTS["raw_mill_kwh"], 1.2345678) == 48_213_557_120 + 1234


def test_dtsd1352_counts_secondary_hundredths() -> None:
    # One register step is 0.01 kWh secondary = 0.2 kWh primary (CT 20): 1.0 kWh → 5 steps, 0.39 → 1 step.
    assert quantise.counter_register(POINTS["aux_kwh"], 1.0) == 6_172_835 + 5
    assert quantise.counter_register(POINTS["aux_kwh"], 0.39) == 6_172_835 + 1
    # 60 kW primary is 3 kW secondary = 3000 steps of 0.001 kW.
    assert quantise.rate_register(POINTS["aux_kw"], 60.0) == 3000


def test_uint32_kg_totaliser_rolls_over_at_2_pow_32() -> None:
    # The clinker scale starts at 4,277,000,000 kg: 2^32 - 4,277,000,000 = 17,967,296 kg to the wrap.
    clinker = POINTS["clinker_t"]
    assert quantise.counter_register(clinker, 17_967.295) == 4_294_967_295
    assert quantise.counter_register(clinker, 17_967.296) == 0
    assert quantise.counter_register(clinker, 17_968.7965) == 1500
    assert quantise.scaled(clinker, np.array(1500)) == 1.5


def test_float32_counter_floors_to_the_float32_grid() -> None:
    # 1,856,432.25 kWh lies in [2^20, 2^21): float32 steps there are 2^(20-23) = 0.125 kWh.
    cooler = POINTS["cooler_kwh"]
    assert quantise.counter_register(cooler, 0.1) == np.float32(1_856_432.25)
    assert quantise.counter_register(cooler, 0.125) == np.float32(1_856_432.375)
    assert quantise.counter_register(cooler, 0.2) == np.float32(1_856_432.375)


def test_rates_in_register_units() -> None:
    assert quantise.rate_register(POINTS["coal_mill_kw"], 1000.0004) == 1_000_000  # int32 W, rounded
    assert quantise.rate_register(POINTS["cooler_kw"], 1200.0) == np.float32(12_000_000.0)  # 0.1 W
    assert quantise.rate_register(POINTS["cement_mill_kw"], 8333.0) == np.float32(8_333_000.0)  # W


def test_counters_work_on_arrays_like_scalars() -> None:
    truth = np.array([0.0, 0.0015, 2.9999])  # t -> 0, 1.5, 2999.9 kg
    regs = quantise.counter_register(POINTS["coal_kiln_t"], truth)
    assert regs.tolist() == [381_205_114, 381_205_115, 381_208_113]
