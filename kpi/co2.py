"""CO2 accounting for a clinker line: fuel combustion, clinker process (calcination), purchased power, heat.

Why: regulators want CO2 by source with the factor vintage (DESIGN "Indicators"). The structure follows
GB/T 32151.8-2015 and the 2013 NDRC cement guideline [CONFIRMED] (``reference/domain.md`` §5.1):
``E_total = E_fuel + E_process + E_electricity,heat(net purchased)``. Every default factor is data with its
value, source, vintage and confidence label, so a report can state exactly what it used; a lab-measured NCV,
carbon content, biogenic share or clinker CaO/MgO always replaces a default. The full clinker-process method
(CKD and bypass dust, raw-meal organic carbon, substitute raw material deductions) is in ``kpi.clinker_co2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from kpi.confidence import Confidence

#: Molar mass ratio CO2 / C.
CO2_PER_C = 44.0 / 12.0
#: Molar mass ratio CO2 / CaO (CaCO3 → CaO + CO2).
CO2_PER_CAO = 44.0 / 56.0
#: Molar mass ratio CO2 / MgO (MgCO3 → MgO + CO2).
CO2_PER_MGO = 44.0 / 40.0


def _require_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")


def _require_non_negative(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be finite and ≥ 0, got {value!r}")


@dataclass(frozen=True)
class FuelCarbon:
    """Default combustion parameters of a fuel: NCV (GJ per ``quantity_unit``), carbon per heat, oxidation.

    ``biogenic_fraction`` is the biogenic share of the fuel's carbon, C_bio / C_total (0 for fossil fuels).
    The CSI protocol v3 counts biomass CO2 as a memo item and splits mixed fuels by this share [CONFIRMED
    gist]; the Chinese guidelines' structure for it is UNCONFIRMED (``reference/domain.md`` §5.1, §5.2).
    """

    name_zh: str
    ncv_gj_per_unit: float
    quantity_unit: str
    carbon_t_per_gj: float
    oxidation: float
    confidence: Confidence
    source: str
    biogenic_fraction: float = 0.0

    def __post_init__(self) -> None:
        _require_fraction("oxidation", self.oxidation)
        _require_fraction("biogenic_fraction", self.biogenic_fraction)


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

#: Alternative fuels: placeholders until the plant's lab reports NCV, carbon and biogenic share, which always
#: replace them. All UNCONFIRMED; each row states its basis. Oxidation 1.0 (complete burn-out in the kiln, as
#: the CSI protocol assumes). Carbon per GJ is derived from a CO2 factor as ``EF_kgCO2/GJ / 1000 × 12/44``.
ALTERNATIVE_FUELS: dict[str, FuelCarbon] = {
    "waste_tyres": FuelCarbon(
        "废轮胎", 28.0, "t", 0.085 * 12 / 44, 1.0, "UNCONFIRMED",
        "CO2 factor 85 kgCO2/GJ and ~27 % biogenic carbon (natural rubber) as commonly cited from the CSI "
        "protocol default list; NCV 28 GJ/t is a typical value, not a cited default",
        biogenic_fraction=0.27,
    ),
    "rdf": FuelCarbon(
        "垃圾衍生燃料 (RDF/SRF)", 15.0, "t", 0.0250, 1.0, "UNCONFIRMED",
        "carbon 25.0 kgC/GJ = IPCC 2006 Vol 2 Table 1.3 municipal waste (non-biomass fraction); NCV 15 GJ/t "
        "and biogenic share 0.5 are mid-range placeholders (RDF varies ~30–70 % biogenic by composition)",
        biogenic_fraction=0.5,
    ),
    "sewage_sludge": FuelCarbon(
        "市政污泥 (干化)", 10.0, "t", 0.110 * 12 / 44, 1.0, "UNCONFIRMED",
        "dried sewage sludge, fully biogenic; CO2 factor 110 kgCO2/GJ as commonly cited from the CSI biomass "
        "defaults; NCV 10 GJ/t (dry basis) is a placeholder",
        biogenic_fraction=1.0,
    ),
    "wood_chips": FuelCarbon(
        "木屑/木片", 15.6, "t", 0.0305, 1.0, "UNCONFIRMED",
        "IPCC 2006 Vol 2 Tables 1.2/1.3 wood/wood waste: NCV 15.6 GJ/t, carbon 30.5 kgC/GJ; fully biogenic",
        biogenic_fraction=1.0,
    ),
    "rice_husk": FuelCarbon(
        "稻壳", 11.6, "t", 0.0273, 1.0, "UNCONFIRMED",
        "IPCC 2006 Vol 2 Tables 1.2/1.3 other primary solid biomass: NCV 11.6 GJ/t, carbon 27.3 kgC/GJ; "
        "fully biogenic",
        biogenic_fraction=1.0,
    ),
}  # fmt: skip


def fuel_co2_t(mass_t: float, ncv_gj_per_t: float, carbon_t_per_gj: float, oxidation: float) -> float:
    """Combustion CO2, t: ``FC × NCV × CC × OF × 44/12`` (GB/T 32151.8-2015 structure) [CONFIRMED].

    ``mass_t`` in the unit the NCV is per (t for solid and liquid fuels; 10⁴ Nm³ for natural gas).
    """
    _require_fraction("oxidation", oxidation)
    return mass_t * ncv_gj_per_t * carbon_t_per_gj * oxidation * CO2_PER_C


class FuelCo2Split(NamedTuple):
    """Combustion CO2 split by carbon origin, t. Only ``fossil_t`` counts in the total."""

    fossil_t: float
    biogenic_memo_t: float


def fuel_co2_split(
    mass_t: float, ncv_gj_per_t: float, carbon_t_per_gj: float, oxidation: float, biogenic_fraction: float
) -> FuelCo2Split:
    """Combustion CO2 of a mixed or biomass fuel split into counted fossil CO2 and the biogenic memo item.

    ``total = FC × NCV × CC × OF × 44/12``; ``fossil = total × (1 − b)``, ``biogenic_memo = total × b`` with
    ``b = C_bio / C_total``. Why: the CSI protocol v3 reports biomass CO2 as a memo item, not in the total,
    and splits mixed fuels by biogenic carbon share [CONFIRMED gist]; the Chinese guidelines' structure
    (``E_AF = Q × HV × EF × non-biomass share``) is UNCONFIRMED but gives the same fossil figure.
    """
    for name, value in (("mass_t", mass_t), ("ncv_gj_per_t", ncv_gj_per_t),
                        ("carbon_t_per_gj", carbon_t_per_gj)):  # fmt: skip
        _require_non_negative(name, value)
    _require_fraction("biogenic_fraction", biogenic_fraction)
    total = fuel_co2_t(mass_t, ncv_gj_per_t, carbon_t_per_gj, oxidation)
    biogenic = total * biogenic_fraction
    return FuelCo2Split(total - biogenic, biogenic)


@dataclass(frozen=True)
class ProcessFactor:
    """A clinker process (calcination) emission factor, tCO2 per t clinker, with its source."""

    t_per_t: float
    source: str
    confidence: Confidence


def _ets_clinker(t_per_t: float, clinker: str) -> ProcessFactor:
    return ProcessFactor(
        t_per_t,
        f"China national ETS cement guideline (2025) default, {clinker}; "
        "via felix0220170/ghg-accounting ClinkerProductionEmission.jsx",
        "CONFIRMED-2nd",
    )


#: Default clinker process factors (``reference/domain.md`` §5.1, §5.2). Plant data always win.
CLINKER_PROCESS_FACTORS: dict[str, ProcessFactor] = {
    "china_ets": _ets_clinker(0.535, "Portland clinker"),
    "china_ets_white": _ets_clinker(0.550, "white Portland clinker 白色硅酸盐水泥熟料"),
    "china_ets_sulfoaluminate": _ets_clinker(0.413, "sulfo/ferro-aluminate clinker 硫（铁）铝酸盐水泥熟料"),
    "china_ets_aluminate": _ets_clinker(0.292, "aluminate clinker with process emissions 铝酸盐水泥熟料"),
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


_AEF_2023_SOURCE = "163.com (光明日报) 2023 factor article"
_GHG_REPO_SOURCE = "felix0220170/ghg-accounting src/config/emissionConstants.js"
_REGIONAL_2023 = "regional grid average (published with the 2023 national factor)"

#: Grid factors (``reference/domain.md`` §5.3). tCO2/MWh equals kgCO2/kWh. Regions are the post-2021 grid
#: areas, in which 西南 (Sichuan, Chongqing, Tibet) is separate from 华中.
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
    "national_aef_2022_excl_market_nonfossil": GridFactor(
        0.5856, "China", 2022, "MEE + NBS", "national average excluding market-traded non-fossil power",
        "CONFIRMED", "dhirubhai.net grid emission factor article",
    ),
    "national_aef_2023": GridFactor(
        0.5306, "China", 2023, "MEE + NBS", "national average, newest found", "CONFIRMED", _AEF_2023_SOURCE,
    ),
    "national_aef_2023_excl_market_nonfossil": GridFactor(
        0.6096, "China", 2023, "MEE + NBS", "national average excluding market-traded non-fossil power",
        "CONFIRMED", _AEF_2023_SOURCE,
    ),
    "national_fossil_power_2023": GridFactor(
        0.8273, "China", 2023, "MEE + NBS", "fossil-fired power only", "CONFIRMED", _AEF_2023_SOURCE,
    ),
    "north_china_2023": GridFactor(0.6361, "华北 North China", 2023, "MEE + NBS", _REGIONAL_2023, "CONFIRMED",
                                   _AEF_2023_SOURCE),
    "northeast_china_2023": GridFactor(0.5122, "东北 Northeast China", 2023, "MEE + NBS", _REGIONAL_2023,
                                       "CONFIRMED", _AEF_2023_SOURCE),
    "east_china_2023": GridFactor(0.5500, "华东 East China", 2023, "MEE + NBS", _REGIONAL_2023, "CONFIRMED",
                                  _AEF_2023_SOURCE),
    "central_china_2023": GridFactor(0.5271, "华中 Central China", 2023, "MEE + NBS", _REGIONAL_2023,
                                     "CONFIRMED", _AEF_2023_SOURCE),
    "northwest_china_2023": GridFactor(0.5543, "西北 Northwest China", 2023, "MEE + NBS", _REGIONAL_2023,
                                       "CONFIRMED", _AEF_2023_SOURCE),
    "south_china_2023": GridFactor(0.4042, "南方 China Southern Grid", 2023, "MEE + NBS", _REGIONAL_2023,
                                   "CONFIRMED", _AEF_2023_SOURCE),
    "southwest_china_2023": GridFactor(0.2472, "西南 Southwest China", 2023, "MEE + NBS", _REGIONAL_2023,
                                       "CONFIRMED", _AEF_2023_SOURCE),
    "southwest_china_2022": GridFactor(0.2268, "西南 Southwest China", 2022, "MEE + NBS",
                                       "regional grid average", "CONFIRMED-2nd", _GHG_REPO_SOURCE),
    "chongqing_2021": GridFactor(
        0.4743, "Chongqing", 2021, "MEE + NBS", "provincial average", "CONFIRMED-2nd", _GHG_REPO_SOURCE,
    ),
    "chongqing_2022": GridFactor(
        0.5227, "Chongqing", 2022, "MEE + NBS", "provincial average", "CONFIRMED-2nd", _GHG_REPO_SOURCE,
    ),
    "sichuan_2021": GridFactor(
        0.1255, "Sichuan", 2021, "MEE + NBS", "provincial average", "CONFIRMED-2nd", _GHG_REPO_SOURCE,
    ),
    "sichuan_2022": GridFactor(
        0.1404, "Sichuan", 2022, "MEE + NBS", "provincial average", "CONFIRMED-2nd",
        f"{_GHG_REPO_SOURCE}; matches the dhirubhai.net grid emission factor article",
    ),
    "yunnan_2021": GridFactor(
        0.1235, "Yunnan", 2021, "MEE + NBS", "provincial average", "CONFIRMED-2nd", _GHG_REPO_SOURCE,
    ),
    "yunnan_2022": GridFactor(
        0.1073, "Yunnan", 2022, "MEE + NBS", "provincial average", "CONFIRMED-2nd",
        f"{_GHG_REPO_SOURCE}; matches the dhirubhai.net grid emission factor article",
    ),
}  # fmt: skip
#: Default for KPIs: the newest national average factor (product/corporate footprints, domain.md §5.3).
DEFAULT_GRID_FACTOR = GRID_FACTORS["national_aef_2023"]


def electricity_co2_t(kwh: float, factor_t_per_mwh: float) -> float:
    """Indirect CO2 of purchased electricity, t: ``kWh / 1000 × tCO2/MWh`` (GB/T 32151.8-2015)."""
    return kwh / 1000.0 * factor_t_per_mwh


@dataclass(frozen=True)
class HeatFactor:
    """An emission factor for purchased heat (steam, hot water), tCO2 per GJ, with its source."""

    t_per_gj: float
    source: str
    confidence: Confidence


#: Default heat factor 0.11 tCO2/GJ (``reference/domain.md`` §5.1) [CONFIRMED-2nd]. The reference
#: implementation labels it kgCO2/GJ and divides by 1000; 0.11 t/GJ (110 kg/GJ, about a coal boiler's output
#: factor) is the physically plausible reading, so kpi uses t/GJ.
DEFAULT_HEAT_FACTOR = HeatFactor(
    0.11,
    "Chinese guideline default via felix0220170/ghg-accounting "
    "src/components/industries/cement/NetElectricityHeatEmission.jsx",
    "CONFIRMED-2nd",
)


def heat_co2_t(net_purchased_gj: float, factor_t_per_gj: float = DEFAULT_HEAT_FACTOR.t_per_gj) -> float:
    """Indirect CO2 of net purchased heat, t: ``(purchased − exported) GJ × tCO2/GJ`` (GB/T 32151.8-2015).

    Why signed: the standard counts purchased minus exported heat [CONFIRMED], so a net export gives a
    negative figure; whether a report may credit it is the caller's choice (``kpi.clinker`` floors the
    electricity equivalent at 0).
    """
    if not math.isfinite(net_purchased_gj):
        raise ValueError(f"net_purchased_gj must be finite, got {net_purchased_gj!r}")
    _require_non_negative("factor_t_per_gj", factor_t_per_gj)
    return net_purchased_gj * factor_t_per_gj
