"""Energy baseline (OLS), CUSUM and EWMA drift detection: hand-computed cases, hysteresis, a step change."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kpi.deviation import (
    FEW_POINTS,
    LOW_R2,
    NARROW_OUTPUT_RANGE,
    NEGATIVE_SLOPE,
    BaselineChecks,
    CusumParams,
    CusumState,
    DriftEvent,
    EwmaParams,
    EwmaState,
    applicable,
    cusum_chart,
    enpi_ratio,
    ewma,
    ewma_sigma,
    expected,
    fit_baseline,
    residuals,
    tabular_cusum,
)

# x = 1..5, y = 2 + 3x + e with e = (1, −2, 0, 2, −1): Σe = 0 and Σx·e = 1 − 4 + 0 + 8 − 5 = 0, so e is
# orthogonal to (1, x) and OLS returns a = 2, b = 3 exactly with residuals e.
X5 = [1.0, 2.0, 3.0, 4.0, 5.0]
E5 = [1.0, -2.0, 0.0, 2.0, -1.0]
Y5 = [2 + 3 * x + e for x, e in zip(X5, E5, strict=True)]  # 6, 6, 11, 16, 16


def test_fit_on_five_points_by_hand():
    b = fit_baseline(X5, Y5, label="hand", start="d1", end="d5", output_unit="t", energy_unit="tce")
    assert Y5 == [6.0, 6.0, 11.0, 16.0, 16.0]
    assert (b.intercept, b.slope) == pytest.approx((2.0, 3.0))
    # SS_res = 1 + 4 + 0 + 4 + 1 = 10; σ = √(10 / (5 − 2)) = 1.8257.
    assert b.residual_std == pytest.approx(math.sqrt(10.0 / 3.0))
    # SS_tot = Σ(3(x − 3) + e)² = 9 × Σ(x − 3)² + 6 × Σ(x − 3)e + Σe² = 9 × 10 + 0 + 10 = 100;
    # R² = 1 − 10/100.
    assert b.r2 == pytest.approx(0.9)
    assert (b.n, b.excluded) == (5, 0)
    assert (b.output_min, b.output_max, b.output_mean) == (1.0, 5.0, 3.0)
    assert b.output_std == pytest.approx(math.sqrt(10.0 / 4.0))  # Σ(x − 3)² / (n − 1)
    assert (b.label, b.start, b.end, b.output_unit, b.energy_unit) == ("hand", "d1", "d5", "t", "tce")
    # 5 < min_points = 12: flagged, not rejected; R² 0.9 ≥ 0.75; range (5 − 1)/3 = 1.33 ≥ 0.10.
    assert b.flags == (FEW_POINTS,) and not b.valid
    assert b.checks == BaselineChecks()
    np.testing.assert_allclose(residuals(b, X5, Y5), E5, atol=1e-12)


def test_expected_residuals_and_enpi_ratio():
    b = fit_baseline(X5, Y5, label="hand")
    # expected = 2 + 3 × (0, 10) = (2, 32); a scalar stays a scalar.
    np.testing.assert_allclose(expected(b, [0.0, 10.0]), [2.0, 32.0])
    assert float(expected(b, 4.0)) == pytest.approx(14.0)
    # actual 33 at output 10: residual 33 − 32 = 1, EnPI 33 / 32 = 1.03125.
    assert residuals(b, [10.0], [33.0])[0] == pytest.approx(1.0)
    assert enpi_ratio(b, [10.0, 4.0], [33.0, 14.0]) == pytest.approx([1.03125, 1.0])


def test_enpi_ratio_rejects_nonpositive_expected():
    b = fit_baseline([1.0, 2.0, 3.0], [-1.0 + 2.0, 3.0, 5.0], label="steep")  # 2x − 1: expected(0.25) < 0
    with pytest.raises(ValueError, match="expected energy ≤ 0 at 1 period"):
        enpi_ratio(b, [0.25, 2.0], [1.0, 3.0])


def test_shutdown_periods_are_excluded_and_counted():
    out = [0.0, *X5, 0.4]
    energy = [0.7, *Y5, 3.0]
    b = fit_baseline(out, energy, label="with shutdowns", checks=BaselineChecks(min_output=0.5))
    # the zero-output day and the 0.4 < min_output day are left out; the fit is the five-point one.
    assert (b.n, b.excluded) == (5, 2)
    assert (b.intercept, b.slope) == pytest.approx((2.0, 3.0))
    assert b.checks.min_output == 0.5


def test_zero_output_excluded_even_with_default_min_output():
    b = fit_baseline([0.0, *X5], [9.0, *Y5], label="x")
    assert (b.n, b.excluded) == (5, 1)


def test_validity_flags_and_recorded_thresholds():
    checks = BaselineChecks(min_r2=0.95, min_points=5, min_range_ratio=2.0)
    b = fit_baseline(X5, Y5, label="strict", checks=checks)
    # R² 0.9 < 0.95; n = 5 is enough; range ratio 1.33 < 2.0.
    assert b.flags == (LOW_R2, NARROW_OUTPUT_RANGE)
    assert b.checks is checks
    falling = fit_baseline(
        X5, [10.0, 9.0, 8.0, 7.0, 6.0], label="falling", checks=BaselineChecks(min_points=5)
    )
    assert falling.slope == pytest.approx(-1.0) and falling.flags == (NEGATIVE_SLOPE,)


def test_constant_energy_gives_zero_slope_and_r2_one():
    b = fit_baseline(X5, [7.0] * 5, label="flat", checks=BaselineChecks(min_points=5))
    assert (b.intercept, b.slope, b.r2, b.residual_std) == (7.0, 0.0, 1.0, 0.0)


@pytest.mark.parametrize(
    ("output", "energy", "message"),
    [
        (
            [1.0, 2.0, float("nan")],
            [1.0, 2.0, 3.0],
            r"output has 1 non-finite value\(s\) \(NaN/inf\), first at index 2",
        ),
        ([1.0, 2.0, 3.0], [1.0, float("inf"), 3.0], r"energy has 1 non-finite value\(s\).*index 1"),
        ([1.0, 2.0, 3.0], [1.0, 2.0], "output and energy lengths differ: 3 != 2"),
        ([1.0, 2.0], [1.0, 2.0], r"too few production periods to fit a baseline: 2 \(need ≥ 3; 0 excluded"),
        ([0.0, 1.0, 2.0, 0.0], [1.0, 2.0, 3.0, 1.0], r"too few production periods.*: 2 .*2 excluded"),
        ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], "output is constant"),
        ([1.0, -2.0, 3.0], [1.0, 2.0, 3.0], "output has negative values, first at index 1"),
        ([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]], "output must be 1-D"),
    ],
)
def test_fit_validation_errors(output, energy, message):
    with pytest.raises(ValueError, match=message):
        fit_baseline(output, energy, label="bad")


def test_check_settings_are_validated():
    with pytest.raises(ValueError, match="min_r2"):
        BaselineChecks(min_r2=1.5)
    with pytest.raises(ValueError, match="min_points must be ≥ 3"):
        BaselineChecks(min_points=2)
    with pytest.raises(ValueError, match="min_output"):
        BaselineChecks(min_output=float("nan"))


def test_applicable_domain():
    b = fit_baseline(X5, Y5, label="hand", checks=BaselineChecks(min_output=0.5))
    # range [1, 5], mean 3, std √2.5 = 1.5811, 3σ = 4.743: accepted within [1, 5] ∪ [−1.743, 7.743],
    # and only if ≥ min_output 0.5.
    out = [0.0, 0.4, 0.6, 3.0, 7.7, 7.8]
    assert applicable(b, out).tolist() == [False, False, True, True, True, False]


def test_cusum_chart_is_running_sum():
    # residuals (1, −2, 0, 2, −1): 1, 1 − 2 = −1, −1, −1 + 2 = 1, 0.
    assert cusum_chart(E5).tolist() == [1.0, -1.0, -1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="residuals has 1 non-finite"):
        cusum_chart([1.0, float("nan")])


def test_tabular_cusum_by_hand_with_hysteresis():
    # σ = 2, so z = r / 2 = (1, 2, 1.5, 0, −0.5, −1, 0); k = 0.5, h = 2, h_release = 1.
    r = [2.0, 4.0, 3.0, 0.0, -1.0, -2.0, 0.0]
    p = CusumParams(sigma=2.0, k=0.5, h=2.0, h_release=1.0)
    res = tabular_cusum(r, p)
    # S_hi: 0 + 1 − .5 = .5; .5 + 2 − .5 = 2.0 (= h, not > h: no alarm); 2 + 1.5 − .5 = 3.0 > 2 → raise at 2;
    #       3 + 0 − .5 = 2.5; 2.5 − .5 − .5 = 1.5 (1 < 1.5 ≤ 2: between release and h, alarm held);
    #       1.5 − 1 − .5 = 0.0 ≤ 1 → clear at 5; max(0, 0 + 0 − .5) = 0.
    assert res.s_hi.tolist() == [0.5, 2.0, 3.0, 2.5, 1.5, 0.0, 0.0]
    # S_lo = max(0, S_lo − z − k): 0, 0, 0, 0, max(0, .5 − .5) = 0, 1 − .5 = .5, .5 − 0 − .5 = 0.
    assert res.s_lo.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0]
    assert res.alarm_hi.tolist() == [False, False, True, True, True, False, False]
    assert not res.alarm_lo.any()
    assert res.events == (
        DriftEvent("cusum", 2, "raise", "high", 3.0, 2.0),
        DriftEvent("cusum", 5, "clear", "high", 0.0, 1.0),
    )


def test_tabular_cusum_low_side():
    # z = −3, −3, 3 with k = .5, h = 4, release 0: S_lo 2.5, 5.0 > 4 → raise at 1; 5 − 3 − .5 = 1.5 > 0 held.
    res = tabular_cusum([-3.0, -3.0, 3.0], CusumParams(sigma=1.0, k=0.5, h=4.0, h_release=0.0))
    assert res.s_lo.tolist() == [2.5, 5.0, 1.5]
    assert res.s_hi.tolist() == [0.0, 0.0, 2.5]
    assert res.events == (DriftEvent("cusum", 1, "raise", "low", 5.0, 4.0),)
    assert res.alarm_lo.tolist() == [False, True, True]


def test_cusum_defaults_and_parameter_validation():
    p = CusumParams(sigma=10.0)
    assert (p.k, p.h, p.h_release) == (0.5, 5.0, 2.5)
    with pytest.raises(ValueError, match=r"sigma must be finite and > 0.*exact-fit"):
        CusumParams(sigma=0.0)
    with pytest.raises(ValueError, match=r"h_release must be in \[0, h=5.0\)"):
        CusumParams(sigma=1.0, h_release=5.0)
    with pytest.raises(ValueError, match="residual must be finite"):
        CusumState(p).update(float("nan"))


def test_ewma_by_hand_lambda_half():
    # λ = .5, σ = 1, z_0 = 0: z1 = .5·2 + .5·0 = 1; z2 = .5·2 + .5·1 = 1.5; z3 = 0 + .75 = .75;
    # z4 = .5·(−2) + .5·.75 = −.625.
    p = EwmaParams(sigma=1.0, lam=0.5, L=2.0, L_release=1.0)
    res = ewma([2.0, 2.0, 0.0, -2.0], p)
    assert res.z.tolist() == [1.0, 1.5, 0.75, -0.625]
    # σ_i = √(λ/(2 − λ) · (1 − .25^i)) = √(1/3 · (.75, .9375, 63/64, 255/256)) = .5, .5590, .5728, .5762.
    sd = [math.sqrt((1 - 0.25**i) / 3) for i in (1, 2, 3, 4)]
    assert sd[0] == 0.5 and [ewma_sigma(p, i) for i in (1, 2, 3, 4)] == pytest.approx(sd)
    np.testing.assert_allclose(res.limit, [2 * s for s in sd])  # 1.0, 1.1180, 1.1456, 1.1524
    np.testing.assert_allclose(res.release, sd)
    # z1 = 1.0 = limit 1.0: not beyond; z2 = 1.5 > 1.118 → raise at 1; z3 = .75: between release .5728 and
    # limit 1.1456, held; z4 = −.625 < .5762 → clear at 3 (and −.625 is inside the low limit −1.1524).
    assert res.alarm_hi.tolist() == [False, True, True, False]
    assert res.events == (
        DriftEvent("ewma", 1, "raise", "high", 1.5, 2 * sd[1]),
        DriftEvent("ewma", 3, "clear", "high", -0.625, sd[3]),
    )


def test_ewma_consecutive_point_hysteresis():
    # λ = 1 makes z = r and σ_i = σ √(1 · (1 − 0)) = 1: limit 3, release 1; 2 points to raise, 2 to clear.
    p = EwmaParams(sigma=1.0, lam=1.0, L=3.0, L_release=1.0, raise_after=2, clear_after=2)
    r = [4.0, 0.0, 4.0, 4.0, 2.0, 0.0, 2.0, 0.0, 0.0]
    res = ewma(r, p)
    # 4 (run 1), 0 (run reset), 4 (1), 4 (2 → raise at 3); 2 (between 1 and 3: clear run 0), 0 (1),
    # 2 (reset), 0 (1), 0 (2 → clear at 8).
    assert res.alarm_hi.tolist() == [False, False, False, True, True, True, True, True, False]
    assert [(e.index, e.kind, e.side) for e in res.events] == [(3, "raise", "high"), (8, "clear", "high")]
    assert not res.alarm_lo.any()


def test_ewma_jump_across_clears_high_and_raises_low_in_one_step():
    # λ = 1, L = 3, release 1: r = 5 raises high; r = −5 is inside the release (clear high) and beyond −3.
    state = EwmaState(EwmaParams(sigma=1.0, lam=1.0))
    assert state.update(5.0) == (DriftEvent("ewma", 0, "raise", "high", 5.0, 3.0),)
    assert state.update(-5.0) == (
        DriftEvent("ewma", 1, "clear", "high", -5.0, 2.0),
        DriftEvent("ewma", 1, "raise", "low", -5.0, -3.0),
    )
    assert (state.alarm_hi, state.alarm_lo) == (False, True)


def test_ewma_parameter_validation():
    p = EwmaParams(sigma=1.0)
    assert (p.lam, p.L, p.L_release, p.raise_after, p.clear_after) == (0.2, 3.0, 2.0, 1, 1)
    for bad in ({"lam": 0.0}, {"lam": 1.5}, {"L_release": 3.0}, {"raise_after": 0}, {"sigma": float("inf")}):
        with pytest.raises(ValueError):
            EwmaParams(**{"sigma": 1.0, **bad})
    with pytest.raises(ValueError, match="i counts points from 1"):
        ewma_sigma(p, 0)


def test_streaming_equals_batch_and_state_survives_a_restart():
    rng = np.random.default_rng(7)
    r = rng.normal(0.0, 1.0, 200) + np.where(np.arange(200) >= 100, 1.2, 0.0)
    cp, ep = CusumParams(sigma=1.0), EwmaParams(sigma=1.0, raise_after=2, clear_after=3)
    batch_c, batch_e = tabular_cusum(r, cp), ewma(r, ep)
    cs, es = CusumState(cp), EwmaState(ep)
    live_c = [e for v in r[:120] for e in cs.update(float(v))]
    live_e = [e for v in r[:120] for e in es.update(float(v))]
    # "restart": rebuild the states from their stored fields and continue with the batch function.
    cs2 = CusumState(**{f.name: getattr(cs, f.name) for f in dataclasses.fields(cs)})
    es2 = EwmaState(**{f.name: getattr(es, f.name) for f in dataclasses.fields(es)})
    rest_c, rest_e = tabular_cusum(r[120:], cp, cs2), ewma(r[120:], ep, es2)
    assert tuple(live_c) + rest_c.events == batch_c.events
    assert tuple(live_e) + rest_e.events == batch_e.events
    np.testing.assert_array_equal(rest_c.s_hi, batch_c.s_hi[120:])
    np.testing.assert_array_equal(rest_e.z, batch_e.z[120:])
    np.testing.assert_array_equal(rest_e.limit, batch_e.limit[120:])
    assert batch_c.events and batch_e.events  # the +1.2 σ shift is found by both
    with pytest.raises(ValueError, match=r"state\.params differ"):
        tabular_cusum(r, CusumParams(sigma=2.0), CusumState(cp))


def test_step_change_of_five_percent_is_detected_within_three_days():
    """90 baseline days, then 80 monitored days with +5 % energy from day 40; fixed seed.

    Plant: energy = 30 + 0.1 × output tce/day (≈ 106 kgce/t at 5000 t/d), output ~ N(5000, 400) t/d,
    noise σ = 10 tce/day. Fit: a = 29.36, b = 0.10024, R² = 0.932, σ̂ = 11.12 tce. The step is
    ≈ 0.05 × 530 = 26.5 tce ≈ 2.4 σ̂. Before it the largest S_hi is 1.99 and S_lo 2.54 (h = 5), and the
    EWMA's |z| stays below 0.65 × its limit. The CUSUM (k = 0.5, h = 5) raises on day 41 (S_hi = 0, 3.03,
    5.32 on days 39–41), the EWMA (λ = 0.2, L = 3) on day 42; the mean EnPI ratio from day 40 is 1.049.
    """
    rng = np.random.default_rng(20240601)
    xb = rng.normal(5000.0, 400.0, 90)
    yb = 30.0 + 0.1 * xb + rng.normal(0.0, 10.0, 90)
    bl = fit_baseline(xb, yb, label="baseline 90 d", output_unit="t", energy_unit="tce")
    assert bl.valid and bl.r2 == pytest.approx(0.932, abs=1e-3)
    assert bl.residual_std == pytest.approx(11.12, abs=0.01)
    xm = rng.normal(5000.0, 400.0, 80)
    true = 30.0 + 0.1 * xm
    ym = true + rng.normal(0.0, 10.0, 80)
    ym[40:] += 0.05 * true[40:]
    assert applicable(bl, xm).all()
    r = residuals(bl, xm, ym)
    c = tabular_cusum(r, CusumParams(sigma=bl.residual_std))
    w = ewma(r, EwmaParams(sigma=bl.residual_std))
    assert not (
        c.alarm_hi[:40].any() or c.alarm_lo[:40].any() or w.alarm_hi[:40].any() or w.alarm_lo[:40].any()
    )
    assert (c.s_hi[:40].max(), c.s_lo[:40].max()) == pytest.approx((1.99, 2.54), abs=0.01)
    assert np.max(np.abs(w.z[:40]) / w.limit[:40]) == pytest.approx(0.65, abs=0.01)
    assert c.s_hi[39:42] == pytest.approx([0.0, 3.03, 5.32], abs=0.01)
    first_c = next(e for e in c.events if e.kind == "raise")
    first_w = next(e for e in w.events if e.kind == "raise")
    assert (first_c.index, first_c.side) == (41, "high")
    assert (first_w.index, first_w.side) == (42, "high")
    assert first_c.index - 40 <= 3 and first_w.index - 40 <= 3
    assert enpi_ratio(bl, xm[40:], ym[40:]).mean() == pytest.approx(1.049, abs=1e-3)


@settings(max_examples=200, deadline=None)
@given(
    x=st.lists(st.floats(1.0, 10_000.0), min_size=3, max_size=60),
    data=st.data(),
)
def test_ols_residuals_sum_to_zero_on_the_fit_set(x, data):
    assume(max(x) - min(x) > 1e-3 * max(x))
    y = data.draw(st.lists(st.floats(0.0, 1e5), min_size=len(x), max_size=len(x)))
    b = fit_baseline(x, y, label="prop")
    r = residuals(b, x, y)
    scale = sum(abs(v) for v in y) + abs(b.slope) * sum(x) + abs(b.intercept) * len(x)
    assert abs(float(r.sum())) <= 1e-9 * scale + 1e-12
    assert abs(float(r @ np.asarray(x))) <= 1e-9 * scale * max(x) + 1e-12  # and are orthogonal to output
    assert 0.0 <= b.r2 <= 1.0


@settings(max_examples=200, deadline=None)
@given(
    x=st.lists(st.floats(1.0, 10_000.0), min_size=3, max_size=60),
    a=st.floats(0.0, 1e4),
    slope=st.floats(0.0, 1e3),
)
def test_cusum_on_an_exact_fit_set_stays_zero(x, a, slope):
    assume(max(x) - min(x) > 1e-3 * max(x))
    y = [a + slope * v for v in x]
    b = fit_baseline(x, y, label="exact")
    chart = cusum_chart(residuals(b, x, y))
    scale = a + slope * max(x)
    assert np.all(np.abs(chart) <= 1e-9 * scale * len(x) + 1e-12)
