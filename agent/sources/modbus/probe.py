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
from agent.sources.base import PointAnswer
from agent.sources.modbus import profiles
from agent.sources.modbus.coalesce import Span, device_requests
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
from agent.sources.modbus.healing import STRUCTURAL, read_split
from agent.sources.modbus.link import ExceptionReply, Link, TransportError

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


@dataclass(frozen=True)
class PointRead:
    """One point read once: its ``words``, or the ``error`` (exception reply or transport failure)."""

    span: Span
    words: list[int] | None = None
    error: Exception | None = None

    @property
    def where(self) -> str:
        return f"FC{self.span.function} {self.span.address}"

    @property
    def refused(self) -> bool:
        return isinstance(self.error, ExceptionReply) and self.error.code in STRUCTURAL

    @property
    def why(self) -> str:
        """The error for a summary's parentheses: ``exception 2 illegal data address``."""
        if isinstance(self.error, ExceptionReply) and self.error.code:
            return f"exception {self.error.code} {self.error.meaning}"
        return str(self.error)


async def read_points(link: Link, device: ModbusDevice) -> dict[str, PointRead]:
    """Every point of ``device`` read once, a refused request split as the poller splits it (``healing``)."""
    results: dict[str, PointRead] = {}
    for request in device_requests(device):
        try:
            pieces = await read_split(link, device, request)
        except TransportError as exc:
            results.update({s.point.name: PointRead(s, error=exc) for s in request.spans})
            continue
        for piece in pieces:
            for s in piece.request.spans:
                words = None if piece.registers is None else piece.request.registers_of(s, piece.registers)
                results[s.point.name] = PointRead(s, words, piece.error)
    return results


async def probe_points(device: ModbusDevice, timeout: float) -> list[PointAnswer]:
    """``check --probe``: every point of ``device`` with its value, or why it has none."""
    device = device.model_copy(update={"timeout": timeout})
    link = Link([device])
    try:
        reads = await read_points(link, device)
    finally:
        link.close()
    answers = []
    for point in device.points:
        r = reads[point.name]
        if r.words is not None:
            answers.append(PointAnswer(point.name, r.span.value(r.words)))
        else:
            why = r.error.reason if isinstance(r.error, ExceptionReply) else str(r.error)
            answers.append(PointAnswer(point.name, error=f"{r.where}: {why}"))
    return answers


def summary(reads: dict[str, PointRead], keys: dict[str, str]) -> str:
    """``12 of 20 profile points answered; refused: kw_a, kw_b (exception 2 illegal data address)``."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, r in reads.items():
        if r.error is not None:
            groups.setdefault(("refused" if r.refused else "failed", r.why), []).append(keys[name])
    answered = sum(r.error is None for r in reads.values())
    parts = [f"{answered} of {len(reads)} profile points answered"]
    parts += [f"{kind}: {', '.join(names)} ({why})" for (kind, why), names in sorted(groups.items())]
    return "; ".join(parts)


async def probe_profile(device: ModbusDevice, echo: Echo) -> bool:
    """Read and print every point and identification register of the device's profile, with its notes,
    then which profile points the device answers: the map of a neighbouring model or firmware differs."""
    profile = profiles.load(str(device.profile))
    echo(f"{profile.name}: {profile.title} [{profile.confidence}; source: {profile.source}]")
    echo(f"  {profile.notes}")
    link, info_ok = Link([device]), True
    info: dict[str, str] = {}
    try:
        reads = await read_points(link, device)
        for key, item in profile.info.items():
            spec = ReadSpec(item.function, item.address, item.type, item.registers, ("ABCD",))
            where = f"FC{spec.function} {spec.address} {spec_type(spec)}"
            try:
                words = await link.read(spec.function, spec.address, spec.count, device.unit, device.timeout)
            except (ExceptionReply, TransportError) as exc:
                info_ok = False
                info[key] = f"{where}: {exc}"
                continue
            value = show(decoded(spec, words, "ABCD"))
            info[key] = f"{value:>16}       {where}  {item.description}"
    finally:
        link.close()
    keys = {p.name: str(p.profile_point or p.name) for p in device.points}
    for point in device.points:
        r = reads[point.name]
        if r.words is None:
            line = f"{r.where}: {r.error}"
        else:
            s = r.span
            line = (
                f"{show(s.value(r.words)):>16} {point.unit:<5} FC{s.function} {s.address} {point.type} "
                f"{s.order} {hex_words(r.words)}  {profile.points[keys[point.name]].description}"
            )
        echo(f"  {keys[point.name]:<16}{line}")
    for key in profile.info:
        echo(f"  {key:<16}{info[key]}")
    echo(summary(reads, keys))
    return info_ok and all(r.error is None for r in reads.values())


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
