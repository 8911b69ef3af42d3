"""Process model of the 5000 t/d clinker line: rates around the operating point and their exact integrals.

The rates are a function of the wander state only (``process_rates``), so the same equations drive a live
run (one scalar state per step) and a generated run (a whole array of states at once). Between steps every
rate is held constant, so the integral over a step is ``rate × dt`` exactly: the cumulative truth at any step
boundary is the left Riemann sum of the rates the meters showed, with no integration error to argue about.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulators.kiln.wander import Drift, Wander

MJ_PER_KGCE = 29.3076  # MJ per kgce (GB/T 2589): 1 kgce = 29.3076 MJ

DRIFTS = (
    Drift("clinker", 1200.0, 0.02),
    Drift("heat", 1800.0, 0.012),
    Drift("feed_ratio", 900.0, 0.004),
    Drift("raw_mill", 300.0, 0.03),
    Drift("kiln", 600.0, 0.02),
    Drift("coal_mill", 300.0, 0.03),
    Drift("cooler", 600.0, 0.02),
    Drift("aux", 180.0, 0.05),
    Drift("whr", 900.0, 0.03),
    Drift("cement", 300.0, 0.03),
    Drift("cement_mill", 300.0, 0.02),
    Drift("kiln_inlet_c", 600.0, 15.0),
    Drift("preheater_exit_c", 600.0, 6.0),
    Drift("voltage", 120.0, 0.005),
    Drift("frequency_hz", 60.0, 0.02),
)

# Truth column -> the rate (per hour) whose integral it is.
TRUTH_RATES = {
    "raw_mill_kwh": "raw_mill_kw",
    "kiln_kwh": "kiln_kw",
    "coal_mill_kwh": "coal_mill_kw",
    "cooler_kwh": "cooler_kw",
    "aux_kwh": "aux_kw",
    "whr_kwh": "whr_kw",
    "cement_mill_kwh": "cement_mill_kw",
    "coal_kiln_t": "coal_kiln_tph",
    "coal_calciner_t": "coal_calciner_tph",
    "clinker_t": "clinker_tph",
    "cement_t": "cement_tph",
    "coal_kgce": "coal_kgce_per_h",
}
TRUTH_COLUMNS = (*TRUTH_RATES, "coal_ncv_mj_per_kg")


@dataclass(frozen=True)
class OperatingPoint:
    """The line's defaults (docs/demo-plant.md, "Operating point"); rates wander a few % around them."""

    clinker_tph: float = 5000.0 / 24.0
    feed_ratio: float = 1.57
    heat_gj_per_t: float = 3.10
    coal_ncv_mj_per_kg: float = 23.0
    kiln_coal_share: float = 0.40
    raw_mill_kw: float = 3800.0
    kiln_kw: float = 5400.0
    id_fan_share_of_kiln: float = 0.48
    coal_mill_kw: float = 1000.0
    cooler_kw: float = 1200.0
    aux_kw: float = 60.0
    whr_kw: float = 7290.0
    clinker_to_cement: float = 0.75
    cement_mill_kwh_per_t: float = 30.0
    kiln_inlet_c: float = 1080.0
    preheater_exit_c: float = 310.0
    frequency_hz: float = 50.0

    @property
    def coal_tph(self) -> float:
        """Total coal at the operating point: clinker × heat / NCV (t/h × GJ/t ÷ GJ/t)."""
        return self.clinker_tph * self.heat_gj_per_t / self.coal_ncv_mj_per_kg


def process_rates(plant: OperatingPoint, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every rate of the line for wander state(s) ``x`` of shape ``(..., len(DRIFTS))``, as ``(...)`` arrays.

    Production-driven loads (kiln, cooler, WHR) follow the clinker rate and the coal mill follows the coal
    rate, so the per-tonne figures stay in their plausible bands while the absolute rates move.
    """
    d = {drift.name: x[..., i] for i, drift in enumerate(DRIFTS)}
    clinker = plant.clinker_tph * (1.0 + d["clinker"])
    heat = plant.heat_gj_per_t * (1.0 + d["heat"])
    coal = clinker * heat / plant.coal_ncv_mj_per_kg
    cement = plant.clinker_tph / plant.clinker_to_cement * (1.0 + d["cement"])
    kiln_kw = plant.kiln_kw * (1.0 + d["clinker"]) * (1.0 + d["kiln"])
    return {
        "clinker_tph": clinker,
        "kiln_feed_tph": clinker * plant.feed_ratio * (1.0 + d["feed_ratio"]),
        "coal_kiln_tph": coal * plant.kiln_coal_share,
        "coal_calciner_tph": coal * (1.0 - plant.kiln_coal_share),
        "coal_kgce_per_h": coal * 1000.0 * plant.coal_ncv_mj_per_kg / MJ_PER_KGCE,
        "coal_ncv_mj_per_kg": np.full_like(clinker, plant.coal_ncv_mj_per_kg),
        "cement_tph": cement,
        "raw_mill_kw": plant.raw_mill_kw * (1.0 + d["raw_mill"]),
        "kiln_kw": kiln_kw,
        "id_fan_kw": kiln_kw * plant.id_fan_share_of_kiln,
        "coal_mill_kw": plant.coal_mill_kw * coal / plant.coal_tph * (1.0 + d["coal_mill"]),
        "cooler_kw": plant.cooler_kw * (1.0 + d["clinker"]) * (1.0 + d["cooler"]),
        "aux_kw": plant.aux_kw * (1.0 + d["aux"]),
        "whr_kw": plant.whr_kw * (1.0 + d["clinker"]) * (1.0 + d["whr"]),
        "cement_mill_kw": plant.cement_mill_kwh_per_t * cement * (1.0 + d["cement_mill"]),
        "kiln_inlet_temp_c": plant.kiln_inlet_c + d["kiln_inlet_c"],
        "preheater_exit_temp_c": plant.preheater_exit_c * (1.0 + 0.5 * d["heat"]) + d["preheater_exit_c"],
        "voltage_pu": 1.0 + d["voltage"],
        "frequency_hz": plant.frequency_hz + d["frequency_hz"],
    }


@dataclass
class KilnLine:
    """The line stepped in time: current rates and the cumulative true quantities since the start."""

    seed: int = 1
    plant: OperatingPoint = field(default_factory=OperatingPoint)

    def __post_init__(self) -> None:
        self.wander = Wander(DRIFTS, np.random.default_rng(self.seed))
        self.elapsed_s = 0.0
        self.truth = dict.fromkeys(TRUTH_RATES, 0.0)
        self.truth["coal_ncv_mj_per_kg"] = self.plant.coal_ncv_mj_per_kg
        self._update_rates()

    def _update_rates(self) -> None:
        self.rates = {k: float(v) for k, v in process_rates(self.plant, self.wander.x).items()}

    def step(self, dt_s: float) -> None:
        """Integrate the current rates over ``dt_s`` seconds, then let the state wander to its next value."""
        for column, rate in TRUTH_RATES.items():
            self.truth[column] += self.rates[rate] * dt_s / 3600.0
        self.wander.advance(dt_s)
        self.elapsed_s += dt_s
        self._update_rates()


def integrate_path(rates: dict[str, np.ndarray], dt_s: float) -> dict[str, np.ndarray]:
    """Truth columns at each state of a path: cumulative sums of ``rate × dt`` with a leading zero.

    ``rates`` hold the values at ``0, dt, ..., n·dt``; the last value starts a step that is not taken, so it
    does not count. The arithmetic matches ``KilnLine.step`` operation for operation.
    """
    out = {}
    for column, rate in TRUTH_RATES.items():
        increments = rates[rate][:-1] * dt_s / 3600.0
        out[column] = np.concatenate(([0.0], np.cumsum(increments)))
    out["coal_ncv_mj_per_kg"] = rates["coal_ncv_mj_per_kg"]
    return out
