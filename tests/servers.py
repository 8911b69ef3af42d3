"""Real servers for tests: Mosquitto, InfluxDB 1.6, VictoriaMetrics, PostgreSQL, each on a free loopback port.

Every test starts its own instance in a temporary folder, so a fresh machine passes and the machine's own
services (Mosquitto on 1883 and the rest) are never touched. The binaries come from Debian packages that
``.ci/run`` installs; a missing binary fails the test with the install command, it is never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    """A Mosquitto broker of the test's own; ``restart()`` keeps its port and persistence file.

    ``listener_options`` go under the listener (TLS settings); ``options`` are global lines (passwords, ACLs).
    """

    port: int
    workdir: Path
    proc: subprocess.Popen | None = None
    listener_options: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=lambda: ["allow_anonymous true"])

    def config(self) -> str:
        # Zero-loss settings for a slow subscriber (stack notes: the default 1000-message queue drops).
        # Started as root, Mosquitto would switch to the user "mosquitto", which cannot read the test's
        # private tmp folder: password files, certificates and the persistence file (sessions across
        # restart()) would fail. "user root" keeps it as root; as any other user the line has no effect.
        return "\n".join(
            [
                *(["user root"] if os.geteuid() == 0 else []),
                *self.options,
                f"listener {self.port} 127.0.0.1",
                *self.listener_options,
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
def mosquitto(
    workdir: Path, listener_options: list[str] | None = None, options: list[str] | None = None
) -> Iterator[Mosquitto]:
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(free_port(), workdir)
    if listener_options is not None:
        broker.listener_options = listener_options
    if options is not None:
        broker.options = options
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass(frozen=True)
class Pki:
    """PEM files for TLS tests: a CA, a broker certificate for 127.0.0.1/localhost, a client, a foreign CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path

    def tls_listener(self) -> list[str]:
        """Mosquitto listener lines: TLS with this PKI, client certificates required (mutual TLS)."""
        return [
            f"cafile {self.ca}",
            f"certfile {self.server_cert}",
            f"keyfile {self.server_key}",
            "require_certificate true",
        ]


def make_pki(folder: Path) -> Pki:
    """A throw-away PKI made with ``cryptography`` (an asyncua dependency, so always in the agent's venv)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def write_key(name: str) -> ec.EllipticCurvePrivateKey:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (folder / f"{name}.key").write_bytes(pem)
        return key

    def write_cert(name: str, cert: x509.Certificate) -> Path:
        path = folder / f"{name}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
        )

    def make_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, Path]:
        key = write_key(name)
        cert = (
            builder(f"kilnwatch test {name}", f"kilnwatch test {name}", key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(key, hashes.SHA256())
        )
        return key, write_cert(name, cert)

    def make_leaf(name: str, ca_key: ec.EllipticCurvePrivateKey, usage: x509.ObjectIdentifier) -> Path:
        key = write_key(name)
        leaf = builder(name, "kilnwatch test ca", key).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            leaf = leaf.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return write_cert(name, leaf.sign(ca_key, hashes.SHA256()))

    ca_key, ca = make_ca("ca")
    _, other_ca = make_ca("other-ca")
    return Pki(
        ca=ca,
        server_cert=make_leaf("server", ca_key, ExtendedKeyUsageOID.SERVER_AUTH),
        server_key=folder / "server.key",
        client_cert=make_leaf("client", ca_key, ExtendedKeyUsageOID.CLIENT_AUTH),
        client_key=folder / "client.key",
        other_ca=other_ca,
    )


def password_file(folder: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file made by ``mosquitto_passwd`` (hashes are the broker's own format)."""
    path = folder / "passwords"
    path.write_text("")
    for user, password in users.items():
        subprocess.run(
            [binary("mosquitto_passwd", "mosquitto"), "-b", str(path), user, password],
            check=True,
            capture_output=True,
        )
    return path


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


def postgres_binary(name: str) -> str:
    """A PostgreSQL server binary from Debian's ``postgresql`` (``/usr/lib/postgresql/<version>/bin``)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError(f"{name} not found: install it with `apt-get install -y postgresql` (see .ci/run)")
    return str(found[-1])


@dataclass
class PgServer:
    """A PostgreSQL cluster of the test's own: TCP on a free loopback port, its unix socket in its folder.

    The server refuses to run as root, so as root every command runs as the ``postgres`` user (created by
    Debian's package) through ``setpriv``, in a folder of its own under the system temp dir that it owns
    (the test's tmp_path is private to root). ``stop(mode)`` takes PostgreSQL's shutdown modes: ``fast``
    rolls back open transactions and closes every connection, ``immediate`` is a crash.
    """

    port: int
    folder: Path
    proc: subprocess.Popen | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]

    def init(self) -> None:
        # --no-sync skips initdb's own final sync only; the server runs with fsync on.
        initdb = [postgres_binary("initdb"), "-D", str(self.folder / "data"), "-U", "postgres", "-A", "trust"]
        initdb += ["-E", "UTF8", "--no-locale", "--no-sync"]
        subprocess.run(self._as_server_user(initdb), check=True, capture_output=True)
        with (self.folder / "data" / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\nfsync = on\nsynchronous_commit = on\n"
                "max_connections = 20\nshared_buffers = 32MB\n"
            )

    def start(self, timeout: float = 30.0) -> None:
        log = (self.folder / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            self._as_server_user([postgres_binary("postgres"), "-D", str(self.folder / "data")]),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        ready = [postgres_binary("pg_isready"), "-q", "-h", str(self.folder), "-p", str(self.port)]
        deadline = time.monotonic() + timeout
        while subprocess.run(ready, check=False).returncode != 0:  # listening is not accepting (recovery)
            if self.proc.poll() is not None:
                log_path = self.folder / "postgres.log"
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: see {log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres not accepting connections on {self.port} after {timeout} s")
            time.sleep(0.05)

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        signals = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signals[mode])
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def postgresql(workdir: Path) -> Iterator[PgServer]:
    """A fresh cluster; its log is copied to ``workdir/postgres.log`` when it stops."""
    workdir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="kw-pg-"))  # short: a unix socket path has at most 107 bytes
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        server = PgServer(free_port(), folder)
        server.init()
        server.start()
        try:
            yield server
        finally:
            server.stop()
            with contextlib.suppress(OSError):
                shutil.copy(folder / "postgres.log", workdir / "postgres.log")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
