"""DataValue → reading: status classes onto qualities, and which timestamp a reading keeps in each mode."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asyncua import ua

from agent.sources.opcua.quality import TimestampMode, quality_of, time_of, to_reading
from agent.wire import Quality

SOURCE = datetime(2026, 11, 20, 8, 0, 0, 250000, tzinfo=UTC)  # 1_795_161_600_250 ms
SERVER = datetime(2026, 11, 20, 8, 0, 1)  # naive, as asyncua hands them out: UTC
RECEIVED = 1_795_161_700_000


def value(
    v: object = 1.5,
    status: int = ua.StatusCodes.Good,
    source: datetime | None = SOURCE,
    server: datetime | None = SERVER,
) -> ua.DataValue:
    return ua.DataValue(
        ua.Variant(v), StatusCode=ua.StatusCode(status), SourceTimestamp=source, ServerTimestamp=server
    )


@pytest.mark.parametrize(
    ("status", "quality"),
    [
        (ua.StatusCodes.Good, Quality.GOOD),
        (ua.StatusCodes.GoodClamped, Quality.GOOD),
        (ua.StatusCodes.UncertainLastUsableValue, Quality.UNCERTAIN),
        (ua.StatusCodes.UncertainEngineeringUnitsExceeded, Quality.UNCERTAIN),
        (ua.StatusCodes.BadSensorFailure, Quality.BAD),
        (ua.StatusCodes.BadNodeIdUnknown, Quality.BAD),
    ],
)
def test_status_classes_map_to_qualities(status: int, quality: Quality) -> None:
    assert quality_of(ua.StatusCode(status)) == quality


@pytest.mark.parametrize(
    ("mode", "source", "server", "expected"),
    [
        ("source", SOURCE, SERVER, 1_795_161_600_250),
        ("source", None, SERVER, 1_795_161_601_000),  # no device time: the server's
        ("source", None, None, RECEIVED),  # neither: the agent's clock
        ("server", SOURCE, SERVER, 1_795_161_601_000),
        ("server", SOURCE, None, 1_795_161_600_250),
        ("agent", SOURCE, SERVER, RECEIVED),
    ],
)
def test_timestamp_modes_and_fallbacks(
    mode: TimestampMode, source: datetime | None, server: datetime | None, expected: int
) -> None:
    assert time_of(value(source=source, server=server), RECEIVED, mode) == expected


def test_readings_never_carry_a_value_that_is_bad_or_not_a_number() -> None:
    assert to_reading("x", 2.0, value(1.5), RECEIVED).value == 3.0
    uncertain = to_reading("x", 1.0, value(7, ua.StatusCodes.UncertainLastUsableValue), RECEIVED)
    assert (uncertain.value, uncertain.quality) == (7.0, Quality.UNCERTAIN)
    for raw, status in [(1.5, ua.StatusCodes.BadSensorFailure), ("text", 0), (float("nan"), 0), (None, 0)]:
        reading = to_reading("x", 1.0, value(raw, status), RECEIVED)
        assert (reading.value, reading.quality) == (None, Quality.BAD)
