"""docs/collector.md is the complete reference of the collector's TOML: every key of every table has a row.

A key added to ``collector/config.py``, the shared ``[mqtt]`` section or ``[influx]`` without a row in the
doc fails here, naming the key.
"""

from __future__ import annotations

import re
from pathlib import Path

from collector.config import CollectorSection, MqttSection
from collector.sinks.config import InfluxConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "collector.md"


def table_keys(doc: str, heading: str) -> set[str]:
    """The backquoted keys in the first column of the table under ``### heading``."""
    section = doc.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    keys: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            keys.update(re.findall(r"`([a-z_0-9]+)`", line.split("|")[1]))
    return keys


def test_every_key_has_a_row() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for heading, model in (("`[collector]`", CollectorSection), ("`[mqtt]`", MqttSection),
                           ("`[influx]`", InfluxConfig)):  # fmt: skip
        missing = set(model.model_fields) - table_keys(doc, heading)
        assert not missing, f"docs/collector.md {heading} has no row for {sorted(missing)}"
        extra = table_keys(doc, heading) - set(model.model_fields)
        assert not extra, (
            f"docs/collector.md {heading} documents keys the config does not have: {sorted(extra)}"
        )
