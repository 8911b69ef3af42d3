"""Clinker process CO2 in full: calcination, kiln dust, raw-meal organic carbon and substitute deductions.

Why: ``kpi.co2`` gives the clinker calcination factor; a regulated or CSI-style report also needs what leaves
the kiln as dust, the organic carbon burnt out of the raw meal, and (China ETS 2025) the deduction for
non-carbonate substitute raw materials. One period (a month for the ETS) at a time:

``E_process = max(0, Q_cli × EF_cli − Σ_j M_j × D_j) + Q_CKD × EF_CKD + Q_bypass × EF_cli
+ Q_rawmeal × TOC × 44/12``

- ``EF_cli``: a default factor (``kpi.co2.CLINKER_PROCESS_FACTORS``) or the oxide method of GB/T 32151.8-2015
  [CONFIRMED].
- ``Σ M_j × D_j``: substitute raw materials × deduction factors of the China ETS 2025 cement guideline
  [CONFIRMED-2nd] (``reference/domain.md`` §5.1). The reference implementation floors each month's
  ``clinker × EF − deductions`` at 0; kpi does the same, so its figure matches, and raises the flag
  ``deductions_exceed_calcination`` because a negative can only come from wrong data. Whether the guideline
  itself floors is UNCONFIRMED.
- ``EF_CKD = [EF_cli/(1+EF_cli) × d] / [1 − EF_cli/(1+EF_cli) × d]`` with ``d`` the CKD calcination rate;
  bypass dust is fully calcined, ``EF = EF_cli`` (WBCSD CSI Cement CO2 and Energy Protocol v3) [CONFIRMED].
- ``TOC`` term: CSI v3 and GB/T 32151.8 structure; the defaults TOC 0.2 % and raw meal/clinker 1.55 are
  UNCONFIRMED, so the term is only counted when the caller passes a TOC (lab value or the labelled default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

from kpi.co2 import (
    CLINKER_PROCESS_FACTORS,
    CO2_PER_C,
    ProcessFactor,
    clinker_process_co2_t,
    oxide_process_ef_t_per_t,
)
from kpi.confidence import Confidence

#: Kiln process types of the CSI protocol; China's precalciner kilns (新型干法) are dry-process kilns.
KilnType = Literal["dry", "semi_dry", "semi_wet", "wet", "shaft"]

_CSI_SOURCE = "WBCSD CSI Cement CO2 and Energy Protocol v3 (cement-co2-protocol.org, calcination B1)"
_ETS_SOURCE = (
    "China national ETS cement guideline (2025), non-carbonate substitute raw material deduction factors; "
    "via felix0220170/ghg-accounting ClinkerProductionEmission.jsx"
)


def _require(name: str, value: float, minimum: float = 0.0, maximum: float = math.inf) -> None:
    if not (math.isfinite(value) and minimum <= value <= maximum):
        raise ValueError(f"{name} must be finite and in [{minimum}, {maximum}], got {value!r}")


@dataclass(frozen=True)
class LabelledDefault:
    """A default that stands in for plant data until the lab has a value, with its source and label."""

    value: float
    unit: str
    source: str
    confidence: Confidence


#: Total organic carbon of the raw meal when the lab has none: CSI v3 default as cited [UNCONFIRMED].
DEFAULT_RAWMEAL_TOC = LabelledDefault(0.002, "mass fraction of dry raw meal", _CSI_SOURCE, "UNCONFIRMED")
#: Raw meal per tonne of clinker when raw meal is not weighed: CSI v3 default as cited [UNCONFIRMED].
DEFAULT_RAWMEAL_PER_CLINKER = LabelledDefault(1.55, "t raw meal / t clinker", _CSI_SOURCE, "UNCONFIRMED")


@dataclass(frozen=True)
class SubstituteMaterial:
    """A non-carbonate substitute raw material and its deduction factor, tCO2 per t of material used.

    Why: CaO/MgO brought in by slags, carbide sludge, gypsum … released no CO2, but the default clinker factor
    assumes it all came from carbonates; the ETS subtracts ``mass × factor``. ``name_zh`` is the guideline's
    name and the authority; the English key is a convenience translation.
    """

    name_zh: str
    deduction_t_per_t: float
    confidence: Confidence = "CONFIRMED-2nd"
    source: str = _ETS_SOURCE


#: Deduction factors of the China ETS 2025 cement guideline (``reference/domain.md`` §5.1) [CONFIRMED-2nd].
#: 飞灰 is listed apart from 粉煤灰 (coal fly ash); reading it as incineration fly ash is UNCONFIRMED.
SUBSTITUTE_DEDUCTIONS: dict[str, SubstituteMaterial] = {
    "desulfurisation_powder": SubstituteMaterial("脱硫粉剂（氢氧化钙）", 0.600),
    "slaked_lime": SubstituteMaterial("熟石灰", 0.600),
    "carbide_slag": SubstituteMaterial("电石渣", 0.480),
    "magnesium_slag": SubstituteMaterial("镁渣", 0.480),
    "paper_lime_mud": SubstituteMaterial("造纸白泥", 0.375),
    "calcium_fluoride_sludge": SubstituteMaterial("氟化钙污泥", 0.375),
    "phosphorus_slag": SubstituteMaterial("磷渣", 0.375),
    "vanadium_titanium_slag": SubstituteMaterial("钒钛渣", 0.305),
    "nitrogen_slag": SubstituteMaterial("氮渣", 0.305),
    "incineration_fly_ash": SubstituteMaterial("飞灰", 0.305),
    "ferroalloy_slag": SubstituteMaterial("铁合金炉渣", 0.305),
    "fgd_gypsum": SubstituteMaterial("脱硫石膏", 0.245),
    "phosphogypsum": SubstituteMaterial("磷石膏", 0.245),
    "titanogypsum": SubstituteMaterial("钛石膏", 0.245),
    "fluorogypsum": SubstituteMaterial("氟石膏", 0.245),
    "borogypsum": SubstituteMaterial("硼石膏", 0.245),
    "mould_gypsum": SubstituteMaterial("模型石膏", 0.245),
    "citric_acid_residue": SubstituteMaterial("柠檬酸渣", 0.245),
    "steel_slag": SubstituteMaterial("钢渣", 0.215),
    "nickel_slag": SubstituteMaterial("镍渣", 0.215),
    "manganese_slag": SubstituteMaterial("锰渣", 0.135),
    "zinc_slag": SubstituteMaterial("锌渣", 0.135),
    "tin_slag": SubstituteMaterial("锡渣", 0.135),
    "municipal_sludge": SubstituteMaterial("市政污泥", 0.055),
    "aluminium_slag": SubstituteMaterial("铝渣", 0.055),
    "pyrite_cinder": SubstituteMaterial("硫酸渣", 0.055),
    "copper_slag": SubstituteMaterial("铜渣", 0.055),
    "lead_zinc_slag": SubstituteMaterial("铅锌渣", 0.055),
    "coal_fly_ash": SubstituteMaterial("粉煤灰", 0.055),
    "red_mud": SubstituteMaterial("赤泥", 0.055),
}


@dataclass(frozen=True)
class SubstituteUse:
    """Mass (t) of one substitute raw material fed in the period; ``material`` is a key of the table."""

    material: str
    mass_t: float

    def __post_init__(self) -> None:
        if self.material not in SUBSTITUTE_DEDUCTIONS:
            known = ", ".join(SUBSTITUTE_DEDUCTIONS)
            raise ValueError(f"unknown substitute material {self.material!r}; use one of {known}")
        _require(f"substitute {self.material!r} mass_t", self.mass_t)


@dataclass(frozen=True)
class ClinkerOxides:
    """Clinker CaO/MgO mass fractions (0–1) for the oxide method, from the plant's lab.

    Same fields as ``kpi.clinker.ClinkerOxides``, validated on construction.
    """

    cao: float
    mgo: float
    cao_noncarbonate: float = 0.0
    mgo_noncarbonate: float = 0.0
    source: str = "plant lab"

    def __post_init__(self) -> None:
        oxide_process_ef_t_per_t(self.cao, self.mgo, self.cao_noncarbonate, self.mgo_noncarbonate)


def ckd_calcination_rate(f_co2_ckd: float, f_co2_rawmeal: float) -> float:
    """CKD calcination rate d from carbonate CO2 mass fractions (loss on ignition), CSI v3 [CONFIRMED]:

    ``d = 1 − f_CKD × (1 − f_RM) / ((1 − f_CKD) × f_RM)``. Equal fractions mean uncalcined dust (d = 0); no
    CO2 left in the dust means fully calcined (d = 1). A CKD richer in CO2 than the raw meal is a lab error.
    """
    if not 0.0 < f_co2_rawmeal < 1.0:
        raise ValueError(f"f_co2_rawmeal must be in (0, 1), got {f_co2_rawmeal!r}")
    _require("f_co2_ckd", f_co2_ckd, 0.0, f_co2_rawmeal)
    return 1.0 - f_co2_ckd * (1.0 - f_co2_rawmeal) / ((1.0 - f_co2_ckd) * f_co2_rawmeal)


def default_ckd_calcination_rate(kiln_type: KilnType) -> float:
    """CSI v3 default d without lab data [CONFIRMED]: 0 for dry-process kilns, 1 for every other type."""
    if kiln_type not in get_args(KilnType):
        raise ValueError(f"unknown kiln_type {kiln_type!r}; expected {get_args(KilnType)}")
    return 0.0 if kiln_type == "dry" else 1.0


def ckd_emission_factor(ef_clinker_t_per_t: float, d: float) -> float:
    """CO2 per t of cement kiln dust leaving the kiln system, CSI v3 [CONFIRMED]:

    ``EF_CKD = x × d / (1 − x × d)`` with ``x = EF_cli / (1 + EF_cli)``, the CO2 share of raw meal that
    calcines to one tonne of clinker. It rises from 0 (d = 0) to EF_cli (d = 1).
    """
    _require("ef_clinker_t_per_t", ef_clinker_t_per_t)
    _require("d", d, 0.0, 1.0)
    x_d = ef_clinker_t_per_t / (1.0 + ef_clinker_t_per_t) * d
    return x_d / (1.0 - x_d)


@dataclass(frozen=True)
class ClinkerProcessInputs:
    """One period's clinker-process data; every default is labelled and recorded in the provenance.

    - ``factor``: default clinker factor, used unless ``oxides`` (lab CaO/MgO) are given.
    - ``ckd_t`` / ``bypass_dust_t``: dust leaving the kiln system (not returned to the kiln), t.
    - ``ckd_calcination``: d in [0, 1]; None uses the CSI default for ``kiln_type``.
    - ``toc``: raw-meal organic carbon, mass fraction. None leaves the term out (the ETS 2025 formula has
      none); a float is a lab value; ``DEFAULT_RAWMEAL_TOC`` is the labelled UNCONFIRMED default.
    - ``rawmeal_t``: weighed kiln feed, t; None uses ``clinker_t × rawmeal_per_clinker``.
    - ``substitutes``: ETS deductions. With ``oxides`` they are only allowed when the non-carbonate CaO/MgO
      are 0, since the deduction and the ``_nc`` parts remove the same CO2.
    """

    clinker_t: float
    factor: ProcessFactor = CLINKER_PROCESS_FACTORS["china_ets"]
    oxides: ClinkerOxides | None = None
    ckd_t: float = 0.0
    bypass_dust_t: float = 0.0
    ckd_calcination: float | None = None
    kiln_type: KilnType = "dry"
    toc: float | LabelledDefault | None = None
    rawmeal_t: float | None = None
    rawmeal_per_clinker: float | LabelledDefault = DEFAULT_RAWMEAL_PER_CLINKER
    substitutes: tuple[SubstituteUse, ...] = ()

    def __post_init__(self) -> None:
        for name in ("clinker_t", "ckd_t", "bypass_dust_t"):
            _require(name, getattr(self, name))
        _require("factor.t_per_t", self.factor.t_per_t)
        if self.ckd_calcination is not None:
            _require("ckd_calcination", self.ckd_calcination, 0.0, 1.0)
        default_ckd_calcination_rate(self.kiln_type)
        if self.toc is not None:
            _require("toc", _value(self.toc), 0.0, 1.0)
        if self.rawmeal_t is not None:
            _require("rawmeal_t", self.rawmeal_t)
        _require("rawmeal_per_clinker", _value(self.rawmeal_per_clinker))
        ox = self.oxides
        if ox is not None and self.substitutes and (ox.cao_noncarbonate > 0.0 or ox.mgo_noncarbonate > 0.0):
            raise ValueError(
                "substitute deductions and non-carbonate CaO/MgO both remove the substitutes' CO2; "
                "give one or the other"
            )


@dataclass(frozen=True)
class ProcessCo2:
    """Clinker process CO2 of one period, t, by term.

    ``total_t = max(0, calcination_t − deductions_t) + dust_t + toc_t``; ``flags`` names anything a reviewer
    should see (``deductions_exceed_calcination``).
    """

    ef_clinker_t_per_t: float
    ef_ckd_t_per_t: float
    calcination_t: float
    deductions_t: float
    dust_t: float
    toc_t: float
    total_t: float
    flags: tuple[str, ...]
    provenance: Mapping[str, object] = field(default_factory=dict)


def _value(v: float | LabelledDefault) -> float:
    return v.value if isinstance(v, LabelledDefault) else v


def _labelled(v: float | LabelledDefault, unit: str) -> dict[str, object]:
    return asdict(v) if isinstance(v, LabelledDefault) else {"value": v, "unit": unit, "source": "plant data"}


def clinker_process_co2(inputs: ClinkerProcessInputs) -> ProcessCo2:
    """Clinker process CO2 of one period, by term, with every factor's provenance (formula: module doc)."""
    q_cli = inputs.clinker_t
    if inputs.oxides is None:
        ef_cli = inputs.factor.t_per_t
        method = "default_factor"
        clinker_factor: dict[str, object] = asdict(inputs.factor)
    else:
        ox = inputs.oxides
        ef_cli = oxide_process_ef_t_per_t(ox.cao, ox.mgo, ox.cao_noncarbonate, ox.mgo_noncarbonate)
        method = "oxide (GB/T 32151.8-2015)"
        clinker_factor = {"t_per_t": ef_cli, **asdict(ox), "confidence": "CONFIRMED"}
    calcination = clinker_process_co2_t(q_cli, ef_cli)

    items: list[dict[str, object]] = []
    deduction_terms: list[float] = []
    for use in inputs.substitutes:
        row = SUBSTITUTE_DEDUCTIONS[use.material]
        co2 = use.mass_t * row.deduction_t_per_t
        items.append({"material": use.material, "name_zh": row.name_zh, "mass_t": use.mass_t,
                      "deduction_t_per_t": row.deduction_t_per_t, "co2_t": co2})  # fmt: skip
        deduction_terms.append(co2)
    deductions = math.fsum(deduction_terms)
    flags = ("deductions_exceed_calcination",) if deductions > calcination else ()

    if inputs.ckd_calcination is None:
        d = default_ckd_calcination_rate(inputs.kiln_type)
        d_source = f"CSI v3 default for a {inputs.kiln_type} kiln without lab data"
    else:
        d, d_source = inputs.ckd_calcination, "plant data"
    ef_ckd = ckd_emission_factor(ef_cli, d)
    dust = inputs.ckd_t * ef_ckd + inputs.bypass_dust_t * ef_cli

    toc_provenance: dict[str, object] = {
        "counted": False,
        "note": "no TOC given (the ETS 2025 formula has none)",
    }
    toc_co2 = 0.0
    if inputs.toc is not None:
        if inputs.rawmeal_t is None:
            rawmeal = q_cli * _value(inputs.rawmeal_per_clinker)
            rawmeal_basis = {
                "clinker_t": q_cli,
                "rawmeal_per_clinker": _labelled(inputs.rawmeal_per_clinker, "t raw meal / t clinker"),
            }
        else:
            rawmeal, rawmeal_basis = inputs.rawmeal_t, {"source": "plant data (weighed kiln feed)"}
        toc_co2 = rawmeal * _value(inputs.toc) * CO2_PER_C
        toc_provenance = {
            "counted": True,
            "rawmeal_t": rawmeal,
            "rawmeal_basis": rawmeal_basis,
            "toc": _labelled(inputs.toc, "mass fraction of dry raw meal"),
            "formula": "Q_rawmeal × TOC × 44/12",
            "source": _CSI_SOURCE,
            "confidence": "CONFIRMED",
        }

    total = max(0.0, calcination - deductions) + dust + toc_co2
    provenance: dict[str, object] = {
        "method": method,
        "formula": "max(0, Q_cli × EF_cli − Σ M_j × D_j) + Q_CKD × EF_CKD + Q_bypass × EF_cli "
        "+ Q_rawmeal × TOC × 44/12",
        "clinker_factor": clinker_factor,
        "substitutes": {
            "items": items,
            "source": _ETS_SOURCE,
            "confidence": "CONFIRMED-2nd",
            "floor_at_zero": {
                "rule": "max(0, Q_cli × EF_cli − Σ M_j × D_j) per period, as in the reference implementation",
                "confidence": "UNCONFIRMED",
            },
        },
        "dust": {
            "ckd_t": inputs.ckd_t,
            "bypass_dust_t": inputs.bypass_dust_t,
            "kiln_type": inputs.kiln_type,
            "ckd_calcination": d,
            "ckd_calcination_source": d_source,
            "ef_ckd_t_per_t": ef_ckd,
            "ef_bypass_t_per_t": ef_cli,
            "source": _CSI_SOURCE,
            "confidence": "CONFIRMED",
        },
        "toc": toc_provenance,
        "flags": list(flags),
    }
    return ProcessCo2(
        ef_clinker_t_per_t=ef_cli,
        ef_ckd_t_per_t=ef_ckd,
        calcination_t=calcination,
        deductions_t=deductions,
        dust_t=dust,
        toc_t=toc_co2,
        total_t=total,
        flags=flags,
        provenance=provenance,
    )
