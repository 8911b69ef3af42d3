"""CO2 accounting for a clinker line: fuel combustion, clinker process (calcination) and purchased power.

Why: regulators want CO2 by source with the factor vintage (DESIGN "Indicators"). The structure follows
GB/T 32151.8-2015 and the 2013 NDRC cement guideline [CONFIRMED] (``reference/domain.md`` §5.1):
``E_total = E_fuel + E_process + E_electricity(net purchased)``. Every default factor is data with its value,
source, vintage and confidence label, so a report can state exactly what it used; a lab-measured NCV, carbon
content or clinker CaO/MgO always replaces a default. Alternative fuels, biomass memo items, CKD and
substitute raw material deductions are later extensions (their structure is UNCONFIRMED).
"""

from __future__ import annotations

from dataclasses import dataclass

from kpi.confidence import Confidence

#: Molar mass ratio CO2 / C.
CO2_PER_C = 44.0 / 12.0
#: Molar mass ratio CO2 / CaO (CaCO3 → CaO + CO2).
CO2_PER_CAO = 44.0 / 56.0
#: Molar mass ratio CO2 / MgO (MgCO3 → MgO + CO2).
CO2_PER_MGO = 44.0 / 40.0


@dataclass(frozen=True)
class FuelCarbon:
    """Default combustion parameters of a fuel: NCV (GJ per ``quantity_unit``), carbon per heat, oxidation."""

    name_zh: str
    ncv_gj_per_unit: float
    quantity_unit: str
    carbon_t_per_gj: float
    oxidation: float
    confidence: Confidence
    source: str


_FUEL_SOURCE = "Chinese guideline defaults via felix0220170/ghg-accounting src/config/fossilFuelConstants.js"

#: Default fuel parameters (``reference/domain.md`` §5.1) [CONFIRMED-2nd]; whether the cement guideline uses
#: the same oxidation rates is UNCONFIRMED.
DEFAULT_FUELS: dict[str, FuelCarbon] = {
    "anthracite": FuelCarbon("无烟煤", 24.515, "t", 0.02749, 0.94, "CONFIRMED-2nd", _FUEL_SOURCE),
    "bituminous": FuelCarbon("烟煤", 23.204, "t", 0.02618, 0.93, "CONFIRMED-2nd", _FUEL_SOURCE),
    "lignite": FuelCarbon("褐煤", 14.449, "t", 0.02800, 0.96, "CONFIRMED-2nd", _FUEL_SOURCE),
    "washed_coal": FuelCarbon("洗精煤", 26.344, "t", 0.02540, 0.93, "CONFIRMED-2nd", _FUEL_SOURCE),
    "coke": FuelCarbon("焦炭", 28.446, "t", 0.02940, 0.93, "CONFIRMED-2nd", _FUEL_SOURCE),
    "diesel": FuelCarbon("柴油", 43.33, "t", 0.02020, 0.98, "CONFIRMED-2nd", _FUEL_SOURCE),
    "fuel_oil": FuelCarbon("燃料油", 40.19, "t", 0.02110, 0.98, "CONFIRMED-2nd", _FUEL_SOURCE),
    "lpg": FuelCarbon("液化石油气", 47.31, "t", 0.01720, 0.99, "CONFIRMED-2nd", _FUEL_SOURCE),
    "natural_gas": FuelCarbon("天然气", 389.31, "1e4 Nm3", 0.01530, 0.99, "CONFIRMED-2nd", _FUEL_SOURCE),
    "petroleum_coke": FuelCarbon("石油焦", 31.00, "t", 0.02750, 0.98, "CONFIRMED-2nd", _FUEL_SOURCE),
}


def fuel_co2_t(mass_t: float, ncv_gj_per_t: float, carbon_t_per_gj: float, oxidation: float) -> float:
    """Combustion CO2, t: ``FC × NCV × CC × OF × 44/12`` (GB/T 32151.8-2015 structure) [CONFIRMED].

    ``mass_t`` in the unit the NCV is per (t for solid and liquid fuels; 10⁴ Nm³ for natural gas).
    """
    if not 0.0 <= oxidation <= 1.0:
        raise ValueError(f"oxidation must be a fraction in [0, 1], got {oxidation!r}")
    return mass_t * ncv_gj_per_t * carbon_t_per_gj * oxidation * CO2_PER_C


@dataclass(frozen=True)
class ProcessFactor:
    """A clinker process (calcination) emission factor, tCO2 per t clinker, with its source."""

    t_per_t: float
    source: str
    confidence: Confidence


#: Default clinker process factors (``reference/domain.md`` §5.1, §5.2). Plant data always win.
CLINKER_PROCESS_FACTORS: dict[str, ProcessFactor] = {
    "china_ets": ProcessFactor(
        0.535,
        "China national ETS cement guideline (2025) default, Portland clinker; "
        "via felix0220170/ghg-accounting ClinkerProductionEmission.jsx",
        "CONFIRMED-2nd",
    ),
    "csi": ProcessFactor(0.525, "WBCSD CSI Cement CO2 and Energy Protocol v3 default", "CONFIRMED"),
    "ipcc": ProcessFactor(0.507, "IPCC 2006 Tier 1 (CaO 64.6 %)", "CONFIRMED"),
}


def oxide_process_ef_t_per_t(
    cao: float, mgo: float, cao_noncarbonate: float = 0.0, mgo_noncarbonate: float = 0.0
) -> float:
    """Process factor from clinker oxides (mass fractions 0–1), GB/T 32151.8-2015 [CONFIRMED]:

    ``EF = (CaO − CaO_nc) × 44/56 + (MgO − MgO_nc) × 44/40``, where ``_nc`` is the part of each oxide from
    non-carbonate sources (slags, carbide sludge, fly ash …), which released no CO2 in the kiln.
    """
    for name, value in (("cao", cao), ("mgo", mgo), ("cao_noncarbonate", cao_noncarbonate),
                        ("mgo_noncarbonate", mgo_noncarbonate)):  # fmt: skip
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a mass fraction in [0, 1], got {value!r}")
    if cao_noncarbonate > cao or mgo_noncarbonate > mgo:
        raise ValueError("non-carbonate CaO/MgO cannot exceed the clinker's total CaO/MgO")
    return (cao - cao_noncarbonate) * CO2_PER_CAO + (mgo - mgo_noncarbonate) * CO2_PER_MGO


def clinker_process_co2_t(clinker_t: float, ef_t_per_t: float) -> float:
    """Process CO2, t: clinker produced × process emission factor."""
    return clinker_t * ef_t_per_t


@dataclass(frozen=True)
class GridFactor:
    """A grid emission factor with its vintage (data year), publishing authority and intended use."""

    t_per_mwh: float
    region: str
    vintage: int
    authority: str
    use: str
    confidence: Confidence
    source: str


#: Grid factors (``reference/domain.md`` §5.3). tCO2/MWh equals kgCO2/kWh.
GRID_FACTORS: dict[str, GridFactor] = {
    "national_ets_2022": GridFactor(
        0.5703, "China", 2022, "MEE", "national ETS reporting (2023–2025 notices)", "CONFIRMED",
        "MEE notice of February 2023; tanpaifang.com",
    ),
    "national_aef_2021": GridFactor(
        0.5568, "China", 2021, "MEE + NBS", "national average (published 2024-04-12)", "CONFIRMED",
        "econpapers energies 18(3) 654",
    ),
    "national_aef_2022": GridFactor(
        0.5366, "China", 2022, "MEE + NBS", "national average (published 2024-12)", "CONFIRMED",
        "dhirubhai.net grid emission factor article",
    ),
    "national_aef_2023": GridFactor(
        0.5306, "China", 2023, "MEE + NBS", "national average, newest found", "CONFIRMED",
        "163.com (光明日报) 2023 factor article",
    ),
    "chongqing_2021": GridFactor(
        0.4743, "Chongqing", 2021, "MEE + NBS", "provincial average", "CONFIRMED-2nd",
        "felix0220170/ghg-accounting src/config/emissionConstants.js",
    ),
    "chongqing_2022": GridFactor(
        0.5227, "Chongqing", 2022, "MEE + NBS", "provincial average", "CONFIRMED-2nd",
        "felix0220170/ghg-accounting src/config/emissionConstants.js",
    ),
}  # fmt: skip
#: Default for KPIs: the newest national average factor (product/corporate footprints, domain.md §5.3).
DEFAULT_GRID_FACTOR = GRID_FACTORS["national_aef_2023"]


def electricity_co2_t(kwh: float, factor_t_per_mwh: float) -> float:
    """Indirect CO2 of purchased electricity, t: ``kWh / 1000 × tCO2/MWh`` (GB/T 32151.8-2015)."""
    return kwh / 1000.0 * factor_t_per_mwh
