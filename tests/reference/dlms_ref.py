"""Slow, obvious pure-Python DLMS decoder: the oracle for the native one.

Same rules as ``meterpoll.ext._dlms`` (see its module doc), written independently: its own
bit-by-bit CRC-16/X-25, its own A-XDR walk.  ``decode_item(data, req)`` returns
``(status, code, readings)`` with readings as (meter, obis, ts_ms, value, unit, quality).
Error offsets are not compared (the reference reports only statuses).
"""
from __future__ import annotations

import datetime as _dt
import struct

OK, CHECKSUM, TRUNCATED, BAD_LENGTH, BAD_ADDRESS, PROTOCOL_EXCEPTION, UNSUPPORTED = 0, 1, 2, 3, 4, 5, 6
BAD_FRAMING, BAD_VALUE, TOO_DEEP, MISMATCH, OUT_OF_MEMORY, NO_DATA = 7, 8, 9, 10, 11, 12
MAX_DEPTH = 16
Q_OK, Q_CLOCK = 0, 7


class Fail(Exception):
    def __init__(self, status, code=0):
        super().__init__(status, code)
        self.status = status
        self.code = code


class NeedMore(Exception):
    pass


def _crc_table() -> list[int]:
    table = []
    for b in range(256):                 # the reflected polynomial 0x8408, bit by bit
        crc = b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_T = _crc_table()


def crc_x25(data: bytes) -> int:
    """CRC-16/X-25: init 0xFFFF, reflected, xorout 0xFFFF (check("123456789") = 0x906E)."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _T[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


assert crc_x25(b"123456789") == 0x906E


def parse_hdlc(buf: bytes, pos: int) -> dict:
    """Validate the HDLC frame at buf[pos:]; dict of fields or Fail."""
    b = buf[pos:]
    if not b:
        raise Fail(TRUNCATED)
    if b[0] != 0x7E:
        raise Fail(BAD_FRAMING)
    if len(b) < 3:
        raise Fail(TRUNCATED)
    fmt = (b[1] << 8) | b[2]
    if fmt >> 12 != 0xA:
        raise Fail(BAD_FRAMING)
    length = fmt & 0x7FF
    if length < 7:
        raise Fail(BAD_LENGTH)
    if len(b) < length + 2:
        raise Fail(TRUNCATED)
    if b[length + 1] != 0x7E:
        raise Fail(BAD_FRAMING)
    body = b[1:length + 1]          # format .. FCS
    fcs_at = len(body) - 2
    i = 2
    addrs = []
    for _ in range(2):
        raw = 0
        n = 0
        while True:
            if i >= fcs_at:
                raise Fail(BAD_FRAMING)
            raw = (raw << 8) | body[i]
            n += 1
            i += 1
            if body[i - 1] & 1:
                break
            if n == 4:
                raise Fail(BAD_ADDRESS)
        if n == 3:
            raise Fail(BAD_ADDRESS)
        addrs.append((raw, n))
    if i >= fcs_at:
        raise Fail(BAD_FRAMING)
    ctrl = body[i]
    i += 1
    info = None
    if i != fcs_at:
        if fcs_at - i < 2:
            raise Fail(BAD_LENGTH)
        if crc_x25(body[:i]) != body[i] | (body[i + 1] << 8):
            raise Fail(CHECKSUM)
        info = body[i + 2:fcs_at]
    if crc_x25(body[:fcs_at]) != body[fcs_at] | (body[fcs_at + 1] << 8):
        raise Fail(CHECKSUM)
    nxt = pos + length + 2
    if nxt < len(buf) and buf[nxt] != 0x7E:
        nxt -= 1
    return {"seg": (fmt >> 11) & 1, "dst": addrs[0][0], "dst_n": addrs[0][1], "src": addrs[1][0],
            "src_n": addrs[1][1], "ctrl": ctrl, "info": info, "next": nxt}


# ---- A-XDR --------------------------------------------------------------------------------

class Reader:
    def __init__(self, data: bytes):
        self.d = data
        self.i = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.i + n > len(self.d):
            raise Fail(TRUNCATED)
        out = self.d[self.i:self.i + n]
        self.i += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def length(self) -> int:
        b = self.u8()
        if b < 0x80:
            return b
        k = b & 0x7F
        if k == 0 or k > 4:
            raise Fail(BAD_LENGTH)
        return int.from_bytes(self.take(k), "big")

    def left(self) -> int:
        return len(self.d) - self.i


FIXED = {0x00: 0, 0x03: 1, 0x0D: 1, 0x0F: 1, 0x11: 1, 0x16: 1, 0x10: 2, 0x12: 2, 0x05: 4, 0x06: 4,
         0x17: 4, 0x14: 8, 0x15: 8, 0x18: 8, 0x19: 12, 0x1A: 5, 0x1B: 4}


def number(tag: int, raw: bytes):
    """float value of a numeric type, None for null, 'nan-type' marker for non-numbers."""
    if tag == 0x06:
        return float(struct.unpack(">I", raw)[0])
    if tag == 0x05:
        return float(struct.unpack(">i", raw)[0])
    if tag == 0x12:
        return float(struct.unpack(">H", raw)[0])
    if tag == 0x10:
        return float(struct.unpack(">h", raw)[0])
    if tag in (0x11, 0x16):
        return float(raw[0])
    if tag == 0x0F:
        return float(struct.unpack(">b", raw)[0])
    if tag == 0x03:
        return 1.0 if raw[0] else 0.0
    if tag == 0x14:
        return float(struct.unpack(">q", raw)[0])
    if tag == 0x15:
        return float(struct.unpack(">Q", raw)[0])
    if tag == 0x17:
        return float(struct.unpack(">f", raw)[0])
    if tag == 0x18:
        return struct.unpack(">d", raw)[0]
    if tag == 0x0D:
        hi, lo = raw[0] >> 4, raw[0] & 15
        if hi > 9 or lo > 9:
            raise Fail(BAD_VALUE)
        return float(hi * 10 + lo)
    raise AssertionError(tag)


NUMERIC = {0x03, 0x05, 0x06, 0x0D, 0x0F, 0x10, 0x11, 0x12, 0x14, 0x15, 0x16, 0x17, 0x18}


def skip(r: Reader, tag: int, depth: int) -> None:
    if tag in FIXED:
        r.take(FIXED[tag])
        return
    if tag in (0x01, 0x02):
        n = r.length()
        if depth >= MAX_DEPTH:
            raise Fail(TOO_DEEP)
        if n > r.left():
            raise Fail(TRUNCATED)
        for _ in range(n):
            skip(r, r.u8(), depth + 1)
        return
    if tag == 0x04:
        n = r.length()
        r.take((n + 7) // 8)
        return
    if tag in (0x09, 0x0A, 0x0C):
        r.take(r.length())
        return
    raise Fail(UNSUPPORTED)


def py_data(r: Reader, depth: int = 0):
    """A-XDR -> Python objects (same conventions as decode_data)."""
    tag = r.u8()
    if tag in (0x01, 0x02):
        n = r.length()
        if depth >= MAX_DEPTH:
            raise Fail(TOO_DEEP)
        if n > r.left():
            raise Fail(TRUNCATED)
        items = [py_data(r, depth + 1) for _ in range(n)]
        return items if tag == 0x01 else tuple(items)
    if tag == 0x00:
        return None
    if tag == 0x04:
        n = r.length()
        raw = r.take((n + 7) // 8)
        return "".join(format(x, "08b") for x in raw)[:n]
    if tag in (0x09, 0x0A, 0x0C):
        raw = r.take(r.length())
        if tag == 0x09:
            return raw
        if tag == 0x0A:
            return raw.decode("latin-1")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Fail(BAD_VALUE) from None
    if tag not in FIXED:
        raise Fail(UNSUPPORTED)
    raw = r.take(FIXED[tag])
    if tag == 0x03:
        return raw[0] != 0
    if tag in (0x05, 0x06, 0x0F, 0x10, 0x11, 0x12, 0x14, 0x15, 0x16):
        fmt = {0x05: ">i", 0x06: ">I", 0x0F: ">b", 0x10: ">h", 0x11: ">B", 0x12: ">H", 0x14: ">q",
               0x15: ">Q", 0x16: ">B"}[tag]
        return struct.unpack(fmt, raw)[0]
    if tag == 0x0D:
        return int(number(tag, raw))
    if tag == 0x17:
        return struct.unpack(">f", raw)[0]
    if tag == 0x18:
        return struct.unpack(">d", raw)[0]
    if tag == 0x19:
        dev = struct.unpack(">h", raw[9:11])[0]
        return ("datetime", (raw[0] << 8) | raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[8],
                None if dev == -32768 else dev, raw[11])
    if tag == 0x1A:
        return ("date", (raw[0] << 8) | raw[1], raw[2], raw[3], raw[4])
    return ("time", raw[0], raw[1], raw[2], raw[3])


def decode_data(data: bytes):
    r = Reader(bytes(data))
    obj = py_data(r)
    if r.left():
        raise Fail(BAD_LENGTH)
    return obj


def datetime_ms(raw: bytes, dev_default: int = 0):
    """(state, ms, status): state 0 ok, 1 not specified, 2 impossible."""
    year = (raw[0] << 8) | raw[1]
    mon, day, hh, mi, ss, hs = raw[2], raw[3], raw[5], raw[6], raw[7], raw[8]
    status = raw[11]
    if year == 0xFFFF or mon in (0xFD, 0xFE, 0xFF) or day >= 0xE0 or hh == 0xFF or mi == 0xFF:
        return 1, None, status
    ss = 0 if ss == 0xFF else ss
    hs = 0 if hs == 0xFF else hs
    if hs > 99 or not 1 <= year <= 9999 or not 1 <= mon <= 12 or hh > 23 or mi > 59 or ss > 60 or day < 1:
        return 2, None, status
    try:
        base = _dt.datetime(year, mon, day, tzinfo=_dt.timezone.utc)
    except ValueError:
        return 2, None, status
    dev = struct.unpack(">h", raw[9:11])[0]
    if dev == -32768:
        dev = dev_default
    elif not -840 <= dev <= 840:
        return 2, None, status
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    days = (base - epoch).days
    ms = ((days * 86400 + hh * 3600 + mi * 60 + ss) * 1000) + hs * 10 + dev * 60000
    return 0, ms, status


def scale(v: float, s: int) -> float:
    return v * float(10 ** s) if s >= 0 else v / float(10 ** -s)


# ---- readings -------------------------------------------------------------------------------

def data_readings(data: bytes, req: dict) -> list:
    r = Reader(data)
    tag = r.u8()
    out = []
    cols = req.get("columns")
    meter, now = req.get("meter", 0), req["now_ms"]
    if not cols:
        if tag == 0x00:
            if r.left():
                raise Fail(BAD_LENGTH)
            raise Fail(NO_DATA)
        if tag not in NUMERIC:
            raise Fail(MISMATCH)
        v = number(tag, r.take(FIXED[tag]))
        if r.left():
            raise Fail(BAD_LENGTH)
        return [(meter, req.get("obis", 0), now, scale(v, req.get("scaler", 0)), req.get("unit", 255), Q_OK)]
    if tag != 0x01:
        raise Fail(MISMATCH)
    rows = r.length()
    if rows * (2 + len(cols)) > r.left():         # a row needs 02 <count> and 1 byte per column
        raise Fail(TRUNCATED)
    period = req.get("period_ms", 0)
    dev_default = req.get("dev_default", 0)
    prev = None
    for _ in range(rows):
        if r.u8() != 0x02:
            raise Fail(MISMATCH)
        if r.length() != len(cols):
            raise Fail(MISMATCH)
        row = []
        ts, q, have_ts = now, Q_CLOCK, False
        for (ob, sc, unit, kind) in cols:
            t = r.u8()
            if kind == "value":
                if t == 0x00:
                    continue
                if t not in NUMERIC:
                    raise Fail(MISMATCH)
                row.append((ob, scale(number(t, r.take(FIXED[t])), sc), unit))
            elif kind == "clock":
                have_ts = True
                if t == 0x00:
                    state, ms, cs = 1, None, 0
                elif t == 0x09:
                    if r.left() < 1:
                        raise Fail(TRUNCATED)
                    if r.d[r.i] != 12:
                        raise Fail(BAD_VALUE)
                    if r.left() < 13:
                        raise Fail(TRUNCATED)
                    r.u8()
                    state, ms, cs = datetime_ms(r.take(12), dev_default)
                elif t == 0x19:
                    state, ms, cs = datetime_ms(r.take(12), dev_default)
                else:
                    raise Fail(MISMATCH)
                if state == 0 and (cs == 0xFF or cs & 0x09 == 0):
                    ts = ms
                    q = Q_CLOCK if (cs != 0xFF and cs & 0x02) else Q_OK
                elif state == 1 and prev is not None and period > 0:
                    ts = prev[0] + period
                    q = prev[1]
                else:
                    ts, q = now, Q_CLOCK
            else:
                skip(r, t, 1)
        if have_ts:
            prev = (ts, q) if (q == Q_OK or ts != now) else None
        else:
            q = Q_OK
        out.extend((meter, ob, ts, v, unit, q) for (ob, v, unit) in row)
    if r.left():
        raise Fail(BAD_LENGTH)
    return out


def clock_quality(state: int, cs: int):
    if state != 0 or (cs != 0xFF and cs & 0x09):
        return None
    return Q_CLOCK if (cs != 0xFF and cs & 0x02) else Q_OK


def notification_readings(a: bytes, req: dict) -> list:
    """DataNotification 0F | long invoke id (4) | date-time (00 | 0C+12 | 09 0C+12) | body."""
    if len(a) < 6:
        raise Fail(TRUNCATED)
    pos = 5
    if a[5] == 0x09 and len(a) >= 7 and a[6] == 12:
        pos = 6
    ts, q = None, Q_OK
    if a[pos] == 0:
        pos += 1
    elif a[pos] == 12:
        if len(a) < pos + 13:
            raise Fail(TRUNCATED)
        state, ms, cs = datetime_ms(a[pos + 1:pos + 13], req.get("dev_default", 0))
        cq = clock_quality(state, cs)
        ts, q = (ms, cq) if cq is not None else (req["now_ms"], Q_CLOCK)
        pos += 13
    else:
        raise Fail(BAD_VALUE)
    return push_readings(a[pos:], req, ts, q)


def push_readings(data: bytes, req: dict, ts, q) -> list:
    r = Reader(data)
    d = r.d
    tag = r.u8()
    if tag not in (1, 2):
        raise Fail(UNSUPPORTED)
    cnt = r.length()
    if cnt > r.left():
        raise Fail(TRUNCATED)
    out = []
    clock_ts, clock_q, clock_seen = None, Q_OK, False
    for _ in range(cnt):
        t = r.u8()
        i = r.i
        if t != 2 or r.left() < 9 or d[i] not in (2, 3) or d[i + 1] != 9 or d[i + 2] != 6:
            skip(r, t, 1)
            continue
        m, ob = d[i], int.from_bytes(d[i + 3:i + 9], "big")
        r.i += 9
        t2 = r.u8()
        val = None
        if t2 == 9 and r.left() >= 13 and d[r.i] == 12 and ob == 0x0000010000FF:
            state, ms, cs = datetime_ms(d[r.i + 1:r.i + 13], req.get("dev_default", 0))
            r.i += 13
            clock_seen = True
            cq = clock_quality(state, cs)
            if cq is not None:
                clock_ts, clock_q = ms, cq
        elif t2 in NUMERIC:
            val = number(t2, r.take(FIXED[t2]))
        elif t2 != 0:
            skip(r, t2, 2)
        sc, unit = 0, 255
        if m == 3:
            j = r.i
            if r.left() >= 6 and d[j] == 2 and d[j + 1] == 2 and d[j + 2] == 0x0F and d[j + 4] == 0x16:
                sc, unit = struct.unpack(">b", d[j + 3:j + 4])[0], d[j + 5]
                r.i += 6
            else:
                skip(r, r.u8(), 2)
        if val is not None:
            out.append((ob, scale(val, sc), unit))
    if r.left():
        raise Fail(BAD_LENGTH)
    if ts is None:
        if clock_ts is not None:
            ts, q = clock_ts, clock_q
        else:
            ts, q = req["now_ms"], (Q_CLOCK if clock_seen else Q_OK)
    if not out:
        raise Fail(NO_DATA)
    return [(req.get("meter", 0), ob, ts, v, unit, q) for (ob, v, unit) in out]


def apdu_readings(a: bytes, req: dict, st: dict) -> list:
    if not a:
        raise Fail(TRUNCATED)
    if a[0] == 0x0F:
        return notification_readings(a, req)
    if a[0] == 0xC4:
        if len(a) < 4:
            raise Fail(TRUNCATED)
        if req.get("invoke") is not None and (a[2] & 15) != req["invoke"]:
            raise Fail(MISMATCH)
        if a[1] == 0x01:
            if a[3] == 0:
                return data_readings(a[4:], req)
            if a[3] == 1:
                if len(a) < 5:
                    raise Fail(TRUNCATED)
                raise Fail(PROTOCOL_EXCEPTION, a[4])
            raise Fail(BAD_VALUE)
        if a[1] == 0x02:
            if len(a) < 9:
                raise Fail(TRUNCATED)
            last, blk, choice = a[3], int.from_bytes(a[4:8], "big"), a[8]
            if st["blk"] is not None and blk != st["blk"] + 1:
                raise Fail(MISMATCH)
            st["blk"] = blk
            if choice == 1:
                if len(a) < 10:
                    raise Fail(TRUNCATED)
                raise Fail(PROTOCOL_EXCEPTION, a[9])
            if choice != 0:
                raise Fail(BAD_VALUE)
            r = Reader(a)
            r.i = 9
            n = r.length()
            if n > r.left():
                raise Fail(TRUNCATED)
            if n < r.left():
                raise Fail(BAD_LENGTH)
            st["data"] += a[r.i:]
            if not last:
                raise NeedMore()
            return data_readings(bytes(st["data"]), req)
        raise Fail(UNSUPPORTED)
    if a[0] == 0xD8:
        if len(a) < 3:
            raise Fail(TRUNCATED)
        raise Fail(PROTOCOL_EXCEPTION, (a[1] << 8) | a[2])
    if a[0] == 0x0E:
        if len(a) < 4:
            raise Fail(TRUNCATED)
        raise Fail(PROTOCOL_EXCEPTION, (a[2] << 8) | a[3])
    raise Fail(UNSUPPORTED)


def decode_item(data: bytes, req: dict) -> tuple[int, int, list]:
    """req keys: obis, scaler, unit, columns [(obis, scaler, unit, kind)], period_ms, now_ms,
    meter, invoke, exp_dst, exp_src, dev_default, framing ('hdlc'/'wrapper'/'apdu'/None)."""
    data = bytes(data)
    try:
        return OK, 0, _item(data, req)
    except Fail as e:
        return e.status, e.code, []


def _item(data: bytes, req: dict) -> list:
    st = {"blk": None, "data": bytearray()}
    if not data:
        raise Fail(TRUNCATED)
    framing = req.get("framing")
    if framing is None:
        framing = "hdlc" if data[0] == 0x7E else ("wrapper" if data[:2] == b"\x00\x01" else "apdu")
    if framing == "apdu":
        try:
            return apdu_readings(data, req, st)
        except NeedMore:
            raise Fail(TRUNCATED) from None
    pos = 0
    if framing == "wrapper":
        while True:
            if len(data) - pos < 8:
                raise Fail(TRUNCATED)
            if data[pos:pos + 2] != b"\x00\x01":
                raise Fail(BAD_FRAMING)
            ln = int.from_bytes(data[pos + 6:pos + 8], "big")
            if len(data) - pos - 8 < ln:
                raise Fail(TRUNCATED)
            apdu = data[pos + 8:pos + 8 + ln]
            pos += 8 + ln
            try:
                out = apdu_readings(apdu, req, st)
            except NeedMore:
                if pos >= len(data):
                    raise Fail(TRUNCATED) from None
                continue
            if pos != len(data):
                raise Fail(BAD_LENGTH)
            return out
    seg = None
    while True:
        f = parse_hdlc(data, pos)
        if req.get("exp_dst") and f["dst"] != req["exp_dst"]:
            raise Fail(BAD_ADDRESS)
        if req.get("exp_src") and f["src"] != req["exp_src"]:
            raise Fail(BAD_ADDRESS)
        c = f["ctrl"]
        if c & 1 == 0 or c & 0xEF == 0x03:
            info = f["info"]
            if info is None:
                raise Fail(NO_DATA)
            if seg is None:
                if len(info) < 3 or info[0] != 0xE6 or info[1] not in (0xE6, 0xE7) or info[2] != 0:
                    raise Fail(BAD_FRAMING)
                info = info[3:]
                seg = bytearray()
            seg += info
            pos = f["next"]
            if f["seg"]:
                if pos >= len(data):
                    raise Fail(TRUNCATED)
                continue
            apdu, seg = bytes(seg), None
            try:
                out = apdu_readings(apdu, req, st)
            except NeedMore:
                if pos >= len(data):
                    raise Fail(TRUNCATED) from None
                continue
            if pos < len(data):
                raise Fail(BAD_LENGTH)
            return out
        if c & 0xEF in (0x0F, 0x87):
            raise Fail(PROTOCOL_EXCEPTION, c)
        if c & 3 == 1 or c & 0xEF == 0x63:
            raise Fail(NO_DATA)
        raise Fail(UNSUPPORTED)


# ---- encoders used by the tests (frames the way a meter sends them) -------------------------

def hdlc_frame(dst: bytes, src: bytes, ctrl: int, info: bytes | None, seg: bool = False) -> bytes:
    """One HDLC frame; dst/src are the wire address bytes."""
    hdr_len = 2 + len(dst) + len(src) + 1
    length = hdr_len + 2 + (len(info) + 2 if info is not None else 0)
    fmt = 0xA000 | (0x0800 if seg else 0) | length
    body = fmt.to_bytes(2, "big") + dst + src + bytes([ctrl])
    if info is not None:
        body += crc_x25(body).to_bytes(2, "little") + info
    body += crc_x25(body).to_bytes(2, "little")
    return b"\x7E" + body + b"\x7E"


def axdr_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    if n < 0x10000:
        return b"\x82" + n.to_bytes(2, "big")
    return b"\x84" + n.to_bytes(4, "big")


def i_control(k: int) -> int:
    """Control byte of the meter's k-th I-frame in answer to k+1 client I-frames/RRs:
    N(R) = k+1, P/F = 1, N(S) = k (0x30, 0x52, 0x74 ...)."""
    return (((k + 1) % 8) << 5) | 0x10 | ((k % 8) << 1)


def hdlc_response(apdu: bytes, *, dst=b"\x21", src=b"\x02\x23", max_info=0, first=0) -> bytes:
    """APDU in I-frames with the LLC header; segmented when longer than max_info (0 = never).
    Frame k gets control i_control(first + k)."""
    info = b"\xE6\xE7\x00" + apdu
    if not max_info or len(info) <= max_info:
        return hdlc_frame(dst, src, i_control(first), info)
    out = b""
    parts = [info[i:i + max_info] for i in range(0, len(info), max_info)]
    for k, part in enumerate(parts):
        out += hdlc_frame(dst, src, i_control(first + k), part, seg=k < len(parts) - 1)
    return out


_PACK = {0x05: ">i", 0x06: ">I", 0x0F: ">b", 0x10: ">h", 0x11: ">B", 0x12: ">H", 0x14: ">q",
         0x15: ">Q", 0x16: ">B", 0x17: ">f", 0x18: ">d"}


def enc(tag: int, value=None) -> bytes:
    """A-XDR encoding of one value: numeric tags take a number, 0x09/0x0A/0x0C bytes/str,
    0x01/0x02 a list of already encoded elements, 0x03 bool, 0x00 nothing, 0x19 12 bytes."""
    if tag == 0x00:
        return b"\x00"
    if tag in _PACK:
        return bytes([tag]) + struct.pack(_PACK[tag], value)
    if tag == 0x03:
        return bytes([tag, 1 if value else 0])
    if tag == 0x0D:
        return bytes([tag, ((value // 10) << 4) | (value % 10)])
    if tag in (0x09, 0x0A, 0x0C):
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return bytes([tag]) + axdr_len(len(raw)) + raw
    if tag in (0x01, 0x02):
        return bytes([tag]) + axdr_len(len(value)) + b"".join(value)
    if tag == 0x19:
        return b"\x19" + bytes(value)
    raise ValueError(tag)


def datetime_bytes(y, mo, d, h, mi, s=0, hs=0, dev=-32768, status=0, wd=0xFF) -> bytes:
    return struct.pack(">HBBBBBBBhB", y, mo, d, wd, h, mi, s, hs, dev, status)


def get_response(data: bytes, invoke: int = 1) -> bytes:
    return bytes([0xC4, 0x01, 0xC0 | invoke, 0x00]) + data


def block_responses(data: bytes, block_size: int, invoke: int = 1, first_block: int = 1) -> list[bytes]:
    """GET.response-with-datablock APDUs carrying data in blocks of block_size bytes."""
    parts = [data[i:i + block_size] for i in range(0, len(data), block_size)] or [b""]
    out = []
    for k, part in enumerate(parts):
        last = 1 if k == len(parts) - 1 else 0
        out.append(bytes([0xC4, 0x02, 0xC0 | invoke, last]) + (first_block + k).to_bytes(4, "big")
                   + b"\x00" + axdr_len(len(part)) + part)
    return out


def wrapper(apdu: bytes, src: int = 1, dst: int = 16) -> bytes:
    return b"\x00\x01" + src.to_bytes(2, "big") + dst.to_bytes(2, "big") + len(apdu).to_bytes(2, "big") + apdu
