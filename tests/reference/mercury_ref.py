"""Slow, obvious pure-Python Mercury 230/234 answer decoder: the oracle for the differential
tests of meterpoll.ext._mercury.  Written from the byte rules (shared/protocols/README.md 2 and
6.2), independently of the native layout code; plus answer *builders* used by the round-trip
tests.

``decode(frame, req)`` with ``req`` = (address, code, p1, p2[, aux]) or None returns
``(status, code, offset, readings)``; readings are tuples (obis_tuple, ts_ms or None, value,
unit, quality); ``None`` as ts means "the frame's receive time".
"""
from __future__ import annotations

import calendar

OK, CHECKSUM, TRUNCATED, BAD_LENGTH, BAD_ADDRESS, PROTOCOL_EXCEPTION = 0, 1, 2, 3, 4, 5
UNSUPPORTED, BAD_VALUE, MISMATCH, NO_DATA = 6, 8, 10, 12

WH, VARH, W, VAR, VA, V, A, HZ, DEG, PCT, CEL, SEC, CNT = 30, 32, 27, 29, 28, 35, 33, 44, 8, 56, 9, 7, 255

JOURNALS = {1, 2, 3, 4, 5, 6, 7, 9, 10, 0x12, 0x17, 0x18, 0x19, 0x1A} | set(range(0x80, 0x88))


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body: bytes) -> bytes:
    return body + crc16_modbus(body).to_bytes(2, "little")


def _bcd(b: int) -> int | None:
    hi, lo = b >> 4, b & 15
    if hi > 9 or lo > 9:
        return None
    return hi * 10 + lo


def _civil_ms(y, mo, d, h, mi, s) -> int | None:
    import datetime
    try:
        t = datetime.datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None
    return calendar.timegm(t.timetuple()) * 1000


def answer_layout(req):
    """Describe the answer to request (address, code, p1, p2[, aux]): a dict, or None if
    unsupported.

    keys: kind ('status','energy','aux','time','journal','serial','version','profile'), size
    (data bytes), and for energy/aux a list of value specs (obis, decoder, scale, unit, sign)."""
    _addr, code, p1, p2 = req[:4]
    aux = req[4] if len(req) > 4 else 0
    if code == 6:
        memory, kind = p1 & 15, (p1 >> 4) & 7
        if memory == 3 and kind == 0 and p2 == 15 and aux:
            return {"kind": "profile", "size": 15, "constant": aux}
        return None
    if code in (0, 1, 2):
        return {"kind": "status", "size": 1}
    if code == 4:
        if p1 == 0:
            return {"kind": "time", "size": 8}
        if p1 in JOURNALS and p2 <= 9:
            return {"kind": "journal", "size": 12, "journal": p1}
        return None
    if code in (5, 0x15):
        array, month, tariff = p1 >> 4, p1 & 15, p2
        if tariff > 4:
            return None
        if array in (3, 11):
            if not 1 <= month <= 12:
                return None
        elif month:
            return None
        if array in (0, 6):
            d, f = 8, 255
        elif array in (1, 2, 3, 4, 5):
            d, f = 9, p1
        elif array in (9, 10, 11, 12, 13):
            d, f = 8, p1
        else:
            return None
        if array == 6:
            if code != 5:
                return None
            cs = [21, 41, 61]
        else:
            cs = [1, 2, 3, 4] if code == 5 else [5, 6, 7, 8]
        vals = [((1, 0, c, d, tariff, f), "e32", 1.0, WH if c in (1, 2, 21, 41, 61) else VARH, None) for c in cs]
        return {"kind": "energy", "size": 4 * len(vals), "values": vals}
    if code != 8:
        return None
    if p1 == 0:
        return {"kind": "serial", "size": 7}
    if p1 == 3:
        return {"kind": "version", "size": 3}
    if p1 not in (0x11, 0x14, 0x16):
        return None
    q, sub = p2 >> 4, p2 & 15
    single = p1 == 0x11

    def aux(vals):
        size = sum(4 if dec == "p32" else (2 if dec in ("u16le", "s16be") else 3) for _, dec, _, _, _ in vals)
        return {"kind": "aux", "size": size, "values": vals}

    if q in (0, 3):
        if q == 0:
            kind = sub >> 2
            if kind == 3:
                return None
            cs, scale, unit, sign = [([1, 21, 41, 61], 0.01, W, "active"), ([3, 23, 43, 63], 0.01, VAR, "reactive"),
                                     ([9, 29, 49, 69], 0.01, VA, None)][kind]
        else:
            if sub > 3:
                return None
            cs, scale, unit, sign = [13, 33, 53, 73], 0.001, CNT, "active"
        phase = sub & 3
        if single:
            return aux([((1, 0, cs[phase], 7, 0, 255), "u24", scale, unit, sign)])
        if phase > 1:
            return None
        dec = "p32" if (p1 == 0x14 and q == 0) else "u24"
        return aux([((1, 0, c, 7, 0, 255), dec, scale, unit, sign) for c in cs])
    if p1 == 0x14:
        if q == 15 and sub <= 4:
            vals = [((1, 0, c, 8, sub, 240), "e32", 1.0, WH if c < 3 else VARH, None) for c in (1, 2, 3, 4)]
            return {"kind": "energy", "size": 16, "values": vals}
        return None
    if q in (1, 2, 5, 8):
        if single:
            if not 1 <= sub <= 3:
                return None
            phases = [sub]
        else:
            if sub != 1:
                return None
            phases = [1, 2, 3]
        vals = []
        for ph in phases:
            if q == 1:
                vals.append(((1, 0, [32, 52, 72][ph - 1], 7, 0, 255), "u24", 0.01, V, None))
            elif q == 2:
                vals.append(((1, 0, [31, 51, 71][ph - 1], 7, 0, 255), "u24", 0.001, A, None))
            elif q == 5:
                vals.append(((1, 0, 81, 7, {1: 1, 2: 2, 3: 12}[ph], 255), "u24", 0.01, DEG, None))
            else:
                vals.append(((1, 0, 128, 7, ph, 255), "u24", 0.01, V, None))
        return aux(vals)
    if not single:
        return None
    if q == 4 and sub == 0:
        return aux([((1, 0, 14, 7, 0, 255), "u24", 0.01, HZ, None)])
    if q == 6 and 1 <= sub <= 3:
        return aux([((1, 0, [32, 52, 72][sub - 1], 7, 124, 255), "u16le", 0.01, PCT, None)])
    if q == 7 and sub == 0:
        return aux([((0, 0, 96, 9, 0, 255), "s16be", 1.0, CEL, None)])
    return None


def decode(frame: bytes, req):
    """(status, code, offset, readings) for one answer; see the module docstring."""
    frame = bytes(frame)
    n = len(frame)
    if n < 4:
        return TRUNCATED, 0, n, []
    if crc16_modbus(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
        return CHECKSUM, 0, n - 2, []
    if req is not None and req[0] != 0 and frame[0] != req[0]:
        return BAD_ADDRESS, 0, 0, []
    data = frame[1:-2]
    lay = answer_layout(req) if req is not None else None
    if len(data) == 1 and not (lay is not None and lay["size"] == 1):
        code = data[0] & 15
        if code:
            return PROTOCOL_EXCEPTION, code, 1, []
        if req is None:
            return NO_DATA, 0, -1, []
        return MISMATCH, 0, 1, []
    if lay is None:
        return UNSUPPORTED, 0, 1, []
    if len(data) < lay["size"]:
        return TRUNCATED, 0, n - 2, []
    if len(data) > lay["size"]:
        return BAD_LENGTH, 0, 1 + lay["size"], []
    kind = lay["kind"]
    out = []
    if kind == "status":
        code = data[0] & 15
        return (PROTOCOL_EXCEPTION, code, 1, []) if code else (NO_DATA, 0, -1, [])
    if kind in ("energy", "aux"):
        pos = 0
        for obis, dec, scale, unit, sign in lay["values"]:
            if dec == "e32":
                b = data[pos:pos + 4]
                pos += 4
                if b == b"\xff\xff\xff\xff":
                    continue
                out.append((obis, None, float(int.from_bytes(bytes([b[1], b[0], b[3], b[2]]), "big")), unit, 0))
                continue
            if dec == "u24":
                b = data[pos:pos + 3]
                pos += 3
                dirs = b[0]
                raw = int.from_bytes(bytes([b[0] & 0x3F, b[2], b[1]]), "big")
            elif dec == "p32":
                b = data[pos:pos + 4]
                pos += 4
                dirs = b[1]
                raw = int.from_bytes(bytes([b[1] & 0x3F, b[0], b[3], b[2]]), "big")
            elif dec == "u16le":
                dirs = 0
                raw = int.from_bytes(data[pos:pos + 2], "little")
                pos += 2
            else:
                dirs = 0
                raw = int.from_bytes(data[pos:pos + 2], "big", signed=True)
                pos += 2
            value = raw * scale
            if raw and ((sign == "active" and dirs & 0x80) or (sign == "reactive" and dirs & 0x40)):
                value = -value
            out.append((obis, None, value, unit, 0))
    elif kind == "time":
        f = [_bcd(b) for b in data[:7]]
        for i, x in enumerate(f):
            if x is None or (i == 3 and x > 7):
                return BAD_VALUE, 0, 1 + i, []
        if data[7] > 1:
            return BAD_VALUE, 0, 8, []
        s, mi, h, _wd, d, mo, y = f
        ms = _civil_ms(2000 + y, mo, d, h, mi, s) if s <= 59 else None
        if ms is None:
            return BAD_VALUE, 0, 1, []
        out.append(((0, 0, 1, 0, 0, 255), ms, ms / 1000.0, SEC, 0))
        out.append(((0, 0, 96, 50, 0, 255), ms, float(data[7]), CNT, 0))
    elif kind == "journal":
        for i in range(2):
            st = data[6 * i:6 * i + 6]
            if st == bytes(6):
                continue
            f = [_bcd(b) for b in st]
            ms = None
            if None not in f and f[0] <= 59:
                s, mi, h, d, mo, y = f
                ms = _civil_ms(2000 + y, mo, d, h, mi, s)
            if ms is None:
                return BAD_VALUE, 0, 1 + 6 * i, []
            out.append(((0, 0, 96, 11, lay["journal"], 255), ms, float(i + 1), CNT, 0))
    elif kind == "profile":
        f = [_bcd(b) for b in data[1:6]]
        for i, x in enumerate(f):
            if x is None:
                return BAD_VALUE, 0, 2 + i, []
        h, mi, d, mo, y = f
        ms = _civil_ms(2000 + y, mo, d, h, mi, 0)
        if ms is None:
            return BAD_VALUE, 0, 2, []
        period = data[6]
        if period == 0:
            return BAD_VALUE, 0, 7, []
        quality = 6 if data[0] & 2 else 0
        for i in range(4):
            raw = int.from_bytes(data[7 + 2 * i:9 + 2 * i], "little")
            if raw == 0xFFFF:
                continue
            # kW = N * (60 / T) / (2 * A)  ->  W
            out.append(((1, 0, 1 + i, 5, 0, 255), ms, (raw * 30000.0) / (float(period) * float(lay["constant"])),
                        W if i < 2 else VAR, quality))
    elif kind in ("serial", "version"):
        k = 4 if kind == "serial" else 3
        v = 0
        for i in range(k):
            if data[i] > 99:
                return BAD_VALUE, 0, 1 + i, []
            v = v * 100 + data[i]
        out.append(((0, 0, 96, 1, 0, 255) if kind == "serial" else (1, 0, 0, 2, 0, 255), None, float(v), CNT, 0))
    return (OK if out else NO_DATA), 0, -1, out


# ----- answer builders (the inverse of the decoder; used by round-trip tests) -----

def energy_bytes(value: int | None) -> bytes:
    """4 bytes [2][1][4][3] of a 32-bit energy; None -> FF FF FF FF (not measured)."""
    if value is None:
        return b"\xff" * 4
    b = value.to_bytes(4, "big")
    return bytes([b[1], b[0], b[3], b[2]])


def u24_bytes(raw: int, dirs: int = 0) -> bytes:
    """3 bytes [1][3][2] of a 22-bit magnitude with direction bits (0x80 active, 0x40 reactive)."""
    b = raw.to_bytes(3, "big")
    return bytes([b[0] | dirs, b[2], b[1]])


def p32_bytes(raw: int, dirs: int = 0) -> bytes:
    """4 bytes [2][1][4][3] of a 30-bit power magnitude with the direction bits in byte [1]."""
    b = raw.to_bytes(4, "big")
    return bytes([b[1], b[0] | dirs, b[3], b[2]])


def answer(address: int, data: bytes) -> bytes:
    return with_crc(bytes([address]) + data)


def bcd(v: int) -> int:
    return (v // 10) << 4 | (v % 10)
