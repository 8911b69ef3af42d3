"""Parquet readings files: the columns by name or alias, their types checked before the data is read.

Why a reader of its own: Parquet carries types, so a column of the wrong type (text values, timestamps
without a time zone unless a zone is given for them) is refused by its schema, before anything is read, and
a bad cell is named by its row (1-based), not a line. Channel ids stay dictionary-encoded as written
(``read_dictionary``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from collector.readings.cells import (
    ACCEPTED_QUALITY,
    DICT,
    NAIVE_HINT,
    ROLES,
    TIMESTAMP_HINT,
    Options,
    ReadingsError,
    Source,
    TextTimes,
    first_row,
    is_millis,
    localised,
    parse_millis,
)
from collector.readings.group import ChannelSeries


class ParquetReadings(Source):
    """A Parquet file: the columns by name or alias, their types checked before the data is read."""

    def __init__(self, path: Path, options: Options) -> None:
        self.path = path
        self.options = options

    def where(self, row: int) -> str:
        return f"row {row + 1}"

    def damaged(self, exc: Exception) -> ReadingsError:
        return ReadingsError(
            f"{self.path}: a damaged or truncated Parquet file ({exc}); copy or write it again"
        )

    def read(self) -> dict[str, ChannelSeries]:
        try:
            schema = pq.read_schema(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise self.damaged(exc) from None
        positions = self.columns(schema.names, "the file has")
        fields = {r: schema.field(i) for r, i in positions.items()}
        zone = self.options.zone_of(fields["timestamp"].name)
        self.check_types(fields, zone)
        roles = [r for r in ROLES if r in fields]
        columns = [fields[r].name for r in roles]
        try:
            table = pq.read_table(
                self.path,
                columns=columns,
                read_dictionary=[
                    fields[r].name
                    for r in ("timestamp", "channel", "quality")
                    if r in fields and _text(fields[r].type)
                ],
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise self.damaged(exc) from None
        table = table.select(columns).rename_columns(roles)
        table = table.set_column(1, "channel", _dictionary(table.column("channel")))
        if "quality" in fields and _text(fields["quality"].type):
            table = table.set_column(3, "quality", _dictionary(table.column("quality")))
        table = table.set_column(2, "value", table.column("value").cast(pa.float64()))
        stamp = table.column("timestamp")
        row = first_row(stamp.chunks, lambda c: None)  # nulls only
        if row is not None:
            raise self.fail(row, f"empty timestamp; {TIMESTAMP_HINT}")
        if pa.types.is_timestamp(stamp.type) and stamp.type.tz is None:  # wall-clock times in ``zone``
            return self.grouped(table, lambda c: localised(c, zone))
        if pa.types.is_timestamp(stamp.type):
            return self.grouped(
                table,
                lambda c: pc.cast(c, pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64()).to_numpy(),
            )
        if pa.types.is_integer(stamp.type):
            return self.grouped(table, parse_millis)
        return self.grouped(table, TextTimes(is_millis(stamp), zone, self.options.zone_hint))

    def check_types(self, fields: dict[str, pa.Field], zone: str | None) -> None:
        """Refuse column types that cannot hold what the column means, naming the type to write. A timestamp
        type without a time zone is read only when ``zone`` says where its wall-clock times are."""
        rules: dict[str, tuple[Callable[[pa.DataType], bool], str]] = {
            "timestamp": (
                lambda t: (
                    pa.types.is_integer(t)
                    or _text(t)
                    or (pa.types.is_timestamp(t) and (t.tz is not None or zone is not None))
                ),
                "a timestamp with a time zone (pyarrow: pa.timestamp('ms', tz='UTC')), integer milliseconds"
                " since the epoch, or ISO 8601 text with an offset",
            ),
            "channel": (_text, "text (the channel id)"),
            "value": (
                lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t),
                "a number, float or integer (null for a missing reading)",
            ),
            "quality": (
                lambda t: pa.types.is_integer(t) or _text(t),
                f"integer codes or text: {ACCEPTED_QUALITY}",
            ),
        }
        for name, (ok, expected) in rules.items():
            field = fields.get(name)
            if field is None:  # no quality column
                continue
            if ok(field.type):
                continue
            if pa.types.is_timestamp(field.type):
                raise ReadingsError(
                    f"{self.path}: column {field.name!r} is a timestamp without a time zone ({field.type}),"
                    f" so its instants are unknown; {NAIVE_HINT} when writing it, e.g. as"
                    " pa.timestamp('ms', tz='UTC') or tz='+08:00' (pandas: tz-aware datetimes), or pass"
                    " --naive-times site to read its times in the site's time zone"
                    + (f" ({self.options.zone_hint})" if self.options.zone_hint else "")
                )
            raise ReadingsError(f"{self.path}: column {field.name!r} is {field.type}; it must be {expected}")


def _text(t: pa.DataType) -> bool:
    t = t.value_type if pa.types.is_dictionary(t) else t
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _dictionary(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column as dictionary<int32, string> (a Parquet dictionary column is not decoded)."""
    if pa.types.is_dictionary(column.type):
        return column.cast(DICT)
    return pc.dictionary_encode(column.cast(pa.string()))
