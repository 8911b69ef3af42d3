"""The ``[[modbus]]`` section: one table per Modbus unit, with its points, profile and connection settings.

Field descriptions double as the fixes in error messages and as the reference in ``docs/agent.md``. This
module holds no protocol code (no pymodbus), so ``kilnwatch agent check`` validates a file without it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from agent.config_fields import Kind, Name, Strict
from agent.config_model import TextValue
from agent.sources.modbus import profiles
from agent.sources.modbus.decode import BIT_FUNCTIONS, register_count

RegisterType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
Ratios = Literal["none", "ct", "pt", "ct_pt"]
Transport = Literal["tcp", "rtu", "rtu-over-tcp"]

# Register numbers as manuals print them: table digit (0 coil, 1 input bit, 3 input, 4 holding), from 1.
_REGISTER_NUMBER = re.compile(r"^([0134])(\d{4,5})$")
_TABLE_FUNCTION = {"0": 1, "1": 2, "3": 4, "4": 3}
_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{0,48}$")
_SERIAL_KEYS = ("baudrate", "parity", "stopbits", "bytesize")


class ModbusPoint(Strict):
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


class ModbusDevice(Strict):
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
    refused_retry: float = Field(
        600.0,
        gt=0,
        le=86400,
        description="seconds before a point the device refuses (exception 2 or 3) is read again; the pause "
        "doubles after each further refusal, up to 6 times this",
    )
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
