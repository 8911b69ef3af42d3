"""What a cell of a readings file may hold, and turning pyarrow columns of cells into ``Chunk``s.

Shared by the CSV reader (``collector.readings.file``) and the Parquet one (``collector.readings.parquet``):
the columns and their aliases, the quality words and codes, the timestamp notations (ISO 8601 with an
offset, local times read in a given zone, integer milliseconds) and the messages that name a refused cell
and its fix. Timestamps are converted by pyarrow compute, one chunk at a time on the group's worker threads;
channel ids and quality words are dictionary-encoded, so Python only looks at their few distinct values.

Why so strict: a readings file comes from a system the product has not seen, and a reading taken at the
wrong instant or with the wrong quality changes the KPIs without a word. Whatever can be read in one way
only is read (aliases of column names, OPC quality words, year-first dates with slashes); whatever could be
read in two ways (a local time in the hour the clocks go back, a column that mixes our quality codes with
OPC DA's) is an error that names the line and the option or edit that settles it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from agent.wire import Quality
from collector.readings.group import CellError, ChannelSeries, Chunk, group_by_channel

#: The columns by their canonical names; ``quality`` may be missing (every reading is then good, warned).
ROLES = ("timestamp", "channel", "value", "quality")
REQUIRED = ("timestamp", "channel", "value")

#: Other names of each column, as historians, IoT platforms and spreadsheets export them. Headers are
#: compared lowercased with blanks removed (``Tag Name`` is ``tagname``). The canonical name wins over an
#: alias, so ``channel`` next to a descriptive ``name`` column reads as before; two aliases of one column and
#: no canonical name are an error. Documented in docs/readings-files.md ("Columns").
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("time", "ts", "datetime", "date_time", "timestamp_utc", "_time"),
    "channel": ("tag", "tagname", "tag_name", "name", "point", "item", "itemid", "key"),
    "value": ("val", "_value", "pv"),
    "quality": ("q", "status", "quality_code"),
}
#: Timestamp columns whose name says the zone: their times without an offset are UTC, with or without
#: ``--naive-times`` (the header states it; the site's zone would shift them by its offset).
UTC_NAMES = frozenset({"timestamp_utc"})

QUALITY_MODES = ("auto", "opc-da", "opc-ua")
#: Quality words: OPC's three classes; a cell counts by its leading word (``Good_LocalOverride``).
QUALITY_WORDS: dict[str, int] = {q.name.lower(): int(q) for q in Quality}
ACCEPTED_QUALITY = "good, uncertain or bad (any case), or the codes 0 = good, 1 = uncertain, 2 = bad"
_ACCEPTED_BY_MODE = {
    "auto": f"{ACCEPTED_QUALITY}; OPC quality words (Good_LocalOverride, Bad - comm failure), OPC DA"
    " quality bytes (192 = good) and OPC UA status codes are read too (docs/readings-files.md)",
    "opc-da": "good, uncertain or bad (any case), or OPC DA quality bytes: 0–63 bad, 64–127 uncertain,"
    " 192–255 good (--quality opc-da)",
    "opc-ua": "good, uncertain or bad (any case), or OPC UA status codes 0 to 2^32 - 1, whose top two bits"
    " say 00 good, 01 uncertain, 10 or 11 bad (--quality opc-ua)",
}
UNKNOWN_QUALITY = 255
_UA_SEVERITY = (0, 1, 2, 2)  # StatusCode bits 31–30: 00 good, 01 uncertain, 10 bad, 11 (reserved) bad
#: Numeric kinds that disagree on some number: 0 is good as a wire code, bad in OPC DA; 1 and 2 are
#: uncertain and bad as wire codes, good in OPC UA (0 is good in both). A column holding both is refused.
_CLASHES = (("da", "wire0"), ("da", "wire12"), ("ua", "wire12"), ("da", "ua"))
_KIND_TEXT = {
    "wire0": "the wire code 0 = good (in OPC DA, 0 is bad)",
    "wire12": "a wire code, 1 = uncertain or 2 = bad (in OPC UA, 1 and 2 are good)",
    "da": "an OPC DA quality byte",
    "ua": "an OPC UA status code",
}
_INTEGER = re.compile(r"[+-]?\d+")
_LETTERS = re.compile(r"[a-z]*")

TIMESTAMP_HINT = (
    "write ISO 8601 with an offset, e.g. 2026-11-01T08:00:00+08:00 or 2026-11-01T00:00:00.250Z,"
    " or integer milliseconds since 1970-01-01T00:00:00Z"
)
NAIVE_HINT = "add an offset such as +08:00 or Z"
DICT = pa.dictionary(pa.int32(), pa.string())
_TS_UTC = pa.timestamp("ns", tz="UTC")  # nanoseconds: 9 fraction digits parse too
_TS_LOCAL = pa.timestamp("ns")
_NAIVE = re.compile(r"\d{4}([-/])\d{1,2}\1\d{1,2}([T ]\d{1,2}(:\d\d(:\d\d([.,]\d+)?)?)?)?")
_YEAR_LAST = re.compile(r"\d{1,2}[-/.]\d{1,2}[-/.]\d{4}\b.*")
#: An offset after a time (a date alone ends in ``-01`` too); only asked where texts mix the two.
_OFFSET = r"[T ]\d\d(?::\d\d){0,2}(?:[.,]\d+)?\s?(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"
#: Year-first dates with slashes and one-digit months, days or hours (``2026/11/1 8:00``, as Excel writes
#: them in some locales) → ISO 8601; the rest of the text is left for pyarrow's ISO parser.
_YEAR_FIRST = (
    (r"^(\d{4})/(\d)/", r"\1/0\2/"),
    (r"^(\d{4})/(\d\d)/(\d)(\D|$)", r"\1/\2/0\3\4"),
    (r"^(\d{4})/(\d\d)/(\d\d)", r"\1-\2-\3"),
    (r"^(\d{4}-\d\d-\d\d[T ])(\d)(:|$)", r"\10\2\3"),
)


class ReadingsError(ValueError):
    """A readings file that cannot be read as a whole, or a row in it; the message names file and line."""


@dataclass(frozen=True, slots=True)
class Options:
    """How to read what a file leaves open. ``naive_tz``: the IANA zone of timestamps without an offset
    (None: refuse them); ``zone_hint``: the site's zone, named in that refusal; ``quality``: how numeric
    quality codes are read (``QUALITY_MODES``); ``warn``: receives warnings (None: ``warnings.warn``)."""

    naive_tz: str | None = None
    zone_hint: str | None = None
    quality: str = "auto"
    warn: Callable[[str], None] | None = None

    def check(self, path: Path) -> None:
        if self.quality not in QUALITY_MODES:
            raise ReadingsError(f"quality mode {self.quality!r}: use {', '.join(QUALITY_MODES)}")
        for zone in {self.naive_tz, "UTC"} - {None}:
            try:
                pc.assume_timezone(pa.array([0], pa.timestamp("s")), zone)
            except pa.ArrowInvalid as exc:
                raise ReadingsError(
                    f"{path}: time zone {zone!r} is not in pyarrow's time zone database ({exc}); install the"
                    " system's tzdata package"
                ) from None

    def zone_of(self, column: str) -> str | None:
        """The zone of the timestamps without an offset in the column named ``column``."""
        return "UTC" if _key(column) in UTC_NAMES else self.naive_tz

    def warning(self, message: str) -> None:
        if self.warn is None:
            warnings.warn(message, stacklevel=5)  # at the caller of read_readings
        else:
            self.warn(message)


# --- columns -------------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return "".join(name.split()).lower()


def find_columns(path: Path, found: list[str], context: str) -> dict[str, int]:
    """Position of each column among the ``found`` names, by canonical name, else by an alias (case and
    blanks ignored). ``quality`` is left out when there is none; the other three must be there."""
    keys = [_key(f) for f in found]
    positions: dict[str, int] = {}
    for role in ROLES:
        hits = [i for i, k in enumerate(keys) if k == role] or [
            i for i, k in enumerate(keys) if k in COLUMN_ALIASES[role]
        ]
        if len(hits) > 1:
            listed = ", ".join(repr(found[i]) for i in hits)
            raise ReadingsError(
                f"{path}: {context} {len(hits)} columns that could be the {role}: {listed}; keep one, or"
                " rename the others"
            )
        if hits:
            positions[role] = hits[0]
    missing = [r for r in REQUIRED if r not in positions]
    if missing:
        listed = ", ".join(repr(f) for f in found)
        aliases = "; ".join(f"{r} may be named {', '.join(COLUMN_ALIASES[r])}" for r in missing)
        raise ReadingsError(
            f"{path}: {context} no column {', '.join(missing)} (found {listed}); a readings file needs the"
            f" columns {', '.join(REQUIRED)} and, if it has one, quality, in any order (other columns are"
            f" ignored); {aliases}"
        )
    return positions


# --- timestamps ----------------------------------------------------------------------------------------


def _us(stamps: pa.Array) -> np.ndarray:
    """Timestamps with a zone → int64 µs since the epoch."""
    return pc.cast(stamps, pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64()).to_numpy()


def is_millis(column: pa.ChunkedArray) -> bool:
    """Integer milliseconds or ISO 8601 text, as the first cell is."""
    for chunk in column.chunks:
        if len(chunk):
            first = chunk[0].as_py()
            return isinstance(first, str) and first.isdigit()
    return False


def parse_millis(texts: pa.Array) -> np.ndarray:
    """Integer milliseconds (text or integers) → int64 µs; ``ArrowInvalid`` if not integers."""
    t_us = pc.cast(texts, pa.int64()).to_numpy() * 1000
    if t_us.size and 0 < int(t_us[0]) < 10**14:  # before 1973 as milliseconds: surely seconds
        raise CellError(
            0, f"timestamp {texts[0].as_py()} looks like seconds since the epoch: multiply by 1000"
        )
    return t_us


def localised(local: pa.Array, zone: str, shown: pa.Array | None = None) -> np.ndarray:
    """Wall-clock timestamps (no zone) in ``zone`` → int64 µs. A time the zone's clocks pass twice or skip
    is a ``CellError`` (row within ``local``; ``shown`` holds the texts to quote), never a guess."""
    try:
        return _us(pc.assume_timezone(local, zone, ambiguous="raise", nonexistent="raise"))
    except pa.ArrowInvalid:
        pass
    early, late = (
        pc.assume_timezone(local, zone, ambiguous=how, nonexistent=how).cast(pa.int64()).to_numpy()
        for how in ("earliest", "latest")
    )
    row = int(np.flatnonzero(early != late)[0])
    scale = 10**9 // _per_second(local.type)  # ns per unit
    wall_ns = int(local.cast(pa.int64())[row].as_py()) * scale
    wall = datetime(1970, 1, 1) + timedelta(microseconds=wall_ns // 1000)
    text = repr(shown[row].as_py()) if shown is not None else wall.isoformat()
    if (int(late[row]) - int(early[row])) * scale < 60 * 10**9:  # one unit apart: the two sides of a gap
        problem = (
            f"local time {text} does not exist in {zone} (the clocks skip it when daylight saving time"
            " starts); check the clock of the system that wrote it, or export the times with their offsets"
            " or in UTC"
        )
    else:  # the two instants an hour (the zone's shift) apart
        offsets = [_offset(wall_ns - int(t) * scale) for t in (early[row], late[row])]
        problem = (
            f"local time {text} occurs twice in {zone} (the clocks go back at that hour), at {offsets[0]}"
            f" and at {offsets[1]}, so its instant is not known; write the offset on such rows, e.g."
            f" {wall.isoformat()}{offsets[0]}, or export the times in UTC"
        )
    raise CellError(row, problem)


def _per_second(t: pa.TimestampType) -> int:
    return {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[t.unit]


def _offset(ns: int) -> str:
    minutes = round(ns / 6e10)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@dataclass(frozen=True, slots=True)
class TextTimes:
    """One chunk of text timestamps → int64 µs since the epoch; ``CellError`` for a refused cell.

    ``millis``: the column holds integer milliseconds (as its first cell does), else ISO 8601. ``naive_tz``:
    the zone of times without an offset (None: refused). The common case, ISO with offsets, is one pyarrow
    cast; only a chunk that cast refuses takes the slower way (year-first slashes, local times).
    """

    millis: bool
    naive_tz: str | None = None
    zone_hint: str | None = None

    def __call__(self, chunk: pa.Array) -> np.ndarray:
        if pa.types.is_dictionary(chunk.type):  # each distinct text converted once
            try:
                return self.parse(chunk.dictionary)[chunk.indices.to_numpy(zero_copy_only=False)]
            except (pa.ArrowInvalid, CellError):
                chunk = chunk.cast(pa.string())  # a refused text: found below in row order, with its row
        try:
            return self.parse(chunk)
        except pa.ArrowInvalid:
            raise self.refused(chunk) from None

    def parse(self, texts: pa.Array) -> np.ndarray:
        if self.millis:
            return parse_millis(texts)
        try:
            return _us(pc.cast(texts, _TS_UTC))
        except pa.ArrowInvalid:
            pass
        if self.naive_tz is not None:
            try:  # all local, all ISO: the usual spreadsheet
                return localised(pc.cast(texts, _TS_LOCAL), self.naive_tz, texts)
            except pa.ArrowInvalid:
                pass
        iso = texts
        for pattern, replacement in _YEAR_FIRST:
            iso = pc.replace_substring_regex(iso, pattern, replacement)
        if self.naive_tz is None:
            return _us(pc.cast(iso, _TS_UTC))
        offset = pc.fill_null(pc.match_substring_regex(iso, _OFFSET), False)
        has = offset.to_numpy(zero_copy_only=False)
        out = np.empty(len(texts), dtype=np.int64)
        if has.any():
            out[has] = _us(pc.cast(iso.filter(offset), _TS_UTC))
        rows = np.flatnonzero(~has)
        local = pc.invert(offset)
        try:
            out[rows] = localised(pc.cast(iso.filter(local), _TS_LOCAL), self.naive_tz, texts.filter(local))
        except CellError as exc:
            exc.row = int(rows[exc.row])
            raise
        return out

    def refused(self, chunk: pa.Array) -> CellError:
        """The first cell of ``chunk`` that ``parse`` refuses (halving the chunk), and why."""
        lo, hi = 0, len(chunk)  # parse(chunk[lo:hi]) fails
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.fails(chunk[lo:mid]):
                hi = mid
            else:
                lo = mid
        try:
            self.parse(chunk[lo : lo + 1])
        except CellError as exc:
            return CellError(lo, exc.problem)
        except pa.ArrowInvalid:
            pass
        return CellError(lo, self.problem(chunk[lo].as_py()))

    def fails(self, texts: pa.Array) -> bool:
        try:
            self.parse(texts)
        except (pa.ArrowInvalid, CellError):
            return True
        return False

    def problem(self, text: str) -> str:
        """Why a timestamp cell was refused, and the fix."""
        cell = text.strip()
        if not cell:
            return f"empty timestamp; {TIMESTAMP_HINT}"
        if self.millis and not _NAIVE.fullmatch(cell):
            return f"timestamp {text!r} is not integer milliseconds, as the first row's is"
        if _NAIVE.fullmatch(cell) and self.naive_tz is None:
            zone = f"the site's time zone ({self.zone_hint})" if self.zone_hint else "the site's time zone"
            return (
                f"timestamp {text!r} has no offset from UTC; {NAIVE_HINT} (e.g. 2026-11-01T08:00:00+08:00),"
                f" or pass --naive-times site to read such times in {zone}"
            )
        if _YEAR_LAST.fullmatch(cell):
            return (
                f"timestamp {text!r} has its year last, so its day and month could be either way round;"
                " write the year first, e.g. 2026-11-01 08:00:00 or 2026/11/01 08:00:00"
            )
        return f"timestamp {text!r} is not understood; {TIMESTAMP_HINT}"


# --- quality -------------------------------------------------------------------------------------------


def quality_of(cell: object, mode: str) -> tuple[int, str | None]:
    """Code of one quality cell (0 good, 1 uncertain, 2 bad, or ``UNKNOWN_QUALITY``) and, for a number read
    in the ``auto`` mode, its kind (``_KIND_TEXT``), so that a column mixing kinds can be refused."""
    if isinstance(cell, str):
        text = cell.strip().lower()
        if not _INTEGER.fullmatch(text):
            letters = _LETTERS.match(text).group()  # the leading word: "good_localoverride" → good…
            code = next((c for word, c in QUALITY_WORDS.items() if letters.startswith(word)), UNKNOWN_QUALITY)
            return code, None
        cell = int(text)
    if not isinstance(cell, int) or isinstance(cell, bool):
        return UNKNOWN_QUALITY, None
    n = cell
    if mode == "opc-ua":
        n += 2**32 if -(2**31) <= n < 0 else 0  # a StatusCode written as a signed 32-bit integer
        return (_UA_SEVERITY[n >> 30] if 0 <= n < 2**32 else UNKNOWN_QUALITY), None
    if mode == "opc-da":
        return _da(n), None
    if 0 <= n <= 2:
        return n, "wire0" if n == 0 else "wire12"
    if 3 <= n <= 255:
        code = _da(n)
        return code, "da" if code != UNKNOWN_QUALITY else None
    if 2**30 <= n < 2**32:
        return _UA_SEVERITY[n >> 30], "ua"
    if -(2**31) <= n < 0:  # a StatusCode as a signed 32-bit integer (Ignition writes them so): bad
        return 2, "ua"
    return UNKNOWN_QUALITY, None


def _da(n: int) -> int:
    """OPC DA quality byte → code: bits 7–6 are 11 good, 01 uncertain, 00 bad; 10 is not defined."""
    if 0 <= n <= 255 and n >> 6 != 2:
        return {3: 0, 1: 1, 0: 2}[n >> 6]
    return UNKNOWN_QUALITY


def _refusal(cell: object, mode: str) -> str:
    """Why a quality cell was refused, and what is accepted."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return f"empty quality; use {_ACCEPTED_BY_MODE[mode]}"
    n = int(cell.strip()) if isinstance(cell, str) and _INTEGER.fullmatch(cell.strip()) else cell
    why = ""
    if isinstance(n, int) and 128 <= n <= 191 and mode != "opc-ua":
        why = (
            " (as an OPC DA quality byte its quality bits 7–6 are 10, which OPC DA does not define; Siemens"
            " systems write 0x80–0xBF for good (cascade): map such codes to good before reading, if so)"
        )
    elif isinstance(n, int) and 256 <= n < 2**30 and mode == "auto":
        why = (
            " (neither a wire code, an OPC DA quality byte 0–255 nor an OPC UA status code of 2^30 or more;"
            " OPC UA's good codes with a sub-code, such as GoodClamped = 0x00300000, need --quality opc-ua)"
        )
    return f"quality {cell!r} is not accepted{why}; use {_ACCEPTED_BY_MODE[mode]}"


class QualityReader:
    """Quality cells → codes, chunk by chunk, for one file.

    Why it remembers: in the ``auto`` mode a number is a wire code (0–2), an OPC DA quality byte (3–255) or
    an OPC UA status code (2^30 and up), and the kinds disagree on 0, 1 and 2, so a column that holds two
    kinds is refused, whichever chunks they are in (an OPC DA export where 0 = bad is read with
    ``--quality opc-da``). It keeps the first row of each kind for the message.
    """

    def __init__(self, source: Source, mode: str) -> None:
        self.source = source
        self.mode = mode
        self.decoded: dict[object, tuple[int, str | None]] = {}
        self.first: dict[str, tuple[int, object]] = {}  # kind → (row, cell)

    def __call__(self, quality: pa.Array | None, row: int, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Code per dictionary entry and, per row, the index into it; ``row`` is the chunk's first row."""
        if quality is None:  # no quality column: every reading is good (warned once, by the reader)
            return np.zeros(1, dtype=np.uint8), np.zeros(n_rows, dtype=np.uint8)
        if not pa.types.is_dictionary(quality.type):
            low, high = (m.as_py() for m in pc.min_max(quality).values())
            wire = not quality.null_count and (not len(quality) or 0 <= low <= high <= 2)
            if self.mode == "auto" and wire:  # the wire codes index themselves
                per_row = quality.to_numpy(zero_copy_only=False)
                present = [(0, "wire0")] if low == 0 else []
                self.note(per_row, present + ([(1, "wire12"), (2, "wire12")] if high else []), row)
                return np.array([0, 1, 2], dtype=np.uint8), per_row
            quality = pc.dictionary_encode(quality)
        cells = quality.dictionary.to_pylist()
        decoded = [self.decoded.get(c) or self.decoded.setdefault(c, quality_of(c, self.mode)) for c in cells]
        codes = np.array([code for code, _ in decoded], dtype=np.uint8)
        unknown = codes == UNKNOWN_QUALITY
        at = _first(quality, lambda c: unknown[indices(c)] if unknown.any() else None)
        if at is not None:
            raise self.source.fail(row + at, _refusal(quality[at].as_py(), self.mode))
        per_row = indices(quality)
        self.note(per_row, [(i, kind) for i, (_, kind) in enumerate(decoded) if kind], row, cells)
        return codes, per_row

    def note(
        self, per_row: np.ndarray, kinds: list[tuple[int, str]], row: int, cells: list | None = None
    ) -> None:
        """Remember the first row of each kind not seen yet (``kinds``: entry → kind); refuse a clash."""
        for kind in {k for _, k in kinds} - set(self.first):
            hit = np.isin(per_row, [i for i, k in kinds if k == kind])
            at = int(hit.argmax())  # the first True (no index array of every hit)
            if hit[at]:
                entry = int(per_row[at])
                self.first[kind] = (row + at, cells[entry] if cells is not None else entry)
        for a, b in _CLASHES:
            if a in self.first and b in self.first:
                (r1, c1, k1), (r2, c2, k2) = sorted([(*self.first[a], a), (*self.first[b], b)])
                raise self.source.fail(
                    r2,
                    f"quality {c2!r} is {_KIND_TEXT[k2]}, but quality {c1!r} ({self.source.where(r1)}) is"
                    f" {_KIND_TEXT[k1]}: the column mixes two kinds of code that disagree on what a number"
                    " means; pass --quality opc-da to read every number as an OPC DA quality byte (0–63 bad,"
                    " 64–127 uncertain, 192–255 good) or --quality opc-ua to read them as OPC UA status"
                    " codes, or map the codes to 0 = good, 1 = uncertain, 2 = bad",
                )


# --- chunks --------------------------------------------------------------------------------------------


def _first(chunk: pa.Array, hit: Callable[[pa.Array], np.ndarray | None]) -> int | None:
    """Index of the first element of ``chunk`` that is null or where the mask ``hit`` returns holds (``hit``
    may return None: nothing to look for)."""
    masks = [m for m in (_nulls(chunk), hit(chunk)) if m is not None]
    found = [int(hits[0]) for hits in map(np.flatnonzero, masks) if hits.size]
    return min(found, default=None)


def _nulls(chunk: pa.Array) -> np.ndarray | None:
    return chunk.is_null().to_numpy(zero_copy_only=False) if chunk.null_count else None


def first_row(chunks: list[pa.Array], hit: Callable[[pa.Array], np.ndarray | None]) -> int | None:
    """``_first`` over consecutive chunks: the row counted over all of them."""
    offset = 0
    for chunk in chunks:
        found = _first(chunk, hit)
        if found is not None:
            return offset + found
        offset += len(chunk)
    return None


def indices(chunk: pa.Array) -> np.ndarray:
    return chunk.indices.to_numpy(zero_copy_only=False)


def _floats(chunk: pa.Array) -> np.ndarray:
    """float64 values, NaN where null (a copy only if there are nulls)."""
    return chunk.to_numpy(zero_copy_only=False)


class Source:
    """What CSV and Parquet share: the columns as pyarrow read them → ``Chunk``s; how a bad row is named."""

    path: Path
    options: Options

    def where(self, row: int) -> str:
        """How a message names data row ``row`` (0-based over all rows)."""
        raise NotImplementedError

    def fail(self, row: int, problem: str) -> ReadingsError:
        return ReadingsError(f"{self.path}: {self.where(row)}: {problem}")

    def columns(self, found: list[str], context: str) -> dict[str, int]:
        """``find_columns``, and the warning that no quality column means every reading is good."""
        positions = find_columns(self.path, found, context)
        if "quality" not in positions:
            *others, last = COLUMN_ALIASES["quality"]
            self.options.warning(
                "no quality column: every reading is taken as good (a column named quality,"
                f" {', '.join(others)} or {last} would be read)"
            )
        return positions

    def grouped(self, table: pa.Table, times: Callable[[pa.Array], np.ndarray]) -> dict[str, ChannelSeries]:
        """Per channel its readings. ``table`` has the columns by their canonical names (``quality`` may be
        missing), channel and a text quality dictionary-encoded; ``times`` turns one timestamp chunk into
        int64 µs.

        Each chunk keeps its own dictionaries (unifying them would rewrite every index): its names are
        mapped to channel numbers and its quality words to codes here, a few values per chunk.
        """
        numbers: dict[str, int] = {}
        chunks = []
        row = 0
        quality_codes = QualityReader(self, self.options.quality)
        has_quality = "quality" in table.column_names
        for batch in table.to_batches():  # the columns sliced alike (their chunks need not be)
            channel = batch["channel"]
            names = channel.dictionary.to_pylist()
            empty = np.array([not name for name in names], dtype=bool)
            at = _first(channel, lambda c, empty=empty: empty[indices(c)] if empty.any() else None)
            if at is not None:
                raise self.fail(row + at, "empty channel id; give every reading the id of its channel")
            codes, q = quality_codes(batch["quality"] if has_quality else None, row, batch.num_rows)
            chunks.append(
                Chunk(
                    channel=indices(channel),
                    names=np.array([numbers.setdefault(n, len(numbers)) for n in names], dtype=np.int64),
                    quality=q,
                    quality_codes=codes,
                    load=lambda t=batch["timestamp"], v=batch["value"]: (times(t), _floats(v)),
                )
            )
            row += batch.num_rows
        try:
            return group_by_channel(chunks, list(numbers))
        except CellError as bad:
            raise self.fail(bad.row, bad.problem) from None
