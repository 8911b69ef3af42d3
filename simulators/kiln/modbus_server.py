"""The plant's Modbus TCP side: every meter of ``meters.METERS`` on one port, one unit id each.

Built on pymodbus' ``SimDevice`` (the classic datastore is deprecated and 1-based; ``SimDevice``
addresses are the 0-based protocol addresses, so register 3059 is P_total as on the wire). Each unit has
separate holding and input register tables, so a meter answers only on its own function code (PAC3200:
FC04, the rest FC03) and reads of the other table get "illegal address", as a real meter would reply.

Registers are encoded on demand: every read first asks ``state()`` for the line at that instant and rewrites
the unit's table, so a value is never older than the request. Registers are read-only.

The same meters can be served with RTU framing, over TCP (``framer=FramerType.RTU``, as behind a serial-to-TCP
gateway) or on a serial port (``start_modbus_serial_server``), for testing masters on those transports.
"""

from __future__ import annotations

from collections.abc import Callable

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.kiln.meters import METERS, Meter, State
from simulators.kiln.points import HOLDING
from simulators.kiln.registers import span, write


def _device(meter: Meter, state: Callable[[], State]) -> SimDevice:
    first, count = span(meter.fields(state()))
    table = [SimData(first, count=count, values=0, datatype=DataType.REGISTERS, readonly=True)]
    absent = [SimData(0, datatype=DataType.INVALID)]
    no_bits = [SimData(0, values=0, datatype=DataType.BITS, readonly=True)]

    async def refresh(
        _function_code: int,
        start_address: int,
        _address: int,
        _count: int,
        registers: list[int],
        _set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        write(meter.fields(state()), registers, start_address)
        return None

    holding, inputs = (table, absent) if meter.function == HOLDING else (absent, table)
    return SimDevice(meter.unit, simdata=(no_bits, no_bits, holding, inputs), action=refresh)


async def start_modbus_server(
    state: Callable[[], State], port: int, host: str = "127.0.0.1", framer: FramerType = FramerType.SOCKET
) -> ModbusTcpServer:
    """Listen on ``host:port`` and return the running server (stop it with ``await server.shutdown()``)."""
    server = ModbusTcpServer([_device(m, state) for m in METERS], address=(host, port), framer=framer)
    await server.serve_forever(background=True)
    return server


async def start_modbus_serial_server(
    state: Callable[[], State], serial_port: str, baudrate: int = 9600
) -> ModbusSerialServer:
    """Serve every meter with RTU framing on ``serial_port`` (8N1); stop with ``await server.shutdown()``."""
    server = ModbusSerialServer([_device(m, state) for m in METERS], port=serial_port, baudrate=baudrate)
    await server.serve_forever(background=True)
    return server
