"""``kilnwatch agent probe URL``: read a device once and print what it holds, without publishing anything.

Most Modbus commissioning questions are "which address, which function, which byte order?". The probe answers
them on site with the agent's own connection and decoding code (``Link``, ``decode``), so what the probe shows
is what the agent will publish: each value next to its raw registers in hex, in one byte/word order or in all
four (``ORDER = all``), or every point of a meter profile at once. The URL's scheme picks the transport:

* ``modbus://HOST[:PORT]`` Modbus TCP (port 502 by default)
* ``rtu-over-tcp://HOST:PORT`` RTU frames through a serial-to-TCP gateway
* ``rtu:///dev/ttyUSB0?baud=9600&parity=E&stopbits=1&bytesize=8`` RTU on a local serial port

Each ``--read`` is ``ADDRESS[:TYPE[:ORDER]]``: ADDRESS decimal or ``0x`` hex (after ``--base``), TYPE one of
``int16 .. float64``, ``stringN`` (N registers of ASCII), ``bitN`` (bit N of a register) or ``bit`` (a coil
or discrete input, ``--function 1/2``); ORDER one of ``ABCD CDAB BADC DCBA all``. Exit status: 0 all reads
answered, 1 some failed, 2 bad usage.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from agent.config_messages import describe_errors
from agent.config_model import TextValue
from agent.sources.modbus import profiles
from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.decode import (
    BIT_FUNCTIONS,
    FORMATS,
    ORDERS,
    decode_bit,
    decode_raw,
    decode_string,
    register_count,
)

_TYPE = re.compile(r"^(?:string(?P<chars>\d+)|bit(?P<bit>\d*)|(?P<numeric>[a-z]+\d+))$")
_SERIAL_QUERY = {"baud": "baudrate", "baudrate": "baudrate", "parity": "parity", "stopbits": "stopbits",
                 "bytesize": "bytesize"}  # fmt: skip
Echo = Callable[[str], None]


class ProbeError(ValueError):
    """Bad usage: an unknown scheme, a malformed ``--read``; exit status 2."""


@dataclass(frozen=True)
class ReadSpec:
    """One ``--read``: ``count`` registers (or bits) from protocol ``address``, shown as ``type``."""

    function: int
    address: int
    type: str  # a numeric type, "string", or "bit" (a register's bit ``bit``, or a coil if ``bit`` is None)
    count: int
    orders: tuple[str, ...]
    bit: int | None = None


def parse_read(text: str, function: int = 3, base: int = 0) -> ReadSpec:
    """``ADDRESS[:TYPE[:ORDER]]`` → a read; raises ProbeError saying what is wrong."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3:
        raise ProbeError(f"--read {text!r}: write ADDRESS[:TYPE[:ORDER]], e.g. 3059:float32:ABCD")
    try:
        address = int(parts[0], 0) - base
    except ValueError:
        raise ProbeError(
            f"--read {text!r}: {parts[0]!r} is not an address (decimal, or hex as 0x2012)"
        ) from None
    bits = function in BIT_FUNCTIONS
    type_text = (parts[1] if len(parts) > 1 else "") or ("bit" if bits else "uint16")
    order_text = (parts[2] if len(parts) > 2 else "ABCD").upper()
    orders = ORDERS if order_text == "ALL" else (order_text,)
    if order_text not in (*ORDERS, "ALL"):
        raise ProbeError(f"--read {text!r}: order {parts[2]!r} is not one of {', '.join(ORDERS)}, all")
    match = _TYPE.match(type_text.lower())
    if match is None or (match["numeric"] and match["numeric"] not in FORMATS):
        raise ProbeError(
            f"--read {text!r}: type {type_text!r} is not one of {', '.join(FORMATS)}, stringN, bitN, bit"
        )
    if bits != (match["bit"] == ""):
        raise ProbeError(f"--read {text!r}: coils and discrete inputs (--function 1/2) go with type 'bit'")
    if match["numeric"]:
        spec = ReadSpec(function, address, match["numeric"], register_count(match["numeric"]), orders)
    elif match["chars"]:
        spec = ReadSpec(function, address, "string", int(match["chars"]), orders)
    else:
        bit = int(match["bit"]) if match["bit"] else None
        if bit is not None and bit > 15:
            raise ProbeError(f"--read {text!r}: a register has bits 0..15")
        spec = ReadSpec(function, address, "bit", 1, orders, bit)
    if not 0 <= spec.address <= 65536 - spec.count or not 1 <= spec.count <= 125:
        raise ProbeError(f"--read {text!r}: address or length outside the Modbus range")
    return spec


def device_settings(url: str) -> dict[str, Any]:
    """The ``[[modbus]]`` keys that reach the device at ``url``; raises ProbeError for unknown schemes."""
    parts = urlsplit(url)
    if parts.scheme in ("modbus", "rtu-over-tcp"):
        if not parts.hostname:
            raise ProbeError(f"{url!r}: give a host, e.g. {parts.scheme}://10.0.0.5:502")
        transport = "tcp" if parts.scheme == "modbus" else "rtu-over-tcp"
        return {"transport": transport, "host": parts.hostname, "port": parts.port or 502}
    if parts.scheme == "rtu":
        if not parts.path:
            raise ProbeError(f"{url!r}: give the serial device, e.g. rtu:///dev/ttyUSB0?baud=9600&parity=E")
        settings: dict[str, Any] = {"transport": "rtu", "serial_port": parts.path}
        for key, values in parse_qs(parts.query).items():
            if key not in _SERIAL_QUERY:
                raise ProbeError(f"{url!r}: unknown setting {key!r}; use {', '.join(_SERIAL_QUERY)}")
            value = values[-1].upper() if key == "parity" else values[-1]
            settings[_SERIAL_QUERY[key]] = TextValue(value, f"{key}= in the URL")  # read as the key's type
        return settings
    raise ProbeError(f"{url!r}: use modbus://, rtu-over-tcp://, rtu:// or opc.tcp:// URLs")


def build_device(url: str, unit: int, timeout: float, **extra: Any) -> ModbusDevice:
    """A ``ModbusDevice`` for the probe, validated like a config file's (so its errors read the same)."""
    raw = {"name": "probe", **device_settings(url), "unit": unit, "timeout": timeout, "retries": 0, **extra}
    try:
        return ModbusDevice.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'device' if key == '(top level)' else key}: {sentence}"
            for key, sentence in describe_errors(exc.errors(), ModbusDevice)
        ]
        raise ProbeError("; ".join(problems)) from None


def spec_type(spec: ReadSpec) -> str:
    """The TYPE as written: ``float32``, ``string20``, ``bit3``, ``bit``."""
    if spec.type == "string":
        return f"string{spec.count}"
    return f"bit{spec.bit}" if spec.bit is not None else spec.type


def hex_words(words: list[int]) -> str:
    return "[" + " ".join(f"{w:04X}" for w in words) + "]"


def show(value: object, type_: str = "") -> str:
    """float32 values with the 9 digits that identify them, scaled values to 12, strings quoted."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:.9g}" if type_ == "float32" else f"{value:.12g}"
    return str(value)


def decoded(spec: ReadSpec, words: list[int], order: str) -> object:
    if spec.type == "string":
        return decode_string(words, order)
    if spec.type == "bit":
        return words[0] if spec.bit is None else decode_bit(words[0], spec.bit, order)
    return decode_raw(words, spec.type, order)


async def probe_reads(device: ModbusDevice, reads: list[ReadSpec], echo: Echo) -> bool:
    """Read and print each of ``reads``; True if every read was answered."""
    from agent.sources.modbus.link import ExceptionReply, Link, TransportError

    link, ok = Link([device]), True
    try:
        for spec in reads:
            label = f"FC{spec.function} {spec.address} {spec_type(spec)}"
            try:
                words = await link.read(spec.function, spec.address, spec.count, device.unit, device.timeout)
            except (ExceptionReply, TransportError) as exc:
                echo(f"{label}: {exc}")
                ok = False
                continue
            for order in spec.orders:
                echo(f"{label} {order} = {show(decoded(spec, words, order), spec.type)}  {hex_words(words)}")
    finally:
        link.close()
    return ok


async def probe_profile(device: ModbusDevice, echo: Echo) -> bool:
    """Read and print every point and identification register of the device's profile, with its notes."""
    from agent.sources.modbus.coalesce import device_requests
    from agent.sources.modbus.link import ExceptionReply, Link, TransportError

    profile = profiles.load(str(device.profile))
    echo(f"{profile.name}: {profile.title} [{profile.confidence}; source: {profile.source}]")
    echo(f"  {profile.notes}")
    link, ok = Link([device]), True
    results: dict[str, str] = {}
    try:
        for request in device_requests(device):
            try:
                words = await link.read(
                    request.function, request.address, request.count, device.unit, device.timeout
                )
            except (ExceptionReply, TransportError) as exc:
                ok = False
                failed = f"FC{request.function} {request.address}: {exc}"
                results.update({s.point.name: failed for s in request.spans})
                continue
            for s in request.spans:
                raw = request.registers_of(s, words)
                p = s.point
                results[p.name] = (
                    f"{show(s.value(raw)):>16} {p.unit:<5} FC{s.function} {s.address} {p.type} {s.order} "
                    f"{hex_words(raw)}  {profile.points[str(p.profile_point)].description}"
                )
        for key, info in profile.info.items():
            spec = ReadSpec(info.function, info.address, info.type, info.registers, ("ABCD",))
            where = f"FC{info.function} {info.address} {spec_type(spec)}"
            try:
                words = await link.read(spec.function, spec.address, spec.count, device.unit, device.timeout)
            except (ExceptionReply, TransportError) as exc:
                ok = False
                results[key] = f"{where}: {exc}"
                continue
            results[key] = f"{show(decoded(spec, words, 'ABCD')):>16}       {where}  {info.description}"
    finally:
        link.close()
    for point in device.points:
        echo(f"  {point.profile_point or point.name:<16}{results[point.name]}")
    for key in profile.info:
        echo(f"  {key:<16}{results[key]}")
    return ok


#: The ``probe`` command's options this source takes, by name (the others are for other protocols).
OPTIONS = ("unit", "read", "function", "base", "profile", "ct_ratio", "pt_ratio", "timeout")


def run_probe(url: str, options: dict[str, Any], echo: Echo = print) -> int:
    """The ``probe`` command for Modbus URLs; ``options`` holds the options given, by name.

    Returns the exit status (usage errors go to stderr with status 2).
    """
    try:
        foreign = [name for name in options if name not in OPTIONS]
        if foreign:
            flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
            raise ProbeError(f"{flags}: not for Modbus URLs (see kilnwatch agent probe --help)")
        function, base = options.get("function", 3), options.get("base", 0)
        specs = [parse_read(text, function, base) for text in options.get("read") or []]
        profile = options.get("profile")
        if not specs and profile is None:
            raise ProbeError("nothing to read: give --read ADDRESS[:TYPE[:ORDER]] or --profile NAME")
        extra = (
            {"profile": profile, "ct_ratio": options.get("ct_ratio", 1.0),
             "pt_ratio": options.get("pt_ratio", 1.0)} if profile else {}
        )  # fmt: skip
        device = build_device(url, options.get("unit", 1), options.get("timeout", 2.0), **extra)
    except ProbeError as exc:
        print(f"agent probe: {exc}", file=sys.stderr)
        return 2

    async def main() -> bool:
        ok = await probe_profile(device, echo) if profile else True
        return await probe_reads(device, specs, echo) and ok

    return 0 if asyncio.run(main()) else 1
