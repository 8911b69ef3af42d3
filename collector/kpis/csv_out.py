"""KPI documents → CSV rows: the scalar fields, plus one column per channel and fuel quantity.

Why: a regulator or an energy manager opening the CSV in a spreadsheet must be able to retrace a period's
figures as from the JSON: what each meter and burner contributed, how complete each channel was, and which
counter events were applied. Nested fields are flattened to ``channel:<id>:<field>`` and
``fuel:<id>:<field>`` columns; the counter events go in one JSON text column beside their counts.
"""

from __future__ import annotations

import json

SCALARS = (str, int, float, bool, type(None))
CHANNEL_FIELDS = ("quantity", "mean", "coverage", "complete")
FUEL_FIELDS = ("mass_t", "kgce", "co2_fossil_t", "co2_biogenic_memo_t")


def csv_row(doc: dict) -> dict[str, object]:
    """One document as a flat row."""
    row: dict[str, object] = {k: v for k, v in doc.items() if isinstance(v, SCALARS)}
    for name, ch in doc.get("channels", {}).items():
        row |= {f"channel:{name}:{f}": ch[f] for f in CHANNEL_FIELDS if f in ch}
    for fuel in doc.get("fuel_detail", []):
        row |= {f"fuel:{fuel['channel']}:{f}": fuel[f] for f in FUEL_FIELDS}
    events = doc.get("counter_events", [])
    row["counter_events_n"] = len(events)
    row["flagged_not_counted_n"] = sum(1 for e in events if not e["counted"])
    row["counter_events"] = json.dumps(events, ensure_ascii=False, separators=(",", ":")) if events else ""
    return row


def csv_table(docs: list[dict]) -> tuple[list[str], list[dict[str, object]]]:
    """Columns (in first-seen order over all documents) and rows."""
    rows = [csv_row(d) for d in docs]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns), rows
