# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Mercury 230/234 (Incotex proprietary protocol): batch answer decoder.

Frame: ``address (1) | data (1..n) | CRC (2)``; the CRC is CRC-16/MODBUS over address..data,
sent low byte first.  The answer carries no request code, so every frame is decoded through
the request it answers (``merc_layout``).  A request is given to the native core as four bytes
``(address, code, p1, p2)``: for ``05 <array<<4|month> <tariff>`` p1/p2 are those two bytes,
for ``08 11 <BWRI>`` p1 = 0x11 and p2 = BWRI, for ``04 <journal> <record>`` p1/p2 likewise.

Byte orders (all from the Incotex manual 05.2023, see shared/protocols/README.md 2 and 6.2):

* energy, 4 bytes ``[2][1][4][3]``: value = b1<<24 | b0<<16 | b3<<8 | b2 in Wh / varh;
  ``FF FF FF FF`` = energy kind not measured by this meter (no reading is emitted);
* auxiliary values, 3 bytes ``[1][3][2]``: value = (b0 & 0x3F)<<16 | b2<<8 | b1; in power
  and cos phi answers bit 7 of b0 = active direction reverse, bit 6 = reactive direction
  reverse (P and cos phi take the sign of bit 7, Q of bit 6, S is never negative);
* power with param 14h, 4 bytes ``[2][1][4][3]`` with the direction bits in b1;
* distortion 2 bytes little-endian, temperature 2 bytes big-endian signed;
* time and journal stamps: packed BCD.

Status answers (one data byte): low nibble 0 = OK, 1 invalid command or parameter, 2 internal
error, 3 access level insufficient, 4 clock already corrected today, 5 channel not open.  A
non-zero code is FS_PROTOCOL_EXCEPTION with that code whatever the request was.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t, int16_t

from meterpoll.ext._common cimport obis_pack, bcd_byte, valid_civil, civil_to_ms
from meterpoll.ext._crc cimport mp_crc16, MP_CRC16_MODBUS, mp_crc_init_all
from meterpoll.ext._frames cimport FrameBatch, frame_at
from meterpoll.ext._readings cimport (
    reading_buf, rb_init, rb_reserve, rb_push, rb_free, rb_to_array, new_frame_status,
    frame_status_t, FS_OK, FS_CHECKSUM, FS_TRUNCATED, FS_BAD_LENGTH, FS_BAD_ADDRESS,
    FS_PROTOCOL_EXCEPTION, FS_UNSUPPORTED, FS_BAD_VALUE, FS_MISMATCH, FS_OUT_OF_MEMORY,
    FS_NO_DATA, Q_OK, Q_METER_ERROR,
)

import numpy as np

mp_crc_init_all()

# DLMS units
DEF U_DEGREE = 8
DEF U_CELSIUS = 9
DEF U_SECOND = 7
DEF U_W = 27
DEF U_VA = 28
DEF U_VAR = 29
DEF U_WH = 30
DEF U_VARH = 32
DEF U_A = 33
DEF U_V = 35
DEF U_HZ = 44
DEF U_PERCENT = 56
DEF U_COUNT = 255

# Journals whose records are two 6-byte BCD stamps (sec, min, hour, day, month, year).
cdef bint _journal_ok(uint8_t j) noexcept nogil:
    return ((1 <= j <= 7) or j == 9 or j == 0x0A or j == 0x12 or (0x17 <= j <= 0x1A)
            or (0x80 <= j <= 0x87))


cdef inline uint64_t _e(uint8_t c, uint8_t d, uint8_t e, uint8_t f) noexcept nogil:
    return obis_pack(1, 0, c, d, e, f)


cdef void merc_layout(uint8_t addr, uint8_t code, uint8_t p1, uint8_t p2, uint16_t aux,
                      merc_layout_t* L) noexcept nogil:
    """Fill ``L`` with how the answer to request (addr, code, p1, p2, aux) is read; ``aux`` is
    the meter constant A for load-profile records (code 06h), else unused."""
    cdef uint8_t arr, month, tariff, q, sub, kind, ph, d, f, i, base
    cdef uint8_t cp[4]
    L.kind = MK_UNSUPPORTED
    L.enc = ME_NONE
    L.count = 0
    L.width = 0
    L.sign = MS_NONE
    L.unit = U_COUNT
    L.journal = 0
    L.addr = addr
    L.constant = 0
    L.dlen = -1
    L.scale = 1.0
    L.obis[0] = 0
    L.obis[1] = 0
    L.obis[2] = 0
    L.obis[3] = 0
    if code <= 2:
        L.kind = MK_STATUS
        L.dlen = 1
        return
    if code == 0x04:
        if p1 == 0:
            L.kind = MK_TIME
            L.dlen = 8
            L.count = 2
            L.obis[0] = obis_pack(0, 0, 1, 0, 0, 255)
            L.obis[1] = obis_pack(0, 0, 96, 50, 0, 255)
        elif _journal_ok(p1) and p2 <= 9:
            L.kind = MK_JOURNAL
            L.dlen = 12
            L.journal = p1
            L.count = 2
            L.obis[0] = obis_pack(0, 0, 96, 11, p1, 255)
            L.obis[1] = L.obis[0]
        return
    if code == 0x05 or code == 0x15:
        arr = p1 >> 4
        month = p1 & 0x0F
        tariff = p2
        if tariff > 4:
            return
        if arr == 3 or arr == 0x0B:
            if month < 1 or month > 12:
                return
        elif month != 0:
            return
        if arr == 0 or arr == 6:
            d = 8
            f = 255
        elif 1 <= arr <= 5:
            d = 9
            f = p1
        elif 9 <= arr <= 0x0D:
            d = 8
            f = p1
        else:
            return
        L.kind = MK_ENERGY
        L.enc = ME_E32
        L.width = 4
        if arr == 6:
            if code != 0x05:
                L.kind = MK_UNSUPPORTED
                return
            L.count = 3
            L.dlen = 12
            L.unit = U_WH
            L.obis[0] = _e(21, d, tariff, f)
            L.obis[1] = _e(41, d, tariff, f)
            L.obis[2] = _e(61, d, tariff, f)
            return
        L.count = 4
        L.dlen = 16
        base = 1 if code == 0x05 else 5
        for i in range(4):
            L.obis[i] = _e(base + i, d, tariff, f)
        # units differ per value: handled by MK_ENERGY decoding (C 1,2 -> Wh, else varh)
        L.unit = U_WH
        return
    if code == 0x06:
        # memory read: p1 = b17<<7 | energy kind<<4 | memory, p2 = byte count.  Only one record
        # of the main profile (memory 3, kind 0, 0x0F bytes) with a known meter constant.
        if (p1 & 0x0F) == 3 and (p1 & 0x70) == 0 and p2 == 0x0F and aux != 0:
            L.kind = MK_PROFILE
            L.dlen = 15
            L.count = 4
            L.width = 2
            L.constant = aux
            for i in range(4):
                L.obis[i] = _e(1 + i, 5, 0, 255)
        return
    if code != 0x08:
        return
    if p1 == 0x00:
        L.kind = MK_SERIAL
        L.dlen = 7
        L.count = 1
        L.obis[0] = obis_pack(0, 0, 96, 1, 0, 255)
        return
    if p1 == 0x03:
        L.kind = MK_VERSION
        L.dlen = 3
        L.count = 1
        L.obis[0] = obis_pack(1, 0, 0, 2, 0, 255)
        return
    if p1 != 0x11 and p1 != 0x14 and p1 != 0x16:
        return
    q = p2 >> 4
    sub = p2 & 0x0F
    L.kind = MK_AUX
    L.enc = ME_U24
    L.width = 3
    if q == 0 or q == 3:
        # power (kind bits 3..2, phase bits 1..0) or cos phi (phase in bits 1..0)
        kind = (sub >> 2) if q == 0 else 0
        ph = sub & 3
        if kind > 2:
            L.kind = MK_UNSUPPORTED
            return
        if q == 3 and sub > 3:
            L.kind = MK_UNSUPPORTED
            return
        if q == 3:
            cp[0] = 13; cp[1] = 33; cp[2] = 53; cp[3] = 73
            L.unit = U_COUNT
            L.scale = 0.001
            L.sign = MS_ACTIVE
        elif kind == 0:
            cp[0] = 1; cp[1] = 21; cp[2] = 41; cp[3] = 61
            L.unit = U_W
            L.scale = 0.01
            L.sign = MS_ACTIVE
        elif kind == 1:
            cp[0] = 3; cp[1] = 23; cp[2] = 43; cp[3] = 63
            L.unit = U_VAR
            L.scale = 0.01
            L.sign = MS_REACTIVE
        else:
            cp[0] = 9; cp[1] = 29; cp[2] = 49; cp[3] = 69
            L.unit = U_VA
            L.scale = 0.01
            L.sign = MS_NONE
        if p1 == 0x11:
            L.count = 1
            L.obis[0] = _e(cp[ph], 7, 0, 255)
        else:
            # 14h / 16h: sum, L1, L2, L3 (the BWRI names phase 0 or 1)
            if ph > 1:
                L.kind = MK_UNSUPPORTED
                return
            L.count = 4
            for i in range(4):
                L.obis[i] = _e(cp[i], 7, 0, 255)
            if p1 == 0x14 and q == 0:
                L.enc = ME_P32
                L.width = 4
        L.dlen = L.count * L.width
        return
    if p1 == 0x14:
        if q == 0x0F and sub <= 4:
            # fixed (frozen) energy of tariff `sub`: A+, A-, R+, R-
            L.kind = MK_ENERGY
            L.enc = ME_E32
            L.width = 4
            L.count = 4
            L.dlen = 16
            L.unit = U_WH
            for i in range(4):
                L.obis[i] = _e(1 + i, 8, sub, 0xF0)
            return
        L.kind = MK_UNSUPPORTED
        return
    if q == 1 or q == 2 or q == 5 or q == 8:
        if q == 1:
            cp[0] = 32; cp[1] = 52; cp[2] = 72
            L.unit = U_V
            L.scale = 0.01
        elif q == 2:
            cp[0] = 31; cp[1] = 51; cp[2] = 71
            L.unit = U_A
            L.scale = 0.001
        else:
            L.unit = U_DEGREE if q == 5 else U_V
            L.scale = 0.01
        if p1 == 0x11:
            if sub < 1 or sub > 3:
                L.kind = MK_UNSUPPORTED
                return
            L.count = 1
            ph = sub
        else:  # 16h: L1, L2, L3; BWRI names phase 1
            if sub != 1:
                L.kind = MK_UNSUPPORTED
                return
            L.count = 3
            ph = 1
        for i in range(L.count):
            if q == 5:
                # angle between phase voltages: 1 L1-L2 -> 81.7.1, 2 L1-L3 -> 81.7.2,
                # 3 L2-L3 -> 81.7.12 (OBIS: angle of U(b) - U(a), E = 10a + b)
                L.obis[i] = _e(81, 7, 1 if ph + i == 1 else (2 if ph + i == 2 else 12), 255)
            elif q == 8:
                # phase-to-phase voltage: manufacturer-specific C = 128, E = pair (1 L1-L2,
                # 2 L2-L3, 3 L3-L1)
                L.obis[i] = _e(128, 7, ph + i, 255)
            else:
                L.obis[i] = _e(cp[ph + i - 1], 7, 0, 255)
        L.dlen = L.count * 3
        return
    if p1 != 0x11:
        L.kind = MK_UNSUPPORTED
        return
    if q == 4 and sub == 0:
        L.count = 1
        L.dlen = 3
        L.unit = U_HZ
        L.scale = 0.01
        L.obis[0] = _e(14, 7, 0, 255)
        return
    if q == 6 and 1 <= sub <= 3:
        L.enc = ME_U16LE
        L.width = 2
        L.count = 1
        L.dlen = 2
        L.unit = U_PERCENT
        L.scale = 0.01
        L.obis[0] = _e(32 if sub == 1 else (52 if sub == 2 else 72), 7, 124, 255)
        return
    if q == 7 and sub == 0:
        L.enc = ME_S16BE
        L.width = 2
        L.count = 1
        L.dlen = 2
        L.unit = U_CELSIUS
        L.scale = 1.0
        L.obis[0] = obis_pack(0, 0, 96, 9, 0, 255)
        return
    L.kind = MK_UNSUPPORTED


cdef inline void _fs(frame_status_t* fs, uint8_t st, int32_t off, uint16_t code) noexcept nogil:
    fs.status = st
    fs.offset = off
    fs.code = code


cdef inline int _stamp(const uint8_t* p, int64_t* ms) noexcept nogil:
    """6 BCD bytes sec, min, hour, day, month, year(2000+) -> ms; 1 = all zero (empty), -1 bad."""
    cdef int s, mi, h, dd, mo, y
    if p[0] == 0 and p[1] == 0 and p[2] == 0 and p[3] == 0 and p[4] == 0 and p[5] == 0:
        return 1
    s = bcd_byte(p[0]); mi = bcd_byte(p[1]); h = bcd_byte(p[2])
    dd = bcd_byte(p[3]); mo = bcd_byte(p[4]); y = bcd_byte(p[5])
    if s < 0 or mi < 0 or h < 0 or dd < 0 or mo < 0 or y < 0:
        return -1
    if not valid_civil(2000 + y, mo, dd, h, mi, s) or s > 59:
        return -1
    ms[0] = civil_to_ms(2000 + y, mo, dd, h, mi, s, 0)
    return 0


cdef int merc_decode_frame(const uint8_t* p, Py_ssize_t n, const merc_layout_t* L, uint32_t meter,
                           int64_t ts, reading_buf* rb, frame_status_t* fs) noexcept nogil:
    """Decode one answer; fills ``fs`` and appends readings.  Returns -1 only on out of memory."""
    cdef const uint8_t* d
    cdef Py_ssize_t dlen, i
    cdef uint16_t crc
    cdef uint8_t code, db, c
    cdef uint32_t raw
    cdef double v
    cdef int rc, s, mi, h, dd, mo, y, wd, fl, k
    cdef int64_t ms
    cdef Py_ssize_t first = rb.n
    fs.first = <uint32_t>first
    fs.count = 0
    fs.code = 0
    fs.offset = -1
    fs.status = FS_OK
    if n < 4:
        _fs(fs, FS_TRUNCATED, <int32_t>n, 0)
        return 0
    crc = mp_crc16(&MP_CRC16_MODBUS, p, <size_t>(n - 2))
    if crc != (<uint16_t>p[n - 2] | (<uint16_t>p[n - 1] << 8)):
        _fs(fs, FS_CHECKSUM, <int32_t>(n - 2), 0)
        return 0
    if L.addr != 0 and p[0] != L.addr:
        _fs(fs, FS_BAD_ADDRESS, 0, 0)
        return 0
    d = p + 1
    dlen = n - 3
    if dlen == 1 and L.dlen != 1:
        code = d[0] & 0x0F
        if code != 0:
            _fs(fs, FS_PROTOCOL_EXCEPTION, 1, code)
        elif L.kind == MK_ANY:
            _fs(fs, FS_NO_DATA, -1, 0)
        else:
            _fs(fs, FS_MISMATCH, 1, 0)   # "OK" where data was expected
        return 0
    if L.kind == MK_ANY or L.kind == MK_UNSUPPORTED:
        _fs(fs, FS_UNSUPPORTED, 1, 0)
        return 0
    if dlen < L.dlen:
        _fs(fs, FS_TRUNCATED, <int32_t>(n - 2), 0)
        return 0
    if dlen > L.dlen:
        _fs(fs, FS_BAD_LENGTH, <int32_t>(1 + L.dlen), 0)
        return 0
    if L.kind == MK_STATUS:
        code = d[0] & 0x0F
        if code != 0:
            _fs(fs, FS_PROTOCOL_EXCEPTION, 1, code)
        else:
            _fs(fs, FS_NO_DATA, -1, 0)
        return 0
    if rb_reserve(rb, L.count) < 0:     # count = the most readings this layout emits
        _fs(fs, FS_OUT_OF_MEMORY, -1, 0)
        return -1
    if L.kind == MK_ENERGY:
        for i in range(L.count):
            raw = ((<uint32_t>d[4 * i + 1] << 24) | (<uint32_t>d[4 * i] << 16)
                   | (<uint32_t>d[4 * i + 3] << 8) | d[4 * i + 2])
            if raw == <uint32_t>(~(<uint32_t>0)):
                continue
            c = <uint8_t>((L.obis[i] >> 24) & 0xFF)
            rb_push(rb, meter, L.obis[i], ts, <double>raw,
                    U_WH if (c == 1 or c == 2 or c == 21 or c == 41 or c == 61) else U_VARH, Q_OK)
    elif L.kind == MK_AUX:
        for i in range(L.count):
            if L.enc == ME_U24:
                db = d[3 * i]
                raw = ((<uint32_t>(db & 0x3F)) << 16) | (<uint32_t>d[3 * i + 2] << 8) | d[3 * i + 1]
                v = raw * L.scale
            elif L.enc == ME_P32:
                db = d[4 * i + 1]
                raw = ((<uint32_t>(db & 0x3F)) << 24) | (<uint32_t>d[4 * i] << 16) \
                    | (<uint32_t>d[4 * i + 3] << 8) | d[4 * i + 2]
                v = raw * L.scale
            elif L.enc == ME_U16LE:
                db = 0
                v = ((<uint32_t>d[1] << 8) | d[0]) * L.scale
            else:
                db = 0
                v = <double>(<int16_t>((<uint16_t>d[0] << 8) | d[1])) * L.scale
            if v != 0.0 and ((L.sign == MS_ACTIVE and (db & 0x80)) or (L.sign == MS_REACTIVE and (db & 0x40))):
                v = -v          # (a zero magnitude stays +0.0)
            rb_push(rb, meter, L.obis[i], ts, v, L.unit, Q_OK)
    elif L.kind == MK_TIME:
        s = bcd_byte(d[0]); mi = bcd_byte(d[1]); h = bcd_byte(d[2]); wd = bcd_byte(d[3])
        dd = bcd_byte(d[4]); mo = bcd_byte(d[5]); y = bcd_byte(d[6]); fl = d[7]
        k = 0
        if s < 0:
            k = 1
        elif mi < 0:
            k = 2
        elif h < 0:
            k = 3
        elif wd < 0 or wd > 7:
            k = 4
        elif dd < 0:
            k = 5
        elif mo < 0:
            k = 6
        elif y < 0:
            k = 7
        elif fl > 1:
            k = 8
        elif s > 59 or not valid_civil(2000 + y, mo, dd, h, mi, s):
            k = 1
        if k:
            _fs(fs, FS_BAD_VALUE, k, 0)
            return 0
        ms = civil_to_ms(2000 + y, mo, dd, h, mi, s, 0)
        rb_push(rb, meter, L.obis[0], ms, ms / 1000.0, U_SECOND, Q_OK)
        rb_push(rb, meter, L.obis[1], ms, <double>fl, U_COUNT, Q_OK)
    elif L.kind == MK_JOURNAL:
        for i in range(2):
            rc = _stamp(d + 6 * i, &ms)
            if rc < 0:
                rb.n = first
                _fs(fs, FS_BAD_VALUE, <int32_t>(1 + 6 * i), 0)
                return 0
            if rc == 0:
                rb_push(rb, meter, L.obis[0], ms, <double>(i + 1), U_COUNT, Q_OK)
    elif L.kind == MK_PROFILE:
        # status, hour, minute, day, month, year (BCD), period T (min), then P+ P- Q+ Q- as
        # u16 LE; average power = N * (60 / T) / (2 * A) kW = N * 30000 / (T * A) W
        h = bcd_byte(d[1]); mi = bcd_byte(d[2]); dd = bcd_byte(d[3]); mo = bcd_byte(d[4]); y = bcd_byte(d[5])
        k = 0
        if h < 0:
            k = 2
        elif mi < 0:
            k = 3
        elif dd < 0:
            k = 4
        elif mo < 0:
            k = 5
        elif y < 0:
            k = 6
        elif not valid_civil(2000 + y, mo, dd, h, mi, 0):
            k = 2
        elif d[6] == 0:
            k = 7
        if k:
            _fs(fs, FS_BAD_VALUE, k, 0)
            return 0
        ms = civil_to_ms(2000 + y, mo, dd, h, mi, 0, 0)
        for i in range(4):
            raw = (<uint32_t>d[8 + 2 * i] << 8) | d[7 + 2 * i]
            if raw == 0xFFFF:
                continue
            v = (raw * 30000.0) / (<double>d[6] * <double>L.constant)
            rb_push(rb, meter, L.obis[i], ms, v, U_W if i < 2 else U_VAR,
                    Q_METER_ERROR if (d[0] & 0x02) else Q_OK)
    elif L.kind == MK_SERIAL:
        v = 0.0
        for i in range(4):
            if d[i] > 99:
                _fs(fs, FS_BAD_VALUE, <int32_t>(1 + i), 0)
                return 0
            v = v * 100.0 + d[i]
        rb_push(rb, meter, L.obis[0], ts, v, U_COUNT, Q_OK)
    elif L.kind == MK_VERSION:
        v = 0.0
        for i in range(3):
            if d[i] > 99:
                _fs(fs, FS_BAD_VALUE, <int32_t>(1 + i), 0)
                return 0
            v = v * 100.0 + d[i]
        rb_push(rb, meter, L.obis[0], ts, v, U_COUNT, Q_OK)
    fs.count = <uint32_t>(rb.n - first)
    if fs.count == 0:
        fs.status = FS_NO_DATA
    return 0


def layout(int addr, int code, int p1, int p2, int aux=0):
    """The layout of request (addr, code, p1, p2, aux) as a dict (for the bindings and tests)."""
    cdef merc_layout_t L
    merc_layout(<uint8_t>addr, <uint8_t>code, <uint8_t>p1, <uint8_t>p2, <uint16_t>aux, &L)
    return {"kind": L.kind, "enc": L.enc, "count": L.count, "width": L.width, "sign": L.sign,
            "unit": L.unit, "dlen": L.dlen, "scale": L.scale,
            "constant": L.constant,
            "obis": [L.obis[i] for i in range(L.count)]
            if L.kind not in (MK_ANY, MK_STATUS, MK_UNSUPPORTED) else []}


def decode_batch(FrameBatch batch, object requests, object meters, object received):
    """Decode every frame of ``batch``.

    ``requests``: C-contiguous uint8 array of shape (1, 6) or (N, 6), rows (address, code,
    p1, p2, aux low, aux high), or None (no request: only status answers decode).  ``meters``: uint32 array of N.
    ``received``: int64 array of 1 or N (ms since the epoch).  Returns (readings, frame_status).
    Checks shapes and raises ValueError; never raises for a bad frame.
    """
    cdef Py_ssize_t n = batch._n, i = 0, j, nreq, nrecv
    cdef const uint8_t[:, ::1] rq
    cdef const uint32_t[::1] mv = meters
    cdef const int64_t[::1] tv = received
    cdef const uint8_t* rp = NULL
    cdef merc_layout_t L0
    cdef merc_layout_t cache[64]
    cdef uint64_t ckeys[64]
    cdef uint64_t key
    cdef uint32_t slot
    cdef reading_buf rb
    cdef const uint8_t* p
    cdef Py_ssize_t fn
    cdef frame_status_t* fsp
    cdef int rc = 0
    cdef Py_ssize_t cap
    if mv.shape[0] != n:
        raise ValueError("meter_ids has %d entries for %d frames" % (mv.shape[0], n))
    nrecv = tv.shape[0]
    if nrecv != 1 and nrecv != n:
        raise ValueError("received_at has %d entries for %d frames" % (nrecv, n))
    if requests is None:
        nreq = 1
        L0.kind = MK_ANY
        L0.addr = 0
        L0.dlen = -1
        L0.count = 0
    else:
        rq = requests
        if rq.shape[1] != 6:
            raise ValueError("requests must have 6 columns (address, code, p1, p2, aux lo, aux hi)")
        nreq = rq.shape[0]
        if nreq != 1 and nreq != n:
            raise ValueError("%d requests for %d frames: give one, or one per frame" % (nreq, n))
        if nreq > 0:
            rp = &rq[0, 0]
            merc_layout(rp[0], rp[1], rp[2], rp[3], rp[4] | (<uint16_t>rp[5] << 8), &L0)
    fs_arr = new_frame_status(n)
    fsp = <frame_status_t*><Py_ssize_t>fs_arr.ctypes.data
    for i in range(64):
        ckeys[i] = <uint64_t>1 << 60    # no 6-byte row has this key
    # exact capacity (the most readings the requests allow), so the buffer never grows and is
    # not shrunk afterwards when every frame is good
    if nreq == 1:
        cap = n * L0.count
    else:
        cap = 0
        with nogil:
            for i in range(n):
                rp = &rq[i, 0]
                key = ((<uint64_t>rp[0] << 40) | (<uint64_t>rp[1] << 32) | (<uint64_t>rp[2] << 24)
                       | (<uint64_t>rp[3] << 16) | (<uint64_t>rp[4] << 8) | rp[5])
                slot = <uint32_t>(((key * <uint64_t>0x9E3779B97F4A7C15ULL) >> 58) & 63)
                if ckeys[slot] != key:
                    merc_layout(rp[0], rp[1], rp[2], rp[3], rp[4] | (<uint16_t>rp[5] << 8), &cache[slot])
                    ckeys[slot] = key
                cap += cache[slot].count
    if rb_init(&rb, cap) < 0:
        raise MemoryError()
    i = 0
    with nogil:
        for i in range(n):
            if not frame_at(batch, i, &p, &fn):
                fsp[i].status = FS_BAD_LENGTH
                fsp[i].offset = -1
                fsp[i].first = <uint32_t>rb.n
                fsp[i].count = 0
                continue
            if nreq == 1:
                rc = merc_decode_frame(p, fn, &L0, mv[i], tv[i if nrecv > 1 else 0], &rb, &fsp[i])
            else:
                # per-frame requests: a small direct-mapped cache of layouts keyed by the row
                rp = &rq[i, 0]
                key = ((<uint64_t>rp[0] << 40) | (<uint64_t>rp[1] << 32) | (<uint64_t>rp[2] << 24)
                       | (<uint64_t>rp[3] << 16) | (<uint64_t>rp[4] << 8) | rp[5])
                slot = <uint32_t>(((key * <uint64_t>0x9E3779B97F4A7C15ULL) >> 58) & 63)
                if ckeys[slot] != key:
                    merc_layout(rp[0], rp[1], rp[2], rp[3], rp[4] | (<uint16_t>rp[5] << 8), &cache[slot])
                    ckeys[slot] = key
                rc = merc_decode_frame(p, fn, &cache[slot], mv[i], tv[i if nrecv > 1 else 0], &rb, &fsp[i])
            if rc < 0:
                break
        if rc < 0:
            # out of memory: every remaining frame is reported, nothing more is decoded
            for j in range(i + 1, n):
                fsp[j].status = FS_OUT_OF_MEMORY
                fsp[j].offset = -1
                fsp[j].first = <uint32_t>rb.n
    return rb_to_array(&rb), fs_arr


# request kinds, exported for the bindings
globals().update({
    "MK_ANY": MK_ANY, "MK_STATUS": MK_STATUS, "MK_ENERGY": MK_ENERGY, "MK_AUX": MK_AUX,
    "MK_TIME": MK_TIME, "MK_JOURNAL": MK_JOURNAL, "MK_SERIAL": MK_SERIAL,
    "MK_VERSION": MK_VERSION, "MK_UNSUPPORTED": MK_UNSUPPORTED, "MK_PROFILE": MK_PROFILE,
})
