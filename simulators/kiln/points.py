"""The demo plant's point map (docs/demo-plant.md) as data: one entry per Modbus point and per DCS node.

This table is the contract other parts of Kilnwatch are configured against (the demo agent's config, the site
model), so it mirrors the doc row by row. Each point also names the model quantity behind it: a rate for
instantaneous points, a truth column for totalisers, which then carry their reading at the start of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DType = Literal["float32", "float64", "int32", "uint32", "int64"]
WordOrder = Literal["ABCD", "CDAB"]

HOLDING = 3
INPUT = 4
DTSD1352_CT = 20  # CT 100/5: the DTSD1352 reports secondary values


@dataclass(frozen=True)
class ModbusPoint:
    """One register point: where it is, how it is encoded, and what it measures.

    ``scale`` turns the register value into the doc's unit (kW, kWh, t, t/h). ``start`` is the totaliser's
    reading at the start of a run in register units; it is ``None`` for instantaneous points.
    """

    name: str
    unit: int
    function: int
    address: int
    dtype: DType
    order: WordOrder
    scale: float
    source: str
    start: int | float | None = None

    @property
    def is_counter(self) -> bool:
        return self.start is not None


@dataclass(frozen=True)
class DcsPoint:
    """One OPC UA variable of the DCS: node name under ``KilnLine1.``, agent point name, model rate."""

    node: str
    name: str
    source: str


def _pm5100(unit: int, section: str, kwh_start: int) -> tuple[ModbusPoint, ModbusPoint]:
    return (
        ModbusPoint(f"{section}_kw", unit, HOLDING, 3059, "float32", "ABCD", 1.0, f"{section}_kw"),
        ModbusPoint(
            f"{section}_kwh", unit, HOLDING, 3203, "int64", "ABCD", 0.001, f"{section}_kwh", kwh_start
        ),
    )


def _scale(unit: int, product: str, kg_start: int) -> tuple[ModbusPoint, ModbusPoint]:
    return (
        ModbusPoint(f"{product}_t", unit, HOLDING, 0, "uint32", "CDAB", 0.001, f"{product}_t", kg_start),
        ModbusPoint(f"{product}_tph", unit, HOLDING, 2, "float32", "CDAB", 1.0, f"{product}_tph"),
    )


MODBUS_POINTS: tuple[ModbusPoint, ...] = (
    *_pm5100(1, "raw_mill", 48_213_557_120),
    *_pm5100(2, "kiln", 71_902_443_615),
    ModbusPoint("coal_mill_kw", 3, HOLDING, 36, "int32", "ABCD", 0.001, "coal_mill_kw"),
    ModbusPoint("coal_mill_kwh", 3, HOLDING, 62, "int32", "ABCD", 0.01, "coal_mill_kwh", 987_654_321),
    ModbusPoint("cooler_kw", 4, HOLDING, 0x2012, "float32", "ABCD", 0.0001, "cooler_kw"),
    ModbusPoint("cooler_kwh", 4, HOLDING, 0x101E, "float32", "ABCD", 1.0, "cooler_kwh", 1_856_432.25),
    ModbusPoint("aux_kw", 5, HOLDING, 0x016A, "int32", "ABCD", 0.001 * DTSD1352_CT, "aux_kw"),
    ModbusPoint("aux_kwh", 5, HOLDING, 0x000A, "uint32", "ABCD", 0.01 * DTSD1352_CT, "aux_kwh", 6_172_835),
    *_pm5100(6, "whr", 95_310_774_052),
    ModbusPoint("cement_mill_kw", 7, INPUT, 65, "float32", "ABCD", 0.001, "cement_mill_kw"),
    ModbusPoint(
        "cement_mill_kwh", 7, INPUT, 801, "float64", "ABCD", 0.001, "cement_mill_kwh", 104_553_190_876.0
    ),
    *_scale(10, "coal_kiln", 381_205_114),
    *_scale(11, "coal_calciner", 571_807_671),
    *_scale(12, "clinker", 4_277_000_000),
    *_scale(13, "cement", 1_842_771_350),
)

DCS_POINTS: tuple[DcsPoint, ...] = (
    DcsPoint("KilnFeed_tph", "dcs_kiln_feed_tph", "kiln_feed_tph"),
    DcsPoint("KilnCoal_tph", "dcs_kiln_coal_tph", "coal_kiln_tph"),
    DcsPoint("CalcinerCoal_tph", "dcs_calciner_coal_tph", "coal_calciner_tph"),
    DcsPoint("ClinkerBeltScale_tph", "dcs_clinker_tph", "clinker_tph"),
    DcsPoint("KilnInletTemp_C", "dcs_kiln_inlet_temp", "kiln_inlet_temp_c"),
    DcsPoint("PreheaterExitTemp_C", "dcs_preheater_exit_temp", "preheater_exit_temp_c"),
    DcsPoint("WHR_GrossGen_kW", "dcs_whr_kw", "whr_kw"),
    DcsPoint("IDFan_kW", "dcs_id_fan_kw", "id_fan_kw"),
    DcsPoint("Coal_NCV_MJkg", "dcs_coal_ncv", "coal_ncv_mj_per_kg"),
)


def unit_points(unit: int) -> dict[str, ModbusPoint]:
    """The contract points one unit id serves, by point name."""
    return {p.name: p for p in MODBUS_POINTS if p.unit == unit}
