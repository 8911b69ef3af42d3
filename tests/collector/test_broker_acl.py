"""``kilnwatch collector broker-acl`` against a real Mosquitto: who may publish, read and log in.

Each test writes site models, runs the command, and starts a broker of its own with the written password file
and ACL (``tests/servers.py``). Denied publishes are checked two ways: the broker's MQTT 5 PUBACK says "Not
authorized" (reason 135), and the collector never receives them. The second needs no waiting for something
that must not happen: the denied publishes go first, then one allowed publish on the same connection, and
once that one arrives anything delivered before it would have arrived too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import ssl
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from typer.testing import CliRunner

from agent import wire
from collector.cli import collector_app
from tests import servers

ROOT = wire.DEFAULT_ROOT
DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"
NOT_AUTHORIZED = 135  # MQTT 5 reason code
ACCEPTED = (0, 16)  # PUBACK: success, or success with no matching subscribers
TIMEOUT = 20.0  # seconds; generous for a loaded 2-core machine


def site_model(site: str, agents: list[str]) -> str:
    channels = "".join(
        f"""
[channels."{agent}/kiln_kwh"]
kind = "energy_total"
unit = "kWh"
line = "L1"
role = "consumption"
carrier = "electricity"
"""
        for agent in agents
    )
    return f'[site]\nid = "{site}"\n\n[lines.L1]\nname = "Kiln line 1"\n{channels}'


@dataclass
class Fleet:
    """Two plants' site models in one folder, a collector config naming it, and the command's output."""

    folder: Path
    config: Path
    out: Path

    def write_site(self, site: str, agents: list[str]) -> Path:
        path = self.folder / "sites" / f"{site}.toml"
        path.write_text(site_model(site, agents), encoding="utf-8")
        return path

    def run(self, *extra: str):
        return CliRunner().invoke(
            collector_app, ["broker-acl", str(self.config), "--out", str(self.out), *extra]
        )

    def generate(self, *extra: str) -> str:
        result = self.run(*extra)
        assert result.exit_code == 0, result.output
        return result.output

    def password(self, site: str | None = None, agent: str | None = None) -> str:
        path = self.secrets(site, agent)
        values = dict(
            line.split("=", 1) for line in path.read_text().splitlines() if not line.startswith("#")
        )
        return values["KILNWATCH_MQTT_PASSWORD"]

    def secrets(self, site: str | None = None, agent: str | None = None) -> Path:
        if site is None:
            return self.out / "secrets" / "kilnwatch-collector.env"
        return self.out / "secrets" / site / f"{agent}.env"

    def broker_options(self) -> list[str]:
        return [
            "allow_anonymous false",
            f"password_file {self.out / 'passwd'}",
            f"acl_file {self.out / 'acl'}",
        ]


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    (tmp_path / "sites").mkdir()
    config = tmp_path / "collector.toml"
    config.write_text('[collector]\nsite_model = "sites"\n\n[mqtt]\nshared_group = "collectors"\n')
    f = Fleet(tmp_path, config, tmp_path / "broker")
    f.write_site("plant-a", ["gw1", "gw2"])
    f.write_site("plant-b", ["gw1"])
    return f


class Client:
    """A paho client that records what it receives and the broker's answer to each publish."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        *,
        client_id: str = "",
        protocol: int = mqtt.MQTTv5,
        persistent: bool = False,
        tls_ca: Path | None = None,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{os.urandom(4).hex()}",
            protocol=protocol,
            clean_session=None if protocol == mqtt.MQTTv5 else not persistent,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.messages: list[tuple[str, bytes, bool]] = []
        self.acks: dict[int, int] = {}
        self.connack: int | None = None
        self.session_present = False
        self.subscribed: list[int] | None = None
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(0.1, 0.5)
        properties = None
        if protocol == mqtt.MQTTv5 and persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 0xFFFFFFFF
        self.client.connect_async(
            "127.0.0.1",
            port,
            clean_start=False if persistent else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self.client.loop_start()

    def _on_connect(self, _c, _u, flags, reason, _p) -> None:
        with self._cond:
            self.connack = reason.value
            self.session_present = flags.session_present
            self._cond.notify_all()

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self._cond.notify_all()

    def _on_publish(self, _c, _u, mid: int, reason, _p) -> None:
        with self._cond:
            self.acks[mid] = reason.value
            self._cond.notify_all()

    def _on_subscribe(self, _c, _u, _mid, reasons, _p) -> None:
        with self._cond:
            self.subscribed = [r.value for r in reasons]
            self._cond.notify_all()

    def wait(self, condition, what: str, timeout: float = TIMEOUT):
        with self._cond:
            if not self._cond.wait_for(condition, timeout):
                raise AssertionError(f"{what}: not within {timeout} s")
            return condition()

    def connack_code(self) -> int:
        """The first CONNACK's reason code: 0 accepted, 134/135 bad login / not authorized."""
        self.wait(lambda: self.connack is not None, "CONNACK")
        return self.connack

    def subscribe(self, *filters: str) -> None:
        assert self.connack_code() == 0, f"not connected: reason {self.connack}"
        with self._cond:
            self.subscribed = None
        self.client.subscribe([(f, 1) for f in filters])
        self.wait(lambda: self.subscribed, "SUBACK")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code (MQTT 3.1.1: 0 once acknowledged)."""
        self.wait(lambda: self.connack == 0, "connected")
        mid = self.client.publish(topic, payload, qos=1, retain=retain).mid
        self.wait(lambda: mid in self.acks, f"PUBACK of {topic}")
        return self.acks[mid]

    def received(self, topic: str, payload: bytes) -> list[tuple[str, bytes, bool]]:
        """Wait until ``(topic, payload)`` has arrived; return everything received so far."""
        self.wait(lambda: any(m[:2] == (topic, payload) for m in self.messages), f"{topic} {payload!r}")
        with self._cond:
            return list(self.messages)

    def drop(self) -> None:
        """Vanish without a DISCONNECT, as a gateway losing power does: the broker sends the last will."""
        self.client.loop_stop()
        self.client.socket().close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients():
    made: list[Client] = []

    def make(*args, **kwargs) -> Client:
        made.append(Client(*args, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


def data(site: str, agent: str) -> str:
    return wire.data_topic(site, agent, ROOT)


def collector_filters(prefix: str = "") -> list[str]:
    """What a collector serving both plants subscribes to (``collector.ingest.mqtt``)."""
    kinds = ("data", "birth", "status")
    return [prefix + wire.subscription(kind, site, ROOT) for site in ("plant-a", "plant-b") for kind in kinds]


def acl_broker(fleet: Fleet):
    """A broker with the written files; ``log_type all`` shows when it has handled a client's close."""
    return servers.mosquitto(fleet.folder / "mosquitto", options=[*fleet.broker_options(), "log_type all"])


def wait_until(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def test_agent_publishes_only_its_own_topics(fleet: Fleet, clients) -> None:
    fleet.generate()
    with acl_broker(fleet) as broker:
        collector = clients(broker.port, "kilnwatch-collector", fleet.password())
        collector.subscribe(*collector_filters("$share/collectors/"))
        gw1 = clients(broker.port, "plant-a/gw1", fleet.password("plant-a", "gw1"))

        assert gw1.publish(data("plant-b", "gw1"), b"as plant-b") == NOT_AUTHORIZED
        assert gw1.publish(data("plant-a", "gw2"), b"as gw2") == NOT_AUTHORIZED
        assert (
            gw1.publish(wire.status_topic("plant-a", "gw2", ROOT), b"gw2 offline", retain=True)
            == NOT_AUTHORIZED
        )
        assert gw1.publish(f"{ROOT}/v1/plant-a/gw1/other", b"no such kind") == NOT_AUTHORIZED
        assert gw1.publish(data("plant-a", "gw1"), b"own") in ACCEPTED

        # The allowed publish came last on the same connection: everything before it has been dealt with.
        assert collector.received(data("plant-a", "gw1"), b"own") == [(data("plant-a", "gw1"), b"own", False)]


def test_agent_birth_status_and_last_will_are_its_own(fleet: Fleet, clients) -> None:
    fleet.generate()
    status = wire.status_topic("plant-b", "gw1", ROOT)
    with acl_broker(fleet) as broker:
        collector = clients(broker.port, "kilnwatch-collector", fleet.password())
        collector.subscribe(*collector_filters())
        password = fleet.password("plant-b", "gw1")
        agent = clients(broker.port, "plant-b/gw1", password, will=(status, b"offline"))
        assert agent.publish(wire.birth_topic("plant-b", "gw1", ROOT), b"birth", retain=True) in ACCEPTED
        assert agent.publish(status, b"online", retain=True) in ACCEPTED
        collector.received(status, b"online")
        agent.drop()
        collector.received(status, b"offline")  # the last will, published by the broker for the agent

        # A will on another agent's status topic: Mosquitto 2.0.11 accepts the connection and drops the will.
        spoofed = wire.status_topic("plant-a", "gw1", ROOT)
        spoofer = clients(broker.port, "plant-b/gw1", password, client_id="spoofer", will=(spoofed, b"x"))
        assert spoofer.connack_code() == 0
        spoofer.drop()
        log = broker.workdir / "mosquitto.log"
        wait_until(lambda: "Client spoofer closed its connection" in log.read_text(), "spoofer's disconnect")
        barrier = clients(broker.port, "plant-a/gw1", fleet.password("plant-a", "gw1"))
        assert barrier.publish(data("plant-a", "gw1"), b"barrier") in ACCEPTED
        collector.received(data("plant-a", "gw1"), b"barrier")
        assert (spoofed, b"x", False) not in collector.messages

        # Both were retained: a collector connecting later reads them.
        later = clients(broker.port, "kilnwatch-collector", fleet.password())
        later.subscribe(*collector_filters())
        later.received(status, b"offline")
        later.received(wire.birth_topic("plant-b", "gw1", ROOT), b"birth")
        assert all(retained for _, _, retained in later.messages)


def test_agent_reads_nothing(fleet: Fleet, clients) -> None:
    fleet.generate()
    with acl_broker(fleet) as broker:
        gw2 = clients(broker.port, "plant-a/gw2", fleet.password("plant-a", "gw2"))
        assert gw2.publish(wire.birth_topic("plant-a", "gw2", ROOT), b"gw2 birth", retain=True) in ACCEPTED

        gw1 = clients(broker.port, "plant-a/gw1", fleet.password("plant-a", "gw1"))
        gw1.subscribe("#", f"{ROOT}/v1/plant-a/+/birth", data("plant-a", "gw2"), "$share/g/#")
        collector = clients(broker.port, "kilnwatch-collector", fleet.password())
        collector.subscribe(*collector_filters())
        collector.received(wire.birth_topic("plant-a", "gw2", ROOT), b"gw2 birth")  # retained, for readers
        assert gw2.publish(data("plant-a", "gw2"), b"gw2 data") in ACCEPTED
        collector.received(data("plant-a", "gw2"), b"gw2 data")

        # Barrier: gw1's own PUBACK is queued on its connection after anything the broker sent it before.
        assert gw1.publish(data("plant-a", "gw1"), b"barrier") in ACCEPTED
        collector.received(data("plant-a", "gw1"), b"barrier")
        assert gw1.messages == []


def test_collector_reads_but_cannot_publish(fleet: Fleet, clients) -> None:
    fleet.generate()
    with acl_broker(fleet) as broker:
        watcher = clients(broker.port, "kilnwatch-collector", fleet.password())
        watcher.subscribe(*collector_filters())
        collector = clients(broker.port, "kilnwatch-collector", fleet.password())
        assert collector.publish(data("plant-a", "gw1"), b"forged batch") == NOT_AUTHORIZED
        status = wire.status_topic("plant-a", "gw1", ROOT)
        assert collector.publish(status, b"forged offline", retain=True) == NOT_AUTHORIZED
        assert collector.publish("anything/else", b"x") == NOT_AUTHORIZED

        gw1 = clients(broker.port, "plant-a/gw1", fleet.password("plant-a", "gw1"))
        assert gw1.publish(data("plant-a", "gw1"), b"real") in ACCEPTED
        assert watcher.received(data("plant-a", "gw1"), b"real") == [(data("plant-a", "gw1"), b"real", False)]
        late = clients(broker.port, "kilnwatch-collector", fleet.password())
        late.subscribe(status)
        assert late.publish("anything/else", b"barrier") == NOT_AUTHORIZED  # a round trip after the SUBACK
        assert late.messages == []  # no retained forgery


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5"])
def test_wrong_logins_are_refused(fleet: Fleet, clients, protocol: int) -> None:
    fleet.generate()
    gw1 = fleet.password("plant-a", "gw1")
    with acl_broker(fleet) as broker:
        assert clients(broker.port, "plant-a/gw1", gw1, protocol=protocol).connack_code() == 0
        refused = [
            clients(
                broker.port, "plant-a/gw1", gw1[:-1] + ("x" if gw1[-1] != "x" else "y"), protocol=protocol
            ),
            clients(broker.port, "plant-b/gw1", gw1, protocol=protocol),  # another agent's user
            clients(broker.port, "plant-a/gw9", gw1, protocol=protocol),  # no such user
            clients(broker.port, None, None, protocol=protocol),  # anonymous
        ]
        # MQTT 5: 134 bad user name or password / 135 not authorized; 3.1.1's codes 4 and 5 read the same.
        assert [c.connack_code() in (134, 135) for c in refused] == [True] * 4


def pbkdf2_matches(line: str, password: str) -> bool:
    """Check one ``user:$7$iterations$salt$hash`` line the way Mosquitto 2.0 does (PBKDF2-HMAC-SHA512)."""
    _, hashed = line.split(":", 1)
    _, seven, iterations, salt, digest = hashed.split("$")
    expected = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    return seven == "7" and base64.b64decode(digest) == expected


def test_rerun_keeps_passwords_and_a_reload_admits_new_agents(fleet: Fleet, clients) -> None:
    first = fleet.generate()
    assert "new passwords: kilnwatch-collector, plant-a/gw1, plant-a/gw2, plant-b/gw1" in first
    logins = {("plant-a", "gw1"), ("plant-a", "gw2"), ("plant-b", "gw1")}
    before = {login: fleet.password(*login) for login in logins} | {None: fleet.password()}
    assert len(set(before.values())) == 4 and all(len(p) == 32 for p in before.values())  # 24 random bytes

    with acl_broker(fleet) as broker:
        fleet.write_site("plant-a", ["gw1", "gw2", "gw3"])
        second = fleet.generate()
        assert (
            "new passwords: plant-a/gw3; kept: kilnwatch-collector, plant-a/gw1, plant-a/gw2, plant-b/gw1"
            in second
        )
        assert {login: fleet.password(*login) for login in logins} | {None: fleet.password()} == before

        lines = {
            ln.split(":", 1)[0]: ln for ln in (fleet.out / "passwd").read_text().splitlines() if ":" in ln
        }
        assert sorted(lines) == [
            "kilnwatch-collector",
            "plant-a/gw1",
            "plant-a/gw2",
            "plant-a/gw3",
            "plant-b/gw1",
        ]
        assert pbkdf2_matches(lines["plant-a/gw1"], before[("plant-a", "gw1")])
        assert pbkdf2_matches(lines["plant-a/gw3"], fleet.password("plant-a", "gw3"))
        for path in [
            fleet.out / "passwd",
            fleet.out / "acl",
            fleet.secrets(),
            fleet.secrets("plant-a", "gw3"),
        ]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

        # Mosquitto re-reads both files on SIGHUP: gw3 gets in, gw1 keeps its password.
        assert (
            clients(broker.port, "plant-a/gw3", fleet.password("plant-a", "gw3")).connack_code()
            == NOT_AUTHORIZED
        )
        broker.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT
        while (code := login_code(broker.port, "plant-a/gw3", fleet.password("plant-a", "gw3"))) != 0:
            assert time.monotonic() < deadline, f"gw3 still refused ({code}) after SIGHUP"
            time.sleep(0.1)
        assert login_code(broker.port, "plant-a/gw1", before[("plant-a", "gw1")]) == 0


def login_code(port: int, username: str, password: str) -> int:
    client = Client(port, username, password)
    try:
        return client.connack_code()
    finally:
        client.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_rerun_keeps_the_owner_the_broker_reads_the_files_as(fleet: Fleet) -> None:
    fleet.generate()
    nobody = 65534
    for name in ("passwd", "acl"):
        os.chown(fleet.out / name, nobody, nobody)
    fleet.generate()
    for name in ("passwd", "acl"):
        st = (fleet.out / name).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (nobody, nobody, 0o600)
    assert fleet.secrets().stat().st_uid == 0  # new and untouched files belong to whoever ran it


def test_removed_agent_loses_its_login_and_its_file_is_named(fleet: Fleet) -> None:
    fleet.generate()
    fleet.write_site("plant-a", ["gw1"])
    result = fleet.run()
    assert result.exit_code == 0, result.output
    leftover = fleet.secrets("plant-a", "gw2")
    assert f"warning: {leftover}: no longer a login (no site model names the agent" in result.output
    assert leftover.exists()
    assert "plant-a/gw2" not in (fleet.out / "passwd").read_text()
    assert "plant-a/gw2" not in (fleet.out / "acl").read_text()
    with acl_broker(fleet) as broker:
        assert login_code(broker.port, "plant-a/gw2", fleet.password("plant-a", "gw2")) == NOT_AUTHORIZED


def test_ids_that_cannot_be_usernames_are_refused_before_writing(fleet: Fleet) -> None:
    sites = fleet.folder / "sites"
    bad = fleet.write_site("plant:c", ["gw1"])
    (sites / "plant-d.toml").write_text(site_model("plant-d", ["gw:1"]))
    (sites / "plant-e.toml").write_text(site_model("plant e", ["gw1"]))
    (sites / "plant-f.toml").write_text(site_model("..", ["gw1"]))
    result = fleet.run()
    assert result.exit_code == 2
    assert f"{bad}: site.id: 'plant:c' holds ':'" in result.output
    assert "plant-d.toml: channels.gw:1/kiln_kwh: agent id 'gw:1' holds ':'" in result.output
    assert "rename the agent" in result.output
    assert "plant-e.toml: site.id: 'plant e' is not a valid topic level" in result.output
    assert (
        "plant-f.toml: site.id: '..' cannot name a secrets folder or file — rename the site" in result.output
    )
    assert not fleet.out.exists()

    for name in ("plant:c", "plant-d", "plant-e", "plant-f"):
        (sites / f"{name}.toml").unlink()
    result = fleet.run("--collector-user", "ops/collector")
    assert result.exit_code == 2
    assert "--collector-user: 'ops/collector' cannot be the collector's username" in result.output
    assert not fleet.out.exists()


def test_secrets_file_without_password_is_named_and_nothing_is_written(fleet: Fleet) -> None:
    fleet.generate()
    passwd = (fleet.out / "passwd").read_text()
    fleet.secrets("plant-b", "gw1").write_text("KILNWATCH_MQTT_USERNAME=plant-b/gw1\n")
    result = fleet.run()
    assert result.exit_code == 2
    assert f"{fleet.secrets('plant-b', 'gw1')}: KILNWATCH_MQTT_PASSWORD: missing or empty" in result.output
    assert "delete the file to give the login a new password" in result.output
    assert (fleet.out / "passwd").read_text() == passwd


def test_collector_users_come_from_the_options_or_the_config(fleet: Fleet) -> None:
    fleet.generate("--collector-user", "regional-1", "--collector-user", "regional-2")
    acl = (fleet.out / "acl").read_text()
    regional = [fleet.out / "secrets" / f"regional-{n}.env" for n in (1, 2)]
    for n, path in enumerate(regional, 1):
        assert f"user regional-{n}\ntopic read kilnwatch/v1/plant-a/+/data\n" in acl
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert regional[0].read_text() != regional[1].read_text()

    fleet.config.write_text(
        '[collector]\nsite_model = "sites"\n\n[mqtt]\nusername = "central"\nroot = "kw"\n'
    )
    result = fleet.run()
    assert result.exit_code == 0, result.output
    acl = (fleet.out / "acl").read_text()
    assert "user central\ntopic read kw/v1/plant-a/+/data\n" in acl
    assert "user plant-b/gw1\ntopic write kw/v1/plant-b/gw1/data\n" in acl
    assert "regional" not in acl and "regional" not in (fleet.out / "passwd").read_text()
    for path in regional:
        assert f"warning: {path}: no longer a login" in result.output


@dataclass
class DeployedMosquitto(servers.Mosquitto):
    """``deploy/mosquitto/mosquitto.conf`` itself, with only its port and paths replaced by the test's."""

    text: str = ""

    def config(self) -> str:
        return self.text


def deployed_config(port: int, out: Path, pki: servers.Pki, state: Path) -> str:
    text = DEPLOY_CONF.read_text(encoding="utf-8")
    replacements = {
        "listener 8883\n": f"listener {port} 127.0.0.1\n",
        "/etc/mosquitto/kilnwatch/": f"{out}/",
        "/etc/mosquitto/certs/ca.pem": str(pki.ca),
        "/etc/mosquitto/certs/broker.pem": str(pki.server_cert),
        "/etc/mosquitto/certs/broker.key": str(pki.server_key),
        "/var/lib/mosquitto/": f"{state}/",
    }
    if os.geteuid() == 0:  # see tests/servers.py: as root, "user mosquitto" could not read the test's files
        replacements["user mosquitto\n"] = "user root\n"
    for old, new in replacements.items():
        assert old in text, f"{DEPLOY_CONF} no longer holds {old!r}: update this test"
        text = text.replace(old, new)
    return text


def test_deploy_config_keeps_queued_qos1_batches_across_a_restart(
    fleet: Fleet, clients, tmp_path: Path
) -> None:
    fleet.generate()
    pki = servers.make_pki(tmp_path / "pki")
    state = tmp_path / "deployed"
    state.mkdir()
    broker = DeployedMosquitto(servers.free_port(), state)
    broker.text = deployed_config(broker.port, fleet.out, pki, state)
    broker.start()
    try:
        tls = {"tls_ca": pki.ca, "protocol": mqtt.MQTTv311}
        assert (
            clients(broker.port, None, None, **tls).connack_code() == NOT_AUTHORIZED
        )  # allow_anonymous false

        login = ("kilnwatch-collector", fleet.password())
        collector = clients(broker.port, *login, client_id="collector-host-1", persistent=True, **tls)
        collector.subscribe(*collector_filters())
        collector.close()  # a clean DISCONNECT: the persistent session stays and queues for it

        # More batches than Mosquitto's default max_queued_messages (1000), which would drop the last 500.
        count = 1500
        gw1_login = ("plant-a/gw1", fleet.password("plant-a", "gw1"))
        gw1 = clients(broker.port, *gw1_login, **tls)
        mids = [gw1.client.publish(data("plant-a", "gw1"), str(i).encode(), qos=1).mid for i in range(count)]
        gw1.wait(lambda: all(mid in gw1.acks for mid in mids), f"{count} PUBACKs")
        gw1.close()

        # An agent presenting the collector's client ids with a clean session would, on a listener without
        # use_username_as_clientid, take over the collector's session and wipe its queue. Here the session
        # is the agent's login's, and the collector's queue stays.
        for client_id in ("collector-host-1", "kilnwatch-collector"):
            thief = clients(broker.port, *gw1_login, client_id=client_id, **tls)
            assert thief.connack_code() == 0
            thief.close()

        broker.restart()  # SIGTERM: Mosquitto saves its store on the way out
        assert (state / "mosquitto.db").exists()

        # Back with another client id (its config changed): the session is the login's, nothing is lost.
        back = clients(broker.port, *login, client_id="collector-host-2", persistent=True, **tls)
        back.wait(lambda: len(back.messages) >= count, f"{count} batches after the restart")
        assert back.session_present
        # Every batch exactly once. Not in order: Mosquitto 2.0.11 restores a queue out of order, which the
        # ledger takes in its stride (an older reading rebuilds its channel's increments).
        assert sorted(int(payload) for _, payload, _ in back.messages) == list(range(count))
    finally:
        broker.stop()
