"""Ornstein–Uhlenbeck wander: the slow, bounded noise that makes the simulated plant look alive.

Each component is mean-reverting with its own time constant and stationary standard deviation. Steps use the
exact OU transition (``x' = a·x + σ·sqrt(1 - a²)·ε`` with ``a = exp(-dt/τ)``), so any step size, fixed or
irregular, gives the same statistics. A live run (one step per tick) and a generated run (a whole path at
once) draw the random numbers in the same order, so equal seeds and equal steps give equal paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Drift:
    """One wandering component: a name, a time constant (s) and a stationary standard deviation."""

    name: str
    tau_s: float
    sigma: float


class Wander:
    """A vector of independent OU processes, all starting at 0 (the operating point)."""

    def __init__(self, drifts: Sequence[Drift], rng: np.random.Generator) -> None:
        self.names = tuple(d.name for d in drifts)
        self._tau = np.array([d.tau_s for d in drifts])
        self._sigma = np.array([d.sigma for d in drifts])
        self._rng = rng
        self.x = np.zeros(len(drifts))

    def _coefficients(self, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        a = np.exp(-dt_s / self._tau)
        return a, self._sigma * np.sqrt(1.0 - a * a)

    def advance(self, dt_s: float) -> None:
        """Move every component forward by ``dt_s`` seconds."""
        a, b = self._coefficients(dt_s)
        self.x = a * self.x + b * self._rng.standard_normal(len(self._tau))

    def path(self, n: int, dt_s: float) -> np.ndarray:
        """States at ``0, dt, ..., n·dt`` from now, shape ``(n + 1, components)``; the wander ends at n·dt."""
        a, b = self._coefficients(dt_s)
        shocks = self._rng.standard_normal((n, len(self._tau))) * b
        out = np.empty((n + 1, len(self._tau)))
        out[0] = x = self.x
        for k in range(n):
            x = a * x + shocks[k]
            out[k + 1] = x
        self.x = x.copy()
        return out
