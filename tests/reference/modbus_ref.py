"""Slow, obvious pure-Python Modbus response decoder: the oracle for the native batch decoder.

decode(frame, req, entries, mode) -> (status, code, offset, [(obis, value, unit, quality)])

``req`` is a dict(transaction=-1|tid, unit=None|u, function, start, count); ``entries`` a list
of dicts(name, address, function, type, word_order, scale, obis, unit) (any order: the result
is sorted by (function, address) like the native one, ties in the given order).
Statuses / qualities are the plain numbers of meterpoll.FrameStatus / Quality.
"""
from __future__ import annotations

import math
import struct

OK, CHECKSUM, TRUNCATED, BAD_LENGTH, BAD_ADDRESS, PROTOCOL_EXCEPTION = 0, 1, 2, 3, 4, 5
UNSUPPORTED, BAD_FRAMING, MISMATCH, NO_DATA = 6, 7, 10, 12
Q_OK, Q_METER_ERROR = 0, 6

WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2,
         "int64": 4, "uint64": 4, "float64": 4}
STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f",
          "int64": ">q", "uint64": ">Q", "float64": ">d"}


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def crc_ok(frame: bytes, length: int) -> bool:
    if length < 4:
        return False
    return crc16_modbus(frame[:length - 2]) == frame[length - 2] + 256 * frame[length - 1]


def register_value(regs: list[int], typ: str, word_order: str) -> float:
    """Value of a register group: words in the given order, each word big-endian."""
    words = list(regs) if word_order == "big" else list(reversed(regs))
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    return float(struct.unpack(STRUCT[typ], raw)[0])


def is_tcp(frame: bytes, mode: str) -> bool:
    if mode == "tcp":
        return True
    if mode == "rtu":
        return False
    n = len(frame)
    return (n >= 8 and frame[2:4] == b"\0\0" and int.from_bytes(frame[4:6], "big") == n - 6
            and not crc_ok(frame, n))


def decode(frame: bytes, req: dict, entries: list[dict], mode: str = "rtu"):
    frame = bytes(frame)
    n = len(frame)
    tcp = is_tcp(frame, mode)
    if tcp:
        if n < 8:
            return TRUNCATED, 0, n, []
        if frame[2] or frame[3]:
            return BAD_FRAMING, 0, 2, []
        total = 6 + int.from_bytes(frame[4:6], "big")
        if total < 8:
            return BAD_LENGTH, 0, 4, []
        if n < total:
            return TRUNCATED, 0, n, []
        if n > total:
            return BAD_LENGTH, 0, total, []
        if req["transaction"] >= 0 and int.from_bytes(frame[0:2], "big") != req["transaction"]:
            return MISMATCH, 0, 0, []
        unit, base, pdu = frame[6], 7, frame[7:]
    else:
        if n < 2:
            return TRUNCATED, 0, n, []
        fn = frame[1]
        if fn >= 0x80:
            total = 5
        elif fn in (3, 4):
            if n < 3:
                return TRUNCATED, 0, n, []
            total = 5 + frame[2]
        elif fn in (6, 8, 16):
            total = 8
        else:
            if n < 4:
                return TRUNCATED, 0, n, []
            total = n
        if n != total:
            if crc_ok(frame, n):
                return BAD_LENGTH, 0, (2 if fn in (3, 4) else 1), []
            if n < total:
                return TRUNCATED, 0, n, []
            if crc_ok(frame, total):
                return BAD_LENGTH, 0, total, []
            return CHECKSUM, 0, n - 2, []
        if not crc_ok(frame, total):
            return CHECKSUM, 0, total - 2, []
        unit, base, pdu = frame[0], 1, frame[1:total - 2]

    fn = pdu[0]
    if req["unit"] is not None and unit != req["unit"]:
        return BAD_ADDRESS, 0, (6 if tcp else 0), []
    if fn >= 0x80:
        if len(pdu) != 2:
            return BAD_LENGTH, 0, base, []
        if fn - 0x80 != req["function"]:
            return MISMATCH, 0, base, []
        return PROTOCOL_EXCEPTION, pdu[1], base + 1, []
    if fn in (3, 4) and (len(pdu) < 2 or len(pdu) != 2 + pdu[1]):
        return BAD_LENGTH, 0, (base + 1 if len(pdu) >= 2 else base), []
    if fn in (6, 8, 16) and len(pdu) != 5:
        return BAD_LENGTH, 0, base, []
    if fn != req["function"]:
        return MISMATCH, 0, base, []
    if fn in (6, 8, 16):
        if int.from_bytes(pdu[1:3], "big") != req["start"] or int.from_bytes(pdu[3:5], "big") != req["count"]:
            return MISMATCH, 0, base + 1, []
        return NO_DATA, 0, -1, []
    if fn not in (3, 4):
        return UNSUPPORTED, 0, base, []
    if pdu[1] != 2 * req["count"]:
        return MISMATCH, 0, base + 1, []
    regs = [int.from_bytes(pdu[2 + 2 * i:4 + 2 * i], "big") for i in range(req["count"])]
    out = []
    for e in sorted(entries, key=lambda e: (e["function"], e["address"])):
        w = WIDTH[e["type"]]
        if e["function"] != fn or e["address"] < req["start"] or e["address"] + w > req["start"] + req["count"]:
            continue
        i = e["address"] - req["start"]
        raw = register_value(regs[i:i + w], e["type"], e["word_order"])
        quality = Q_METER_ERROR if e["type"].startswith("float") and not math.isfinite(raw) else Q_OK
        out.append((e["obis"], raw * e["scale"], e["unit"], quality))
    if not out:
        return NO_DATA, 0, -1, []
    return OK, 0, -1, out
