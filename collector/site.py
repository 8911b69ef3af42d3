"""The site model: which channel is which carrier, on which line, inside which boundary.

Agents publish what meters say (a channel has a kind and a unit); only the site model knows that
``kiln-gw/coal_kiln_t`` is raw coal fed to kiln line L1 and counts as consumption of the clinker system.
The same file drives the live collector and ``kilnwatch kpi compute``, so both give the same numbers.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from agent.config_load import load_model
from agent.config_model import StrictModel
from agent.wire import ChannelKind
from kpi.co2 import ALTERNATIVE_FUELS, CLINKER_PROCESS_FACTORS, DEFAULT_FUELS, GRID_FACTORS
from kpi.periods import shift_start_minutes

Kind = Literal["energy_total", "power", "mass_total", "mass_rate", "volume_total", "volume_rate", "analog"]
#: ``credit`` is waste-heat (WHR) gross generation (kept for older site models: the same as ``whr_gross``);
#: ``whr_aux`` the WHR plant's own use; ``whr_net`` a meter of the net generation itself.
Role = Literal["consumption", "output", "credit", "whr_gross", "whr_aux", "whr_net", "info"]
WHR_ROLES = ("credit", "whr_gross", "whr_aux", "whr_net")
Carrier = Literal[
    "electricity",
    "coal",
    "natural_gas",
    "diesel",
    "heat",
    "alternative_fuel",
    "clinker",
    "cement",
    "ckd",
    "bypass_dust",
    "other",
]
Boundary = Literal["clinker", "cement_prep", "plant"]

#: Units each kind may carry, and the factor to the canonical unit (kWh, kW, t, t/h, m3, m3/h).
UNIT_FACTORS: dict[str, dict[str, float]] = {
    ChannelKind.ENERGY_TOTAL: {"Wh": 1e-3, "kWh": 1.0, "MWh": 1e3},
    ChannelKind.POWER: {"W": 1e-3, "kW": 1.0, "MW": 1e3},
    ChannelKind.MASS_TOTAL: {"kg": 1e-3, "t": 1.0},
    ChannelKind.MASS_RATE: {"kg/h": 1e-3, "t/h": 1.0},
    ChannelKind.VOLUME_TOTAL: {"m3": 1.0, "Nm3": 1.0},
    ChannelKind.VOLUME_RATE: {"m3/h": 1.0, "Nm3/h": 1.0},
}


#: Fuel keys a channel may name: fossil defaults and (biogenic-share) alternative fuels.
FUELS = {**DEFAULT_FUELS, **ALTERNATIVE_FUELS}


class _Strict(StrictModel, BaseModel):  # BaseModel again only so linters see a pydantic model (RUF012)
    """Every site-model table: strict values (``rollover = "1e6"`` is an error), see agent.config_model."""


class SiteInfo(_Strict):
    id: str
    name: str = ""
    timezone: str = "Asia/Shanghai"
    #: Base interval of the ledger's increments (the online-monitoring real-time granularity is 15 min).
    base_interval_s: int = Field(900, ge=60, le=3600)
    #: Local times at which shifts start: whole hours or "HH:MM" (a three-shift pattern by default).
    shift_starts: tuple[int | str, ...] = (0, 8, 16)
    altitude_m: float = 0.0

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as 'Asia/Shanghai'") from None
        return tz

    @field_validator("base_interval_s")
    @classmethod
    def _divides_hour(cls, step: int) -> int:
        if 3600 % step:
            raise ValueError("base_interval_s must divide an hour (e.g. 300, 900, 1800, 3600)")
        return step

    @model_validator(mode="after")
    def _shifts_on_base_edges(self) -> SiteInfo:
        minutes = shift_start_minutes(self.shift_starts)
        if any((m * 60) % self.base_interval_s for m in minutes):
            raise ValueError(
                f"shift_starts {list(self.shift_starts)} must fall on base intervals of"
                f" {self.base_interval_s} s; use a smaller base_interval_s"
                " (e.g. 900 for shifts at :15, :30 or :45)"
            )
        return self


class LineSettings(_Strict):
    """Rules that the standards leave open or that vary by plant; each is recorded with every KPI."""

    whr_treatment: Literal["none", "deduct_from_electricity", "deduct_from_coal"] = "none"
    electricity_basis: Literal["equivalent", "equal"] = "equivalent"
    #: Key of ``kpi.co2.CLINKER_PROCESS_FACTORS`` (china_ets 0.535, csi 0.525, ipcc 0.507).
    process_factor: str = "china_ets"
    #: Key of ``kpi.co2.GRID_FACTORS``: value, vintage and authority travel with every KPI.
    grid_factor: str = "national_aef_2023"
    ndrc_edition: Literal["2021", "2023"] = "2023"
    alternative_fuel_treatment: Literal["count", "exclude"] = "count"
    #: Kiln type for the CSI default CKD calcination rate (0 for dry kilns), unless ckd_calcination is set.
    kiln_type: Literal["dry", "semi_dry", "semi_wet", "wet", "shaft"] = "dry"
    ckd_calcination: float | None = Field(None, ge=0, le=1)
    #: Comprehensive energy of purchased clinker (supplier's declaration); unset = the grade-3 limit.
    purchased_clinker_kgce_per_t: float | None = Field(None, gt=0)

    @field_validator("process_factor")
    @classmethod
    def _known_process_factor(cls, key: str) -> str:
        return _known(key, CLINKER_PROCESS_FACTORS)

    @field_validator("grid_factor")
    @classmethod
    def _known_grid_factor(cls, key: str) -> str:
        return _known(key, GRID_FACTORS)


def _known(key: str, table: dict) -> str:
    if key not in table:
        raise ValueError(f"unknown key {key!r}; use one of {', '.join(sorted(table))}")
    return key


class Line(_Strict):
    name: str = ""
    type: Literal["clinker"] = "clinker"
    settings: LineSettings = LineSettings()


class Channel(_Strict):
    kind: Kind
    unit: str
    line: str
    role: Role
    carrier: Carrier = "other"
    boundary: Boundary = "clinker"
    #: For fuels: the key of the default combustion parameters in ``kpi.co2`` (bituminous coal, diesel ...).
    fuel: str | None = None
    #: For clinker consumed by the cement mills: the plant's own clinker or clinker bought in.
    origin: Literal["own", "purchased"] = "own"

    @field_validator("fuel")
    @classmethod
    def _known_fuel(cls, key: str | None) -> str | None:
        return key if key is None else _known(key, FUELS)

    #: Counter modulus in the channel's unit (e.g. 4294967.296 t for a uint32 kg totaliser). A drop counts as
    #: a rollover only from ≥ 90 % of it to ≤ 10 % of it; any other drop is a reset or a replaced meter.
    rollover: float = Field(0.0, ge=0)
    #: Largest plausible rate in the channel's unit per hour; a larger counter delta is flagged. 0 = no limit.
    max_rate_per_h: float = Field(0.0, ge=0)
    #: Seconds added to a pair's Δt before the rate limit applies: at least the meter's register update
    #: period plus the worst poll latency, so a read 0.1 s after a late one never trips the limit.
    plausibility_window_s: float = Field(5.0, ge=0)
    #: What a flagged (implausible) delta does: kept out of the totals (default) or counted in. Either way it
    #: is listed with its quantity in every KPI document, so switching and recomputing restores it.
    implausible: Literal["exclude", "include"] = "exclude"
    #: Longest gap between two good readings that counts as coverage (seconds). A rate pair longer than it is
    #: not integrated (missing, not zero); a counter delta across it is still complete.
    gap_limit_s: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _unit_fits_kind(self) -> Channel:
        factors = UNIT_FACTORS.get(self.kind)
        if factors is not None and self.unit not in factors:
            allowed = ", ".join(sorted(factors))
            raise ValueError(f"unit {self.unit!r} does not fit kind {self.kind!r}; use one of {allowed}")
        if self.role != "info" and self.kind == ChannelKind.ANALOG:
            raise ValueError("an analog channel cannot be counted; set role = 'info'")
        if self.role in WHR_ROLES and self.carrier != "electricity":
            raise ValueError(f"role {self.role!r} is waste-heat power: set carrier = 'electricity'")
        return self

    @property
    def factor(self) -> float:
        """Multiplier from the channel's unit to the canonical unit of its quantity."""
        return UNIT_FACTORS.get(self.kind, {}).get(self.unit, 1.0)


#: Lab quantities of a line's clinker or cement (keyed by ``line``); the others belong to a fuel ``carrier``.
LINE_LAB_QUANTITIES = ("clinker_cao", "clinker_mgo", "clinker_ratio")
#: Quantities that are fractions (0–1) rather than positive amounts.
FRACTION_LAB_QUANTITIES = ("biogenic_fraction", "clinker_cao", "clinker_mgo", "clinker_ratio")


def _ncv_hint(value: float) -> str:
    lo, hi = NCV_PLAUSIBLE_MJ_PER_KG
    guesses = [
        f"{mj:.4g} MJ/kg if it is {unit}"
        for mj, unit in ((value / 1000, "kJ/kg"), (value * 4.1868 / 1000, "kcal/kg"))
        if lo <= mj <= hi
    ]
    return "give MJ/kg (as received)" + (": " + ", or ".join(guesses) if guesses else "")


NCV_PLAUSIBLE_MJ_PER_KG = (1.0, 60.0)


#: Plausible range of each lab quantity and the hint when a value falls outside: a unit mix-up (kJ/kg for
#: MJ/kg, tC/TJ for tC/GJ, percent for a fraction) would otherwise pass into regulators' figures silently.
LAB_PLAUSIBLE: dict[str, tuple[float, float, Callable[[float], str]]] = {
    "ncv_mj_per_kg": (*NCV_PLAUSIBLE_MJ_PER_KG, _ncv_hint),
    "carbon_t_per_gj": (0.005, 0.05, lambda v: f"give tC/GJ: {v / 1000:g} if it is tC/TJ (IPCC tables)"),
    "biogenic_fraction": (0.0, 1.0, lambda v: f"give a fraction: {v / 100:g} if it is {v:g} %"),
    "clinker_cao": (0.4, 0.8, lambda v: "give a fraction of clinker mass (e.g. 0.65 for 65 % CaO)"),
    "clinker_mgo": (0.0, 0.15, lambda v: "give a fraction of clinker mass (e.g. 0.02 for 2 % MgO)"),
    "clinker_ratio": (0.2, 1.0, lambda v: "give a fraction of cement mass (e.g. 0.75 for 75 %)"),
}


class LabValue(_Strict):
    """A laboratory value valid over a time range: the NCV of the coal lot fired that day, the clinker CaO of
    a shift's sample, the clinker ratio of the cement recipe. ``source`` (lab report, lot or sample id) goes
    into the provenance of every KPI that used the value.
    """

    quantity: Literal[
        "ncv_mj_per_kg", "carbon_t_per_gj", "biogenic_fraction", "clinker_cao", "clinker_mgo", "clinker_ratio"
    ] = "ncv_mj_per_kg"
    carrier: Carrier = "coal"
    line: str | None = None
    valid_from: datetime
    valid_to: datetime | None = None
    value: float = Field(ge=0)
    source: str = ""

    @model_validator(mode="after")
    def _range_and_scope(self) -> LabValue:
        if self.quantity in FRACTION_LAB_QUANTITIES and not 0.0 <= self.value <= 1.0:
            raise ValueError(f"{self.quantity} is a fraction: give a value in [0, 1] (e.g. 0.65 for 65 %)")
        if self.quantity not in FRACTION_LAB_QUANTITIES and not self.value > 0.0:
            raise ValueError(f"{self.quantity} must be > 0")
        if self.quantity in LINE_LAB_QUANTITIES and self.line is None:
            raise ValueError(f"{self.quantity} belongs to a line: add line = '<line id>'")
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        lo, hi, hint = LAB_PLAUSIBLE[self.quantity]
        if not lo <= self.value <= hi:
            raise ValueError(
                f"{self.quantity} = {self.value:g} is outside the plausible {lo:g}–{hi:g}; {hint(self.value)}"
            )
        return self

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _aware(cls, ts: datetime | None) -> datetime | None:
        if ts is not None and ts.tzinfo is None:
            raise ValueError("give a time zone offset, e.g. 2026-11-01T00:00:00+08:00")
        return ts


class MeterExchange(_Strict):
    """A meter replaced on a counter channel, as the fitter wrote it down. It wins over what the readings
    suggest: the old meter counts up to ``old_final``, the new one from ``new_initial`` on, so the quantity
    across the exchange is ``(old_final − last old reading) + (first new reading − new_initial)``.

    Values are in the readings' own units. ``new_ratio`` scales the new meter's readings (and its modulus)
    relative to the channel's unit, for a new meter with another CT/PT ratio or register resolution;
    ``new_rollover`` is its modulus (unset: the channel's ``rollover``).
    """

    channel: str
    at: datetime
    old_final: float = Field(ge=0)
    new_initial: float = Field(0.0, ge=0)
    new_rollover: float | None = Field(None, ge=0)
    new_ratio: float = Field(1.0, gt=0)
    note: str = ""

    @field_validator("at")
    @classmethod
    def _aware(cls, ts: datetime) -> datetime:
        if ts.tzinfo is None:
            raise ValueError("give a time zone offset, e.g. 2026-11-15T10:30:00+08:00")
        return ts


class Site(_Strict):
    site: SiteInfo
    lines: dict[str, Line]
    channels: dict[str, Channel]
    lab: list[LabValue] = []
    meter_exchange: list[MeterExchange] = []

    @property
    def agents(self) -> set[str]:
        """Agents named by live channel ids (``<agent>/<point>``); imported data may use any other id."""
        return {name.split("/", 1)[0] for name in self.channels if "/" in name}

    def exchanges(self, channel: str) -> list[MeterExchange]:
        """The recorded meter exchanges of one channel, oldest first."""
        return [ex for ex in self.meter_exchange if ex.channel == channel]

    def lab_values(
        self, quantity: str, *, carrier: str | None = None, line: str | None = None
    ) -> list[LabValue]:
        """Entries of one quantity for a fuel carrier or a line, oldest first (later entries override)."""
        return sorted(
            (
                v
                for v in self.lab
                if v.quantity == quantity
                and (carrier is None or v.carrier == carrier)
                and (line is None or v.line == line)
            ),
            key=lambda v: v.valid_from,
        )


def site_problems(site: Site) -> list[str]:
    """Checks across tables (channels name defined lines, exchanges name counter channels), one
    ``<key path>: <what is wrong> — <the fix>`` line each, for ``load_site``."""
    problems = []
    for name, ch in site.channels.items():
        if ch.line not in site.lines:
            problems.append(f"channels.{name}.line: names line {ch.line!r}; define [lines.{ch.line}]")
    for i, lab in enumerate(site.lab):
        if lab.line is not None and lab.line not in site.lines:
            problems.append(f"lab[{i}].line: names line {lab.line!r}; define [lines.{lab.line}]")
    last: dict[str, datetime] = {}
    counters = [n for n, c in site.channels.items() if c.kind in ChannelKind.TOTALISERS]
    for i, ex in enumerate(site.meter_exchange):
        ch = site.channels.get(ex.channel)
        if ch is None or ch.kind not in ChannelKind.TOTALISERS:
            close = difflib.get_close_matches(ex.channel, counters, n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"meter_exchange[{i}].channel: {ex.channel!r} is not a counter channel of this site model"
                " — use the channel id of an energy_total, mass_total or volume_total channel" + hint
            )
            continue
        if ex.channel in last and ex.at <= last[ex.channel]:
            problems.append(
                f"meter_exchange[{i}].at: not after the previous exchange of {ex.channel!r}"
                " — list the exchanges of a channel oldest first"
            )
        last[ex.channel] = ex.at
    return problems


def load_site(path: str | Path) -> Site:
    """Load and validate a site model with the loader every Kilnwatch file shares (``agent.config_load``):
    ``${VAR}``/``${VAR:-default}`` expanded, one ``ConfigError`` line per problem naming file, key and fix.
    The site model has no path keys."""
    return load_model(Path(path), Site, checks=site_problems)
