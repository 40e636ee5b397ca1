"""Pure-Python reference decoder for IEC 62056-21 mode C answers and DSMR P1 telegrams.

Slow and obvious; the oracle for the native decoder (ext/_iec62056_21.pyx).  The grammar and the
mapping rules are the ones documented in bindings/iec62056_21.py.

``decode(frame, bcc="xor", rx=0, meter=0, utc_offset_min=0)`` -> ``(readings, status, code,
offset)`` where readings is a list of ``(meter, obis, ts_ms, value, unit, quality)`` (empty
unless status is OK = 0).
"""
from __future__ import annotations

import datetime

OK, CHECKSUM, TRUNCATED, BAD_LENGTH, PROTOCOL_EXCEPTION, UNSUPPORTED, BAD_FRAMING = 0, 1, 2, 3, 5, 6, 7
OUT_OF_MEMORY, NO_DATA = 11, 12
Q_OK, Q_CLOCK_INVALID = 0, 7

ENERGOMERA = {
    # name: (C, D, unit, scale, phase-wise, c1)
    "ET0PE": (1, 8, 30, 1e3, False, 0),
    "ET0PI": (2, 8, 30, 1e3, False, 0),
    "ET0QE": (3, 8, 32, 1e3, False, 0),
    "ET0QI": (4, 8, 32, 1e3, False, 0),
    "VOLTA": (32, 7, 35, 1.0, True, 52),
    "CURRE": (31, 7, 33, 1.0, True, 51),
    "POWEP": (1, 7, 27, 1e3, True, 21),
    "POWEQ": (3, 7, 29, 1e3, True, 23),
    "POWES": (9, 7, 28, 1e3, True, 29),
    "FREQU": (14, 7, 44, 1.0, False, 0),
    "COS_f": (13, 7, 255, 1.0, True, 33),
    "400D": (14, 7, 44, 1.0, False, 0),
}
PREFIXABLE = {"wh": 30, "varh": 32, "vah": 31, "w": 27, "var": 29, "va": 28, "v": 35, "a": 33, "j": 25}
OTHER_UNITS = {"hz": 44, "m3": 13, "m3/h": 15, "%": 56, "h": 5, "min": 6, "s": 7, "deg": 8}
LETTERS = {"C": 96, "F": 97, "L": 98, "P": 99}


class Fail(Exception):
    def __init__(self, status, offset):
        self.status = status
        self.offset = offset


def pack(a, b, c, d, e, f):
    return (a << 40) | (b << 32) | (c << 24) | (d << 16) | (e << 8) | f


def unit_of(text: str):
    """Unit text -> (code, scale); unknown -> (254, 1.0)."""
    if not 0 < len(text) <= 8:
        return 254, 1.0
    low = "".join(ch.lower() if "A" <= ch <= "Z" else ch for ch in text)
    if low in PREFIXABLE:
        return PREFIXABLE[low], 1.0
    if low in OTHER_UNITS:
        return OTHER_UNITS[low], 1.0
    if len(text) >= 2 and low[1:] in PREFIXABLE:
        scale = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}.get(text[0])
        if scale is not None:
            return PREFIXABLE[low[1:]], scale
    return 254, 1.0


def neva_unit(c, d):
    q = c % 20
    if d in (7, 8) and c <= 80:
        if q in (1, 2, 15, 16):
            return (30 if d == 8 else 27), 1e3
        if q in (3, 4, 5, 6, 7, 8):
            return (32 if d == 8 else 29), 1e3
        if q in (9, 10):
            return (31 if d == 8 else 28), 1e3
        if d == 7 and q == 12:
            return 35, 1.0
        if d == 7 and q == 11:
            return 33, 1.0
        if d == 7 and c == 14:
            return 44, 1.0
    return 255, 1.0


def _group(s: str, letters: bool):
    if letters and s in LETTERS:
        return LETTERS[s]
    if 1 <= len(s) <= 3 and all("0" <= ch <= "9" for ch in s) and int(s) <= 255:
        return int(s)
    return None


def map_id(ident: str):
    """-> (obis6 list, phase_wise, c1, unit, scale) or None."""
    if ident in ENERGOMERA:
        c, d, unit, scale, phase, c1 = ENERGOMERA[ident]
        return [1, 0, c, d, 0, 255], phase, c1, unit, scale
    if len(ident) == 8 and all(ch in "0123456789ABCDEF" for ch in ident):
        c, d, e, f = (int(ident[i:i + 2], 16) for i in (0, 2, 4, 6))
        if e == 0x80:
            e = 0
        unit, scale = neva_unit(c, d)
        return [1, 0, c, d, e, f], False, 0, unit, scale
    a, b, e, f = 1, 0, 0, 255
    rest = ident
    if ":" in ident:
        head, rest = ident.split(":", 1)
        if head.count("-") != 1:
            return None
        sa, sb = head.split("-")
        a, b = _group(sa, False), _group(sb, False)
        if a is None or b is None:
            return None
    fpart = None
    for sep in "*&":
        if sep in rest:
            rest, fpart = rest.split(sep, 1)
            break
    parts = rest.split(".")
    if len(parts) not in (2, 3):
        return None
    vals = [_group(x, True) for x in parts]
    if any(v is None for v in vals):
        return None
    c, d = vals[0], vals[1]
    if len(vals) == 3:
        e = vals[2]
    if fpart is not None:
        f = _group(fpart, False)
        if f is None:
            return None
    return [a, b, c, d, e, f], False, 0, 255, 1.0


def parse_num(item: str):
    """'[+-]digits[.digits][*unit]' -> (value, unit text or None); None if not a number."""
    i, neg = 0, False
    if item[:1] in ("+", "-"):
        neg = item[0] == "-"
        i = 1
    digits, frac, dot = "", 0, False
    while i < len(item):
        ch = item[i]
        if "0" <= ch <= "9":
            if len(digits) >= 18:
                return None
            digits += ch
            if dot:
                frac += 1
        elif ch == "." and not dot:
            dot = True
        else:
            break
        i += 1
    if not digits:
        return None
    unit = None
    if i < len(item):
        if item[i] != "*":
            return None
        unit = item[i + 1:].strip(" ") or None
    v = float(int(digits)) / (10.0 ** frac)
    return (-v if neg else v), unit


def civil_ms(y, mo, d, h, mi, s):
    try:
        t = datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return int(t.timestamp()) * 1000


def ts_of(digits: str, off_ms: int):
    """YYMMDDhhmm[ss] -> ms UTC or None."""
    y, mo, d, h, mi = (int(digits[i:i + 2]) for i in (0, 2, 4, 6, 8))
    s = int(digits[10:12]) if len(digits) >= 12 else 0
    t = civil_ms(2000 + y, mo, d, h, mi, s)
    return None if t is None else t - off_ms


def ts_candidate(g: str, off_ms: int):
    """-> (kind, ts): kind 0 no, 1 valid, 2 timestamp-shaped but invalid date."""
    if len(g) == 10 and g.isascii() and g.isdigit():
        t = ts_of(g, off_ms)
        return (1, t) if t is not None else (2, None)
    if len(g) == 13 and g[:12].isascii() and g[:12].isdigit() and g[12] in "SW":
        t = ts_of(g[:12], 7200000 if g[12] == "S" else 3600000)
        return (1, t) if t is not None else (2, None)
    return 0, None


class Decoder:
    def __init__(self, meter, rx, off_ms):
        self.meter, self.rx, self.off_ms = meter, rx, off_ms
        self.clock = rx
        self.out = []
        self.skipped = 0
        self.kind = "none"
        self.k = 0

    # -- data sets
    def content(self, text: str, base: int, allow_bang: bool):
        pos, e = 0, len(text)
        self.kind = "none"
        while True:
            while pos < e and text[pos] in "\r\n":
                pos += 1
            if pos >= e:
                return
            ch = text[pos]
            if ch == "!" and allow_bang:
                rest = text[pos + 1:]
                for j, x in enumerate(rest):
                    if x not in "\r\n":
                        raise Fail(BAD_FRAMING, base + pos + 1 + j)
                return
            if ch != "(":
                ids = pos
                while True:
                    if pos >= e:
                        raise Fail(BAD_FRAMING, base + pos)
                    ch = text[pos]
                    if ch == "(":
                        break
                    if ord(ch) <= 32 or ord(ch) >= 127 or ch in ")!":
                        raise Fail(BAD_FRAMING, base + pos)
                    pos += 1
                    if pos - ids > 32:
                        raise Fail(BAD_FRAMING, base + pos)
                ident = text[ids:pos]
                self.k = 0
                if len(ident) in (3, 4) and ident.startswith("P.") and ident[2:].isascii() and ident[2:].isdigit():
                    self.kind = "profile_hdr"
                else:
                    m = map_id(ident)
                    if m is None:
                        self.kind = "anon"
                    else:
                        self.kind = "generic"
                        self.ob, self.phase, self.c1, self.dunit, self.dscale = m
            elif self.kind == "none":
                self.kind = "anon"
            pos = self.groups(text, pos, base)

    def groups(self, text, pos, base):
        groups = []
        while pos < len(text) and text[pos] == "(":
            j = pos + 1
            while True:
                if j >= len(text):
                    raise Fail(BAD_FRAMING, base + pos)
                ch = text[j]
                if ch == ")":
                    break
                if ch == "(" or ord(ch) < 32 or ord(ch) >= 127:
                    raise Fail(BAD_FRAMING, base + j)
                j += 1
            groups.append(text[pos + 1:j])
            pos = j + 1
        if self.kind == "profile_hdr":
            rest = self.profile_header(groups)
            if rest is None:
                self.kind = "anon"
                self.skipped += 1
                return pos
            self.kind = "profile"
            groups = rest
        if self.kind == "profile":
            for g in groups:
                for item in g.split(","):
                    self.emit_profile(item)
            return pos
        cands = [ts_candidate(g, self.off_ms) for g in groups]
        nts = sum(1 for k, _ in cands if k)
        if len(groups) == 1 and nts == 1 and len(groups[0]) == 13:
            return pos
        ts, q, use_ts = self.clock, Q_OK, False
        if len(groups) >= 2 and nts:
            use_ts = True
            k, t = next(c for c in cands if c[0])
            ts, q = (t, Q_OK) if k == 1 else (self.rx, Q_CLOCK_INVALID)
        for g, (k, _t) in zip(groups, cands):
            if use_ts and k:
                continue
            for item in g.split(","):
                self.emit_generic(item, ts, q)
        return pos

    def emit_generic(self, item, ts, q):
        item = item.strip(" ")
        k = self.k
        self.k += 1
        if not item:
            return
        num = parse_num(item) if self.kind == "generic" else None
        if num is None:
            self.skipped += 1
            return
        v, unit = num
        a, b, c, d, e, f = self.ob
        if not self.phase:
            e += k
        elif k > 0:
            c = self.c1 + 20 * (k - 1)
        if e > 255 or c > 255:
            self.skipped += 1
            return
        code, scale = unit_of(unit) if unit else (self.dunit, self.dscale)
        self.out.append((self.meter, pack(a, b, c, d, e, f), ts, v * scale, code, q))

    def profile_header(self, groups):
        if len(groups) < 4:
            return None
        t = groups[0]
        if not (t.isascii() and t.isdigit()) or not 10 <= len(t) <= 13:
            return None
        if len(t) in (11, 13):
            t = t[1:]
        self.pts = ts_of(t, self.off_ms)
        if groups[2] == "":
            self.period_ms = 0
        else:
            p = groups[2]
            if not (1 <= len(p) <= 4 and p.isascii() and p.isdigit()):
                return None
            self.period_ms = int(p) * 60000
        nn = groups[3]
        if not (1 <= len(nn) <= 2 and nn.isascii() and nn.isdigit()) or not 1 <= int(nn) <= 32:
            return None
        n = int(nn)
        if len(groups) < 4 + 2 * n:
            return None
        self.pn, self.pj, self.chans = n, 0, []
        for ch in range(n):
            m = map_id(groups[4 + 2 * ch].strip(" "))
            u = groups[5 + 2 * ch].strip(" ")
            unit = (255, 1.0) if u == "" else unit_of(u)
            self.chans.append((None if m is None else pack(*m[0]), unit))
        return groups[4 + 2 * n:]

    def emit_profile(self, item):
        item = item.strip(" ")
        j = self.pj
        self.pj += 1
        if not item:
            return
        obis, (dunit, dscale) = self.chans[j % self.pn]
        num = parse_num(item)
        if obis is None or num is None:
            self.skipped += 1
            return
        v, unit = num
        code, scale = unit_of(unit) if unit else (dunit, dscale)
        if self.pts is not None:
            ts, q = self.pts + (j // self.pn) * self.period_ms, Q_OK
        else:
            ts, q = self.rx, Q_CLOCK_INVALID
        self.out.append((self.meter, obis, ts, v * scale, code, q))


def _bcc_ok(block: bytes, got: int, bcc: str) -> bool:
    if bcc == "none":
        return True
    if bcc == "sum7":
        return (sum(block) - got) & 0x7F == 0
    x = 0
    for b in block:
        x ^= b
    return (x ^ got) & 0x7F == 0


def crc16_arc(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _block(raw: bytes, s: int, bcc: str):
    """-> index of ETX/EOT for a block whose checked bytes start at s (BCC verified)."""
    i = s
    while i < len(raw) and raw[i] not in (3, 4):
        i += 1
    if i >= len(raw):
        raise Fail(TRUNCATED, len(raw))
    if i + 1 >= len(raw):
        raise Fail(TRUNCATED, len(raw))
    if i + 2 < len(raw):
        raise Fail(BAD_LENGTH, i + 2)
    if not _bcc_ok(raw[s:i + 1], raw[i + 1], bcc):
        raise Fail(CHECKSUM, i + 1)
    return i


HEX = b"0123456789abcdefABCDEF"


def _frame(dec: Decoder, raw: bytes, bcc: str):
    n = len(raw)
    if n == 0:
        raise Fail(TRUNCATED, 0)
    b0 = raw[0]
    text = raw.decode("latin-1")
    if b0 == 2:
        i = _block(raw, 1, bcc)
        dec.content(text[1:i], 1, True)
        return
    if b0 == 1:
        if n < 3:
            raise Fail(TRUNCATED, n)
        if raw[1] not in b"PWREB" or not 48 <= raw[2] <= 57:
            raise Fail(BAD_FRAMING, 1)
        _block(raw, 1, bcc)
        raise Fail(NO_DATA, -1)
    if b0 == 6:
        if n == 1:
            raise Fail(NO_DATA, -1)
        if n < 6:
            raise Fail(TRUNCATED, n)
        if n > 6:
            raise Fail(BAD_LENGTH, 6)
        if not (48 <= raw[1] <= 57 and 32 < raw[2] < 127 and 48 <= raw[3] <= 57 and raw[4:6] == b"\r\n"):
            raise Fail(BAD_FRAMING, 1)
        raise Fail(NO_DATA, -1)
    if b0 == 0x15:
        if n != 1:
            raise Fail(BAD_LENGTH, 1)
        raise Fail(PROTOCOL_EXCEPTION, 0)
    if b0 == 0x2F:
        if n >= 2 and raw[1] == 0x3F:
            if n >= 5 and raw.endswith(b"!\r\n"):
                raise Fail(NO_DATA, -1)
            raise Fail(TRUNCATED, n)
        lf = 1
        while lf < n and raw[lf] != 10:
            if raw[lf] < 32 and raw[lf] != 13:
                raise Fail(BAD_FRAMING, lf)
            lf += 1
        if lf >= n:
            raise Fail(TRUNCATED, n)
        if lf < 6 or raw[lf - 1] != 13:
            raise Fail(BAD_FRAMING, lf)
        if lf + 1 == n:
            raise Fail(NO_DATA, -1)
        if raw[lf + 1] == 2:
            i = _block(raw, lf + 2, bcc)
            dec.content(text[lf + 2:i], lf + 2, True)
            return
        bang = raw.find(b"!", lf + 1)
        if bang < 0:
            raise Fail(TRUNCATED, n)
        tail = raw[bang + 1:]
        t = len(tail)
        pat4 = [lambda c: c in HEX] * 4 + [lambda c: c == 13, lambda c: c == 10]
        ok4 = 0
        while ok4 < t and ok4 < 6 and pat4[ok4](tail[ok4]):
            ok4 += 1
        ok2 = 0
        while ok2 < t and ok2 < 2 and tail[ok2] == (13, 10)[ok2]:
            ok2 += 1
        if ok4 == t and t in (4, 6):
            if bcc != "none" and crc16_arc(raw[:bang + 1]) != int(tail[:4], 16):
                raise Fail(CHECKSUM, bang + 1)
        elif ok2 == t and t in (0, 2):
            pass
        elif ok4 == t or ok2 == t:
            raise Fail(TRUNCATED, n)
        else:
            raise Fail(BAD_FRAMING, bang + 1 + max(ok4, ok2))
        body = text[lf + 1:bang]
        # telegram clock: a line starting with 0-0:1.0.0( followed by 13 chars and ')'
        for i in range(0, len(body) - 23):
            if (i == 0 or body[i - 1] == "\n") and body.startswith("0-0:1.0.0(", i) and body[i + 23] == ")":
                k, t = ts_candidate(body[i + 10:i + 23], 0)
                dec.clock = t if k == 1 else dec.rx
                break
        dec.content(body, lf + 1, False)
        return
    raise Fail(BAD_FRAMING, 0)


def decode(raw: bytes, bcc: str = "xor", rx: int = 0, meter: int = 0, utc_offset_min: int = 0):
    raw = bytes(raw)
    dec = Decoder(meter, rx, utc_offset_min * 60000)
    try:
        _frame(dec, raw, bcc)
    except Fail as f:
        code = 0x15 if f.status == PROTOCOL_EXCEPTION else 0
        return [], f.status, code, f.offset
    if not dec.out:
        return [], (UNSUPPORTED if dec.skipped else NO_DATA), min(dec.skipped, 65535), -1
    return dec.out, OK, min(dec.skipped, 65535), -1
