"""InfluxConfig: each API's required keys, with messages that name the key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from collector.sinks import InfluxConfig, InfluxV1Writer, InfluxV2Writer, make_writer


def test_v1_minimal_has_documented_defaults():
    config = InfluxConfig(api="v1", url="http://127.0.0.1:8086/", database="kilnwatch")
    assert (config.url, config.batch_lines, config.gzip, config.timeout_s) == (
        "http://127.0.0.1:8086",
        5000,
        False,
        10.0,
    )


def test_v1_needs_database():
    with pytest.raises(ValidationError, match="needs `database`"):
        InfluxConfig(api="v1", url="http://h:8086")


@pytest.mark.parametrize(
    ("keys", "missing"),
    [({"org": "o"}, "`bucket`"), ({"bucket": "b"}, "`org`"), ({}, "`bucket` and `org`")],
)
def test_v2_needs_bucket_and_org(keys, missing):
    with pytest.raises(ValidationError, match=f"needs {missing}"):
        InfluxConfig(api="v2", url="http://h:8086", **keys)


def test_keys_of_the_other_api_are_named():
    with pytest.raises(ValidationError, match='only api = "v2" uses `token`'):
        InfluxConfig(api="v1", url="http://h", database="d", token="t")
    with pytest.raises(ValidationError, match='only api = "v1" uses `database`'):
        InfluxConfig(api="v2", url="http://h", org="o", bucket="b", database="d")


def test_unknown_key_and_bad_values_are_refused():
    with pytest.raises(ValidationError, match="bucket_name"):
        InfluxConfig(api="v2", url="http://h", org="o", bucket="b", bucket_name="x")
    with pytest.raises(ValidationError, match="must start with http"):
        InfluxConfig(api="v1", url="h:8086", database="d")
    with pytest.raises(ValidationError, match="batch_lines"):
        InfluxConfig(api="v1", url="http://h", database="d", batch_lines=0)
    with pytest.raises(ValidationError, match="`username` and `password`"):
        InfluxConfig(api="v1", url="http://h", database="d", username="u")


def test_secrets_stay_out_of_repr():
    config = InfluxConfig(api="v2", url="http://h", org="o", bucket="b", token="s3cret")
    assert "s3cret" not in repr(config)


def test_make_writer_picks_by_api():
    v1 = make_writer(InfluxConfig(api="v1", url="http://h", database="d"))
    v2 = make_writer(InfluxConfig(api="v2", url="http://h", org="o", bucket="b"))
    assert isinstance(v1, InfluxV1Writer)
    assert isinstance(v2, InfluxV2Writer)
    v2.close()


def test_values_are_strict_but_an_integer_is_a_float():
    """``batch_lines = "5000"`` or ``gzip = 1`` in the collector's TOML is refused, not guessed at."""
    for bad in (
        {"batch_lines": "5000"},
        {"batch_lines": 5000.0},
        {"gzip": 1},
        {"timeout_s": "5"},
        {"url": 8086},
    ):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            InfluxConfig(**{"api": "v1", "url": "http://h", "database": "d", **bad})
    config = InfluxConfig(api="v1", url="http://h", database="d", timeout_s=2)
    assert config.timeout_s == 2.0 and isinstance(config.timeout_s, float)
