"""Per-line, per-period indicators from base-interval increments, through ``kpi.clinker`` and ``kpi.cement``.

Both paths meet here: the live collector fills a :class:`BaseTable` from the ledger, ``kilnwatch kpi
compute`` from a readings file. Roles from the site model decide what is summed as clinker output, clinker-
system electricity, waste-heat credit, fuel, cement and clinker fed to the cement mills. Lab values (coal NCV
and carbon content, clinker CaO/MgO, clinker ratio) are applied per base interval and weighted by what they
describe (the coal fired, the clinker made, the cement ground under them), so a new coal lot at 10:00 counts
only for the coal fired after 10:00. Every lab entry a KPI used is listed in its provenance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from collector.site import FUELS, Channel, LabValue, Site
from kpi.cement import CementIndicators, CementInputs, CementSettings, cement_indicators
from kpi.clinker import ClinkerInputs, ClinkerOxides, ClinkerSettings, FuelUse, clinker_indicators
from kpi.co2 import CLINKER_PROCESS_FACTORS, GRID_FACTORS
from kpi.periods import rollup

FUEL_CARRIERS = ("coal", "natural_gas", "diesel", "alternative_fuel")


class MissingLabValue(ValueError):
    """Fuel fired or clinker made at a time no lab value covers: the KPI cannot be computed honestly."""


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


@dataclass(frozen=True, slots=True)
class LabSeries:
    """One lab quantity on the base grid: the value in force at each bucket's start (NaN where none is) and
    the index into ``site.lab`` of the entry that supplied it (-1 where none did)."""

    values: np.ndarray
    entry: np.ndarray

    def weighted(self, weight: np.ndarray, edges_s: np.ndarray, period_edges_s: np.ndarray) -> np.ndarray:
        """Per period, the mean of the values weighted by ``weight`` (NaN where the weight sums to 0)."""
        num = rollup(np.where(weight > 0, weight * np.nan_to_num(self.values), 0.0), edges_s, period_edges_s)
        den = rollup(np.where(weight > 0, weight, 0.0), edges_s, period_edges_s)
        return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)

    def missing_where(self, weight: np.ndarray) -> np.ndarray:
        """Buckets that have weight but no value."""
        return (weight > 0) & np.isnan(self.values)


def lab_series(site: Site, entries: list[LabValue], edges_s: np.ndarray) -> LabSeries:
    """The value of ``entries`` (sorted oldest first; a later one overrides) in force at each bucket start."""
    starts = edges_s[:-1]
    values = np.full(len(starts), np.nan)
    entry = np.full(len(starts), -1)
    position = {id(v): i for i, v in enumerate(site.lab)}
    for lab in entries:
        lo = lab.valid_from.timestamp()
        hi = lab.valid_to.timestamp() if lab.valid_to else np.inf
        inside = (starts >= lo) & (starts < hi)
        values[inside] = lab.value
        entry[inside] = position[id(lab)]
    return LabSeries(values, entry)


def _settings(site: Site, line: str, oxides: ClinkerOxides | None) -> ClinkerSettings:
    s = site.lines[line].settings
    return ClinkerSettings(
        whr_treatment=s.whr_treatment,
        alternative_fuel_treatment=s.alternative_fuel_treatment,
        electricity_basis=s.electricity_basis,
        process_factor=CLINKER_PROCESS_FACTORS[s.process_factor],
        clinker_oxides=oxides,
        kiln_type=s.kiln_type,
        ckd_calcination=s.ckd_calcination,
        grid_factor=GRID_FACTORS[s.grid_factor],
        ndrc_edition=s.ndrc_edition,
        altitude_m=site.site.altitude_m,
    )


def _cement_settings(site: Site, line: str) -> CementSettings:
    s = site.lines[line].settings
    if s.purchased_clinker_kgce_per_t is None:
        return CementSettings(electricity_basis=s.electricity_basis, altitude_m=site.site.altitude_m)
    return CementSettings(
        electricity_basis=s.electricity_basis,
        purchased_clinker_kgce_per_t=s.purchased_clinker_kgce_per_t,
        purchased_clinker_source=f"site model: lines.{line}.settings.purchased_clinker_kgce_per_t",
        altitude_m=site.site.altitude_m,
    )


class _LineTotals:
    """Sums of a line's channels per period, selected by role, carrier and boundary."""

    def __init__(self, site: Site, table: BaseTable, line: str, period_edges_s: np.ndarray) -> None:
        self.rows = {c: i for i, c in enumerate(table.channels)}
        self.members = {n: ch for n, ch in site.channels.items() if ch.line == line and n in self.rows}
        self.table = table
        self.qty = rollup(table.qty, table.edges_s, period_edges_s)
        self.cov = rollup(table.cov, table.edges_s, period_edges_s)

    def indices(self, pred: Callable[[Channel], bool]) -> list[int]:
        return [self.rows[n] for n, ch in self.members.items() if pred(ch)]

    def period(self, pred: Callable[[Channel], bool]) -> np.ndarray:
        idx = self.indices(pred)
        return self.qty[idx].sum(axis=0) if idx else np.zeros(self.qty.shape[1])

    def base(self, pred: Callable[[Channel], bool]) -> np.ndarray:
        idx = self.indices(pred)
        return self.table.qty[idx].sum(axis=0) if idx else np.zeros(self.table.qty.shape[1])


def _is(role: str, carrier: str, boundary: str, origin: str | None = None) -> Callable[[Channel], bool]:
    return lambda ch: (
        ch.role == role
        and ch.carrier == carrier
        and ch.boundary == boundary
        and (origin is None or ch.origin == origin)
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
    lengths = np.diff(period_edges_s) if expected_s is None else expected_s
    docs = []
    for line in site.lines:
        totals = _LineTotals(site, table, line, period_edges_s)
        used: list[set[int]] = [set() for _ in range(len(period_edges_s) - 1)]
        fuels = _fuel_uses(site, table, totals, period_edges_s, used)
        oxides = _clinker_oxides(site, line, table, totals, period_edges_s, used)
        clinker_ratio = _clinker_ratio(site, line, table, totals, period_edges_s, used)
        counted = totals.indices(lambda ch: ch.role != "info" and ch.boundary == "clinker")
        own_clinker = totals.period(_is("consumption", "clinker", "cement_prep", "own"))
        purchased_clinker = totals.period(_is("consumption", "clinker", "cement_prep", "purchased"))
        cement_t = totals.period(_is("output", "cement", "cement_prep"))
        prep_kwh = totals.period(_is("consumption", "electricity", "cement_prep"))
        for p in range(len(period_edges_s) - 1):
            coverage = 0.0
            if counted and lengths[p] > 0:
                coverage = float(np.min(totals.cov[counted, p]) / lengths[p])
            inputs = ClinkerInputs(
                clinker_t=float(totals.period(_is("output", "clinker", "clinker"))[p]),
                electricity_kwh=float(totals.period(_is("consumption", "electricity", "clinker"))[p]),
                whr_kwh=float(totals.period(_is("credit", "electricity", "clinker"))[p]),
                fuels=tuple(f[p] for f in fuels),
                coverage=min(coverage, 1.0),
                ckd_t=float(totals.period(_is("output", "ckd", "clinker"))[p]),
                bypass_dust_t=float(totals.period(_is("output", "bypass_dust", "clinker"))[p]),
            )
            ind = clinker_indicators(inputs, _settings(site, line, oxides[p]))
            own_p = float(own_clinker[p])
            ratio_missing = False
            if not totals.indices(_is("consumption", "clinker", "cement_prep", "own")):
                # no scale on the mills' clinker feed: the recipe's clinker ratio from the lab stands in
                ratio_missing = not np.isfinite(clinker_ratio[p])
                own_p = 0.0 if ratio_missing else float(clinker_ratio[p] * cement_t[p])
            cement = cement_indicators(
                CementInputs(
                    cement_t=float(cement_t[p]),
                    own_clinker_t=own_p,
                    prep_electricity_kwh=float(prep_kwh[p]),
                    purchased_clinker_t=float(purchased_clinker[p]),
                ),
                ind.comprehensive_kgce_per_t,
                _cement_settings(site, line),
            )
            if ratio_missing and cement.cement_t > 0 and not purchased_clinker[p] > 0:
                cement = dataclasses.replace(
                    cement, comprehensive_kgce_per_t=None, comprehensive_grade=None, limits_kgce_per_t=None,
                    missing=("clinker consumed: no mill-feed scale and no [[lab]] clinker_ratio entry",),
                )  # fmt: skip
            start, end = period_edges_s[p], period_edges_s[p + 1]
            docs.append(
                {
                    "site": site.site.id,
                    "line": line,
                    "period": period,
                    "start": _iso(start),
                    "end": _iso(end),
                    "start_ms": int(start * 1000),
                    "end_ms": int(end * 1000),
                    **dataclasses.asdict(ind),
                    **_cement_fields(cement),
                    "lab_inputs": [_lab_doc(site.lab[i], i) for i in sorted(used[p])],
                }
            )
    return docs


def _cement_fields(cement: CementIndicators) -> dict:
    """Cement indicators as flat ``cement_*`` keys (CSV and InfluxDB fields), their provenance nested."""
    return {
        "cement_t": cement.cement_t,
        "cement_clinker_ratio_pct": cement.clinker_ratio_pct,
        "cement_comprehensive_kgce_per_t": cement.comprehensive_kgce_per_t,
        "cement_comprehensive_grade": cement.comprehensive_grade,
        "cement_limits_kgce_per_t": cement.limits_kgce_per_t,
        "cement_prep_kwh_per_t": cement.prep_electricity_kwh_per_t,
        "cement_prep_grade": cement.prep_electricity_grade,
        "cement_missing": list(cement.missing),
        "cement_provenance": cement.provenance,
    }


def _lab_doc(lab: LabValue, index: int) -> dict:
    return {
        "entry": index,
        **lab.model_dump(mode="json", exclude_none=True),
    }


def _note_used(
    series: LabSeries,
    weight: np.ndarray,
    table: BaseTable,
    period_edges_s: np.ndarray,
    used: list[set[int]],
) -> None:
    """Add to each period's set the lab entries that were in force where ``weight`` was non-zero."""
    starts = table.edges_s[:-1]
    for p in range(len(period_edges_s) - 1):
        inside = (starts >= period_edges_s[p]) & (starts < period_edges_s[p + 1]) & (weight > 0)
        used[p].update(int(i) for i in np.unique(series.entry[inside]) if i >= 0)


def _fuel_uses(
    site: Site,
    table: BaseTable,
    totals: _LineTotals,
    period_edges_s: np.ndarray,
    used: list[set[int]],
) -> list[list[FuelUse]]:
    """Per fuel channel, one FuelUse per period with the NCV and carbon content of the fuel actually fired.

    NCV is weighted by mass, carbon content (tC/GJ) and biogenic share by heat. A missing NCV is an error
    (the energy figure would be a guess); a missing carbon content or biogenic share falls back to the fuel's
    default in ``kpi.co2`` and the provenance says so by listing no lab entry for it.
    """
    out = []
    for name, ch in totals.members.items():
        if not (ch.role == "consumption" and ch.carrier in FUEL_CARRIERS and ch.boundary == "clinker"):
            continue
        mass = table.qty[totals.rows[name]]
        ncv = lab_series(site, site.lab_values("ncv_mj_per_kg", carrier=ch.carrier), table.edges_s)
        if np.any(ncv.missing_where(mass)):
            when = _iso(float(table.edges_s[:-1][ncv.missing_where(mass)][0]))
            raise MissingLabValue(
                f"{name}: fuel fired at {when} but no [[lab]] ncv_mj_per_kg for carrier"
                f" {ch.carrier!r} covers it"
                " — add a lab entry with valid_from at or before that time"
            )
        heat_gj = np.where(mass > 0, mass * np.nan_to_num(ncv.values), 0.0)
        default = FUELS[ch.fuel or "bituminous"]
        carbon = _with_default(site, "carbon_t_per_gj", ch.carrier, table, default.carbon_t_per_gj)
        biogenic = _with_default(site, "biogenic_fraction", ch.carrier, table, default.biogenic_fraction)
        for series, weight in ((ncv, mass), (carbon, heat_gj), (biogenic, heat_gj)):
            _note_used(series, weight, table, period_edges_s, used)
        mass_p = rollup(mass, table.edges_s, period_edges_s)
        ncv_p = ncv.weighted(mass, table.edges_s, period_edges_s)
        carbon_p = carbon.weighted(heat_gj, table.edges_s, period_edges_s)
        bio_p = biogenic.weighted(heat_gj, table.edges_s, period_edges_s)
        uses = []
        for p, m in enumerate(mass_p):
            fired = m > 0
            uses.append(
                FuelUse(
                    name=name,
                    mass_t=float(m),
                    ncv_mj_per_kg=float(ncv_p[p]) if fired else 0.0,
                    carbon_t_per_gj=float(carbon_p[p]) if fired else default.carbon_t_per_gj,
                    oxidation=default.oxidation,
                    alternative=ch.carrier == "alternative_fuel",
                    biogenic_fraction=float(bio_p[p]) if fired else default.biogenic_fraction,
                )
            )
        out.append(uses)
    return out


def _with_default(site: Site, quantity: str, carrier: str, table: BaseTable, default: float) -> LabSeries:
    series = lab_series(site, site.lab_values(quantity, carrier=carrier), table.edges_s)
    return LabSeries(np.where(np.isnan(series.values), default, series.values), series.entry)


def _clinker_oxides(
    site: Site,
    line: str,
    table: BaseTable,
    totals: _LineTotals,
    period_edges_s: np.ndarray,
    used: list[set[int]],
) -> list[ClinkerOxides | None]:
    """Clinker CaO/MgO per period, weighted by the clinker made under each sample; None per period when the
    line has no clinker lab entries at all (the line's default process factor applies)."""
    n = len(period_edges_s) - 1
    cao_entries = site.lab_values("clinker_cao", line=line)
    if not cao_entries:
        return [None] * n
    made = totals.base(_is("output", "clinker", "clinker"))
    cao = lab_series(site, cao_entries, table.edges_s)
    mgo = lab_series(site, site.lab_values("clinker_mgo", line=line), table.edges_s)
    for name, series in (("clinker_cao", cao), ("clinker_mgo", mgo)):
        if np.any(series.missing_where(made)):
            when = _iso(float(table.edges_s[:-1][series.missing_where(made)][0]))
            raise MissingLabValue(
                f"line {line!r}: clinker made at {when} but no [[lab]] {name} covers it"
                " — add a lab entry for that shift, or remove the line's clinker oxide entries to use"
                " its default process factor"
            )
        _note_used(series, made, table, period_edges_s, used)
    cao_p = cao.weighted(made, table.edges_s, period_edges_s)
    mgo_p = mgo.weighted(made, table.edges_s, period_edges_s)
    return [
        ClinkerOxides(float(c), float(m), source="plant lab (site model [[lab]])") if np.isfinite(c) else None
        for c, m in zip(cao_p, mgo_p, strict=True)
    ]


def _clinker_ratio(
    site: Site,
    line: str,
    table: BaseTable,
    totals: _LineTotals,
    period_edges_s: np.ndarray,
    used: list[set[int]],
) -> np.ndarray:
    """The recipe's clinker ratio per period, weighted by cement ground; NaN where cement was ground under
    no entry (the cement comprehensive energy is then reported missing rather than guessed)."""
    ground = totals.base(_is("output", "cement", "cement_prep"))
    ratio = lab_series(site, site.lab_values("clinker_ratio", line=line), table.edges_s)
    _note_used(ratio, ground, table, period_edges_s, used)
    uncovered = rollup(np.where(ratio.missing_where(ground), ground, 0.0), table.edges_s, period_edges_s)
    return np.where(uncovered > 0, np.nan, ratio.weighted(ground, table.edges_s, period_edges_s))


def _iso(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).isoformat().replace("+00:00", "Z")
