"""Process CO2 from carbonate raw materials and batch carbon in glass furnaces and ceramic kilns.

Why: when a float-glass batch melts or a ceramic body is fired, its carbonates decompose (soda ash,
dolomite, limestone, …) and any carbon powder burns. Together with fuel combustion and purchased power,
this is one of the three CO2 sources in GB/T 32151.7 (flat glass) and GB/T 32151.9 (ceramics)
(``reference/domain.md`` §5.1, §5.4). Cement uses an oxide back-calculation (``kpi.co2``). Glass and
ceramics instead compute forward from the carbonates consumed:

- ``E_carbonate = Σ_i M_i × P_i × EF_i × F_i``, where M is the mass consumed (t), P the purity (mass fraction
  of pure carbonate), EF the stoichiometric tCO2 per t of carbonate, and F the calcination fraction
  (default 1.0). The part ``M × P × EF`` is the structure of the CONFIRMED-2nd source
  (felix0220170/ghg-accounting ``CarbonateEmission.jsx``: 消耗量 × 纯度 × 排放因子). The factor F comes from
  domain.md §5.4, which gives it no label, so it is UNCONFIRMED. Its default of 1.0 leaves the result
  unchanged.
- ``E_carbon = Σ_j M_j × C_j × 44/12`` is for carbon powder (碳粉, a batch reductant) with carbon mass
  fraction C (domain.md §5.4, no label there, so UNCONFIRMED).

The EF table is data, and callers may pass their own table. Four of the sourced factors are slightly below
the stoichiometric ratio computed from IUPAC molar masses (see each factor's ``note``). The sourced values
are kept because they are what the Chinese calculators use. Check them against the official table before a
regulatory submission.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from kpi.co2 import CO2_PER_C
from kpi.confidence import Confidence


@dataclass(frozen=True)
class CarbonateFactor:
    """Stoichiometric emission factor of one carbonate, tCO2 per t of pure carbonate, with its source."""

    formula: str
    name_zh: str
    t_co2_per_t: float
    confidence: Confidence
    source: str
    note: str = ""


_SOURCE = "felix0220170/ghg-accounting src/components/CarbonateEmission.jsx (domain.md §5.4)"


def _below_stoichiometric(molar: str, ratio: float) -> str:
    return (
        f"stoichiometric {molar} = {ratio:.4f}; the sourced factor is slightly lower. "
        "Kept as the guideline default; check against the official GB/T 32151 table"
    )


#: Stoichiometric carbonate factors (``reference/domain.md`` §5.4) [CONFIRMED-2nd]. Keys are ASCII formulas.
CARBONATE_FACTORS: dict[str, CarbonateFactor] = {
    "CaCO3": CarbonateFactor("CaCO₃", "碳酸钙 (石灰石, 方解石)", 0.4397, "CONFIRMED-2nd", _SOURCE),
    "MgCO3": CarbonateFactor("MgCO₃", "碳酸镁 (菱镁矿)", 0.5220, "CONFIRMED-2nd", _SOURCE),
    "Na2CO3": CarbonateFactor(
        "Na₂CO₃", "碳酸钠 (纯碱)", 0.4149, "CONFIRMED-2nd", _SOURCE,
        _below_stoichiometric("44.009/105.988", 44.009 / 105.988),
    ),
    "NaHCO3": CarbonateFactor(
        "NaHCO₃", "碳酸氢钠 (小苏打)", 0.5237, "CONFIRMED-2nd", _SOURCE,
        _below_stoichiometric("44.009/84.006", 44.009 / 84.006),
    ),
    "CaMg(CO3)2": CarbonateFactor("CaMg(CO₃)₂", "碳酸镁钙 (白云石)", 0.4773, "CONFIRMED-2nd", _SOURCE),
    "BaCO3": CarbonateFactor("BaCO₃", "碳酸钡", 0.2230, "CONFIRMED-2nd", _SOURCE),
    "K2CO3": CarbonateFactor("K₂CO₃", "碳酸钾 (钾碱)", 0.3184, "CONFIRMED-2nd", _SOURCE),
    "Li2CO3": CarbonateFactor(
        "Li₂CO₃", "碳酸锂", 0.5955, "CONFIRMED-2nd", _SOURCE,
        _below_stoichiometric("44.009/73.888", 44.009 / 73.888),
    ),
    "SrCO3": CarbonateFactor(
        "SrCO₃", "碳酸锶", 0.2980, "CONFIRMED-2nd", _SOURCE,
        _below_stoichiometric("44.009/147.628", 44.009 / 147.628),
    ),
    "FeCO3": CarbonateFactor("FeCO₃", "碳酸亚铁 (菱铁矿)", 0.3799, "CONFIRMED-2nd", _SOURCE),
    "MnCO3": CarbonateFactor("MnCO₃", "碳酸锰 (菱锰矿)", 0.3829, "CONFIRMED-2nd", _SOURCE),
}  # fmt: skip


def require_in_range(name: str, value: float, minimum: float = 0.0, maximum: float = math.inf) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is finite and in ``[minimum, maximum]``.

    This is shared by the glass and ceramics inputs. Fractions are checked against [0, 1], so a percentage
    passed by mistake (99.2 instead of 0.992) fails loudly instead of giving 100 times the emission.
    """
    if not (math.isfinite(value) and minimum <= value <= maximum):
        raise ValueError(f"{name} must be finite and in [{minimum}, {maximum}], got {value!r}")


@dataclass(frozen=True)
class CarbonateUse:
    """One carbonate raw material consumed in the period.

    ``carbonate`` is a key of the factor table (e.g. "Na2CO3"). ``purity`` and ``calcination`` are mass
    fractions in [0, 1], not percentages.
    """

    carbonate: str
    mass_t: float
    purity: float = 1.0
    calcination: float = 1.0

    def __post_init__(self) -> None:
        require_in_range(f"carbonate {self.carbonate!r} mass_t", self.mass_t)
        require_in_range(f"carbonate {self.carbonate!r} purity", self.purity, 0.0, 1.0)
        require_in_range(f"carbonate {self.carbonate!r} calcination", self.calcination, 0.0, 1.0)


@dataclass(frozen=True)
class CarbonUse:
    """Carbon powder (碳粉) or other non-fuel carbon in the batch: mass (t) and carbon mass fraction (0–1)."""

    mass_t: float
    carbon_fraction: float
    name: str = "carbon powder"

    def __post_init__(self) -> None:
        require_in_range(f"carbon {self.name!r} mass_t", self.mass_t)
        require_in_range(f"carbon {self.name!r} carbon_fraction", self.carbon_fraction, 0.0, 1.0)


@dataclass(frozen=True)
class CarbonateEmission:
    """CO2 of one carbonate line: ``mass_t × purity × ef_t_per_t × calcination``."""

    carbonate: str
    mass_t: float
    purity: float
    calcination: float
    ef_t_per_t: float
    co2_t: float


@dataclass(frozen=True)
class CarbonEmission:
    """CO2 of one carbon line: ``mass_t × carbon_fraction × 44/12``."""

    name: str
    mass_t: float
    carbon_fraction: float
    co2_t: float


@dataclass(frozen=True)
class CarbonateCo2:
    """Process CO2 of one period: the total, its two parts and the breakdown for each material."""

    total_t: float
    carbonate_t: float
    carbon_t: float
    carbonates: tuple[CarbonateEmission, ...]
    carbon: tuple[CarbonEmission, ...]
    provenance: Mapping[str, object] = field(default_factory=dict)


def carbonate_process_co2(
    carbonates: Sequence[CarbonateUse] = (),
    carbon: Sequence[CarbonUse] = (),
    factors: Mapping[str, CarbonateFactor] = CARBONATE_FACTORS,
) -> CarbonateCo2:
    """``Σ M × P × EF × F + Σ M_C × C × 44/12`` with the breakdown and provenance (domain.md §5.4).

    ``factors`` replaces the default table, for example to add a carbonate that is not listed or to use a
    factor from the official table. An unknown carbonate key raises ValueError and lists the known keys.
    """
    lines: list[CarbonateEmission] = []
    for use in carbonates:
        try:
            factor = factors[use.carbonate]
        except KeyError:
            raise ValueError(f"unknown carbonate {use.carbonate!r}; known: {', '.join(factors)}") from None
        require_in_range(f"emission factor of {use.carbonate!r}", factor.t_co2_per_t, 0.0, 1.0)
        co2 = use.mass_t * use.purity * factor.t_co2_per_t * use.calcination
        lines.append(
            CarbonateEmission(use.carbonate, use.mass_t, use.purity, use.calcination, factor.t_co2_per_t, co2)
        )
    carbon_lines = tuple(
        CarbonEmission(c.name, c.mass_t, c.carbon_fraction, c.mass_t * c.carbon_fraction * CO2_PER_C)
        for c in carbon
    )
    carbonate_t = math.fsum(line.co2_t for line in lines)
    carbon_t = math.fsum(line.co2_t for line in carbon_lines)
    used = dict.fromkeys(line.carbonate for line in lines)
    provenance: dict[str, object] = {
        "method": "Σ M × purity × EF × calcination + Σ M_C × C × 44/12 (GB/T 32151.7/.9 structure)",
        "confidence": {
            "mass_purity_ef": "CONFIRMED-2nd",
            "calcination_fraction": "UNCONFIRMED",
            "carbon_powder": "UNCONFIRMED",
        },
        "factors": {key: asdict(factors[key]) for key in used},
        "carbonates": [asdict(line) for line in lines],
        "carbon": [asdict(line) for line in carbon_lines],
    }
    return CarbonateCo2(
        total_t=carbonate_t + carbon_t,
        carbonate_t=carbonate_t,
        carbon_t=carbon_t,
        carbonates=tuple(lines),
        carbon=carbon_lines,
        provenance=provenance,
    )
