"""DL/T 645-2007 frames: build requests, find and check replies in a byte stream.

A frame on the wire::

    [FE FE FE FE]  68  A0..A5  68  C  L  DATA (L bytes)  CS  16

* the optional FE bytes wake a meter's receiver up; a receiver skips whatever precedes the first 68H,
* A0..A5 is the meter address, 12 BCD digits, least significant byte first (``000012345678`` → 78 56 34 12
  00 00); AAH bytes are wildcards (``AAAAAAAAAAAA`` reaches whichever meter is on the line),
* C is the control code: D7 direction (1 = from the meter), D6 abnormal reply, D5 follow-up frame, D4..D0
  the function (11H read data, 13H read address),
* every DATA byte is sent plus 33H (mod 256) and taken minus 33H on receipt,
* CS is the sum mod 256 of every byte from the first 68H through the last DATA byte.

A read request's data is the data identifier DI3..DI0, sent DI0 first; the normal reply (91H) repeats it and
adds the value bytes, least significant byte first; an abnormal reply (D1H) carries one error byte instead.

Receiving is stream-oriented, because neither a serial line nor a TCP gateway delivers whole frames:
``take_frame`` consumes bytes from a buffer until it holds one whole frame, skipping preamble bytes and
noise, so a line that picked up a glitch before the reply still reads.
"""

from __future__ import annotations

from dataclasses import dataclass

START = 0x68
END = 0x16
WAKE_UP = bytes([0xFE] * 4)
#: Added to every data byte on the wire (and taken off again on receipt).
OFFSET = 0x33
READ_DATA = 0x11
READ_ADDRESS = 0x13
#: The meter's answers: D7 set (from the meter); D6 set for an abnormal answer.
FROM_METER = 0x80
ABNORMAL = 0x40
WILDCARD = "AAAAAAAAAAAA"
#: A read reply's data field is at most 200 bytes; a longer length byte means this 68H is no frame start.
MAX_DATA = 200
#: 68, 6 address bytes, 68, C, L, CS, 16: a frame is this many bytes plus its data.
OVERHEAD = 12

#: The abnormal reply's error byte (the standard's error information word): bit → what the meter says.
ERROR_BITS = {
    0: "other error",
    1: "no requested data",
    2: "password error or not authorised",
    3: "baud rate cannot be changed",
    4: "too many annual time zones",
    5: "too many daily time periods",
    6: "too many tariffs",
}
NO_DATA_BIT = 1


class FrameError(ValueError):
    """Bytes that looked like a frame but fail its check (checksum): a garbled reply."""


class AbnormalReply(Exception):
    """The meter answered with an error byte instead of data (control code D1H for a read)."""

    def __init__(self, code: int) -> None:
        self.code = code
        reasons = [text for bit, text in ERROR_BITS.items() if code >> bit & 1] or ["no reason given"]
        super().__init__(f"abnormal reply, error word 0x{code:02X}: {', '.join(reasons)}")

    @property
    def no_data(self) -> bool:
        """The meter does not have the identifier asked for (like Modbus exception 02)."""
        return bool(self.code >> NO_DATA_BIT & 1)


@dataclass(frozen=True)
class Frame:
    """One frame, its data already minus 33H; ``address`` is the 12 digits as a nameplate prints them."""

    address: str
    control: int
    data: bytes = b""


def address_bytes(address: str) -> bytes:
    """``"000012345678"`` → ``78 56 34 12 00 00``: two digits a byte, least significant byte first."""
    return bytes.fromhex(address)[::-1]


def address_text(raw: bytes) -> str:
    return raw[::-1].hex().upper()


def di_bytes(di: int) -> bytes:
    """Data identifier DI3 DI2 DI1 DI0 (as written, ``00010000``) in wire order: DI0 first."""
    return di.to_bytes(4, "little")


def checksum(body: bytes) -> int:
    return sum(body) & 0xFF


def encode(frame: Frame, preamble: bool = False) -> bytes:
    """The bytes of ``frame`` on the wire, with the four FE wake-up bytes in front if ``preamble``."""
    data = bytes((b + OFFSET) & 0xFF for b in frame.data)
    body = bytes([START, *address_bytes(frame.address), START, frame.control, len(data), *data])
    return (WAKE_UP if preamble else b"") + body + bytes([checksum(body), END])


def read_request(address: str, di: int, preamble: bool = True) -> bytes:
    return encode(Frame(address, READ_DATA, di_bytes(di)), preamble)


def read_address_request(preamble: bool = True) -> bytes:
    """Ask whichever meter is on the line for its address (answered only if it is the only one)."""
    return encode(Frame(WILDCARD, READ_ADDRESS), preamble)


def take_frame(buffer: bytearray) -> Frame | None:
    """Remove the first whole frame from ``buffer`` and return it; None if no whole frame is there yet.

    Bytes before a frame (FE preamble, line noise) are dropped; so is a 68H that turns out not to start a
    frame (no second 68H seven bytes on, or no 16H where its length says the frame ends). A frame whose
    checksum is wrong is removed too, and raises ``FrameError``.
    """
    while True:
        start = buffer.find(START)
        if start < 0:
            buffer.clear()
            return None
        del buffer[:start]
        if len(buffer) < 10:
            return None
        length = buffer[9]
        if buffer[7] != START or length > MAX_DATA:
            del buffer[0]
            continue
        size = OVERHEAD + length
        if len(buffer) < size:
            return None
        if buffer[size - 1] != END:
            del buffer[0]
            continue
        raw = bytes(buffer[:size])
        del buffer[:size]
        if checksum(raw[:-2]) != raw[-2]:
            raise FrameError(
                f"checksum error: {raw.hex(' ').upper()} sums to {checksum(raw[:-2]):02X}, not {raw[-2]:02X}"
            )
        return Frame(address_text(raw[1:7]), raw[8], bytes((b - OFFSET) & 0xFF for b in raw[10:-2]))


def decode(raw: bytes) -> Frame:
    """The one frame in ``raw`` (preamble and noise around it allowed); FrameError if there is none."""
    frame = take_frame(bytearray(raw))
    if frame is None:
        raise FrameError(f"no whole frame in {raw.hex(' ').upper()}")
    return frame


def _answers(frame: Frame, address: str, function: int) -> bool:
    """``frame`` is the meter's answer to ``function`` sent to ``address``, not an echo or a stray frame."""
    return (
        frame.control & FROM_METER != 0
        and frame.control & 0x1F == function
        and (address == WILDCARD or frame.address == address)
    )


def read_reply(frame: Frame, address: str, di: int) -> bytes | None:
    """The value bytes if ``frame`` answers a read of ``di`` at ``address``; None if it answers another.

    An echo of the request (RS-485 adapters often hear themselves), another meter's frame or a late reply
    to an earlier identifier is None, so the caller keeps listening. Raises ``AbnormalReply`` for the
    meter's error answer.
    """
    if not _answers(frame, address, READ_DATA):
        return None
    if frame.control & ABNORMAL:
        if len(frame.data) != 1:
            raise FrameError(f"abnormal reply with {len(frame.data)} data bytes instead of one error byte")
        raise AbnormalReply(frame.data[0])
    if frame.data[:4] != di_bytes(di):
        return None
    return frame.data[4:]


def address_reply(frame: Frame) -> str | None:
    """The address a meter gives in answer to the read-address command, or None if ``frame`` is not that."""
    if not _answers(frame, WILDCARD, READ_ADDRESS) or frame.control & ABNORMAL or len(frame.data) != 6:
        return None
    return address_text(frame.data)
