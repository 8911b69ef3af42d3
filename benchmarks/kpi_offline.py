"""Offline ``kpi compute`` from files: ``python -m benchmarks.kpi_offline [--days N] [--repeats N]``.

Not a test (no timed assertions). It synthesises a 40-channel clinker line read once a minute, as a plant
historian exports it (``--days``, default a year: 21 M rows): 29 energy counters in kWh (one of them the
WHR credit), three coal mass counters (two in kg, one in t), a clinker counter in t and seven power
channels in kW, with 0.05 % of readings flagged bad and 0.01 % empty. It writes them with a site model to a
temporary folder as CSV (ISO timestamps with +08:00 offsets and text quality, interleaved by time) and as
Parquet (UTC timestamps, dictionary channel ids, integer quality codes), then times, in this process:

- (a) ``collector.kpis.offline.compute(site, csv, "day")``: reading and all KPIs, from the CSV;
- (b) the same from the Parquet file;
- (c) a pandas baseline: ``pd.read_csv``, then per channel and local day the obvious ``groupby``/``diff``
  of the counters and the trapezoid of the power channels over consecutive good readings.

"of which read_readings" is the part of the same run spent reading the file; the rest is the kernels and
the KPI documents (``collector.kpis.quantities``, ``collector.kpis.line_kpis``).
Before any ratio is printed, (a), (b) and (c) must agree on every day's clinker t and electricity kWh
(1e-6 relative): a fast implementation that computes something else is worthless. Bad and empty readings
are never at a local midnight, so no pair straddles a day edge and (c) need not split pairs at the edges
as the kernels do. The figures are in docs/performance-kpi.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from collector.kpis import offline
from collector.kpis.offline import compute
from collector.readings.file import read_readings
from collector.site import Site, load_site

TZ = "Asia/Shanghai"
LOCAL_OFFSET_S = 8 * 3600  # Asia/Shanghai: UTC+8, no daylight saving time
T0_LOCAL = np.datetime64("2026-01-01T00:00", "m")  # local midnight
T0_S = float((T0_LOCAL - np.datetime64("1970-01-01T00:00", "m")).astype(np.int64) * 60 - LOCAL_OFFSET_S)
STEP_S = 60
MS_UTC = pa.timestamp("ms", "UTC")
AGENT = "line1-gw"
BAD_SHARE, EMPTY_SHARE = 5e-4, 1e-4
#: per-day totals of (a), (b) and (c) must agree to this (pandas parses floats its own way)
RTOL = 1e-6
#: goals from the issue
GOALS = {"csv_rows_per_s": 2e6, "parquet_rows_per_s": 10e6, "vs_pandas": 5.0}


@dataclass(frozen=True)
class Meter:
    """One channel of the synthetic line: its id, site-model kind and unit, and its level."""

    point: str
    kind: str  # energy_total, mass_total or power
    unit: str
    carrier: str
    level: float  # kW for electricity, t/h for masses
    role: str = "consumption"
    fuel: str | None = None

    @property
    def channel(self) -> str:
        return f"{AGENT}/{self.point}"


SECTIONS = (
    "crusher", "raw_mill_main", "raw_mill_fan", "raw_mill_separator", "homogenising", "raw_meal_feed",
    "preheater_fan_a", "preheater_fan_b", "kiln_drive", "kiln_burner", "calciner_burner", "cooler_drive",
    "cooler_fan_1", "cooler_fan_2", "cooler_fan_3", "cooler_fan_4", "clinker_crusher", "clinker_conveyor",
    "coal_mill_main", "coal_mill_fan", "coal_feed", "kiln_bag_filter", "kiln_id_fan", "compressors",
    "water_pumps", "lighting_hvac", "lab_and_offices", "aux_transformer",
)  # fmt: skip
POWER = (
    "kiln_id_fan_drive",
    "exhaust_fan",
    "cooler_vent_fan",
    "bypass_fan",
    "raw_meal_lift",
    "coal_pump",
    "fan_9",
)
METERS = (
    *(
        Meter(f"{s}_kwh", "energy_total", "kWh", "electricity", 150.0 + 37.0 * i)
        for i, s in enumerate(SECTIONS)
    ),
    Meter("whr_kwh", "energy_total", "kWh", "electricity", 7500.0, role="credit"),
    Meter("coal_kiln_kg", "mass_total", "kg", "coal", 11.0, fuel="bituminous"),
    Meter("coal_calciner_kg", "mass_total", "kg", "coal", 16.0, fuel="bituminous"),
    Meter("coal_calciner_2_t", "mass_total", "t", "coal", 2.5, fuel="bituminous"),
    Meter("clinker_t", "mass_total", "t", "clinker", 208.0, role="output"),
    *(Meter(f"{p}_kw", "power", "kW", "electricity", 400.0 + 90.0 * i) for i, p in enumerate(POWER)),
)
assert len(METERS) == 40


def site_toml() -> str:
    """A site model with one clinker line naming every meter, and the coal's NCV from before the data."""
    out = [
        '[site]\nid = "bench"\ntimezone = "Asia/Shanghai"\nbase_interval_s = 900\n',
        "[lines.L1]\n",
        '[[lab]]\nquantity = "ncv_mj_per_kg"\ncarrier = "coal"\nvalid_from = 2020-01-01T00:00:00+08:00\n'
        'value = 23.0\nsource = "benchmark"\n',
    ]
    for m in METERS:
        block = f'[channels."{m.channel}"]\nkind = "{m.kind}"\nunit = "{m.unit}"\nline = "L1"\n'
        block += f'role = "{m.role}"\ncarrier = "{m.carrier}"\n'
        if m.fuel:
            block += f'fuel = "{m.fuel}"\n'
        out.append(block)
    return "\n".join(out)


@dataclass(frozen=True)
class Readings:
    """Readings of all meters, shape (times, channels): what both files hold."""

    t_s: np.ndarray  # (n,) epoch seconds
    values: np.ndarray  # (n, 40), NaN where empty
    good: np.ndarray  # (n, 40) bool

    @property
    def rows(self) -> int:
        return self.values.size


def synthesise(days: int, seed: int = 11) -> Readings:
    """One reading a minute from local midnight for ``days`` days, both ends included; counters quantised
    as meters are (0.01 kWh, whole kg, 0.001 t), power to 0.1 kW."""
    rng = np.random.default_rng(seed)
    n = days * 1440 + 1
    t_s = T0_S + STEP_S * np.arange(n, dtype=np.float64)
    day_phase = 2 * np.pi * (t_s + LOCAL_OFFSET_S) / 86400.0
    values = np.empty((n, len(METERS)))
    for c, m in enumerate(METERS):
        wander = 1.0 + 0.08 * np.sin(day_phase + c) + 0.02 * np.sin(day_phase / 7.3 + 2 * c)
        level = m.level * wander * (1.0 + 0.01 * rng.standard_normal(n))
        if m.kind == "power":
            values[:, c] = np.round(level, 1)
            continue
        per_step = level * STEP_S / 3600.0  # kWh or t per minute
        scale, digits = (1000.0, 0) if m.unit == "kg" else (1.0, 3 if m.unit == "t" else 2)
        start = rng.uniform(1e5, 5e6)
        values[:, c] = np.round(start + scale * np.concatenate(([0.0], np.cumsum(per_step[1:]))), digits)
    at_midnight = ((t_s + LOCAL_OFFSET_S) % 86400.0 == 0.0)[:, None]
    draw = rng.random(values.shape)
    good = ~((draw < BAD_SHARE) & ~at_midnight)
    empty = (draw > 1.0 - EMPTY_SHARE) & ~at_midnight
    values[empty] = np.nan
    return Readings(t_s, values, good)


def write_files(r: Readings, folder: Path) -> tuple[Path, Path, Path]:
    """site.toml, readings.csv (historian style) and readings.parquet; return their paths."""
    site = folder / "site.toml"
    site.write_text(site_toml(), encoding="utf-8")
    n, k = r.values.shape
    local = T0_LOCAL + np.arange(n).astype("timedelta64[m]")
    stamps = pa.array(np.char.add(np.datetime_as_string(local, unit="s"), "+08:00").tolist())
    names = pa.array([m.channel for m in METERS])
    codes = pa.array(np.tile(np.arange(k, dtype=np.int32), n))
    values = pa.array(r.values.ravel(), mask=np.isnan(r.values.ravel()))
    good = r.good.ravel()
    csv_table = pa.table({
        "timestamp": stamps.take(pa.array(np.repeat(np.arange(n), k))),
        "channel": names.take(codes),
        "value": values,
        "quality": pa.array(np.where(good, "good", "bad")),
    })  # fmt: skip
    csv_path = folder / "readings.csv"
    pacsv.write_csv(csv_table, csv_path, pacsv.WriteOptions(quoting_style="needed"))
    del csv_table
    parquet_table = pa.table({
        "timestamp": pa.array(np.repeat(np.round(r.t_s * 1e3).astype(np.int64), k), MS_UTC),
        "channel": pa.DictionaryArray.from_arrays(codes, names),
        "value": values,
        "quality": pa.array(np.where(good, 0, 2).astype(np.int8)),
    })  # fmt: skip
    parquet_path = folder / "readings.parquet"
    pq.write_table(parquet_table, parquet_path)
    return site, csv_path, parquet_path


# --- the three implementations -------------------------------------------------------------------------


def daily_from_docs(docs: list[dict]) -> pd.DataFrame:
    """Per local day (start, epoch s): clinker t and electricity kWh of the KPI documents."""
    return pd.DataFrame(
        {
            "clinker_t": [d["clinker_t"] for d in docs],
            "electricity_kwh": [d["electricity_kwh"] for d in docs],
        },
        index=pd.Index([d["start_ms"] / 1000.0 for d in docs], name="day"),
    )


def pandas_daily(csv_path: Path, site: Site) -> pd.DataFrame:
    """What a pandas user writes: read the CSV, keep good readings, then per channel ``diff`` (counters)
    or the trapezoid (power, pairs no longer than the channel's gap limit), summed by the local day in
    which each pair starts."""
    df = pd.read_csv(csv_path)
    df = df[df["quality"].str.strip().str.lower().eq("good") & np.isfinite(df["value"])]
    df = df.assign(t=pd.to_datetime(df["timestamp"], format="ISO8601", utc=True))
    df = df.sort_values(["channel", "t"], kind="stable")
    by_channel = df.groupby("channel", sort=False)
    prev_t = by_channel["t"].shift()
    prev_v = by_channel["value"].shift()
    dt = (df["t"] - prev_t).dt.total_seconds()
    kinds = df["channel"].map({c: ch.kind for c, ch in site.channels.items()})
    factors = df["channel"].map({c: ch.factor for c, ch in site.channels.items()})
    gap = df["channel"].map({c: ch.gap_limit_s for c, ch in site.channels.items()})
    counted = np.where(kinds == "power", 0.5 * (df["value"] + prev_v) * dt / 3600.0, df["value"] - prev_v)
    counted = pd.Series(counted, index=df.index).where(~((kinds == "power") & (dt > gap)), 0.0) * factors
    day = prev_t.dt.tz_convert(TZ).dt.floor("D")
    sums = counted.groupby([df["channel"], day]).sum()
    per_channel = sums.unstack(level=0).fillna(0.0)
    per_channel.index = per_channel.index.map(lambda d: d.timestamp())
    clinker = [c for c, ch in site.channels.items() if ch.carrier == "clinker" and ch.role == "output"]
    electricity = [
        c
        for c, ch in site.channels.items()
        if ch.carrier == "electricity" and ch.role == "consumption" and ch.boundary == "clinker"
    ]
    return pd.DataFrame(
        {
            "clinker_t": per_channel[clinker].sum(axis=1),
            "electricity_kwh": per_channel[electricity].sum(axis=1),
        }
    ).rename_axis("day")


def check_agree(reference: pd.DataFrame, other: pd.DataFrame, who: str) -> float:
    """Largest relative difference over days and columns; AssertionError beyond ``RTOL``."""
    if not np.array_equal(reference.index.to_numpy(), other.index.to_numpy()):
        raise AssertionError(
            f"{who}: days differ: {list(other.index[:3])} … vs {list(reference.index[:3])} …"
        )
    a, b = reference.to_numpy(), other[reference.columns].to_numpy()
    rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-12)
    worst = float(rel.max())
    if not worst <= RTOL:
        day, col = np.unravel_index(np.argmax(rel), rel.shape)
        raise AssertionError(
            f"{who} differs on day {reference.index[day]} {reference.columns[col]}: {b[day, col]!r} vs"
            f" {a[day, col]!r} (relative {worst:.2e} > {RTOL:g})"
        )
    return worst


def best(action: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` runs and the last result."""
    seconds, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = action()
        seconds = min(seconds, time.perf_counter() - start)
    return seconds, result


def best_compute(site: Site, path: Path, repeats: int) -> tuple[float, float, list[dict]]:
    """Best of ``repeats`` ``compute`` runs: its wall time, the part of it spent in ``read_readings``
    (timed inside the same run, by wrapping the function ``compute`` calls) and the documents."""
    runs: list[tuple[float, float]] = []
    reading: list[float] = []

    def timed_read(p: Path):
        start = time.perf_counter()
        try:
            return read_readings(p)
        finally:
            reading.append(time.perf_counter() - start)

    docs: list[dict] = []
    offline.read_readings = timed_read
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            docs = compute(site, path, "day")
            runs.append((time.perf_counter() - start, reading[-1]))
    finally:
        offline.read_readings = read_readings
    total, read = min(runs)
    return total, read, docs


def goal(met: bool, text: str) -> str:
    return f"{text}: {'met' if met else 'NOT met'}"


def run(days: int, repeats: int, folder: Path) -> dict[str, float]:
    """Write the files to ``folder``, time (a), (b), (c), check agreement, print the table."""
    start = time.perf_counter()
    readings = synthesise(days)
    site_path, csv_path, parquet_path = write_files(readings, folder)
    del readings
    site = load_site(site_path)
    rows = sum(len(s.t_s) for s in read_readings(parquet_path).values())  # also warms numba's caches
    compute(site, parquet_path, "day")
    prepared = time.perf_counter() - start
    mb = {p: p.stat().st_size / 1e6 for p in (csv_path, parquet_path)}
    print(
        f"{days} day(s) × 1440 readings/day × {len(METERS)} channels = {rows:,} rows;"
        f" CSV {mb[csv_path]:,.0f} MB, Parquet {mb[parquet_path]:,.0f} MB; written and warmed up in"
        f" {prepared:.1f} s; best of {repeats}"
    )
    t_csv, r_csv, docs_csv = best_compute(site, csv_path, repeats)
    t_pq, r_pq, docs_pq = best_compute(site, parquet_path, repeats)
    t_pd, daily_pd = best(lambda: pandas_daily(csv_path, site), 1)
    daily_csv = daily_from_docs(docs_csv)
    worst_pq = check_agree(daily_csv, daily_from_docs(docs_pq), "(b) Parquet")
    worst_pd = check_agree(daily_csv, daily_pd, "(c) pandas")
    print(
        f"agreement on {len(daily_csv)} days × (clinker t, electricity kWh): (b) vs (a) ≤ {worst_pq:.1e},"
        f" (c) vs (a) ≤ {worst_pd:.1e} relative (tolerance {RTOL:g}): agree"
    )
    print(f"{'':<40}{'wall s':>8}{'M rows/s':>10}{'× pandas':>10}  goal")
    rows_s = {"csv": rows / t_csv, "parquet": rows / t_pq}
    table = [
        ("(a) kpi compute from CSV", t_csv, goal(rows_s["csv"] >= GOALS["csv_rows_per_s"], "≥ 2 M rows/s")
         + "; " + goal(t_pd / t_csv >= GOALS["vs_pandas"], "≥ 5× pandas")),
        ("    of which read_readings", r_csv, None),
        ("    of which kernels and KPI documents", t_csv - r_csv, None),
        ("(b) kpi compute from Parquet", t_pq,
         goal(rows_s["parquet"] >= GOALS["parquet_rows_per_s"], "≥ 10 M rows/s")),
        ("    of which read_readings", r_pq, None),
        ("    of which kernels and KPI documents", t_pq - r_pq, None),
        ("(c) pandas read_csv + groupby/diff", t_pd, ""),
    ]  # fmt: skip
    for label, seconds, note in table:
        ratio = "" if note is None else f"{t_pd / seconds:.1f}"
        print(f"{label:<40}{seconds:>8.2f}{rows / seconds / 1e6:>10.1f}{ratio:>10}  {note or ''}".rstrip())
    return {
        "rows": rows,
        "csv_s": t_csv,
        "parquet_s": t_pq,
        "pandas_s": t_pd,
        "worst_rel": max(worst_pq, worst_pd),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365, help="days of one-minute readings (default a year)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of (a) and (b), best kept")
    parser.add_argument(
        "--keep", type=Path, help="write the files here and keep them (default: a temp folder)"
    )
    args = parser.parse_args(argv)
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, pyarrow {pa.__version__},"
        f" numpy {np.__version__}, pandas {pd.__version__}"
    )
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.days, args.repeats, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="kpi_offline_") as folder:
            run(args.days, args.repeats, Path(folder))


if __name__ == "__main__":
    main()
