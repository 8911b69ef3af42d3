"""Cement indicators of GB 16780-2021 and the reconciliation of metered against inventory clinker output.

Why: a grinding plant or the cement side of an integrated plant is judged on 水泥单位产品综合能耗 (Table 1),
whose limits are stated at 75 % clinker and move with the actual clinker ratio (clause 5.4), and on the
cement-preparation-section electricity (Table 3) [CONFIRMED-2nd] (``reference/domain.md`` §1.1). The cement
figure carries the energy embodied in the clinker it consumed, own or purchased, so it is computed from the
clinker line's comprehensive energy (``kpi.clinker``) rather than from meters alone:

``e_cement = (C_own × e_cl,own + C_purchased × e_cl,purchased) / P_cement
            + (W_prep × k_elec + Σ fuel kgce of the section) / P_cement``

which equals ``clinker ratio × e_cl + 0.1229 × e_elec,prep (+ section fuels)`` (domain.md §1.3) when all
clinker is the plant's own. Purchased clinker is excluded from the clinker line's output but included here at
the supplier's declared energy; when none is declared the default is the GB 16780-2021 grade-3 limit, a
conservative assumption labelled UNCONFIRMED (the 2012 implementation had its own defaults).

Clinker output: plants meter it (belt or bucket scale into the silos) and reconcile it by stock-taking
(``P_cl = clinker out of the silos + closing stock − opening stock − purchased clinker received``); both
figures are kept and a difference above a threshold (2 % default; domain.md says 2–3 %) is flagged
[UNCONFIRMED practice].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kpi.clinker import FuelUse
from kpi.standards import (
    CEMENT_PREP_ELECTRICITY,
    CLINKER_ENERGY,
    STANDARD_PRESSURE_PA,
    Grade,
    altitude_corrected,
    cement_energy_table,
    grade,
)
from kpi.units import (
    SUPPLY_COAL_RATE_GCE_PER_KWH_2022,
    ElectricityBasis,
    electricity_kgce_per_kwh,
    fuel_kgce,
)

#: Default energy of purchased clinker when the supplier declares none: the GB 16780-2021 grade-3 limit.
PURCHASED_CLINKER_DEFAULT_KGCE_PER_T = CLINKER_ENERGY.limits[2]
#: Meter-vs-inventory clinker difference above which the output is flagged (domain.md §1.3: 2–3 %).
CLINKER_DISCREPANCY_THRESHOLD_PCT = 2.0


def _require(name: str, value: float, minimum: float = 0.0) -> None:
    if not (math.isfinite(value) and value >= minimum):
        raise ValueError(f"{name} must be finite and ≥ {minimum}, got {value!r}")


@dataclass(frozen=True)
class ClinkerInventory:
    """Stock-taking of the clinker silos over one period, t.

    ``dispatched_t`` is clinker out of the silos (to the cement mills and sold); ``purchased_received_t`` is
    clinker bought in and put into the same silos, which is not the line's own production.
    """

    opening_stock_t: float
    closing_stock_t: float
    dispatched_t: float
    purchased_received_t: float = 0.0

    def __post_init__(self) -> None:
        for name in ("opening_stock_t", "closing_stock_t", "dispatched_t", "purchased_received_t"):
            _require(name, getattr(self, name))

    @property
    def produced_t(self) -> float:
        """Own production by inventory: dispatched + closing − opening − purchased received."""
        return self.dispatched_t + self.closing_stock_t - self.opening_stock_t - self.purchased_received_t


@dataclass(frozen=True)
class ClinkerOutputCheck:
    """Metered and inventory clinker output side by side; ``flagged`` when they differ by more than allowed.

    ``difference_pct`` is (meter − inventory) / inventory × 100; None when the inventory figure is not > 0.
    """

    meter_t: float
    inventory_t: float
    difference_pct: float | None
    threshold_pct: float
    flagged: bool


def reconcile_clinker_output(
    meter_t: float, inventory: ClinkerInventory, threshold_pct: float = CLINKER_DISCREPANCY_THRESHOLD_PCT
) -> ClinkerOutputCheck:
    """Compare the clinker scale's total with the stock-taking figure for the same period."""
    _require("meter_t", meter_t)
    if not (math.isfinite(threshold_pct) and threshold_pct > 0.0):
        raise ValueError(f"threshold_pct must be > 0, got {threshold_pct!r}")
    inv_t = inventory.produced_t
    if inv_t > 0.0:
        diff = (meter_t - inv_t) / inv_t * 100.0
        flagged = abs(diff) > threshold_pct
    else:
        diff = None
        flagged = meter_t > 0.0  # the scale saw production the stock-taking cannot account for
    return ClinkerOutputCheck(meter_t, inv_t, diff, threshold_pct, flagged)


@dataclass(frozen=True)
class CementInputs:
    """Totals of the cement side over one period.

    - ``cement_t``: cement produced (into the cement silos).
    - ``own_clinker_t`` / ``purchased_clinker_t``: clinker consumed by the cement mills, by origin.
    - ``prep_electricity_kwh``: the cement-preparation section, batching silos to cement into storage.
    - ``fuels``: fuels of the section, e.g. a dryer for slag or other mineral additions.
    """

    cement_t: float
    own_clinker_t: float
    prep_electricity_kwh: float
    purchased_clinker_t: float = 0.0
    fuels: tuple[FuelUse, ...] = ()

    def __post_init__(self) -> None:
        for name in ("cement_t", "own_clinker_t", "prep_electricity_kwh", "purchased_clinker_t"):
            _require(name, getattr(self, name))
        for fuel in self.fuels:
            _require(f"fuel {fuel.name!r} mass_t", fuel.mass_t)
            _require(f"fuel {fuel.name!r} ncv_mj_per_kg", fuel.ncv_mj_per_kg)


@dataclass(frozen=True)
class CementSettings:
    """Choices recorded with every cement indicator (see the module docstring for the defaults' labels)."""

    electricity_basis: ElectricityBasis = "equivalent"
    supply_coal_rate_gce_per_kwh: float = SUPPLY_COAL_RATE_GCE_PER_KWH_2022
    purchased_clinker_kgce_per_t: float = PURCHASED_CLINKER_DEFAULT_KGCE_PER_T
    purchased_clinker_source: str = "default: GB 16780-2021 grade-3 clinker limit (UNCONFIRMED assumption)"
    altitude_m: float = 0.0
    pressure_pa: float = STANDARD_PRESSURE_PA

    def __post_init__(self) -> None:
        _require("purchased_clinker_kgce_per_t", self.purchased_clinker_kgce_per_t)
        electricity_kgce_per_kwh(self.electricity_basis, self.supply_coal_rate_gce_per_kwh)


@dataclass(frozen=True)
class CementIndicators:
    """Cement indicators of one period; per-tonne fields are None when no cement was produced.

    ``comprehensive_kgce_per_t`` is also None when own clinker was consumed but the clinker line's energy is
    unknown for the period (``missing`` says so), rather than silently counting that clinker at zero.
    """

    cement_t: float
    clinker_ratio_pct: float | None
    prep_electricity_kwh_per_t: float | None
    prep_electricity_grade: Grade | None
    comprehensive_kgce_per_t: float | None
    comprehensive_grade: Grade | None
    limits_kgce_per_t: tuple[float, float, float] | None
    missing: tuple[str, ...]
    provenance: dict[str, object] = field(default_factory=dict)


def cement_indicators(
    inputs: CementInputs, own_clinker_kgce_per_t: float | None, settings: CementSettings
) -> CementIndicators:
    """Cement comprehensive energy with the clinker-ratio-corrected grade, and section electricity.

    ``own_clinker_kgce_per_t`` is the clinker line's comprehensive energy for the same period
    (``ClinkerIndicators.comprehensive_kgce_per_t``), or None when the line made no clinker in it.
    """
    kgce_per_kwh = electricity_kgce_per_kwh(settings.electricity_basis, settings.supply_coal_rate_gce_per_kwh)
    section_fuel_kgce = math.fsum(fuel_kgce(f.mass_t, f.ncv_mj_per_kg) for f in inputs.fuels)
    provenance: dict[str, object] = {
        "standard": "GB 16780-2021",
        "formula": "(C_own × e_cl,own + C_purch × e_cl,purch + W_prep × k_elec + section fuels) / P_cement",
        "electricity": {"basis": settings.electricity_basis, "kgce_per_kwh": kgce_per_kwh},
        "own_clinker_kgce_per_t": own_clinker_kgce_per_t,
        "purchased_clinker": {
            "kgce_per_t": settings.purchased_clinker_kgce_per_t,
            "source": settings.purchased_clinker_source,
        },
        "section_fuel_kgce": section_fuel_kgce,
        "clinker_ratio_correction": {"clause": "5.4", "confidence": "CONFIRMED-2nd"},
    }
    p = inputs.cement_t
    if p <= 0.0:
        return CementIndicators(p, None, None, None, None, None, None, (), provenance)

    prep = inputs.prep_electricity_kwh / p
    prep_table = CEMENT_PREP_ELECTRICITY
    ratio_pct = (inputs.own_clinker_t + inputs.purchased_clinker_t) / p * 100.0
    missing: tuple[str, ...] = ()
    comp = comp_grade = limits = None
    if inputs.own_clinker_t > 0.0 and own_clinker_kgce_per_t is None:
        missing = ("own_clinker_kgce_per_t",)
    elif 0.0 < ratio_pct <= 100.0:
        clinker_kgce = inputs.own_clinker_t * (own_clinker_kgce_per_t or 0.0)
        clinker_kgce += inputs.purchased_clinker_t * settings.purchased_clinker_kgce_per_t
        comp = (clinker_kgce + inputs.prep_electricity_kwh * kgce_per_kwh + section_fuel_kgce) / p
        table = altitude_corrected(cement_energy_table(ratio_pct), settings.altitude_m, settings.pressure_pa)
        comp_grade = grade(comp, table)
        limits = table.limits
        provenance["grade_table"] = {"limits": list(table.limits), "clause": table.clause}
    else:
        missing = ("clinker_ratio_pct in (0, 100]",)
    return CementIndicators(
        cement_t=p,
        clinker_ratio_pct=ratio_pct,
        prep_electricity_kwh_per_t=prep,
        prep_electricity_grade=grade(prep, prep_table),
        comprehensive_kgce_per_t=comp,
        comprehensive_grade=comp_grade,
        limits_kgce_per_t=limits,
        missing=missing,
        provenance=provenance,
    )
