"""What a cell of a readings file may hold, and turning pyarrow columns of cells into ``Chunk``s.

Shared by the CSV reader (``collector.readings_file``) and the Parquet one (``collector.readings_parquet``):
the required columns and how they are found, the quality words and codes, the two timestamp notations
(ISO 8601 with an offset, integer milliseconds) and the messages that name a refused cell and its fix.
Timestamps are converted by pyarrow compute, one chunk at a time on the group's worker threads; channel ids
and quality words are dictionary-encoded, so Python only looks at their few distinct values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from agent.wire import Quality
from collector.readings_group import CellError, ChannelSeries, Chunk, group_by_channel

REQUIRED = ("timestamp", "channel", "value", "quality")

#: Quality cells: OPC UA's three classes by name (any case, surrounding blanks ignored) or as wire codes.
QUALITY_WORDS: dict[str, int] = {q.name.lower(): int(q) for q in Quality} | {
    str(int(q)): int(q) for q in Quality
}
ACCEPTED_QUALITY = "good, uncertain or bad (any case), or the codes 0 = good, 1 = uncertain, 2 = bad"
UNKNOWN_QUALITY = 255

TIMESTAMP_HINT = (
    "write ISO 8601 with an offset, e.g. 2026-11-01T08:00:00+08:00 or 2026-11-01T00:00:00.250Z,"
    " or integer milliseconds since 1970-01-01T00:00:00Z"
)
NAIVE_HINT = "add an offset such as +08:00 or Z"
DICT = pa.dictionary(pa.int32(), pa.string())
_NAIVE = re.compile(r"\d{4}-\d\d-\d\d([T ]\d\d(:\d\d(:\d\d([.,]\d+)?)?)?)?")
_ARROW_STRING = re.compile(r"Failed to parse string: '(.*)' as a scalar", re.S)


class ReadingsError(ValueError):
    """A readings file that cannot be read as a whole, or a row in it; the message names file and line."""


def _timestamp_problem(text: str) -> str:
    """Why a timestamp cell was refused, and the fix."""
    if not text.strip():
        return f"empty timestamp; {TIMESTAMP_HINT}"
    if _NAIVE.fullmatch(text.strip()):
        return f"timestamp {text!r} has no offset from UTC; {NAIVE_HINT} (e.g. 2026-11-01T08:00:00+08:00)"
    return f"timestamp {text!r} is not understood; {TIMESTAMP_HINT}"


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


def _not_in(chunk: pa.Array, allowed: list[int]) -> np.ndarray:
    return pc.invert(pc.is_in(chunk, pa.array(allowed, chunk.type))).to_numpy(zero_copy_only=False)


def is_millis(column: pa.ChunkedArray) -> bool:
    """Integer milliseconds or ISO 8601 text, as the first cell is."""
    for chunk in column.chunks:
        if len(chunk):
            first = chunk[0].as_py()
            return isinstance(first, str) and first.isdigit()
    return False


def text_times(chunk: pa.Array, millis: bool) -> np.ndarray:
    """One chunk of text timestamps → int64 microseconds since the epoch; ``CellError`` for a bad cell."""
    parse = parse_millis if millis else _parse_iso
    if pa.types.is_dictionary(chunk.type):  # each distinct text converted once
        try:
            return parse(chunk.dictionary)[indices(chunk)]
        except (pa.ArrowInvalid, CellError):
            chunk = chunk.cast(pa.string())  # a refused text: found below in row order, with its row
    try:
        return parse(chunk)
    except pa.ArrowInvalid as exc:
        raise _refused_time(chunk, millis, str(exc)) from None


def _parse_iso(texts: pa.Array) -> np.ndarray:
    """ISO 8601 texts with offsets (which may differ row by row) → int64 µs; ``ArrowInvalid`` if not."""
    parsed = pc.cast(texts, pa.timestamp("ns", tz="UTC"))  # nanoseconds: 9 fraction digits parse too
    return pc.cast(parsed, pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64()).to_numpy()


def parse_millis(texts: pa.Array) -> np.ndarray:
    """Integer milliseconds (text or integers) → int64 µs; ``ArrowInvalid`` if not integers."""
    t_us = pc.cast(texts, pa.int64()).to_numpy() * 1000
    if t_us.size and 0 < int(t_us[0]) < 10**14:  # before 1973 as milliseconds: surely seconds
        raise CellError(
            0, f"timestamp {texts[0].as_py()} looks like seconds since the epoch: multiply by 1000"
        )
    return t_us


def _refused_time(chunk: pa.Array, millis: bool, message: str) -> CellError:
    """The first cell of ``chunk`` that pyarrow refused (its message quotes it), and why."""
    quoted = _ARROW_STRING.search(message)
    row = pc.index(chunk, quoted.group(1)).as_py() if quoted else -1
    if row < 0:  # the message did not quote the cell: find it one by one (this chunk only)
        row = next(i for i in range(len(chunk)) if not _time_ok(chunk[i : i + 1], millis))
    text = chunk[row].as_py()
    if millis and text.strip() and not _NAIVE.fullmatch(text.strip()):
        return CellError(row, f"timestamp {text!r} is not integer milliseconds, as the first row's is")
    return CellError(row, _timestamp_problem(text))


def _time_ok(cell: pa.Array, millis: bool) -> bool:
    try:
        pc.cast(cell, pa.int64() if millis else pa.timestamp("ns", tz="UTC"))
    except pa.ArrowInvalid:
        return False
    return True


class Source:
    """What CSV and Parquet share: four pyarrow columns → ``Chunk``s, and how a bad row is named."""

    path: Path

    def where(self, row: int) -> str:
        """How a message names data row ``row`` (0-based over all rows)."""
        raise NotImplementedError

    def fail(self, row: int, problem: str) -> ReadingsError:
        return ReadingsError(f"{self.path}: {self.where(row)}: {problem}")

    def grouped(self, table: pa.Table, times: Callable[[pa.Array], np.ndarray]) -> dict[str, ChannelSeries]:
        """Per channel its readings. ``table`` has the four columns by their canonical names, channel and
        a text quality dictionary-encoded; ``times`` turns one timestamp chunk into int64 µs.

        Each chunk keeps its own dictionaries (unifying them would rewrite every index): its names are
        mapped to channel numbers and its quality words to codes here, a few values per chunk.
        """
        numbers: dict[str, int] = {}
        chunks = []
        row = 0
        for batch in table.to_batches():  # the four columns sliced alike (their chunks need not be)
            channel, quality = batch["channel"], batch["quality"]
            names = channel.dictionary.to_pylist()
            empty = np.array([not name for name in names], dtype=bool)
            at = _first(channel, lambda c, empty=empty: empty[indices(c)] if empty.any() else None)
            if at is not None:
                raise self.fail(row + at, "empty channel id; give every reading the id of its channel")
            codes, q = self.quality_codes(quality, row)
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

    def quality_codes(self, quality: pa.Array, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Code per dictionary entry (text) or per code (integers), and the indices into it; refuses
        words and codes that are not accepted. ``row`` is the chunk's first row."""
        if pa.types.is_dictionary(quality.type):
            words = quality.dictionary.to_pylist()
            codes = np.array(
                [QUALITY_WORDS.get((w or "").strip().lower(), UNKNOWN_QUALITY) for w in words], dtype=np.uint8
            )
            unknown = codes == UNKNOWN_QUALITY
            at = _first(quality, lambda c: unknown[indices(c)] if unknown.any() else None)
            per_row = indices(quality)
        else:
            codes = np.array([0, 1, 2], dtype=np.uint8)  # the wire codes index themselves
            low, high = pc.min_max(quality).values()
            bad = quality.null_count or (len(quality) and not 0 <= low.as_py() <= high.as_py() <= 2)
            at = _first(quality, lambda c: _not_in(c, [0, 1, 2]) if bad else None)
            per_row = quality.to_numpy(zero_copy_only=False) if at is None else None
        if at is not None:
            cell = quality[at].as_py()
            what = f"quality {cell!r} is not accepted" if cell not in (None, "") else "empty quality"
            raise self.fail(row + at, f"{what}; use {ACCEPTED_QUALITY}")
        return codes, per_row


def find_columns(path: Path, found: list[str], context: str) -> dict[str, int]:
    """Position of each required column among the ``found`` names (case and blanks ignored)."""
    lowered = [f.strip().lower() for f in found]
    missing = [r for r in REQUIRED if r not in lowered]
    if missing:
        listed = ", ".join(repr(f) for f in found)
        raise ReadingsError(
            f"{path}: {context} no column {', '.join(missing)} (found {listed}); a readings file needs the"
            f" columns {', '.join(REQUIRED)}, in any order (other columns are ignored)"
        )
    for r in REQUIRED:
        if lowered.count(r) > 1:
            raise ReadingsError(f"{path}: {context} the column {r!r} more than once; keep one")
    return {r: lowered.index(r) for r in REQUIRED}
