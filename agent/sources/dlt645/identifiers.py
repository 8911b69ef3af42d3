"""Data identifiers (DI) a DL/T 645-2007 meter is read by, their value layout, and BCD decoding.

The standard prints each value's layout as digits: ``XXXXXX.XX`` is 8 BCD digits in 4 bytes with 2 decimals
(123456.78 kWh); ``XX.XXXX`` is 6 digits in 3 bytes with 4 decimals. Bytes go least significant first. For
signed quantities (current, power, power factor, and combined energy, which can run backwards) the most
significant bit of the most significant byte is the sign (1 = negative) and the other bits hold the digits.

Every entry below names where it was checked, with a confidence label:

* ``CONFIRMED-2nd``: seen in a source other than the standard itself, as noted in ``source``;
* ``UNCONFIRMED``: from the standard's tables as recalled, not yet seen in a second source.

The layouts (digit counts, lengths, units) are ``CONFIRMED-2nd`` for every entry: a public transcription of
the standard's Table A.4 (toolkit.eoiot.cn/documentation/appendix-A-4) gives XXXXXX.XX 4 bytes kWh, XXX.X
2 bytes V, XXX.XXX 3 bytes A, XX.XXXX 3 bytes kW/kvar and X.XXX 2 bytes for the power factor, the same
quantities as here. The sign-bit rule is ``UNCONFIRMED`` (the standard's note to its tables, as recalled):
a meter that never reports negative values reads the same either way, since the top digit of a current or
power is then below 8. Check a new meter model with ``kilnwatch agent probe`` before its numbers are used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LAYOUT = re.compile(r"^(X+)(?:\.(X+))?$")

#: The source notes the table refers to.
WORKED_FRAMES = (
    "worked request/reply frames with checksums in a public 'DLT645-2007报文解析' write-up (checked by hand)"
)
FIRMWARE = "DI and value length in public concentrator firmware source"


@dataclass(frozen=True)
class Layout:
    """A value's layout as the standard prints it: ``XXXXXX.XX``."""

    text: str
    digits: int
    decimals: int

    @property
    def length(self) -> int:
        """Bytes on the wire: two BCD digits a byte."""
        return self.digits // 2


def parse_layout(text: str) -> Layout:
    """``"XXX.XXX"`` → 6 digits, 3 decimals; ValueError naming the notation if ``text`` is not one."""
    match = _LAYOUT.match(text.upper())
    digits = len(match.group(1)) + len(match.group(2) or "") if match else 0
    if match is None or digits % 2 or not 2 <= digits <= 16:
        raise ValueError(
            f"{text!r} is not a layout: write the standard's digits, e.g. 'XXXXXX.XX' (an even number of X, "
            "2-16, with at most one '.')"
        )
    return Layout(text.upper(), digits, len(match.group(2) or ""))


def decode_value(raw: bytes, layout: Layout, signed: bool) -> float:
    """The number in ``raw`` (value bytes as received, least significant first, 33H already taken off).

    Raises ValueError for a wrong length or bytes that are not BCD (meters answer FF.. for "not available").
    """
    if len(raw) != layout.length:
        raise ValueError(
            f"{len(raw)} value bytes where layout {layout.text} has {layout.length}: set the point's layout"
        )
    digits = bytearray(reversed(raw))  # most significant first
    negative = signed and bool(digits[0] & 0x80)
    if negative:
        digits[0] &= 0x7F
    text = digits.hex()
    if not text.isdigit():
        raise ValueError(f"not BCD: {raw.hex(' ').upper()}")
    value = int(text) / 10**layout.decimals
    return -value if negative else value


@dataclass(frozen=True)
class Identifier:
    """One entry of the table: a name a config may use instead of the DI's hex digits."""

    name: str
    di: int
    title: str
    layout: str
    unit: str
    kind: str
    signed: bool
    #: Which of the meter's ct_ratio/pt_ratio the value is multiplied by (secondary-side meters).
    ratios: str
    source: str
    confidence: str

    @property
    def hex(self) -> str:
        return f"{self.di:08X}"


_E, _P, _A = "energy_total", "power", "analog"
#: name, DI, title, layout, unit, kind, signed, ratios, source; every row is CONFIRMED-2nd (module docstring).
_ROWS = (
    ("energy_total", 0x00000000, "combined active energy, total", "XXXXXX.XX", "kWh", _E, True, "ct_pt",
     FIRMWARE),
    ("energy_import_total", 0x00010000, "forward (import) active energy, total", "XXXXXX.XX", "kWh", _E,
     False, "ct_pt", WORKED_FRAMES),
    ("energy_export_total", 0x00020000, "reverse (export) active energy, total", "XXXXXX.XX", "kWh", _E,
     False, "ct_pt", FIRMWARE),
    ("voltage_a", 0x02010100, "phase A voltage", "XXX.X", "V", _A, False, "pt", WORKED_FRAMES),
    ("voltage_b", 0x02010200, "phase B voltage", "XXX.X", "V", _A, False, "pt", FIRMWARE),
    ("voltage_c", 0x02010300, "phase C voltage", "XXX.X", "V", _A, False, "pt", FIRMWARE),
    ("current_a", 0x02020100, "phase A current", "XXX.XXX", "A", _A, True, "ct", WORKED_FRAMES),
    ("current_b", 0x02020200, "phase B current", "XXX.XXX", "A", _A, True, "ct", FIRMWARE),
    ("current_c", 0x02020300, "phase C current", "XXX.XXX", "A", _A, True, "ct", FIRMWARE),
    ("power_total", 0x02030000, "total active power", "XX.XXXX", "kW", _P, True, "ct_pt", FIRMWARE),
    ("power_a", 0x02030100, "phase A active power", "XX.XXXX", "kW", _P, True, "ct_pt", FIRMWARE),
    ("power_b", 0x02030200, "phase B active power", "XX.XXXX", "kW", _P, True, "ct_pt", FIRMWARE),
    ("power_c", 0x02030300, "phase C active power", "XX.XXXX", "kW", _P, True, "ct_pt", FIRMWARE),
    ("reactive_power_total", 0x02040000, "total reactive power", "XX.XXXX", "kvar", _A, True, "ct_pt",
     FIRMWARE),
    ("power_factor_total", 0x02060000, "total power factor", "X.XXX", "", _A, True, "none", FIRMWARE),
    ("frequency", 0x02800002, "grid frequency", "XX.XX", "Hz", _A, False, "none", FIRMWARE),
)  # fmt: skip


#: The table, by name and by DI.
KNOWN: dict[str, Identifier] = {row[0]: Identifier(*row, confidence="CONFIRMED-2nd") for row in _ROWS}
BY_DI: dict[int, Identifier] = {entry.di: entry for entry in KNOWN.values()}
_HEX = re.compile(r"^[0-9A-Fa-f]{8}$")


def resolve(text: str) -> int:
    """A point's ``di``: 8 hex digits (``"00010000"``, DI3 first as the standard writes it) or a name."""
    if _HEX.match(text):
        return int(text, 16)
    if text in KNOWN:
        return KNOWN[text].di
    raise ValueError(
        f"{text!r} is neither a data identifier of 8 hex digits (DI3..DI0, e.g. '00010000') nor a known name "
        f"({', '.join(KNOWN)})"
    )


def lookup(text: object) -> Identifier | None:
    """The table's entry for a ``di`` as written in a config, if it is one (None for anything else)."""
    if not isinstance(text, str):
        return None
    try:
        return BY_DI.get(resolve(text))
    except ValueError:
        return None
