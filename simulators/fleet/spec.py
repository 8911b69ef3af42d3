"""What the fleet is: sites × agents × channels, how fast they publish, and each channel's true values.

Everything follows from the seed, so a test, a benchmark and a truth file made separately agree reading for
reading. Values are rounded to a meter register's resolution (0.001 kWh or t, 0.01 kW), as a real meter's
are; a counter's value is computed from its start and rate at each step, never by accumulating increments,
so its last reading is exact however long the run.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from functools import cached_property

from agent.wire import ChannelKind

#: Resolution of each kind's register, in decimal places of the channel's unit.
DECIMALS = {ChannelKind.ENERGY_TOTAL: 3, ChannelKind.MASS_TOTAL: 3, ChannelKind.POWER: 2}
UNITS = {ChannelKind.ENERGY_TOTAL: "kWh", ChannelKind.MASS_TOTAL: "t", ChannelKind.POWER: "kW"}
#: Agents on one kiln line, at most; a site has at most this many lines.
AGENTS_PER_LINE, MAX_LINES = 10, 3


@dataclass(frozen=True)
class ChannelSpec:
    """One point of one agent. Counters start at ``start`` and grow by ``rate`` per hour (kWh/h, t/h);
    a power channel swings ±5 % around ``rate`` kW with a period of ``swing_s``."""

    point: str
    kind: str
    rate: float
    start: float
    swing_s: float
    phase: float

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    def value(self, t_s: float) -> float:
        """The register's value ``t_s`` seconds after the run's first reading."""
        if self.kind == ChannelKind.POWER:
            raw = self.rate * (1.0 + 0.05 * math.sin(2.0 * math.pi * t_s / self.swing_s + self.phase))
        else:
            raw = self.start + self.rate * t_s / 3600.0
        return round(raw, DECIMALS[self.kind])


@dataclass(frozen=True)
class AgentSpec:
    site: str
    agent: str
    line: str
    epoch: str
    channels: tuple[ChannelSpec, ...]


def channel_kind(index: int) -> str:
    """Mostly energy counters, as on a plant's switchboards: of every ten points, one is a power reading
    and one a weigh feeder's mass counter."""
    return {4: ChannelKind.POWER, 9: ChannelKind.MASS_TOTAL}.get(index % 10, ChannelKind.ENERGY_TOTAL)


def point_name(index: int) -> str:
    kind = channel_kind(index)
    prefix = {ChannelKind.POWER: "drive", ChannelKind.MASS_TOTAL: "feeder"}.get(kind, "meter")
    return f"{prefix}{index:03d}_{UNITS[kind].lower()}"


@dataclass(frozen=True)
class FleetSpec:
    """``sites`` × ``agents_per_site`` agents with ``channels`` points each, one batch per agent every
    ``1/rate`` seconds, ``periods`` batches per agent; the first reading is stamped ``t0_ms``.

    ``duplicates`` is the fraction of batches published twice, the second copy just before the agent's next
    batch (an outbox replay after a lost PUBACK). ``outage_s`` holds every batch of the first site's agents
    for that many seconds of batch time, from ``outage_start_s`` (default: a third into the run), and sends
    them late, in order, just before the first batch after the window (the outbox's replay).
    """

    sites: int
    agents_per_site: int
    channels: int
    rate: float
    periods: int
    t0_ms: int
    seed: int = 1
    duplicates: float = 0.0
    outage_s: float = 0.0
    outage_start_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("sites", "agents_per_site", "channels", "periods"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.rate <= 1000:
            raise ValueError(
                f"rate must be in (0, 1000] batches/s per agent (ms timestamps), got {self.rate}"
            )
        if not 0 <= self.duplicates <= 1:
            raise ValueError(f"duplicates is a fraction of batches in [0, 1], got {self.duplicates}")
        if self.outage_s < 0:
            raise ValueError(f"outage_s must be >= 0, got {self.outage_s}")

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate

    def t_ms(self, k: int) -> int:
        """Time stamp of every reading of batch ``k`` (0-based)."""
        return self.t0_ms + round(k * 1000 / self.rate)

    def t_s(self, k: int) -> float:
        """Seconds from the first reading to batch ``k``'s, as its readings are stamped."""
        return (self.t_ms(k) - self.t0_ms) / 1000.0

    @cached_property
    def site_ids(self) -> tuple[str, ...]:
        width = max(2, len(str(self.sites)))
        return tuple(f"site{i + 1:0{width}d}" for i in range(self.sites))

    @cached_property
    def line_ids(self) -> tuple[str, ...]:
        count = min(MAX_LINES, max(1, math.ceil(self.agents_per_site / AGENTS_PER_LINE)))
        return tuple(f"L{i + 1}" for i in range(count))

    @cached_property
    def agents(self) -> tuple[AgentSpec, ...]:
        """Every agent, site by site. Agent ids repeat across sites (every plant has its ``gw01``), as the
        collector's per-site keys allow."""
        width = max(2, len(str(self.agents_per_site)))
        out = []
        for site in self.site_ids:
            for j in range(self.agents_per_site):
                agent = f"gw{j + 1:0{width}d}"
                channels = tuple(self._channel(site, agent, i) for i in range(self.channels))
                line = self.line_ids[j % len(self.line_ids)]
                out.append(AgentSpec(site, agent, line, self._epoch(site, agent), channels))
        return tuple(out)

    def _epoch(self, site: str, agent: str) -> str:
        return hashlib.sha256(f"{self.seed}/{site}/{agent}".encode()).hexdigest()[:16]

    def _channel(self, site: str, agent: str, index: int) -> ChannelSpec:
        rng = random.Random(f"{self.seed}/{site}/{agent}/{index}")
        kind = channel_kind(index)
        rate = {
            ChannelKind.ENERGY_TOTAL: rng.uniform(50.0, 3000.0),  # kWh/h: a fan to a kiln drive
            ChannelKind.MASS_TOTAL: rng.uniform(20.0, 300.0),  # t/h: a coal feeder to a clinker belt
            ChannelKind.POWER: rng.uniform(50.0, 3000.0),  # kW
        }[kind]
        start = 0.0 if kind == ChannelKind.POWER else round(rng.uniform(1e3, 1e6), 3)
        return ChannelSpec(
            point_name(index), kind, rate, start, rng.uniform(60.0, 600.0), rng.uniform(0, 6.3)
        )

    def outage_periods(self) -> range:
        """Batch indices held back by the outage (empty without one)."""
        if self.outage_s <= 0:
            return range(0)
        start_s = self.duration_s / 3 if self.outage_start_s is None else self.outage_start_s
        first = math.ceil(start_s * self.rate - 1e-9)
        return range(first, min(self.periods, first + max(1, round(self.outage_s * self.rate))))

    @property
    def duration_s(self) -> float:
        return self.periods / self.rate

    def held(self, agent: AgentSpec) -> bool:
        """Whether the outage hits this agent: every agent of the first site (its link to the broker)."""
        return agent.site == self.site_ids[0]

    def duplicated(self, agent: AgentSpec, k: int) -> bool:
        """Whether batch ``k`` of ``agent`` is published twice: a fixed draw per batch from the seed."""
        if self.duplicates <= 0:
            return False
        digest = hashlib.sha256(f"{self.seed}/{agent.site}/{agent.agent}/{k}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.duplicates
