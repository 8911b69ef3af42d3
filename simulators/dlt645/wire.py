"""The meter's side of DL/T 645-2007 framing: find requests in the bytes a master sends, build replies.

Written apart from the agent's ``agent.sources.dlt645.frame`` on purpose: the simulator is the peer the
agent is tested against, so it follows the standard's layout on its own (two implementations of one text
agree, or a test fails), and it may behave as meters do where the agent must be tolerant:

* a request is whatever lies between a 68H and the 16H its length field points to, after any FE bytes;
* a request with a wrong checksum is dropped without an answer (the standard's rule for the receiver);
* the reply may start with the four FE wake-up bytes, as many meters send them.
"""

from __future__ import annotations

from dataclasses import dataclass

START, END, OFFSET = 0x68, 0x16, 0x33
PREAMBLE = b"\xfe\xfe\xfe\xfe"


@dataclass(frozen=True)
class Request:
    """A master's frame: the six address bytes as sent (least significant first), control code, data."""

    address: bytes
    control: int
    data: bytes


def bcd_address(digits: str) -> bytes:
    """``"000012345678"`` → ``78 56 34 12 00 00`` (two digits a byte, least significant byte first)."""
    return bytes(int(digits[i : i + 2], 16) for i in range(10, -1, -2))


def reply(address: str, control: int, data: bytes, preamble: bool) -> bytes:
    """A meter's frame: its own address, ``control``, ``data`` sent plus 33H, checksum and end byte."""
    body = bytes([START, *bcd_address(address), START, control, len(data)])
    body += bytes((b + OFFSET) % 256 for b in data)
    return (PREAMBLE if preamble else b"") + body + bytes([sum(body) % 256, END])


def take_requests(buffer: bytearray) -> list[Request]:
    """Every whole, correct request at the start of ``buffer``, removed from it; noise is skipped."""
    found = []
    while True:
        start = buffer.find(START)
        if start < 0:
            buffer.clear()
            return found
        del buffer[:start]
        if len(buffer) < 10:
            return found
        size = 12 + buffer[9]
        if buffer[7] != START:
            del buffer[0]
            continue
        if len(buffer) < size:
            return found
        raw = bytes(buffer[:size])
        if raw[-1] != END:
            del buffer[0]
            continue
        del buffer[:size]
        if sum(raw[:-2]) % 256 == raw[-2]:
            found.append(Request(raw[1:7], raw[8], bytes((b - OFFSET) % 256 for b in raw[10:-2])))
