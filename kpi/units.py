"""Units and standard-coal (kgce) conversion after GB/T 2589-2020 《综合能耗计算通则》.

Why here: every indicator is a ratio of physical totals converted to standard coal, and getting the constants
or a unit wrong silently moves a plant across a grade boundary. The constants carry their source and the
confidence label of ``reference/domain.md`` §4.

- 1 kgce = 7000 kcal × 4.1868 kJ/kcal = 29307.6 kJ (GB/T 2589-2020, §4) [CONFIRMED-2nd]. The rounded 29307 kJ
  appears in implementations of GB 16780; the unrounded value is used in arithmetic (difference ≈ 0.002 %).
- Electricity, equivalent value (当量值): 3600 kJ/kWh / 29307.6 kJ/kgce ≈ 0.1229 kgce/kWh [CONFIRMED] (NBS
  yearbook note). Product norms (GB 16780, GB 21340, GB 21252) use it.
- Electricity, equal value (等价值): the year's average thermal-power supply coal rate, 300.7 gce/kWh for 2022
  [CONFIRMED] (ineng.org). Some provincial reporting uses it, so both bases are selectable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

from kpi.confidence import Confidence

#: kJ per kgce (GB/T 2589-2020: 7000 kcal × 4.1868 kJ/kcal).
KGCE_KJ = 29307.6
#: MJ per kgce, the same constant for NCVs given in MJ/kg.
KGCE_MJ = KGCE_KJ / 1000.0
#: Electricity at the equivalent value 当量值, kgce per kWh (GB/T 2589-2020 Appendix A) [CONFIRMED].
ELECTRICITY_KGCE_PER_KWH_EQUIVALENT = 0.1229
#: National average supply coal rate of thermal power for 2022, gce/kWh (等价值 basis) [CONFIRMED].
SUPPLY_COAL_RATE_GCE_PER_KWH_2022 = 300.7

ElectricityBasis = Literal["equivalent", "equal"]
Quantity = TypeVar("Quantity", float, np.ndarray)


@dataclass(frozen=True)
class StandardCoal:
    """A GB/T 2589-2020 Appendix A reference conversion factor: kgce per ``unit`` of the carrier.

    Reference factors are defaults only: a measured NCV (GB/T 213 lab analysis per coal lot) always wins.
    The factors are the reference kcal/kg ÷ 7000; the kJ column uses 4.1816 kJ/kcal (20908 = 5000 × 4.1816),
    so converting the kJ figure with 29307.6 gives 0.13 % less (0.7134 for raw coal).
    """

    name_zh: str
    kgce_per_unit: float
    unit: str
    reference_ncv: str
    confidence: Confidence
    note: str = ""


#: GB/T 2589-2020 Appendix A reference factors (``reference/domain.md`` §4.1). Rows "seen in public code
#: citing GB/T 2589-2020" are CONFIRMED-2nd, the rest UNCONFIRMED (from memory); keep them configurable.
STANDARD_COAL_FACTORS: dict[str, StandardCoal] = {
    "raw_coal": StandardCoal("原煤", 0.7143, "kg", "20908 kJ/kg (5000 kcal/kg)", "CONFIRMED-2nd"),
    "washed_coal": StandardCoal("洗精煤", 0.9000, "kg", "26344 kJ/kg", "UNCONFIRMED"),
    "coke": StandardCoal("焦炭", 0.9714, "kg", "28435 kJ/kg", "UNCONFIRMED"),
    "crude_oil": StandardCoal("原油", 1.4286, "kg", "41816 kJ/kg", "UNCONFIRMED"),
    "fuel_oil": StandardCoal("燃料油", 1.4286, "kg", "41816 kJ/kg", "UNCONFIRMED"),
    "gasoline": StandardCoal("汽油", 1.4714, "kg", "43070 kJ/kg", "CONFIRMED-2nd"),
    "diesel": StandardCoal("柴油", 1.4571, "kg", "42652 kJ/kg", "CONFIRMED-2nd"),
    "lpg": StandardCoal("液化石油气", 1.7143, "kg", "50179 kJ/kg", "UNCONFIRMED"),
    "natural_gas": StandardCoal(
        "天然气",
        1.2143,
        "m3",
        "≈ 35.6 MJ/m³ (range 32238–38931 kJ/m³)",
        "UNCONFIRMED",
        "GB/T 2589 gives a range 1.1000–1.3300 kgce/m³; 1.2143 is the common default. Prefer measured NCV.",
    ),
    "heat": StandardCoal("热力", 0.03412, "MJ", "1 MJ / 29.3076 MJ/kgce", "CONFIRMED-2nd"),
    "low_pressure_steam": StandardCoal("低压蒸汽", 0.1286, "kg", "3763 MJ/t", "CONFIRMED-2nd"),
    "electricity_equivalent": StandardCoal(
        "电力(当量值)", ELECTRICITY_KGCE_PER_KWH_EQUIVALENT, "kWh", "3600 kJ/kWh", "CONFIRMED"
    ),
}


def fuel_kgce(mass_t: Quantity, ncv_mj_per_kg: Quantity) -> Quantity:
    """Standard coal of a fuel from its mass and as-received net calorific value (GB/T 2589-2020 §4).

    ``mass_t × 1000 kg/t × NCV MJ/kg / 29.3076 MJ/kgce``. Measured NCV is preferred over the reference factors
    (``reference/domain.md`` §4.1, rule 3).
    """
    return mass_t * 1000.0 * ncv_mj_per_kg / KGCE_MJ


def electricity_kgce(
    kwh: Quantity,
    basis: ElectricityBasis = "equivalent",
    supply_coal_rate_gce_per_kwh: float = SUPPLY_COAL_RATE_GCE_PER_KWH_2022,
) -> Quantity:
    """Standard coal of electricity on the equivalent (当量值, 0.1229 kgce/kWh) or equal (等价值) basis.

    GB 16780-2021 and the online monitoring platform use the equivalent value [CONFIRMED-2nd]; the equal value
    is the year's supply coal rate (gce/kWh ÷ 1000) and is what some provincial reports ask for.
    """
    return kwh * electricity_kgce_per_kwh(basis, supply_coal_rate_gce_per_kwh)


def electricity_kgce_per_kwh(basis: ElectricityBasis, supply_coal_rate_gce_per_kwh: float) -> float:
    """The kgce/kWh factor for ``basis``; raises ValueError for an unknown basis."""
    if basis == "equivalent":
        return ELECTRICITY_KGCE_PER_KWH_EQUIVALENT
    if basis == "equal":
        if not supply_coal_rate_gce_per_kwh > 0.0:
            raise ValueError(
                f"supply_coal_rate_gce_per_kwh must be > 0, got {supply_coal_rate_gce_per_kwh!r}"
            )
        return supply_coal_rate_gce_per_kwh / 1000.0
    raise ValueError(f"unknown electricity basis {basis!r}; expected 'equivalent' or 'equal'")


_ENERGY_TO_KWH = {"Wh": 1e-3, "kWh": 1.0, "MWh": 1e3, "GWh": 1e6}
_MASS_TO_T = {"g": 1e-6, "kg": 1e-3, "t": 1.0, "kt": 1e3}
_POWER_TO_KW = {"W": 1e-3, "kW": 1.0, "MW": 1e3}
_MASS_RATE_TO_T_PER_H = {"kg/h": 1e-3, "t/h": 1.0, "kg/s": 3.6, "t/d": 1.0 / 24.0}


def _convert(value: Quantity, unit: str, table: dict[str, float], canonical: str) -> Quantity:
    try:
        factor = table[unit]
    except KeyError:
        known = ", ".join(table)
        raise ValueError(
            f"unknown unit {unit!r} for conversion to {canonical}; known units: {known}"
        ) from None
    return value * factor


def to_kwh(value: Quantity, unit: str) -> Quantity:
    """Energy in ``unit`` (Wh, kWh, MWh, GWh) to kWh, the canonical energy unit of the ledger."""
    return _convert(value, unit, _ENERGY_TO_KWH, "kWh")


def to_t(value: Quantity, unit: str) -> Quantity:
    """Mass in ``unit`` (g, kg, t, kt) to tonnes, the canonical mass unit of the ledger."""
    return _convert(value, unit, _MASS_TO_T, "t")


def to_kw(value: Quantity, unit: str) -> Quantity:
    """Power in ``unit`` (W, kW, MW) to kW, so that ``rate_integral(..., rate_seconds=3600)`` yields kWh."""
    return _convert(value, unit, _POWER_TO_KW, "kW")


def to_t_per_h(value: Quantity, unit: str) -> Quantity:
    """Mass rate in ``unit`` (kg/h, t/h, kg/s, t/d) to t/h, so ``rate_seconds=3600`` integrates to tonnes."""
    return _convert(value, unit, _MASS_RATE_TO_T_PER_H, "t/h")
