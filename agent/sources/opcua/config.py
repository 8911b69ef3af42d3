"""The ``[[opcua]]`` section: one table per OPC UA server, its security, login, subscription and nodes.

No asyncua here: the file validates without the protocol library installed or imported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent.config_fields import Kind, Name, Strict

# OPC UA node ids as written in the config: an optional namespace (index or URI) and one identifier.
_NODE_ID = re.compile(r"^(?:ns=\d+;|nsu=[^;]+;)?(?:i=\d+|s=.+|g=[0-9A-Fa-f-]{36}|b=.+)$")


class OpcuaPoint(Strict):
    name: Name = Field(description="set the point's channel name, unique in this agent")
    node: str = Field(
        description="set the node id, e.g. 'ns=2;s=KilnLine1.KilnFeed_tph' or 'nsu=urn:...;s=...'"
    )
    unit: str = ""
    kind: Kind = "analog"
    scale: float = 1.0
    # Subscription settings: None takes the server's value, so one line there tunes every node.
    mode: Literal["poll", "subscribe"] | None = Field(
        None, description="'poll' (Read every interval) or 'subscribe' (data-change notifications)"
    )
    sampling_interval: float | None = Field(
        None, ge=0, description="seconds between the server's samples of this node (0: as fast as it can)"
    )
    deadband: float | None = Field(
        None, ge=0, description="smallest change reported: an amount (absolute) or a % of the EU range"
    )
    deadband_type: Literal["absolute", "percent"] | None = None
    queue_size: int | None = Field(
        None, ge=1, le=10000, description="samples the server keeps between notifications (1: latest only)"
    )

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        if not _NODE_ID.match(value):
            raise ValueError(
                f"{value!r} is not a node id: write [ns=<index>; or nsu=<uri>;] then i=<n> or s=<text>"
            )
        return value

    @model_validator(mode="after")
    def _percent(self) -> OpcuaPoint:
        if self.deadband_type == "percent" and (self.deadband or 0) > 100:
            raise ValueError(f"point {self.name!r}: a percent deadband must be 0-100; got {self.deadband}")
        return self


class OpcuaServer(Strict):
    name: Name = Field(description="set the server's name (used in logs and channel metadata)")
    endpoint: str = Field(description="set the endpoint URL, e.g. 'opc.tcp://10.0.0.5:4840/'")
    interval: float = Field(1.0, gt=0, description="seconds between reads in poll mode")
    timeout: float = Field(4.0, gt=0, description="seconds to wait for a response")
    mode: Literal["poll", "subscribe"] = Field(
        "poll", description="'poll' (Read every interval) or 'subscribe' (data-change notifications)"
    )
    publishing_interval: float = Field(
        1.0, gt=0, description="seconds between the server's notification messages in subscribe mode"
    )
    sampling_interval: float | None = Field(
        None, ge=0, description="seconds between the server's samples; default: the publishing_interval"
    )
    deadband: float = Field(
        0.0, ge=0, description="smallest change reported: an amount (absolute) or a % of the EU range"
    )
    deadband_type: Literal["absolute", "percent"] = "absolute"
    queue_size: int = Field(
        1, ge=1, le=10000, description="samples the server keeps between notifications (1: latest only)"
    )
    watchdog_s: float | None = Field(
        None,
        gt=0,
        description="seconds without any notification or keep-alive before the session is rebuilt; "
        "default 3 x publishing_interval, at least 10",
    )
    timestamp: Literal["source", "server", "agent"] = Field(
        "source", description="which time a reading carries: the device's, the server's or the agent's"
    )
    security_policy: Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = Field(
        "None", description="a policy the server offers; anything but 'None' also needs cert_dir"
    )
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] | None = Field(
        None, description="'Sign' or 'SignAndEncrypt' (default) with a policy; 'None' without one"
    )
    auth: Literal["anonymous", "username", "certificate"] | None = Field(
        None, description="login: 'anonymous', 'username' (default if username is set) or 'certificate'"
    )
    username: str | None = None
    password: str | None = Field(None, description="the user's password; write ${ENV_VAR} to keep it out")
    cert_dir: Path | None = Field(
        None,
        description="set a folder for the agent's own certificate and key (made on first start, then "
        "reused; an absolute path, as a relative one is taken from the working directory)",
    )
    trust_dir: Path | None = Field(
        None, description="folder of trusted server certificates (.der/.pem); default <cert_dir>/trusted"
    )
    accept_first: bool = Field(
        False, description="trust the server's certificate on first contact and pin it (TOFU)"
    )
    application_uri: str | None = Field(
        None, description="the agent's OPC UA application URI; default: the one in its certificate"
    )
    user_certificate: Path | None = Field(
        None, description="certificate for auth = 'certificate'; default: the agent's own certificate"
    )
    user_key: Path | None = Field(None, description="private key of user_certificate (PEM or DER)")
    points: list[OpcuaPoint] = Field(default_factory=list)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith("opc.tcp://"):
            raise ValueError(f"{value!r} is not an OPC UA endpoint: it must start with 'opc.tcp://'")
        return value

    @property
    def effective_security_mode(self) -> str:
        """'None' without a policy; with one, the configured mode or SignAndEncrypt."""
        if self.security_policy == "None":
            return "None"
        return self.security_mode or "SignAndEncrypt"

    @property
    def effective_auth(self) -> str:
        return self.auth or ("username" if self.username is not None else "anonymous")

    @property
    def effective_watchdog_s(self) -> float:
        return self.watchdog_s or max(10.0, 3 * self.publishing_interval)

    @model_validator(mode="after")
    def _security(self) -> OpcuaServer:
        policy, mode, auth = self.security_policy, self.security_mode, self.effective_auth
        if policy == "None" and mode not in (None, "None"):
            raise ValueError(
                f"security_mode {mode!r} needs a security_policy: set one, e.g. 'Basic256Sha256'"
            )
        if policy != "None" and mode == "None":
            raise ValueError(
                f"security_policy {policy!r} needs security_mode 'Sign' or 'SignAndEncrypt' "
                "(or set security_policy = 'None')"
            )
        if (policy != "None" or auth == "certificate") and self.cert_dir is None:
            need = f"security_policy {policy!r}" if policy != "None" else "auth 'certificate'"
            raise ValueError(
                f"{need} needs cert_dir: set cert_dir to a folder where the agent keeps its certificate"
            )
        if auth == "username" and (self.username is None or self.password is None):
            raise ValueError("auth 'username' needs username and password: set both")
        if (self.user_certificate is None) != (self.user_key is None):
            raise ValueError("user_certificate and user_key go together: set both, or neither")
        if self.watchdog_s is not None and self.watchdog_s < 2 * self.publishing_interval:
            raise ValueError(
                f"watchdog_s {self.watchdog_s} is below 2 x publishing_interval: raise it, or leave it unset"
            )
        if self.deadband_type == "percent" and self.deadband > 100:
            raise ValueError(f"a percent deadband must be 0-100; got {self.deadband}")
        return self
