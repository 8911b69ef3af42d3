"""Real servers for tests: Mosquitto, InfluxDB 1.6 and VictoriaMetrics, each on a free loopback port.

Every test starts its own instance in a temporary folder, so a fresh machine passes and the machine's own
services (Mosquitto on 1883 and the rest) are never touched. The binaries come from Debian packages that
``.ci/run`` installs; a missing binary fails the test with the install command, it is never skipped.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None
    )
    if path is None:
        raise RuntimeError(f"{name} not found: install it with `apt-get install -y {package}` (see .ci/run)")
    return path


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def wait_for_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering {url}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status < 300:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Mosquitto:
    """A Mosquitto broker of the test's own; ``restart()`` keeps its port and persistence file."""

    port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    def config(self) -> str:
        # Zero-loss settings for a slow subscriber (stack notes: the default 1000-message queue drops).
        return "\n".join(
            [
                f"listener {self.port} 127.0.0.1",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {self.workdir}/",
                "max_queued_messages 0",
                "max_inflight_messages 100",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "",
            ]
        )

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config())
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(
            [binary("mosquitto", "mosquitto"), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(free_port(), workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class HttpServer:
    url: str
    proc: subprocess.Popen


@contextlib.contextmanager
def influxdb1(workdir: Path) -> Iterator[HttpServer]:
    """InfluxDB 1.6 (Debian's ``influxdb``), HTTP on a free port, everything else off or on loopback."""
    workdir.mkdir(parents=True, exist_ok=True)
    http, rpc = free_port(), free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(
        f"""reporting-enabled = false
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http}"
  log-enabled = false
[continuous_queries]
  enabled = false
"""
    )
    log = (workdir / "influxd.log").open("ab")
    proc = subprocess.Popen([binary("influxd", "influxdb"), "-config", str(conf)], stdout=log, stderr=log)
    try:
        wait_for_http(f"http://127.0.0.1:{http}/ping", proc=proc)
        yield HttpServer(f"http://127.0.0.1:{http}", proc)
    finally:
        stop(proc)


@contextlib.contextmanager
def victoria_metrics(workdir: Path) -> Iterator[HttpServer]:
    """VictoriaMetrics: an independent server that speaks InfluxDB's v2 write API (``/api/v2/write``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (workdir / "vm.log").open("ab")
    proc = subprocess.Popen(
        [
            binary("victoria-metrics", "victoria-metrics"),
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={workdir}/data",
            "-retentionPeriod=100y",
            "-search.latencyOffset=1s",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc=proc)
        yield HttpServer(f"http://127.0.0.1:{port}", proc)
    finally:
        stop(proc)
