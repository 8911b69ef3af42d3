"""Meter exchange records on the live path: the ledger applies them batch by batch and at collector start.

One energy counter in kWh, readings every 60 s from 10:00 local (02:00 UTC) on 2026-11-02. The old meter
reads 1000, 1010, 1020; it is taken off at 10:02:30 showing 1025 (the fitter's record); the new meter is
fitted showing 3.0 and reads 8.0 at 10:03 and 18.0 at 10:04. By hand:

    old meter: 1020 − 1000 = 20, then 1025 − 1020 = 5 (last reading → old_final)
    new meter: 8 − 3 = 5 (new_initial → first reading), then 18 − 8 = 10
    total = 20 + 5 + 5 + 10 = 40 kWh

Without the record, the drop 1020 → 8 is a reset that counts the new meter's first value: 20 + 8 + 10 =
38 kWh (the unseen 5 kWh on the old meter and the new meter's 3.0 at fitting are not known).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from agent import wire
from agent.config_load import ConfigError
from collector.ingest.apply import ChannelMetas, apply_exchanges, apply_group
from collector.kpis.exchanges import record_exchange
from collector.ledger.sqlite import Ledger, open_sqlite
from collector.site import MeterExchange, load_site
from collector.sites import Sites

SITE = """
[site]
id = "x"

[lines.L1]

[channels."gw/kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "consumption"
carrier = "electricity"
"""
T0_MS = int(datetime.fromisoformat("2026-11-02T10:00:00+08:00").timestamp() * 1000)
READINGS = [(0, 1000.0), (60, 1010.0), (120, 1020.0), (180, 8.0), (240, 18.0)]


def feed(ledger: Ledger, site, readings=READINGS) -> None:
    """One batch per reading, each applied as its own group (as a slow agent's messages are)."""
    metas = ChannelMetas(ledger, Sites.single(site))
    for seq, (dt_s, value) in enumerate(readings):
        batch = wire.Batch("x", "gw", "e1", seq)
        batch.add("kwh", T0_MS + dt_s * 1000, value)
        apply_group(ledger, metas, [("x", batch)])


def exchanges_at_start(ledger: Ledger, site):
    """What the collector does when it starts."""
    sites = Sites.single(site)
    return apply_exchanges(ledger, ChannelMetas(ledger, sites), sites)


def total(ledger: Ledger) -> float:
    return sum(q for _, _, q, _ in ledger.increments(0, 2**62))


def exchange() -> MeterExchange:
    at = datetime.fromisoformat("2026-11-02T10:02:30+08:00")
    return MeterExchange(channel="gw/kwh", at=at, old_final=1025.0, new_initial=3.0)


def test_exchange_in_the_site_model_is_applied_batch_by_batch(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE)
    site = record_exchange(path, exchange())
    ledger = open_sqlite(tmp_path / "ledger.sqlite")
    feed(ledger, site)
    assert total(ledger) == pytest.approx(40.0)  # 20 + 5 + 5 + 10
    kinds = [e.kind for e in ledger.events(0, 2**62)]
    assert kinds == ["exchange"]  # the record wins: no reset inferred for 1020 → 8


def test_exchange_recorded_after_the_fact_is_applied_at_collector_start(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE)
    ledger = open_sqlite(tmp_path / "ledger.sqlite")
    feed(ledger, load_site(path))
    assert total(ledger) == pytest.approx(38.0)  # 20 + 8 + 10: the reset rule
    assert [e.kind for e in ledger.events(0, 2**62)] == ["reset"]

    site = record_exchange(path, exchange())  # what `kilnwatch kpi exchange` does
    result = exchanges_at_start(ledger, site)
    assert result.exchanges == 1 and ("x", "L1") in result.touched
    assert total(ledger) == pytest.approx(40.0)
    assert [e.kind for e in ledger.events(0, 2**62)] == ["exchange"]
    assert exchanges_at_start(ledger, site).touched == {}  # applied once; a second start changes nothing

    path.write_text(SITE)  # the record removed again: back to the inferred reset
    exchanges_at_start(ledger, load_site(path))
    assert total(ledger) == pytest.approx(38.0)


def test_exchange_record_that_does_not_validate_leaves_the_site_model_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE)
    bad = exchange().model_copy(update={"channel": "gw/kwhh"})
    with pytest.raises(ConfigError, match="did you mean 'gw/kwh'"):
        record_exchange(path, bad)
    assert path.read_text() == SITE
