"""Per-line, per-period indicators from base-interval increments, through ``kpi.clinker``.

Both paths meet here: the live collector fills a :class:`BaseTable` from the ledger, ``kilnwatch kpi
compute`` from a readings file. Roles from the site model decide what is summed as clinker output, clinker-
system electricity, waste-heat credit and fuel; lab values (coal NCV) are applied per base interval, so a
new coal lot mid-day is weighted by the coal actually fired under it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from collector.site import Channel, Site
from kpi.clinker import ClinkerInputs, ClinkerSettings, FuelUse, cement_prep_kwh_per_t, clinker_indicators
from kpi.co2 import CLINKER_PROCESS_FACTORS, DEFAULT_FUELS, GRID_FACTORS
from kpi.periods import rollup

FUEL_CARRIERS = ("coal", "natural_gas", "diesel", "alternative_fuel")


class MissingLabValue(ValueError):
    """A fuel was fired at a time no lab value covers: the KPI cannot be computed honestly."""


@dataclass(frozen=True, slots=True)
class BaseTable:
    """Increments of many channels on one grid of base buckets: ``qty``/``cov`` are (channels × buckets)."""

    channels: list[str]
    edges_s: np.ndarray
    qty: np.ndarray
    cov: np.ndarray

    @classmethod
    def from_rows(
        cls, rows: list[tuple[str, int, float, float]], start_s: float, end_s: float, step_s: float
    ) -> BaseTable:
        """Ledger rows ``(channel, bucket_ms, qty, cov_s)`` → a dense table over [start_s, end_s)."""
        channels = sorted({r[0] for r in rows})
        index = {c: i for i, c in enumerate(channels)}
        edges = np.arange(start_s, end_s + step_s / 2, step_s)
        qty = np.zeros((len(channels), len(edges) - 1))
        cov = np.zeros_like(qty)
        for channel, bucket_ms, q, c in rows:
            k = round((bucket_ms / 1000.0 - start_s) / step_s)
            if 0 <= k < qty.shape[1]:
                qty[index[channel], k] += q
                cov[index[channel], k] += c
        return cls(channels, edges, qty, cov)


def ncv_per_bucket(site: Site, carrier: str, edges_s: np.ndarray) -> np.ndarray:
    """The lab NCV (MJ/kg) in force at each base bucket's start; NaN where none is."""
    starts = edges_s[:-1]
    out = np.full(len(starts), np.nan)
    for lab in site.lab_values("ncv_mj_per_kg", carrier):
        lo = lab.valid_from.timestamp()
        hi = lab.valid_to.timestamp() if lab.valid_to else np.inf
        out[(starts >= lo) & (starts < hi)] = lab.value  # later entries override earlier ones
    return out


def _settings(site: Site, line: str) -> ClinkerSettings:
    s = site.lines[line].settings
    return ClinkerSettings(
        whr_treatment=s.whr_treatment,
        electricity_basis=s.electricity_basis,
        process_factor=CLINKER_PROCESS_FACTORS[s.process_factor],
        grid_factor=GRID_FACTORS[s.grid_factor],
        ndrc_edition=s.ndrc_edition,
        altitude_m=site.site.altitude_m,
    )


def period_kpis(
    site: Site,
    table: BaseTable,
    period: str,
    period_edges_s: np.ndarray,
    expected_s: np.ndarray | None = None,
) -> list[dict]:
    """One document per line and period: indicators, totals, coverage and provenance.

    ``expected_s`` is the number of seconds each period should be covered (defaults to its length; the live
    collector passes the elapsed part of a period still running).
    """
    qty = rollup(table.qty, table.edges_s, period_edges_s)
    cov = rollup(table.cov, table.edges_s, period_edges_s)
    lengths = np.diff(period_edges_s) if expected_s is None else expected_s
    rows = {c: i for i, c in enumerate(table.channels)}
    docs = []
    for line in site.lines:
        members = {n: ch for n, ch in site.channels.items() if ch.line == line and n in rows}

        def total(pred, members=members):
            idx = [rows[n] for n, ch in members.items() if pred(ch)]
            return qty[idx].sum(axis=0) if idx else np.zeros(qty.shape[1])

        fuels = _fuel_uses(site, table, rows, members, period_edges_s)
        counted = [rows[n] for n, ch in members.items() if ch.role != "info" and ch.boundary == "clinker"]
        for p in range(len(period_edges_s) - 1):
            coverage = float(np.min(cov[counted, p]) / lengths[p]) if counted and lengths[p] > 0 else 0.0
            inputs = ClinkerInputs(
                clinker_t=float(total(_is("output", "clinker", "clinker"))[p]),
                electricity_kwh=float(total(_is("consumption", "electricity", "clinker"))[p]),
                whr_kwh=float(total(_is("credit", "electricity", "clinker"))[p]),
                fuels=tuple(f[p] for f in fuels),
                coverage=min(coverage, 1.0),
            )
            ind = clinker_indicators(inputs, _settings(site, line))
            start, end = period_edges_s[p], period_edges_s[p + 1]
            doc = {
                "site": site.site.id,
                "line": line,
                "period": period,
                "start": _iso(start),
                "end": _iso(end),
                "start_ms": int(start * 1000),
                "end_ms": int(end * 1000),
                **dataclasses.asdict(ind),
                "cement_prep_kwh_per_t": cement_prep_kwh_per_t(
                    float(total(_is("consumption", "electricity", "cement_prep"))[p]),
                    float(total(_is("output", "cement", "cement_prep"))[p]),
                ),
            }
            docs.append(doc)
    return docs


def _is(role: str, carrier: str, boundary: str):
    return lambda ch: ch.role == role and ch.carrier == carrier and ch.boundary == boundary


def _fuel_uses(
    site: Site,
    table: BaseTable,
    rows: dict[str, int],
    members: dict[str, Channel],
    period_edges_s: np.ndarray,
) -> list[list[FuelUse]]:
    """Per fuel channel, one FuelUse per period with the mass-weighted NCV of the coal actually fired."""
    out = []
    for name, ch in members.items():
        if not (ch.role == "consumption" and ch.carrier in FUEL_CARRIERS and ch.boundary == "clinker"):
            continue
        mass = table.qty[rows[name]]
        ncv = ncv_per_bucket(site, ch.carrier, table.edges_s)
        fired = mass > 0
        if np.any(fired & np.isnan(ncv)):
            when = _iso(float(table.edges_s[:-1][fired & np.isnan(ncv)][0]))
            raise MissingLabValue(
                f"{name}: fuel fired at {when} but no [[lab]] ncv_mj_per_kg for carrier"
                f" {ch.carrier!r} covers it"
                " — add a lab entry with valid_from at or before that time"
            )
        energy_mj = np.where(fired, mass * 1000.0 * np.nan_to_num(ncv), 0.0)
        mass_p = rollup(mass, table.edges_s, period_edges_s)
        energy_p = rollup(energy_mj, table.edges_s, period_edges_s)
        default = DEFAULT_FUELS[ch.fuel or "bituminous"]
        uses = []
        for m, e in zip(mass_p, energy_p, strict=True):
            ncv_eff = e / (m * 1000.0) if m > 0 else float(np.nanmean(ncv)) if np.any(~np.isnan(ncv)) else 0.0
            uses.append(
                FuelUse(
                    name=name,
                    mass_t=float(m),
                    ncv_mj_per_kg=float(ncv_eff),
                    carbon_t_per_gj=default.carbon_t_per_gj,
                    oxidation=default.oxidation,
                )
            )
        out.append(uses)
    return out


def _iso(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).isoformat().replace("+00:00", "Z")
