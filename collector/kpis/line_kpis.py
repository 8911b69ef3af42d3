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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from agent.wire import ChannelKind
from collector.kpis.quantities import CounterEvent
from collector.site import FUELS, Channel, LabValue, Site
from kpi.cement import CementIndicators, CementInputs, CementSettings, cement_indicators
from kpi.clinker import ClinkerInputs, ClinkerOxides, ClinkerSettings, FuelUse, clinker_indicators
from kpi.co2 import CLINKER_PROCESS_FACTORS, CO2_PER_C, GRID_FACTORS, fuel_co2_split
from kpi.periods import rollup
from kpi.units import KGCE_MJ

FUEL_CARRIERS = ("coal", "natural_gas", "diesel", "alternative_fuel")
#: Unit of a channel's quantity in KPI documents (after ``collector.site.UNIT_FACTORS``).
QUANTITY_UNITS = {
    ChannelKind.ENERGY_TOTAL: "kWh", ChannelKind.POWER: "kWh", ChannelKind.MASS_TOTAL: "t",
    ChannelKind.MASS_RATE: "t", ChannelKind.VOLUME_TOTAL: "m3", ChannelKind.VOLUME_RATE: "m3",
}  # fmt: skip


class MissingLabValue(ValueError):
    """Fuel fired or clinker made at a time no lab value covers: the KPI cannot be computed honestly."""


@dataclass(frozen=True, slots=True)
class BaseTable:
    """Increments of many channels on one grid of base buckets: ``qty``/``cov`` are (channels × buckets).

    ``windows`` holds each channel's first and last good reading (s): a counter's deltas are complete inside
    it however long its gaps. ``events`` are the counter events (rollovers, resets, exchanges, flagged jumps).
    """

    channels: list[str]
    edges_s: np.ndarray
    qty: np.ndarray
    cov: np.ndarray
    windows: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    events: tuple[CounterEvent, ...] = ()

    @classmethod
    def from_rows(
        cls,
        rows: list[tuple[str, int, float, float]],
        start_s: float,
        end_s: float,
        step_s: float,
        windows: Mapping[str, tuple[float, float]] | None = None,
        events: tuple[CounterEvent, ...] | list[CounterEvent] = (),
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
        return cls(channels, edges, qty, cov, dict(windows or {}), tuple(events))

    def with_flagged(self, site: Site) -> BaseTable:
        """This table with the flagged deltas of channels set to ``implausible = "include"`` counted in,
        spread over their pair's time like any delta (the kernel keeps them out and in ``events``)."""
        included = [
            e for e in self.events
            if e.kind == "implausible" and e.channel in site.channels and e.counted(site.channels[e.channel])
        ]  # fmt: skip
        if not included:
            return self
        qty = self.qty.copy()
        rows = {c: i for i, c in enumerate(self.channels)}
        lo, hi = self.edges_s[:-1], self.edges_s[1:]
        for e in included:
            if e.channel not in rows:
                continue
            if e.t1_s > e.t0_s:
                overlap = np.minimum(hi, e.t1_s) - np.maximum(lo, e.t0_s)
                share = np.clip(overlap, 0.0, None) / (e.t1_s - e.t0_s)
            else:
                share = ((lo <= e.t1_s) & (e.t1_s < hi)).astype(float)
            qty[rows[e.channel]] += e.qty * share
        return dataclasses.replace(self, qty=qty)


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
    table = table.with_flagged(site)
    docs = []
    for line in site.lines:
        totals = _LineTotals(site, table, line, period_edges_s)
        used: list[set[int]] = [set() for _ in range(len(period_edges_s) - 1)]
        fuels, fuel_docs = _fuel_uses(site, table, totals, period_edges_s, used)
        oxides = _clinker_oxides(site, line, table, totals, period_edges_s, used)
        clinker_ratio = _clinker_ratio(site, line, table, totals, period_edges_s, used)
        own_clinker = totals.period(_is("consumption", "clinker", "cement_prep", "own"))
        purchased_clinker = totals.period(_is("consumption", "clinker", "cement_prep", "purchased"))
        cement_t = totals.period(_is("output", "cement", "cement_prep"))
        prep_kwh = totals.period(_is("consumption", "electricity", "cement_prep"))
        whr = _whr(totals)
        for p in range(len(period_edges_s) - 1):
            bounds = (float(period_edges_s[p]), float(period_edges_s[p + 1]))
            channels = _channel_docs(totals, p, bounds, float(lengths[p]))
            names = [n for n, ch in totals.members.items() if ch.role != "info" and ch.boundary == "clinker"]
            coverage = min((channels[n]["complete"] for n in names), default=0.0)
            inputs = ClinkerInputs(
                clinker_t=float(totals.period(_is("output", "clinker", "clinker"))[p]),
                electricity_kwh=float(totals.period(_is("consumption", "electricity", "clinker"))[p]),
                whr_kwh=max(float(whr["net_kwh"][p]), 0.0),
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
                    "start_local": _local(site, start),
                    "end_local": _local(site, end),
                    "start_ms": int(start * 1000),
                    "end_ms": int(end * 1000),
                    **dataclasses.asdict(ind),
                    **_cement_fields(cement),
                    "whr_gross_kwh": float(whr["gross_kwh"][p]),
                    "whr_aux_kwh": float(whr["aux_kwh"][p]),
                    "whr_net_kwh": float(whr["net_kwh"][p]),
                    "whr_net_metered": bool(whr["metered"]),
                    "channels": channels,
                    "electricity_by_meter": {
                        n: d["quantity"] for n, d in channels.items()
                        if d["carrier"] == "electricity" and d["role"] == "consumption"
                    },
                    "fuel_detail": fuel_docs[p],
                    "counter_events": _event_docs(site, table, totals, start, end),
                    "lab_inputs": [_lab_doc(site.lab[i], i) for i in sorted(used[p])],
                }
            )  # fmt: skip
    return docs


def _whr(totals: _LineTotals) -> dict[str, np.ndarray | bool]:
    """Waste-heat power per period: gross generation, the WHR plant's own use and net = gross − aux (or a
    net meter's reading where the site has one). Every WHR treatment uses the net."""
    gross = totals.period(lambda ch: ch.role in ("credit", "whr_gross") and ch.boundary == "clinker")
    aux = totals.period(lambda ch: ch.role == "whr_aux" and ch.boundary == "clinker")
    metered = bool(totals.indices(lambda ch: ch.role == "whr_net" and ch.boundary == "clinker"))
    net = gross - aux
    if metered:
        net = totals.period(lambda ch: ch.role == "whr_net" and ch.boundary == "clinker")
    return {"gross_kwh": gross, "aux_kwh": aux, "net_kwh": net, "metered": metered}


def _channel_docs(totals: _LineTotals, p: int, bounds: tuple[float, float], length: float) -> dict[str, dict]:
    """Quantity and coverage of each of the line's channels in period ``p`` (``bounds``), as shares of the
    ``length`` seconds it should be covered (the elapsed part of a period still running).

    ``coverage``: the share of the period inside intervals between good readings no longer than the
    channel's gap limit — one meaning for every kind. ``complete``: the share whose quantity is known — for
    a rate the same as its coverage, for a counter the part inside its first..last good reading (a delta
    across a gap is complete). The line's ``coverage`` is the least ``complete`` of its counted channels.
    """
    out = {}
    for name, ch in totals.members.items():
        r = totals.rows[name]
        q, c = float(totals.qty[r, p]), float(totals.cov[r, p])
        share = min(c / length, 1.0) if length > 0 else 0.0
        complete = share
        window = totals.table.windows.get(name)
        if ch.kind in ChannelKind.TOTALISERS and window is not None and length > 0:
            complete = max(0.0, min(window[1], bounds[1]) - max(window[0], bounds[0])) / length
        doc = {"kind": ch.kind, "role": ch.role, "carrier": ch.carrier, "boundary": ch.boundary}
        if ch.kind == ChannelKind.ANALOG:
            doc |= {"unit": ch.unit, "mean": q / c if c > 0 else None}
        else:
            doc |= {"unit": QUANTITY_UNITS[ch.kind], "quantity": q}
        out[name] = doc | {"coverage": share, "complete": min(complete, 1.0)}
    return out


def _event_docs(site: Site, table: BaseTable, totals: _LineTotals, start: float, end: float) -> list[dict]:
    """The counter events of the line's channels whose later reading falls in [start, end)."""
    return [
        {
            "channel": e.channel, "kind": e.kind, "t0": _iso(e.t0_s), "t1": _iso(e.t1_s),
            "t1_local": _local(site, e.t1_s), "v0": e.v0, "v1": e.v1, "qty": e.qty,
            "counted": e.counted(site.channels[e.channel]),
        }
        for e in table.events
        if e.channel in totals.members and start <= e.t1_s < end
    ]  # fmt: skip


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
) -> tuple[list[list[FuelUse]], list[list[dict]]]:
    """Per fuel channel, one FuelUse per period with the NCV and carbon content of the fuel actually fired,
    and per period a document per fuel (burner) with its t, kgce and CO2, split by the lab lot (NCV entry)
    that was in force.

    NCV is weighted by mass, carbon content (tC/GJ) and biogenic share by heat. A missing NCV is an error
    (the energy figure would be a guess); a missing carbon content or biogenic share falls back to the fuel's
    default in ``kpi.co2`` and the provenance says so by listing no lab entry for it.
    """
    out = []
    n_periods = len(period_edges_s) - 1
    details: list[list[dict]] = [[] for _ in range(n_periods)]
    for name, ch in totals.members.items():
        if not (ch.role == "consumption" and ch.carrier in FUEL_CARRIERS and ch.boundary == "clinker"):
            continue
        mass = table.qty[totals.rows[name]]
        ncv = lab_series(site, site.lab_values("ncv_mj_per_kg", carrier=ch.carrier), table.edges_s)
        if np.any(ncv.missing_where(mass)):
            when = _local(site, float(table.edges_s[:-1][ncv.missing_where(mass)][0]))
            raise MissingLabValue(
                f"{name}: fuel fired at {when} (site time) but no [[lab]] ncv_mj_per_kg for carrier"
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
        fossil = heat_gj * carbon.values * default.oxidation * CO2_PER_C * (1.0 - biogenic.values)
        docs = _fuel_docs(site, name, ch, mass, heat_gj, fossil, ncv, table, period_edges_s)
        for p, doc in enumerate(docs):
            details[p].append(doc | {"co2_biogenic_memo_t": _memo(uses[p]) if uses[p].mass_t > 0 else 0.0})
    return out, details


def _memo(use: FuelUse) -> float:
    return fuel_co2_split(
        use.mass_t, use.ncv_mj_per_kg, use.carbon_t_per_gj, use.oxidation, use.biogenic_fraction
    ).biogenic_memo_t


def _fuel_docs(
    site: Site,
    name: str,
    ch: Channel,
    mass: np.ndarray,
    heat_gj: np.ndarray,
    fossil_t: np.ndarray,
    ncv: LabSeries,
    table: BaseTable,
    period_edges_s: np.ndarray,
) -> list[dict]:
    """One fuel channel's t, kgce and fossil CO2 per period, in total and per lab lot (NCV entry)."""
    starts = table.edges_s[:-1]
    docs = []
    for p in range(len(period_edges_s) - 1):
        inside = (starts >= period_edges_s[p]) & (starts < period_edges_s[p + 1]) & (mass > 0)
        lots = []
        for entry in np.unique(ncv.entry[inside]):
            sel = inside & (ncv.entry == entry)
            lab = site.lab[int(entry)]
            lots.append({
                "entry": int(entry), "source": lab.source, "ncv_mj_per_kg": lab.value,
                "mass_t": float(mass[sel].sum()), "kgce": float(heat_gj[sel].sum() * 1000.0 / KGCE_MJ),
                "co2_fossil_t": float(fossil_t[sel].sum()),
            })  # fmt: skip
        docs.append({
            "channel": name, "carrier": ch.carrier, "fuel": ch.fuel or "bituminous",
            "mass_t": float(mass[inside].sum()), "kgce": float(heat_gj[inside].sum() * 1000.0 / KGCE_MJ),
            "co2_fossil_t": float(fossil_t[inside].sum()), "lots": lots,
        })  # fmt: skip
    return docs


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
            when = _local(site, float(table.edges_s[:-1][series.missing_where(made)][0]))
            raise MissingLabValue(
                f"line {line!r}: clinker made at {when} (site time) but no [[lab]] {name} covers it"
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


def _local(site: Site, t_s: float) -> str:
    """An instant in the site's own time zone, as people at the plant read it."""
    return datetime.fromtimestamp(t_s, ZoneInfo(site.site.timezone)).isoformat()
