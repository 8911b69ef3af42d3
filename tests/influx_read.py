"""Reading back what the sinks wrote, through the servers' own query APIs (independent of the writers)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any


def influxql(
    url: str, database: str, query: str, auth: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """The ``series`` of an InfluxQL query's first result (``[]`` when nothing matched); epoch in ms."""
    params = urllib.parse.urlencode({"db": database, "q": query, "epoch": "ms"} | _credentials(auth))
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=10) as response:
        result = json.loads(response.read())["results"][0]
    assert "error" not in result, result["error"]
    return result.get("series", [])


def influx_rows(
    url: str, database: str, query: str, auth: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every row of every series as a dict of column → value, the series' tags merged in."""
    rows = []
    for series in influxql(url, database, query, auth):
        for values in series["values"]:
            rows.append(series.get("tags", {}) | dict(zip(series["columns"], values, strict=True)))
    return rows


def _credentials(auth: tuple[str, str] | None) -> dict[str, str]:
    return {"u": auth[0], "p": auth[1]} if auth else {}


def vm_export(url: str, match: str) -> list[dict[str, Any]]:
    """VictoriaMetrics' raw samples for a series selector (``/api/v1/export`` shows fresh points)."""
    params = urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(f"{url}/api/v1/export?{params}", timeout=10) as response:
        return [json.loads(line) for line in response.read().decode().splitlines() if line]


def vm_flushed_export(url: str, match: str) -> list[dict[str, Any]]:
    """``vm_export`` after ``/internal/force_flush``: VictoriaMetrics buffers new samples for seconds before
    even ``/api/v1/export`` sees them, and the flush makes everything acknowledged so far visible."""
    with urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10) as response:
        assert response.status == 200
    return vm_export(url, match)
