"""Plant targets (e.g. clinker energy −3 % vs 2020 by 2025) and the combined grade / band / target flags.

Why: energy managers judge a line against three things at once (``DESIGN.md``, "Flags"): its GB 16780-2021
grade, its NDRC benchmark/baseline band, and the reduction targets of the national and provincial plans
(``reference/domain.md`` §0). Policy targets are relative to the plant's own base-year value ("−3 % vs 2020"),
so a ``TargetRule`` (the policy, with its document and confidence label) becomes a ``Target`` only once the
plant's base value is known; a plant may also set an absolute target. All targets here are for
lower-is-better intensities.

Status rule: "met" when the value is at or below the final target value (inclusive, as ``kpi.standards``
grades are; the plans' "降低3%以上" / "more than 3 %" is read as ≥ 3 %); otherwise "on_track" when it is at or
below the straight-line trajectory from the base year to the target year at the given year, else
"off_track". The linear trajectory is our convention [UNCONFIRMED: the plans give end points only].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypedDict

from kpi.confidence import Confidence
from kpi.standards import Band, BenchmarkBaseline, Grade, GradeTable, band, grade

TargetStatus = Literal["met", "on_track", "off_track"]


@dataclass(frozen=True)
class TargetRule:
    """Policy: ``indicator`` down ``reduction_pct`` % from its ``base_year`` value by ``target_year``.

    ``scope`` says whose indicator it is (a plant's line, a province's industry); ``sources`` are where the
    figure was read (``reference/domain.md`` §0).
    """

    key: str
    label: str
    indicator: str
    scope: str
    reduction_pct: float
    base_year: int
    target_year: int
    document: str
    sources: tuple[str, ...]
    confidence: Confidence
    note: str = ""


_NATIONAL_BM_PLAN = "《建材行业碳达峰实施方案》 (MIIT, NDRC and two other ministries, November 2022)"
_NATIONAL_BM_SOURCES = (
    "https://tanzhonghe.xny365.com/tanpaifang/40262.html",
    "https://ldl-gyl.com/infos/90571.html",
)
_CHONGQING_PLAN = "《重庆市工业领域碳达峰实施方案》 (重庆市经济信息委, 发展改革委, 生态环境局, January 2023)"
_CHONGQING_SOURCES = (
    "http://c4jnm3w.cn/jinrong/2023-01/31/content_111596.html",
    "http://cadmm.com/magazine/show.php?itemid=6629",
)

#: Named targets of ``reference/domain.md`` §0, by key.
TARGET_RULES: dict[str, TargetRule] = {
    r.key: r
    for r in (
        TargetRule(
            "national_clinker_2025",
            "Clinker comprehensive energy −3 % vs 2020 by 2025 (national building-materials plan)",
            "clinker_comprehensive_energy", "clinker line", 3.0, 2020, 2025,
            _NATIONAL_BM_PLAN, _NATIONAL_BM_SOURCES, "CONFIRMED",
            "水泥熟料单位产品综合能耗水平降低3%以上 during the 14th Five-Year Plan (2021–2025)",
        ),
        TargetRule(
            "cement_plan_2024_clinker",
            "Clinker comprehensive energy −3.7 % vs 2020 by end of 2025 (2024 cement action plan)",
            "clinker_comprehensive_energy", "clinker line", 3.7, 2020, 2025,
            "《水泥行业节能降碳专项行动计划》 (NDRC and four other departments, 2024)",
            ("http://www.1suqian.com/index/news/news_detail/id/539/",), "CONFIRMED",
            "same plan: 30 % of capacity at benchmark, none below baseline by end of 2025",
        ),
        TargetRule(
            "chongqing_industry_2025",
            "Chongqing industrial energy per value added −14.5 % vs 2020 by 2025",
            "industrial_value_added_energy_intensity", "Chongqing above-scale industry", 14.5, 2020, 2025,
            _CHONGQING_PLAN, _CHONGQING_SOURCES, "CONFIRMED",
            "规模以上工业增加值能耗: provincial indicator (energy per unit of value added), context only",
        ),
        TargetRule(
            "chongqing_clinker_2025",
            "Clinker comprehensive energy −3 % vs 2020 by 2025 (Chongqing, assumed from the national plan)",
            "clinker_comprehensive_energy", "clinker line", 3.0, 2020, 2025,
            _CHONGQING_PLAN, _CHONGQING_SOURCES, "UNCONFIRMED",
            "not in the Chongqing excerpts read; matches the national plan, which Chongqing likely copied",
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Target:
    """A target resolved for one plant: reach ``target_value`` (in ``unit``) by ``target_year``.

    ``base_year``/``base_value`` are set for relative targets (and optionally for absolute ones) and give the
    trajectory; ``reduction_pct`` is None for absolute targets.
    """

    indicator: str
    unit: str
    target_value: float
    target_year: int
    base_year: int | None
    base_value: float | None
    reduction_pct: float | None
    label: str
    document: str
    confidence: Confidence


def target_value(base_value: float, reduction_pct: float) -> float:
    """``base_value × (1 − reduction_pct / 100)``: e.g. 110 kgce/t in 2020, −3 % → 106.7 kgce/t."""
    if not (math.isfinite(base_value) and base_value >= 0.0):
        raise ValueError(f"base_value must be finite and ≥ 0, got {base_value!r}")
    if not (math.isfinite(reduction_pct) and reduction_pct <= 100.0):
        raise ValueError(f"reduction_pct must be finite and ≤ 100, got {reduction_pct!r}")
    return base_value * (1.0 - reduction_pct / 100.0)


def _interpolate(
    base_year: float, base_value: float, target_year: float, end_value: float, year: float
) -> float:
    if not target_year > base_year:
        raise ValueError(f"target_year ({target_year!r}) must be after base_year ({base_year!r})")
    if not math.isfinite(year):
        raise ValueError(f"year must be finite, got {year!r}")
    share = min(1.0, max(0.0, (year - base_year) / (target_year - base_year)))
    return base_value + (end_value - base_value) * share


def trajectory(
    base_year: float, base_value: float, target_year: float, reduction_pct: float, year: float
) -> float:
    """Value on the straight line from (base_year, base_value) to (target_year, target value) at ``year``.

    Held at the base value before ``base_year`` and at the target value after ``target_year``; ``year`` may
    be fractional (2024.5 = mid-2024) so months can be placed on the line.
    """
    end = target_value(base_value, reduction_pct)
    return _interpolate(base_year, base_value, target_year, end, year)


def relative_target(rule: TargetRule, base_value: float, unit: str) -> Target:
    """``rule`` applied to the plant's own ``base_value`` (its ``rule.base_year`` figure, in ``unit``)."""
    return Target(
        indicator=rule.indicator,
        unit=unit,
        target_value=target_value(base_value, rule.reduction_pct),
        target_year=rule.target_year,
        base_year=rule.base_year,
        base_value=base_value,
        reduction_pct=rule.reduction_pct,
        label=rule.label,
        document=rule.document,
        confidence=rule.confidence,
    )


def absolute_target(
    indicator: str,
    unit: str,
    value: float,
    target_year: int,
    *,
    label: str,
    document: str,
    confidence: Confidence,
    base_year: int | None = None,
    base_value: float | None = None,
) -> Target:
    """A plant's own absolute target; with ``base_year`` and ``base_value`` it also gets a trajectory."""
    if not math.isfinite(value):
        raise ValueError(f"target value must be finite, got {value!r}")
    if (base_year is None) != (base_value is None):
        raise ValueError("give both base_year and base_value, or neither")
    if base_year is not None and not base_year < target_year:
        raise ValueError(f"target_year ({target_year!r}) must be after base_year ({base_year!r})")
    return Target(
        indicator, unit, value, target_year, base_year, base_value, None, label, document, confidence
    )


@dataclass(frozen=True)
class TargetCheck:
    """A KPI value against a target at ``year``.

    ``margin = target_value − value`` (≥ 0: met, with that headroom; < 0: still to reduce);
    ``margin_to_trajectory = trajectory_value − value`` (≥ 0: on or ahead of the line), None without a base.
    """

    status: TargetStatus
    value: float
    year: float
    target_value: float
    trajectory_value: float | None
    margin: float
    margin_to_trajectory: float | None
    target: Target


def target_status(value: float, target: Target, year: float) -> TargetCheck:
    """Status of ``value`` (lower is better) vs ``target`` at ``year``: "met", "on_track" or "off_track"."""
    if not math.isfinite(value):
        raise ValueError(f"cannot check a non-finite value {value!r} against a target")
    on_line: float | None = None
    if target.base_year is not None and target.base_value is not None:
        on_line = _interpolate(
            target.base_year, target.base_value, target.target_year, target.target_value, year
        )
    if value <= target.target_value:
        status: TargetStatus = "met"
    elif on_line is not None and value <= on_line:
        status = "on_track"
    else:
        status = "off_track"
    return TargetCheck(
        status=status,
        value=value,
        year=year,
        target_value=target.target_value,
        trajectory_value=on_line,
        margin=target.target_value - value,
        margin_to_trajectory=None if on_line is None else on_line - value,
        target=target,
    )


class Flags(TypedDict):
    """Grade, NDRC band and target status of one KPI value, flat for MQTT/InfluxDB; None where not judged."""

    indicator: str
    unit: str
    value: float
    grade: Grade | None
    grade_standard: str
    grade_confidence: Confidence
    band: Band | None
    ndrc_edition: str | None
    band_confidence: Confidence | None
    target_status: TargetStatus | None
    target_value: float | None
    target_trajectory: float | None
    target_margin: float | None
    target_document: str | None
    target_confidence: Confidence | None


def combined_flags(
    value: float,
    grade_table: GradeTable,
    benchmark_baseline: BenchmarkBaseline | None = None,
    target: Target | None = None,
    year: float | None = None,
) -> Flags:
    """Grade (``kpi.standards.grade``), band (``kpi.standards.band``, ``reference/domain.md`` §2.3) and target
    status of one value. ``grade`` None means worse than grade 3. ``year`` is required with a target.

    The three must describe the same indicator in the same unit; a mismatch is a wiring error and raises.
    """
    for other in (benchmark_baseline, target):
        if other is not None and (other.indicator, other.unit) != (grade_table.indicator, grade_table.unit):
            raise ValueError(
                f"{type(other).__name__} is for {other.indicator} [{other.unit}], "
                f"the grade table for {grade_table.indicator} [{grade_table.unit}]"
            )
    if target is not None and year is None:
        raise ValueError("year is required to check a target")
    check = target_status(value, target, year) if target is not None and year is not None else None
    bb = benchmark_baseline
    return Flags(
        indicator=grade_table.indicator,
        unit=grade_table.unit,
        value=value,
        grade=grade(value, grade_table),
        grade_standard=f"{grade_table.standard} {grade_table.clause}",
        grade_confidence=grade_table.confidence,
        band=None if bb is None else band(value, bb.benchmark, bb.baseline),
        ndrc_edition=None if bb is None else bb.edition,
        band_confidence=None if bb is None else bb.value_confidence,
        target_status=None if check is None else check.status,
        target_value=None if check is None else check.target_value,
        target_trajectory=None if check is None else check.trajectory_value,
        target_margin=None if check is None else check.margin,
        target_document=None if target is None else target.document,
        target_confidence=None if target is None else target.confidence,
    )
