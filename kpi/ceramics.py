"""Building and sanitary ceramics indicators under GB 21252-2023, with NDRC proxy bands and CO2 by source.

Why: a ceramics line is judged by its comprehensive energy per m² (tiles, panels) or per t (extruded
panels and tiles, sanitary ware, alumina balls). The norm is GB 21252-2023
《建筑卫生陶瓷单位产品能源消耗限额》 (``reference/domain.md`` §3.2). Tiles and sanitary ware are classed by
water absorption E. The NDRC benchmark/baseline for ceramics was not found (§2.2). As a proxy, grade 1 stands
for the benchmark and grade 3 for the baseline. The proxy is labelled UNCONFIRMED everywhere it appears.
CO2 has three sources: fuel, carbonates in the body and glaze (``kpi.carbonates``), and purchased power
(§5.3, §5.4).

Formulas (the GB 21252-2023 limits are [CONFIRMED-2nd]):

- ``E = Σ fuel kgce + e × W_el``. Here ``e`` is 0.1229 kgce/kWh (当量值) or the 等价值 (§4). The basis is a
  setting. Waste-heat power gets no energy credit, and CO2 counts net purchased power (as in ``kpi.glass``).
- the indicator is ``E / output``, with output in m² (tile, panel) or t (the other products).
- tile limits (Table 1) and panel limits (Table 3) are multiplied by the thickness factor of Table 2. The
  factor is weighted by the output share of qualified products and is 1.00 when none is 15 mm or thicker.
  Its values are UNCONFIRMED, so it is a setting (default 1.00).
- water-absorption classes. Tiles: E ≤ 0.2 %, 0.2 % < E ≤ 0.5 %, 0.5 % < E ≤ 10 %, E > 10 %. Sanitary
  ware: E ≤ 0.3 %, E > 0.3 %. Each upper bound is inclusive. E is compared after rounding to 6 decimals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from kpi.carbonates import CarbonateCo2, CarbonateUse, CarbonUse, require_in_range
from kpi.furnace import (
    FurnaceFuel,
    FurnaceSettings,
    furnace_totals,
    ndrc_provenance,
    table_provenance,
)
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

CeramicProduct = Literal["tile", "panel", "extruded", "sanitary", "alumina_ball"]
TileAbsorptionClass = Literal["E<=0.2", "0.2<E<=0.5", "0.5<E<=10", "E>10"]
SanitaryAbsorptionClass = Literal["E<=0.3", "E>0.3"]

GB21252_2023 = "GB 21252-2023"
_SOURCE = "transcribed by adgo07/ECQuota-Insight tools/build_verified_rules_batch1.py build_21252 (pages 5–6)"
_SOURCE_TESTED = _SOURCE + "; row also asserted in that repo's tests"

#: The denominator of each product's indicator: m² for tiles and panels, t for the rest (domain.md §3.2).
OUTPUT_UNIT: dict[CeramicProduct, str] = {
    "tile": "m2",
    "panel": "m2",
    "extruded": "t",
    "sanitary": "t",
    "alumina_ball": "t",
}
#: Products whose limits are multiplied by the Table 2 thickness factor (Tables 1 and 3).
THICKNESS_FACTOR_PRODUCTS: tuple[CeramicProduct, ...] = ("tile", "panel")

_TILE = ("ceramic_tile_comprehensive_energy", "陶瓷砖/瓦单位产品综合能耗", "kgce/m²")
_SANITARY = ("sanitary_ware_comprehensive_energy", "卫生陶瓷单位产品综合能耗", "kgce/t")


def _tile(limits: tuple[float, float, float], absorption: str) -> GradeTable:
    return GradeTable(
        *_TILE, limits, GB21252_2023, f"Table 1, dry-pressed tiles, water absorption {absorption}",
        "CONFIRMED-2nd", False, _SOURCE,
    )  # fmt: skip


def _sanitary(limits: tuple[float, float, float], absorption: str) -> GradeTable:
    return GradeTable(
        *_SANITARY, limits, GB21252_2023, f"Table 5, sanitary ware, water absorption {absorption}",
        "CONFIRMED-2nd", False, _SOURCE,
    )  # fmt: skip


#: Table 1, ceramic tiles (陶瓷砖/瓦, dry-pressed), kgce/m², by water absorption [CONFIRMED-2nd].
TILE_TABLES: dict[TileAbsorptionClass, GradeTable] = {
    "E<=0.2": _tile((4.5, 5.5, 7.0), "E ≤ 0.2 %"),
    "0.2<E<=0.5": _tile((4.0, 4.9, 6.5), "0.2 % < E ≤ 0.5 %"),
    "0.5<E<=10": _tile((3.4, 3.7, 4.6), "0.5 % < E ≤ 10 %"),
    "E>10": _tile((3.2, 3.5, 4.5), "E > 10 %"),
}
#: Table 3, ceramic panels (陶瓷板), kgce/m² [CONFIRMED-2nd].
CERAMIC_PANEL = GradeTable(
    "ceramic_panel_comprehensive_energy", "陶瓷板单位产品综合能耗", "kgce/m²", (6.0, 8.7, 13.2), GB21252_2023,
    "Table 3, ceramic panels", "CONFIRMED-2nd", False, _SOURCE_TESTED,
)  # fmt: skip
#: Table 4, extruded dry-hung hollow ceramic panels and ceramic roof tiles (干挂空心陶瓷板, 陶瓷瓦), kgce/t.
EXTRUDED_PANEL_TILE = GradeTable(
    "extruded_ceramic_comprehensive_energy", "干挂空心陶瓷板/陶瓷瓦单位产品综合能耗", "kgce/t",
    (226.0, 238.0, 253.0), GB21252_2023, "Table 4, extruded hollow panels and roof tiles", "CONFIRMED-2nd",
    False, _SOURCE,
)  # fmt: skip
#: Table 5, sanitary ware (卫生陶瓷), kgce/t, by water absorption [CONFIRMED-2nd].
SANITARY_TABLES: dict[SanitaryAbsorptionClass, GradeTable] = {
    "E<=0.3": _sanitary((350.0, 500.0, 630.0), "E ≤ 0.3 %"),
    "E>0.3": _sanitary((300.0, 460.0, 610.0), "E > 0.3 %"),
}
#: Table 6, wear-resistant alumina balls (耐磨氧化铝球), 90 series, kgce/t [CONFIRMED-2nd].
ALUMINA_BALL = GradeTable(
    "alumina_ball_comprehensive_energy", "耐磨氧化铝球单位产品综合能耗", "kgce/t", (295.0, 320.0, 370.0),
    GB21252_2023, "Table 6, alumina balls (90 series)", "CONFIRMED-2nd", False, _SOURCE_TESTED,
)  # fmt: skip


_UNCLASSED_TABLES: dict[str, GradeTable] = {
    "panel": CERAMIC_PANEL,
    "extruded": EXTRUDED_PANEL_TILE,
    "alumina_ball": ALUMINA_BALL,
}


#: Decimals E (in %) is rounded to before classing: float noise such as 0.1 + 0.2 = 0.30000000000000004 must
#: not move a product across a boundary, and no lab reports E to 10⁻⁶ %.
ABSORPTION_DECIMALS = 6


def _absorption(water_absorption_pct: float) -> float:
    require_in_range("water_absorption_pct", water_absorption_pct, 0.0, 100.0)
    return round(water_absorption_pct, ABSORPTION_DECIMALS)


def tile_absorption_class(water_absorption_pct: float) -> TileAbsorptionClass:
    """Table 1 class of a tile with water absorption E in percent. The upper bounds are inclusive."""
    e = _absorption(water_absorption_pct)
    if e <= 0.2:
        return "E<=0.2"
    if e <= 0.5:
        return "0.2<E<=0.5"
    if e <= 10.0:
        return "0.5<E<=10"
    return "E>10"


def sanitary_absorption_class(water_absorption_pct: float) -> SanitaryAbsorptionClass:
    """Table 5 class of sanitary ware with water absorption E in percent: E ≤ 0.3 % or E > 0.3 %."""
    return "E<=0.3" if _absorption(water_absorption_pct) <= 0.3 else "E>0.3"


def _required_absorption(product: CeramicProduct, water_absorption_pct: float | None) -> float:
    if water_absorption_pct is None:
        raise ValueError(f"water_absorption_pct (E, %) is required for product {product!r}")
    return water_absorption_pct


def absorption_class(product: CeramicProduct, water_absorption_pct: float | None) -> str | None:
    """The water-absorption class the product's table depends on, or None for products without classes.

    Raises ValueError when a tile or sanitary ware has no water absorption.
    """
    if product == "tile":
        return tile_absorption_class(_required_absorption(product, water_absorption_pct))
    if product == "sanitary":
        return sanitary_absorption_class(_required_absorption(product, water_absorption_pct))
    return None


def ceramics_table(
    product: CeramicProduct, water_absorption_pct: float | None = None, thickness_factor: float = 1.0
) -> GradeTable:
    """The GB 21252-2023 limits for ``product``, with water absorption E in percent where the table needs it.

    For tiles and panels, every limit is multiplied by ``thickness_factor`` (Table 2, values UNCONFIRMED).
    Any other product with a factor other than 1.0 raises ValueError, so the setting is never silently
    ignored.
    """
    if product not in OUTPUT_UNIT:
        raise ValueError(f"unknown ceramic product {product!r}; expected {get_args(CeramicProduct)}")
    if not (math.isfinite(thickness_factor) and thickness_factor > 0.0):
        raise ValueError(f"thickness_factor must be finite and > 0, got {thickness_factor!r}")
    if thickness_factor != 1.0 and product not in THICKNESS_FACTOR_PRODUCTS:
        raise ValueError(f"the thickness factor applies to tiles and panels only, not to {product!r}")
    if product == "tile":
        table = TILE_TABLES[tile_absorption_class(_required_absorption(product, water_absorption_pct))]
    elif product == "sanitary":
        table = SANITARY_TABLES[
            sanitary_absorption_class(_required_absorption(product, water_absorption_pct))
        ]
    else:
        table = _UNCLASSED_TABLES[product]
    if thickness_factor == 1.0:
        return table
    g1, g2, g3 = table.limits
    k = thickness_factor
    return replace(
        table, limits=(g1 * k, g2 * k, g3 * k), clause=f"{table.clause}; × thickness factor {k:.4f} (Table 2)"
    )


def ndrc_proxy(table: GradeTable, edition: NdrcEdition) -> BenchmarkBaseline:
    """NDRC proxy [UNCONFIRMED]: benchmark ≈ grade 1 and baseline ≈ grade 3 of ``table`` (domain.md §2.2).

    Pass the table without the thickness factor: the NDRC levels are fixed numbers. Whether the NDRC
    document corrects them is UNCONFIRMED, as is whether it covers every product.
    """
    document = NDRC_CLINKER_ENERGY[edition]  # same NDRC document per edition as clinker
    return BenchmarkBaseline(
        table.indicator, table.unit, table.limits[0], table.limits[2], edition, document.document,
        document.document_confidence, "UNCONFIRMED",
        f"proxy: {table.standard} {table.clause} grade 1 ≈ benchmark, grade 3 ≈ baseline (domain.md §2.2)",
    )  # fmt: skip


@dataclass(frozen=True)
class CeramicsInputs:
    """Physical totals of one ceramics line (or kiln and its dryers) over one period.

    - ``output``: qualified product, in m² for tile and panel, in t otherwise (``OUTPUT_UNIT``).
    - ``water_absorption_pct``: E in percent (not a fraction). Required for tile and sanitary ware.
    - ``electricity_kwh``: gross consumption.
    - ``whr_kwh``: own generation. It only reduces the purchased power used for CO2.
    - ``coverage``: share (0–1) of the period backed by good data.
    - ``carbonates`` / ``carbon``: carbonates in body and glaze, and any non-fuel carbon (``kpi.carbonates``).
    """

    product: CeramicProduct
    output: float
    electricity_kwh: float
    fuels: tuple[FurnaceFuel, ...]
    coverage: float
    water_absorption_pct: float | None = None
    whr_kwh: float = 0.0
    carbonates: tuple[CarbonateUse, ...] = ()
    carbon: tuple[CarbonUse, ...] = ()

    def __post_init__(self) -> None:
        if self.product not in OUTPUT_UNIT:
            raise ValueError(f"unknown ceramic product {self.product!r}; expected {get_args(CeramicProduct)}")
        require_in_range("output", self.output)
        require_in_range("electricity_kwh", self.electricity_kwh)
        require_in_range("whr_kwh", self.whr_kwh)
        require_in_range("coverage", self.coverage, 0.0, 1.0)
        absorption_class(self.product, self.water_absorption_pct)


@dataclass(frozen=True)
class CeramicsSettings(FurnaceSettings):
    """``FurnaceSettings`` plus the Table 2 thickness factor (tiles and panels, default 1.00, UNCONFIRMED)."""

    thickness_factor: float = 1.0


@dataclass(frozen=True)
class CeramicsIndicators:
    """Indicators of one ceramics line and period.

    ``comprehensive_energy`` is in ``energy_unit`` (kgce/m² or kgce/t). CO2 per unit is t CO2 per
    ``output_unit``. Values per unit, the grade and the band are None when nothing was produced. A grade of
    None beside a value means "worse than grade 3". The band is always the UNCONFIRMED NDRC proxy.
    """

    product: CeramicProduct
    absorption_class: str | None
    water_absorption_pct: float | None
    output: float
    output_unit: str
    electricity_kwh: float
    whr_kwh: float
    net_purchased_kwh: float
    fuel_kgce: float
    electricity_kgce: float
    total_kgce: float
    coverage: float
    comprehensive_energy: float | None
    energy_unit: str
    grade: Grade | None
    band: Band | None
    co2_process_t: float
    co2_fuel_t: float
    co2_electricity_t: float
    co2_total_t: float
    co2_process_t_per_unit: float | None
    co2_fuel_t_per_unit: float | None
    co2_electricity_t_per_unit: float | None
    co2_total_t_per_unit: float | None
    process: CarbonateCo2
    provenance: Mapping[str, object] = field(default_factory=dict)


def ceramics_indicators(inputs: CeramicsInputs, settings: CeramicsSettings) -> CeramicsIndicators:
    """Comprehensive energy per m² or t, with GB 21252-2023 grade, NDRC proxy band and CO2 by source."""
    e_class = absorption_class(inputs.product, inputs.water_absorption_pct)
    table = ceramics_table(inputs.product, inputs.water_absorption_pct, settings.thickness_factor)
    proxy = ndrc_proxy(ceramics_table(inputs.product, inputs.water_absorption_pct), settings.ndrc_edition)
    totals = furnace_totals(
        inputs.fuels, inputs.electricity_kwh, inputs.whr_kwh, inputs.carbonates, inputs.carbon, settings
    )

    per_unit: dict[str, float | None] = dict.fromkeys(("energy", "process", "fuel", "elec", "total"))
    line_grade: Grade | None = None
    line_band: Band | None = None
    if inputs.output > 0.0:
        energy = totals.total_kgce / inputs.output
        per_unit.update(energy=energy, process=totals.co2_process_t / inputs.output)
        per_unit.update(fuel=totals.co2_fuel_t / inputs.output, elec=totals.co2_electricity_t / inputs.output)
        per_unit.update(total=totals.co2_total_t / inputs.output)
        line_grade = grade(energy, table)
        line_band = band(energy, proxy.benchmark, proxy.baseline)

    provenance: dict[str, object] = {
        "standard": GB21252_2023,
        "product": inputs.product,
        "water_absorption_pct": inputs.water_absorption_pct,
        "absorption_class": e_class,
        "grade_table": table_provenance(table),
        "thickness_factor": {
            "value": settings.thickness_factor,
            "applies": inputs.product in THICKNESS_FACTOR_PRODUCTS,
            "confidence": "UNCONFIRMED",
        },
        "ndrc": ndrc_provenance(proxy, settings.ndrc_edition),
        **totals.provenance,
    }
    return CeramicsIndicators(
        product=inputs.product,
        absorption_class=e_class,
        water_absorption_pct=inputs.water_absorption_pct,
        output=inputs.output,
        output_unit=OUTPUT_UNIT[inputs.product],
        electricity_kwh=inputs.electricity_kwh,
        whr_kwh=inputs.whr_kwh,
        net_purchased_kwh=totals.net_purchased_kwh,
        fuel_kgce=totals.fuel_kgce,
        electricity_kgce=totals.electricity_kgce,
        total_kgce=totals.total_kgce,
        coverage=inputs.coverage,
        comprehensive_energy=per_unit["energy"],
        energy_unit=table.unit,
        grade=line_grade,
        band=line_band,
        co2_process_t=totals.co2_process_t,
        co2_fuel_t=totals.co2_fuel_t,
        co2_electricity_t=totals.co2_electricity_t,
        co2_total_t=totals.co2_total_t,
        co2_process_t_per_unit=per_unit["process"],
        co2_fuel_t_per_unit=per_unit["fuel"],
        co2_electricity_t_per_unit=per_unit["elec"],
        co2_total_t_per_unit=per_unit["total"],
        process=totals.process,
        provenance=provenance,
    )
