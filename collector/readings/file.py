"""Readings files from other systems (SCADA historians, spreadsheets) → per-channel arrays for the kernels.

A file holds one reading per row in the columns ``timestamp``, ``channel``, ``value`` and (optionally)
``quality``, found by name or a usual alias such as ``TagName`` or ``_time`` (any order, any case; other
columns are ignored). Three containers are read, recognised by their
first bytes and not by the file name, because exports get renamed: CSV in UTF-8, the same CSV gzipped
(magic ``1f 8b``) and Parquet (magic ``PAR1``). What a cell may hold is in ``docs/readings-files.md``; what
a file leaves open (the zone of times without an offset, the kind of numeric quality codes) is given by the
caller as ``Options``, never guessed.

Why pyarrow and no loop over rows: a year of one-minute readings of a 40-channel line is 21 M rows, and the
per-row parser this replaces spent 80 % of ``kilnwatch kpi compute`` on reading. Here pyarrow's
multithreaded CSV reader yields column chunks in which channel ids, quality words and (when rows repeat
them, as a historian's do) timestamps are dictionary-encoded, so only their distinct values are looked at
or parsed. ``collector.readings.cells`` checks and converts the cells, ``collector.readings.group`` places
each row with its channel, and Parquet files are read by ``collector.readings.parquet``.

Every error is a ``ReadingsError`` whose one message names the file, the line (CSV; the header is line 1)
or row (Parquet) and what to change. Lines are counted only once something is wrong: pyarrow numbers rows
only when it reads with one thread, so a failed read is repeated that way, and empty lines (which pyarrow
skips without counting) are counted back in by a scan of the file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from collector.readings.cells import (
    DICT,
    REQUIRED,
    ROLES,
    Options,
    ReadingsError,
    Source,
    TextTimes,
    is_millis,
)
from collector.readings.group import ChannelSeries
from collector.readings.parquet import ParquetReadings

__all__ = ["REQUIRED", "ROLES", "ChannelSeries", "ReadingsError", "read_readings"]

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
#: First bytes of files that get exported by mistake, and what they are.
OTHER_MAGIC = {
    b"PK\x03\x04": "a zip archive or an Excel workbook",
    b"\xd0\xcf\x11\xe0": "an Excel 97-2003 workbook",
    b"BZh": "bzip2-compressed",
    b"\xfd7zXZ\x00": "xz-compressed",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
    b"\xff\xfe": "UTF-16 text",
    b"\xfe\xff": "UTF-16 text",
}
EXPORT_HINT = (
    "export it as CSV in UTF-8 (Excel: 'CSV UTF-8'), gzip it if it is large, or write Parquet,"
    " with the columns timestamp, channel, value and quality"
)
#: CSV blocks of 4 MiB: ~80 k rows per chunk, few enough that per-chunk Python work does not show.
BLOCK_SIZE = 1 << 22

_ARROW_ROW = re.compile(r"(?:In CSV column #(\d+): )?(?:CSV parse error: )?Row #(\d+): (.*)", re.S)
_ARROW_FIELDS = re.compile(r"Expected (\d+) columns, got (\d+)")
_ARROW_CELL = re.compile(r"invalid value '(.*)'", re.S)


def read_readings(
    path: Path | str,
    naive_tz: str | None = None,
    *,
    zone_hint: str | None = None,
    quality: str = "auto",
    warn: Callable[[str], None] | None = None,
) -> dict[str, ChannelSeries]:
    """Read the whole file: for each channel id (any string) its readings, sorted by time (stable).

    ``good`` is 1 only where the quality is good and the value is finite; an empty value is NaN.
    ``naive_tz``: the IANA zone of timestamps without an offset (None: they are refused, and the message
    names ``zone_hint``, the site's zone, as the way out); ``quality``: ``auto``, ``opc-da`` or ``opc-ua``,
    how numeric quality codes are read; ``warn`` receives warnings such as a missing quality column
    (None: ``warnings.warn``).
    """
    path = Path(path)
    options = Options(naive_tz=naive_tz, zone_hint=zone_hint, quality=quality, warn=warn)
    options.check(path)
    if not path.is_file():
        raise ReadingsError(f"{path}: {'not a file' if path.exists() else 'file not found'}")
    with path.open("rb") as fh:
        magic = fh.read(8)
    if magic.startswith(PARQUET_MAGIC):
        return ParquetReadings(path, options).read()
    for prefix, what in OTHER_MAGIC.items():
        if magic.startswith(prefix):
            raise ReadingsError(
                f"{path}: {what}, not a UTF-8 CSV, a gzip CSV or a Parquet file; {EXPORT_HINT}"
            )
    return _Csv(path, options, gzipped=magic.startswith(GZIP_MAGIC)).read()


def _not_text(path: Path, where: str) -> ReadingsError:
    return ReadingsError(
        f"{path}: {where}not a UTF-8 CSV, a gzip CSV or a Parquet file (bytes that are not UTF-8);"
        f" {EXPORT_HINT}"
    )


class _Csv(Source):
    """A CSV file, plain or gzipped: the header read here, the cells by pyarrow's multithreaded reader."""

    def __init__(self, path: Path, options: Options, gzipped: bool) -> None:
        self.path = path
        self.options = options
        self.gzipped = gzipped
        self.head = b""  # the first 64 KiB (decompressed), read by ``header``

    def stream(self) -> pa.NativeFile:
        return pa.input_stream(self.path, compression="gzip" if self.gzipped else None)

    def where(self, row: int) -> str:
        return f"line {_line_of_record(self.stream, row + 2)}"

    def read(self) -> dict[str, ChannelSeries]:
        header, delimiter = self.header()
        positions = self.columns(header, "line 1: the header has")
        if b"\n" not in self.head.rstrip(b"\r\n"):
            return {}  # the header and nothing else
        names = [f"_{i}" for i in range(len(header))]  # unique names, whatever the header repeats
        for canonical, i in positions.items():
            names[i] = canonical
        read = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=BLOCK_SIZE)
        parse = pacsv.ParseOptions(delimiter=delimiter)
        types = {"timestamp": pa.string(), "channel": DICT, "value": pa.float64(), "quality": DICT}
        types = {role: t for role, t in types.items() if role in positions}
        convert = pacsv.ConvertOptions(column_types=types, include_columns=list(types))
        if self.times_repeat(read, parse, convert):
            types["timestamp"] = DICT
            convert = pacsv.ConvertOptions(column_types=types, include_columns=list(types))
        try:
            table = pacsv.read_csv(self.stream(), read, parse, convert)
        except pa.ArrowInvalid as exc:
            raise self.cell_error(exc, read, parse, convert) from None
        except OSError as exc:
            raise self.stream_error(exc) from None
        zone = self.options.zone_of(header[positions["timestamp"]])
        times = TextTimes(is_millis(table.column("timestamp")), zone, self.options.zone_hint)
        return self.grouped(table, times)

    def times_repeat(
        self, read: pacsv.ReadOptions, parse: pacsv.ParseOptions, convert: pacsv.ConvertOptions
    ) -> bool:
        """Whether the first rows repeat their timestamps (a historian writes every channel at each
        instant). Such a column is read dictionary-encoded: each distinct text is then parsed once and
        held once, which saves half the memory of a year's table and most of the parsing."""
        head = self.head[: self.head.rfind(b"\n") + 1]
        try:
            first = pacsv.read_csv(pa.py_buffer(head), read, parse, convert).column("timestamp")
        except (pa.ArrowInvalid, OSError):
            return True  # the read itself will say what is wrong
        return len(first) >= 2 and pc.count_distinct(first).as_py() * 2 <= len(first)

    def header(self) -> tuple[list[str], str]:
        """Column names of line 1, and the delimiter: ``,``, or ``;`` or tab as some spreadsheets write."""
        try:
            with self.stream() as fh:
                self.head = head = fh.read(1 << 16)
        except OSError as exc:
            raise self.stream_error(exc) from None
        if not head.strip():
            raise ReadingsError(f"{self.path}: empty file; line 1 must be the header {','.join(ROLES)}")
        line = head.split(b"\n", 1)[0].rstrip(b"\r").removeprefix(b"\xef\xbb\xbf")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise _not_text(self.path, "line 1: ") from None
        delimiter = max((",", ";", "\t"), key=text.count)
        return [c.strip() for c in next(csv.reader([text], delimiter=delimiter))], delimiter

    def stream_error(self, exc: OSError) -> ReadingsError:
        if not self.gzipped:
            return ReadingsError(f"{self.path}: cannot be read: {exc}")
        if "truncated" in str(exc).lower():
            return ReadingsError(
                f"{self.path}: the gzip file is truncated (cut off while it was copied or written); copy or"
                " export it again (`gzip -t FILE` checks a gzip file)"
            )
        return ReadingsError(f"{self.path}: a damaged gzip file ({exc}); copy or export it again")

    def cell_error(
        self,
        exc: pa.ArrowInvalid,
        read: pacsv.ReadOptions,
        parse: pacsv.ParseOptions,
        convert: pacsv.ConvertOptions,
    ) -> ReadingsError:
        """The failed read again, with one thread so that pyarrow numbers the row; its line and the fix."""
        serial = pacsv.ReadOptions(
            column_names=read.column_names, skip_rows=1, block_size=BLOCK_SIZE, use_threads=False
        )
        try:
            pacsv.read_csv(self.stream(), serial, parse, convert)
        except pa.ArrowInvalid as again:
            exc = again
        except OSError as again:
            return self.stream_error(again)
        found = _ARROW_ROW.search(str(exc))
        if found is None:
            return ReadingsError(f"{self.path}: {exc}")
        column = read.column_names[int(found.group(1))] if found.group(1) else None
        line = _line_of_record(self.stream, int(found.group(2)))
        detail = found.group(3)
        cell = _ARROW_CELL.search(detail)
        if "invalid UTF8" in detail:
            return _not_text(self.path, f"line {line}: ")
        fields = _ARROW_FIELDS.match(detail)
        if fields:
            expected, got = fields.groups()
            return ReadingsError(
                f"{self.path}: line {line}: {got} fields where the header has {expected}; put a cell that"
                " contains the delimiter in double quotes"
            )
        if column == "value" and cell:
            return ReadingsError(
                f"{self.path}: line {line}: value {cell.group(1)!r} is not a number; write numbers with '.'"
                " as the decimal point, and leave the cell empty for a missing reading"
            )
        return ReadingsError(f"{self.path}: line {line}: {detail}")


def _line_of_record(stream: Callable[[], pa.NativeFile], record: int) -> int:
    """Line number (1-based) of CSV record ``record`` (1-based; the header is record 1).

    pyarrow skips empty lines without counting them; they are counted back in here, with a scan of the
    file (only done for a message). A quoted cell with a newline inside would count as two lines; channel
    ids and numbers hold none.
    """
    seen = 0  # non-empty lines before this block
    lines = 0  # lines before this block
    offset = 0  # file offset of this block
    previous = -1  # offset of the last newline before this block
    last_byte = 0  # the byte before this block
    with stream() as fh:
        while block := fh.read(1 << 24):
            data = np.frombuffer(block, dtype=np.uint8)
            ends = np.flatnonzero(data == 10) + offset
            begins = np.concatenate(([previous + 1], ends[:-1] + 1))
            before = np.where(ends > offset, data[np.maximum(ends - 1 - offset, 0)], last_byte)
            empty = (ends == begins) | ((ends == begins + 1) & (before == 13))
            counted = seen + np.cumsum(~empty)
            hit = int(np.searchsorted(counted, record))
            if hit < counted.size:
                return lines + hit + 1
            if ends.size:
                seen, previous = int(counted[-1]), int(ends[-1])
            lines += ends.size
            offset += len(block)
            last_byte = block[-1]
    return lines + 1  # the last line, without a newline at its end
