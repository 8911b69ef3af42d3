"""Meter exchanges recorded by operators: appended to the site model, applied by the collector on start.

Why: a replaced meter's drop looks like a reset to the kernels, which count the new meter's first value as
the quantity since the last old reading. That is right only when the new meter starts at zero; the fitter's
record (the old meter's final reading, the new one's initial reading, its modulus and ratio) is exact, so
it wins. The record lives in the site model, beside the channel it belongs to, so the live collector and
``kilnwatch kpi compute`` apply the same one; the ledger remembers which records it has applied, so a
collector started after a record was added recomputes that channel from the exchange on.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from agent.config_load import ConfigError
from collector.site import MeterExchange, Site, load_site


def _toml_value(value: float | str | datetime) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return repr(float(value))


def record_exchange(path: Path, exchange: MeterExchange) -> Site:
    """Append ``exchange`` to the site model at ``path`` as a ``[[meter_exchange]]`` block.

    The file is validated with the block in it; when that fails the file is left as it was and the
    ConfigError says why (an unknown channel, an exchange older than the channel's last one ...).
    """
    path = Path(path)
    before = path.read_text(encoding="utf-8")
    fields = exchange.model_dump(exclude_defaults=True)
    fields.setdefault("old_final", exchange.old_final)
    lines = ["", "[[meter_exchange]]"] + [f"{key} = {_toml_value(value)}" for key, value in fields.items()]
    path.write_text(before.rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    try:
        return load_site(path)
    except ConfigError:
        path.write_text(before, encoding="utf-8")
        raise


def exchange_key(ex: MeterExchange) -> str:
    """What identifies an applied record in the ledger: any change to it means recomputing."""
    return ex.model_dump_json()
