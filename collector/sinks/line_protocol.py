"""InfluxDB line protocol, built in bulk with plain f-strings.

One ``Point`` object per reading caps a client at ~39k points/s; formatting lines directly reaches ~89k
(stack notes), so readings are formatted here in one pass with the per-channel series key cached.

Rules kept here so every sink writes the same bytes:

* measurements are fixed (``reading``, ``kpi``); tag keys, tag values and field keys have ``,`` ``=`` and
  space escaped; string field values ``"`` and ``\\``. Names may not be empty, hold a newline or end in a
  backslash (InfluxDB cannot read such a name back), so they raise ``ValueError``.
* a Python ``int`` is written as an integer field (``i`` suffix), a ``float`` always as a float, via
  ``repr`` of a Python float. numpy scalars are converted first: under ``repr`` they print as
  ``np.float64(1.5)``, which is not line protocol. Mixing int and float in one field is a type conflict
  that InfluxDB rejects, so callers pass floats for quantities and ints only for codes.
* NaN and infinity have no line-protocol form: they raise ``ValueError`` instead of becoming a line the
  server would reject.
* timestamps are integer milliseconds; writers send ``precision=ms``.
* tags are written sorted by key, the order InfluxDB stores them in, which saves it a sort per point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

READING_MEASUREMENT = "reading"
KPI_MEASUREMENT = "kpi"

_NAME_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def _checked(text: str, what: str) -> str:
    if not text:
        raise ValueError(f"{what} is empty: line protocol has no empty names or tag values")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} {text!r} holds a line break, which line protocol cannot carry")
    if text.endswith("\\"):
        raise ValueError(f"{what} {text!r} ends in a backslash, which would escape the separator after it")
    return text


def escape_name(text: str, what: str = "tag or field name") -> str:
    """A tag key, tag value or field key."""
    return _checked(text, what).translate(_NAME_ESCAPES)


def format_field_value(value: Any) -> str:
    """One field value: bool → ``true``/``false``, int → ``5i``, float → ``repr``, str → quoted."""
    as_python = getattr(value, "item", None)  # numpy scalar → Python scalar
    if as_python is not None:
        value = as_python()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if value - value != 0.0:
            raise ValueError(f"{value!r} cannot be written: line protocol has no NaN or infinity")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.translate(_STRING_ESCAPES) + '"'
    raise TypeError(f"cannot write a field of type {type(value).__name__}: use float, int, str or bool")


def _as_list(column: Sequence[Any]) -> Sequence[Any]:
    """numpy arrays become lists of Python scalars in one C call; other sequences pass through."""
    to_list = getattr(column, "tolist", None)
    return to_list() if to_list is not None else column


def readings_lines(
    site: str,
    agent: str,
    channels: Sequence[str],
    t_ms: Sequence[int],
    values: Sequence[float | None],
    quality: Sequence[int],
) -> list[str]:
    """Lines ``reading,agent=…,channel=…,site=… value=<float>,quality=<int>i <t_ms>``, one per reading.

    Columns are parallel (lists or numpy arrays). A ``None`` value omits the ``value`` field, so the
    quality code of a missing reading is still stored.
    """
    count = len(channels)
    if not len(t_ms) == len(values) == len(quality) == count:
        raise ValueError(
            f"columns differ in length: {count} channels, {len(t_ms)} times, "
            f"{len(values)} values, {len(quality)} quality codes"
        )
    head = f"{READING_MEASUREMENT},agent={escape_name(agent, 'agent')},channel="
    tail = f",site={escape_name(site, 'site')} "
    series_keys: dict[str, str] = {}
    lines: list[str] = []
    append = lines.append
    for channel, t, value, q in zip(
        _as_list(channels), _as_list(t_ms), _as_list(values), _as_list(quality), strict=True
    ):
        series = series_keys.get(channel)
        if series is None:
            series = series_keys[channel] = head + escape_name(channel, "channel") + tail
        if value is None:
            append(f"{series}quality={int(q)}i {int(t)}")
            continue
        value = float(value)
        if value - value != 0.0:
            raise ValueError(f"channel {channel!r} at {t} ms: {value!r} cannot be written (NaN or infinity)")
        append(f"{series}value={value!r},quality={int(q)}i {int(t)}")
    return lines


def kpi_lines(
    site: str,
    line: str,
    period: str,
    start_ms: int,
    fields: Mapping[str, float | int | str | bool | None],
) -> str:
    """One line ``kpi,line=…,period=…,site=… <fields> <start_ms>``; ``None`` fields are left out.

    Pass floats for quantities (``0.0``, not ``0``): an int becomes an integer field, and a field that was
    once a float rejects integers for the rest of its shard.
    """
    field_set = ",".join(
        f"{escape_name(key, 'field name')}={format_field_value(value)}"
        for key, value in fields.items()
        if value is not None
    )
    if not field_set:
        raise ValueError(f"KPI {site}/{line}/{period} at {start_ms} ms has no fields that are not None")
    line_tag, period_tag = escape_name(line, "line"), escape_name(period, "period")
    tags = f"line={line_tag},period={period_tag},site={escape_name(site, 'site')}"
    return f"{KPI_MEASUREMENT},{tags} {field_set} {int(start_ms)}"
