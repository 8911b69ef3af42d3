"""Grade limits of GB 16780-2021 and the NDRC energy-efficiency benchmark/baseline, with editions.

Why: energy managers and regulators judge a kiln line by its grade under the mandatory product
norm GB 16780-2021 《水泥单位产品能源消耗限额》 (1级 best, 3级 the mandatory limit) and by the
NDRC benchmark 标杆 / baseline 基准 levels that decide upgrade-or-exit deadlines
(``reference/domain.md`` §1, §2). Every limit carries its standard, table/clause and confidence label, so
a KPI can say exactly what it was compared against. Further norms (GB 21340-2019 flat glass,
GB 21252-2023 ceramics) fit the same ``GradeTable`` shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from kpi.confidence import Confidence

Grade = Literal[1, 2, 3]
Band = Literal["green", "amber", "red"]
NdrcEdition = Literal["2021", "2023"]

GB16780_2021 = "GB 16780-2021"
#: GB 16780-2021 clause 5.3: the altitude correction applies only above this altitude [CONFIRMED-2nd].
ALTITUDE_CORRECTION_ABOVE_M = 1500.0
#: Standard atmosphere, Pa (the reference pressure of the altitude correction).
STANDARD_PRESSURE_PA = 101325.0
#: GB 16780-2021 clause 4.1/5.4: cement limits are stated at a 75 % clinker ratio [CONFIRMED-2nd].
CEMENT_REFERENCE_CLINKER_RATIO_PCT = 75.0
#: Cement limit change per percentage point of clinker ratio, grades 1/2/3, kgce/t [CONFIRMED-2nd].
CEMENT_LIMIT_PER_CLINKER_POINT = (1.10, 1.15, 1.20)


@dataclass(frozen=True)
class GradeTable:
    """Limits of one indicator by grade (lower is better): a value ≤ ``limits[g − 1]`` reaches grade g."""

    indicator: str
    name_zh: str
    unit: str
    limits: tuple[float, float, float]
    standard: str
    clause: str
    confidence: Confidence
    altitude_corrected: bool
    note: str = ""


_SOURCE_2ND = "transcribed by adgo07/ECQuota-Insight data/definitions/gb-16780-2021.json"

#: GB 16780-2021 grade tables (``reference/domain.md`` §1.1). Confidence CONFIRMED-2nd: transcribed from the
#: standard's PDF by a public repo; the 100 and 117 kgce/t clinker end points are also CONFIRMED elsewhere.
CLINKER_ENERGY = GradeTable(
    "clinker_comprehensive_energy", "熟料单位产品综合能耗", "kgce/t", (100.0, 107.0, 117.0), GB16780_2021,
    "Table 2", "CONFIRMED-2nd", True, _SOURCE_2ND + "; 100/117 also CONFIRMED (e.ccement.com Shandong list)",
)  # fmt: skip
CLINKER_ELECTRICITY = GradeTable(
    "clinker_comprehensive_electricity", "熟料单位产品综合电耗", "kWh/t", (48.0, 57.0, 61.0), GB16780_2021,
    "Table 2", "CONFIRMED-2nd", True, _SOURCE_2ND,
)  # fmt: skip
CLINKER_COAL = GradeTable(
    "clinker_comprehensive_coal", "熟料单位产品综合煤耗", "kgce/t", (94.0, 100.0, 109.0), GB16780_2021,
    "Table 2", "CONFIRMED-2nd", True, _SOURCE_2ND,
)  # fmt: skip
CEMENT_ENERGY_AT_75 = GradeTable(
    "cement_comprehensive_energy", "水泥单位产品综合能耗", "kgce/t", (80.0, 87.0, 94.0), GB16780_2021,
    "Table 1 (at 75 % clinker ratio; clauses 4.1, 5.3, 5.4)", "CONFIRMED-2nd", True, _SOURCE_2ND,
)  # fmt: skip
CEMENT_PREP_ELECTRICITY = GradeTable(
    "cement_preparation_electricity", "水泥制备工段电耗", "kWh/t", (26.0, 29.0, 34.0), GB16780_2021,
    "Table 3", "CONFIRMED-2nd", False, _SOURCE_2ND,
)  # fmt: skip

GB16780_2021_TABLES: dict[str, GradeTable] = {
    t.indicator: t
    for t in (CLINKER_ENERGY, CLINKER_ELECTRICITY, CLINKER_COAL, CEMENT_ENERGY_AT_75, CEMENT_PREP_ELECTRICITY)
}


def cement_energy_table(clinker_ratio_pct: float) -> GradeTable:
    """Cement comprehensive-energy limits corrected to the actual clinker ratio (GB 16780-2021 cl. 5.4).

    ``limit_g = base_g + (ratio_% − 75) × k_g`` with base (80, 87, 94) and k (1.10, 1.15, 1.20) kgce/t per
    percentage point [CONFIRMED-2nd].
    """
    if not 0.0 < clinker_ratio_pct <= 100.0:
        raise ValueError(f"clinker_ratio_pct must be in (0, 100], got {clinker_ratio_pct!r}")
    points = clinker_ratio_pct - CEMENT_REFERENCE_CLINKER_RATIO_PCT
    b1, b2, b3 = CEMENT_ENERGY_AT_75.limits
    k1, k2, k3 = CEMENT_LIMIT_PER_CLINKER_POINT
    return replace(
        CEMENT_ENERGY_AT_75,
        limits=(b1 + points * k1, b2 + points * k2, b3 + points * k3),
        clause=f"Table 1 corrected to {clinker_ratio_pct:g} % clinker (clause 5.4)",
    )


def altitude_factor(pressure_pa: float) -> float:
    """K_H = 1.179 − 0.211 × P_H / 101325 (GB 16780-2021 clause 5.3, formula (1)) [CONFIRMED-2nd]."""
    if not pressure_pa > 0.0:
        raise ValueError(f"pressure_pa must be > 0, got {pressure_pa!r}")
    return 1.179 - 0.211 * pressure_pa / STANDARD_PRESSURE_PA


def altitude_corrected(table: GradeTable, altitude_m: float, pressure_pa: float) -> GradeTable:
    """``table`` with its grade-3 limit × K_H when the plant is above 1500 m (GB 16780-2021 clause 5.3).

    Only the grade-3 limits of the clinker energy/electricity/coal and cement tables are corrected
    [CONFIRMED-2nd]; other tables, grades 1 and 2, and plants at or below 1500 m are returned unchanged.
    """
    if altitude_m <= ALTITUDE_CORRECTION_ABOVE_M or not table.altitude_corrected:
        return table
    k_h = altitude_factor(pressure_pa)
    g1, g2, g3 = table.limits
    return replace(table, limits=(g1, g2, g3 * k_h), clause=f"{table.clause}; grade 3 × K_H {k_h:.4f}")


def grade(value: float, table: GradeTable) -> Grade | None:
    """The best grade whose limit ``value`` does not exceed; None when worse than grade 3 (the limit)."""
    if not math.isfinite(value):
        raise ValueError(f"cannot grade a non-finite value {value!r}")
    for g, limit in zip((1, 2, 3), table.limits, strict=True):
        if value <= limit:
            return g  # type: ignore[return-value]
    return None


@dataclass(frozen=True)
class BenchmarkBaseline:
    """NDRC benchmark 标杆 and baseline 基准 of one indicator in one edition of the NDRC document."""

    indicator: str
    unit: str
    benchmark: float
    baseline: float
    edition: NdrcEdition
    document: str
    document_confidence: Confidence
    value_confidence: Confidence
    note: str = ""


#: NDRC clinker comprehensive energy benchmark/baseline (``reference/domain.md`` §2.2): 100 / 117 kgce/t.
NDRC_CLINKER_ENERGY: dict[str, BenchmarkBaseline] = {
    "2021": BenchmarkBaseline(
        "clinker_comprehensive_energy", "kgce/t", 100.0, 117.0, "2021",
        "《高耗能行业重点领域能效标杆水平和基准水平（2021年版）》 发改产业〔2021〕1609号",
        "UNCONFIRMED", "CONFIRMED", "values: e.ccement.com (Shandong list); equal GB 16780-2021 grades 1 / 3",
    ),
    "2023": BenchmarkBaseline(
        "clinker_comprehensive_energy", "kgce/t", 100.0, 117.0, "2023",
        "《工业重点领域能效标杆水平和基准水平（2023年版）》 发改产业〔2023〕723号",
        "CONFIRMED", "UNCONFIRMED", "assumed unchanged from the 2021 edition; check the 2023 text",
    ),
}  # fmt: skip


def ndrc_edition_label(edition: NdrcEdition) -> str:
    """ "2021 (发改产业〔2021〕1609号)" style label used in provenance."""
    number = {"2021": "发改产业〔2021〕1609号", "2023": "发改产业〔2023〕723号"}[edition]
    return f"{edition} ({number})"


def band(value: float, benchmark: float, baseline: float) -> Band:
    """NDRC band (``reference/domain.md`` §2.3 software rule): green ≤ benchmark < amber ≤ baseline < red."""
    if not math.isfinite(value):
        raise ValueError(f"cannot band a non-finite value {value!r}")
    if not benchmark <= baseline:
        raise ValueError(f"benchmark ({benchmark!r}) must not exceed baseline ({baseline!r})")
    if value <= benchmark:
        return "green"
    if value <= baseline:
        return "amber"
    return "red"
