# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""M-Bus RSP_UD batch decoder (EN 13757-2 link layer, EN 13757-3 variable data structure).

One nogil pass per batch: link layer (E5 / short / long frame, L fields, checksum = sum mod 256,
stop byte), CI 0x72 (12-byte header: ident BCD LSB first, manufacturer u16 LE, version, medium,
access number, status, signature u16 LE), 0x76 (the same with every multi-byte field and data
field most significant byte first), 0x7A (4-byte header: access, status, signature) and
0x78 (no header), then DIF [DIFE..] VIF [VIFE..] data records.  Multi-byte data fields are
little-endian (integers two's complement, float32 IEEE-754, BCD least significant byte first,
top nibble F = negative).  Every read is bounds-checked against the frame end.

Values are scaled to base units: energy Wh (J / 3600), power W (J/h / 3600), volume m3,
volume flow m3/h, mass kg, mass flow kg/s, temperatures degC, temperature difference K,
pressure bar, times s, voltage V, current A.  The OBIS mapping is documented in
bindings/mbus.py (one table); it is computed here by ``_obis_for``.

Frame status ``code`` = header status byte (0x72/0x7A; 0 for 0x78) | 0x100 when the telegram
ends with DIF 0x1F (more records follow: send the next REQ_UD2 with FCB toggled); for CI 0x70
(application error) status is PROTOCOL_EXCEPTION and code the error byte.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t, int16_t
from libc.math cimport NAN

from meterpoll.ext._common cimport load_u32le, f32_from_bits, obis_pack, valid_civil, civil_to_ms
from meterpoll.ext._crc cimport mp_sum8, mp_crc_init_all
from meterpoll.ext._frames cimport FrameBatch, frame_at
from meterpoll.ext._readings cimport (frame_status_t, reading_buf, rb_init, rb_push, rb_to_array,
                                      new_frame_status,
                                      FS_OK, FS_CHECKSUM, FS_TRUNCATED, FS_BAD_LENGTH,
                                      FS_PROTOCOL_EXCEPTION, FS_UNSUPPORTED, FS_BAD_FRAMING,
                                      FS_TOO_DEEP, FS_OUT_OF_MEMORY, FS_NO_DATA,
                                      Q_OK, Q_METER_ERROR, Q_CLOCK_INVALID)

import numpy as np

mp_crc_init_all()

DEF MAX_DIFE = 10          # EN 13757-3: at most 10 DIFEs and 10 VIFEs per record
DEF MAX_VIFE = 10
DEF MAX_FRAME_READINGS = 256   # a long frame has at most 252 body bytes, >= 3 per reading
DEF N_STORAGE_TS = 64      # storage numbers whose timestamp is tracked (0..63)

# media families for the OBIS mapping
DEF FAM_OTHER = 0
DEF FAM_ELEC = 1
DEF FAM_WATER = 2
DEF FAM_GAS = 3
DEF FAM_THERMAL = 4
DEF FAM_HCA = 5

# value kinds
DEF K_NUM = 0
DEF K_DATE_G = 1
DEF K_DATE_F = 2

cdef double P10[40]        # P10[i] = 10 ** (i - 20)
cdef int _i
for _i in range(40):
    P10[_i] = 10.0 ** (_i - 20)

# data field (DIF low nibble) -> length in bytes; -1 variable, -2 special (0x0F)
cdef int DLEN[16]
DLEN[:] = [0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, -2]


cdef inline double p10(int e) noexcept nogil:
    return P10[e + 20]


ctypedef struct vinfo_t:
    int qty
    double scale
    uint8_t unit


cdef inline void _primary(int code, vinfo_t* v) noexcept nogil:
    """Primary VIF table (code = VIF & 0x7F)."""
    cdef int n = code & 0x07
    v.qty = QT_NONE
    v.scale = 1.0
    v.unit = 255
    if code <= 0x07:
        v.qty = QT_ENERGY; v.scale = p10(n - 3); v.unit = 30
    elif code <= 0x0F:
        v.qty = QT_ENERGY; v.scale = p10(n) / 3600.0; v.unit = 30
    elif code <= 0x17:
        v.qty = QT_VOLUME; v.scale = p10(n - 6); v.unit = 13
    elif code <= 0x1F:
        v.qty = QT_MASS; v.scale = p10(n - 3); v.unit = 20
    elif code <= 0x27:
        v.qty = QT_ON_TIME if code <= 0x23 else QT_OP_TIME
        n = code & 0x03
        v.scale = 1.0 if n == 0 else (60.0 if n == 1 else (3600.0 if n == 2 else 86400.0))
        v.unit = 7
    elif code <= 0x2F:
        v.qty = QT_POWER; v.scale = p10(n - 3); v.unit = 27
    elif code <= 0x37:
        v.qty = QT_POWER; v.scale = p10(n) / 3600.0; v.unit = 27
    elif code <= 0x3F:
        v.qty = QT_VOLUME_FLOW; v.scale = p10(n - 6); v.unit = 15
    elif code <= 0x47:
        v.qty = QT_VOLUME_FLOW; v.scale = p10(n - 7) * 60.0; v.unit = 15
    elif code <= 0x4F:
        v.qty = QT_VOLUME_FLOW; v.scale = p10(n - 9) * 3600.0; v.unit = 15
    elif code <= 0x57:
        v.qty = QT_MASS_FLOW; v.scale = p10(n - 3) / 3600.0; v.unit = 50
    elif code <= 0x6B:
        n = code & 0x03
        v.scale = p10(n - 3)
        if code <= 0x5B:
            v.qty = QT_FLOW_TEMP; v.unit = 9
        elif code <= 0x5F:
            v.qty = QT_RETURN_TEMP; v.unit = 9
        elif code <= 0x63:
            v.qty = QT_TEMP_DIFF; v.unit = 52
        elif code <= 0x67:
            v.qty = QT_EXT_TEMP; v.unit = 9
        else:
            v.qty = QT_PRESSURE; v.unit = 24
    elif code == 0x6C:
        v.qty = QT_DATE
    elif code == 0x6D:
        v.qty = QT_DATETIME
    elif code == 0x6E:
        v.qty = QT_HCA
    elif code == 0x78:
        v.qty = QT_FABRICATION_NO
    # 0x6F, 0x70-0x77 durations, 0x79 enhanced id, 0x7A bus address, 0x7B/0x7D reserved,
    # 0x7E any VIF, 0x7F manufacturer specific: no reading


cdef inline void _ext_fd(int code, vinfo_t* v) noexcept nogil:
    """First extension table (VIF 0xFD; code = VIFE & 0x7F)."""
    v.qty = QT_NONE
    v.scale = 1.0
    v.unit = 255
    if code == 0x17:
        v.qty = QT_ERROR_FLAGS
    elif 0x40 <= code <= 0x4F:
        v.qty = QT_VOLTAGE; v.scale = p10((code & 0x0F) - 9); v.unit = 35
    elif 0x50 <= code <= 0x5F:
        v.qty = QT_CURRENT; v.scale = p10((code & 0x0F) - 12); v.unit = 33


cdef inline void _ext_fb(int code, vinfo_t* v) noexcept nogil:
    """Second extension table (VIF 0xFB; code = VIFE & 0x7F): the large-unit entries."""
    cdef int n = code & 0x01
    v.qty = QT_NONE
    v.scale = 1.0
    v.unit = 255
    if code <= 0x01:
        v.qty = QT_ENERGY; v.scale = p10(n + 5); v.unit = 30          # 10^(n-1) MWh
    elif 0x08 <= code <= 0x09:
        v.qty = QT_ENERGY; v.scale = p10(n + 8) / 3600.0; v.unit = 30  # 10^(n-1) GJ
    elif 0x10 <= code <= 0x11:
        v.qty = QT_VOLUME; v.scale = p10(n + 2); v.unit = 13          # 10^(n+2) m3
    elif 0x18 <= code <= 0x19:
        v.qty = QT_MASS; v.scale = p10(n + 5); v.unit = 20            # 10^(n+2) t
    elif 0x28 <= code <= 0x29:
        v.qty = QT_POWER; v.scale = p10(n + 5); v.unit = 27           # 10^(n-1) MW
    elif 0x30 <= code <= 0x31:
        v.qty = QT_POWER; v.scale = p10(n + 8) / 3600.0; v.unit = 27  # 10^(n-1) GJ/h


cdef inline void _medium(int medium, uint8_t* a, int* fam) noexcept nogil:
    if medium == 0x02:
        a[0] = 1; fam[0] = FAM_ELEC
    elif medium == 0x03:
        a[0] = 7; fam[0] = FAM_GAS
    elif medium == 0x04 or medium == 0x0C or medium == 0x0D:
        a[0] = 6; fam[0] = FAM_THERMAL
    elif medium == 0x0A or medium == 0x0B:
        a[0] = 5; fam[0] = FAM_THERMAL
    elif medium == 0x06 or medium == 0x15:
        a[0] = 9; fam[0] = FAM_WATER
    elif medium == 0x07 or medium == 0x16:
        a[0] = 8; fam[0] = FAM_WATER
    elif medium == 0x08:
        a[0] = 4; fam[0] = FAM_HCA
    else:
        a[0] = 0; fam[0] = FAM_OTHER


cdef inline uint64_t _obis_for(int fam, uint8_t a, int qty, int func, uint64_t storage,
                               uint64_t tariff, uint64_t subunit, bint reverse) noexcept nogil:
    """OBIS of a record, 0 when the record yields no reading (see the table in bindings/mbus.py)."""
    cdef int c = -1, d
    cdef uint8_t f
    if func == 3 or storage > 254 or tariff > 254 or subunit > 254:
        return 0
    f = 255 if storage == 0 else <uint8_t>storage
    if qty == QT_ON_TIME or qty == QT_OP_TIME or qty == QT_FABRICATION_NO or qty == QT_ERROR_FLAGS:
        if func != 0 or tariff != 0 or reverse:
            return 0
        if qty == QT_ON_TIME:
            return obis_pack(0, <uint8_t>subunit, 96, 8, 0, f)
        if qty == QT_OP_TIME:
            return obis_pack(0, <uint8_t>subunit, 96, 8, 1, f)
        if qty == QT_FABRICATION_NO:
            return obis_pack(0, <uint8_t>subunit, 96, 1, 0, f)
        return obis_pack(0, <uint8_t>subunit, 97, 97, 0, f)
    if qty == QT_VOLTAGE or qty == QT_CURRENT or (fam == FAM_ELEC and (qty == QT_ENERGY or qty == QT_POWER)):
        if qty == QT_VOLTAGE or qty == QT_CURRENT:
            if reverse:
                return 0
            c = 32 if qty == QT_VOLTAGE else 31
            d = 7
        else:
            c = 2 if reverse else 1
            d = 8 if qty == QT_ENERGY else 7
        if func == 1:
            d = 6
        elif func == 2:
            d = 3
        return obis_pack(1, <uint8_t>subunit, <uint8_t>c, <uint8_t>d, <uint8_t>tariff, f)
    if reverse:
        return 0
    if fam == FAM_WATER:
        if qty == QT_VOLUME:
            c = 1
        elif qty == QT_VOLUME_FLOW:
            c = 2
        elif qty == QT_FLOW_TEMP:
            c = 3
    elif fam == FAM_GAS:
        if qty == QT_VOLUME:
            c = 3
    elif fam == FAM_THERMAL:
        if qty == QT_ENERGY:
            c = 1
        elif qty == QT_VOLUME:
            c = 2
        elif qty == QT_POWER:
            c = 8
        elif qty == QT_VOLUME_FLOW:
            c = 9
        elif qty == QT_FLOW_TEMP:
            c = 10
        elif qty == QT_RETURN_TEMP:
            c = 11
        elif qty == QT_TEMP_DIFF:
            c = 12
    elif fam == FAM_HCA:
        if qty == QT_HCA:
            c = 1
    d = 0 if func == 0 else (5 if func == 1 else 4)
    if c < 0:   # no code of the medium's own table: meterpoll-private A=0, C=200+quantity
        return obis_pack(0, <uint8_t>subunit, <uint8_t>(200 + qty), <uint8_t>d, <uint8_t>tariff, f)
    return obis_pack(a, <uint8_t>subunit, <uint8_t>c, <uint8_t>d, <uint8_t>tariff, f)


cdef inline int _year(int y) noexcept nogil:
    return 2000 + y if y < 81 else 1900 + y


cdef inline int _date_ts(int kind, const uint8_t* d, int dlen, int64_t* out) noexcept nogil:
    """Decode date type G (2 bytes), F (4 bytes) or I (6 bytes): 1 ok, 0 invalid, -1 not a date."""
    cdef int y, mo, dd, h = 0, mi = 0, s = 0
    if kind == K_DATE_G:
        if dlen != 2:
            return -1
        dd = d[0] & 0x1F
        mo = d[1] & 0x0F
        y = _year(((d[1] & 0xF0) >> 1) | ((d[0] & 0xE0) >> 5))
    else:
        if dlen == 4:
            if d[0] & 0x80:
                return 0
            mi = d[0] & 0x3F
            h = d[1] & 0x1F
            dd = d[2] & 0x1F
            mo = d[3] & 0x0F
            y = _year(((d[3] & 0xF0) >> 1) | ((d[2] & 0xE0) >> 5))
        elif dlen == 6:
            if d[1] & 0x80:
                return 0
            s = d[0] & 0x3F
            mi = d[1] & 0x3F
            h = d[2] & 0x1F
            dd = d[3] & 0x1F
            mo = d[4] & 0x0F
            y = _year(((d[4] & 0xF0) >> 1) | ((d[3] & 0xE0) >> 5))
        else:
            return -1
    if not valid_civil(y, mo, dd, h, mi, s) or s > 59:
        return 0
    out[0] = civil_to_ms(y, mo, dd, h, mi, s, 0)
    return 1


cdef inline double _value(int dt, const uint8_t* d, int dlen, bint* bad) noexcept nogil:
    """Numeric value of a fixed-length data field (little-endian)."""
    cdef uint64_t u = 0
    cdef int64_t sv
    cdef int i, hi, lo
    cdef double v = 0.0
    cdef bint neg = False
    if dt == 0x05:
        return <double>f32_from_bits(load_u32le(d))
    if dt >= 0x09:   # BCD 0x9..0xC, 0xE
        i = dlen - 1
        while i >= 0:
            hi = d[i] >> 4
            lo = d[i] & 0x0F
            if i == dlen - 1 and hi == 0x0F:
                neg = True
                hi = 0
            if hi > 9 or lo > 9:
                bad[0] = True
                return NAN
            v = v * 100.0 + (hi * 10 + lo)
            i -= 1
        return -v if neg else v
    for i in range(dlen):
        u |= (<uint64_t>d[i]) << (8 * i)
    if dlen < 8 and (d[dlen - 1] & 0x80):
        u |= (~(<uint64_t>0)) << (8 * dlen)
    sv = <int64_t>u
    return <double>sv


cdef int mbus_decode_frame(const uint8_t* p, Py_ssize_t n, uint32_t meter, int64_t rx_ts,
                           int medium_default, reading_buf* rb, frame_status_t* fs) noexcept nogil:
    """Decode one frame, appending its readings to rb and filling fs.  Returns -1 on OOM.
    ``medium_default`` (-1 = unknown) is the medium of telegrams without the long header
    (CI 0x7A / 0x78); a CI 0x72 header's own medium byte always wins."""
    cdef Py_ssize_t first = rb.n, L, i, k
    cdef const uint8_t* q
    cdef const uint8_t* end
    cdef const uint8_t* rec
    cdef const uint8_t* dp
    cdef uint8_t c, ci, dif, last, dv, vif, hstatus = 0, a = 0
    cdef int fam = FAM_OTHER, medium = medium_default, nd, nv, dt, dlen, func, kind, r
    cdef uint64_t storage, tariff, subunit, ob
    cdef bint reverse, unknown, bad, more = False
    cdef double mult, value
    cdef vinfo_t vi
    cdef uint16_t qual, base_q = Q_OK
    cdef int64_t ts
    cdef int nread = 0
    cdef uint8_t rstore[MAX_FRAME_READINGS]
    cdef uint8_t tmp[8]
    cdef bint msb = False
    cdef int64_t st_ts[N_STORAGE_TS]
    cdef uint8_t st_state[N_STORAGE_TS]
    fs.first = <uint32_t>first
    fs.count = 0
    fs.code = 0
    fs.offset = -1
    fs.status = FS_OK
    if n <= 0:
        fs.status = FS_TRUNCATED
        fs.offset = 0
        return 0
    if p[0] == 0xE5:
        if n == 1:
            fs.status = FS_NO_DATA
        else:
            fs.status = FS_BAD_LENGTH
            fs.offset = 1
        return 0
    if p[0] == 0x10:
        if n < 5:
            fs.status = FS_TRUNCATED; fs.offset = <int32_t>n
        elif n > 5:
            fs.status = FS_BAD_LENGTH; fs.offset = 5
        elif p[4] != 0x16:
            fs.status = FS_BAD_FRAMING; fs.offset = 4
        elif <uint8_t>(p[1] + p[2]) != p[3]:
            fs.status = FS_CHECKSUM; fs.offset = 3
        else:
            fs.status = FS_NO_DATA
        return 0
    if p[0] != 0x68:
        fs.status = FS_BAD_FRAMING
        fs.offset = 0
        return 0
    if n < 4:
        fs.status = FS_TRUNCATED; fs.offset = <int32_t>n
        return 0
    if p[1] != p[2]:
        fs.status = FS_BAD_FRAMING; fs.offset = 2
        return 0
    if p[3] != 0x68:
        fs.status = FS_BAD_FRAMING; fs.offset = 3
        return 0
    L = p[1]
    if L < 3:
        fs.status = FS_BAD_LENGTH; fs.offset = 1
        return 0
    if n < L + 6:
        fs.status = FS_TRUNCATED; fs.offset = <int32_t>n
        return 0
    if n > L + 6:
        fs.status = FS_BAD_LENGTH; fs.offset = <int32_t>(L + 6)
        return 0
    if p[L + 5] != 0x16:
        fs.status = FS_BAD_FRAMING; fs.offset = <int32_t>(L + 5)
        return 0
    if mp_sum8(p + 4, <size_t>L) != p[L + 4]:
        fs.status = FS_CHECKSUM; fs.offset = <int32_t>(L + 4)
        return 0
    c = p[4]
    ci = p[6]
    if (c & 0x4F) != 0x08:
        fs.status = FS_UNSUPPORTED; fs.offset = 4
        return 0
    q = p + 7
    end = p + 4 + L
    if ci == 0x72 or ci == 0x76:
        msb = ci == 0x76
        if end - q < 12:
            fs.status = FS_TRUNCATED; fs.offset = <int32_t>(end - p)
            return 0
        medium = q[7]
        hstatus = q[9]
        q += 12
    elif ci == 0x7A:
        if end - q < 4:
            fs.status = FS_TRUNCATED; fs.offset = <int32_t>(end - p)
            return 0
        hstatus = q[1]
        q += 4
    elif ci == 0x78:
        pass
    elif ci == 0x70:
        fs.status = FS_PROTOCOL_EXCEPTION
        fs.offset = 6
        fs.code = q[0] if q < end else 0
        return 0
    else:
        fs.status = FS_UNSUPPORTED; fs.offset = 6
        return 0
    _medium(medium, &a, &fam)
    if (hstatus & 0x03) != 0 or (hstatus & 0x18) != 0:
        base_q = Q_METER_ERROR
    for i in range(N_STORAGE_TS):
        st_state[i] = 0
    while q < end:
        rec = q
        dif = q[0]
        q += 1
        if (dif & 0x0F) == 0x0F:
            if dif == 0x0F:
                break
            if dif == 0x1F:
                more = True
                break
            if dif == 0x2F:
                continue
            fs.status = FS_UNSUPPORTED; fs.offset = <int32_t>(rec - p)
            break
        storage = (dif >> 6) & 1
        tariff = 0
        subunit = 0
        nd = 0
        last = dif
        while last & 0x80:
            if q >= end:
                fs.status = FS_TRUNCATED; fs.offset = <int32_t>(q - p)
                break
            if nd == MAX_DIFE:
                fs.status = FS_TOO_DEEP; fs.offset = <int32_t>(q - p)
                break
            dv = q[0]
            q += 1
            storage |= (<uint64_t>(dv & 0x0F)) << (1 + 4 * nd)
            tariff |= (<uint64_t>((dv >> 4) & 0x03)) << (2 * nd)
            subunit |= (<uint64_t>((dv >> 6) & 0x01)) << nd
            nd += 1
            last = dv
        if fs.status != FS_OK:
            break
        func = (dif >> 4) & 0x03
        dt = dif & 0x0F
        # --- VIB
        if q >= end:
            fs.status = FS_TRUNCATED; fs.offset = <int32_t>(q - p)
            break
        vif = q[0]
        q += 1
        reverse = False
        unknown = False
        mult = 1.0
        nv = 0
        last = vif
        if (vif & 0x7F) == 0x7C:          # plain-text unit: length byte + ASCII
            if q >= end:
                fs.status = FS_TRUNCATED; fs.offset = <int32_t>(q - p)
                break
            k = q[0]
            q += 1
            if end - q < k:
                fs.status = FS_TRUNCATED; fs.offset = <int32_t>(end - p)
                break
            q += k
            vi.qty = QT_NONE; vi.scale = 1.0; vi.unit = 255
        elif vif == 0xFD or vif == 0xFB or vif == 0xEF:
            if q >= end:
                fs.status = FS_TRUNCATED; fs.offset = <int32_t>(q - p)
                break
            last = q[0]
            q += 1
            nv = 1
            if vif == 0xFD:
                _ext_fd(last & 0x7F, &vi)
            elif vif == 0xFB:
                _ext_fb(last & 0x7F, &vi)
            else:
                vi.qty = QT_NONE; vi.scale = 1.0; vi.unit = 255
        else:
            _primary(vif & 0x7F, &vi)
        while last & 0x80:                # combinable (orthogonal) VIFEs
            if q >= end:
                fs.status = FS_TRUNCATED; fs.offset = <int32_t>(q - p)
                break
            if nv == MAX_VIFE:
                fs.status = FS_TOO_DEEP; fs.offset = <int32_t>(q - p)
                break
            last = q[0]
            q += 1
            nv += 1
            k = last & 0x7F
            if 0x70 <= k <= 0x77:
                mult *= p10((k & 0x07) - 6)
            elif k == 0x7D:
                mult *= 1000.0
            elif k == 0x3B:
                pass
            elif k == 0x3C:
                reverse = True
            else:
                unknown = True
        if fs.status != FS_OK:
            break
        # --- data field
        dlen = DLEN[dt]
        if dlen == -1:
            if q >= end:
                fs.status = FS_TRUNCATED; fs.offset = <int32_t>(q - p)
                break
            k = q[0]
            if k <= 0xBF:
                dlen = <int>k
            elif k <= 0xCF:
                dlen = <int>k - 0xC0
            elif k <= 0xDF:
                dlen = <int>k - 0xD0
            elif k <= 0xEF:
                dlen = <int>k - 0xE0
            elif k <= 0xFA:
                dlen = <int>k - 0xF0
            else:
                fs.status = FS_UNSUPPORTED; fs.offset = <int32_t>(q - p)
                break
            q += 1
            if end - q < dlen:
                fs.status = FS_TRUNCATED; fs.offset = <int32_t>(end - p)
                break
            q += dlen
            continue                      # variable-length data: no reading
        if end - q < dlen:
            fs.status = FS_TRUNCATED; fs.offset = <int32_t>(end - p)
            break
        dp = q
        q += dlen
        if msb and dlen <= 8:             # CI 0x76: data fields most significant byte first
            for i in range(dlen):
                tmp[i] = dp[dlen - 1 - i]
            dp = tmp
        if dlen == 0 or vi.qty == QT_NONE or unknown:
            continue
        if vi.qty == QT_DATE or vi.qty == QT_DATETIME:
            if func != 0 or storage >= N_STORAGE_TS or reverse or mult != 1.0:
                continue
            if vi.qty == QT_DATE and storage == 0:
                continue                  # a storage-0 date is a due date, not the clock
            if st_state[storage] != 0:
                continue                  # the first date record of a storage number wins
            kind = K_DATE_G if vi.qty == QT_DATE else K_DATE_F
            if dt == 0x05 or dt >= 0x09:
                continue
            r = _date_ts(kind, dp, dlen, &ts)
            if r == 1:
                st_ts[storage] = ts
                st_state[storage] = 1
            elif r == 0:
                st_state[storage] = 2
            continue
        ob = _obis_for(fam, a, vi.qty, func, storage, tariff, subunit, reverse)
        if ob == 0:
            continue
        bad = False
        value = _value(dt, dp, dlen, &bad) * vi.scale * mult
        qual = Q_METER_ERROR if bad else base_q
        if nread >= MAX_FRAME_READINGS:
            continue
        if rb_push(rb, meter, ob, rx_ts, value, vi.unit, qual) < 0:
            rb.n = first
            fs.status = FS_OUT_OF_MEMORY
            fs.offset = <int32_t>(rec - p)
            return -1
        rstore[nread] = <uint8_t>storage
        nread += 1
    if fs.status != FS_OK:
        rb.n = first                      # a frame that fails costs all of its readings
        return 0
    # timestamps: storage 0 <- the meter clock (VIF 6D), storage n <- its date record
    for i in range(nread):
        k = rstore[i]
        if k < N_STORAGE_TS:
            if st_state[k] == 1:
                rb.data[first + i].ts = st_ts[k]
            elif st_state[k] == 2 and rb.data[first + i].status == Q_OK:
                rb.data[first + i].status = Q_CLOCK_INVALID
    fs.count = <uint32_t>nread
    fs.code = hstatus | (0x100 if more else 0)
    return 0


cdef inline const uint32_t* _u32_ptr(object arr) except? NULL:
    cdef const uint32_t[::1] mv = arr
    return &mv[0]


cdef inline const int16_t* _i16_ptr(object arr) except? NULL:
    cdef const int16_t[::1] mv = arr
    return &mv[0]


cdef inline const int64_t* _i64_ptr(object arr) except? NULL:
    cdef const int64_t[::1] mv = arr
    return &mv[0]


def decode_batch(FrameBatch batch, meter_ids, received_at, int64_t received_scalar,
                 media=None, int medium_scalar=-1):
    """Decode every frame of ``batch``.  ``meter_ids``: None (frame index) or a C-contiguous
    uint32 array of len(batch); ``received_at``: None (use ``received_scalar`` ms) or a
    C-contiguous int64 array of ms since the epoch; ``media``: None (use ``medium_scalar``,
    -1 = unknown) or a C-contiguous int16 array, the medium of CI 0x7A / 0x78 telegrams.
    Returns (readings, frame_status)."""
    cdef Py_ssize_t nf = batch._n, i, ln
    cdef const uint8_t* fp
    cdef const uint32_t* mid = NULL
    cdef const int64_t* rxa = NULL
    cdef const int16_t* med = NULL
    cdef reading_buf rb
    cdef int rc = 0
    cdef bint oom = False
    fs_arr = new_frame_status(nf)
    if meter_ids is not None:
        if meter_ids.shape[0] != nf:
            raise ValueError("meter_ids has %d entries for %d frames" % (meter_ids.shape[0], nf))
        if nf:
            mid = _u32_ptr(meter_ids)
    if received_at is not None:
        if received_at.shape[0] != nf:
            raise ValueError("received_at has %d entries for %d frames" % (received_at.shape[0], nf))
        if nf:
            rxa = _i64_ptr(received_at)
    if media is not None:
        if media.shape[0] != nf:
            raise ValueError("media has %d entries for %d frames" % (media.shape[0], nf))
        if nf:
            med = _i16_ptr(media)
    if nf == 0:
        return rb_to_array_empty(), fs_arr
    cdef uint8_t[::1] fs_raw = fs_arr.view(np.uint8)
    cdef frame_status_t* fsp = <frame_status_t*>&fs_raw[0]
    cdef int64_t est = batch._op[nf] - batch._op[0] if batch._op[nf] >= batch._op[0] else 0
    with nogil:
        if rb_init(&rb, <Py_ssize_t>(est // 8 + 16)) < 0:
            oom = True
        else:
            for i in range(nf):
                if oom:
                    fsp[i].status = FS_OUT_OF_MEMORY
                    fsp[i].offset = -1
                    fsp[i].first = <uint32_t>rb.n
                    continue
                if not frame_at(batch, i, &fp, &ln):
                    fsp[i].status = FS_BAD_LENGTH
                    fsp[i].offset = -1
                    fsp[i].first = <uint32_t>rb.n
                    fsp[i].count = 0
                    continue
                rc = mbus_decode_frame(fp, ln, mid[i] if mid != NULL else <uint32_t>i,
                                       rxa[i] if rxa != NULL else received_scalar,
                                       med[i] if med != NULL else medium_scalar, &rb, &fsp[i])
                if rc < 0:
                    oom = True
    if rb.data == NULL:
        fs_arr["status"] = FS_OUT_OF_MEMORY
        raise MemoryError("M-Bus batch decode: out of memory")
    return rb_to_array(&rb), fs_arr


cdef object rb_to_array_empty():
    cdef reading_buf rb
    rb.data = NULL
    rb.n = 0
    rb.cap = 0
    return rb_to_array(&rb)
