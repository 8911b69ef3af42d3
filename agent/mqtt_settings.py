"""The ``[mqtt]`` section, shared by the agent and the collector: broker, login, TLS and mutual TLS, MQTT 5.

One model for both ends, so an operator writes the same keys (and gets the same errors) on the gateway and on
the central server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from agent import wire
from agent.config_fields import Strict

if TYPE_CHECKING:
    import ssl

    import paho.mqtt.client as mqtt


class MqttSection(Strict):
    host: str = Field("127.0.0.1", description="set the broker's hostname or IP address")
    port: int = Field(1883, ge=1, le=65535, description="set the broker's TCP port (1883 plain, 8883 TLS)")
    client_id: str | None = Field(None, description="MQTT client id; default 'kilnwatch-<agent id>'")
    username: str | None = None
    password: str | None = None
    keepalive: int = Field(30, ge=5, le=3600, description="seconds between keep-alive pings")
    root: str = Field(wire.DEFAULT_ROOT, description="topic root, first level of every topic")
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    max_inflight: int = Field(
        100,
        ge=1,
        le=1000,
        description=(
            "batches published but not yet acknowledged; a replay sends at most max_inflight per round trip, "
            "so 100 allows 2000 batches/s over a 50 ms link"
        ),
    )
    tls: bool = Field(False, description="connect with TLS (brokers usually listen for it on port 8883)")
    ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed the broker's certificate; default: the system's CAs"
    )
    cert_file: Path | None = Field(None, description="the agent's client certificate (PEM) for mutual TLS")
    key_file: Path | None = Field(None, description="the unencrypted PEM private key of cert_file")
    insecure: bool = Field(
        False, description="skip checking that the broker's certificate names host (the CA is still checked)"
    )

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        if not value or any(c in value for c in "/+#"):
            raise ValueError(f"{value!r} is not a valid topic root: one topic level without / + #")
        return value

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not (value.is_file() and os.access(value, os.R_OK)):
            raise ValueError(
                f"{str(value)!r} is not a readable file: fix the path (a relative one is taken from the "
                "config file's folder) or the file's permissions"
            )
        return value

    @model_validator(mode="after")
    def _tls(self) -> MqttSection:
        from agent.tls import make_context

        if self.password is not None and self.username is None:
            raise ValueError("password needs username: set username, or remove password")
        tls_keys = [k for k in ("ca_file", "cert_file", "key_file", "insecure") if getattr(self, k)]
        if tls_keys and not self.tls:
            one = len(tls_keys) == 1
            raise ValueError(
                f"tls is off but {', '.join(tls_keys)} {'is' if one else 'are'} set: "
                f"set tls = true, or remove {'it' if one else 'them'}"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both, or neither")
        if self.tls:
            make_context(self.ca_file, self.cert_file, self.key_file, self.insecure)  # a bad PEM fails here
        return self

    def tls_context(self) -> ssl.SSLContext | None:
        """The SSL context to connect with (``tls = true``), or None for plain TCP."""
        from agent.tls import make_context

        if not self.tls:
            return None
        return make_context(self.ca_file, self.cert_file, self.key_file, self.insecure)


def make_client(
    settings: MqttSection, client_id: str, *, persistent: bool = False, **options: Any
) -> mqtt.Client:
    """A paho client (callback API 2) with the section's protocol, username/password and TLS applied.

    ``persistent``: a session the broker keeps while the client is away (MQTT 3.1.1 ``clean_session =
    False``; for MQTT 5 pass ``connect_options(settings, persistent=True)`` to ``connect``). ``options`` go
    to ``mqtt.Client`` as they are (``manual_ack``, ...). Shared by both ends so that every ``[mqtt]`` key
    means the same on the gateway and on the central server.
    """
    import paho.mqtt.client as mqtt

    v5 = settings.protocol == "5"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,
        **options,
    )
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    context = settings.tls_context()
    if context is not None:
        client.tls_set_context(context)
    return client


#: MQTT 5 Session Expiry Interval meaning "never": the session outlives any outage, as in MQTT 3.1.1.
SESSION_NEVER_EXPIRES = 0xFFFFFFFF


def connect_options(
    settings: MqttSection, *, persistent: bool = False, receive_maximum: int | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``client.connect``/``connect_async`` matching ``make_client(..., persistent)``:
    keepalive, and for MQTT 5 clean start, the session expiry (a persistent session never expires) and the
    Receive Maximum (how many unacknowledged QoS 1 messages the broker may send us: a collector that
    acknowledges after a group commit needs a whole group in flight, where Mosquitto's default is 20)."""
    options: dict[str, Any] = {"keepalive": settings.keepalive}
    if settings.protocol != "5":
        return options
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    options["clean_start"] = not persistent
    if persistent or receive_maximum is not None:
        properties = Properties(PacketTypes.CONNECT)
        if persistent:
            properties.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
        options["properties"] = properties
    return options
