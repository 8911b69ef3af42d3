"""``kilnwatch agent probe dlt645://...``: read a meter once and print what it answers; publish nothing.

Commissioning a DL/T 645 meter usually asks: is the line right (speed, parity, wiring), what is the meter's
address, and which identifiers does this model answer? The probe answers them with the agent's own link and
decoding code, so what it shows is what the agent will publish:

* ``dlt645://HOST:PORT``: a transparent serial-to-TCP gateway,
* ``dlt645:///dev/ttyUSB0?baud=2400&parity=E&stopbits=1&bytesize=8``: a local serial port.

``--meter`` is the 12-digit address; without it the probe first asks the line for its meter's address with
the broadcast read-address command (13H), which works only with one meter on the line (several would answer
at once). Each ``--read`` is ``DI[:LAYOUT]``: 8 hex digits or a name of the table, and for identifiers
outside the table the layout (``XXXXXX.XX``) to decode it by; without a layout only the raw bytes are shown.
No ``--read`` reads every identifier of the table. Exit status: 0 all answered, 1 some failed, 2 bad usage.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from agent.config_messages import describe_errors
from agent.config_model import TextValue
from agent.sources.base import Echo, PointAnswer
from agent.sources.dlt645 import identifiers
from agent.sources.dlt645.config import Dlt645Meter
from agent.sources.dlt645.cycle import point_value, read_value
from agent.sources.dlt645.frame import WILDCARD, AbnormalReply
from agent.sources.dlt645.link import Link, TransportError

#: The ``probe`` command's options this source takes, by name (the others are for other protocols).
OPTIONS = ("meter", "read", "timeout")
_SERIAL_QUERY = {"baud": "baudrate", "baudrate": "baudrate", "parity": "parity", "stopbits": "stopbits",
                 "bytesize": "bytesize"}  # fmt: skip


class ProbeError(ValueError):
    """Bad usage: a malformed URL, ``--meter`` or ``--read``; exit status 2."""


@dataclass(frozen=True)
class ReadSpec:
    """One ``--read``: an identifier, and how to decode it (None: show the raw bytes only)."""

    di: int
    layout: identifiers.Layout | None
    signed: bool = False
    unit: str = ""

    @property
    def label(self) -> str:
        entry = identifiers.BY_DI.get(self.di)
        return f"{self.di:08X}" + (f" {entry.name}" if entry is not None else "")


def parse_read(text: str) -> ReadSpec:
    """``DI[:LAYOUT]`` → a read; ProbeError saying what is wrong."""
    di_text, _, layout_text = text.partition(":")
    try:
        di = identifiers.resolve(di_text)
        layout = identifiers.parse_layout(layout_text) if layout_text else None
    except ValueError as exc:
        raise ProbeError(f"--read {text!r}: {exc}") from None
    entry = identifiers.BY_DI.get(di)
    if entry is None:
        return ReadSpec(di, layout)
    return ReadSpec(di, layout or identifiers.parse_layout(entry.layout), entry.signed, entry.unit)


def line_settings(url: str) -> dict[str, Any]:
    """The ``[[dlt645]]`` keys that reach the line at ``url``."""
    parts = urlsplit(url)
    if parts.scheme != "dlt645":
        raise ProbeError(f"{url!r}: use dlt645://HOST:PORT or dlt645:///dev/ttyUSB0?baud=2400&parity=E")
    if parts.hostname:
        if parts.port is None:
            raise ProbeError(f"{url!r}: give the gateway's port, e.g. dlt645://{parts.hostname}:4001")
        return {"transport": "tcp", "host": parts.hostname, "port": parts.port}
    if not parts.path:
        raise ProbeError(
            f"{url!r}: give a gateway (dlt645://HOST:PORT) or a serial device (dlt645:///dev/...)"
        )
    settings: dict[str, Any] = {"transport": "serial", "serial_port": parts.path}
    for key, values in parse_qs(parts.query).items():
        if key not in _SERIAL_QUERY:
            raise ProbeError(f"{url!r}: unknown setting {key!r}; use {', '.join(_SERIAL_QUERY)}")
        value = values[-1].upper() if key == "parity" else values[-1]
        settings[_SERIAL_QUERY[key]] = TextValue(value, f"{key}= in the URL")  # read as the key's type
    return settings


def build_meter(url: str, address: str, timeout: float) -> Dlt645Meter:
    """A ``Dlt645Meter`` for the probe, validated like a config file's (so its errors read the same)."""
    raw = {"name": "probe", **line_settings(url), "address": address, "timeout": timeout, "retries": 0}
    try:
        return Dlt645Meter.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'meter' if key == '(top level)' else '--meter' if key == 'address' else key}: {sentence}"
            for key, sentence in describe_errors(exc.errors(), Dlt645Meter)
        ]
        raise ProbeError("; ".join(problems)) from None


def shown(spec: ReadSpec, raw: bytes) -> str:
    """``= 12345.67 kWh  [67 45 23 01]``: the value with the layout's decimals, then the bytes as received."""
    raw_text = f"[{raw.hex(' ').upper()}]"
    if spec.layout is None:
        return raw_text
    try:
        value = identifiers.decode_value(raw, spec.layout, spec.signed)
    except ValueError as exc:
        return f"{exc}  {raw_text}"
    return f"= {value:.{spec.layout.decimals}f}{' ' + spec.unit if spec.unit else ''}  {raw_text}"


async def probe_meter(meter: Dlt645Meter, reads: list[ReadSpec], echo: Echo) -> bool:
    """Find the address if the meter has none, then read and print each of ``reads``; True if all answered."""
    link, ok, address = Link([meter]), True, meter.address
    try:
        if address == WILDCARD:
            try:
                address = await link.read_address(meter.timeout, meter.preamble)
            except TransportError as exc:
                echo(f"read address (13H): {exc}: with several meters on the line their answers collide; "
                     "give --meter ADDRESS")  # fmt: skip
                return False
            echo(f"meter address {address}")
        for spec in reads:
            try:
                raw = await link.read(address, spec.di, meter.timeout, meter.preamble)
            except (AbnormalReply, TransportError) as exc:
                echo(f"{spec.label}: {exc}")
                ok = False
                continue
            echo(f"{spec.label} {shown(spec, raw)}")
    finally:
        link.close()
    return ok


async def probe_points(table: Dlt645Meter, timeout: float) -> list[PointAnswer]:
    """``check --probe``: read every point of ``table`` once; which ones the meter answers."""
    meter = table.model_copy(update={"timeout": timeout})
    link = Link([meter])
    answers: list[PointAnswer] = []
    try:
        for point in meter.points:
            try:
                raw = await read_value(link, meter, point.identifier)
                answers.append(PointAnswer(point.name, point_value(meter, point, raw)))
            except (AbnormalReply, TransportError, ValueError) as exc:
                answers.append(PointAnswer(point.name, error=f"{point.label}: {exc}"))
    finally:
        link.close()
    return answers


def run_probe(url: str, options: dict[str, Any], echo: Echo = print) -> int:
    """The ``probe`` command for ``dlt645://`` URLs; ``options`` holds the options given, by name."""
    try:
        foreign = [name for name in options if name not in OPTIONS]
        if foreign:
            flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
            raise ProbeError(f"{flags}: not for dlt645:// URLs (see kilnwatch agent probe --help)")
        texts = options.get("read") or list(identifiers.KNOWN)
        reads = [parse_read(text) for text in texts]
        meter = build_meter(url, options.get("meter", WILDCARD), options.get("timeout", 2.0))
    except ProbeError as exc:
        print(f"agent probe: {exc}", file=sys.stderr)
        return 2
    return 0 if asyncio.run(probe_meter(meter, reads, echo)) else 1
