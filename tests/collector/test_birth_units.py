"""Births compared with the site model by meaning, not spelling (regression: the demo agent's °C
temperatures were held because its site model writes degC)."""

from __future__ import annotations

from pathlib import Path

from collector.ingest.births import birth_problems, same_unit
from collector.site import load_site

DEMO_SITE = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "site.toml"


def test_a_temperature_in_degc_is_not_held_for_how_its_unit_is_written() -> None:
    assert same_unit("analog", "°C", "degC")
    assert same_unit("analog", "%", "percent")
    assert not same_unit("analog", "°C", "K")


def test_counted_kinds_compare_by_factor_to_the_canonical_unit() -> None:
    assert not same_unit("energy_total", "Wh", "kWh")  # 0.001 vs 1: counted 1,000 times too large
    assert same_unit("volume_total", "Nm3", "m3")  # both factor 1 to m3
    assert not same_unit("mass_rate", "kg/h", "t/h")


def test_the_demo_site_models_channels_spelled_as_an_agent_does_are_not_held() -> None:
    """Every channel of the demo site model as an agent spells it (°C for degC) is not a problem; the same
    birth with a kWh counter in Wh is."""
    site = load_site(DEMO_SITE)
    by_agent: dict[str, list[dict]] = {}
    for name, ch in site.channels.items():
        gw, _, point = name.partition("/")
        by_agent.setdefault(gw, []).append({"name": point, "kind": ch.kind, "unit": ch.unit})
    for gw, channels in by_agent.items():
        spelled = [{**c, "unit": "°C" if c["unit"] == "degC" else c["unit"]} for c in channels]
        assert birth_problems(site, gw, {"channels": spelled}) == []
        wrong = [{**c, "unit": "Wh"} if c["unit"] == "kWh" else c for c in channels]
        assert any(p.model.endswith("in kWh") for p in birth_problems(site, gw, {"channels": wrong}))
