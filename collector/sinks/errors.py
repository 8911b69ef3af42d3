"""The one error every sink raises, and how to find the lines a server's error message is about.

``retryable`` answers a single question for the dispatcher: *would these same lines be accepted later?*
Outages, timeouts, 5xx, and also authentication or a missing database (an operator can fix those; the
lines are fine) are retryable: the lines stay queued. Only a verdict on the data itself (400 parse error,
type conflict, 413 too large, 422) is not: the dispatcher then bisects the batch and dead-letters the
lines that still fail, so one bad line never holds back the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: HTTP statuses that judge the data rather than the server or the credentials.
DATA_REJECTED_STATUSES = frozenset({400, 413, 422})

_PARSE_ERROR = re.compile(r"unable to parse '(.*)': ")
_TYPE_CONFLICT = re.compile(
    r'input field "(?P<field>[^"]*)" on measurement "(?P<measurement>[^"]*)" is type (?P<kind>\w+)'
)
#: How many offending lines an error message quotes; the dispatcher still isolates all of them.
_QUOTED_LINES = 3


class SinkError(Exception):
    """A failed write. ``offending`` holds the lines the server's message pins down, if any."""

    def __init__(self, retryable: bool, detail: str, offending: Sequence[str] = ()) -> None:
        self.retryable = retryable
        self.detail = detail
        self.offending = tuple(offending)
        super().__init__(detail)


def describe_rejection(status: int, message: str, lines: Sequence[str]) -> SinkError:
    """A ``SinkError`` for an HTTP error answer, naming the offending lines when the message allows."""
    retryable = status not in DATA_REJECTED_STATUSES
    offending = [] if retryable else offending_lines(message, lines)
    detail = f"HTTP {status}: {message.strip()}"
    if offending:
        quoted = "; ".join(offending[:_QUOTED_LINES])
        more = f" (+{len(offending) - _QUOTED_LINES} more)" if len(offending) > _QUOTED_LINES else ""
        detail += f" | offending line(s): {quoted}{more}"
    return SinkError(retryable, detail, offending)


def offending_lines(message: str, lines: Sequence[str]) -> list[str]:
    """Lines of ``lines`` that ``message`` rejects, in batch order.

    InfluxDB quotes unparsable lines verbatim (``unable to parse '<line>': …``) but names only the
    measurement, field and type for a type conflict, so those lines are found by parsing the batch.
    """
    quoted = {match.group(1) for part in message.split("\n") if (match := _PARSE_ERROR.search(part))}
    conflicts = {
        (m.group("measurement"), m.group("field"), m.group("kind")) for m in _TYPE_CONFLICT.finditer(message)
    }
    if not quoted and not conflicts:
        return []
    return [line for line in lines if line in quoted or _has_conflict(line, conflicts)]


def _has_conflict(line: str, conflicts: set[tuple[str, str, str]]) -> bool:
    if not conflicts:
        return False
    measurement, fields = _parse_line(line)
    return any((measurement, key, kind) in conflicts for key, kind in fields.items())


def _parse_line(line: str) -> tuple[str, dict[str, str]]:
    """(measurement, {field key: InfluxDB type name}) of one line; enough to match a type conflict."""
    series_end = _find_unescaped(line, " ", 0, quotes=False)
    series = line[:series_end]
    measurement = _unescape(series[: _find_unescaped(series, ",", 0, quotes=False)])
    fields_end = _find_unescaped(line, " ", series_end + 1, quotes=True)
    field_set = line[series_end + 1 : fields_end]
    fields: dict[str, str] = {}
    start = 0
    while start < len(field_set):
        end = _find_unescaped(field_set, ",", start, quotes=True)
        pair = field_set[start:end]
        equals = _find_unescaped(pair, "=", 0, quotes=False)
        fields[_unescape(pair[:equals])] = _field_kind(pair[equals + 1 :])
        start = end + 1
    return measurement, fields


def _find_unescaped(text: str, separator: str, start: int, *, quotes: bool) -> int:
    """Index of the first ``separator`` at or after ``start`` not escaped (nor quoted); ``len`` if none."""
    escaped = in_quotes = False
    for index in range(start, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quotes and char == '"':
            in_quotes = not in_quotes
        elif char == separator and not in_quotes:
            return index
    return len(text)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _field_kind(value: str) -> str:
    if value.startswith('"'):
        return "string"
    if value in {"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"}:
        return "boolean"
    if value.endswith("i"):
        return "integer"
    if value.endswith("u"):
        return "unsigned"
    return "float"
