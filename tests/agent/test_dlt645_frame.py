"""DL/T 645-2007 frames and values against bytes written out by hand from the standard's layout.

Every expected frame below is spelled out byte by byte, with the arithmetic in a comment: the address
000012345678 goes least significant byte first (78 56 34 12 00 00); every data byte is sent plus 33H; the
checksum is the sum mod 256 of the bytes from the first 68H through the data. Three frames come from a
public worked example (meter 000000000161), so the layout is not only this project's reading of it.
"""

from __future__ import annotations

import pytest

from agent.sources.dlt645 import frame
from agent.sources.dlt645.frame import AbnormalReply, Frame, FrameError
from agent.sources.dlt645.identifiers import KNOWN, decode_value, parse_layout

METER = "000012345678"
# 68 + 78 56 34 12 00 00 + 68 = 104+120+86+52+18+0+0+104 = 484: the header sum for meter 000012345678.
HEADER = "68 78 56 34 12 00 00 68"

# Read 00010000: C = 11, L = 04, DI0..DI3 = 00 00 01 00 + 33 = 33 33 34 33.
# CS = 484 + 0x11 (17) + 4 + 51 + 51 + 52 + 51 = 710; 710 - 512 = 198 = C6.
READ_IMPORT = bytes.fromhex(f"{HEADER} 11 04 33 33 34 33 C6 16")
# Reply 12345.67 kWh: value 01234567 → bytes 67 45 23 01 (LSB first) + 33 = 9A 78 56 34; C = 91, L = 08.
# CS = 484 + 145 + 8 + (51+51+52+51) + 154 + 120 + 86 + 52 = 1254; 1254 - 1024 = 230 = E6.
REPLY_IMPORT = bytes.fromhex(f"{HEADER} 91 08 33 33 34 33 9A 78 56 34 E6 16")
# Abnormal reply, error word 02 ("no requested data"): C = D1, L = 01, 02 + 33 = 35.
# CS = 484 + 209 + 1 + 53 = 747; 747 - 512 = 235 = EB.
REPLY_NO_DATA = bytes.fromhex(f"{HEADER} D1 01 35 EB 16")
# Read address to the wildcard: 68, AA × 6, 68, C = 13, L = 00.
# CS = 104 + 6 × 170 + 104 + 19 + 0 = 1247; 1247 - 1024 = 223 = DF.
READ_ADDRESS = bytes.fromhex("68 AA AA AA AA AA AA 68 13 00 DF 16")
# Its reply: C = 93, L = 06, the address 78 56 34 12 00 00 + 33 = AB 89 67 45 33 33.
# CS = 484 + 147 + 6 + 171 + 137 + 103 + 69 + 51 + 51 = 1219; 1219 - 1024 = 195 = C3.
REPLY_ADDRESS = bytes.fromhex(f"{HEADER} 93 06 AB 89 67 45 33 33 C3 16")

# The public worked example, meter 000000000161 (address bytes 61 01 00 00 00 00); its checksums check out:
# 68+61+01+68+11+04+33+33+34+33 = 0x214 → 14; reply 0.26 kWh: ...+91+08+33+33+34+33+59+33+33+33 = 0x38A → 8A;
# phase A voltage 100.1 V: ...+91+06+33+34+34+35+34+43 = 0x310 → 10.
WORKED_READ = bytes.fromhex("FE FE FE FE 68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16")
WORKED_ENERGY = bytes.fromhex("68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16")
WORKED_VOLTAGE = bytes.fromhex("68 61 01 00 00 00 00 68 91 06 33 34 34 35 34 43 10 16")


def test_requests_are_built_as_the_standard_lays_them_out() -> None:
    assert frame.address_bytes(METER) == bytes.fromhex("78 56 34 12 00 00")
    assert frame.read_request(METER, 0x00010000, preamble=False) == READ_IMPORT
    assert frame.read_request(METER, 0x00010000) == b"\xfe\xfe\xfe\xfe" + READ_IMPORT
    assert frame.read_address_request(preamble=False) == READ_ADDRESS
    assert frame.read_request("000000000161", 0x00010000) == WORKED_READ


def test_replies_decode_to_their_values() -> None:
    reply = frame.decode(REPLY_IMPORT)
    assert reply == Frame(METER, 0x91, bytes.fromhex("00 00 01 00 67 45 23 01"))
    raw = frame.read_reply(reply, METER, 0x00010000)
    assert raw == bytes.fromhex("67 45 23 01")
    assert decode_value(raw, parse_layout("XXXXXX.XX"), signed=False) == 12345.67

    energy = frame.read_reply(frame.decode(WORKED_ENERGY), "000000000161", 0x00010000)
    assert energy is not None and decode_value(energy, parse_layout("XXXXXX.XX"), False) == 0.26
    voltage = frame.read_reply(frame.decode(WORKED_VOLTAGE), "000000000161", 0x02010100)
    assert (
        voltage is not None and decode_value(voltage, parse_layout(KNOWN["voltage_a"].layout), False) == 100.1
    )


def test_the_read_address_reply_gives_the_meters_address() -> None:
    assert frame.address_reply(frame.decode(REPLY_ADDRESS)) == METER
    assert frame.address_reply(frame.decode(REPLY_IMPORT)) is None


@pytest.mark.parametrize(
    ("raw", "layout", "signed", "value"),
    [
        ("67 45 23 01", "XXXXXX.XX", False, 12345.67),
        ("99 99 99 99", "XXXXXX.XX", False, 999999.99),
        ("56 34 92", "XX.XXXX", True, -12.3456),  # 12 34 56 with the sign bit: 92 34 56, LSB first
        ("56 34 12", "XX.XXXX", True, 12.3456),
        ("00 15 80", "XXX.XXX", True, -1.5),  # 001.500 A, sign bit set: 80 15 00
        ("00 85", "X.XXX", True, -0.5),  # 0.500 with the sign bit: 85 00
        ("20 09", "X.XXX", True, 0.92),
        ("00 50", "XX.XX", False, 50.0),
        ("01 10", "XXX.X", False, 100.1),
    ],
)  # fmt: skip
def test_bcd_values_least_significant_byte_first_with_the_sign_in_the_top_bit(
    raw: str, layout: str, signed: bool, value: float
) -> None:
    assert decode_value(bytes.fromhex(raw), parse_layout(layout), signed) == value


def test_the_sign_bit_is_a_digit_bit_for_unsigned_layouts() -> None:
    assert decode_value(bytes.fromhex("56 34 92"), parse_layout("XX.XXXX"), signed=False) == 92.3456


@pytest.mark.parametrize(
    ("raw", "message"),
    [("FF FF", "not BCD: FF FF"), ("12 34 56", "3 value bytes where layout XXX.X has 2")],
)
def test_values_that_are_not_bcd_or_the_wrong_length_are_refused(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_value(bytes.fromhex(raw), parse_layout("XXX.X"), signed=False)


@pytest.mark.parametrize("text", ["XXXXXX.X", "XX.XX.XX", "", "X", "NN.NN"])
def test_layouts_are_the_standards_notation(text: str) -> None:
    with pytest.raises(ValueError, match="is not a layout"):
        parse_layout(text)


def test_preamble_and_noise_before_a_reply_are_skipped() -> None:
    # Wake-up bytes, a stray 68 that starts no frame, and junk: the reply behind them still reads.
    noisy = bytes.fromhex("FE FE FE FE 00 68 12 FF 07") + REPLY_IMPORT
    assert frame.decode(noisy).data[4:] == bytes.fromhex("67 45 23 01")


def test_a_reply_arriving_in_pieces_is_taken_when_whole() -> None:
    buffer = bytearray()
    for i, byte in enumerate(b"\xfe\xfe" + REPLY_IMPORT + REPLY_NO_DATA):
        buffer.append(byte)
        found = frame.take_frame(buffer)
        if i == 1 + len(REPLY_IMPORT):
            assert found is not None and found.control == 0x91
        elif i == 1 + len(REPLY_IMPORT) + len(REPLY_NO_DATA):
            assert found is not None and found.control == 0xD1
        else:
            assert found is None
    assert buffer == bytearray()


def test_a_checksum_error_is_rejected() -> None:
    garbled = bytearray(REPLY_IMPORT)
    garbled[14] ^= 0x01  # one bit of the value flipped on the line
    with pytest.raises(FrameError, match="checksum error"):
        frame.decode(bytes(garbled))


def test_an_abnormal_reply_maps_its_error_word() -> None:
    with pytest.raises(AbnormalReply) as err:
        frame.read_reply(frame.decode(REPLY_NO_DATA), METER, 0x00010000)
    assert err.value.no_data and err.value.code == 0x02
    assert str(err.value) == "abnormal reply, error word 0x02: no requested data"
    unauthorised = AbnormalReply(0x04)
    assert not unauthorised.no_data and "password error or not authorised" in str(unauthorised)


def test_frames_that_do_not_answer_the_request_are_skipped() -> None:
    reply = frame.decode(REPLY_IMPORT)
    assert frame.read_reply(frame.decode(READ_IMPORT), METER, 0x00010000) is None  # the request's echo
    assert frame.read_reply(reply, "000012345679", 0x00010000) is None  # another meter
    assert frame.read_reply(reply, METER, 0x00020000) is None  # a late reply to another identifier
    assert frame.read_reply(reply, frame.WILDCARD, 0x00010000) == bytes.fromhex("67 45 23 01")
