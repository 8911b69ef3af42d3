"""The plant's meters and scales, each with its model's register map (reference/domain.md §7.1).

The contract points (docs/demo-plant.md) come from ``points`` and ``quantise``; around them each meter serves
the other registers its model has (currents, voltages, power per phase, frequency, reactive and apparent
energy, name), derived from the same power so that a tool reading a whole block sees a consistent meter.
Phases are balanced; power factor is a fixed property of the load.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from simulators.kiln import quantise
from simulators.kiln.points import DTSD1352_CT, HOLDING, INPUT, ModbusPoint, unit_points
from simulators.kiln.registers import Field

SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class State:
    """What a meter sees at one instant: the line's rates and its true cumulative quantities.

    ``counters`` overrides totalisers by point name with ``(start register, truth already counted by
    earlier meters)``: a counter preset near its modulus, or a meter replaced mid-run that counts from its
    own start since the exchange (the truth file still holds the line's real cumulative).
    """

    rates: Mapping[str, float]
    truth: Mapping[str, float]
    counters: Mapping[str, tuple[int | float, float]] = field(default_factory=dict)

    def register(self, point: ModbusPoint) -> int | float:
        """The contract point's register value (a Python number, ready for ``struct``)."""
        if not point.is_counter:
            return quantise.register_value(point, self.rates[point.source]).item()
        quantity = self.truth[point.source]
        if point.name in self.counters:
            start, counted = self.counters[point.name]
            point, quantity = replace(point, start=start), quantity - counted
        return quantise.register_value(point, quantity).item()


@dataclass(frozen=True)
class Supply:
    """The electrical side of a metered load: nominal line voltage and power factor."""

    volts_ll: float
    power_factor: float

    def phases(self, kw: float, voltage_pu: float) -> tuple[float, float, float]:
        """Line-to-line voltage (V), line current (A) and reactive power (kvar) of a balanced ``kw`` load."""
        u_ll = self.volts_ll * voltage_pu
        amps = kw * 1000.0 / (SQRT3 * u_ll * self.power_factor)
        return u_ll, amps, kw * math.tan(math.acos(self.power_factor))


@dataclass(frozen=True)
class Meter:
    """One Modbus unit: which register table it answers on, and its fields for a state."""

    unit: int
    function: int
    fields: Callable[[State], list[Field]]


def pm5100(unit: int, section: str, name: str, supply: Supply) -> Meter:
    """Schneider PM5100: float32 ABCD instantaneous values in kW, int64 Wh energies (FC03)."""
    points = unit_points(unit)
    kw_point, kwh_point = points[f"{section}_kw"], points[f"{section}_kwh"]
    tan_phi = math.tan(math.acos(supply.power_factor))

    def fields(s: State) -> list[Field]:
        kw = s.rates[kw_point.source]
        u_ll, amps, kvar = supply.phases(kw, s.rates["voltage_pu"])
        u_ln = u_ll / SQRT3
        wh = s.register(kwh_point)
        return [
            Field(29, "string", name, words=20),
            Field(89, "string", "PM5110", words=20),
            Field(129, "uint32", 90_170_000 + unit),
            *(Field(a, "float32", amps) for a in (2999, 3001, 3003, 3009)),
            Field(3005, "float32", 0.0),
            Field(3007, "float32", 0.0),
            *(Field(a, "float32", u_ll) for a in (3019, 3021, 3023, 3025)),
            *(Field(a, "float32", u_ln) for a in (3027, 3029, 3031, 3035)),
            *(Field(a, "float32", kw / 3.0) for a in (3053, 3055, 3057)),
            Field(3059, "float32", s.register(kw_point)),
            Field(3067, "float32", kvar),
            Field(3075, "float32", kw / supply.power_factor),
            Field(3083, "float32", supply.power_factor),
            Field(3109, "float32", s.rates["frequency_hz"]),
            Field(3203, "int64", wh),
            Field(3207, "int64", 0),
            Field(3219, "int64", math.floor(wh * tan_phi)),
            Field(3223, "int64", 0),
            Field(3235, "int64", math.floor(wh / supply.power_factor)),
            Field(3239, "int64", 0),
        ]

    return Meter(unit, HOLDING, fields)


def adw300(unit: int, section: str, supply: Supply) -> Meter:
    """Acrel ADW300: uint16 voltages (0.1 V) and currents (0.01 A), int32 W and 0.01 kWh (FC03)."""
    points = unit_points(unit)
    kw_point, kwh_point = points[f"{section}_kw"], points[f"{section}_kwh"]

    def fields(s: State) -> list[Field]:
        kw = s.rates[kw_point.source]
        u_ll, amps, _ = supply.phases(kw, s.rates["voltage_pu"])
        return [
            *(Field(a, "uint16", round(u_ll / SQRT3 * 10)) for a in (20, 21, 22)),
            *(Field(a, "uint16", round(amps * 100)) for a in (26, 27, 28)),
            *(Field(a, "int32", round(kw * 1000 / 3)) for a in (30, 32, 34)),
            Field(36, "int32", s.register(kw_point)),
            Field(62, "int32", s.register(kwh_point)),
            Field(64, "int32", 0),
        ]

    return Meter(unit, HOLDING, fields)


def dtsu666(unit: int, section: str, supply: Supply) -> Meter:
    """CHINT DTSU666: float32 ABCD in 0.1 V / 0.001 A / 0.1 W, float32 kWh (FC03).

    The ratio registers (IrAt, UrAt) read 1: the values are already primary, so a tool that applies the
    ratios it reads still gets the right answer.
    """
    points = unit_points(unit)
    kw_point, kwh_point = points[f"{section}_kw"], points[f"{section}_kwh"]

    def fields(s: State) -> list[Field]:
        kw = s.rates[kw_point.source]
        u_ll, amps, kvar = supply.phases(kw, s.rates["voltage_pu"])
        return [
            Field(0x0006, "uint16", 1),
            Field(0x0007, "uint16", 1),
            *(Field(a, "float32", u_ll * 10) for a in (0x2000, 0x2002, 0x2004)),
            *(Field(a, "float32", u_ll / SQRT3 * 10) for a in (0x2006, 0x2008, 0x200A)),
            *(Field(a, "float32", amps * 1000) for a in (0x200C, 0x200E, 0x2010)),
            Field(0x2012, "float32", s.register(kw_point)),
            *(Field(a, "float32", kw * 10_000 / 3) for a in (0x2014, 0x2016, 0x2018)),
            Field(0x201A, "float32", kvar * 10_000),
            Field(0x202A, "float32", supply.power_factor * 1000),
            Field(0x2044, "float32", s.rates["frequency_hz"] * 100),
            Field(0x101E, "float32", s.register(kwh_point)),
            Field(0x1028, "float32", 0.0),
        ]

    return Meter(unit, HOLDING, fields)


def dtsd1352(unit: int, section: str, supply: Supply) -> Meter:
    """Acrel DTSD1352 on CT 100/5, PT 1: secondary values, uint32 0.01 kWh, int32 0.001 kW (FC03)."""
    points = unit_points(unit)
    kw_point, kwh_point = points[f"{section}_kw"], points[f"{section}_kwh"]
    tan_phi = math.tan(math.acos(supply.power_factor))

    def fields(s: State) -> list[Field]:
        kw = s.rates[kw_point.source]
        u_ll, amps, kvar = supply.phases(kw, s.rates["voltage_pu"])
        kwh = s.register(kwh_point)
        kvarh = math.floor(kwh * tan_phi)
        return [
            Field(0x0000, "uint32", kwh),
            Field(0x000A, "uint32", kwh),
            Field(0x0014, "uint32", 0),
            Field(0x001E, "uint32", kvarh),
            Field(0x0028, "uint32", kvarh),
            Field(0x0032, "uint32", 0),
            *(Field(a, "uint16", round(u_ll / SQRT3 * 10)) for a in (0x0061, 0x0062, 0x0063)),
            *(Field(a, "uint16", round(amps / DTSD1352_CT * 100)) for a in (0x0064, 0x0065, 0x0066)),
            Field(0x0077, "uint16", round(s.rates["frequency_hz"] * 100)),
            *(Field(a, "int32", round(kw / DTSD1352_CT / 3 * 1000)) for a in (0x0164, 0x0166, 0x0168)),
            Field(0x016A, "int32", s.register(kw_point)),
            Field(0x016C, "int32", round(kvar / DTSD1352_CT * 1000)),
        ]

    return Meter(unit, HOLDING, fields)


def pac3200(unit: int, section: str, supply: Supply) -> Meter:
    """Siemens PAC3200: float32 V/A/W/Hz and float64 Wh counters, big-endian, on input registers (FC04)."""
    points = unit_points(unit)
    kw_point, kwh_point = points[f"{section}_kw"], points[f"{section}_kwh"]
    tan_phi = math.tan(math.acos(supply.power_factor))

    def fields(s: State) -> list[Field]:
        kw = s.rates[kw_point.source]
        u_ll, amps, kvar = supply.phases(kw, s.rates["voltage_pu"])
        wh = s.register(kwh_point)
        return [
            *(Field(a, "float32", u_ll / SQRT3) for a in (1, 3, 5)),
            *(Field(a, "float32", u_ll) for a in (7, 9, 11)),
            *(Field(a, "float32", amps) for a in (13, 15, 17)),
            *(Field(a, "float32", kw * 1000 / 3) for a in (25, 27, 29)),
            Field(55, "float32", s.rates["frequency_hz"]),
            Field(63, "float32", kw * 1000 / supply.power_factor),
            Field(65, "float32", s.register(kw_point)),
            Field(67, "float32", kvar * 1000),
            Field(69, "float32", supply.power_factor),
            Field(801, "float64", wh),
            *(Field(a, "float64", 0.0) for a in (805, 809, 813, 821, 825, 829, 837)),
            Field(817, "float64", wh * tan_phi),
            Field(833, "float64", wh / supply.power_factor),
        ]

    return Meter(unit, INPUT, fields)


def belt_scale(unit: int, product: str, belt_m_per_s: float) -> Meter:
    """Weigh feeder / belt scale: uint32 kg total, float32 t/h, belt speed and load, all low word first."""
    points = unit_points(unit)
    total, rate = points[f"{product}_t"], points[f"{product}_tph"]

    def fields(s: State) -> list[Field]:
        tph = s.rates[rate.source]
        return [
            Field(0, "uint32", s.register(total), "CDAB"),
            Field(2, "float32", s.register(rate), "CDAB"),
            Field(4, "float32", belt_m_per_s, "CDAB"),
            Field(6, "float32", tph * 1000 / 3600 / belt_m_per_s, "CDAB"),
        ]

    return Meter(unit, HOLDING, fields)


MV = 10_000.0  # 10 kV motor and generator feeders
LV = 400.0

METERS: tuple[Meter, ...] = (
    pm5100(1, "raw_mill", "Raw mill", Supply(MV, 0.90)),
    pm5100(2, "kiln", "Kiln and preheater", Supply(MV, 0.90)),
    adw300(3, "coal_mill", Supply(MV, 0.88)),
    dtsu666(4, "cooler", Supply(LV, 0.90)),
    dtsd1352(5, "aux", Supply(LV, 0.95)),
    pm5100(6, "whr", "WHR generator", Supply(MV, 0.85)),
    pac3200(7, "cement_mill", Supply(MV, 0.90)),
    belt_scale(10, "coal_kiln", 0.25),
    belt_scale(11, "coal_calciner", 0.30),
    belt_scale(12, "clinker", 1.60),
    belt_scale(13, "cement", 1.60),
)
