"""One config language: the agent's config, the collector's, the site model and the sinks table are read by
one loader (``agent.config_load``), so each reports a bad file in one format, expands ``${VAR:-default}`` the
same way, and takes relative paths from the config file's folder. The collector's ``[mqtt]`` is the agent's
section, and the collector connects with it: username/password, TLS and a client certificate, MQTT 3.1.1 and
5, against a real Mosquitto.

Every file here is a real file on disk, loaded from another working directory. The site model and the sinks
table have no path keys, so the relative-path tests cover the agent's and the collector's files.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import wire
from agent.config import load_config as load_agent
from agent.config_load import ConfigError
from agent.mqtt_settings import connect_options, make_client
from collector.config import load_config as load_collector
from collector.service import Collector
from collector.site import load_site
from tests import servers

REPO = Path(__file__).resolve().parents[2]
DEMO_SITE = (REPO / "deploy" / "demo" / "site.toml").read_text()

AGENT = '[agent]\nid = "kiln-gw"\nsite = "demo-plant"\n'
COLLECTOR = '[collector]\nsite_model = "site.toml"\n'
SINKS = '[influx]\napi = "v2"\nurl = "http://127.0.0.1:8086"\norg = "plant1"\nbucket = "kilnwatch"\n'

#: ``<file>: <key path>: <what is wrong> — <the fix>``, the one format of every problem line.
LINE = re.compile(r"^(?P<file>/\S+): (?P<key>[^\s:]+): (?P<what>.+?) — (?P<fix>.+)$")


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Load every file from another working directory: relative paths must not depend on it."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)


def files(tmp_path: Path) -> dict[str, Callable[[str], tuple[Path, Callable[[Path], Any]]]]:
    """Per role: write the file's text (plus what it needs beside it) into its own folder; return the path
    and the loader."""
    (tmp_path / "site.toml").write_text(DEMO_SITE)

    def role(name: str, loader: Callable[[Path], Any], prefix: str = "") -> Callable[[str], Any]:
        def write(text: str) -> tuple[Path, Callable[[Path], Any]]:
            path = tmp_path / f"{name}.toml"
            path.write_text(prefix + text)
            return path, loader

        return write

    return {
        "agent": role("agent", load_agent, AGENT),
        "collector": role("collector", load_collector, COLLECTOR),
        "site": role("site-model", load_site),
        "sinks": role("sinks", load_collector, COLLECTOR),  # the [influx] table of a collector config
    }


def problems(path: Path, load: Callable[[Path], Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value) == "\n".join(err.value.problems)
    return err.value.problems


BAD = {
    "agent": ("[mqtt]\nport = true\nkeepalve = 30\n", "mqtt.keepalve", "did you mean 'keepalive'?"),
    "collector": ("[mqtt]\nport = true\nkeepalve = 30\n", "mqtt.keepalve", "did you mean 'keepalive'?"),
    "site": (
        DEMO_SITE.replace('timezone = "Asia/Shanghai"', 'tz = "Asia/Shanghai"'),
        "site.tz",
        "did you mean 'timezone'?",
    ),
    "sinks": (SINKS + 'bucket_name = "x"\n', "influx.bucket_name", "did you mean 'bucket'?"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_file_names_the_file_the_key_and_the_fix(kind: str, tmp_path: Path) -> None:
    text, key, fix = BAD[kind]
    path, load = files(tmp_path)[kind](text)
    lines = problems(path, load)
    for line in lines:
        match = LINE.match(line)
        assert match, f"not <file>: <key>: <what> — <fix>: {line!r}"
        assert match["file"] == str(path)
    unknown = [LINE.match(line) for line in lines if LINE.match(line)["key"] == key]
    assert len(unknown) == 1
    assert unknown[0]["what"] == f"unknown key {key.rsplit('.', 1)[1]!r}"
    assert unknown[0]["fix"].startswith(fix)


def test_the_agent_and_the_collector_word_the_same_mqtt_mistake_alike(tmp_path: Path) -> None:
    roles = files(tmp_path)
    said = []
    for kind in ("agent", "collector"):
        path, load = roles[kind](BAD[kind][0])
        (port,) = [line for line in problems(path, load) if ": mqtt.port: " in line]
        said.append(port.removeprefix(f"{path}: "))
    assert said[0] == said[1]
    assert said[0].startswith("mqtt.port: expected an integer, got true — give a number, e.g. port = 1883")


MQTT_FROM_ENV = '[mqtt]\nport = "${KW_PORT:-1884}"\nusername = "${KW_USER:-gw}"\n'
DEFAULTS = {
    "agent": (MQTT_FROM_ENV, lambda c: c.mqtt.port),
    "collector": (MQTT_FROM_ENV, lambda c: c.mqtt.port),
    "site": (
        DEMO_SITE.replace("altitude_m = 300", 'altitude_m = "${KW_ALTITUDE:-1884}"'),
        lambda s: s.site.altitude_m,
    ),
    "sinks": (
        SINKS.replace("api =", 'batch_lines = "${KW_BATCH:-1884}"\napi ='),
        lambda c: c.influx.batch_lines,
    ),
}
ENV = {"agent": "KW_PORT", "collector": "KW_PORT", "site": "KW_ALTITUDE", "sinks": "KW_BATCH"}


@pytest.mark.parametrize("kind", list(DEFAULTS))
def test_env_references_with_defaults_expand_in_every_file(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, value = DEFAULTS[kind]
    for name in ("KW_PORT", "KW_USER", "KW_ALTITUDE", "KW_BATCH"):
        monkeypatch.delenv(name, raising=False)
    path, load = files(tmp_path)[kind](text)
    assert value(load(path)) == 1884  # the default, read by the key's type (a number, not "1884")
    monkeypatch.setenv(ENV[kind], "2001")
    assert value(load(path)) == 2001


UNSET = {
    "agent": '[mqtt]\npassword = "${KW_NOPE}"\nusername = "gw"\n',
    "collector": '[mqtt]\npassword = "${KW_NOPE}"\nusername = "gw"\n',
    "site": DEMO_SITE.replace('id = "demo-plant"', 'id = "${KW_NOPE}"', 1),
    "sinks": SINKS + 'token = "${KW_NOPE}"\n',
}
UNSET_KEY = {
    "agent": "mqtt.password",
    "collector": "mqtt.password",
    "site": "site.id",
    "sinks": "influx.token",
}


@pytest.mark.parametrize("kind", list(UNSET))
def test_an_unset_variable_without_default_is_named_alike_in_every_file(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KW_NOPE", raising=False)
    path, load = files(tmp_path)[kind](UNSET[kind])
    assert problems(path, load) == [
        f"{path}: {UNSET_KEY[kind]}: environment variable 'KW_NOPE' is not set: "
        "set it, or give a default as ${KW_NOPE:-value}"
    ]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> servers.Pki:
    return servers.make_pki(tmp_path_factory.mktemp("pki"))


def copy_pki(pki: servers.Pki, folder: Path) -> None:
    """The PKI's files under ``folder/pki``, so config files can name them relatively."""
    (folder / "pki").mkdir(exist_ok=True)
    for name in ("ca", "client_cert", "client_key"):
        source: Path = getattr(pki, name)
        (folder / "pki" / source.name).write_bytes(source.read_bytes())


TLS = 'tls = true\nca_file = "pki/ca.pem"\ncert_file = "pki/client.pem"\nkey_file = "pki/client.key"\n'


def test_relative_paths_are_taken_from_the_config_files_folder(pki: servers.Pki, tmp_path: Path) -> None:
    copy_pki(pki, tmp_path)
    roles = files(tmp_path)
    agent = load_agent(roles["agent"]('[outbox]\npath = "data/outbox.db"\n\n[mqtt]\n' + TLS)[0])
    assert agent.outbox.path == tmp_path / "data" / "outbox.db"
    collector = load_collector(roles["collector"]('ledger = "data/ledger.sqlite"\n\n[mqtt]\n' + TLS)[0])
    assert collector.collector.site_model == tmp_path / "site.toml"
    assert collector.collector.ledger == tmp_path / "data" / "ledger.sqlite"
    for mqtt in (agent.mqtt, collector.mqtt):
        assert (mqtt.ca_file, mqtt.cert_file, mqtt.key_file) == (
            tmp_path / "pki" / "ca.pem",
            tmp_path / "pki" / "client.pem",
            tmp_path / "pki" / "client.key",
        )
    # The default ledger sits beside the config file too, not in the working directory.
    assert load_collector(roles["collector"]("")[0]).collector.ledger == tmp_path / "var" / "ledger.sqlite"


def test_a_missing_relative_file_is_named_with_where_it_was_looked_for(tmp_path: Path) -> None:
    roles = files(tmp_path)
    path, load = roles["collector"]('\n[mqtt]\ntls = true\nca_file = "pki/nowhere.pem"\n')
    (line,) = problems(path, load)
    assert line.startswith(
        f"{path}: mqtt.ca_file: {str(tmp_path / 'pki' / 'nowhere.pem')!r} is not a readable"
    )
    path = tmp_path / "collector.toml"
    path.write_text('[collector]\nsite_model = "models/site.toml"\n')
    (line,) = problems(path, load_collector)
    assert line == (
        f"{path}: collector.site_model: {str(tmp_path / 'models' / 'site.toml')!r} does not exist — point it "
        "at the site model file or a folder of site model files"
        " (a relative path is taken from this file's folder)"
    )


# --- the collector connects with the agent's [mqtt] keys ------------------------------------------------


@pytest.fixture
def secure_broker(pki: servers.Pki, tmp_path: Path) -> Iterator[servers.Mosquitto]:
    """Mosquitto that wants TLS, a client certificate signed by the test CA, and a username/password."""
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    passwords = servers.password_file(folder, {"kiln": "s3cret pass"})
    options = ["allow_anonymous false", f"password_file {passwords}"]
    with servers.mosquitto(folder, listener_options=pki.tls_listener(), options=options) as broker:
        yield broker


def mqtt_section(port: int, protocol: str, password: str = "${KW_MQTT_PASSWORD}") -> str:
    return (
        f'\n[mqtt]\nhost = "localhost"\nport = {port}\nprotocol = "{protocol}"\nusername = "kiln"\n'
        f'password = "{password}"\n' + TLS
    )


def batch(seq: int, kwh: float) -> bytes:
    b = wire.Batch("demo-plant", "kiln-gw", "e1", seq)
    b.add("raw_mill_kwh", int(time.time() * 1000) - 60_000 + seq, kwh)
    return wire.encode_batch(b)


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_the_collector_connects_with_login_tls_and_a_client_certificate(
    protocol: str,
    pki: servers.Pki,
    secure_broker: servers.Mosquitto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same [mqtt] block in the agent's and the collector's file; the password from the environment.
    A batch published while the collector is down arrives when it is back (its session persists, which for
    MQTT 5 takes a session expiry)."""
    monkeypatch.setenv("KW_MQTT_PASSWORD", "s3cret pass")
    copy_pki(pki, tmp_path)
    roles = files(tmp_path)
    agent_path, _ = roles["agent"](mqtt_section(secure_broker.port, protocol))
    collector_path, _ = roles["collector"](mqtt_section(secure_broker.port, protocol))
    agent_cfg, cfg = load_agent(agent_path), load_collector(collector_path)
    assert cfg.mqtt.password == "s3cret pass" and cfg.mqtt.tls and cfg.mqtt.cert_file is not None

    publisher = make_client(agent_cfg.mqtt, agent_cfg.client_id)
    publisher.connect(agent_cfg.mqtt.host, agent_cfg.mqtt.port, **connect_options(agent_cfg.mqtt))
    publisher.loop_start()
    topic = wire.data_topic("demo-plant", "kiln-gw", agent_cfg.mqtt.root)
    collector = Collector(cfg, load_site(cfg.collector.site_model))
    try:
        collector.start()
        assert collector.mqtt.ready.wait(15), "the collector did not connect and subscribe"
        publisher.publish(topic, batch(1, 1000.0), qos=1).wait_for_publish(10)
        assert wait_until(lambda: collector.ingest.counters["batches"] == 1)
        collector.close()

        publisher.publish(topic, batch(2, 1010.0), qos=1).wait_for_publish(10)  # the collector is away
        collector = Collector(cfg, load_site(cfg.collector.site_model))
        collector.start()
        assert wait_until(lambda: collector.ingest.counters["batches"] == 1), "the queued batch was lost"
        assert collector.ingest.counters["duplicates"] == 0
    finally:
        collector.close()
        publisher.loop_stop()
        publisher.disconnect()


def test_a_wrong_password_keeps_the_collector_out(
    pki: servers.Pki, secure_broker: servers.Mosquitto, tmp_path: Path
) -> None:
    copy_pki(pki, tmp_path)
    path, _ = files(tmp_path)["collector"](mqtt_section(secure_broker.port, "5", password="wrong"))
    cfg = load_collector(path)
    collector = Collector(cfg, load_site(cfg.collector.site_model))
    try:
        collector.start()
        assert not collector.mqtt.ready.wait(3)
    finally:
        collector.close()


def test_the_shipped_demo_collector_config_loads_from_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KILNWATCH_MQTT_HOST", "KILNWATCH_MQTT_PORT", "KILNWATCH_LEDGER"):
        monkeypatch.delenv(name, raising=False)
    demo = REPO / "deploy" / "demo"
    cfg = load_collector(demo / "collector.toml")
    assert cfg.collector.site_model == demo / "site.toml" and load_site(cfg.collector.site_model)
    assert cfg.collector.ledger == demo / "var" / "ledger.sqlite"
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.influx) == ("127.0.0.1", 1883, None)
