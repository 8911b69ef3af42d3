"""The process model: the operating point by hand, exact integration, and live stepping = generated path."""

from __future__ import annotations

import numpy as np

from simulators.kiln.model import TRUTH_RATES, KilnLine, OperatingPoint, integrate_path, process_rates


def test_operating_point_matches_the_doc() -> None:
    line = KilnLine(seed=1)  # the wander starts at 0: rates are the operating point itself
    r = line.rates
    # 5000 t/d; coal = 208.333 t/h × 3.10 GJ/t ÷ 23.0 GJ/t = 28.08 t/h, split 40 / 60.
    assert abs(r["clinker_tph"] - 5000 / 24) < 1e-9
    assert abs(r["coal_kiln_tph"] + r["coal_calciner_tph"] - 28.0797) < 1e-3
    assert abs(r["coal_kiln_tph"] / (r["coal_kiln_tph"] + r["coal_calciner_tph"]) - 0.40) < 1e-12
    # 3.10 GJ/t = 3100 MJ/t ÷ 29.3076 MJ/kgce = 105.77 kgce/t.
    assert abs(r["coal_kgce_per_h"] / r["clinker_tph"] - 3100 / 29.3076) < 1e-9
    clinker_kw = r["raw_mill_kw"] + r["kiln_kw"] + r["coal_mill_kw"] + r["cooler_kw"] + r["aux_kw"]
    assert abs(clinker_kw - 11_460) < 1e-6  # 3.8 + 5.4 + 1.0 + 1.2 + 0.06 MW
    assert abs(r["whr_kw"] / r["clinker_tph"] - 34.99) < 0.01  # 7.29 MW / 208.33 t/h
    assert abs(r["cement_tph"] - 5000 / 24 / 0.75) < 1e-9
    assert abs(r["cement_mill_kw"] / r["cement_tph"] - 30.0) < 1e-9
    assert r["kiln_feed_tph"] == r["clinker_tph"] * 1.57


def test_step_integrates_the_held_rate_exactly() -> None:
    line = KilnLine(seed=5)
    line.step(600.0)
    before_kw, before_kwh = line.rates["kiln_kw"], line.truth["kiln_kwh"]
    line.step(90.0)
    # 90 s at a constant kiln_kw is kiln_kw × 90 / 3600 kWh.
    assert abs(line.truth["kiln_kwh"] - (before_kwh + before_kw * 90 / 3600)) < 1e-9


def test_rates_wander_a_few_percent_and_stay_plausible() -> None:
    line = KilnLine(seed=2)
    clinker, whr = [], []
    for _ in range(24 * 60):  # one day in minutes
        line.step(60.0)
        clinker.append(line.rates["clinker_tph"])
        whr.append(line.rates["whr_kw"])
    clinker_a = np.array(clinker)
    assert 0.003 < clinker_a.std() / clinker_a.mean() < 0.05
    assert clinker_a.min() > 180 and clinker_a.max() < 240
    assert min(whr) > 6000 and max(whr) < 8600


def test_live_steps_and_generated_path_agree() -> None:
    live = KilnLine(seed=9)
    for _ in range(500):
        live.step(10.0)
    path = KilnLine(seed=9)
    rates = process_rates(OperatingPoint(), path.wander.path(500, 10.0))
    truth = integrate_path(rates, 10.0)
    for column in TRUTH_RATES:
        assert abs(truth[column][-1] - live.truth[column]) <= 1e-9 * max(1.0, live.truth[column])
    assert abs(rates["clinker_tph"][-1] - live.rates["clinker_tph"]) < 1e-9


def test_seed_makes_runs_repeatable_and_distinct() -> None:
    a, b, c = KilnLine(seed=4), KilnLine(seed=4), KilnLine(seed=7)
    for line in (a, b, c):
        line.step(300.0)
        line.step(300.0)
    assert a.rates == b.rates
    assert a.rates["raw_mill_kw"] != c.rates["raw_mill_kw"]
