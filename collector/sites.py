"""Every site one collector serves: one site model file, or a folder of them (one file per site).

A regional collector serves many plants; each keeps its own topics, agents, lines and lab values. Sites
are looked up by the id in the topic (``<root>/<site>/<agent>/data``), so two plants may use the same
agent and line names. Channels are keyed ``<site>/<agent>/<point>`` in the ledger for the same reason.

``reload`` is what SIGHUP does: the new models replace the old ones only if every file loads, so a typo
in one plant's file never stops the others (the old models stay, the error is logged).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.config_load import ConfigError
from collector.site import Channel, Site, load_site


@dataclass(frozen=True)
class Sites(Mapping[str, Site]):
    """Site id → site model, with each model's file and agent set (computed once, not per message)."""

    models: dict[str, Site]
    files: dict[str, Path] = field(default_factory=dict)
    _agents: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._agents.update({sid: frozenset(m.agents) for sid, m in self.models.items()})

    def __getitem__(self, site_id: str) -> Site:
        return self.models[site_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def agents(self, site_id: str) -> frozenset[str]:
        return self._agents.get(site_id, frozenset())

    def channel(self, key: str) -> tuple[Site, Channel] | None:
        """``<site>/<agent>/<point>`` → (site model, channel), or None if no site model names it."""
        site_id, _, name = key.partition("/")
        site = self.models.get(site_id)
        ch = site.channels.get(name) if site is not None else None
        return None if ch is None else (site, ch)

    @classmethod
    def single(cls, site: Site) -> Sites:
        return cls({site.site.id: site})


def site_files(path: Path) -> list[Path]:
    """The site model files a path names: the file itself, or a folder's ``*.toml`` files in name order."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.toml") if p.is_file())
    return [path]


def load_sites(path: str | Path) -> Sites:
    """Load every site model under ``path``; one ``ConfigError`` listing every problem of every file (each
    line names its file), including two files claiming the same site id."""
    path = Path(path)
    files = site_files(path)
    if not files:
        raise ConfigError([f"{path}: no site model files (*.toml) in this folder — add one per site"])
    problems: list[str] = []
    models: dict[str, Site] = {}
    where: dict[str, Path] = {}
    for file in files:
        try:
            site = load_site(file)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        sid = site.site.id
        if sid in models:
            problems.append(
                f"{file}: site.id: {sid!r} is already the id of {where[sid]} — give each site its own id"
            )
            continue
        models[sid], where[sid] = site, file
    if problems:
        raise ConfigError(problems)
    return Sites(models, where)
