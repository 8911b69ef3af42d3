"""Readings files from other systems: CSV (plain or gzip), Parquet, and what a bad one is told to change.

Real files in a temporary folder; the CLI as a user runs it (``kilnwatch kpi compute`` in a subprocess) for
the options (``--from/--to``, ``--naive-times``, ``--quality``) and warnings, direct calls to
``read_readings`` for the formats and errors. The exports of SCADA historians and IoT platforms (local
times, other column names, OPC quality) are imitated in the last section, their KPIs checked by hand.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collector.kpis.offline import channel_mismatches, compute
from collector.readings.file import ReadingsError, read_readings
from collector.site import load_site

SITE = """
[site]
id = "files"
timezone = "Asia/Shanghai"

[lines.L1]

[channels."a/elec_kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "consumption"
carrier = "electricity"

[channels."a/clinker_t"]
kind = "mass_total"
unit = "t"
line = "L1"
role = "output"
carrier = "clinker"
"""

# Local 2026-11-02 00:30 … 02:30 Asia/Shanghai. Each pair of good readings spans a local hour edge:
# electricity 1000 → 1600 kWh over 00:30–01:30 and 1600 → 2200 over 01:30–02:30 (a bad 99999 at 00:50 in
# between is skipped); clinker 0 → 60 → 120 t at the same times.
READINGS = """timestamp,channel,value,quality
2026-11-02T00:30:00+08:00,a/elec_kwh,1000,good
2026-11-02T00:30:00+08:00,a/clinker_t,0,good
2026-11-02T00:50:00+08:00,a/elec_kwh,99999,bad
2026-11-01T17:30:00Z,a/elec_kwh,1600,good
2026-11-01T17:30:00Z,a/clinker_t,60,good
2026-11-02T02:30:00+08:00,a/elec_kwh,2200,good
2026-11-02T02:30:00+08:00,a/clinker_t,120,good
"""


def kilnwatch(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "agent.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def kpi_compute(site: Path, readings: Path, *extra: str) -> subprocess.CompletedProcess:
    return kilnwatch("kpi", "compute", "--site", str(site), "--readings", str(readings), *extra)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE)
    return path


def write(tmp_path: Path, text: str, name: str = "readings.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def error(path: Path) -> str:
    with pytest.raises(ReadingsError) as info:
        read_readings(path)
    return str(info.value)


# --- formats -------------------------------------------------------------------------------------------


def test_plain_csv_columns_in_any_order_and_extra_columns_ignored(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Quality,unit, Value ,Channel,TIMESTAMP\n"
        "good,kWh,10.5,meter 7 (hall B),2026-11-01T00:00:00Z\n"
        "uncertain,kWh,11,meter 7 (hall B),2026-11-01T00:01:00Z\n"
        "good,t,3,kiln/feed,2026-11-01T00:00:00Z\n",
    )
    got = read_readings(path)
    assert list(got) == ["meter 7 (hall B)", "kiln/feed"]  # any string is a channel id
    s = got["meter 7 (hall B)"]
    assert s.t_s.dtype == np.float64 and s.values.dtype == np.float64 and s.good.dtype == np.uint8
    assert s.t_s.tolist() == [epoch("2026-11-01T00:00:00+00:00"), epoch("2026-11-01T00:01:00+00:00")]
    assert s.values.tolist() == [10.5, 11.0]
    assert s.good.tolist() == [1, 0]


def test_gzip_is_recognised_by_its_magic_bytes_whatever_the_name(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"  # gzipped, yet named .csv: the per-row reader failed on byte 0x8b
    path.write_bytes(gzip.compress(READINGS.encode()))
    got = read_readings(path)
    assert got["a/elec_kwh"].values.tolist() == [1000, 99999, 1600, 2200]
    assert got["a/elec_kwh"].good.tolist() == [1, 0, 1, 1]


def test_gzip_readings_through_the_cli(site: Path, tmp_path: Path) -> None:
    path = tmp_path / "historian.dat"
    path.write_bytes(gzip.compress(READINGS.encode()))
    proc = kpi_compute(site, path, "--period", "hour")
    assert proc.returncode == 0, proc.stderr
    assert [d["electricity_kwh"] for d in json.loads(proc.stdout)] == pytest.approx([300, 600, 300])


def test_parquet_written_with_pyarrow(tmp_path: Path) -> None:
    table = pa.table({
        "channel": pa.array(["b", "a", "b", "a"]).dictionary_encode(),
        "value": pa.array([2.0, 1.0, None, 3.0]),
        "timestamp": pa.array([1_000_000_000_000, 1_000_000_000_000, 1_000_000_060_250, 1_000_000_060_000],
                              pa.timestamp("ms", tz="UTC")),
        "quality": pa.array([0, 0, 0, 2], pa.int8()),
        "site": ["x", "x", "x", "x"],
    })  # fmt: skip
    path = tmp_path / "readings.parquet"
    pq.write_table(table, path, row_group_size=2)
    got = read_readings(path)
    assert got["b"].t_s.tolist() == [1_000_000_000.0, 1_000_000_060.25]
    assert np.isnan(got["b"].values[1]) and got["b"].good.tolist() == [1, 0]  # null = missing
    assert got["a"].values.tolist() == [1.0, 3.0] and got["a"].good.tolist() == [1, 0]


def test_parquet_with_text_timestamps_and_quality_words(tmp_path: Path) -> None:
    table = pa.table({
        "timestamp": ["2026-11-01T08:00:00+08:00", "2026-11-01T00:00:30Z"],
        "channel": ["a", "a"],
        "value": pa.array([1, 2], pa.int32()),
        "quality": ["Good", " BAD "],
    })  # fmt: skip
    path = tmp_path / "readings.parquet"
    pq.write_table(table, path)
    got = read_readings(path)["a"]
    assert got.t_s.tolist() == [epoch("2026-11-01T00:00:00+00:00"), epoch("2026-11-01T00:00:30+00:00")]
    assert got.values.tolist() == [1.0, 2.0] and got.good.tolist() == [1, 0]


def test_quality_as_words_in_any_case_or_as_wire_codes(tmp_path: Path) -> None:
    rows = ["good", " Good ", "GOOD", "uncertain", "Bad", "0", "1", "2", "good"]
    values = ["1"] * 8 + [""]  # the last is good but empty: missing, so not good
    text = "timestamp,channel,value,quality\n" + "".join(
        f"2026-11-01T00:0{i}:00Z,c,{v},{q}\n" for i, (q, v) in enumerate(zip(rows, values, strict=True))
    )
    got = read_readings(write(tmp_path, text))["c"]
    assert got.good.tolist() == [1, 1, 1, 0, 0, 1, 0, 0, 0]
    assert np.isnan(got.values[-1])


def test_iso_timestamps_with_mixed_offsets_z_fractions_and_a_space(tmp_path: Path) -> None:
    stamps = [
        "2026-11-01T08:00:00+08:00",
        "2026-11-01T00:00:00.250Z",
        "2026-11-01 01:30:00+01:30",
        "2026-10-31T19:00:00.5-05:00",
    ]
    text = "timestamp,channel,value,quality\n" + "".join(f"{s},c,{i},0\n" for i, s in enumerate(stamps))
    got = read_readings(write(tmp_path, text))["c"]
    # times as datetime gives them (exactly), sorted: values 0, 1, 2, 3 are at +0, +0.25, +0, +0.5 s
    expected = sorted((epoch(s.replace(" ", "T").replace("Z", "+00:00")), i) for i, s in enumerate(stamps))
    assert got.t_s.tolist() == [t for t, _ in expected]
    assert got.values.tolist() == [0.0, 2.0, 1.0, 3.0]  # equal times keep their file order


def test_integer_milliseconds(tmp_path: Path) -> None:
    text = "timestamp,channel,value,quality\n1793548800000,c,1,0\n1793548800250,c,2,0\n"
    got = read_readings(write(tmp_path, text))["c"]
    assert got.t_s.tolist() == [1_793_548_800.0, 1_793_548_800.25]


@pytest.mark.parametrize("text", ["timestamp,channel,value,quality", "timestamp,channel,value,quality\r\n\n"])
def test_a_header_alone_is_no_readings(tmp_path: Path, text: str) -> None:
    assert read_readings(write(tmp_path, text)) == {}


def test_semicolons_tabs_a_byte_order_mark_and_quoted_cells(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        b'\xef\xbb\xbftimestamp;channel;value;quality\r\n2026-11-01T00:00:00Z;"hall; B";1.5;Good\r\n'
    )
    assert read_readings(path)["hall; B"].values.tolist() == [1.5]
    path = write(tmp_path, "timestamp\tchannel\tvalue\tquality\n2026-11-01T00:00:00Z\tc\t2\t0\n")
    assert read_readings(path)["c"].values.tolist() == [2.0]


def test_rows_are_sorted_per_channel_and_blank_lines_skipped(tmp_path: Path) -> None:
    text = (
        "timestamp,channel,value,quality\n"
        "2026-11-01T00:02:00Z,c,3,0\n\n"
        "2026-11-01T00:00:00Z,c,1,0\r\n"
        "2026-11-01T00:01:00Z,d,9,0\n"
        "2026-11-01T00:01:00Z,c,2,0\n"
    )
    got = read_readings(write(tmp_path, text))
    assert got["c"].values.tolist() == [1.0, 2.0, 3.0]
    assert np.all(np.diff(got["c"].t_s) > 0)
    assert got["d"].values.tolist() == [9.0]


def test_many_chunks_interleaved_channels_match_a_per_row_reading(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 200_000  # several pyarrow blocks: chunks placed by worker threads, some without runs of one time
    ch = rng.integers(0, 7, n)
    t = epoch("2026-11-01T00:00:00+08:00") + np.arange(n) // 7 * 60.0  # 7 rows per minute, as exported
    half = n // 2  # the second half out of order within a channel, at times in three zones
    t[half:] += rng.integers(0, 3, n - half) * 20.0 + rng.integers(0, 7, n - half) * 0.125
    v = np.round(rng.uniform(0, 1e6, n), 3)
    q = rng.choice(["good", "bad", "0", "1"], n)
    zones = [ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin"), UTC]
    stamps = [
        datetime.fromtimestamp(x, zones[0 if i < half else i % 3]).isoformat()
        for i, x in enumerate(t.tolist())
    ]
    lines = "".join(
        f"{s},ch{c},{x!r},{w}\n" for s, c, x, w in zip(stamps, ch.tolist(), v.tolist(), q, strict=True)
    )
    got = read_readings(write(tmp_path, "timestamp,channel,value,quality\n" + lines))
    for c in range(7):
        rows = np.flatnonzero(ch == c)
        order = rows[np.argsort(t[rows], kind="stable")]
        s = got[f"ch{c}"]
        assert s.t_s.tolist() == t[order].tolist()
        assert s.values.tolist() == v[order].tolist()
        assert s.good.tolist() == np.isin(q[order], ["good", "0"]).astype(np.uint8).tolist()


# --- errors --------------------------------------------------------------------------------------------


def test_file_not_found(tmp_path: Path) -> None:
    assert error(tmp_path / "nope.csv") == f"{tmp_path / 'nope.csv'}: file not found"


def test_a_bad_cell_deep_in_a_large_file_names_its_line(tmp_path: Path) -> None:
    minutes = [
        datetime.fromtimestamp(epoch("2026-11-01T00:00:00+08:00") + 60 * i, UTC) for i in range(20_000)
    ]
    rows = [f"{m.isoformat()},ch{c},{i},good\n" for i, m in enumerate(minutes) for c in range(5)]
    rows[30_000] = "\n" + rows[30_000]  # a blank line: pyarrow does not count it, the message must
    for cell, broken, problem in (("+00:00,", ",", "has no offset"), (",good", ",god", "quality 'god' is")):
        bad = [*rows[:77_777], rows[77_777].replace(cell, broken), *rows[77_778:]]
        path = write(tmp_path, "timestamp,channel,value,quality\n" + "".join(bad))
        message = error(path)
        assert message.startswith(f"{path}: line 77780: "), message
        assert problem in message


def test_timestamp_without_offset_names_line_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, READINGS + "2026-11-02T03:00:00,a/elec_kwh,2300,good\n")
    message = error(path)
    assert message.startswith(f"{path}: line 9: timestamp '2026-11-02T03:00:00' has no offset")
    assert "add an offset such as +08:00 or Z" in message


def test_naive_timestamp_through_the_cli_exits_2(site: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,channel,value,quality\n2026-11-02 00:30,a/elec_kwh,1,good\n")
    proc = kpi_compute(site, path)
    assert proc.returncode == 2
    assert f"{path}: line 2: timestamp '2026-11-02 00:30' has no offset" in proc.stderr
    assert (
        "add an offset such as +08:00 or Z (e.g. 2026-11-01T08:00:00+08:00), or pass --naive-times site to"
        " read such times in the site's time zone (Asia/Shanghai)"
    ) in proc.stderr


def test_unknown_quality_names_line_and_what_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, READINGS.replace("1600,good", "1600,OK"))
    message = error(path)
    assert message.startswith(f"{path}: line 5: quality 'OK' is not accepted")
    assert "good, uncertain or bad (any case), or the codes 0 = good, 1 = uncertain, 2 = bad" in message
    path = write(
        tmp_path,
        "timestamp,channel,value,quality\n2026-11-01T00:00:00Z,c,1,0\n\n2026-11-01T00:01:00Z,c,1,300\n",
    )
    assert error(path).startswith(f"{path}: line 4: quality '300' is not accepted")
    path = write(tmp_path, "timestamp,channel,value,quality\n2026-11-01T00:00:00Z,c,1,\n")
    assert error(path).startswith(f"{path}: line 2: empty quality; use good, uncertain or bad")


def test_bad_value_names_line_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, READINGS.replace("a/clinker_t,60,", "a/clinker_t,6O,"))  # a letter O
    message = error(path)
    assert message.startswith(f"{path}: line 6: value '6O' is not a number")
    assert "leave the cell empty for a missing reading" in message
    # a spreadsheet's semicolons are recognised, its decimal comma is not guessed
    path = write(tmp_path, "timestamp;channel;value;quality\n\n\n2026-11-01T00:00:00Z;c;1,5;0\n")
    assert error(path).startswith(f"{path}: line 4: value '1,5' is not a number; write numbers with '.'")


def test_a_row_with_too_few_fields_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, READINGS + "2026-11-02T03:00:00Z,a/elec_kwh,2300\n")
    assert error(path).startswith(f"{path}: line 9: 3 fields where the header has 4")


def test_not_utf8_names_file_and_how_to_export(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(READINGS.replace("a/elec_kwh", "a/elec_kwh_\u00b0").encode("latin-1"))
    message = error(path)
    assert message.startswith(f"{path}: line 2: not a UTF-8 CSV, a gzip CSV or a Parquet file")
    assert "export it as CSV in UTF-8" in message
    # a gzip stream whose magic bytes were lost (the old reader's "can't decode byte 0x8b" case)
    path.write_bytes(gzip.compress(READINGS.encode(), mtime=0)[3:])
    assert error(path).startswith(f"{path}: line 1: not a UTF-8 CSV, a gzip CSV or a Parquet file")
    path.write_bytes(b"PK\x03\x04 an xlsx workbook")
    assert error(path).startswith(f"{path}: a zip archive or an Excel workbook, not a UTF-8 CSV")


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "readings.csv.gz"
    data = gzip.compress((READINGS * 2000).encode())
    path.write_bytes(data[: len(data) // 2])
    message = error(path)
    assert message.startswith(f"{path}: the gzip file is truncated")
    assert "export it again" in message


def test_missing_columns_are_named_with_what_was_found(tmp_path: Path) -> None:
    path = write(tmp_path, "when,what,value,quality\n2026-11-01T00:00:00Z,c,1,0\n")
    message = error(path)
    assert message.startswith(f"{path}: line 1: the header has no column timestamp, channel (found 'when',")
    assert "(found 'when', 'what', 'value', 'quality')" in message
    assert "timestamp may be named time, ts, datetime, date_time, timestamp_utc, _time" in message
    path = write(tmp_path, "ts,key\n1793491200000,c\n")
    assert error(path).startswith(f"{path}: line 1: the header has no column value (found 'ts', 'key')")
    path = write(tmp_path, "")
    assert error(path) == f"{path}: empty file; line 1 must be the header timestamp,channel,value,quality"


def test_parquet_with_wrong_column_types(tmp_path: Path) -> None:
    path = tmp_path / "readings.parquet"
    base = {"timestamp": pa.array([1_793_548_800_000], pa.timestamp("ms", tz="UTC")), "channel": ["c"],
            "value": [1.0], "quality": [0]}  # fmt: skip
    pq.write_table(pa.table(base | {"value": ["1.0"]}), path)
    assert error(path) == (
        f"{path}: column 'value' is string; it must be a number, float or integer"
        " (null for a missing reading)"
    )
    pq.write_table(pa.table(base | {"timestamp": pa.array([1_793_548_800_000], pa.timestamp("ms"))}), path)
    message = error(path)
    assert message.startswith(
        f"{path}: column 'timestamp' is a timestamp without a time zone (timestamp[ms])"
    )
    assert "add an offset such as +08:00 or Z when writing it" in message
    pq.write_table(pa.table(base | {"quality": [300]}), path)
    assert error(path).startswith(f"{path}: row 1: quality 300 is not accepted")
    pq.write_table(pa.table({k: v for k, v in base.items() if k != "channel"}), path)
    assert "the file has no column channel" in error(path)


# --- kpi compute: --from/--to and channel warnings -------------------------------------------------------


def test_from_to_split_a_counters_delta_at_the_boundary(site: Path, tmp_path: Path) -> None:
    readings = write(tmp_path, READINGS)
    # 01:00–02:00 local: half of 1000 → 1600 (00:30–01:30) and half of 1600 → 2200 (01:30–02:30)
    proc = kpi_compute(
        site, readings, "--period", "hour", "--from", "2026-11-02T01:00", "--to", "2026-11-01T18:00Z"
    )
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    assert doc["start"] == "2026-11-01T17:00:00Z" and doc["end"] == "2026-11-01T18:00:00Z"
    assert doc["electricity_kwh"] == pytest.approx(300 + 300, rel=1e-12)
    assert doc["clinker_t"] == pytest.approx(30 + 30, rel=1e-12)
    # the same hour as computed from the whole file, where nothing is trimmed
    whole = json.loads(kpi_compute(site, readings, "--period", "hour").stdout)
    assert [d["electricity_kwh"] for d in whole] == pytest.approx([300, 600, 300])
    assert whole[1]["start"] == doc["start"] and whole[1]["clinker_t"] == doc["clinker_t"]


def test_from_to_direct_and_out_of_range(tmp_path: Path) -> None:
    model = load_site(write(tmp_path, SITE, "site.toml"))
    readings = write(tmp_path, READINGS)
    docs = compute(model, readings, "hour", start_s=epoch("2026-11-02T02:00:00+08:00"))
    assert [d["electricity_kwh"] for d in docs] == pytest.approx([300])
    (day,) = compute(model, readings, "day", end_s=epoch("2026-11-02T01:10:00+08:00"))  # inside the day
    assert day["start_local"].startswith("2026-11-02T00:00") and day["electricity_kwh"] == pytest.approx(1200)
    with pytest.raises(
        ValueError, match=r"no readings from 2026-11-03T00:00:00\+08:00; the file's readings run"
    ):
        compute(model, readings, "day", start_s=epoch("2026-11-03T00:00:00+08:00"))
    with pytest.raises(ValueError, match="must be after the start"):
        compute(
            model,
            readings,
            "day",
            start_s=epoch("2026-11-03T00:00:00+08:00"),
            end_s=epoch("2026-11-02T00:00:00+08:00"),
        )


def test_a_bad_from_option_says_what_to_give(site: Path, tmp_path: Path) -> None:
    proc = kpi_compute(site, write(tmp_path, READINGS), "--from", "yesterday")
    assert proc.returncode == 2
    assert "--from 'yesterday': give a site-local date or time such as 2026-11-01" in proc.stderr


def test_a_misspelt_channel_is_warned_with_a_did_you_mean(site: Path, tmp_path: Path) -> None:
    readings = write(
        tmp_path,
        READINGS.replace("a/elec_kwh", "a/elec_kWh") + "2026-11-02T00:30:00+08:00,a/temp_c,900,good\n",
    )
    proc = kpi_compute(site, readings, "--period", "hour")
    assert proc.returncode == 0, proc.stderr
    assert (
        f"warning: {readings}: site model channel 'a/elec_kwh' has no readings in the file;"
        " did you mean 'a/elec_kWh'?"
    ) in proc.stderr
    assert (
        f"warning: {readings}: channel 'a/elec_kWh' of the file is not in the site model; its readings are"
        " ignored; did you mean 'a/elec_kwh'?"
    ) in proc.stderr
    assert (
        "channel 'a/temp_c' of the file is not in the site model; its readings are ignored\n" in proc.stderr
    )
    assert [d["clinker_t"] for d in json.loads(proc.stdout)] == pytest.approx([30, 60, 30])


def test_no_matching_channel_keeps_the_error(site: Path, tmp_path: Path) -> None:
    readings = write(tmp_path, READINGS.replace("a/", "b/"))
    proc = kilnwatch("kpi", "deviations", "--site", str(site), "--readings", str(readings),
                     "--fit-from", "2026-11-01", "--fit-to", "2026-11-03")  # fmt: skip
    assert proc.returncode == 2
    assert f"{readings}: no readings of any channel named in the site model" in proc.stderr
    assert "did you mean 'b/elec_kwh'?" in proc.stderr


def test_channel_mismatches_lists_both_sides_and_counts_the_rest(tmp_path: Path) -> None:
    model = load_site(write(tmp_path, SITE, "site.toml"))
    assert channel_mismatches(model, ["a/elec_kwh", "a/clinker_t"]) == []
    tags = ["a/clinker-t", *(f"historian/tag{i:03d}" for i in range(25))]
    got = channel_mismatches(model, tags)
    assert (
        got[0] == "site model channel 'a/clinker_t' has no readings in the file; did you mean 'a/clinker-t'?"
    )
    assert got[1] == "site model channel 'a/elec_kwh' has no readings in the file"
    assert got[2] == (
        "channel 'a/clinker-t' of the file is not in the site model; its readings are ignored;"
        " did you mean 'a/clinker_t'?"
    )
    assert got[-1] == "... and 6 more channels of the file not in the site model"
    assert len(got) == 2 + 20 + 1


# --- exports of other systems: local times, column aliases, OPC quality ----------------------------------

BERLIN_SITE = SITE.replace("Asia/Shanghai", "Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def quantity(doc: dict, channel: str = "a/elec_kwh") -> float:
    return doc["channels"][channel]["quantity"]


def test_naive_times_in_the_sites_zone_through_the_cli(site: Path, tmp_path: Path) -> None:
    # By hand: Asia/Shanghai is UTC+8 all year, so 2026-11-01T08:00 there is 2026-11-01T00:00Z. A counter
    # read 100 kWh at 08:00 (no offset), 130 at 01:00Z (= 09:00 local, its own offset kept) and 160 at
    # 10:00 written with slashes, as Excel does: 30 kWh in each of the local hours 08–09 and 09–10.
    path = write(
        tmp_path,
        "timestamp,channel,value,quality\n"
        "2026-11-01T08:00:00,a/elec_kwh,100,good\n"
        "2026-11-01T01:00:00Z,a/elec_kwh,130,good\n"
        "2026/11/1 10:00:00,a/elec_kwh,160,good\n",
    )
    proc = kpi_compute(site, path, "--period", "hour", "--naive-times", "site")
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert [d["start"] for d in docs] == ["2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z"]
    assert [d["start_local"] for d in docs] == ["2026-11-01T08:00:00+08:00", "2026-11-01T09:00:00+08:00"]
    assert [quantity(d) for d in docs] == pytest.approx([30, 30], rel=1e-12)
    assert docs[0]["start_ms"] == 1_793_491_200_000
    refused = kpi_compute(site, path, "--period", "hour")  # the default still refuses them
    assert refused.returncode == 2 and f"{path}: line 2: timestamp '2026-11-01T08:00:00'" in refused.stderr


@pytest.mark.parametrize("repeated", [False, True], ids=["each-time-once", "dictionary-encoded"])
def test_naive_time_notations_are_read_in_the_given_zone(tmp_path: Path, repeated: bool) -> None:
    cells = {  # text → the local time it means
        "2026-11-01T08:00:00": datetime(2026, 11, 1, 8),
        "2026-11-01 08:01": datetime(2026, 11, 1, 8, 1),
        "2026-11-01T08:02:00.250": datetime(2026, 11, 1, 8, 2, 0, 250_000),
        "2026/11/01 08:03:00": datetime(2026, 11, 1, 8, 3),
        "2026/11/1 8:04": datetime(2026, 11, 1, 8, 4),
        "2026/1/5 18:05:06.5": datetime(2026, 1, 5, 18, 5, 6, 500_000),
        "2026-11-01 8:06:00": datetime(2026, 11, 1, 8, 6),
        "2026/11/02": datetime(2026, 11, 2),
    }
    with_offsets = ["2026-11-01T00:10:00Z", "2026/11/01 08:11:00+08:00"]  # offsets are kept
    channels = ("c", "d") if repeated else ("c",)
    rows = [f"{t},{ch},{i},good\n" for i, t in enumerate([*cells, *with_offsets]) for ch in channels]
    got = read_readings(write(tmp_path, "timestamp,channel,value,quality\n" + "".join(rows)), "Asia/Shanghai")
    expected = [d.replace(tzinfo=SHANGHAI).timestamp() for d in cells.values()]
    expected += [epoch("2026-11-01T00:10:00+00:00"), epoch("2026-11-01T08:11:00+08:00")]
    for ch in channels:
        by_value = dict(zip(got[ch].values.tolist(), got[ch].t_s.tolist(), strict=True))
        assert [by_value[float(i)] for i in range(len(expected))] == expected


def test_a_local_time_the_clocks_pass_twice_is_an_error_naming_its_line(tmp_path: Path) -> None:
    site = write(tmp_path, BERLIN_SITE, "berlin.toml")
    # Europe/Berlin goes back from 03:00 CEST to 02:00 CET on 2026-10-25: 02:30 happens twice
    path = write(
        tmp_path,
        "timestamp,channel,value,quality\n"
        "2026-10-25T01:30:00,a/elec_kwh,100,good\n"
        "2026-10-25T02:30:00+02:00,a/elec_kwh,110,good\n\n"
        "2026-10-25T02:30:00,a/elec_kwh,120,good\n",
    )
    proc = kpi_compute(site, path, "--naive-times", "site")
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        f"{path}: line 5: local time '2026-10-25T02:30:00' occurs twice in Europe/Berlin (the clocks go"
        " back at that hour), at +02:00 and at +01:00, so its instant is not known; write the offset on such"
        " rows, e.g. 2026-10-25T02:30:00+02:00"
    ), proc.stderr
    # the same hour with its offsets is read as written, the unambiguous local times in the zone
    path = write(tmp_path, "timestamp,channel,value,quality\n2026-10-25T02:30:00+01:00,c,1,0\n"
                 "2026-10-25T02:30:00+02:00,c,2,0\n2026-10-25T04:00:00,c,3,0\n")  # fmt: skip
    got = read_readings(path, "Europe/Berlin")["c"]
    assert got.t_s.tolist() == [
        epoch(t)
        for t in ("2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-25T04:00:00+01:00")
    ]
    assert got.values.tolist() == [2, 1, 3]


def test_a_local_time_the_clocks_skip_is_an_error(tmp_path: Path) -> None:
    # 2026-03-29: Europe/Berlin jumps from 02:00 CET to 03:00 CEST, so 02:30 does not exist there
    path = write(
        tmp_path, "timestamp,channel,value,quality\n2026-03-29T01:30:00,c,1,0\n2026-03-29 02:30,c,2,0\n"
    )
    with pytest.raises(ReadingsError) as info:
        read_readings(path, "Europe/Berlin")
    assert str(info.value).startswith(
        f"{path}: line 3: local time '2026-03-29 02:30' does not exist in Europe/Berlin"
    )


def test_naive_parquet_timestamps_and_a_utc_named_column(tmp_path: Path) -> None:
    path = tmp_path / "readings.parquet"
    stamps = pa.array([datetime(2026, 11, 1, 8), datetime(2026, 11, 1, 9)], pa.timestamp("us"))
    pq.write_table(
        pa.table({"timestamp": stamps, "channel": ["c", "c"], "value": [1.0, 2.0], "q": [0, 0]}), path
    )
    message = error(path)
    assert "is a timestamp without a time zone (timestamp[us])" in message
    assert "or pass --naive-times site to read its times in the site's time zone" in message
    got = read_readings(path, "Asia/Shanghai")["c"]
    assert got.t_s.tolist() == [epoch("2026-11-01T00:00:00+00:00"), epoch("2026-11-01T01:00:00+00:00")]
    ambiguous = pa.array([datetime(2026, 10, 25, 1), datetime(2026, 10, 25, 2, 30)], pa.timestamp("ms"))
    pq.write_table(
        pa.table({"timestamp": ambiguous, "channel": ["c", "c"], "value": [1.0, 2.0], "q": [0, 0]}), path
    )
    with pytest.raises(ReadingsError, match=r"row 2: local time 2026-10-25T02:30:00 occurs twice"):
        read_readings(path, "Europe/Berlin")
    # a column named timestamp_utc says its zone: times without an offset are UTC, with the option or not
    csv = write(tmp_path, "Timestamp_UTC,channel,value,quality\n2026-11-01 00:00:00,c,1,0\n")
    for naive_tz in (None, "Asia/Shanghai"):
        assert read_readings(csv, naive_tz)["c"].t_s.tolist() == [epoch("2026-11-01T00:00:00+00:00")]


def test_an_unknown_zone_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, READINGS)
    with pytest.raises(
        ReadingsError, match="time zone 'Mars/Olympus' is not in pyarrow's time zone database"
    ):
        read_readings(path, "Mars/Olympus")


def test_a_wincc_like_export_with_aliases_semicolons_and_opc_words(site: Path, tmp_path: Path) -> None:
    # By hand: the counter reads 100 → 160 kWh over 08:00–09:00 local; the bad 99999 between is skipped
    # (and bridged), so the day has 60 kWh of electricity.
    path = write(
        tmp_path,
        "TagName;DateTime;Value;Quality;Unit\n"
        "a/elec_kwh;2026/11/01 08:00:00;100;Good (192);kWh\n"
        "a/elec_kwh;2026/11/01 08:30:00;99999;Bad_SensorFailure;kWh\n"
        "a/elec_kwh;2026/11/01 09:00:00;160;GOOD;kWh\n",
        "wincc.csv",
    )
    proc = kpi_compute(site, path, "--period", "day", "--naive-times", "site")
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    assert doc["start_local"] == "2026-11-01T00:00:00+08:00"
    assert quantity(doc) == pytest.approx(60, rel=1e-12)
    assert doc["electricity_kwh"] == pytest.approx(60, rel=1e-12)


def test_a_thingsboard_like_export_without_quality_warns_and_counts_every_reading(
    site: Path, tmp_path: Path
) -> None:
    # By hand: ts 1793491200000 ms = 2026-11-01T00:00:00Z (08:00 in Shanghai), one hour later 1793494800000.
    # Electricity 100 → 160 kWh and clinker 0 → 2 t in that hour: 60 kWh and 2 t, all of 2026-11-01.
    path = write(
        tmp_path,
        "ts,key,value\n"
        "1793491200000,a/elec_kwh,100\n1793491200000,a/clinker_t,0\n"
        "1793494800000,a/elec_kwh,160\n1793494800000,a/clinker_t,2\n",
        "telemetry.csv",
    )
    proc = kpi_compute(site, path, "--period", "day")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {path}: no quality column: every reading is taken as good" in proc.stderr
    (doc,) = json.loads(proc.stdout)
    assert doc["start"] == "2026-10-31T16:00:00Z"
    assert quantity(doc) == pytest.approx(60) and doc["electricity_kwh"] == pytest.approx(60)
    assert quantity(doc, "a/clinker_t") == pytest.approx(2) and doc["clinker_t"] == pytest.approx(2)


def test_column_aliases(tmp_path: Path) -> None:
    # InfluxDB's annotated-CSV columns, blanks inside a name, Parquet without a quality column
    path = write(tmp_path, ",result,_start,_time,_value,Tag Name\n,_result,x,2026-11-01T00:00:00Z,1.5,c\n")
    with pytest.warns(UserWarning, match="no quality column: every reading is taken as good"):
        got = read_readings(path)["c"]
    assert got.values.tolist() == [1.5] and got.good.tolist() == [1]
    parquet = tmp_path / "readings.parquet"
    pq.write_table(pa.table({"Time": pa.array([1_793_491_200_000], pa.timestamp("ms", tz="UTC")),
                             "ITEM": ["c"], "pv": [2.0], "q": ["Good_LocalOverride"]}), parquet)  # fmt: skip
    assert read_readings(parquet)["c"].good.tolist() == [1]
    # the canonical name wins over an alias: a descriptive "name" column next to "channel" stays ignored
    path = write(tmp_path, "timestamp,channel,name,value,quality\n2026-11-01T00:00:00Z,c,Kiln motor,1,0\n")
    assert list(read_readings(path)) == ["c"]
    path = write(tmp_path, "time,tag,DateTime,value,quality\n2026-11-01T00:00:00Z,c,x,1,0\n")
    assert error(path) == (
        f"{path}: line 1: the header has 2 columns that could be the timestamp: 'time', 'DateTime'; keep one,"
        " or rename the others"
    )
    pq.write_table(pa.table({"ts": [1], "key": ["c"], "val": [1.0], "status": [0], "Status ": [0]}), parquet)
    assert "the file has 2 columns that could be the quality: 'status', 'Status '" in error(parquet)


def test_opc_quality_words_count_by_their_leading_word(tmp_path: Path) -> None:
    cells = {
        "Good": 1, "GOOD": 1, " good ": 1, "Good_LocalOverride": 1, "Good (192)": 1, "GoodClamped": 1,
        "Bad_SensorFailure": 0, "Bad - comm failure": 0, "BAD": 0, "Uncertain_LastUsableValue": 0,
        "UncertainSubNormal": 0, "uncertain (64)": 0,
    }  # fmt: skip
    text = "timestamp,channel,value,quality\n" + "".join(
        f"2026-11-01T00:{i:02d}:00Z,c,1,{q}\n" for i, q in enumerate(cells)
    )
    assert read_readings(write(tmp_path, text))["c"].good.tolist() == list(cells.values())
    for refused in ("OK", "Not Connected", "G00d"):
        path = write(tmp_path, f"timestamp,channel,value,quality\n2026-11-01T00:00:00Z,c,1,{refused}\n")
        assert error(path).startswith(f"{path}: line 2: quality {refused!r} is not accepted")


def series_good(tmp_path: Path, codes: list[int | str], **options: str) -> list[int]:
    text = "timestamp,channel,value,quality\n" + "".join(
        f"2026-11-01T00:{i:02d}:00Z,c,1,{q}\n" for i, q in enumerate(codes)
    )
    return read_readings(write(tmp_path, text), **options)["c"].good.tolist()


def test_numeric_opc_quality(tmp_path: Path) -> None:
    # OPC DA quality bytes (no wire code 0–2 in the column): bits 7–6 are 11 good, 01 uncertain, 00 bad
    assert series_good(tmp_path, [192, 216, 255, 64, 84, 127, 24, 3, 63]) == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    # OPC UA status codes, by their top two bits; 0 is good as a wire code and in OPC UA alike; a negative
    # code is a status code written as a signed 32-bit integer, as Ignition writes Bad_Stale
    ua = [0, 0x40000000, 0x408F0000, 0x80000000, 0x808D0000, 0xC0000000, -2147483136, 0]
    assert series_good(tmp_path, ua) == [1, 0, 0, 0, 0, 0, 0, 1]
    path = tmp_path / "readings.parquet"
    quality = pa.array([0, 0x80340000, 0x40000000], pa.uint32())
    table = {"ts": [1_793_491_200_000 + i for i in range(3)], "tag": ["c"] * 3, "value": [1.0] * 3}
    pq.write_table(pa.table(table | {"quality": quality}), path)
    assert read_readings(path)["c"].good.tolist() == [1, 0, 0]


def test_quality_codes_of_two_kinds_are_refused_not_guessed(tmp_path: Path) -> None:
    # 0 is good as our wire code, bad in OPC DA: a column with 0 and 192 cannot be read without being told
    rows = [f"2026-11-01T00:00:00Z,ch{i % 5},{i},0\n" for i in range(150_000)]  # several pyarrow blocks
    rows[120_000] = rows[120_000].replace(",0\n", ",192\n")
    path = write(tmp_path, "timestamp,channel,value,quality\n" + "".join(rows))
    message = error(path)
    assert message.startswith(
        f"{path}: line 120002: quality '192' is an OPC DA quality byte, but quality '0' (line 2) is the wire"
        " code 0 = good (in OPC DA, 0 is bad): the column mixes two kinds of code"
    ), message
    assert "pass --quality opc-da to read every number as an OPC DA quality byte" in message
    # 1 and 2 are uncertain and bad as wire codes, good in OPC UA
    path = write(tmp_path, "timestamp,channel,value,quality\n2026-11-01T00:00:00Z,c,1,2147483648\n"
                 "2026-11-01T00:01:00Z,c,1,2\n")  # fmt: skip
    assert error(path).startswith(f"{path}: line 3: quality '2' is a wire code, 1 = uncertain or 2 = bad")


def test_quality_opc_da_through_the_cli(site: Path, tmp_path: Path) -> None:
    # By hand: with --quality opc-da, 0 is bad: the counter's 99999 is skipped, 100 → 160 kWh = 60 kWh
    path = write(
        tmp_path,
        "timestamp,channel,value,quality\n"
        "2026-11-01T08:00:00+08:00,a/elec_kwh,100,192\n"
        "2026-11-01T08:30:00+08:00,a/elec_kwh,99999,0\n"
        "2026-11-01T09:00:00+08:00,a/elec_kwh,160,192\n",
    )
    assert kpi_compute(site, path).returncode == 2  # 0 and 192: refused without the option
    proc = kpi_compute(site, path, "--quality", "opc-da")
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    assert quantity(doc) == pytest.approx(60, rel=1e-12)
    assert series_good(tmp_path, [0, 1, 2, 64, 192], quality="opc-da") == [0, 0, 0, 0, 1]
    assert "quality '128' is not accepted (as an OPC DA quality byte its quality bits 7–6 are 10" in error(
        write(tmp_path, "timestamp,channel,value,quality\n2026-11-01T00:00:00Z,c,1,128\n")
    )


def test_quality_opc_ua(tmp_path: Path) -> None:
    # GoodClamped (0x00300000) is a good status code below 2^30: read with --quality opc-ua, refused in auto
    codes = [0x00300000, 1, 2, 0x40000000, 0x80000000, -1]
    assert series_good(tmp_path, codes, quality="opc-ua") == [1, 1, 1, 0, 0, 0]
    path = write(tmp_path, "timestamp,channel,value,quality\n2026-11-01T00:00:00Z,c,1,3145728\n")
    assert "need --quality opc-ua" in error(path)
    with pytest.raises(ReadingsError, match="quality mode 'opc': use auto, opc-da, opc-ua"):
        read_readings(path, quality="opc")
