"""Finding the offending lines in InfluxDB's error messages (messages as InfluxDB 1.6.7 sends them)."""

from __future__ import annotations

from collector.sinks.errors import describe_rejection, offending_lines

BATCH = [
    "reading,agent=a,channel=c,site=s value=1.5,quality=0i 1000",
    "reading,agent=a,channel=d,site=s value=3i,quality=0i 2000",
    "reading,agent=a,channel=e,site=s value=4i,quality=0i 3000",
    'kpi,line=l,period=day,site=s value=5i,note="x y, z=1" 4000',
    "reading,agent=a,channel=f,site=s value=abc 5000",
]


def test_type_conflict_names_lines_by_measurement_field_and_type():
    message = (
        'partial write: field type conflict: input field "value" on measurement "reading" is type integer, '
        "already exists as type float dropped=2"
    )
    # the kpi line also has an integer "value", but on another measurement
    assert offending_lines(message, BATCH) == [BATCH[1], BATCH[2]]


def test_parse_errors_quote_the_lines():
    message = (
        f"partial write: unable to parse '{BATCH[4]}': invalid boolean\n"
        f"unable to parse '{BATCH[0]}': invalid field format dropped=0"
    )
    assert offending_lines(message, BATCH) == [BATCH[0], BATCH[4]]


def test_escaped_measurement_and_quoted_commas_parse():
    line = r'kiln\ data,site=s note="a,b=c d",value=2i 1'
    message = 'field type conflict: input field "value" on measurement "kiln data" is type integer'
    assert offending_lines(message, [line, r"kiln\ data,site=s value=2.0 1"]) == [line]


def test_rejection_statuses():
    assert describe_rejection(400, "unable to parse 'x': bad", ["x"]).retryable is False
    assert describe_rejection(413, "too large", ["x"]).retryable is False
    assert describe_rejection(422, "unprocessable", ["x"]).retryable is False
    # The lines are fine: credentials, a missing database and outages are for an operator or time to fix.
    for status in (401, 403, 404, 500, 503):
        assert describe_rejection(status, "nope", ["x"]).retryable is True


def test_detail_quotes_at_most_three_lines():
    message = 'input field "value" on measurement "reading" is type integer'
    lines = [f"reading,channel=c{i} value={i}i {i}" for i in range(5)]
    error = describe_rejection(400, message, lines)
    assert error.offending == tuple(lines)
    assert error.detail.endswith(f"offending line(s): {lines[0]}; {lines[1]}; {lines[2]} (+2 more)")
