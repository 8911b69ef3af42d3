"""An InfluxDB 1.6 the test can stop and start again on the same port, for outage tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import servers


@dataclass
class RestartableInflux:
    """Wraps a ``servers.influxdb1`` instance; ``start()`` reruns influxd with the same config file."""

    url: str
    workdir: Path
    proc: subprocess.Popen

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, like a crash or a power cut of the server."""
        self.proc.kill()
        self.proc.wait()

    def start(self) -> None:
        log = (self.workdir / "influxd.log").open("ab")
        self.proc = subprocess.Popen(
            [servers.binary("influxd", "influxdb"), "-config", str(self.workdir / "influxdb.conf")],
            stdout=log,
            stderr=log,
        )
        servers.wait_for_http(f"{self.url}/ping", proc=self.proc)


@pytest.fixture
def restartable_influx1(tmp_path: Path) -> Iterator[RestartableInflux]:
    workdir = tmp_path / "influxdb"
    with servers.influxdb1(workdir) as server:
        handle = RestartableInflux(server.url, workdir, server.proc)
        try:
            yield handle
        finally:
            servers.stop(handle.proc)
