"""Line protocol as InfluxDB's documentation spells it, checked against hand-written lines."""

from __future__ import annotations

import numpy as np
import pytest

from collector.sinks.line_protocol import kpi_lines, readings_lines


def test_readings_plain():
    lines = readings_lines("plant1", "gw1", ["kiln_kw", "mill_kwh"], [1000, 2000], [1.5, 81234.25], [0, 1])
    assert lines == [
        "reading,agent=gw1,channel=kiln_kw,site=plant1 value=1.5,quality=0i 1000",
        "reading,agent=gw1,channel=mill_kwh,site=plant1 value=81234.25,quality=1i 2000",
    ]


def test_reading_without_value_keeps_quality():
    lines = readings_lines("s", "a", ["c"], [5], [None], [2])
    assert lines == ["reading,agent=a,channel=c,site=s quality=2i 5"]


def test_tag_values_escape_space_comma_equals():
    lines = readings_lines("plant 1", "gw,1", ["a=b c,d"], [7], [0.5], [0])
    assert lines == [r"reading,agent=gw\,1,channel=a\=b\ c\,d,site=plant\ 1 value=0.5,quality=0i 7"]


def test_integral_values_are_written_as_floats():
    # A float field must never receive "3" with an i suffix, nor a bare int that a reader types as int.
    lines = readings_lines("s", "a", ["c", "c", "c"], [1, 2, 3], [3, 0, -0.0], [0, 0, 0])
    assert [line.split(" ")[1] for line in lines] == [
        "value=3.0,quality=0i",
        "value=0.0,quality=0i",
        "value=-0.0,quality=0i",
    ]


def test_float_formatting_round_trips_and_uses_exponents():
    lines = readings_lines("s", "a", ["c"] * 3, [1, 2, 3], [0.1, 1e20, 1.5e-7], [0] * 3)
    assert [line.split(" ")[1] for line in lines] == [
        "value=0.1,quality=0i",
        "value=1e+20,quality=0i",
        "value=1.5e-07,quality=0i",
    ]


def test_numpy_columns_and_scalars_are_converted():
    channels = np.array(["c1", "c2"])
    times, values = np.array([10, 20], dtype=np.int64), np.array([2.5, 4.0])
    quality = np.array([0, 1], dtype=np.int8)
    lines = readings_lines("s", "a", channels, times, values, quality)
    assert lines == [
        "reading,agent=a,channel=c1,site=s value=2.5,quality=0i 10",
        "reading,agent=a,channel=c2,site=s value=4.0,quality=1i 20",
    ]
    mixed = readings_lines("s", "a", ["c"], [np.int64(30)], [np.float32(0.5)], [np.int64(0)])
    assert mixed == ["reading,agent=a,channel=c,site=s value=0.5,quality=0i 30"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_non_finite_values_are_refused(bad):
    with pytest.raises(ValueError, match="NaN or infinity"):
        readings_lines("s", "a", ["c"], [1], [bad], [0])


def test_columns_of_different_length_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        readings_lines("s", "a", ["c", "d"], [1], [1.0], [0])


@pytest.mark.parametrize("name", ["", "bad\nname", "ends\\"])
def test_unwritable_names_are_refused(name):
    with pytest.raises(ValueError):
        readings_lines("s", "a", [name], [1], [1.0], [0])


def test_kpi_field_kinds_and_none_omitted():
    line = kpi_lines(
        "plant1",
        "kiln 1",
        "day",
        1_700_000_000_000,
        {"kgce_per_t": 101.5, "tonnes": 0.0, "lab_lots": 3, "ok": True, "grade": "1级", "cao": None},
    )
    assert line == (
        "kpi,line=kiln\\ 1,period=day,site=plant1 "
        'kgce_per_t=101.5,tonnes=0.0,lab_lots=3i,ok=true,grade="1级" 1700000000000'
    )


def test_kpi_string_field_escapes_quotes_and_backslashes_and_field_keys():
    line = kpi_lines("s", "l", "hour", 0, {"note x,y=z": 'say "hi" C:\\dir', "off": False})
    assert line == r'kpi,line=l,period=hour,site=s note\ x\,y\=z="say \"hi\" C:\\dir",off=false 0'


def test_kpi_numpy_scalars_never_leak_their_repr():
    line = kpi_lines("s", "l", "day", 0, {"a": np.float64(1.5), "b": np.int64(2), "c": np.bool_(False)})
    assert line == "kpi,line=l,period=day,site=s a=1.5,b=2i,c=false 0"


def test_kpi_without_fields_is_refused():
    with pytest.raises(ValueError, match="no fields"):
        kpi_lines("s", "l", "day", 0, {"a": None})


def test_kpi_non_finite_and_unknown_types_are_refused():
    with pytest.raises(ValueError):
        kpi_lines("s", "l", "day", 0, {"a": float("nan")})
    with pytest.raises(TypeError):
        kpi_lines("s", "l", "day", 0, {"a": [1]})
