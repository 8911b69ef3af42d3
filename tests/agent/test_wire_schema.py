"""docs/wire/batch.schema.json agrees with agent/wire.py where both state the same rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

from agent import wire

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "wire" / "batch.schema.json").read_text())


def test_schema_matches_the_codec() -> None:
    defs = SCHEMA["$defs"]
    pattern = re.compile(defs["id"]["pattern"])
    assert pattern.match("kiln-gw") and pattern.match("a.b:c_d") and not pattern.match("a/b")
    assert not pattern.match("x" * 65) and pattern.match("x" * 64)
    assert tuple(defs["channel"]["properties"]["kind"]["enum"]) == wire.ChannelKind.ALL
    assert defs["reading"]["prefixItems"][3]["enum"] == [int(q) for q in wire.Quality]
    batch = wire.Batch("demo-plant", "kiln-gw", "e" * 32, 7)
    batch.add("kiln_kw", 1_795_161_600_250, 5400.0)
    assert set(json.loads(wire.encode_batch(batch))) == set(defs["batch"]["required"])
    status = json.loads(wire.encode_status("demo-plant", "kiln-gw", "online", "e" * 32, 1))
    assert set(status) == set(defs["status"]["required"])
    birth = json.loads(wire.encode_birth("demo-plant", "kiln-gw", "e" * 32, 1, []))
    assert set(birth) == set(defs["birth"]["required"])
