"""The agent's TOML configuration: schema, loading and error messages an operator can act on.

Operators edit this file on a gateway, often over SSH, and the agent must then run for months. So every key
is checked at load (unknown keys included: a typo must not silently fall back to a default), and every
failure raises one ``ConfigError`` whose lines each name the file, the key path (``modbus[0].points[2].type``)
and the fix. Field descriptions double as those fixes and as the reference in ``docs/agent.md``.

``${VAR}`` and ``${VAR:-default}`` inside string values are expanded from the environment at load, so a
deployment can move a host or port without editing the file (the demo and the tests start the simulator on
free ports this way). Values are strict (``agent.config_model``): ``port = "1883"`` is an error. A value that
is one whole reference, such as ``port = "${PORT:-1883}"``, is read by the key's type after expansion, as if
the result were written unquoted: a number for ``port``, but still a string for ``password``. Text around a
reference (``"opc.tcp://${HOST}:4840"``) makes the value a string, as written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator

from agent import profiles, wire
from agent.config_messages import describe_errors, key_path
from agent.config_model import StrictModel, TextValue, UnreadableConfig, parse_toml, read_text
from agent.sources.modbus.decode import BIT_FUNCTIONS, register_count

RegisterType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
Ratios = Literal["none", "ct", "pt", "ct_pt"]
Transport = Literal["tcp", "rtu", "rtu-over-tcp"]
Kind = Literal["energy_total", "power", "mass_total", "mass_rate", "volume_total", "volume_rate", "analog"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# OPC UA node ids as written in the config: an optional namespace (index or URI) and one identifier.
_NODE_ID = re.compile(r"^(?:ns=\d+;|nsu=[^;]+;)?(?:i=\d+|s=.+|g=[0-9A-Fa-f-]{36}|b=.+)$")
_NAME_RULE = "use 1-64 characters from A-Z a-z 0-9 _ . : -"
# Register numbers as manuals print them: table digit (0 coil, 1 input bit, 3 input, 4 holding), from 1.
_REGISTER_NUMBER = re.compile(r"^([0134])(\d{4,5})$")
_TABLE_FUNCTION = {"0": 1, "1": 2, "3": 4, "4": 3}
_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{0,48}$")
_SERIAL_KEYS = ("baudrate", "parity", "stopbits", "bytesize")


class ConfigError(ValueError):
    """An invalid configuration. ``problems`` holds one line per defect; ``str()`` joins them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(StrictModel):
    """Every agent config table: unknown keys are errors, values strictly typed (see agent.config_model)."""


def _check_name(value: str) -> str:
    if not wire.valid_id(value):
        raise ValueError(f"{value!r} is not a valid name: {_NAME_RULE}")
    return value


#: Names that become channel ids or topic levels must be safe there (see wire.valid_id).
Name = Annotated[str, AfterValidator(_check_name)]


class AgentSection(_Strict):
    id: Name = Field(description="set the agent's id, unique per site (e.g. 'kiln-gw')")
    site: Name = Field(description="set the site (plant) id this agent publishes for")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    batch_interval: float = Field(
        1.0, gt=0, description="seconds between batches: all readings gathered in this window go in one batch"
    )


class MqttSection(_Strict):
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


class OutboxSection(_Strict):
    path: Path = Field(Path("outbox.db"), description="SQLite file; relative paths are relative to this file")
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="drop the oldest batches above this size")
    max_age_s: float = Field(7 * 86400, gt=0, description="drop batches older than this many seconds")
    replay_rate: float = Field(
        20.0, gt=0, description="most batches published per second, so a backlog replays without a flood"
    )


class HealthSection(_Strict):
    listen: str = Field(
        "127.0.0.1:9108", description='host:port of the /healthz and /metrics endpoint; "" turns it off'
    )
    stall_s: float = Field(
        120.0, gt=0, description="seconds a poller or the outbox may make no progress before /healthz fails"
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if value and not (host and port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"{value!r} is not host:port: write e.g. '127.0.0.1:9108', or \"\" for off")
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to listen on, or None when off; IPv6 hosts are written in brackets: '[::1]:9108'."""
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class ModbusPoint(_Strict):
    """One published value of a device.

    Bits: ``bit`` publishes one bit of a 16-bit register (type ``uint16``); functions 1 and 2 read one coil or
    discrete input (0 or 1, no ``type`` needed). Value = raw × scale × (CT/PT ratios in ``ratios``) + offset.
    """

    name: Name = Field(description="set the point's channel name, unique in this agent")
    address: int = Field(
        ge=0,
        le=65536,
        description="set the register address (see the device's address_base), or a quoted register number "
        "such as '43060' or '403060' (4 holding, 3 input, 0 coil, 1 discrete input; counted from 1)",
    )
    address_base: Literal[0, 1] | None = Field(None, description="0 or 1: this point's own address_base")
    function: Literal[1, 2, 3, 4] = Field(
        3, description="3 = holding registers, 4 = input registers, 1 = coils, 2 = discrete inputs"
    )
    type: RegisterType = Field(description="set the register type: int16 ... float64")
    bit: int | None = Field(
        None, ge=0, le=15, description="publish only this bit (0 = least significant) of a uint16 register"
    )
    order: WordOrder | None = Field(None, description="byte/word order; default: the device's order")
    scale: float = 1.0
    offset: float = Field(0.0, description="added last, in the published unit")
    ratios: Ratios | None = Field(
        None,
        description="which of the device's ct_ratio/pt_ratio multiply this value: none, ct, pt or ct_pt "
        "(default: ct_pt for energy_total and power points, none for the rest)",
    )
    unit: str = ""
    kind: Kind = "analog"
    interval: float | None = Field(None, gt=0, description="seconds between polls; default: the device's")
    profile_point: str | None = Field(
        None, description="take this point from the device's profile; keys given here override the profile's"
    )

    @model_validator(mode="before")
    @classmethod
    def _register_number(cls, data: Any) -> Any:
        """A '43060'-style address names its function and counts from 1; a coil needs no type."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        address = data.get("address")
        parsed = _register_number(address) if isinstance(address, str) else None
        if parsed is not None:
            function, number = parsed
            if data.get("function", function) != function:
                raise ValueError(
                    f"address {address!r} is read with function {function}, not {data['function']}: "
                    "remove the point's function"
                )
            if data.get("address_base", 1) != 1:
                raise ValueError(f"address {address!r} counts from 1: remove the point's address_base")
            data.update(address=number, function=function, address_base=1)
        if data.get("function") in BIT_FUNCTIONS:
            data.setdefault("type", "uint16")
        return data

    @field_validator("address", mode="before")
    @classmethod
    def _quoted_address(cls, value: Any) -> Any:
        """Register numbers are converted by now: anything else quoted is a slip, not a number to guess at.

        Text from a whole ``${VAR}`` is left to the base model, which reads it as a number (a register
        number such as '43060' from the environment was already converted, like a quoted one).
        """
        if isinstance(value, str) and not isinstance(value, TextValue):
            raise ValueError(
                f"{value!r} is not a register number such as '43060' or '403060' (table digit 0, 1, 3 or 4, "
                "then the number counted from 1): write protocol addresses unquoted, hex as 0x2012"
            )
        return value

    @model_validator(mode="after")
    def _bits(self) -> ModbusPoint:
        if self.function in BIT_FUNCTIONS and (self.type != "uint16" or self.bit is not None):
            raise ValueError(
                f"point {self.name!r}: function {self.function} reads one coil/discrete input (0 or 1): "
                "remove type and bit"
            )
        if self.bit is not None and self.type not in ("uint16", "int16"):
            raise ValueError(
                f"point {self.name!r}: bit picks a bit of a 16-bit register: set type = 'uint16'"
            )
        return self

    @property
    def applied_ratios(self) -> str:
        """``ratios``, or its kind-based default: energy and power meters report secondary values alike."""
        if self.ratios is not None:
            return self.ratios
        return "ct_pt" if self.kind in ("energy_total", "power") else "none"


class ModbusDevice(_Strict):
    """One Modbus unit id. Devices on one host:port (tcp, rtu-over-tcp) or one serial_port (rtu) share one
    connection, which carries one request at a time."""

    name: Name = Field(description="set the device's name (used in logs and channel metadata)")
    transport: Transport = Field(
        "tcp", description="tcp, rtu (serial RS-485/RS-232) or rtu-over-tcp (RTU frames via a TCP gateway)"
    )
    host: str | None = Field(description="set the device's IP address or hostname")
    port: int = Field(502, ge=1, le=65535, description="set the device's TCP port")
    serial_port: str | None = Field(description="set the serial device, e.g. '/dev/ttyUSB0'")
    baudrate: int = Field(9600, ge=300, le=921600, description="serial speed, bit/s")
    parity: Literal["N", "E", "O"] = Field("N", description="serial parity: N (none), E (even) or O (odd)")
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit: int = Field(1, ge=0, le=255, description="set the Modbus unit id (slave id), 0-255")
    timeout: float = Field(1.0, gt=0, description="seconds to wait for one response")
    retries: int = Field(1, ge=0, le=10, description="extra attempts after a failed request")
    inter_frame_delay: float = Field(
        0.0,
        ge=0,
        le=10,
        description="seconds of silence on the connection before each request to this device",
    )
    address_base: Literal[0, 1] = Field(
        0, description="0 if addresses are protocol addresses, 1 if they are register numbers from 1"
    )
    order: WordOrder = "ABCD"
    interval: float = Field(1.0, gt=0, description="seconds between polls")
    max_registers: int = Field(125, ge=1, le=125, description="largest request, in registers")
    max_gap: int = Field(16, ge=0, le=124, description="unused registers a request may span to join points")
    ct_ratio: float = Field(1.0, gt=0, description="current-transformer ratio, e.g. 20 for 100/5 A")
    pt_ratio: float = Field(1.0, gt=0, description="voltage-transformer ratio, e.g. 100 for 10 kV/100 V")
    profile: str | None = Field(None, description="a meter profile whose points this device publishes")
    profile_points: list[str] | None = Field(None, description="publish only these points of the profile")
    point_prefix: str | None = Field(
        None, description="profile points' name prefix; default '<device name>_'"
    )
    # Validated even when absent, so a device given only a profile gets the profile's points.
    points: list[ModbusPoint] = Field(default_factory=list, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _transport_keys(cls, data: Any) -> Any:
        """The other transport's address key is unset, so a missing host or serial_port reads as missing."""
        if isinstance(data, dict):
            data = {("serial_port" if data.get("transport", "tcp") != "rtu" else "host"): None, **data}
        return data

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                profiles.load(value)
            except profiles.UnknownProfile as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("profile_points")
    @classmethod
    def _known_profile_points(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None or "profile" not in info.data:  # an unknown profile is reported on its own
            return value
        if info.data["profile"] is None:
            raise ValueError(
                "profile_points picks points of a profile: set profile, or remove profile_points"
            )
        for key in value:
            _profile_point(info.data["profile"], key)
        return value

    @field_validator("point_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not _PREFIX.match(value):
            raise ValueError(f"{value!r} is not a valid prefix: use 0-48 characters from A-Z a-z 0-9 _ . : -")
        return value

    @field_validator("points", mode="before")
    @classmethod
    def _expand_profile(cls, value: Any, info: ValidationInfo) -> Any:
        """Profile points go after the points written out, so error positions still match the file."""
        if not isinstance(value, list):
            return value
        written = [
            (i, p, p.get("profile_point") if isinstance(p, dict) else None) for i, p in enumerate(value)
        ]
        if "profile" not in info.data:  # unknown profile (reported on its own): drop what refers to it
            return [p for _, p, key in written if key is None]
        name = info.data["profile"]
        if name is None:
            for i, _, key in written:
                if key is not None:
                    raise ValueError(f"points[{i}].profile_point: {key!r} needs the device's profile")
            return value
        prefix = info.data.get("point_prefix")
        prefix = f"{info.data.get('name', '')}_" if prefix is None else prefix
        points = []
        for i, item, key in written:
            if key is None:
                points.append(item)
                continue
            spec = _profile_point(name, key, f"points[{i}].profile_point: ")
            merged = {**spec.fields, "name": prefix + key}
            if isinstance(item.get("address"), str):  # a '4xxxx' address brings its own function
                merged.pop("function", None)
            points.append({**merged, **item})
        chosen = {key for _, _, key in written}
        selected = info.data.get("profile_points", [])  # absent: invalid, reported on its own
        profile = profiles.load(name).points
        for key in selected if selected is not None else profile:
            if key not in chosen:
                points.append({**profile[key].fields, "name": prefix + key, "profile_point": key})
        return points

    @model_validator(mode="after")
    def _consistent(self) -> ModbusDevice:
        self._check_transport()
        for point in self.points:
            base = self.address_base if point.address_base is None else point.address_base
            if point.address < base:
                raise ValueError(
                    f"point {point.name!r}: address {point.address} is below address_base {base}"
                )
            width = 1 if point.function in BIT_FUNCTIONS else register_count(point.type)
            if point.address - base + width > 65536:
                end = f"{point.type} at {point.address} runs past register 65535"
                raise ValueError(f"point {point.name!r}: {end}")
            if width > self.max_registers:
                raise ValueError(
                    f"point {point.name!r}: {point.type} needs {width} registers, more than max_registers "
                    f"= {self.max_registers}: raise max_registers"
                )
        for ratio, value in (("ct", self.ct_ratio), ("pt", self.pt_ratio)):
            if value != 1 and not any(ratio in p.applied_ratios for p in self.points):
                raise ValueError(
                    f"{ratio}_ratio = {value:g} multiplies no point: set ratios on the points that report "
                    f"secondary values, or remove {ratio}_ratio (the meter reports primary values)"
                )
        return self

    def _check_transport(self) -> None:
        if self.transport == "rtu":
            if self.host is not None or "port" in self.model_fields_set:
                raise ValueError("host and port are not used with transport 'rtu': remove them, or use "
                                 "transport 'rtu-over-tcp' for a TCP gateway")  # fmt: skip
            if self.serial_port is None:
                raise ValueError(
                    "missing required key 'serial_port': set the serial device, e.g. '/dev/ttyUSB0'"
                )
            if self.unit == 0:
                raise ValueError("unit 0 is the broadcast address on a serial line and gets no answer: "
                                 "set the meter's unit id (1-247)")  # fmt: skip
            return
        if self.host is None:
            raise ValueError("missing required key 'host': set the device's IP address or hostname")
        serial = ["serial_port"] * (self.serial_port is not None)
        serial += [k for k in _SERIAL_KEYS if k in self.model_fields_set]
        if serial:
            raise ValueError(
                f"{', '.join(serial)}: serial settings are for transport 'rtu' only (a gateway's serial side "
                "is set in the gateway): remove them, or set transport = 'rtu'"
            )

    def protocol_address(self, point: ModbusPoint) -> int:
        """The point's 0-based address on the wire, after its (or the device's) address_base."""
        return point.address - (self.address_base if point.address_base is None else point.address_base)

    def ratio_factor(self, point: ModbusPoint) -> float:
        """CT × PT (or either, or 1) as the point's ``ratios`` say: applied exactly once, here."""
        applied = point.applied_ratios
        return (self.ct_ratio if "ct" in applied else 1.0) * (self.pt_ratio if "pt" in applied else 1.0)


def _register_number(text: str) -> tuple[int, int] | None:
    """'43060' or '403060' → (function 3, register number 3060); None if ``text`` is not that notation."""
    match = _REGISTER_NUMBER.match(text.strip())
    if match is None or not 1 <= int(match.group(2)) <= 65536:
        return None
    return _TABLE_FUNCTION[match.group(1)], int(match.group(2))


def _profile_point(profile: str, key: str, where: str = "") -> profiles.ProfilePoint:
    """Point ``key`` of ``profile``, or a ValueError that names the closest point."""
    points = profiles.load(profile).points
    if key not in points:
        hint = profiles.did_you_mean(key, list(points))
        raise ValueError(
            f"{where}{key!r} is not a point of profile {profile!r}{hint} (points: {', '.join(points)})"
        )
    return points[key]


class OpcuaPoint(_Strict):
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


class OpcuaServer(_Strict):
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


class AgentConfig(_Strict):
    agent: AgentSection
    mqtt: MqttSection = Field(default_factory=MqttSection)
    outbox: OutboxSection = Field(default_factory=OutboxSection)
    health: HealthSection = Field(default_factory=HealthSection)
    modbus: list[ModbusDevice] = Field(default_factory=list)
    opcua: list[OpcuaServer] = Field(default_factory=list)

    @field_validator("outbox")
    @classmethod
    def _replay_catches_up(cls, outbox: OutboxSection, info: ValidationInfo) -> OutboxSection:
        agent = info.data.get("agent")
        if agent is not None and outbox.replay_rate < 2 / agent.batch_interval:
            raise ValueError(
                f"replay_rate {outbox.replay_rate:g} batches/s must be at least twice the live rate "
                f"(1 batch per agent.batch_interval = {agent.batch_interval:g} s) so a backlog drains: "
                f"raise it to {2 / agent.batch_interval:g} or more"
            )
        return outbox

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"kilnwatch-{self.agent.id}"


def load_config(path: str | Path) -> AgentConfig:
    """Read, expand and validate a config file; relative outbox paths resolve against its folder."""
    path = Path(path)
    try:
        text = read_text(path)
    except UnreadableConfig as exc:
        raise ConfigError([str(exc)]) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> AgentConfig:
    """Validate TOML ``text``; ``path`` names the file in errors and anchors relative paths."""
    try:
        raw = parse_toml(text, path)
    except UnreadableConfig as exc:
        raise ConfigError([str(exc)]) from None
    problems: list[str] = []
    raw = _anchor_paths(_expand_env(raw, (), path, problems), path.parent)
    if problems:
        raise ConfigError(problems)
    try:
        config = AgentConfig.model_validate(raw)
    except ValidationError as exc:
        errors = describe_errors(exc.errors(), AgentConfig)
        raise ConfigError([f"{path}: {key}: {sentence}" for key, sentence in errors]) from None
    problems = [f"{path}: {line}" for line in _duplicate_names(config)]
    if problems:
        raise ConfigError(problems)
    from agent.sources.modbus.connections import connection_problems

    # Devices sharing a line must agree on its settings: a check across devices, made after validation.
    problems = [f"{path}: {line}" for line in connection_problems(config.modbus)]
    if problems:
        raise ConfigError(problems)
    return config


#: File and folder keys, per section: a relative path in them is taken from the config file's folder, so
#: a config means the same whichever directory the agent is started from (systemd, a shell, a test).
PATH_KEYS = {
    "mqtt": ("ca_file", "cert_file", "key_file"),
    "outbox": ("path",),
    "opcua": ("cert_dir", "trust_dir", "user_certificate", "user_key"),
}


def _anchor_paths(raw: Any, folder: Path) -> Any:
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for section, keys in PATH_KEYS.items():
        value = out.get(section)
        tables = value if isinstance(value, list) else [value]
        anchored = []
        for table in tables:
            if isinstance(table, dict):
                table = {
                    k: str((folder / v).resolve()) if k in keys and isinstance(v, str) and v else v
                    for k, v in table.items()
                }
            anchored.append(table)
        if section in out:
            out[section] = anchored if isinstance(value, list) else anchored[0]
    if "outbox" not in out or "path" not in (out["outbox"] or {}):
        out["outbox"] = {**(out.get("outbox") or {}), "path": str((folder / "outbox.db").resolve())}
    return out


def _expand_env(value: Any, loc: tuple[str | int, ...], path: Path, problems: list[str]) -> Any:
    """Strings with ``${VAR}`` references expanded; a value that is one whole reference becomes a
    ``TextValue``, which the models read by the key's type (a number for ``port``)."""
    if isinstance(value, dict):
        return {k: _expand_env(v, (*loc, k), path, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*loc, i), path, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(
            f"{path}: {key_path(loc)}: environment variable {name!r} is not set: "
            f"set it, or give a default as ${{{name}:-value}}"
        )
        return match.group(0)

    expanded = _ENV_REF.sub(substitute, value)
    return TextValue(expanded, value) if _ENV_REF.fullmatch(value) else expanded


def _duplicate_names(config: AgentConfig) -> list[str]:
    """Channel names must be unique in an agent: they are the channel ids on the wire."""
    problems = []
    points: dict[str, str] = {}
    for section, items in (("modbus", config.modbus), ("opcua", config.opcua)):
        names: dict[str, str] = {}
        for i, item in enumerate(items):
            key = f"{section}[{i}]"
            if item.name in names:
                other = names[item.name]
                problems.append(f"{key}.name: duplicate name {item.name!r} (also {other}): rename one")
            names.setdefault(item.name, key)
            for j, point in enumerate(item.points):
                where = f"{key}.points[{j}]"
                if point.name in points:
                    other = points[point.name]
                    problems.append(f"{where}.name: duplicate name {point.name!r} (also {other}): rename one")
                points.setdefault(point.name, where)
    return problems
