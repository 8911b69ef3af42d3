"""Float-glass and PV rolled-glass line indicators under GB 21340-2019, with NDRC bands and CO2 by source.

Why: a flat-glass line is judged by its comprehensive energy per weight box (重量箱) against the mandatory
norm GB 21340-2019 《平板玻璃单位产品能源消耗限额》 and the NDRC benchmark 标杆 / baseline 基准
(``reference/domain.md`` §3.1, §2.2). Its CO2 has three sources: fuel, batch carbonates (mostly soda ash and
dolomite) and purchased power (§5.4, §5.3). As in ``kpi.clinker``, the collector passes physical totals for
one line and one period. Nothing here reads a clock, and the result keeps the raw totals and a provenance
dict, so a period can be recomputed with other settings.

Formulas (the GB 21340-2019 limits are [CONFIRMED-2nd]; the clauses of the energy boundary are UNCONFIRMED):

- ``W = glass_t × 1000 / 50``. A weight box is 50 kg of glass (10 m² of 2 mm glass), the standard industry
  definition, [UNCONFIRMED here].
- ``E = Σ fuel kgce + e × W_el``. Here ``e`` is 0.1229 kgce/kWh (当量值) or the 等价值 (§4). Domain.md §4 says
  product norms use the 当量值, but that is CONFIRMED-2nd only for GB 16780, so the basis is a setting.
- float glass: ``E / W`` kgce/重量箱. PV rolled glass: ``E / glass_t`` kgce/t.
- float glass limits × ``V_c = a × b × c × d`` (GB 21340-2019 Table 2). The factor breakpoints are
  UNCONFIRMED, so a, b, c and d are explicit settings (default 1.0) and are recorded in the provenance.
- ``CO2 = Σ fuel CO2 + carbonate/carbon CO2 (kpi.carbonates) + max(0, W_el − W_whr) / 1000 × EF_grid``.

Waste-heat power (WHR) gets no energy credit: the indicator uses gross consumption. This is the
conservative default of ``kpi.clinker``, because GB 21340's treatment is UNCONFIRMED. CO2 is counted on net
purchased power, as in GB/T 32151.

The fuel, settings and totals shared with ``kpi.ceramics`` live in ``kpi.furnace``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, get_args

from kpi.carbonates import (
    CarbonateCo2,
    CarbonateUse,
    CarbonUse,
    require_in_range,
)
from kpi.confidence import Confidence
from kpi.furnace import FurnaceFuel, FurnaceSettings, furnace_totals, ndrc_provenance, table_provenance
from kpi.standards import (
    NDRC_CLINKER_ENERGY,
    Band,
    BenchmarkBaseline,
    Grade,
    GradeTable,
    NdrcEdition,
    band,
    grade,
)

GlassProduct = Literal["float", "pv_rolled"]
FloatCapacityClass = Literal["up_to_500", "500_to_800", "over_800"]
PvCapacityClass = Literal["up_to_300", "over_300"]
GlassOutputUnit = Literal["t", "weight_box"]

GB21340_2019 = "GB 21340-2019"
#: kg of glass in one weight box 重量箱 (10 m² of 2 mm glass): standard industry definition, UNCONFIRMED here.
KG_PER_WEIGHT_BOX = 50.0
KG_PER_WEIGHT_BOX_CONFIDENCE: Confidence = "UNCONFIRMED"

_GB21340_SOURCE = (
    "transcribed by adgo07/ECQuota-Insight tools/build_verified_rules_batch11.py (pages 2–4), "
    "marked requires_independent_review there"
)
_FLOAT = ("float_glass_comprehensive_energy", "平板玻璃单位产品综合能耗", "kgce/重量箱")
_PV = ("pv_rolled_glass_comprehensive_energy", "光伏压延玻璃单位产品综合能耗", "kgce/t")

#: Float-glass limits by design capacity (``reference/domain.md`` §3.1) [CONFIRMED-2nd]. Lines ≤ 500 t/d only
#: have a grade-3 limit. Grades 1 and 2 are ``-inf`` there, which no finite value reaches, so ``grade()``
#: returns 3 or None. The provenance shows them as None.
FLOAT_GLASS_TABLES: dict[FloatCapacityClass, GradeTable] = {
    "up_to_500": GradeTable(
        *_FLOAT, (-math.inf, -math.inf, 14.0), GB21340_2019, "float glass, design capacity ≤ 500 t/d",
        "CONFIRMED-2nd", False, _GB21340_SOURCE + "; grades 1 and 2 not defined for this class",
    ),
    "500_to_800": GradeTable(
        *_FLOAT, (9.5, 11.5, 13.5), GB21340_2019, "float glass, 500 < design capacity ≤ 800 t/d",
        "CONFIRMED-2nd", False, _GB21340_SOURCE,
    ),
    "over_800": GradeTable(
        *_FLOAT, (8.0, 10.0, 12.0), GB21340_2019, "float glass, design capacity > 800 t/d",
        "CONFIRMED-2nd", False, _GB21340_SOURCE,
    ),
}  # fmt: skip

#: PV rolled-glass limits, kgce/t (``reference/domain.md`` §3.1) [CONFIRMED-2nd]. Grades 1 and 2 are equal
#: in the standard, so grade 2 is never returned.
PV_ROLLED_GLASS_TABLES: dict[PvCapacityClass, GradeTable] = {
    "up_to_300": GradeTable(
        *_PV, (300.0, 300.0, 400.0), GB21340_2019, "PV rolled glass, design capacity ≤ 300 t/d",
        "CONFIRMED-2nd", False, _GB21340_SOURCE,
    ),
    "over_300": GradeTable(
        *_PV, (260.0, 260.0, 370.0), GB21340_2019, "PV rolled glass, design capacity > 300 t/d",
        "CONFIRMED-2nd", False, _GB21340_SOURCE,
    ),
}  # fmt: skip


def _ndrc(
    indicator: str, unit: str, benchmark: float, baseline: float, edition: NdrcEdition, note: str
) -> BenchmarkBaseline:
    document = NDRC_CLINKER_ENERGY[edition]  # same NDRC document per edition as clinker
    return BenchmarkBaseline(
        indicator, unit, benchmark, baseline, edition, document.document, document.document_confidence,
        "UNCONFIRMED", note,
    )  # fmt: skip


_NDRC_FLOAT_NOTE = {
    "500_to_800": "benchmark consistent with a 600 t/d line at 9.45 kgce/重量箱 reported as 优于标杆水平 "
    "(ip1689.com); baseline UNCONFIRMED (= GB 21340-2019 grade 3)",
    "over_800": "values equal GB 21340-2019 grades 1 / 3 [CONFIRMED-2nd]; "
    "their use as NDRC levels UNCONFIRMED",
}
#: NDRC flat-glass benchmark/baseline, kgce/重量箱 (``reference/domain.md`` §2.2). There is no level for
#: ≤ 500 t/d, so the band is None. The values are assumed the same in both editions [UNCONFIRMED].
NDRC_FLOAT_GLASS: dict[NdrcEdition, dict[FloatCapacityClass, BenchmarkBaseline]] = {
    edition: {
        "500_to_800": _ndrc(_FLOAT[0], _FLOAT[2], 9.5, 13.5, edition, _NDRC_FLOAT_NOTE["500_to_800"]),
        "over_800": _ndrc(_FLOAT[0], _FLOAT[2], 8.0, 12.0, edition, _NDRC_FLOAT_NOTE["over_800"]),
    }
    for edition in ("2021", "2023")
}
_NDRC_PV_NOTE = "proxy: GB 21340-2019 grades 1 / 3; PV rolled glass probably added in the 2023 edition"
#: NDRC PV rolled-glass proxies, kgce/t (``reference/domain.md`` §2.2) [UNCONFIRMED]. Only in the 2023
#: edition, so the band is None under "2021".
NDRC_PV_ROLLED_GLASS: dict[NdrcEdition, dict[PvCapacityClass, BenchmarkBaseline]] = {
    "2021": {},
    "2023": {
        "up_to_300": _ndrc(_PV[0], _PV[2], 300.0, 400.0, "2023", _NDRC_PV_NOTE),
        "over_300": _ndrc(_PV[0], _PV[2], 260.0, 370.0, "2023", _NDRC_PV_NOTE),
    },
}


@dataclass(frozen=True)
class GlassCorrection:
    """GB 21340-2019 Table 2 correction ``V_c = a × b × c × d``, which multiplies the float-glass limits.

    - ``a``: annual capacity utilisation.
    - ``b``: thickness mix, weighted by output share.
    - ``c``: iron content, weighted by output share.
    - ``d``: production-line adjustment or abnormal production (1.1 when applicable).

    The breakpoints are UNCONFIRMED (domain.md §3.1), so the plant enters the factors it has justified.
    Each factor must be finite and > 0. The default 1.0 applies no correction.
    """

    a: float = 1.0
    b: float = 1.0
    c: float = 1.0
    d: float = 1.0

    def __post_init__(self) -> None:
        for name in ("a", "b", "c", "d"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"correction factor {name} must be finite and > 0, got {value!r}")

    @property
    def v_c(self) -> float:
        """The product ``a × b × c × d``."""
        return self.a * self.b * self.c * self.d


def _check_capacity(design_capacity_t_per_d: float) -> None:
    if not (math.isfinite(design_capacity_t_per_d) and design_capacity_t_per_d > 0.0):
        raise ValueError(f"design_capacity_t_per_d must be finite and > 0, got {design_capacity_t_per_d!r}")


def float_glass_capacity_class(design_capacity_t_per_d: float) -> FloatCapacityClass:
    """GB 21340-2019 capacity class: ≤ 500, 500 < cap ≤ 800, > 800 t/d. The upper bounds are inclusive."""
    _check_capacity(design_capacity_t_per_d)
    if design_capacity_t_per_d <= 500.0:
        return "up_to_500"
    if design_capacity_t_per_d <= 800.0:
        return "500_to_800"
    return "over_800"


def pv_rolled_glass_capacity_class(design_capacity_t_per_d: float) -> PvCapacityClass:
    """PV rolled-glass capacity class: ≤ 300 or > 300 t/d."""
    _check_capacity(design_capacity_t_per_d)
    return "up_to_300" if design_capacity_t_per_d <= 300.0 else "over_300"


def float_glass_table(
    design_capacity_t_per_d: float, correction: GlassCorrection | None = None
) -> GradeTable:
    """The float-glass limits for the line's capacity class, all three multiplied by ``correction.v_c``.

    Domain.md §3.1 says "V_c multiplies the limit". It is UNCONFIRMED whether this applies to grade 3 only
    or to every grade. Every grade is multiplied here.
    """
    table = FLOAT_GLASS_TABLES[float_glass_capacity_class(design_capacity_t_per_d)]
    v_c = (correction or GlassCorrection()).v_c
    if v_c == 1.0:
        return table
    g1, g2, g3 = table.limits
    return replace(
        table, limits=(g1 * v_c, g2 * v_c, g3 * v_c), clause=f"{table.clause}; × V_c {v_c:.4f} (Table 2)"
    )


def pv_rolled_glass_table(design_capacity_t_per_d: float) -> GradeTable:
    """The PV rolled-glass limits (kgce/t) for the line's capacity class."""
    return PV_ROLLED_GLASS_TABLES[pv_rolled_glass_capacity_class(design_capacity_t_per_d)]


@dataclass(frozen=True)
class GlassInputs:
    """Physical totals of one glass line over one period.

    - ``output``: qualified glass (合格品), in t or weight boxes (``output_unit``). PV rolled glass: t only.
    - ``electricity_kwh``: gross consumption of the line.
    - ``whr_kwh``: own waste-heat generation. It only reduces the purchased power used for CO2.
    - ``coverage``: share (0–1) of the period backed by good data, reported beside every KPI.
    - ``carbonates`` / ``carbon``: the batch carbonates and carbon powder (``kpi.carbonates``).
    """

    design_capacity_t_per_d: float
    output: float
    electricity_kwh: float
    fuels: tuple[FurnaceFuel, ...]
    coverage: float
    output_unit: GlassOutputUnit = "t"
    whr_kwh: float = 0.0
    carbonates: tuple[CarbonateUse, ...] = ()
    carbon: tuple[CarbonUse, ...] = ()
    product: GlassProduct = "float"

    def __post_init__(self) -> None:
        if self.product not in get_args(GlassProduct):
            raise ValueError(f"unknown glass product {self.product!r}; expected {get_args(GlassProduct)}")
        if self.output_unit not in get_args(GlassOutputUnit):
            raise ValueError(
                f"unknown output_unit {self.output_unit!r}; expected {get_args(GlassOutputUnit)}"
            )
        if self.product == "pv_rolled" and self.output_unit == "weight_box":
            raise ValueError("PV rolled glass output must be given in t; weight boxes are a float-glass unit")
        _check_capacity(self.design_capacity_t_per_d)
        require_in_range("output", self.output)
        require_in_range("electricity_kwh", self.electricity_kwh)
        require_in_range("whr_kwh", self.whr_kwh)
        require_in_range("coverage", self.coverage, 0.0, 1.0)

    @property
    def glass_t(self) -> float:
        """Qualified glass, t (weight boxes × 50 kg / 1000)."""
        if self.output_unit == "weight_box":
            return self.output * KG_PER_WEIGHT_BOX / 1000.0
        return self.output


@dataclass(frozen=True)
class GlassSettings(FurnaceSettings):
    """``FurnaceSettings`` plus the GB 21340-2019 Table 2 correction (float glass only; default none)."""

    correction: GlassCorrection = field(default_factory=GlassCorrection)


@dataclass(frozen=True)
class GlassIndicators:
    """Indicators of one glass line and period.

    ``comprehensive_energy`` is in ``energy_unit``: kgce/重量箱 for float glass, kgce/t for PV rolled glass.
    The value per unit, the grade and the band are None when no glass was produced. A grade of None beside
    a value means "worse than grade 3" (above the limit). The band is also None when the NDRC document has
    no level for the product or capacity class.
    """

    product: GlassProduct
    capacity_class: str
    glass_t: float
    weight_boxes: float | None
    electricity_kwh: float
    whr_kwh: float
    net_purchased_kwh: float
    fuel_kgce: float
    electricity_kgce: float
    total_kgce: float
    coverage: float
    comprehensive_energy: float | None
    energy_unit: str
    comprehensive_kgce_per_t: float | None
    grade: Grade | None
    band: Band | None
    co2_process_t: float
    co2_fuel_t: float
    co2_electricity_t: float
    co2_total_t: float
    co2_process_t_per_t: float | None
    co2_fuel_t_per_t: float | None
    co2_electricity_t_per_t: float | None
    co2_total_t_per_t: float | None
    process: CarbonateCo2
    provenance: Mapping[str, object] = field(default_factory=dict)


def glass_indicators(inputs: GlassInputs, settings: GlassSettings) -> GlassIndicators:
    """Comprehensive energy per weight box (float) or per t (PV rolled), with grade, NDRC band and CO2."""
    edition = settings.ndrc_edition
    capacity = inputs.design_capacity_t_per_d
    if inputs.product == "float":
        float_class = float_glass_capacity_class(capacity)
        capacity_class: str = float_class
        table = float_glass_table(capacity, settings.correction)
        ndrc = NDRC_FLOAT_GLASS[edition].get(float_class)
        correction: dict[str, object] = {**asdict(settings.correction), "v_c": settings.correction.v_c}
    else:
        if settings.correction != GlassCorrection():
            raise ValueError("the GB 21340-2019 Table 2 correction is defined here for float glass only")
        pv_class = pv_rolled_glass_capacity_class(capacity)
        capacity_class = pv_class
        table = pv_rolled_glass_table(capacity)
        ndrc = NDRC_PV_ROLLED_GLASS[edition].get(pv_class)
        correction = {"v_c": None, "reason": "not applied to PV rolled glass"}
    correction["confidence"] = "UNCONFIRMED"

    totals = furnace_totals(
        inputs.fuels, inputs.electricity_kwh, inputs.whr_kwh, inputs.carbonates, inputs.carbon, settings
    )
    glass_t = inputs.glass_t
    weight_boxes = glass_t * 1000.0 / KG_PER_WEIGHT_BOX if inputs.product == "float" else None

    per_t: dict[str, float | None] = dict.fromkeys(("energy", "process", "fuel", "elec", "total"))
    comprehensive: float | None = None
    line_grade: Grade | None = None
    line_band: Band | None = None
    if glass_t > 0.0:
        energy_per_t = totals.total_kgce / glass_t
        per_t.update(energy=energy_per_t, process=totals.co2_process_t / glass_t)
        per_t.update(fuel=totals.co2_fuel_t / glass_t, elec=totals.co2_electricity_t / glass_t)
        per_t.update(total=totals.co2_total_t / glass_t)
        comprehensive = totals.total_kgce / weight_boxes if weight_boxes is not None else energy_per_t
        line_grade = grade(comprehensive, table)
        if ndrc is not None:
            line_band = band(comprehensive, ndrc.benchmark, ndrc.baseline)

    provenance: dict[str, object] = {
        "standard": GB21340_2019,
        "product": inputs.product,
        "design_capacity_t_per_d": inputs.design_capacity_t_per_d,
        "capacity_class": capacity_class,
        "grade_table": table_provenance(table),
        "correction": correction,
        "kg_per_weight_box": {"value": KG_PER_WEIGHT_BOX, "confidence": KG_PER_WEIGHT_BOX_CONFIDENCE},
        "ndrc": ndrc_provenance(ndrc, edition),
        **totals.provenance,
    }
    return GlassIndicators(
        product=inputs.product,
        capacity_class=capacity_class,
        glass_t=glass_t,
        weight_boxes=weight_boxes,
        electricity_kwh=inputs.electricity_kwh,
        whr_kwh=inputs.whr_kwh,
        net_purchased_kwh=totals.net_purchased_kwh,
        fuel_kgce=totals.fuel_kgce,
        electricity_kgce=totals.electricity_kgce,
        total_kgce=totals.total_kgce,
        coverage=inputs.coverage,
        comprehensive_energy=comprehensive,
        energy_unit=table.unit,
        comprehensive_kgce_per_t=per_t["energy"],
        grade=line_grade,
        band=line_band,
        co2_process_t=totals.co2_process_t,
        co2_fuel_t=totals.co2_fuel_t,
        co2_electricity_t=totals.co2_electricity_t,
        co2_total_t=totals.co2_total_t,
        co2_process_t_per_t=per_t["process"],
        co2_fuel_t_per_t=per_t["fuel"],
        co2_electricity_t_per_t=per_t["elec"],
        co2_total_t_per_t=per_t["total"],
        process=totals.process,
        provenance=provenance,
    )
