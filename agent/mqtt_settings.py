"""The ``[mqtt]`` section, shared by the agent and the collector: broker, login, TLS and mutual TLS, MQTT 5.

One model for both ends, so an operator writes the same keys (and gets the same errors) on the gateway and on
the central server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent import wire
from agent.config_fields import Strict


class MqttSection(Strict):
    host: str = Field("127.0.0.1", description="set the broker's hostname or IP address")
    port: int = Field(1883, ge=1, le=65535, description="set the broker's TCP port (1883 plain, 8883 TLS)")
    client_id: str | None = Field(None, description="MQTT client id; default 'kilnwatch-<agent id>'")
    username: str | None = None
    password: str | None = None
    keepalive: int = Field(30, ge=5, le=3600, description="seconds between keep-alive pings")
    root: str = Field(wire.DEFAULT_ROOT, description="topic root, first level of every topic")
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    max_inflight: int = Field(20, ge=1, le=1000, description="batches published but not yet acknowledged")
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

