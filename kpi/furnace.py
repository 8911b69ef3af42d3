"""Fuels, energy/CO2 settings and totals of one glass furnace or ceramic kiln over one period.

Why: GB 21340-2019 (flat glass) and GB 21252-2023 (ceramics) share the same energy structure,
``Σ fuel kgce + e × kWh`` (GB/T 2589-2020, ``reference/domain.md`` §4), and the same CO2 sources: fuel,
batch carbonates (§5.4) and net purchased power (§5.3). ``kpi.glass`` and ``kpi.ceramics`` divide these
totals by their own outputs and grade them against their own tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from kpi.carbonates import (
    CARBONATE_FACTORS,
    CarbonateCo2,
    CarbonateFactor,
    CarbonateUse,
    CarbonUse,
    carbonate_process_co2,
    require_in_range,
)
from kpi.co2 import DEFAULT_GRID_FACTOR, GridFactor, electricity_co2_t, fuel_co2_t
from kpi.standards import NDRC_CLINKER_ENERGY, BenchmarkBaseline, GradeTable, NdrcEdition, ndrc_edition_label
from kpi.units import (
    KGCE_KJ,
    KGCE_MJ,
    SUPPLY_COAL_RATE_GCE_PER_KWH_2022,
    ElectricityBasis,
    electricity_kgce_per_kwh,
    fuel_kgce,
)


def table_provenance(table: GradeTable) -> dict[str, object]:
    """The limits actually used, with unit, clause and confidence; an undefined (−inf) grade shows as None."""
    return {
        "limits": [limit if math.isfinite(limit) else None for limit in table.limits],
        "unit": table.unit,
        "clause": table.clause,
        "confidence": table.confidence,
    }


def ndrc_provenance(entry: BenchmarkBaseline | None, edition: NdrcEdition) -> dict[str, object]:
    """The NDRC thresholds used for the band. Without an entry, records why there is no band."""
    if entry is None:
        return {
            "edition": ndrc_edition_label(edition),
            "levels": None,
            "reason": "no NDRC level for this product/class",
        }
    return {
        "edition": ndrc_edition_label(edition),
        "benchmark": entry.benchmark,
        "baseline": entry.baseline,
        "document_confidence": entry.document_confidence,
        "value_confidence": entry.value_confidence,
        "note": entry.note,
        "corrected": False,
    }


@dataclass(frozen=True)
class FurnaceFuel:
    """One fuel fired in a furnace or kiln in one period: natural gas, heavy oil, producer gas, coal, ….

    ``quantity`` is in ``unit`` (e.g. "t", "m3" or "1e4 Nm3"; the unit is a label kept in the provenance).
    Give the fuel's heat as exactly one of:

    - ``ncv_gj_per_unit``, a measured net calorific value. This is preferred (domain.md §4.1).
    - ``kgce_per_unit``, a GB/T 2589 reference factor such as ``kpi.units.STANDARD_COAL_FACTORS``.

    ``carbon_t_per_gj`` and ``oxidation`` are the combustion parameters (defaults in
    ``kpi.co2.DEFAULT_FUELS``).
    """

    name: str
    quantity: float
    unit: str
    carbon_t_per_gj: float
    oxidation: float
    ncv_gj_per_unit: float | None = None
    kgce_per_unit: float | None = None

    def __post_init__(self) -> None:
        if (self.ncv_gj_per_unit is None) == (self.kgce_per_unit is None):
            raise ValueError(f"fuel {self.name!r}: give exactly one of ncv_gj_per_unit or kgce_per_unit")
        require_in_range(f"fuel {self.name!r} quantity", self.quantity)
        require_in_range(f"fuel {self.name!r} carbon_t_per_gj", self.carbon_t_per_gj)
        require_in_range(f"fuel {self.name!r} oxidation", self.oxidation, 0.0, 1.0)
        for label in ("ncv_gj_per_unit", "kgce_per_unit"):
            value = getattr(self, label)
            if value is not None:
                require_in_range(f"fuel {self.name!r} {label}", value)

    @property
    def heat_gj_per_unit(self) -> float:
        """NCV in GJ per ``unit``. A kgce factor is converted back at 29.3076 MJ/kgce (GB/T 2589-2020)."""
        if self.ncv_gj_per_unit is not None:
            return self.ncv_gj_per_unit
        assert self.kgce_per_unit is not None  # guaranteed by __post_init__
        return self.kgce_per_unit * KGCE_MJ / 1000.0

    @property
    def kgce(self) -> float:
        """Standard coal, kgce: ``quantity × NCV × 1000 / 29.3076`` (= ``quantity × kgce_per_unit``)."""
        # kpi.units.fuel_kgce is q × 1000 × NCV / 29.3076: right for any unit with the NCV in GJ per unit.
        return fuel_kgce(self.quantity, self.heat_gj_per_unit)

    @property
    def co2_t(self) -> float:
        """Combustion CO2, t: ``quantity × NCV × CC × OF × 44/12`` (kpi.co2.fuel_co2_t)."""
        return fuel_co2_t(self.quantity, self.heat_gj_per_unit, self.carbon_t_per_gj, self.oxidation)


@dataclass(frozen=True)
class FurnaceSettings:
    """The energy and CO2 choices shared by glass and ceramics. Every one is recorded in the provenance.

    - ``electricity_basis``: "equivalent" (当量值, 0.1229 kgce/kWh) or "equal" (等价值) at
      ``supply_coal_rate_gce_per_kwh``.
    - ``grid_factor``: the default is the 2023 national average, 0.5306 tCO2/MWh (domain.md §5.3).
    - ``ndrc_edition``: the benchmark/baseline edition, "2021" or "2023".
    - ``carbonate_factors``: the EF table for ``kpi.carbonates``. Replace it to use official or extra factors.
    """

    electricity_basis: ElectricityBasis = "equivalent"
    supply_coal_rate_gce_per_kwh: float = SUPPLY_COAL_RATE_GCE_PER_KWH_2022
    grid_factor: GridFactor = DEFAULT_GRID_FACTOR
    ndrc_edition: NdrcEdition = "2023"
    carbonate_factors: Mapping[str, CarbonateFactor] = field(default_factory=lambda: CARBONATE_FACTORS)

    def __post_init__(self) -> None:
        if self.ndrc_edition not in NDRC_CLINKER_ENERGY:
            raise ValueError(
                f"unknown ndrc_edition {self.ndrc_edition!r}; expected {tuple(NDRC_CLINKER_ENERGY)}"
            )
        electricity_kgce_per_kwh(self.electricity_basis, self.supply_coal_rate_gce_per_kwh)


@dataclass(frozen=True)
class FurnaceTotals:
    """Energy and CO2 totals of one furnace or kiln over one period, before dividing by output."""

    fuel_kgce: float
    electricity_kgce: float
    total_kgce: float
    net_purchased_kwh: float
    co2_fuel_t: float
    co2_process_t: float
    co2_electricity_t: float
    co2_total_t: float
    process: CarbonateCo2
    provenance: Mapping[str, object]


def furnace_totals(
    fuels: Sequence[FurnaceFuel],
    electricity_kwh: float,
    whr_kwh: float,
    carbonates: Sequence[CarbonateUse],
    carbon: Sequence[CarbonUse],
    settings: FurnaceSettings,
) -> FurnaceTotals:
    """``Σ fuel kgce + e × kWh`` (gross, no WHR credit) and CO2 from fuel, process and net purchased power.

    This is the shared core of ``glass_indicators`` and ``kpi.ceramics.ceramics_indicators``
    (domain.md §4, §5.3, §5.4).
    """
    require_in_range("electricity_kwh", electricity_kwh)
    require_in_range("whr_kwh", whr_kwh)
    kgce_per_kwh = electricity_kgce_per_kwh(settings.electricity_basis, settings.supply_coal_rate_gce_per_kwh)
    fuel_kgce_total = math.fsum(f.kgce for f in fuels)
    electricity_kgce = electricity_kwh * kgce_per_kwh
    net_purchased_kwh = max(0.0, electricity_kwh - whr_kwh)
    process = carbonate_process_co2(carbonates, carbon, settings.carbonate_factors)
    co2_fuel = math.fsum(f.co2_t for f in fuels)
    co2_electricity = electricity_co2_t(net_purchased_kwh, settings.grid_factor.t_per_mwh)
    equivalent_or_default = (
        settings.electricity_basis == "equivalent"
        or settings.supply_coal_rate_gce_per_kwh == SUPPLY_COAL_RATE_GCE_PER_KWH_2022
    )
    provenance: dict[str, object] = {
        "kgce_kj": KGCE_KJ,
        "electricity": {
            "basis": settings.electricity_basis,
            "kgce_per_kwh": kgce_per_kwh,
            "confidence": "CONFIRMED" if equivalent_or_default else "UNCONFIRMED",
        },
        "whr": {
            "energy": "no credit (gross consumption)",
            "co2": "net purchased = max(0, consumption − WHR)",
            "confidence": "UNCONFIRMED",
        },
        "process_co2": dict(process.provenance),
        "grid_factor": asdict(settings.grid_factor),
        "fuels": [
            {**asdict(f), "heat_gj_per_unit": f.heat_gj_per_unit, "kgce": f.kgce, "co2_t": f.co2_t}
            for f in fuels
        ],
    }
    return FurnaceTotals(
        fuel_kgce=fuel_kgce_total,
        electricity_kgce=electricity_kgce,
        total_kgce=fuel_kgce_total + electricity_kgce,
        net_purchased_kwh=net_purchased_kwh,
        co2_fuel_t=co2_fuel,
        co2_process_t=process.total_t,
        co2_electricity_t=co2_electricity,
        co2_total_t=co2_fuel + process.total_t + co2_electricity,
        process=process,
        provenance=provenance,
    )
