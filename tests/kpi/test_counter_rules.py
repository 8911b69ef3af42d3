"""The counter and rate rules of ``kpi.kernels``, each reproduced by hand on the failure it fixes.

Rules (module docstring of ``kpi.kernels``):

1. A drop is a rollover only from ≥ 0.9 × modulus to ≤ 0.1 × modulus (``ROLLOVER_WINDOW``): delta =
   v1 + modulus − v0. Any other drop is a reset or a replaced meter, which counted from zero since the last
   old reading: delta = v1. No plausibility limit is needed for either.
2. ``max_rate > 0`` and delta > max_rate × (dt + window_s): implausible, kept out of the quantity and the
   coverage but listed as an event row with its quantity. ``window_s`` tolerates the register update period
   and the poll latency.
3. A counter pair's seconds are coverage only when dt ≤ gap_limit; its delta counts whatever dt.
4. Rates pair consecutive USABLE readings: a bad sample is bridged by its good neighbours (within the gap
   limit); a pair over the gap limit is missing (no quantity, no coverage).

The last test is a property: a simulated meter (true consumption, a wrapping register updated every U s,
jittered polls with bad readings, meters exchanged) gives exactly the true consumption.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpi.kernels import (
    EVENT_KIND,
    EVENT_QTY,
    EVENT_V1,
    REJECTED,
    RESETS,
    ROLLOVER_WINDOW,
    ROLLOVERS,
    rate_integral,
    totaliser_increments,
)

NO_LIMIT = 0.0  # max_rate 0: no plausibility limit
HOUR = 3600.0


def totalise(t, v, edges, *, good=None, rollover=0.0, max_rate=NO_LIMIT, window_s=5.0, gap_limit=300.0):
    """One totaliser call on fresh outputs: ``(qty, cov, counts, event rows as lists)``."""
    t = np.asarray(t, np.float64)
    g = np.ones(t.size, np.uint8) if good is None else np.asarray(good, np.uint8)
    e = np.asarray(edges, np.float64)
    q, c = np.zeros(e.size - 1), np.zeros(e.size - 1)
    counts, events = totaliser_increments(
        t, np.asarray(v, np.float64), g, e, rollover, max_rate, window_s, gap_limit, q, c
    )
    return q, c, counts.tolist(), events.tolist()


def integrate(t, v, edges, *, good=None, gap_limit=300.0):
    """One rate_integral call (per hour → per unit: t/h → t, kW → kWh): ``(qty, cov)``."""
    t = np.asarray(t, np.float64)
    g = np.ones(t.size, np.uint8) if good is None else np.asarray(good, np.uint8)
    e = np.asarray(edges, np.float64)
    q, c = np.zeros(e.size - 1), np.zeros(e.size - 1)
    rate_integral(t, np.asarray(v, np.float64), g, e, gap_limit, HOUR, q, c)
    return q, c


# --- rule 1: rollover or reset -------------------------------------------------------------------


def test_rollover_at_modulus_1e6_counts_the_distance_through_the_wrap():
    # 999,990.00 ≥ 0.9 × 1e6 = 900,000 and 15.00 ≤ 0.1 × 1e6 = 100,000: a wrap.
    # 10.00 to the modulus + 15.00 after it = 15.00 + 1,000,000.00 − 999,990.00 = 25.00.
    q, c, counts, events = totalise([0.0, 60.0], [999_990.00, 15.00], [0.0, 900.0], rollover=1_000_000.00)
    assert q.tolist() == [25.00]
    assert c.tolist() == [60.0]
    assert counts == [1, 0, 0]
    assert events == [[ROLLOVERS, 0.0, 60.0, 999_990.00, 15.00, 25.00, 0.0]]


def test_drop_far_from_the_modulus_top_is_a_reset_counting_the_new_value_from_zero():
    # 500,000 → 400,000 at modulus 1e6: 500,000 < 900,000, so no wrap (a wrap would have counted
    # 400,000 + 1e6 − 500,000 = 900,000 in one poll). A reset: the meter counted from zero since the
    # 500,000 reading and now shows 400,000, so delta = v1 = 400,000 (not v1 − v0 = −100,000, not 0).
    q, c, counts, events = totalise([0.0, 60.0], [500_000.0, 400_000.0], [0.0, 900.0], rollover=1e6)
    assert q.tolist() == [400_000.0]
    assert c.tolist() == [60.0]
    assert counts == [0, 1, 0]
    assert events == [[RESETS, 0.0, 60.0, 500_000.0, 400_000.0, 400_000.0, 0.0]]


def test_drop_from_near_the_top_that_lands_above_the_bottom_tenth_is_a_reset_not_a_rollover():
    # 950,000 ≥ 900,000, but 200,000 > 100,000: a wrap would need 250,000 in one poll. A reset: 200,000.
    q, _, counts, _ = totalise([0.0, 60.0], [950_000.0, 200_000.0], [0.0, 900.0], rollover=1e6)
    assert q.tolist() == [200_000.0] and counts == [0, 1, 0]
    # and on a counter without modulus (rollover 0) every drop is a reset
    q, _, counts, _ = totalise([0.0, 60.0], [999_990.0, 15.0], [0.0, 900.0], rollover=0.0)
    assert q.tolist() == [15.0] and counts == [0, 1, 0]


def test_meter_replaced_mid_month_counts_first_new_value_not_a_rollover():
    # A 1e8 register (e.g. kWh × 0.01) replaced at 7,200,000; the new meter's first reading is 620.
    # 7,200,000 < 0.9 × 1e8 = 90,000,000: not a wrap. Read as one it would have counted
    # 620 + 100,000,000 − 7,200,000 = 92,800,620. As a replacement it counts 620, with no plausibility
    # limit needed to tell (max_rate 0). Around it: 7,199,000 → 7,200,000 (+1,000) and 620 → 1,620 (+1,000).
    q, c, counts, events = totalise(
        [0.0, 900.0, 1800.0, 2700.0],
        [7_199_000.0, 7_200_000.0, 620.0, 1_620.0],
        [0.0, 2700.0],
        rollover=1e8,
        max_rate=NO_LIMIT,
        gap_limit=900.0,
    )
    assert q.tolist() == [1_000.0 + 620.0 + 1_000.0]
    assert c.tolist() == [2700.0]
    assert counts == [0, 1, 0]
    assert events == [[RESETS, 900.0, 1800.0, 7_200_000.0, 620.0, 620.0, 0.0]]


# --- rule 2: plausibility with a window --------------------------------------------------------------

FLOW_T_PER_S = 208.0 / HOUR  # true clinker flow 208 t/h ≈ 5000 t/d
MAX_T_PER_S = 400.0 / HOUR  # plausibility limit 400 t/h


def register(t_poll: float) -> float:
    """The meter's register at a poll: the counter as of its last update, once a second (whole seconds)."""
    return 10_000.0 + FLOW_T_PER_S * math.floor(t_poll)


#: Polls every second with some latency; the poll due at 3 s comes 1.9 s late (4.9 s), the next 0.12 s
#: after it (5.02 s). A register update (at 5 s) falls between those two.
POLLS = [0.05, 1.08, 2.02, 4.9, 5.02, 6.05, 7.03, 8.01]


def test_poll_jitter_with_1s_register_update_rejects_nothing():
    v = [register(x) for x in POLLS]
    # 4.9 s → 5.02 s: one whole second of flow (208/3600 = 0.0578 t) in 0.12 s. Without a window that is
    # 0.0578 t > 400/3600 × 0.12 = 0.0133 t: a true delta rejected. With a window it is tolerated:
    # 5 s: 400/3600 × (0.12 + 5) = 0.569 t; 1 s (= the update period): 400/3600 × 1.12 = 0.124 t.
    # Every pair holds at most dt + 1 s of flow, so any window ≥ the 1 s update period does.
    truth = FLOW_T_PER_S * (math.floor(POLLS[-1]) - math.floor(POLLS[0]))  # 8 s × 208/3600 = 0.4622 t
    for window_s in (5.0, 1.0):
        q, c, counts, events = totalise(POLLS, v, [0.0, 900.0], max_rate=MAX_T_PER_S, window_s=window_s)
        assert counts == [0, 0, 0] and events == []
        assert q[0] == pytest.approx(truth, rel=1e-12)
        assert c[0] == pytest.approx(POLLS[-1] - POLLS[0], rel=1e-12)


def test_poll_jitter_without_a_window_rejects_a_true_delta():
    # The failure the window fixes: window 0 rejects the 4.9 → 5.02 s pair and loses its 0.0578 t.
    v = [register(x) for x in POLLS]
    q, _, counts, events = totalise(POLLS, v, [0.0, 900.0], max_rate=MAX_T_PER_S, window_s=0.0)
    assert counts == [0, 0, 1]
    assert events[0][EVENT_KIND] == REJECTED and events[0][EVENT_QTY] == pytest.approx(FLOW_T_PER_S)
    assert q[0] == pytest.approx(FLOW_T_PER_S * 8 - FLOW_T_PER_S, rel=1e-12)


def test_truly_implausible_jump_is_flagged_with_its_quantity_and_kept_out_of_the_total():
    # max 400 t/h, window 5 s. +1 t in 10 s: limit 400/3600 × (10 + 5) = 1.667 t, plausible.
    # +500 t in 10 s: 500 > 1.667 → rejected: no quantity, no coverage, an event row with qty 500.
    t = [0.0, 10.0, 20.0, 30.0]
    v = [1000.0, 1001.0, 1501.0, 1502.0]
    q, c, counts, events = totalise(t, v, [0.0, 900.0], max_rate=MAX_T_PER_S, window_s=5.0)
    assert q.tolist() == [1.0 + 1.0]  # 1000 → 1001 and 1501 → 1502
    assert c.tolist() == [10.0 + 10.0]
    assert counts[REJECTED] == 1 and counts == [0, 0, 1]
    assert events == [[REJECTED, 10.0, 20.0, 1001.0, 1501.0, 500.0, 0.0]]


# --- rule 4: bad rate samples are bridged ---------------------------------------------------------------


def test_bad_zero_and_bad_6553_5_rate_samples_are_bridged_by_their_good_neighbours():
    # t/h every 10 s; at 10 s a bad 0 t/h (sensor dropout), at 30 s a bad 6553.5 t/h (0xFFFF × 0.1).
    t = [0.0, 10.0, 20.0, 30.0, 40.0]
    v = [200.0, 0.0, 210.0, 6553.5, 220.0]
    q, c = integrate(t, v, [0.0, 900.0], good=[1, 0, 1, 0, 1])
    # Trapezoids over the good neighbours: (200 + 210)/2 t/h × 20 s = 4100/3600 t = 1138.89 kg;
    # (210 + 220)/2 t/h × 20 s = 4300/3600 t = 1194.44 kg; total 8400/3600 t = 2333.33 kg over 40 s.
    kg = q[0] * 1000.0
    assert kg == pytest.approx((200 + 210) / 2 * 20 / HOUR * 1000 + (210 + 220) / 2 * 20 / HOUR * 1000)
    assert kg == pytest.approx(2333.333333, rel=1e-9)
    assert c.tolist() == [40.0]
    # Counted as good, the bad values would have given (200 + 0)/2 × 10 + (0 + 210)/2 × 10
    # + (210 + 6553.5)/2 × 10 + (6553.5 + 220)/2 × 10 = 1000 + 1050 + 33,817.5 + 33,867.5 = 69,735 t/h·s
    # = 19,370.8 kg. Dropping both trapezoids beside each bad sample (the old rule) would have given 0 kg.
    q_all_good, _ = integrate(t, v, [0.0, 900.0])
    assert q_all_good[0] * 1000.0 == pytest.approx(69_735 / HOUR * 1000, rel=1e-12)


# --- rules 3 and 4: a 40-minute gap -----------------------------------------------------------------------

#: Readings every 60 s over one hour, none from 600 s to 3000 s: a 2400 s (40 min) gap; gap limit 300 s.
GAP_T = [*range(0, 601, 60), *range(3000, 3601, 60)]


def test_40_minute_gap_on_a_rate_is_missing_and_lowers_coverage_by_2400_s():
    # 3600 kW all hour. The 600 → 3000 s pair (2400 s > 300 s) is missing: not integrated, not covered.
    q, c = integrate(GAP_T, [3600.0] * len(GAP_T), [0.0, 3600.0], gap_limit=300.0)
    assert c.tolist() == [3600.0 - 2400.0]
    assert q.tolist() == [3600.0 * (3600.0 - 2400.0) / HOUR]  # 1200 kWh measured, the 2400 kWh not invented


def test_40_minute_gap_on_a_counter_keeps_the_delta_and_lowers_coverage_by_2400_s():
    # An energy counter at 1 kWh/s (3600 kW): v = t. The 600 → 3000 s delta (2400 kWh) is complete: the
    # meter counted it; only its seconds are not coverage.
    q, c, counts, _ = totalise(GAP_T, [float(x) for x in GAP_T], [0.0, 3600.0], max_rate=1.5, gap_limit=300.0)
    assert q.tolist() == [3600.0]
    assert c.tolist() == [3600.0 - 2400.0]
    assert counts == [0, 0, 0]


# --- property: a simulated meter gives the true consumption -------------------------------------------------

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z: a multiple of every update period below
GAP_LIMIT_S = 300.0


def register_values(unwrapped: np.ndarray, modulus: float) -> tuple[np.ndarray, np.ndarray]:
    """A register of ``modulus`` showing counts ``unwrapped``: its values in [0, modulus) and how many times
    it has wrapped."""
    wraps = np.floor(unwrapped / modulus)
    v = unwrapped - wraps * modulus
    high = v >= modulus  # the division rounded a hair down or up: keep 0 ≤ v < modulus
    v[high] -= modulus
    wraps[high] += 1
    low = v < 0.0
    v[low] += modulus
    wraps[low] -= 1
    return v, wraps


@st.composite
def simulated_counter(draw):
    """Readings of a simulated counter and the truth, from a seeded generator (hypothesis draws the seed
    and the regime).

    - True consumption: per-second rates in [0, R] (uniform, with stops at 0 and bursts at exactly R);
      ``C[s]`` is the consumption up to second s.
    - The register updates every ``U`` s (U a whole number of seconds): a poll whose read happens at time x
      sees the meter's count as of ``floor(x / U) × U``, modulo the register's modulus ``M``.
    - Polls: timestamps every ``P`` s with jitter (sorted), some long stalls; each read happens 0..L s after
      its timestamp (read times never go backwards). Some readings are bad: flagged, with garbage values.
    - Meter exchanges: right after a usable reading j, the old meter is taken out and a new one starts
      from 0 — it counts everything after reading j's register time, so its first reading is whatever it
      counted since. (Consumption on the old meter after its last usable reading can only be known from a
      recorded exchange, ``[[meter_exchange]]`` in the site model, not from the readings.)

    Cases no rule can tell apart are excluded, with their reason:

    - M ≥ 10.5 × the largest true increment between consecutive usable readings, so a true wrap always
      leaves from ≥ 0.9 M and lands ≤ 0.1 M (a bigger increment is a reset by rule 1, and ≥ M is an
      unknown number of wraps);
    - an exchange where the old meter's last value is ≥ 0.9 M: the new meter's first value is ≤ 0.1 M (it
      is one such increment), so the drop is indistinguishable from a rollover;
    - an exchange where the old meter's last value is ≤ the new meter's first value: no drop, so it is
      indistinguishable from normal counting (and the old meter's value is lost).
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rate = draw(st.sampled_from([208.0 / HOUR, 1.0, 25.0]))  # R: t/s of a clinker line, kWh/s, ...
    update_s = draw(st.sampled_from([1, 2, 5]))  # U
    latency_s = draw(st.sampled_from([0.0, 0.3, 2.0]))  # L
    poll_s = draw(st.sampled_from([0.5, 1.0, 3.0, 10.0]))  # P
    n = int(rng.integers(2, 30) if draw(st.integers(0, 4)) == 0 else rng.integers(300, 1200))
    jitter = draw(st.sampled_from([0.0, 0.5, 1.9]))  # × P
    p_bad = draw(st.sampled_from([0.0, 0.03, 0.25]))
    exchanges_wanted = draw(st.integers(0, 3))
    window_s = update_s + latency_s + draw(st.sampled_from([0.0, 0.5, 3.0]))  # window ≥ U + L
    spread = draw(st.sampled_from([10.5, 12.0, 25.0]))  # M ÷ the largest increment between usable readings

    stamp = np.sort(np.arange(n) * poll_s + rng.uniform(0.0, jitter * poll_s, n))
    stalls = rng.random(n) < 0.002
    stamp += np.cumsum(np.where(stalls, rng.uniform(30.0, 400.0, n), 0.0))  # the poller stalls
    read = np.maximum.accumulate(stamp + rng.uniform(0.0, latency_s, n))  # reads in order, ≤ stamp + L
    at = (np.floor(read / update_s) * update_s).astype(np.int64)  # register time seen by each poll

    seconds = int(at[-1]) + 1
    r = rng.uniform(0.0, rate, seconds)
    r[rng.random(seconds) < 0.1] = 0.0  # stops
    r[rng.random(seconds) < 0.1] = rate  # bursts at the limit
    consumed = np.concatenate([[0.0], np.cumsum(r)])  # C[s]
    c_at = consumed[at]

    good = rng.random(n) >= p_bad
    usable = np.flatnonzero(good)
    increments = np.diff(c_at[usable])  # true consumption between consecutive usable readings
    modulus = spread * max(increments.max() if increments.size else 0.0, rate * update_s)

    # exchanges, chosen meter by meter where they are distinguishable (docstring)
    base = np.zeros(n)  # per reading, the true consumption C at the start of the meter it reads
    # per reading, its meter's register value at the meter's start: 0 for a new meter; the first meter
    # starts in the upper half of its register, so that a wrap comes soon
    offset = np.full(n, rng.uniform(0.5, 1.0) * modulus)
    exchanges = []  # positions q in ``usable``: the new meter starts right after reading usable[q]
    start_q = 0
    for _ in range(exchanges_wanted):
        q_all = np.arange(start_q, usable.size - 1)
        i = usable[q_all]
        old, _ = register_values(offset[i] + c_at[i] - base[i], modulus)
        new_first = increments[q_all]
        ok = (old < (1.0 - ROLLOVER_WINDOW) * modulus) & (old > new_first)
        if not ok.any():
            break
        q = int(rng.choice(q_all[ok]))
        after = slice(usable[q] + 1, n)
        base[after] = c_at[usable[q]]
        offset[after] = 0.0
        exchanges.append(q)
        start_q = q + 1
    # the meter's count since its start plus where its register began, as the register shows it
    v, wraps = register_values(offset + c_at - base, modulus)

    bad = np.flatnonzero(~good)
    garbage = np.array([0.0, 6553.5, np.nan, np.inf, -1.0, 1e12, 0.5 * modulus])
    v[bad] = garbage[rng.integers(0, garbage.size, bad.size)]
    flags = good.astype(np.uint8)
    # a non-finite value is bad whatever its flag: some of those come flagged good
    flags[bad[~np.isfinite(v[bad]) & (rng.random(bad.size) < 0.5)]] = 1

    # truth and the expected events
    truth = float(c_at[usable[-1]] - c_at[usable[0]]) if usable.size else 0.0
    same_meter = np.ones(max(usable.size - 1, 0), bool)
    same_meter[exchanges] = False
    rollovers = int(np.sum(np.diff(wraps[usable])[same_meter])) if usable.size else 0
    dt = np.diff((T0 + stamp)[usable])
    return {
        "t": T0 + stamp,
        "v": v,
        "good": flags,
        "max_rate": rate,
        "window_s": float(window_s),
        "modulus": float(modulus),
        "truth": truth,
        "rollovers": rollovers,
        "new_first": [float(increments[q]) for q in exchanges],
        "covered_s": float(dt[dt <= GAP_LIMIT_S].sum()),
    }


@settings(max_examples=300, deadline=None)
@given(sim=simulated_counter(), bucket_s=st.sampled_from([60.0, 900.0, 3600.0]))
def test_simulated_counter_total_equals_the_true_consumption(sim, bucket_s):
    t = sim["t"]
    lo = math.floor(t[0] / bucket_s) * bucket_s - bucket_s
    hi = math.ceil(t[-1] / bucket_s) * bucket_s + bucket_s
    edges = np.arange(lo, hi + bucket_s / 2, bucket_s)  # buckets covering all readings
    q, c = np.zeros(edges.size - 1), np.zeros(edges.size - 1)
    counts, events = totaliser_increments(
        t, sim["v"], sim["good"], edges, sim["modulus"], sim["max_rate"], sim["window_s"], GAP_LIMIT_S, q, c
    )
    assert counts[REJECTED] == 0  # the window covers the register update period and the latency
    assert counts[RESETS] == len(sim["new_first"])  # each exchange is a reset, nothing else is
    assert counts[ROLLOVERS] == sim["rollovers"]  # each true wrap is a rollover
    resets = [e for e in events if e[EVENT_KIND] == RESETS]
    assert [e[EVENT_V1] for e in resets] == [e[EVENT_QTY] for e in resets] == sim["new_first"]
    # Relative to the truth; the register values' rounding (~1e-16 × modulus per reading) is far below.
    assert abs(q.sum() - sim["truth"]) <= 1e-9 * sim["truth"] + 1e-12 * sim["modulus"]
    assert c.sum() == pytest.approx(sim["covered_s"], rel=1e-12, abs=1e-6)


def test_reading_above_the_modulus_is_a_reset_not_a_negative_rollover() -> None:
    # A register cannot show more than its modulus, so 5500 on a channel set to rollover = 1000 means the
    # modulus is wrong (e.g. a unit mix-up). Wrapping would count 50 + 1000 − 5500 = −4450; the drop is
    # taken as a reset instead, counting the new value: 50.
    t, v, good, edges = (
        np.array([0.0, 60.0]),
        np.array([5500.0, 50.0]),
        np.ones(2, np.uint8),
        np.array([0.0, 900.0]),
    )
    qty, cov = np.zeros(1), np.zeros(1)
    counts, _ = totaliser_increments(t, v, good, edges, 1000.0, 0.0, 5.0, 300.0, qty, cov)
    assert qty[0] == 50.0
    assert counts[ROLLOVERS] == 0 and counts[RESETS] == 1
