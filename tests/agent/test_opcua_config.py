"""The [[opcua]] keys: defaults derived from other keys, and errors that name the file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, parse_config

HEAD = """
[agent]
id = "kiln-gw"
site = "plant1"

[[opcua]]
name = "dcs"
endpoint = "opc.tcp://10.0.0.5:4840/"
"""
POINT = """
[[opcua.points]]
name = "feed"
node = "ns=2;s=KilnLine1.KilnFeed_tph"
"""
FILE = Path("/etc/kilnwatch/agent.toml")


def problems(server_keys: str, point_keys: str = "") -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(HEAD + server_keys + POINT + point_keys, FILE)
    return str(caught.value)


def test_subscription_and_security_settings_with_their_defaults() -> None:
    text = HEAD + 'mode = "subscribe"\npublishing_interval = 5.0\nsecurity_policy = "Aes256Sha256RsaPss"\n'
    text += 'cert_dir = "/var/lib/kilnwatch/pki"\nusername = "agent"\npassword = "${OPCUA_PW:-secret}"\n'
    text += POINT + 'deadband = 0.5\ndeadband_type = "percent"\nmode = "poll"\n'
    server = parse_config(text, FILE).opcua[0]
    assert server.effective_watchdog_s == 15.0  # 3 x publishing interval, as that is above 10 s
    assert server.effective_security_mode == "SignAndEncrypt"
    assert server.effective_auth == "username" and server.password == "secret"
    assert server.timestamp == "source" and server.queue_size == 1 and not server.accept_first
    point = server.points[0]
    assert (point.mode, point.deadband, point.deadband_type, point.sampling_interval) == (
        "poll",
        0.5,
        "percent",
        None,
    )
    plain = parse_config(HEAD + POINT, FILE).opcua[0]
    assert (plain.mode, plain.effective_watchdog_s, plain.effective_security_mode) == ("poll", 10.0, "None")
    assert plain.effective_auth == "anonymous"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            'security_policy = "Basic256Sha256"\n',
            "opcua[0]: security_policy 'Basic256Sha256' needs cert_dir: set cert_dir to a folder",
        ),
        ('auth = "certificate"\n', "opcua[0]: auth 'certificate' needs cert_dir"),
        ('security_mode = "Sign"\n', "opcua[0]: security_mode 'Sign' needs a security_policy: set one"),
        (
            'security_policy = "Basic256Sha256"\nsecurity_mode = "None"\ncert_dir = "/p"\n',
            "needs security_mode 'Sign' or 'SignAndEncrypt'",
        ),
        (
            'security_policy = "Basic128Rsa15"\n',
            "opcua[0].security_policy: expected one of None, Basic256Sha256",
        ),
        ('securty_policy = "None"\n', "unknown key 'securty_policy' — did you mean 'security_policy'?"),
        ('username = "agent"\n', "opcua[0]: auth 'username' needs username and password: set both"),
        ('cert_dir = "/p"\nuser_certificate = "/p/u.der"\n', "user_certificate and user_key go together"),
        ("publishing_interval = 2.0\nwatchdog_s = 3.0\n", "watchdog_s 3.0 is below 2 x publishing_interval"),
        ('mode = "push"\n', "opcua[0].mode: expected one of poll, subscribe; got 'push'"),
        ("queue_size = 0\n", "opcua[0].queue_size: input should be greater than or equal to 1"),
        ('timestamp = "device"\n', "opcua[0].timestamp: expected one of source, server, agent"),
    ],
)
def test_server_errors_name_the_file_key_and_fix(keys: str, expected: str) -> None:
    message = problems(keys)
    assert message.startswith(f"{FILE}: ")
    assert expected in message


def test_point_errors_name_the_point() -> None:
    message = problems("", 'deadband = 150\ndeadband_type = "percent"\n')
    assert "opcua[0].points[0]: point 'feed': a percent deadband must be 0-100; got 150.0" in message
    message = problems("", "sampling_interval = -1\n")
    assert "opcua[0].points[0].sampling_interval: input should be greater than or equal to 0" in message
