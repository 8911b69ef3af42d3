"""The KPI document's scalar fields, defined once: the sinks' field types, the demo's table and what a
restatement records are all derived from this table, so adding an indicator is one line here.

Each field: its name in the document, its type in the time-series store (float, int grade or text band),
its unit, and a short title and format for tables. Nested parts of the document (per-channel detail, fuel
detail, counter events) are not here: they go to CSV and JSON as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: Literal["float", "int", "str"]
    unit: str
    title: str = ""
    fmt: str = "{:.3f}"
    #: shown in the demo's live table
    shown: bool = False


FIELDS: tuple[Field, ...] = (
    Field("clinker_t", "float", "t", "clinker\nt", "{:.2f}", shown=True),
    Field("electricity_kwh", "float", "kWh"),
    Field("whr_kwh", "float", "kWh"),
    Field("net_purchased_kwh", "float", "kWh"),
    Field("fuel_kgce", "float", "kgce"),
    Field("coverage", "float", "1", "cover-\nage", "{:.0%}", shown=True),
    Field("coal_kgce_per_t", "float", "kgce/t", "coal\nkgce/t", "{:.2f}", shown=True),
    Field("electricity_kwh_per_t", "float", "kWh/t", "elec.\nkWh/t", "{:.2f}", shown=True),
    Field("comprehensive_kgce_per_t", "float", "kgce/t", "compr.\nkgce/t", "{:.2f}", shown=True),
    Field("co2_process_t", "float", "t"),
    Field("co2_fuel_t", "float", "t"),
    Field("co2_electricity_t", "float", "t"),
    Field("co2_total_t", "float", "t"),
    Field("co2_process_t_per_t", "float", "t/t"),
    Field("co2_fuel_t_per_t", "float", "t/t"),
    Field("co2_electricity_t_per_t", "float", "t/t"),
    Field("co2_total_t_per_t", "float", "t/t", "CO2\nt/t", "{:.3f}", shown=True),
    Field("co2_biogenic_memo_t", "float", "t"),
    Field("alternative_fuel_kgce", "float", "kgce"),
    Field("cement_t", "float", "t"),
    Field("cement_clinker_ratio_pct", "float", "%"),
    Field("cement_comprehensive_kgce_per_t", "float", "kgce/t"),
    Field("cement_prep_kwh_per_t", "float", "kWh/t"),
    Field("coal_grade", "int", "grade"),
    Field("electricity_grade", "int", "grade"),
    Field("comprehensive_grade", "int", "grade"),
    Field("cement_comprehensive_grade", "int", "grade"),
    Field("cement_prep_grade", "int", "grade"),
    Field("band", "str", "", "NDRC\nband", "{}", shown=True),
)

FLOAT_FIELDS = tuple(f.name for f in FIELDS if f.type == "float")
INT_FIELDS = tuple(f.name for f in FIELDS if f.type == "int")
#: What a restatement records of the old and the new document.
RESTATED_FIELDS = tuple(f.name for f in FIELDS)
#: The demo's live table: clinker, the unit indicators, CO2, coverage and band, in this order.
SHOWN = tuple(f for f in FIELDS if f.shown)
