"""The ``[[dlt645]]`` section: one table per DL/T 645-2007 meter, its line (serial or TCP gateway) and points.

Field descriptions double as the fixes in error messages. No protocol code and no pyserial here, so
``kilnwatch agent check`` validates a file without them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.config_fields import Kind, Name, Strict
from agent.sources.dlt645 import identifiers
from agent.sources.dlt645.frame import WILDCARD

Ratios = Literal["none", "ct", "pt", "ct_pt"]
_ADDRESS = re.compile(r"^\d{12}$")
_SERIAL_KEYS = ("baudrate", "parity", "stopbits", "bytesize")


class Dlt645Point(Strict):
    """One published value: a data identifier read every interval.

    Value = the meter's number × scale × (CT/PT ratios in ``ratios``). Identifiers of the table
    (``identifiers.KNOWN``) bring their layout, sign, unit, kind and ratios; keys given here override them.
    """

    name: Name = Field(description="set the point's channel name, unique in this agent")
    di: str = Field(
        description="set the data identifier: 8 hex digits DI3..DI0 as the standard writes them "
        "(e.g. '00010000'), or a known name such as 'energy_import_total'"
    )
    layout: str | None = Field(
        None,
        description="the value's layout as the standard prints it, e.g. 'XXXXXX.XX' (4 bytes, 2 decimals); "
        "default: the table's",
    )
    signed: bool = Field(False, description="true if the top bit of the value's top byte is a sign bit")
    unit: str = ""
    kind: Kind = "analog"
    scale: float = 1.0
    ratios: Ratios | None = Field(
        None,
        description="which of the meter's ct_ratio/pt_ratio multiply this value: none, ct, pt or ct_pt "
        "(default: the table's; else ct_pt for energy_total and power points, none for the rest)",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_table(cls, data: Any) -> Any:
        """A known identifier fills in what the table knows; keys written in the file win."""
        entry = identifiers.lookup(data.get("di")) if isinstance(data, dict) else None
        if entry is None:
            return data
        known = {"layout": entry.layout, "signed": entry.signed, "unit": entry.unit, "kind": entry.kind,
                 "ratios": entry.ratios}  # fmt: skip
        return {**known, **data}

    @field_validator("di")
    @classmethod
    def _di(cls, value: str) -> str:
        return f"{identifiers.resolve(value):08X}"

    @field_validator("layout")
    @classmethod
    def _layout(cls, value: str | None) -> str | None:
        return None if value is None else identifiers.parse_layout(value).text

    @model_validator(mode="after")
    def _layout_known(self) -> Dlt645Point:
        if self.layout is None:
            raise ValueError(
                f"point {self.name!r}: identifier {self.di} is not in the table of known identifiers: set "
                "its layout as the standard prints it, e.g. layout = 'XXXXXX.XX' (and signed = true if it "
                "has a sign bit)"
            )
        return self

    @property
    def identifier(self) -> int:
        return int(self.di, 16)

    @property
    def value_layout(self) -> identifiers.Layout:
        return identifiers.parse_layout(str(self.layout))

    @property
    def label(self) -> str:
        """``00010000 energy_import_total``, or the DI alone when it is not in the table."""
        entry = identifiers.BY_DI.get(self.identifier)
        return f"{self.di} {entry.name}" if entry is not None else self.di

    @property
    def applied_ratios(self) -> str:
        if self.ratios is not None:
            return self.ratios
        return "ct_pt" if self.kind in ("energy_total", "power") else "none"


class Dlt645Meter(Strict):
    """One meter. Meters on one serial_port (RS-485 line) or one host:port (transparent gateway) share one
    connection, which carries one request at a time."""

    name: Name = Field(description="set the meter's name (used in logs and channel metadata)")
    transport: Literal["serial", "tcp"] = Field(
        "serial", description="serial (a local RS-485 port) or tcp (a transparent serial-to-TCP gateway)"
    )
    serial_port: str | None = Field(description="set the serial device, e.g. '/dev/ttyUSB0'")
    baudrate: int = Field(2400, ge=300, le=115200, description="serial speed, bit/s (DL/T 645 meters: 2400)")
    parity: Literal["N", "E", "O"] = Field("E", description="serial parity: E (even, the standard's), N or O")
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    host: str | None = Field(description="set the gateway's IP address or hostname")
    port: int | None = Field(None, ge=1, le=65535, description="set the gateway's TCP port, e.g. 4001")
    address: str = Field(
        description="set the meter's address: its 12 digits as on the nameplate, quoted (e.g. "
        "'000012345678'), or 'AAAAAAAAAAAA' for the only meter on the line"
    )
    timeout: float = Field(1.5, gt=0, description="seconds to wait for one answer")
    retries: int = Field(1, ge=0, le=10, description="extra attempts after a failed request")
    interval: float = Field(5.0, gt=0, description="seconds between polls of this meter's points")
    preamble: bool = Field(True, description="send the four FE wake-up bytes before each request")
    ct_ratio: float = Field(1.0, gt=0, description="current-transformer ratio, e.g. 40 for 200/5 A")
    pt_ratio: float = Field(1.0, gt=0, description="voltage-transformer ratio, e.g. 100 for 10 kV/100 V")
    refused_retry: float = Field(
        600.0,
        gt=0,
        le=86400,
        description="seconds before a point the meter has no data for is read again; the pause doubles after "
        "each further refusal, up to 6 times this",
    )
    points: list[Dlt645Point] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _transport_keys(cls, data: Any) -> Any:
        """The other transport's address key is unset, so a missing host or serial_port reads as missing."""
        if isinstance(data, dict):
            data = {("host" if data.get("transport", "serial") == "serial" else "serial_port"): None, **data}
        return data

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value.upper() == WILDCARD:
            return WILDCARD
        if not _ADDRESS.match(value):
            short = value.isdigit() and len(value) < 12
            hint = f": pad it with leading zeros, {value.zfill(12)!r}" if short else ""
            raise ValueError(
                f"{value!r} is not a meter address: it has exactly 12 decimal digits (or is 'AAAAAAAAAAAA' "
                f"for the only meter on the line){hint}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Dlt645Meter:
        self._check_transport()
        for ratio, value in (("ct", self.ct_ratio), ("pt", self.pt_ratio)):
            if value != 1 and not any(ratio in p.applied_ratios for p in self.points):
                raise ValueError(
                    f"{ratio}_ratio = {value:g} multiplies no point: set ratios on the points that report "
                    f"secondary values, or remove {ratio}_ratio (the meter reports primary values)"
                )
        return self

    def _check_transport(self) -> None:
        if self.transport == "serial":
            if self.host is not None or self.port is not None:
                raise ValueError("host and port are not used with transport 'serial': remove them, or set "
                                 "transport = 'tcp'")  # fmt: skip
            if self.serial_port is None:
                raise ValueError(
                    "missing required key 'serial_port': set the serial device, e.g. '/dev/ttyUSB0'"
                )
            return
        if self.host is None or self.port is None:
            key = "host" if self.host is None else "port"
            raise ValueError(f"missing required key {key!r}: set the gateway's {key} for transport 'tcp'")
        serial = ["serial_port"] * (self.serial_port is not None)
        serial += [k for k in _SERIAL_KEYS if k in self.model_fields_set]
        if serial:
            raise ValueError(
                f"{', '.join(serial)}: serial settings are for transport 'serial' only (a gateway's serial "
                "side is set in the gateway): remove them, or set transport = 'serial'"
            )

    def ratio_factor(self, point: Dlt645Point) -> float:
        """CT × PT (or either, or 1) as the point's ``ratios`` say: applied exactly once, here."""
        applied = point.applied_ratios
        return (self.ct_ratio if "ct" in applied else 1.0) * (self.pt_ratio if "pt" in applied else 1.0)
