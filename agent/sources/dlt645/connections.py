"""Which meters share a line, and whether the line's meters fit together.

An RS-485 line and a transparent gateway carry one frame at a time, so every meter on one serial port or one
host:port is polled through one shared connection. That needs the meters to agree on the line's settings
(a line at 2400 8E1 cannot also be at 9600 8N1), to have distinct addresses (two meters answering the same
address collide), and the wildcard address AAAAAAAAAAAA only where a meter is alone on its line (every
meter answers it). No protocol code here, so ``kilnwatch agent check`` uses it without pyserial.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.sources.dlt645.config import Dlt645Meter
from agent.sources.dlt645.frame import WILDCARD

#: Settings of the connection itself, which every meter sharing it must agree on.
LINE_KEYS = ("transport", "baudrate", "parity", "stopbits", "bytesize")


def endpoint(meter: Dlt645Meter) -> str:
    """The connection a meter is reached through: the serial port's path, or ``host:port``."""
    return str(meter.serial_port) if meter.transport == "serial" else f"{meter.host}:{meter.port}"


def describe(meter: Dlt645Meter) -> str:
    """Endpoint and framing as an operator reads them: ``serial /dev/ttyUSB0 2400 8E1``, ``tcp HOST:PORT``."""
    if meter.transport == "serial":
        return f"serial {meter.serial_port} {meter.baudrate} {meter.bytesize}{meter.parity}{meter.stopbits}"
    return f"tcp {endpoint(meter)}"


def by_connection(meters: Sequence[Dlt645Meter]) -> dict[str, list[Dlt645Meter]]:
    """Meters grouped by the connection they share, in config order."""
    groups: dict[str, list[Dlt645Meter]] = {}
    for meter in meters:
        groups.setdefault(endpoint(meter), []).append(meter)
    return groups


def connection_problems(meters: Sequence[Dlt645Meter]) -> list[str]:
    """One line per meter whose line settings or address do not fit the meters before it on its line."""
    problems = []
    first: dict[str, int] = {}
    addresses: dict[tuple[str, str], int] = {}
    lines = by_connection(meters)
    for i, meter in enumerate(meters):
        line = endpoint(meter)
        j = first.setdefault(line, i)
        if meter.address == WILDCARD and len(lines[line]) > 1:
            problems.append(
                f"dlt645[{i}].address: the wildcard 'AAAAAAAAAAAA' reaches every meter on {line}, and other "
                "meters share it: set this meter's 12-digit address"
            )
        k = addresses.setdefault((line, meter.address), i)
        if k != i:
            problems.append(
                f"dlt645[{i}].address: {meter.address!r} is also the address of dlt645[{k}] on {line}: "
                "meters sharing a line need distinct addresses"
            )
        if j == i:
            continue
        for key in LINE_KEYS:
            if meter.transport != "serial" and key != "transport":
                continue
            mine, theirs = getattr(meter, key), getattr(meters[j], key)
            if mine != theirs:
                problems.append(
                    f"dlt645[{i}].{key}: {mine!r} differs from {theirs!r} of dlt645[{j}] on the same "
                    f"connection {line}: meters sharing a connection must agree on {key}"
                )
    return problems
