"""Energy baseline of a line (energy = a + b × output) and drift detection on its residuals.

Why: a grade or a band says where a line stands against a national limit; it does not say that a line which
used to run at 104 kgce/t now runs at 108 at the same output. ISO 50006 (EnPIs and energy baselines, EnB)
models a significant energy use against its relevant variable over a baseline period and compares later
periods with what the model expects. For a kiln line the relevant variable is clinker output, and the energy
has a fixed part (shell losses, fans, idle auxiliaries) and a part proportional to output, so the EnB is the
straight line ``energy = a + b × output`` fitted by ordinary least squares on per-period totals (t per day and
kgce or kWh per day), see ``docs/kpi.md``.

The residual ``actual − expected`` (positive = more energy than the baseline expects) is then watched by

- the cumulative sum of residuals, the CUSUM chart used in ISO 50006-style EnB tracking: its slope shows a
  lasting change in performance, its level the energy gained or lost since the baseline;
- Page's tabular two-sided CUSUM on standardised residuals (reference value k, decision interval h), which
  raises an alarm for a sustained shift of about 2k σ (Montgomery, *Introduction to Statistical Quality
  Control*, ch. 9; textbook method);
- an EWMA of the residual with its exact time-varying control limits (same reference).

Both detectors have hysteresis (an alarm is raised at one level and cleared at a lower one, optionally after
consecutive points) so a flag does not flap (``DESIGN.md``, "Flags"). Each detector is one small state object
(``CusumState``, ``EwmaState``) updated one residual at a time for the live collector; the batch functions run
the same ``update`` over an array, so live and offline results are identical. States are plain dataclasses of
numbers, so the collector can store them in its ledger (``dataclasses.asdict``) and restore them after a
restart.

Model-validity thresholds are settings recorded in the result (``BaselineChecks``). Confidence: R² ≥ 0.75
and at least 12 baseline points are practitioner rules often attributed to ISO 50006/IPMVP, and the 10 %
output-range rule is our heuristic [UNCONFIRMED: the ISO text was not read]; LBNL's EnPI Lite requires
R² ≥ 0.5 and accepts predicting only within the observed output range or 3 σ of its mean [CONFIRMED,
enpilite.lbl.gov "Valid Model Requirements"], which ``applicable`` implements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Side = Literal["high", "low"]
EventKind = Literal["raise", "clear"]
Detector = Literal["cusum", "ewma"]

#: Baseline validity flags (``Baseline.flags``): each names one failed check of ``BaselineChecks``.
LOW_R2 = "low_r2"
FEW_POINTS = "few_points"
NARROW_OUTPUT_RANGE = "narrow_output_range"
NEGATIVE_SLOPE = "negative_slope"


@dataclass(frozen=True)
class BaselineChecks:
    """Validity thresholds of an energy baseline fit; recorded in every ``Baseline``.

    - ``min_r2`` (0.75): below it the model explains too little of the energy variation to judge drift.
    - ``min_points`` (12): fewer production periods than this give an unreliable slope.
    - ``min_range_ratio`` (0.10): ``(max − min) / mean`` of output; below it output barely varies, the slope
      is poorly determined and a plain ratio EnPI (energy / output) is the better model.
    - ``min_output`` (0.0): periods with output below it, and periods with zero output, are shutdown or
      start-up periods outside the model; they are excluded from the fit and counted.
    - ``extrapolation_sigmas`` (3.0): ``applicable`` accepts outputs within this many standard deviations of
      the baseline mean even outside the observed range (EnPI Lite rule).
    """

    min_r2: float = 0.75
    min_points: int = 12
    min_range_ratio: float = 0.10
    min_output: float = 0.0
    extrapolation_sigmas: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_r2 <= 1.0:
            raise ValueError(f"min_r2 must be in [0, 1], got {self.min_r2!r}")
        if self.min_points < 3:
            raise ValueError(
                f"min_points must be ≥ 3 (a line and a residual spread), got {self.min_points!r}"
            )
        if not (math.isfinite(self.min_range_ratio) and self.min_range_ratio >= 0.0):
            raise ValueError(f"min_range_ratio must be finite and ≥ 0, got {self.min_range_ratio!r}")
        if not (math.isfinite(self.min_output) and self.min_output >= 0.0):
            raise ValueError(f"min_output must be finite and ≥ 0, got {self.min_output!r}")
        if not self.extrapolation_sigmas >= 0.0:
            raise ValueError(f"extrapolation_sigmas must be ≥ 0, got {self.extrapolation_sigmas!r}")


@dataclass(frozen=True)
class Baseline:
    """An energy baseline ``energy = intercept + slope × output`` fitted on a named baseline period.

    ``residual_std`` is √(SS_res / (n − 2)), the σ the detectors standardise by. ``flags`` lists failed
    validity checks (``LOW_R2``, ``FEW_POINTS``, ``NARROW_OUTPUT_RANGE``, ``NEGATIVE_SLOPE``); the baseline is
    still usable, but every result built on it should carry them. ``excluded`` counts periods left out as
    shutdown (output below ``checks.min_output`` or zero). ``r2`` is 1 when energy is constant over the fit.
    """

    intercept: float
    slope: float
    n: int
    r2: float
    residual_std: float
    output_min: float
    output_max: float
    output_mean: float
    output_std: float
    excluded: int
    label: str
    start: str
    end: str
    output_unit: str
    energy_unit: str
    checks: BaselineChecks
    flags: tuple[str, ...]

    @property
    def valid(self) -> bool:
        """True when every check of ``checks`` passed."""
        return not self.flags


def _finite_1d(name: str, values: ArrayLike) -> NDArray[np.float64]:
    """``values`` as a 1-D float64 array; ValueError naming ``name`` if it is not 1-D or not all finite."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name} has {bad.size} non-finite value(s) (NaN/inf), first at index {int(bad[0])}")
    return arr


def _paired(output: ArrayLike, energy: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = _finite_1d("output", output)
    y = _finite_1d("energy", energy)
    if x.shape != y.shape:
        raise ValueError(f"output and energy lengths differ: {x.size} != {y.size}")
    return x, y


def fit_baseline(
    output: ArrayLike,
    energy: ArrayLike,
    *,
    label: str,
    start: str = "",
    end: str = "",
    output_unit: str = "t",
    energy_unit: str = "kgce",
    checks: BaselineChecks | None = None,
) -> Baseline:
    """OLS fit of ``energy = a + b × output`` on per-period totals of one baseline period (ISO 50006 EnB).

    ``label``/``start``/``end`` identify the baseline period as the caller names it (e.g. "2024",
    "2024-01-01", "2024-12-31"); ``kpi`` reads no clock. NaN/inf and negative values are rejected (the
    collector must not turn missing data into numbers); zero-output and below-``min_output`` periods are
    excluded and counted. Raises ValueError when fewer than 3 production periods remain or output does not
    vary at all.
    """
    checks = checks if checks is not None else BaselineChecks()
    x_all, y_all = _paired(output, energy)
    for name, arr in (("output", x_all), ("energy", y_all)):
        if arr.size and arr.min() < 0.0:
            raise ValueError(f"{name} has negative values, first at index {int(np.argmax(arr < 0.0))}")
    keep = (x_all > 0.0) & (x_all >= checks.min_output)
    x, y = x_all[keep], y_all[keep]
    n = int(x.size)
    if n < 3:
        raise ValueError(
            f"too few production periods to fit a baseline: {n} (need ≥ 3; "
            f"{x_all.size - n} excluded with output 0 or below min_output={checks.min_output:g})"
        )
    x_mean, y_mean = float(x.mean()), float(y.mean())
    dx, dy = x - x_mean, y - y_mean
    sxx = float(dx @ dx)
    if sxx == 0.0:
        raise ValueError(f"output is constant ({x_mean:g}) over the baseline period: no slope can be fitted")
    slope = float(dx @ dy) / sxx
    intercept = y_mean - slope * x_mean
    resid = dy - slope * dx
    ss_res = float(resid @ resid)
    syy = float(dy @ dy)
    r2 = 1.0 if syy == 0.0 else max(0.0, 1.0 - ss_res / syy)
    x_min, x_max = float(x.min()), float(x.max())
    flags = []
    if r2 < checks.min_r2:
        flags.append(LOW_R2)
    if n < checks.min_points:
        flags.append(FEW_POINTS)
    if (x_max - x_min) / x_mean < checks.min_range_ratio:
        flags.append(NARROW_OUTPUT_RANGE)
    if slope < 0.0:
        flags.append(NEGATIVE_SLOPE)
    return Baseline(
        intercept=intercept,
        slope=slope,
        n=n,
        r2=r2,
        residual_std=math.sqrt(ss_res / (n - 2)),
        output_min=x_min,
        output_max=x_max,
        output_mean=x_mean,
        output_std=math.sqrt(sxx / (n - 1)),
        excluded=int(x_all.size - n),
        label=label,
        start=start,
        end=end,
        output_unit=output_unit,
        energy_unit=energy_unit,
        checks=checks,
        flags=tuple(flags),
    )


def expected(baseline: Baseline, output: ArrayLike) -> NDArray[np.float64]:
    """Energy the baseline expects at ``output`` (a + b × output), same shape as ``output``."""
    x = np.asarray(output, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("output has non-finite values (NaN/inf)")
    return baseline.intercept + baseline.slope * x


def applicable(baseline: Baseline, output: ArrayLike) -> NDArray[np.bool_]:
    """Which periods the baseline may judge: production periods within its output domain.

    A period qualifies when its output is > 0 and ≥ ``checks.min_output`` (not a shutdown, as in the fit), and
    lies within the observed baseline range or within ``checks.extrapolation_sigmas`` standard deviations of
    the baseline mean (EnPI Lite rule [CONFIRMED]). Feed only these periods' residuals to the detectors.
    """
    x = np.asarray(output, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("output has non-finite values (NaN/inf)")
    production = (x > 0.0) & (x >= baseline.checks.min_output)
    in_range = (x >= baseline.output_min) & (x <= baseline.output_max)
    near_mean = np.abs(x - baseline.output_mean) <= baseline.checks.extrapolation_sigmas * baseline.output_std
    return production & (in_range | near_mean)


def residuals(baseline: Baseline, output: ArrayLike, energy: ArrayLike) -> NDArray[np.float64]:
    """``actual − expected`` per period: positive means more energy than the baseline expects (worse)."""
    x, y = _paired(output, energy)
    return y - expected(baseline, x)


def enpi_ratio(baseline: Baseline, output: ArrayLike, energy: ArrayLike) -> NDArray[np.float64]:
    """EnPI ratio ``actual / expected`` per period (1.00 = as the baseline; 1.05 = 5 % more energy).

    Raises ValueError where the expected energy is ≤ 0 (a period outside the model; see ``applicable``).
    """
    x, y = _paired(output, energy)
    e = expected(baseline, x)
    bad = np.flatnonzero(e <= 0.0)
    if bad.size:
        raise ValueError(
            f"expected energy ≤ 0 at {bad.size} period(s), first at index {int(bad[0])} "
            f"(output {x[bad[0]]:g}): outside the baseline model"
        )
    return y / e


def cusum_chart(resid: ArrayLike) -> NDArray[np.float64]:
    """The ISO 50006-style CUSUM chart: running sum of residuals, in energy units.

    A straight rising trace = a lasting excess of (slope) energy units per period; flat = as the baseline.
    """
    return np.cumsum(_finite_1d("residuals", resid))


@dataclass(frozen=True)
class DriftEvent:
    """A detector's alarm state change at one point.

    ``index`` is the 0-based position of the point in the stream the state has seen; ``value`` the statistic
    at that point (CUSUM: S in units of σ; EWMA: z in energy units) and ``threshold`` the level it crossed
    (h or h_release; the EWMA raise or release limit at that point).
    """

    detector: Detector
    index: int
    kind: EventKind
    side: Side
    value: float
    threshold: float


def _finite_residual(residual: float) -> float:
    r = float(residual)
    if not math.isfinite(r):
        raise ValueError(f"residual must be finite, got {residual!r}")
    return r


def _check_sigma(sigma: float) -> None:
    if not (math.isfinite(sigma) and sigma > 0.0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r} (an exact-fit baseline has σ = 0)")


@dataclass(frozen=True)
class CusumParams:
    """Tabular CUSUM settings. ``k``, ``h`` and ``h_release`` are in units of ``sigma`` (energy units).

    Defaults k = 0.5, h = 5 (Montgomery's usual choice: detects a 1 σ sustained shift, in-control average run
    length ≈ 465 points per side). An alarm is raised when S > h and cleared when S ≤ h_release
    (default 2.5 = h / 2; 0 clears only once S has returned to zero).
    """

    sigma: float
    k: float = 0.5
    h: float = 5.0
    h_release: float = 2.5

    def __post_init__(self) -> None:
        _check_sigma(self.sigma)
        if not (math.isfinite(self.k) and self.k >= 0.0):
            raise ValueError(f"k must be finite and ≥ 0, got {self.k!r}")
        if not (math.isfinite(self.h) and self.h > 0.0):
            raise ValueError(f"h must be finite and > 0, got {self.h!r}")
        if not 0.0 <= self.h_release < self.h:
            raise ValueError(f"h_release must be in [0, h={self.h!r}), got {self.h_release!r}")


@dataclass
class CusumState:
    """Page's two-sided tabular CUSUM, one residual at a time.

    With z = residual / σ: ``S_hi = max(0, S_hi + z − k)``, ``S_lo = max(0, S_lo − z − k)``. S_hi flags
    excess energy, S_lo a drop (a real improvement, or a meter that under-reads). The statistics are not reset
    at an alarm; the alarm latches until S ≤ h_release (hysteresis).
    """

    params: CusumParams
    s_hi: float = 0.0
    s_lo: float = 0.0
    alarm_hi: bool = False
    alarm_lo: bool = False
    n: int = 0

    def update(self, residual: float) -> tuple[DriftEvent, ...]:
        """Add one residual (energy units); return the alarm transitions it causes (usually none)."""
        p = self.params
        z = _finite_residual(residual) / p.sigma
        index = self.n
        self.n += 1
        self.s_hi = max(0.0, self.s_hi + z - p.k)
        self.s_lo = max(0.0, self.s_lo - z - p.k)
        events: list[DriftEvent] = []
        self.alarm_hi = self._latch("high", self.s_hi, self.alarm_hi, index, events)
        self.alarm_lo = self._latch("low", self.s_lo, self.alarm_lo, index, events)
        return tuple(events)

    def _latch(self, side: Side, s: float, alarm: bool, index: int, events: list[DriftEvent]) -> bool:
        """New alarm state of one side; appends the transition, if any, to ``events``."""
        p = self.params
        if not alarm and s > p.h:
            events.append(DriftEvent("cusum", index, "raise", side, s, p.h))
            return True
        if alarm and s <= p.h_release:
            events.append(DriftEvent("cusum", index, "clear", side, s, p.h_release))
            return False
        return alarm


@dataclass(frozen=True)
class CusumResult:
    """Batch tabular CUSUM over an array: statistics and alarm state after each point, and the events."""

    s_hi: NDArray[np.float64]
    s_lo: NDArray[np.float64]
    alarm_hi: NDArray[np.bool_]
    alarm_lo: NDArray[np.bool_]
    events: tuple[DriftEvent, ...]
    params: CusumParams


def tabular_cusum(resid: ArrayLike, params: CusumParams, state: CusumState | None = None) -> CusumResult:
    """Run ``CusumState.update`` over ``resid`` (from ``state`` if given, which is advanced; else fresh)."""
    r = _finite_1d("residuals", resid)
    st = state if state is not None else CusumState(params)
    if st.params != params:
        raise ValueError("state.params differ from params")
    s_hi, s_lo = np.empty(r.size), np.empty(r.size)
    a_hi, a_lo = np.empty(r.size, np.bool_), np.empty(r.size, np.bool_)
    events: list[DriftEvent] = []
    for i, value in enumerate(r):
        events.extend(st.update(float(value)))
        s_hi[i], s_lo[i], a_hi[i], a_lo[i] = st.s_hi, st.s_lo, st.alarm_hi, st.alarm_lo
    return CusumResult(s_hi, s_lo, a_hi, a_lo, tuple(events), params)


@dataclass(frozen=True)
class EwmaParams:
    """EWMA settings. ``sigma`` is the residual σ in energy units; limits are multiples of the EWMA's σ_i.

    - ``lam`` λ (0.2): weight of the newest residual, 0 < λ ≤ 1 (λ = 1 is a Shewhart chart).
    - ``L`` (3.0): raise multiple; ``L_release`` (2.0): clear multiple, 0 ≤ L_release < L.
    - ``raise_after`` (1) / ``clear_after`` (1): consecutive points beyond L (resp. inside L_release) needed
      to raise (resp. clear) an alarm.
    """

    sigma: float
    lam: float = 0.2
    L: float = 3.0
    L_release: float = 2.0
    raise_after: int = 1
    clear_after: int = 1

    def __post_init__(self) -> None:
        _check_sigma(self.sigma)
        if not 0.0 < self.lam <= 1.0:
            raise ValueError(f"lam must be in (0, 1], got {self.lam!r}")
        if not (math.isfinite(self.L) and self.L > 0.0):
            raise ValueError(f"L must be finite and > 0, got {self.L!r}")
        if not 0.0 <= self.L_release < self.L:
            raise ValueError(f"L_release must be in [0, L={self.L!r}), got {self.L_release!r}")
        if self.raise_after < 1 or self.clear_after < 1:
            raise ValueError(
                f"raise_after and clear_after must be ≥ 1, got {self.raise_after!r}, {self.clear_after!r}"
            )


def ewma_sigma(params: EwmaParams, i: int) -> float:
    """σ of the EWMA after ``i`` ≥ 1 points: σ √(λ / (2 − λ) × (1 − (1 − λ)^(2i))) (exact, not asymptotic)."""
    if i < 1:
        raise ValueError(f"i counts points from 1, got {i!r}")
    lam = params.lam
    return params.sigma * math.sqrt(lam / (2.0 - lam) * (1.0 - (1.0 - lam) ** (2 * i)))


@dataclass
class EwmaState:
    """EWMA of the residual, ``z_i = λ r_i + (1 − λ) z_{i−1}`` with z_0 = 0 (the baseline expects 0).

    High side: raise after ``raise_after`` consecutive points with z > L σ_i, clear after ``clear_after``
    consecutive points with z < L_release σ_i; the low side mirrors it. ``run_hi``/``run_lo`` count the
    consecutive points toward the side's next transition.
    """

    params: EwmaParams
    z: float = 0.0
    n: int = 0
    alarm_hi: bool = False
    alarm_lo: bool = False
    run_hi: int = 0
    run_lo: int = 0

    def update(self, residual: float) -> tuple[DriftEvent, ...]:
        """Add one residual (energy units); return the alarm transitions it causes (usually none)."""
        p = self.params
        r = _finite_residual(residual)
        index = self.n
        self.n += 1
        self.z = p.lam * r + (1.0 - p.lam) * self.z
        sd = ewma_sigma(p, self.n)
        events: list[DriftEvent] = []
        self.alarm_hi, self.run_hi = self._side("high", 1.0, self.alarm_hi, self.run_hi, sd, index, events)
        self.alarm_lo, self.run_lo = self._side("low", -1.0, self.alarm_lo, self.run_lo, sd, index, events)
        return tuple(events)

    def _side(
        self, side: Side, sign: float, alarm: bool, run: int, sd: float, index: int, events: list[DriftEvent]
    ) -> tuple[bool, int]:
        """New (alarm, run) of one side after ``self.z``; appends the transition, if any, to ``events``.

        ``sign`` is +1 for the high side and −1 for the low side, so ``sign × z`` is compared with positive
        limits and the event's threshold is reported with the side's sign.
        """
        p = self.params
        limit, release = p.L * sd, p.L_release * sd
        toward = sign * self.z < release if alarm else sign * self.z > limit
        run = run + 1 if toward else 0
        if run < (p.clear_after if alarm else p.raise_after):
            return alarm, run
        if alarm:
            events.append(DriftEvent("ewma", index, "clear", side, self.z, sign * release))
        else:
            events.append(DriftEvent("ewma", index, "raise", side, self.z, sign * limit))
        return not alarm, 0


@dataclass(frozen=True)
class EwmaResult:
    """Batch EWMA over an array: z, the raise limit L σ_i and release limit L_release σ_i (± for the low
    side), alarm state after each point, and the events."""

    z: NDArray[np.float64]
    limit: NDArray[np.float64]
    release: NDArray[np.float64]
    alarm_hi: NDArray[np.bool_]
    alarm_lo: NDArray[np.bool_]
    events: tuple[DriftEvent, ...]
    params: EwmaParams


def ewma(resid: ArrayLike, params: EwmaParams, state: EwmaState | None = None) -> EwmaResult:
    """Run ``EwmaState.update`` over ``resid`` (from ``state`` if given, which is advanced; else fresh)."""
    r = _finite_1d("residuals", resid)
    st = state if state is not None else EwmaState(params)
    if st.params != params:
        raise ValueError("state.params differ from params")
    z, sd = np.empty(r.size), np.empty(r.size)
    a_hi, a_lo = np.empty(r.size, np.bool_), np.empty(r.size, np.bool_)
    events: list[DriftEvent] = []
    for i, value in enumerate(r):
        events.extend(st.update(float(value)))
        z[i], sd[i], a_hi[i], a_lo[i] = st.z, ewma_sigma(params, st.n), st.alarm_hi, st.alarm_lo
    return EwmaResult(z, params.L * sd, params.L_release * sd, a_hi, a_lo, tuple(events), params)
