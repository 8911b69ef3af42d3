"""The plant's Modbus TCP side: every meter of ``meters.METERS`` on one port, one unit id each.

Built on pymodbus' ``SimDevice`` (the classic datastore is deprecated and 1-based; ``SimDevice``
addresses are the 0-based protocol addresses, so register 3059 is P_total as on the wire). Each unit has
separate holding and input register tables, so a meter answers only on its own function code (PAC3200:
FC04, the rest FC03) and reads of the other table get "illegal address", as a real meter would reply.

Registers are encoded on demand: every read first asks ``state()`` for the line at that instant and rewrites
the unit's table, so a value is never older than the request.

What a master may not do is refused with the exception a meter answers (Modbus spec §6-7):

* a read of 0 registers or of more than 125 (FC03/FC04): exception 03, illegal data value (spec §6.3/6.4: the
  quantity must be 1-125). pymodbus itself would reject the frame as undecodable and answer 01;
* a coil write (FC05, FC15): exception 01, illegal function. These meters have no coils; a meter answers a
  function it does not implement with 01 whatever the address, and writes nothing;
* a register write (FC06, FC16): exception 02, illegal data address, since every register is read-only.

The same meters can be served with RTU framing, over TCP (``framer=FramerType.RTU``, as behind a serial-to-TCP
gateway) or on a serial port (``start_modbus_serial_server``), for testing masters on those transports.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.pdu import ExceptionResponse, ModbusPDU, ReadHoldingRegistersRequest
from pymodbus.pdu.bit_message import WriteMultipleCoilsRequest, WriteSingleCoilRequest
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.kiln.meters import METERS, Meter, State
from simulators.kiln.points import HOLDING
from simulators.kiln.registers import span, write

#: Register functions whose tables ``refresh`` rewrites before answering.
_REGISTER_READS = (3, 4)


class _ReadHolding(ReadHoldingRegistersRequest):
    """FC03 with the meter's answer to a length outside 1-125: exception 03, not pymodbus' decode failure."""

    def decode(self, data: bytes) -> None:
        self.address, self.count = struct.unpack(">HH", data[:4])

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        if not 1 <= self.count <= self.MAX_COUNT:
            return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_VALUE)
        return await super().datastore_update(context, device_id)


class _ReadInput(_ReadHolding):
    function_code = 4


class _NoCoilWrite(WriteSingleCoilRequest):
    """FC05 on a meter without coils: illegal function, and nothing written."""

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_FUNCTION)


class _NoCoilsWrite(WriteMultipleCoilsRequest):
    """FC15 on a meter without coils: illegal function, and nothing written."""

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_FUNCTION)


#: The requests this server answers as a meter does (see the module docstring).
METER_PDUS: list[type[ModbusPDU]] = [_ReadHolding, _ReadInput, _NoCoilWrite, _NoCoilsWrite]


def _device(meter: Meter, state: Callable[[], State]) -> SimDevice:
    first, count = span(meter.fields(state()))
    table = [SimData(first, count=count, values=0, datatype=DataType.REGISTERS, readonly=True)]
    absent = [SimData(0, datatype=DataType.INVALID)]
    no_bits = [SimData(0, values=0, datatype=DataType.BITS, readonly=True)]

    async def refresh(
        function_code: int,
        start_address: int,
        _address: int,
        _count: int,
        registers: list[int],
        _set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code in _REGISTER_READS:  # not the coil table: the fields would not fit in it
            write(meter.fields(state()), registers, start_address)
        return None

    holding, inputs = (table, absent) if meter.function == HOLDING else (absent, table)
    return SimDevice(meter.unit, simdata=(no_bits, no_bits, holding, inputs), action=refresh)


async def start_modbus_server(
    state: Callable[[], State], port: int, host: str = "127.0.0.1", framer: FramerType = FramerType.SOCKET
) -> ModbusTcpServer:
    """Listen on ``host:port`` and return the running server (stop it with ``await server.shutdown()``)."""
    server = ModbusTcpServer(
        [_device(m, state) for m in METERS], address=(host, port), framer=framer, custom_pdu=METER_PDUS
    )
    await server.serve_forever(background=True)
    return server


async def start_modbus_serial_server(
    state: Callable[[], State], serial_port: str, baudrate: int = 9600
) -> ModbusSerialServer:
    """Serve every meter with RTU framing on ``serial_port`` (8N1); stop with ``await server.shutdown()``."""
    server = ModbusSerialServer(
        [_device(m, state) for m in METERS], port=serial_port, baudrate=baudrate, custom_pdu=METER_PDUS
    )
    await server.serve_forever(background=True)
    return server
