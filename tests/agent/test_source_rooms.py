"""One room per source: everything about a protocol lives in ``agent/sources/<name>/``, and the rest of the
code reaches it only through the registry and the ``Source`` interface.

The import walk is the rule that keeps it so: a module outside a source's folder that imports that source's
config types or poller would bring back the hand-written lists (runner, ``check``, health) that made adding a
protocol a six-file change.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agent.config import load_config
from agent.sources.base import Source
from agent.sources.registry import NAMES, SOURCES

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "collector", "kpi", "simulators")
#: What a source's folder holds: the issue's list (schema, probe, poller, docs section, sample config).
ROOM = ("__init__.py", "source.py", "config.py", "poller.py", "probe.py", "README.md", "example.toml")


def imported_modules(text: str, package: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``text``, relative ones resolved against ``package``."""
    tree = ast.parse(text)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def owner(module: str) -> str | None:
    """The source whose room ``module`` (a dotted name) is in, if any."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["agent", "sources"] and parts[2] in NAMES:
        return parts[2]
    return None


def test_no_module_outside_a_source_room_imports_its_config_types_or_poller() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            home = owner(module)
            text, package_of = path.read_text(encoding="utf-8"), module.rpartition(".")[0]
            for line, target in imported_modules(text, package_of):
                room = owner(target)
                if room is not None and room != home:
                    offenders.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert offenders == [], "import a source only through agent.sources.registry:\n" + "\n".join(offenders)


def test_the_walk_sees_forbidden_imports_absolute_and_relative() -> None:
    """The walk itself can fail: the imports the runner used to make are caught, in either spelling."""
    absolute = imported_modules("from agent.sources.modbus.poller import ModbusPoller\n", "agent")
    relative = imported_modules("from .sources.opcua import config\n", "agent")
    aliased = imported_modules("import agent.sources.modbus.config as mc\n", "agent")
    assert {owner(t) for _, t in absolute} >= {"modbus"}
    assert "agent.sources.opcua.config" in [t for _, t in relative]
    assert {owner(t) for _, t in aliased} == {"modbus"}
    assert owner("agent.runner") is None and owner("agent.sources.registry") is None


@pytest.mark.parametrize("name", NAMES)
def test_every_source_has_its_whole_room(name: str) -> None:
    folder = ROOT / "agent" / "sources" / name
    missing = [item for item in ROOM if not (folder / item).is_file()]
    assert missing == [], f"agent/sources/{name}/ lacks {missing}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.key)
def test_every_source_example_is_a_valid_config_using_only_that_source(source: Source) -> None:
    config = load_config(ROOT / "agent" / "sources" / source.key / "example.toml")
    used = {s.key for s, tables in config.sources() if tables}
    assert used == {source.key}
    channels = [c for t in config.tables(source) for c in source.channels(t)]
    assert channels and all(c.source == source.key for c in channels)
    assert all(source.describe(t).startswith(f"{source.key} ") for t in config.tables(source))


def test_sections_and_probe_schemes_are_unique() -> None:
    keys = [s.key for s in SOURCES]
    schemes = [scheme for s in SOURCES for scheme in s.schemes]
    assert len(set(keys)) == len(keys) and keys == list(NAMES)
    assert len(set(schemes)) == len(schemes)
