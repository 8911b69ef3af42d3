"""Clinker-line indicators for one line and one period, from physical totals in canonical units.

Why: these are the numbers GB 16780-2021 grades and the NDRC benchmark/baseline judge
(``reference/domain.md`` §1.3, §2), plus CO2 by source (§5.1). The collector sums increments into totals per
line and period (t, kWh, fuel t with its NCV) and calls ``clinker_indicators``; nothing here reads a clock or
a database, so a month can be recomputed with other settings from the same raw totals, which the result
keeps.

Formulas (GB 16780-2021 structure [CONFIRMED-2nd]; clause details [UNCONFIRMED], see ``docs/kpi.md``):

- ``coal_kgce_per_t = Σ_i M_i × 1000 × NCV_i / 29.3076 / P_cl``
- ``electricity_kwh_per_t = W_cl / P_cl`` (all clinker-system electricity, gross consumption)
- ``comprehensive_kgce_per_t = coal + 0.1229 × electricity`` (当量值; 等价值 selectable)

Waste-heat power (WHR) treatment under GB 16780-2021 is UNCONFIRMED, so it is a setting: "none" (default,
conservative: no credit), "deduct_from_electricity" (W_cl − W_whr), or "deduct_from_coal" (coal − W_whr ×
0.1229 / P_cl, as the GB 16780-2012 implementation did). The indirect electricity CO2 is always on net
purchased power ``max(0, W_cl − W_whr)`` (GB/T 32151.8-2015: purchased minus own generation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

from kpi.clinker_co2 import (
    ClinkerOxides,
    ClinkerProcessInputs,
    KilnType,
    LabelledDefault,
    SubstituteUse,
    clinker_process_co2,
)
from kpi.co2 import (
    CLINKER_PROCESS_FACTORS,
    DEFAULT_GRID_FACTOR,
    GridFactor,
    ProcessFactor,
    electricity_co2_t,
    fuel_co2_split,
)
from kpi.standards import (
    CLINKER_COAL,
    CLINKER_ELECTRICITY,
    CLINKER_ENERGY,
    NDRC_CLINKER_ENERGY,
    STANDARD_PRESSURE_PA,
    Band,
    Grade,
    GradeTable,
    NdrcEdition,
    altitude_corrected,
    band,
    grade,
    ndrc_edition_label,
)
from kpi.units import (
    KGCE_KJ,
    SUPPLY_COAL_RATE_GCE_PER_KWH_2022,
    ElectricityBasis,
    electricity_kgce_per_kwh,
    fuel_kgce,
)

WhrTreatment = Literal["none", "deduct_from_electricity", "deduct_from_coal"]
AlternativeFuelTreatment = Literal["count", "exclude"]


@dataclass(frozen=True)
class FuelUse:
    """One fuel fed to the clinker system (kiln burner, calciner, drying, ignition oil) in one period.

    ``ncv_mj_per_kg`` is the as-received net calorific value (numerically GJ/t); ``carbon_t_per_gj`` and
    ``oxidation`` are the combustion parameters (defaults in ``kpi.co2.DEFAULT_FUELS``). ``alternative``
    marks a waste-derived or biomass fuel (RDF, tyres, sludge), whose place in the energy figure is a setting;
    ``biogenic_fraction`` is the share of its carbon that is biogenic, reported as a memo item, not counted.
    """

    name: str
    mass_t: float
    ncv_mj_per_kg: float
    carbon_t_per_gj: float
    oxidation: float
    alternative: bool = False
    biogenic_fraction: float = 0.0


@dataclass(frozen=True)
class ClinkerInputs:
    """Physical totals of one clinker line over one period, in canonical units.

    ``electricity_kwh`` is the gross consumption of the whole clinker system (raw-material prep, fuel prep,
    burning, auxiliary share); ``whr_kwh`` the gross waste-heat generation; ``coverage`` the share (0–1) of
    the period backed by good data, reported beside every KPI (GB/T 38692 asks for ≥ 90 % [CONFIRMED]).
    """

    clinker_t: float
    electricity_kwh: float
    whr_kwh: float
    fuels: tuple[FuelUse, ...]
    coverage: float
    ckd_t: float = 0.0
    bypass_dust_t: float = 0.0
    substitutes: tuple[SubstituteUse, ...] = ()


@dataclass(frozen=True)
class ClinkerSettings:
    """Choices the standards leave open or that a report fixes; every one is recorded in the provenance.

    - ``whr_treatment``: default "none" (no credit) because GB 16780-2021's treatment is UNCONFIRMED.
    - ``electricity_basis``: "equivalent" 当量值 0.1229 kgce/kWh (what GB 16780-2021 uses) or "equal" 等价值
      at ``supply_coal_rate_gce_per_kwh``; the chosen factor is also used for a WHR coal deduction.
    - ``process_factor``: default China ETS 0.535 t/t; ``clinker_oxides``, when given, replaces it.
    - ``kiln_type``/``ckd_calcination``: the CKD calcination rate d (CSI: 0 for dry kilns without data).
    - ``rawmeal_toc``: raw-meal organic carbon; None leaves the term out, as the ETS 2025 formula does.
    - ``grid_factor``: default national average 2023 (0.5306 tCO2/MWh).
    - ``ndrc_edition``: benchmark/baseline edition, "2021" or "2023".
    - ``altitude_m``/``pressure_pa``: site altitude and ambient pressure for the clause 5.3 correction.
    - ``alternative_fuel_treatment``: "count" (default, no credit) puts alternative fuels in the coal term at
      their NCV; "exclude" leaves them out of it (as energy-total controls have done with non-fossil energy
      since 2022). GB 16780-2021's own rule is UNCONFIRMED (domain.md §1.3 item 2).
    """

    whr_treatment: WhrTreatment = "none"
    alternative_fuel_treatment: AlternativeFuelTreatment = "count"
    electricity_basis: ElectricityBasis = "equivalent"
    supply_coal_rate_gce_per_kwh: float = SUPPLY_COAL_RATE_GCE_PER_KWH_2022
    process_factor: ProcessFactor = CLINKER_PROCESS_FACTORS["china_ets"]
    clinker_oxides: ClinkerOxides | None = None
    kiln_type: KilnType = "dry"
    ckd_calcination: float | None = None
    rawmeal_toc: float | LabelledDefault | None = None
    grid_factor: GridFactor = DEFAULT_GRID_FACTOR
    ndrc_edition: NdrcEdition = "2023"
    altitude_m: float = 0.0
    pressure_pa: float = STANDARD_PRESSURE_PA

    def __post_init__(self) -> None:
        if self.whr_treatment not in get_args(WhrTreatment):
            raise ValueError(
                f"unknown whr_treatment {self.whr_treatment!r}; expected {get_args(WhrTreatment)}"
            )
        if self.alternative_fuel_treatment not in get_args(AlternativeFuelTreatment):
            raise ValueError(
                f"unknown alternative_fuel_treatment {self.alternative_fuel_treatment!r};"
                f" expected {get_args(AlternativeFuelTreatment)}"
            )
        if self.ndrc_edition not in NDRC_CLINKER_ENERGY:
            raise ValueError(
                f"unknown ndrc_edition {self.ndrc_edition!r}; expected {tuple(NDRC_CLINKER_ENERGY)}"
            )
        electricity_kgce_per_kwh(self.electricity_basis, self.supply_coal_rate_gce_per_kwh)


@dataclass(frozen=True)
class ClinkerIndicators:
    """Indicators of one line and period. Per-tonne fields, grades and band are None when clinker_t ≤ 0.

    A grade of None with a per-tonne value means "worse than grade 3" (above the GB 16780-2021 limit).
    """

    clinker_t: float
    electricity_kwh: float
    whr_kwh: float
    net_purchased_kwh: float
    fuel_kgce: float
    alternative_fuel_kgce: float
    fuels: tuple[FuelUse, ...]
    coverage: float
    coal_kgce_per_t: float | None
    electricity_kwh_per_t: float | None
    comprehensive_kgce_per_t: float | None
    coal_grade: Grade | None
    electricity_grade: Grade | None
    comprehensive_grade: Grade | None
    band: Band | None
    co2_process_t: float
    co2_fuel_t: float
    co2_electricity_t: float
    co2_total_t: float
    co2_biogenic_memo_t: float
    co2_process_t_per_t: float | None
    co2_fuel_t_per_t: float | None
    co2_electricity_t_per_t: float | None
    co2_total_t_per_t: float | None
    provenance: Mapping[str, object] = field(default_factory=dict)


def _require(name: str, value: float, minimum: float = 0.0, maximum: float = math.inf) -> None:
    if not (math.isfinite(value) and minimum <= value <= maximum):
        raise ValueError(f"{name} must be finite and in [{minimum}, {maximum}], got {value!r}")


def _validate(inputs: ClinkerInputs) -> None:
    _require("clinker_t", inputs.clinker_t, -math.inf)
    _require("electricity_kwh", inputs.electricity_kwh)
    _require("whr_kwh", inputs.whr_kwh)
    _require("coverage", inputs.coverage, 0.0, 1.0)
    _require("ckd_t", inputs.ckd_t)
    _require("bypass_dust_t", inputs.bypass_dust_t)
    for fuel in inputs.fuels:
        _require(f"fuel {fuel.name!r} mass_t", fuel.mass_t)
        _require(f"fuel {fuel.name!r} ncv_mj_per_kg", fuel.ncv_mj_per_kg)
        _require(f"fuel {fuel.name!r} carbon_t_per_gj", fuel.carbon_t_per_gj)
        _require(f"fuel {fuel.name!r} oxidation", fuel.oxidation, 0.0, 1.0)
        _require(f"fuel {fuel.name!r} biogenic_fraction", fuel.biogenic_fraction, 0.0, 1.0)


def _table_provenance(table: GradeTable) -> dict[str, object]:
    return {
        "limits": list(table.limits),
        "unit": table.unit,
        "clause": table.clause,
        "confidence": table.confidence,
    }


def clinker_indicators(inputs: ClinkerInputs, settings: ClinkerSettings) -> ClinkerIndicators:
    """Comprehensive energy, electricity and coal per tonne of clinker with grades, NDRC band and CO2."""
    _validate(inputs)
    kgce_per_kwh = electricity_kgce_per_kwh(settings.electricity_basis, settings.supply_coal_rate_gce_per_kwh)
    p_cl = inputs.clinker_t
    fuel_kgce_total = math.fsum(fuel_kgce(f.mass_t, f.ncv_mj_per_kg) for f in inputs.fuels)
    af_kgce = math.fsum(fuel_kgce(f.mass_t, f.ncv_mj_per_kg) for f in inputs.fuels if f.alternative)
    excluded = af_kgce if settings.alternative_fuel_treatment == "exclude" else 0.0
    counted_fuel_kgce = fuel_kgce_total - excluded
    net_purchased_kwh = max(0.0, inputs.electricity_kwh - inputs.whr_kwh)

    process = clinker_process_co2(
        ClinkerProcessInputs(
            clinker_t=max(p_cl, 0.0),
            factor=settings.process_factor,
            oxides=settings.clinker_oxides,
            ckd_t=inputs.ckd_t,
            bypass_dust_t=inputs.bypass_dust_t,
            ckd_calcination=settings.ckd_calcination,
            kiln_type=settings.kiln_type,
            toc=settings.rawmeal_toc,
            substitutes=inputs.substitutes,
        )
    )
    co2_process = process.total_t
    # Biogenic carbon is a memo item (CSI protocol, domain.md §5.2): reported, not counted in the total.
    splits = [
        fuel_co2_split(f.mass_t, f.ncv_mj_per_kg, f.carbon_t_per_gj, f.oxidation, f.biogenic_fraction)
        for f in inputs.fuels
    ]
    co2_fuel = math.fsum(s.fossil_t for s in splits)
    co2_biogenic = math.fsum(s.biogenic_memo_t for s in splits)
    co2_electricity = electricity_co2_t(net_purchased_kwh, settings.grid_factor.t_per_mwh)
    co2_total = co2_process + co2_fuel + co2_electricity

    tables = {
        t.indicator: altitude_corrected(t, settings.altitude_m, settings.pressure_pa)
        for t in (CLINKER_COAL, CLINKER_ELECTRICITY, CLINKER_ENERGY)
    }
    ndrc = NDRC_CLINKER_ENERGY[settings.ndrc_edition]
    provenance: dict[str, object] = {
        "standard": "GB 16780-2021",
        "grade_tables": {name: _table_provenance(t) for name, t in tables.items()},
        "ndrc": {
            "edition": ndrc_edition_label(settings.ndrc_edition),
            "benchmark": ndrc.benchmark,
            "baseline": ndrc.baseline,
            "document_confidence": ndrc.document_confidence,
            "value_confidence": ndrc.value_confidence,
        },
        "kgce_kj": KGCE_KJ,
        "electricity": {
            "basis": settings.electricity_basis,
            "kgce_per_kwh": kgce_per_kwh,
            "confidence": "CONFIRMED"
            if settings.electricity_basis == "equivalent"
            else "CONFIRMED (2022 supply coal rate)",
        },
        "whr_treatment": {"setting": settings.whr_treatment, "confidence": "UNCONFIRMED"},
        "alternative_fuel_treatment": {
            "setting": settings.alternative_fuel_treatment,
            "confidence": "UNCONFIRMED",
        },
        "process_co2": {
            **process.provenance,
            "terms_t": {
                "calcination": process.calcination_t,
                "deductions": process.deductions_t,
                "dust": process.dust_t,
                "toc": process.toc_t,
            },
        },
        "grid_factor": asdict(settings.grid_factor),
        "fuels": [asdict(f) for f in inputs.fuels],
    }

    per_t: dict[str, float | None] = dict.fromkeys(
        ("coal", "elec", "comp", "co2_process", "co2_fuel", "co2_elec", "co2_total")
    )
    grades: dict[str, Grade | None] = dict.fromkeys(tables)
    ndrc_band: Band | None = None
    if p_cl > 0.0:
        coal = counted_fuel_kgce / p_cl
        elec = inputs.electricity_kwh / p_cl
        if settings.whr_treatment == "deduct_from_coal":
            coal -= inputs.whr_kwh * kgce_per_kwh / p_cl
        elif settings.whr_treatment == "deduct_from_electricity":
            elec -= inputs.whr_kwh / p_cl
        comp = coal + kgce_per_kwh * elec
        per_t.update(coal=coal, elec=elec, comp=comp)
        per_t.update(co2_process=co2_process / p_cl, co2_fuel=co2_fuel / p_cl)
        per_t.update(co2_elec=co2_electricity / p_cl, co2_total=co2_total / p_cl)
        for name, value in (
            (CLINKER_COAL.indicator, coal),
            (CLINKER_ELECTRICITY.indicator, elec),
            (CLINKER_ENERGY.indicator, comp),
        ):
            grades[name] = grade(value, tables[name])
        ndrc_band = band(comp, ndrc.benchmark, ndrc.baseline)

    return ClinkerIndicators(
        clinker_t=p_cl,
        electricity_kwh=inputs.electricity_kwh,
        whr_kwh=inputs.whr_kwh,
        net_purchased_kwh=net_purchased_kwh,
        fuel_kgce=fuel_kgce_total,
        alternative_fuel_kgce=af_kgce,
        fuels=inputs.fuels,
        coverage=inputs.coverage,
        coal_kgce_per_t=per_t["coal"],
        electricity_kwh_per_t=per_t["elec"],
        comprehensive_kgce_per_t=per_t["comp"],
        coal_grade=grades[CLINKER_COAL.indicator],
        electricity_grade=grades[CLINKER_ELECTRICITY.indicator],
        comprehensive_grade=grades[CLINKER_ENERGY.indicator],
        band=ndrc_band,
        co2_process_t=co2_process,
        co2_fuel_t=co2_fuel,
        co2_electricity_t=co2_electricity,
        co2_total_t=co2_total,
        co2_biogenic_memo_t=co2_biogenic,
        co2_process_t_per_t=per_t["co2_process"],
        co2_fuel_t_per_t=per_t["co2_fuel"],
        co2_electricity_t_per_t=per_t["co2_elec"],
        co2_total_t_per_t=per_t["co2_total"],
        provenance=provenance,
    )


def cement_prep_kwh_per_t(cement_mill_kwh: float, cement_t: float) -> float | None:
    """Cement-preparation-section electricity, kWh/t cement (GB 16780-2021 Table 3) [CONFIRMED-2nd].

    The section runs from the clinker/gypsum/additive batching silos to cement into storage; grade it with
    ``grade(value, kpi.standards.CEMENT_PREP_ELECTRICITY)``. None when no cement was produced.
    """
    _require("cement_mill_kwh", cement_mill_kwh)
    _require("cement_t", cement_t, -math.inf)
    return cement_mill_kwh / cement_t if cement_t > 0.0 else None
