"""An agent's birth (kind and unit of every channel it publishes) checked against the site model.

Why: a meter configured in Wh where the site model says kWh would be counted 1,000 times too large, and a
power reading taken for an energy counter would be totalised as nonsense, both without a word. A channel
whose birth disagrees with the model is held: its readings are kept raw but not counted, and the problem
is visible (logged once, counted in /metrics, listed in /healthz) until the agent or the model is fixed.
When it clears, the channel is recomputed from its raw readings, so nothing held is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from collector.site import UNIT_FACTORS, Site


@dataclass(frozen=True, slots=True)
class BirthProblem:
    site: str
    agent: str
    point: str
    birth: str  # what the agent says, e.g. "energy_total in Wh"
    model: str  # what the site model says

    @property
    def channel(self) -> str:
        return f"{self.site}/{self.agent}/{self.point}"

    def text(self) -> str:
        return (
            f"{self.channel}: the agent's birth says {self.birth}, the site model says {self.model} — fix the"
            " agent's point or the site model's channel; the channel is not counted until they agree"
        )


def same_unit(kind: str, a: str, b: str) -> bool:
    """Whether two spellings mean one unit: for counted kinds, the same factor to the canonical unit (Wh and
    kWh differ, Nm3 and m3 do not); for anything else the same text once common spellings are folded
    (°C, degC and C; % and percent), so a temperature is not held for how its unit is written."""
    factors = UNIT_FACTORS.get(kind)
    if factors is not None and a in factors and b in factors:
        return factors[a] == factors[b]
    return _fold(a) == _fold(b)


def _fold(unit: str) -> str:
    text = unit.strip().lower().replace("°", "").replace("deg", "").replace("percent", "%")
    return text.replace(" ", "")


def birth_problems(site: Site, agent: str, doc: Mapping) -> list[BirthProblem]:
    """Channels of one agent's birth whose kind or unit differs from the site model (channels the model does
    not name are not problems: they are kept raw, and counted as unmapped)."""
    out = []
    channels = doc.get("channels")
    if not isinstance(channels, list):
        return out
    for entry in channels:
        if not isinstance(entry, Mapping):
            continue
        point, kind, unit = entry.get("name"), entry.get("kind"), entry.get("unit")
        ch = site.channels.get(f"{agent}/{point}")
        if ch is None:
            continue
        if kind != ch.kind or not same_unit(ch.kind, str(unit), ch.unit):
            out.append(
                BirthProblem(site.site.id, agent, str(point), f"{kind} in {unit}", f"{ch.kind} in {ch.unit}")
            )
    return out
