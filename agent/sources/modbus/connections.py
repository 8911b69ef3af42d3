"""Which devices share a connection, and whether they agree on its settings.

Modbus TCP gateways, RS-485 lines and pymodbus clients all carry one request at a time, so every device on
one host:port or one serial port is polled through one shared connection. That only works if the devices agree
on how the connection is made (framing, serial speed and format): a line at 9600 8N1 cannot also be at 19200
8E1. This module holds no protocol code, so ``kilnwatch agent check`` can use it without loading pymodbus.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.sources.modbus.config import ModbusDevice

#: Settings of the connection itself, which every device sharing it must agree on.
LINE_KEYS = ("transport", "baudrate", "parity", "stopbits", "bytesize")


def endpoint(device: ModbusDevice) -> str:
    """The connection a device is reached through: ``host:port``, or the serial port's path."""
    return str(device.serial_port) if device.transport == "rtu" else f"{device.host}:{device.port}"


def describe(device: ModbusDevice) -> str:
    """Endpoint and framing as an operator reads them: ``10.0.0.5:502``, ``rtu /dev/ttyUSB0 9600 8N1``."""
    if device.transport == "rtu":
        return f"rtu {device.serial_port} {device.baudrate} {device.bytesize}{device.parity}{device.stopbits}"
    prefix = "rtu-over-tcp " if device.transport == "rtu-over-tcp" else ""
    return prefix + endpoint(device)


def by_connection(devices: Sequence[ModbusDevice]) -> dict[str, list[ModbusDevice]]:
    """Devices grouped by the connection they share, in config order."""
    groups: dict[str, list[ModbusDevice]] = {}
    for device in devices:
        groups.setdefault(endpoint(device), []).append(device)
    return groups


def connection_problems(devices: Sequence[ModbusDevice]) -> list[str]:
    """One line per device whose connection settings differ from the first device on the same connection."""
    problems = []
    first: dict[str, int] = {}
    for i, device in enumerate(devices):
        j = first.setdefault(endpoint(device), i)
        if j == i:
            continue
        other = devices[j]
        for key in LINE_KEYS:
            if device.transport != "rtu" and key != "transport":
                continue
            mine, theirs = getattr(device, key), getattr(other, key)
            if mine != theirs:
                problems.append(
                    f"modbus[{i}].{key}: {mine!r} differs from {theirs!r} of modbus[{j}] on the same "
                    f"connection {endpoint(device)}: devices sharing a connection must agree on {key}"
                )
    return problems
