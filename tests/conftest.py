"""Fixtures that start real servers of the test's own (see tests/servers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[servers.Mosquitto]:
    with servers.mosquitto(tmp_path / "mosquitto") as b:
        yield b


@pytest.fixture
def influx1(tmp_path: Path) -> Iterator[servers.HttpServer]:
    with servers.influxdb1(tmp_path / "influxdb") as s:
        yield s


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[servers.HttpServer]:
    with servers.victoria_metrics(tmp_path / "vm") as s:
        yield s


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[servers.PgServer]:
    with servers.postgresql(tmp_path / "postgres") as s:
        yield s
