"""One site model file per site, as ``collector.sites.load_sites`` reads a folder of them.

Counters are consumption (kWh) and clinker output (t) of the agent's kiln line; power readings are ``info``
(stored and integrated for comparison, never counted twice). No coal channels, so no lab values are needed
for any KPI. Ids are made by ``spec`` from letters, digits and ``-``, so they need no TOML escaping.
"""

from __future__ import annotations

from pathlib import Path

from agent.wire import ChannelKind
from simulators.fleet.spec import AgentSpec, ChannelSpec, FleetSpec

#: (role, carrier) of each kind in the site model.
ROLES = {
    ChannelKind.ENERGY_TOTAL: ("consumption", "electricity"),
    ChannelKind.MASS_TOTAL: ("output", "clinker"),
    ChannelKind.POWER: ("info", "electricity"),
}


def site_models(spec: FleetSpec, folder: Path) -> list[Path]:
    """Write ``<site>.toml`` for each site of ``spec`` into ``folder`` (made if missing); returns them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for site in spec.site_ids:
        path = folder / f"{site}.toml"
        path.write_text(site_toml(spec, site, [a for a in spec.agents if a.site == site]))
        files.append(path)
    return files


def site_toml(spec: FleetSpec, site: str, agents: list[AgentSpec]) -> str:
    parts = [
        f"# Simulated fleet site (kilnwatch sim fleet, seed {spec.seed}): {len(agents)} agents.",
        "",
        "[site]",
        f'id = "{site}"',
        f'name = "Simulated plant {site}"',
        'timezone = "Asia/Shanghai"',
        "base_interval_s = 900",
        "",
    ]
    for line in spec.line_ids:
        parts += [f"[lines.{line}]", f'name = "Kiln line {line} of {site}"', 'type = "clinker"', ""]
    for agent in agents:
        parts += [entry for channel in agent.channels for entry in _channel(agent, channel)]
    return "\n".join(parts)


def _channel(agent: AgentSpec, channel: ChannelSpec) -> list[str]:
    role, carrier = ROLES[channel.kind]
    return [
        f'[channels."{agent.agent}/{channel.point}"]',
        f'kind = "{channel.kind}"',
        f'unit = "{channel.unit}"',
        f'line = "{agent.line}"',
        f'role = "{role}"',
        f'carrier = "{carrier}"',
        'boundary = "clinker"',
        "",
    ]
