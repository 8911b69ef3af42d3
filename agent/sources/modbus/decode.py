"""Registers → engineering value, for every numeric type, bits and strings, and all four byte/word orders.

pymodbus converts only with a word order, but meters in the field also swap bytes inside each word (BADC,
DCBA), so the agent owns the whole conversion here. The order names describe where the bytes of the
big-endian value ``A B C D`` (``A`` most significant) sit in the register stream:

* ``ABCD`` big-endian words, most significant first (the Modbus default)
* ``CDAB`` words swapped, bytes inside each word big-endian ("low word first", common on meters)
* ``BADC`` words most significant first, bytes inside each word swapped
* ``DCBA`` fully little-endian

For 64-bit values the same rule extends to four words (``CDAB`` = ``GH EF CD AB``); for 16-bit values only the
byte swap matters (``ABCD`` = ``CDAB``, ``BADC`` = ``DCBA``). A bit of a register is taken from the 16-bit
value after that byte swap (bit 0 = least significant); coils and discrete inputs (functions 1 and 2) arrive
as 0/1 already. Strings are ASCII, two characters per register (first character in the high byte unless the
order swaps bytes), with NUL padding stripped; they are for ``probe`` only, since the wire format carries
numbers.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

#: struct format and width in registers of each numeric register type.
FORMATS: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
}
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
#: Function codes that read single bits (coils, discrete inputs) rather than 16-bit registers.
BIT_FUNCTIONS = (1, 2)


def register_count(type_: str) -> int:
    """How many 16-bit registers a value of ``type_`` occupies."""
    return FORMATS[type_][1]


def to_big_endian(registers: Sequence[int], order: str) -> bytes:
    """Reorder the registers' bytes into the value's big-endian byte string."""
    words = list(registers)
    if order in ("CDAB", "DCBA"):
        words.reverse()
    raw = struct.pack(f">{len(words)}H", *words)
    return _swap_bytes(raw) if order in ("BADC", "DCBA") else raw


def _swap_bytes(raw: bytes) -> bytes:
    swapped = bytearray(len(raw))
    swapped[0::2], swapped[1::2] = raw[1::2], raw[0::2]
    return bytes(swapped)


def decode_raw(registers: Sequence[int], type_: str, order: str) -> int | float:
    """The value as the device stores it (no scaling). ``registers`` must have exactly the type's width."""
    fmt, width = FORMATS[type_]
    if len(registers) != width:
        raise ValueError(f"{type_} needs {width} registers, got {len(registers)}")
    return struct.unpack(f">{fmt}", to_big_endian(registers, order))[0]


def decode(
    registers: Sequence[int], type_: str, order: str, scale: float = 1.0, offset: float = 0.0
) -> float:
    """Engineering value = raw × scale + offset."""
    return decode_raw(registers, type_, order) * scale + offset


def decode_bit(register: int, bit: int, order: str = "ABCD") -> int:
    """Bit ``bit`` (0 = least significant) of one register, after the order's byte swap."""
    if not 0 <= bit <= 15:
        raise ValueError(f"bit must be 0..15, got {bit}")
    return (int(decode_raw([register], "uint16", order)) >> bit) & 1


def decode_string(registers: Sequence[int], order: str = "ABCD") -> str:
    """ASCII text, two characters per register; NULs (padding) and trailing blanks are stripped."""
    raw = struct.pack(f">{len(registers)}H", *registers)
    if order in ("BADC", "DCBA"):
        raw = _swap_bytes(raw)
    return raw.replace(b"\0", b"").decode("ascii", errors="replace").rstrip()
