"""Modbus register encoding: typed values to 16-bit words, in the word order a meter uses.

pymodbus 3.16 only switches word order for its own types, and the meters here mix float32/float64/int/uint,
ASCII strings, ABCD and CDAB, so the encoding is done explicitly with ``struct`` (big-endian bytes within a
word, as Modbus requires) and the words are reversed for "low word first" (CDAB) layouts.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from simulators.kiln.points import WordOrder

FieldType = Literal["float32", "float64", "int16", "uint16", "int32", "uint32", "int64", "string"]

_STRUCT = {
    "float32": ">f",
    "float64": ">d",
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
}


@dataclass(frozen=True)
class Field:
    """A value at a register address. ``words`` is the length of a string field in registers."""

    address: int
    dtype: FieldType
    value: float | int | str
    order: WordOrder = "ABCD"
    words: int = 0


def encode(
    dtype: FieldType, value: float | int | str, order: WordOrder = "ABCD", words: int = 0
) -> list[int]:
    """The registers holding ``value``; strings are ASCII, two characters per register, NUL-padded."""
    if dtype == "string":
        raw = str(value).encode("ascii")[: 2 * words].ljust(2 * words, b"\0")
    else:
        number = float(value) if dtype.startswith("float") else int(value)
        raw = struct.pack(_STRUCT[dtype], number)
    regs = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return regs[::-1] if order == "CDAB" else regs


def field_words(f: Field) -> list[int]:
    return encode(f.dtype, f.value, f.order, f.words)


def span(fields: Iterable[Field]) -> tuple[int, int]:
    """First address and register count of the smallest contiguous block holding every field."""
    fields = list(fields)
    first = min(f.address for f in fields)
    end = max(f.address + len(field_words(f)) for f in fields)
    return first, end - first


def write(fields: Iterable[Field], registers: list[int], first_address: int) -> None:
    """Encode ``fields`` into ``registers`` (a block whose element 0 is ``first_address``), in place."""
    for f in fields:
        offset = f.address - first_address
        words = field_words(f)
        registers[offset : offset + len(words)] = words
