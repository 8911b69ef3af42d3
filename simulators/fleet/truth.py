"""What a correct collector ends up with: per channel the first and last reading, how many readings, and
the total; per run the batches and readings published, unique and with the replayed copies.

Computed from ``spec`` (each channel's value at each step, each batch's duplicate draw), not from the
encoded messages, so comparing it with what a consumer decoded checks the traffic and the wire path too.
A counter's total is last − first in its unit; a power channel's is its trapezoid integral in kWh (the
collector integrates rates the same way within the gap limit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.wire import ChannelKind
from simulators.fleet.spec import FleetSpec


def truth(spec: FleetSpec) -> dict[str, Any]:
    channels: dict[str, dict[str, Any]] = {}
    times = [spec.t_s(k) for k in range(spec.periods)]
    for agent in spec.agents:
        for channel in agent.channels:
            values = [channel.value(t) for t in times]
            if channel.kind == ChannelKind.POWER:
                total = sum(
                    (values[i] + values[i + 1]) / 2 * (times[i + 1] - times[i]) / 3600.0
                    for i in range(len(values) - 1)
                )
                total_unit = "kWh"
            else:
                total, total_unit = values[-1] - values[0], channel.unit
            channels[f"{agent.site}/{agent.agent}/{channel.point}"] = {
                "kind": channel.kind,
                "unit": channel.unit,
                "first": values[0],
                "last": values[-1],
                "readings": len(values),
                "total": total,
                "total_unit": total_unit,
            }
    unique = len(spec.agents) * spec.periods
    replays = sum(spec.duplicated(a, k) for a in spec.agents for k in range(spec.periods))
    published = unique + replays
    return {
        "spec": {
            "sites": spec.sites,
            "agents_per_site": spec.agents_per_site,
            "channels_per_agent": spec.channels,
            "rate": spec.rate,
            "periods": spec.periods,
            "seed": spec.seed,
            "t0_ms": spec.t0_ms,
            "duplicates": spec.duplicates,
            "outage_s": spec.outage_s,
        },
        "batches": {"unique": unique, "published": published},
        "readings": {"unique": unique * spec.channels, "published": published * spec.channels},
        "channels": channels,
    }


def write_truth(spec: FleetSpec, path: Path) -> dict[str, Any]:
    doc = truth(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc
