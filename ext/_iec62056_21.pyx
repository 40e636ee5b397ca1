# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""IEC 62056-21 (formerly IEC 61107) mode C data readouts / programming-mode answers and DSMR P1
(mode D push) telegrams -> readings, in one nogil loop per batch.

All frames are 7-bit ASCII text.  What one frame may be (first byte decides):

* ``STX data-block [! CR LF] ETX|EOT BCC``: data readout or programming-mode answer.  BCC is the
  XOR (or, Energomera, the sum mod 128) of every byte after STX up to and including ETX/EOT,
  compared on its low 7 bits.
* ``/XXXZ ident CR LF`` followed by a DSMR telegram body and ``! hhhh CR LF`` (CRC-16/ARC of
  '/'..'!' inclusive, 4 hex digits; telegrams of DSMR 2/3 end in ``!`` CR LF with no CRC), or
  followed by an STX block (mode A/B readouts captured with their identification line), or
  alone (identification only: NO_DATA).
* ``SOH C D [STX data] ETX BCC`` command messages, ``ACK``, ``ACK V Z Y CR LF``, ``/? addr ! CR LF``:
  well-formed but carry no readings (NO_DATA); ``NAK`` is a PROTOCOL_EXCEPTION with code 0x15.

Data block grammar: data sets ``ID(g)(g)...`` separated by nothing or CR/LF; a line of bare
groups ``(g)(g)`` continues the previous data set (Energomera multi-line ``ET0PE`` answers and
``P.01`` load-profile rows); ``!`` at the start of a data set ends the block.  A group holds
comma-separated items; an item is ``[+-]digits[.digits][*unit]`` (at most 18 digits) or text.
Only 7-bit printable characters (and CR LF between data sets) are accepted in a block: the BCC is
compared on 7 bits, so a byte with bit 7 set is refused as BAD_FRAMING rather than trusted.

Mapping (documented in bindings/iec62056_21.py, mirrored by tests/reference/iec62056_21_ref.py):
IDs ``A-B:C.D.E*F``, ``C.D.E``, ``C.D`` (A=1, B=0, E=0, F=255 unless given; letters C=96, F=97,
L=98, P=99 in groups C..E), NEVA 8-hex-digit ``CCDDEEFF``, Energomera names (table below).  The
k-th item of one data set gets OBIS group E+k (tariffs), or for the phase-wise Energomera names
group C = c1 + 20*(k-1) for k >= 1.  Units: k/M/G prefixes scale to base units (kWh -> Wh).
Items that produce no reading (text, unknown ID) are counted in ``frame_status.code``.

Speed: the data-set address at each ordinal of a block is cached (``idslot_t``, compared 8 bytes
at a time) with its mapping and its last unit, since meters repeat the same readout; and a data
set of one group ``([+-]digits[.digits][*unit])`` under a mapped address is validated, parsed and
emitted in one pass (``_fast_value``).  Anything else takes the general two-pass path
(``_groups``), which gives the same results for the common shape.
"""
from cpython.buffer cimport PyBuffer_Release, PyBUF_SIMPLE
from cpython.exc cimport PyErr_Clear
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t
from libc.string cimport memcmp, memcpy, memchr, memset

from meterpoll.ext._common cimport obis_pack, valid_civil, civil_to_ms
from meterpoll.ext._crc cimport mp_crc_init_all, mp_crc16, mp_xor8, MP_CRC16_ARC
from meterpoll.ext._frames cimport FrameBatch, frame_at
from meterpoll.ext._readings cimport (
    reading_t, frame_status_t, reading_buf, rb_init, rb_push, rb_free, rb_to_array,
    new_frame_status,
    FS_OK, FS_CHECKSUM, FS_TRUNCATED, FS_BAD_LENGTH, FS_PROTOCOL_EXCEPTION, FS_UNSUPPORTED,
    FS_BAD_FRAMING, FS_OUT_OF_MEMORY, FS_NO_DATA, Q_OK, Q_CLOCK_INVALID,
)

import numpy as np

from meterpoll.ext._frames import FrameBatch as _FrameBatch

mp_crc_init_all()

cdef extern from "Python.h":
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer* view, int flags)

DEF MAXCH = 32          # channels of one P.xx profile header
DEF MAXID = 32          # characters of a data-set address

cdef enum:
    K_NONE = 0          # no data set yet: bare groups are counted as skipped
    K_ANON = 1          # unmapped address: items counted as skipped
    K_GENERIC = 2
    K_PROFILE_HDR = 3   # P.xx address: its groups start with the profile header
    K_PROFILE = 4

cdef enum:
    M_ESTEP = 0         # item k -> group E + k
    M_PHASE = 1         # item 0 -> C, item k >= 1 -> c1 + 20*(k-1)

# reasons (index into REASONS)
cdef enum:
    R_NONE = 0
    R_EMPTY = 1
    R_START = 2
    R_NO_ETX = 3
    R_NO_BCC = 4
    R_TRAILING = 5
    R_BCC = 6
    R_ID_CHAR = 7
    R_ID_LONG = 8
    R_GROUP_OPEN = 9
    R_GROUP_CHAR = 10
    R_AFTER_END = 11
    R_CMD = 12
    R_ACK = 13
    R_NAK = 14
    R_IDENT = 15
    R_NO_BANG = 16
    R_CRC = 17
    R_CRC_FMT = 18
    R_SIGNON = 19
    R_OOM = 20
    R_NO_DATA = 21
    R_UNSUP = 22
    R_OFFSETS = 23

REASONS = (
    "ok", "empty frame", "unknown start byte (expected STX, SOH, '/', ACK or NAK)",
    "no ETX/EOT: block not terminated", "BCC missing after ETX/EOT", "bytes after the BCC",
    "BCC mismatch", "bad character in a data-set address", "data-set address longer than 32 characters",
    "'(' group not closed", "bad character inside a '(...)' group", "data after the '!' end line",
    "bad command message header (SOH C D)", "malformed acknowledgement/option select",
    "NAK from the meter", "malformed identification line", "DSMR telegram without '!' end",
    "CRC-16/ARC mismatch", "malformed CRC after '!'", "malformed sign-on request",
    "out of memory", "frame carries no readings", "no data set could be mapped to a reading",
    "offsets point outside the buffer",
)

cdef uint8_t GCLS[256]     # inside a group: 0 plain, 1 ')', 2 refused, 4 ','
cdef uint8_t IDOK[256]     # 1: may appear in a data-set address
for _i in range(256):
    GCLS[_i] = 2 if (_i < 32 or _i >= 127 or _i == 40) else (1 if _i == 41 else (4 if _i == 44 else 0))
    IDOK[_i] = 1 if (32 < _i < 127 and _i != 40 and _i != 41 and _i != 33) else 0

cdef double POW10[19]
POW10[0] = 1.0
for _i in range(1, 19):
    POW10[_i] = POW10[_i - 1] * 10.0


DEF NSLOT = 64          # data-set address cache: slot = ordinal of the data set in its block


ctypedef struct idslot_t:
    # A data-set address seen at this ordinal in an earlier frame, and what it maps to (the
    # mapping is a pure function of the address text, so a byte-equal address reuses it).
    uint64_t tx[4]        # address text, zero-padded (compared 8 bytes at a time)
    uint64_t lastmask     # mask of the valid bytes of the last 8-byte chunk
    int len               # address length (1..MAXID); 0 = empty slot
    int kind
    uint8_t ob[6]
    int mode
    int c1
    uint8_t dunit
    double dscale
    uint64_t obase        # obis_pack(ob): the OBIS of item 0
    # last raw unit span (between '*' and ')', at most 8 bytes) of this address and its lookup
    uint64_t utx
    uint64_t umask
    int ulen              # -1 = none cached
    uint8_t uunit
    double uscale


ctypedef struct ctx_t:
    reading_buf* rb
    uint32_t meter
    int64_t rx            # receive time (ms) for readings without a timestamp of their own
    int64_t clock         # frame clock: DSMR 0-0:1.0.0, else rx
    int64_t off_ms        # local-time offset of naive meter timestamps (ms east of UTC)
    int status
    int reason
    Py_ssize_t offset
    uint32_t skipped
    int bad_oom
    # data-set context
    int kind
    uint8_t ob[6]
    int mode
    int c1
    uint8_t dunit
    double dscale
    int k
    # profile context
    int64_t pts
    int pts_ok
    int64_t period_ms
    int pn
    int pj
    uint64_t pob[MAXCH]
    uint8_t pvalid[MAXCH]
    uint8_t punit[MAXCH]
    double pscale[MAXCH]
    # last unit text seen and its lookup (readouts repeat units)
    uint8_t utext[8]
    Py_ssize_t ulen
    uint8_t uunit
    double uscale
    idslot_t slots[NSLOT]


cdef inline void _ctx_init(ctx_t* c) noexcept nogil:
    cdef int i
    c.ulen = -1
    for i in range(NSLOT):
        c.slots[i].len = 0
        c.slots[i].ulen = -1


cdef inline int _fail(ctx_t* c, int status, int reason, Py_ssize_t off) noexcept nogil:
    c.status = status
    c.reason = reason
    c.offset = off
    return -1


cdef inline bint _digit(uint8_t ch) noexcept nogil:
    return ch >= 48 and ch <= 57


cdef inline int _hexval(uint8_t ch) noexcept nogil:
    if ch >= 48 and ch <= 57:
        return ch - 48
    if ch >= 65 and ch <= 70:
        return ch - 55
    if ch >= 97 and ch <= 102:
        return ch - 87
    return -1


cdef inline int _two(const uint8_t* p) noexcept nogil:
    return (p[0] - 48) * 10 + (p[1] - 48)


cdef inline bint _alldigits(const uint8_t* p, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(a, b):
        if not _digit(p[i]):
            return False
    return True


cdef inline int _ts12(const uint8_t* p, int has_sec, int64_t off_ms, int64_t* out) noexcept nogil:
    """YYMMDDhhmm[ss] at p (digits already checked) -> ms UTC; 0 if the date is invalid."""
    cdef int y = 2000 + _two(p), mo = _two(p + 2), d = _two(p + 4), h = _two(p + 6), mi = _two(p + 8)
    cdef int s = _two(p + 10) if has_sec else 0
    if not valid_civil(y, mo, d, h, mi, s) or s > 59:
        return 0
    out[0] = civil_to_ms(y, mo, d, h, mi, s, 0) - off_ms
    return 1


cdef inline int _ts_candidate(const uint8_t* p, Py_ssize_t a, Py_ssize_t b, int64_t off_ms,
                              int64_t* out) noexcept nogil:
    """A group that is a timestamp: 10 digits YYMMDDhhmm (naive, off_ms applies) or 12 digits +
    S/W (DSMR: S = UTC+2, W = UTC+1).  Returns 0 no, 1 valid timestamp, 2 timestamp-shaped but
    not a valid date."""
    cdef Py_ssize_t n = b - a
    if n == 10 and _alldigits(p, a, b):
        return 1 if _ts12(p + a, 0, off_ms, out) else 2
    if n == 13 and _alldigits(p, a, b - 1) and (p[b - 1] == 83 or p[b - 1] == 87):
        return 1 if _ts12(p + a, 1, (7200000 if p[b - 1] == 83 else 3600000), out) else 2
    return 0


cdef inline void _trim(const uint8_t* p, Py_ssize_t* a, Py_ssize_t* b) noexcept nogil:
    while a[0] < b[0] and p[a[0]] == 32:
        a[0] += 1
    while b[0] > a[0] and p[b[0] - 1] == 32:
        b[0] -= 1


cdef inline int _parse_num(const uint8_t* p, Py_ssize_t a, Py_ssize_t b, double* val,
                           Py_ssize_t* ua, Py_ssize_t* ub) noexcept nogil:
    """Item ``[+-]digits[.digits][*unit]`` (a..b already trimmed): 1 and the value, unit span
    (ua == ub when there is no unit); 0 for anything else."""
    cdef Py_ssize_t i = a
    cdef bint neg = False
    cdef uint64_t mant = 0
    cdef int nd = 0, frac = 0
    cdef uint8_t ch
    if i < b and (p[i] == 43 or p[i] == 45):
        neg = p[i] == 45
        i += 1
    while i < b:
        ch = p[i] - 48
        if ch > 9:
            break
        if nd >= 18:
            return 0
        mant = mant * 10 + ch
        nd += 1
        i += 1
    if i < b and p[i] == 46:
        i += 1
        while i < b:
            ch = p[i] - 48
            if ch > 9:
                break
            if nd >= 18:
                return 0
            mant = mant * 10 + ch
            nd += 1
            frac += 1
            i += 1
    if nd == 0:
        return 0
    ua[0] = i
    ub[0] = i
    if i < b:
        if p[i] != 42:      # '*'
            return 0
        ua[0] = i + 1
        ub[0] = b
        _trim(p, ua, ub)
    val[0] = (<double>mant) / POW10[frac]
    if neg:
        val[0] = -val[0]
    return 1


cdef inline bint _eq(const uint8_t* s, Py_ssize_t n, const char* lit, Py_ssize_t ln) noexcept nogil:
    return n == ln and memcmp(s, lit, ln) == 0


cdef int _base_unit(const uint8_t* s, Py_ssize_t n, bint prefixable_only) noexcept nogil:
    """DLMS unit code of a lower-case base unit name, 0 if unknown."""
    if _eq(s, n, b"wh", 2): return 30
    if _eq(s, n, b"varh", 4): return 32
    if _eq(s, n, b"vah", 3): return 31
    if _eq(s, n, b"w", 1): return 27
    if _eq(s, n, b"var", 3): return 29
    if _eq(s, n, b"va", 2): return 28
    if _eq(s, n, b"v", 1): return 35
    if _eq(s, n, b"a", 1): return 33
    if _eq(s, n, b"j", 1): return 25
    if prefixable_only:
        return 0
    if _eq(s, n, b"hz", 2): return 44
    if _eq(s, n, b"m3", 2): return 13
    if _eq(s, n, b"m3/h", 4): return 15
    if _eq(s, n, b"%", 1): return 56
    if _eq(s, n, b"h", 1): return 5
    if _eq(s, n, b"min", 3): return 6
    if _eq(s, n, b"s", 1): return 7
    if _eq(s, n, b"deg", 3): return 8
    return 0


cdef void _unit(const uint8_t* p, Py_ssize_t a, Py_ssize_t b, uint8_t* code, double* scale) noexcept nogil:
    """Unit text -> (DLMS code, factor to the base unit).  Unknown -> (254 OTHER, 1)."""
    cdef uint8_t low[8]
    cdef Py_ssize_t n = b - a, i
    cdef int u
    cdef uint8_t ch
    code[0] = 254
    scale[0] = 1.0
    if n <= 0 or n > 8:
        return
    for i in range(n):
        ch = p[a + i]
        low[i] = ch + 32 if (ch >= 65 and ch <= 90) else ch
    u = _base_unit(low, n, False)
    if u:
        code[0] = <uint8_t>u
        return
    if n < 2:
        return
    u = _base_unit(low + 1, n - 1, True)
    if not u:
        return
    ch = p[a]
    if ch == 107 or ch == 75:       # k, K
        scale[0] = 1e3
    elif ch == 77:                  # M
        scale[0] = 1e6
    elif ch == 71:                  # G
        scale[0] = 1e9
    else:
        return
    code[0] = <uint8_t>u


cdef void _default_unit(int cc, int dd, uint8_t* code, double* scale) noexcept nogil:
    """Implied unit of a NEVA hex address (wb-mqtt-serial NEVA template: kWh, kvarh, kW, V, A, Hz)."""
    cdef int q = cc % 20
    code[0] = 255
    scale[0] = 1.0
    if (dd == 8 or dd == 7) and cc <= 80:
        if q == 1 or q == 2 or q == 15 or q == 16:
            code[0] = 30 if dd == 8 else 27
            scale[0] = 1e3
        elif q == 3 or q == 4 or q == 5 or q == 6 or q == 7 or q == 8:
            code[0] = 32 if dd == 8 else 29
            scale[0] = 1e3
        elif q == 9 or q == 10:
            code[0] = 31 if dd == 8 else 28
            scale[0] = 1e3
        elif dd == 7 and q == 12:
            code[0] = 35
        elif dd == 7 and q == 11:
            code[0] = 33
        elif dd == 7 and cc == 14:
            code[0] = 44


cdef inline int _obis_num(const uint8_t* p, Py_ssize_t* i, Py_ssize_t b, bint letters) noexcept nogil:
    """One OBIS group at p[i]: 1..3 digits (0..255) or, if letters, C/F/L/P -> 96..99.  -1 if none."""
    cdef int v = 0, nd = 0
    cdef uint8_t ch
    if letters and i[0] < b:
        ch = p[i[0]]
        if ch == 67 or ch == 70 or ch == 76 or ch == 80:
            i[0] += 1
            return 96 if ch == 67 else (97 if ch == 70 else (98 if ch == 76 else 99))
    while i[0] < b and _digit(p[i[0]]):
        if nd == 3:
            return -1
        v = v * 10 + (p[i[0]] - 48)
        nd += 1
        i[0] += 1
    if nd == 0 or v > 255:
        return -1
    return v


cdef int _map_id(const uint8_t* p, Py_ssize_t a, Py_ssize_t b, uint8_t* ob, int* mode, int* c1,
                 uint8_t* dunit, double* dscale) noexcept nogil:
    """Data-set address -> OBIS.  1 if mapped."""
    cdef Py_ssize_t n = b - a, i, j
    cdef int v, A = 1, B = 0, C, D = 0, E = 0, F = 255
    cdef int hv[8]
    cdef const uint8_t* s = p + a
    mode[0] = M_ESTEP
    c1[0] = 0
    dunit[0] = 255
    dscale[0] = 1.0
    # Energomera names (CE102M/CE30x; POWEQ/POWES/COS_f unverified)
    if n == 5 and s[0] >= 65:      # vendor names start with a letter; OBIS text with a digit or C/F/L/P
        C = -1
        if memcmp(s, b"ET0PE", 5) == 0:
            C = 1; D = 8; dunit[0] = 30; dscale[0] = 1e3
        elif memcmp(s, b"ET0PI", 5) == 0:
            C = 2; D = 8; dunit[0] = 30; dscale[0] = 1e3
        elif memcmp(s, b"ET0QE", 5) == 0:
            C = 3; D = 8; dunit[0] = 32; dscale[0] = 1e3
        elif memcmp(s, b"ET0QI", 5) == 0:
            C = 4; D = 8; dunit[0] = 32; dscale[0] = 1e3
        elif memcmp(s, b"VOLTA", 5) == 0:
            C = 32; D = 7; dunit[0] = 35; mode[0] = M_PHASE; c1[0] = 52
        elif memcmp(s, b"CURRE", 5) == 0:
            C = 31; D = 7; dunit[0] = 33; mode[0] = M_PHASE; c1[0] = 51
        elif memcmp(s, b"POWEP", 5) == 0:
            C = 1; D = 7; dunit[0] = 27; dscale[0] = 1e3; mode[0] = M_PHASE; c1[0] = 21
        elif memcmp(s, b"POWEQ", 5) == 0:
            C = 3; D = 7; dunit[0] = 29; dscale[0] = 1e3; mode[0] = M_PHASE; c1[0] = 23
        elif memcmp(s, b"POWES", 5) == 0:
            C = 9; D = 7; dunit[0] = 28; dscale[0] = 1e3; mode[0] = M_PHASE; c1[0] = 29
        elif memcmp(s, b"FREQU", 5) == 0:
            C = 14; D = 7; dunit[0] = 44
        elif memcmp(s, b"COS_f", 5) == 0:
            C = 13; D = 7; mode[0] = M_PHASE; c1[0] = 33
        if C >= 0:
            ob[0] = 1; ob[1] = 0; ob[2] = <uint8_t>C; ob[3] = <uint8_t>D; ob[4] = 0; ob[5] = 255
            return 1
    if n == 4 and memcmp(s, b"400D", 4) == 0:   # Energomera CE30x GROUP code: frequency
        ob[0] = 1; ob[1] = 0; ob[2] = 14; ob[3] = 7; ob[4] = 0; ob[5] = 255
        dunit[0] = 44
        return 1
    # NEVA: C D E F as 8 upper-case hex digits
    if n == 8:
        for j in range(8):
            v = s[j]
            if _digit(v):
                hv[j] = v - 48
            elif v >= 65 and v <= 70:
                hv[j] = v - 55
            else:
                break
        else:
            C = hv[0] * 16 + hv[1]
            D = hv[2] * 16 + hv[3]
            E = hv[4] * 16 + hv[5]
            F = hv[6] * 16 + hv[7]
            if E == 0x80:   # list "sum, T1..Tn": item k -> E = k
                E = 0
            ob[0] = 1; ob[1] = 0; ob[2] = <uint8_t>C; ob[3] = <uint8_t>D; ob[4] = <uint8_t>E
            ob[5] = <uint8_t>F
            _default_unit(C, D, dunit, dscale)
            return 1
    # OBIS text: [A-B:]C.D[.E][*F|&F]
    i = a
    for j in range(i, b):
        if p[j] == 58:      # ':'
            v = _obis_num(p, &i, b, False)
            if v < 0 or i >= b or p[i] != 45:
                return 0
            A = v
            i += 1
            v = _obis_num(p, &i, b, False)
            if v < 0 or i >= b or p[i] != 58:
                return 0
            B = v
            i += 1
            break
    C = _obis_num(p, &i, b, True)
    if C < 0 or i >= b or p[i] != 46:
        return 0
    i += 1
    D = _obis_num(p, &i, b, True)
    if D < 0:
        return 0
    if i < b and p[i] == 46:
        i += 1
        E = _obis_num(p, &i, b, True)
        if E < 0:
            return 0
    if i < b and (p[i] == 42 or p[i] == 38):
        i += 1
        F = _obis_num(p, &i, b, False)
        if F < 0:
            return 0
    if i != b:
        return 0
    ob[0] = <uint8_t>A; ob[1] = <uint8_t>B; ob[2] = <uint8_t>C; ob[3] = <uint8_t>D
    ob[4] = <uint8_t>E; ob[5] = <uint8_t>F
    return 1


cdef inline int _push(ctx_t* c, uint64_t obis, int64_t ts, double v, uint8_t unit, uint16_t q) noexcept nogil:
    if rb_push(c.rb, c.meter, obis, ts, v, unit, q) < 0:
        c.bad_oom = 1
        return -1
    return 0


cdef int _emit_generic(ctx_t* c, const uint8_t* p, Py_ssize_t a, Py_ssize_t b, int64_t ts,
                       uint16_t q) noexcept nogil:
    cdef double v
    cdef Py_ssize_t ua, ub
    cdef int k = c.k, C, E
    cdef uint8_t unit
    cdef double scale
    _trim(p, &a, &b)
    c.k += 1
    if a == b:
        return 0
    if c.kind != K_GENERIC or not _parse_num(p, a, b, &v, &ua, &ub):
        c.skipped += 1
        return 0
    C = c.ob[2]
    E = c.ob[4]
    if c.mode == M_ESTEP:
        E += k
    elif k > 0:
        C = c.c1 + 20 * (k - 1)
    if E > 255 or C > 255:
        c.skipped += 1
        return 0
    if ua < ub:
        if ub - ua == c.ulen and memcmp(p + ua, c.utext, <size_t>c.ulen) == 0:
            unit = c.uunit
            scale = c.uscale
        else:
            _unit(p, ua, ub, &unit, &scale)
            if ub - ua <= 8:
                memcpy(c.utext, p + ua, <size_t>(ub - ua))
                c.ulen = ub - ua
                c.uunit = unit
                c.uscale = scale
    else:
        unit = c.dunit
        scale = c.dscale
    return _push(c, obis_pack(c.ob[0], c.ob[1], <uint8_t>C, c.ob[3], <uint8_t>E, c.ob[5]),
                 ts, v * scale, unit, q)


cdef int _emit_profile(ctx_t* c, const uint8_t* p, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef double v, scale
    cdef Py_ssize_t ua, ub
    cdef int j = c.pj, ch
    cdef uint8_t unit
    cdef int64_t ts
    cdef uint16_t q = Q_OK
    _trim(p, &a, &b)
    c.pj += 1
    if a == b:
        return 0
    ch = j % c.pn
    if not c.pvalid[ch] or not _parse_num(p, a, b, &v, &ua, &ub):
        c.skipped += 1
        return 0
    if ua < ub:
        _unit(p, ua, ub, &unit, &scale)
    else:
        unit = c.punit[ch]
        scale = c.pscale[ch]
    if c.pts_ok:
        ts = c.pts + (j // c.pn) * c.period_ms
    else:
        ts = c.rx
        q = Q_CLOCK_INVALID
    return _push(c, c.pob[ch], ts, v * scale, unit, q)


cdef inline Py_ssize_t _group_end(ctx_t* c, const uint8_t* p, Py_ssize_t pos, Py_ssize_t e) noexcept nogil:
    """p[pos] == '(' : index of its ')' or -1 (status set)."""
    cdef Py_ssize_t i = pos + 1
    cdef uint8_t ch
    while i < e:
        ch = p[i]
        if ch == 41:
            return i
        if ch == 40 or ch < 32 or ch >= 127:
            _fail(c, FS_BAD_FRAMING, R_GROUP_CHAR, i)
            return -1
        i += 1
    _fail(c, FS_BAD_FRAMING, R_GROUP_OPEN, pos)
    return -1


cdef int _items(ctx_t* c, const uint8_t* p, Py_ssize_t a, Py_ssize_t b, bint profile, int64_t ts,
                uint16_t q) noexcept nogil:
    """Comma-separated items of one group's content p[a:b]."""
    cdef Py_ssize_t s = a, i
    for i in range(a, b + 1):
        if i == b or p[i] == 44:
            if profile:
                if _emit_profile(c, p, s, i) < 0:
                    return -1
            else:
                if _emit_generic(c, p, s, i, ts, q) < 0:
                    return -1
            s = i + 1
    return 0


cdef inline int _small_int(const uint8_t* p, Py_ssize_t a, Py_ssize_t b, int maxdig) noexcept nogil:
    """Decimal 1..maxdig digits -> value, -1 otherwise."""
    cdef int v = 0
    cdef Py_ssize_t i
    if b <= a or b - a > maxdig:
        return -1
    for i in range(a, b):
        if not _digit(p[i]):
            return -1
        v = v * 10 + (p[i] - 48)
    return v


cdef int _profile_header(ctx_t* c, const uint8_t* p, Py_ssize_t gs, Py_ssize_t e, Py_ssize_t* after) noexcept nogil:
    """Parse ``(time)(status)(period)(n)(id)(unit)*n`` from p[gs] (groups already validated).
    1 if valid (context set, after = position after the header groups), 0 if not."""
    cdef Py_ssize_t pos = gs, ge, a, b
    cdef int gi = 0, v, ch, mode, c1, mapped
    cdef int64_t t
    cdef uint8_t ob[6]
    cdef uint8_t dunit
    cdef double dscale
    cdef Py_ssize_t n
    c.pn = 0
    while pos < e and p[pos] == 40:
        ge = _group_end(c, p, pos, e)
        a = pos + 1
        b = ge
        if gi == 0:
            n = b - a
            if not _alldigits(p, a, b) or n < 10 or n > 13:
                return 0
            if n == 11 or n == 13:
                a += 1
            c.pts_ok = _ts12(p + a, 1 if (b - a) == 12 else 0, c.off_ms, &t)
            c.pts = t if c.pts_ok else 0
        elif gi == 2:
            if a == b:
                c.period_ms = 0
            else:
                v = _small_int(p, a, b, 4)
                if v < 0:
                    return 0
                c.period_ms = <int64_t>v * 60000
        elif gi == 3:
            v = _small_int(p, a, b, 2)
            if v < 1 or v > MAXCH:
                return 0
            c.pn = v
        elif gi >= 4:
            ch = (gi - 4) // 2
            if (gi - 4) % 2 == 0:
                _trim(p, &a, &b)
                mapped = _map_id(p, a, b, ob, &mode, &c1, &dunit, &dscale)
                c.pvalid[ch] = <uint8_t>mapped
                c.pob[ch] = obis_pack(ob[0], ob[1], ob[2], ob[3], ob[4], ob[5]) if mapped else 0
            else:
                _trim(p, &a, &b)
                if a == b:
                    c.punit[ch] = 255
                    c.pscale[ch] = 1.0
                else:
                    _unit(p, a, b, &c.punit[ch], &c.pscale[ch])
        pos = ge + 1
        gi += 1
        if gi >= 4 and gi == 4 + 2 * c.pn:
            after[0] = pos
            c.pj = 0
            return 1
    return 0


DEF GCACHE = 16


cdef Py_ssize_t _groups(ctx_t* c, const uint8_t* p, Py_ssize_t pos, Py_ssize_t e) noexcept nogil:
    """The groups of one data set (or of a continuation line) at p[pos] == '('.  Returns the
    position after them, -1 on error."""
    cdef Py_ssize_t gs = pos, ge, after, i
    cdef int ng = 0, tsk, nts = 0, gi
    cdef int64_t t, ts = c.clock
    cdef uint16_t q = Q_OK
    cdef bint have_ts = False, ts_bad = False, last_clock = False, comma
    cdef Py_ssize_t gend[GCACHE]
    cdef uint8_t gflag[GCACHE]      # bit 0: has a comma, bit 1: timestamp-shaped
    cdef uint8_t ch
    # pass 1: validate, count, find a timestamp group
    while pos < e and p[pos] == 40:
        i = pos + 1
        comma = False
        while True:
            while i < e and GCLS[p[i]] == 0:
                i += 1
            if i >= e:
                _fail(c, FS_BAD_FRAMING, R_GROUP_OPEN, pos)
                return -1
            ch = GCLS[p[i]]
            if ch == 1:
                break
            if ch == 2:
                _fail(c, FS_BAD_FRAMING, R_GROUP_CHAR, i)
                return -1
            comma = True
            i += 1
        ge = i
        tsk = _ts_candidate(p, pos + 1, ge, c.off_ms, &t)
        if tsk:
            nts += 1
            last_clock = (ge - pos - 1) == 13
            if not have_ts:
                have_ts = True
                ts_bad = tsk == 2
                ts = t
        if ng < GCACHE:
            gend[ng] = ge
            gflag[ng] = (1 if comma else 0) | (2 if tsk else 0)
        ng += 1
        pos = ge + 1
    after = pos
    if c.kind == K_PROFILE_HDR:
        if _profile_header(c, p, gs, after, &pos):
            c.kind = K_PROFILE
            gs = pos
        else:
            c.kind = K_ANON
            c.skipped += 1
            return after
    if c.kind == K_PROFILE:
        pos = gs
        while pos < after:
            ge = _group_end(c, p, pos, after)
            if _items(c, p, pos + 1, ge, True, 0, 0) < 0:
                return -1
            pos = ge + 1
        return after
    if ng == 1 and nts == 1 and last_clock:
        return after        # a lone DSMR timestamp (the telegram clock): no reading
    if ng >= 2 and have_ts:
        if ts_bad:
            ts = c.rx
            q = Q_CLOCK_INVALID
    else:
        have_ts = False
        ts = c.clock
    pos = gs
    if ng <= GCACHE:
        for gi in range(ng):
            ge = gend[gi]
            if not (have_ts and (gflag[gi] & 2)):
                if gflag[gi] & 1:
                    if _items(c, p, pos + 1, ge, False, ts, q) < 0:
                        return -1
                elif _emit_generic(c, p, pos + 1, ge, ts, q) < 0:
                    return -1
            pos = ge + 1
        return after
    while pos < after:
        ge = _group_end(c, p, pos, after)
        if not (have_ts and _ts_candidate(p, pos + 1, ge, c.off_ms, &t)):
            if _items(c, p, pos + 1, ge, False, ts, q) < 0:
                return -1
        pos = ge + 1
    return after


cdef inline bint _eq8(const uint8_t* s, const uint8_t* end, uint64_t want, uint64_t mask,
                      Py_ssize_t n) noexcept nogil:
    """s[0:n] (n <= 8, all inside the frame) equals the n bytes packed in ``want`` (built by
    memcpy into a zeroed word; ``mask`` by memset of n bytes, so this is endian-neutral).  Loads
    a whole word only when 8 bytes are inside the frame."""
    cdef uint64_t w = 0
    if s + 8 <= end:
        memcpy(&w, s, 8)
        return ((w ^ want) & mask) == 0
    memcpy(&w, s, <size_t>n)
    return w == want


cdef inline bint _idmatch(const uint8_t* s, const uint8_t* end, idslot_t* sl) noexcept nogil:
    """The cached address of this slot, followed by '(', starts at s."""
    cdef Py_ssize_t L = sl.len, q, j
    cdef uint64_t w
    if s + L >= end or s[L] != 40:
        return False
    q = (L - 1) >> 3
    if s + 8 * (q + 1) > end:
        return memcmp(s, sl.tx, <size_t>L) == 0
    for j in range(q):
        memcpy(&w, s + 8 * j, 8)
        if w != sl.tx[j]:
            return False
    memcpy(&w, s + 8 * q, 8)
    return ((w ^ sl.tx[q]) & sl.lastmask) == 0


cdef inline void _slot_fill(ctx_t* c, idslot_t* sl, const uint8_t* s, Py_ssize_t L) noexcept nogil:
    """Remember address s[0:L] (1 <= L <= MAXID) and the data-set context it produced."""
    cdef Py_ssize_t r = L - 8 * ((L - 1) >> 3)
    cdef int j
    sl.tx[0] = 0
    sl.tx[1] = 0
    sl.tx[2] = 0
    sl.tx[3] = 0
    memcpy(sl.tx, s, <size_t>L)
    sl.lastmask = 0
    memset(&sl.lastmask, 0xFF, <size_t>r)
    sl.len = <int>L
    sl.kind = c.kind
    for j in range(6):
        sl.ob[j] = c.ob[j]
    sl.mode = c.mode
    sl.c1 = c.c1
    sl.dunit = c.dunit
    sl.dscale = c.dscale
    sl.obase = obis_pack(c.ob[0], c.ob[1], c.ob[2], c.ob[3], c.ob[4], c.ob[5])
    sl.ulen = -1


cdef inline Py_ssize_t _fast_value(ctx_t* c, idslot_t* sl, const uint8_t* p, Py_ssize_t pos,
                                   Py_ssize_t e) noexcept nogil:
    """p[pos] == '(' right after a mapped (K_GENERIC) address: the common data set of ONE group
    ``([+-]digits[.digits][*unit])`` is validated, parsed and emitted in a single pass.  Returns
    the position after ')' or -1 when the data set is anything else: then nothing was consumed
    or emitted and the caller runs the general path (_groups) from pos.  Same results as the
    general path: ``_parse_num`` (same digit limit and arithmetic), ``_unit`` on the trimmed
    unit span, ``_emit_generic``'s OBIS stepping."""
    cdef Py_ssize_t i = pos + 1, ua, ub, a2, b2, L
    cdef bint neg = False
    cdef uint64_t mant = 0
    cdef uint32_t d
    cdef int nd = 0, frac = 0, k, C, E
    cdef uint8_t unit
    cdef uint64_t obis
    cdef double v, scale
    if i >= e:
        return -1
    if p[i] == 45 or p[i] == 43:
        neg = p[i] == 45
        i += 1
    while i < e:
        d = <uint32_t>p[i] - 48
        if d > 9:
            break
        mant = mant * 10 + d
        nd += 1
        i += 1
    if i < e and p[i] == 46:
        i += 1
        while i < e:
            d = <uint32_t>p[i] - 48
            if d > 9:
                break
            mant = mant * 10 + d
            nd += 1
            frac += 1
            i += 1
    if nd == 0 or nd > 18 or i >= e:
        return -1
    if p[i] == 41:
        unit = sl.dunit
        scale = sl.dscale
    elif p[i] == 42:
        ua = i + 1
        L = sl.ulen
        if L >= 0 and ua + L < e and p[ua + L] == 41 and _eq8(p + ua, p + e, sl.utx, sl.umask, L):
            unit = sl.uunit
            scale = sl.uscale
            i = ua + L
        else:
            i = ua
            while i < e and GCLS[p[i]] == 0:
                i += 1
            if i >= e or p[i] != 41:
                return -1
            ub = i
            a2 = ua
            b2 = ub
            _trim(p, &a2, &b2)
            if a2 < b2:
                _unit(p, a2, b2, &unit, &scale)
            else:
                unit = sl.dunit
                scale = sl.dscale
            L = ub - ua
            if L <= 8:
                sl.utx = 0
                memcpy(&sl.utx, p + ua, <size_t>L)
                sl.umask = 0
                memset(&sl.umask, 0xFF, <size_t>L)
                sl.ulen = <int>L
                sl.uunit = unit
                sl.uscale = scale
    else:
        return -1
    # p[i] == ')'
    if i + 1 < e and p[i + 1] == 40:
        return -1           # more groups in this data set: general path
    k = c.k
    c.k += 1
    if k == 0:
        obis = sl.obase
    else:
        C = sl.ob[2]
        E = sl.ob[4]
        if sl.mode == M_ESTEP:
            E += k
        else:
            C = sl.c1 + 20 * (k - 1)
        if E > 255 or C > 255:
            c.skipped += 1
            return i + 1
        obis = obis_pack(sl.ob[0], sl.ob[1], <uint8_t>C, sl.ob[3], <uint8_t>E, sl.ob[5])
    v = (<double>mant) / POW10[frac]
    if neg:
        v = -v
    _push(c, obis, c.clock, v * scale, unit, Q_OK)
    return i + 1


cdef int _content(ctx_t* c, const uint8_t* p, Py_ssize_t s, Py_ssize_t e, bint allow_bang) noexcept nogil:
    """Data sets in p[s:e]."""
    cdef Py_ssize_t pos = s, ids, r
    cdef uint8_t ch
    cdef int mode, c1, j
    cdef uint32_t nds = 0
    cdef idslot_t* sl
    cdef idslot_t* pend = NULL
    c.kind = K_NONE
    c.k = 0
    while True:
        while pos < e and (p[pos] == 13 or p[pos] == 10):
            pos += 1
        if pos >= e:
            return 0
        ch = p[pos]
        if ch == 33 and allow_bang:
            pos += 1
            while pos < e:
                if p[pos] != 13 and p[pos] != 10:
                    return _fail(c, FS_BAD_FRAMING, R_AFTER_END, pos)
                pos += 1
            return 0
        if ch != 40:
            ids = pos
            sl = &c.slots[nds & (NSLOT - 1)]
            nds += 1
            c.k = 0
            pend = NULL
            if sl.len and _idmatch(p + ids, p + e, sl):
                # same address as at this place in an earlier frame: same mapping
                pos = ids + sl.len
                c.kind = sl.kind
                if c.kind == K_GENERIC:
                    pend = sl       # c.ob & co. are loaded only if the general path needs them
            else:
                while pos < e and IDOK[p[pos]]:
                    pos += 1
                if pos - ids > MAXID:
                    return _fail(c, FS_BAD_FRAMING, R_ID_LONG, ids + MAXID + 1)
                if pos >= e or p[pos] != 40:
                    return _fail(c, FS_BAD_FRAMING, R_ID_CHAR, pos)
                if (pos - ids == 3 or pos - ids == 4) and p[ids] == 80 and p[ids + 1] == 46 \
                        and _alldigits(p, ids + 2, pos):
                    c.kind = K_PROFILE_HDR
                elif _map_id(p, ids, pos, c.ob, &mode, &c1, &c.dunit, &c.dscale):
                    c.kind = K_GENERIC
                    c.mode = mode
                    c.c1 = c1
                else:
                    c.kind = K_ANON
                _slot_fill(c, sl, p + ids, pos - ids)
            if c.kind == K_GENERIC:
                r = _fast_value(c, sl, p, pos, e)
                if r >= 0:
                    pos = r
                    if c.bad_oom:
                        return _fail(c, FS_OUT_OF_MEMORY, R_OOM, pos)
                    continue
        elif c.kind == K_NONE:
            c.kind = K_ANON
        if pend != NULL:
            for j in range(6):
                c.ob[j] = pend.ob[j]
            c.mode = pend.mode
            c.c1 = pend.c1
            c.dunit = pend.dunit
            c.dscale = pend.dscale
            pend = NULL
        pos = _groups(c, p, pos, e)
        if pos < 0:
            return -1
        if c.bad_oom:
            return _fail(c, FS_OUT_OF_MEMORY, R_OOM, pos)


cdef inline bint _bcc_ok(const uint8_t* p, Py_ssize_t n, uint8_t want, int mode) noexcept nogil:
    cdef uint32_t s = 0
    cdef Py_ssize_t i
    if mode == 2:
        return True
    if mode == 0:
        return ((mp_xor8(p, <size_t>n) ^ want) & 0x7F) == 0
    for i in range(n):
        s += p[i]
    return ((s ^ want) & 0x7F) == 0


cdef int _stx_block(ctx_t* c, const uint8_t* p, Py_ssize_t s, Py_ssize_t n, int bcc_mode) noexcept nogil:
    """STX block starting at p[s] == STX."""
    cdef Py_ssize_t i
    cdef const uint8_t* q = <const uint8_t*>memchr(p + s + 1, 3, <size_t>(n - s - 1))
    cdef const uint8_t* q4
    i = n if q == NULL else q - p
    q4 = <const uint8_t*>memchr(p + s + 1, 4, <size_t>(i - s - 1))
    if q4 != NULL:
        i = q4 - p
    if i >= n:
        return _fail(c, FS_TRUNCATED, R_NO_ETX, n)
    if i + 1 >= n:
        return _fail(c, FS_TRUNCATED, R_NO_BCC, n)
    if i + 2 < n:
        return _fail(c, FS_BAD_LENGTH, R_TRAILING, i + 2)
    if not _bcc_ok(p + s + 1, i - s, p[i + 1], bcc_mode):
        return _fail(c, FS_CHECKSUM, R_BCC, i + 1)
    return _content(c, p, s + 1, i, True)


cdef int64_t _dsmr_clock(ctx_t* c, const uint8_t* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """ts of the telegram clock line ``0-0:1.0.0(YYMMDDhhmmssX)`` at a line start, else rx."""
    cdef Py_ssize_t i
    cdef int64_t t
    for i in range(s, e - 23):
        if (i == s or p[i - 1] == 10) and memcmp(p + i, b"0-0:1.0.0(", 10) == 0 and p[i + 23] == 41:
            if _ts_candidate(p, i + 10, i + 23, 0, &t) == 1:
                return t
            return c.rx
    return c.rx


cdef int _decode_frame(ctx_t* c, const uint8_t* p, Py_ssize_t n, int bcc_mode) noexcept nogil:
    cdef uint8_t b0
    cdef Py_ssize_t i, lf, bang, t, ok4, ok2
    cdef int crc
    c.status = FS_OK
    c.reason = R_NONE
    c.offset = -1
    c.skipped = 0
    c.bad_oom = 0
    c.clock = c.rx
    if n <= 0:
        return _fail(c, FS_TRUNCATED, R_EMPTY, 0)
    b0 = p[0]
    if b0 == 2:
        if _stx_block(c, p, 0, n, bcc_mode) < 0:
            return -1
    elif b0 == 1:
        if n < 3:
            return _fail(c, FS_TRUNCATED, R_CMD, n)
        if not (p[1] == 80 or p[1] == 87 or p[1] == 82 or p[1] == 69 or p[1] == 66) or not _digit(p[2]):
            return _fail(c, FS_BAD_FRAMING, R_CMD, 1)
        i = 3
        while i < n and p[i] != 3 and p[i] != 4:
            i += 1
        if i >= n:
            return _fail(c, FS_TRUNCATED, R_NO_ETX, n)
        if i + 1 >= n:
            return _fail(c, FS_TRUNCATED, R_NO_BCC, n)
        if i + 2 < n:
            return _fail(c, FS_BAD_LENGTH, R_TRAILING, i + 2)
        if not _bcc_ok(p + 1, i, p[i + 1], bcc_mode):
            return _fail(c, FS_CHECKSUM, R_BCC, i + 1)
        return _fail(c, FS_NO_DATA, R_NO_DATA, -1)
    elif b0 == 6:
        if n == 1:
            return _fail(c, FS_NO_DATA, R_NO_DATA, -1)
        if n < 6:
            return _fail(c, FS_TRUNCATED, R_ACK, n)
        if n > 6:
            return _fail(c, FS_BAD_LENGTH, R_ACK, 6)
        if not (_digit(p[1]) and p[2] > 32 and p[2] < 127 and _digit(p[3]) and p[4] == 13 and p[5] == 10):
            return _fail(c, FS_BAD_FRAMING, R_ACK, 1)
        return _fail(c, FS_NO_DATA, R_NO_DATA, -1)
    elif b0 == 0x15:
        if n != 1:
            return _fail(c, FS_BAD_LENGTH, R_NAK, 1)
        c.status = FS_PROTOCOL_EXCEPTION
        c.reason = R_NAK
        c.offset = 0
        return -1
    elif b0 == 47:
        if n >= 2 and p[1] == 63:
            if n >= 5 and p[n - 3] == 33 and p[n - 2] == 13 and p[n - 1] == 10:
                return _fail(c, FS_NO_DATA, R_NO_DATA, -1)
            return _fail(c, FS_TRUNCATED, R_SIGNON, n)
        lf = 1
        while lf < n and p[lf] != 10:
            if p[lf] < 32 and p[lf] != 13:
                return _fail(c, FS_BAD_FRAMING, R_IDENT, lf)
            lf += 1
        if lf >= n:
            return _fail(c, FS_TRUNCATED, R_IDENT, n)
        if lf < 6 or p[lf - 1] != 13:
            return _fail(c, FS_BAD_FRAMING, R_IDENT, lf)
        if lf + 1 == n:
            return _fail(c, FS_NO_DATA, R_NO_DATA, -1)
        if p[lf + 1] == 2:
            if _stx_block(c, p, lf + 1, n, bcc_mode) < 0:
                return -1
        else:
            bang = lf + 1
            while bang < n and p[bang] != 33:
                bang += 1
            if bang >= n:
                return _fail(c, FS_TRUNCATED, R_NO_BANG, n)
            t = n - bang - 1
            ok4 = 0
            while ok4 < t and ok4 < 6 and (
                    (ok4 < 4 and _hexval(p[bang + 1 + ok4]) >= 0) or
                    (ok4 == 4 and p[bang + 1 + ok4] == 13) or (ok4 == 5 and p[bang + 1 + ok4] == 10)):
                ok4 += 1
            ok2 = 0
            while ok2 < t and ok2 < 2 and p[bang + 1 + ok2] == (13 if ok2 == 0 else 10):
                ok2 += 1
            if ok4 == t and (t == 4 or t == 6):
                crc = (_hexval(p[bang + 1]) << 12) | (_hexval(p[bang + 2]) << 8) \
                    | (_hexval(p[bang + 3]) << 4) | _hexval(p[bang + 4])
                if bcc_mode != 2 and mp_crc16(&MP_CRC16_ARC, p, <size_t>(bang + 1)) != crc:
                    return _fail(c, FS_CHECKSUM, R_CRC, bang + 1)
            elif ok2 == t and (t == 0 or t == 2):
                pass    # DSMR 2.x/3.0 telegram: no CRC
            elif ok4 == t or ok2 == t:
                return _fail(c, FS_TRUNCATED, R_CRC_FMT, n)
            else:
                return _fail(c, FS_BAD_FRAMING, R_CRC_FMT, bang + 1 + (ok4 if ok4 > ok2 else ok2))
            c.clock = _dsmr_clock(c, p, lf + 1, bang)
            if _content(c, p, lf + 1, bang, False) < 0:
                return -1
    else:
        return _fail(c, FS_BAD_FRAMING, R_START, 0)
    return 0


cdef inline void _finish(ctx_t* c, frame_status_t* fs, Py_ssize_t first) noexcept nogil:
    """Frame status record; a frame that failed keeps none of its readings."""
    cdef Py_ssize_t cnt = c.rb.n - first
    if c.status == FS_OK:
        if cnt == 0:
            if c.skipped:
                c.status = FS_UNSUPPORTED
                c.reason = R_UNSUP
            else:
                c.status = FS_NO_DATA
                c.reason = R_NO_DATA
    if c.status != FS_OK:
        c.rb.n = first
        cnt = 0
    fs.status = <uint8_t>c.status
    fs.reserved = 0
    if c.status == FS_PROTOCOL_EXCEPTION:
        fs.code = 0x15
    elif c.status == FS_OK or c.status == FS_UNSUPPORTED:
        fs.code = <uint16_t>(c.skipped if c.skipped < 65535 else 65535)
    else:
        fs.code = 0
    fs.offset = <int32_t>c.offset
    fs.first = <uint32_t>first
    fs.count = <uint32_t>cnt


cdef inline void _frame(ctx_t* c, const uint8_t* p, Py_ssize_t n, int bcc_mode, frame_status_t* fs) noexcept nogil:
    cdef Py_ssize_t first = c.rb.n
    _decode_frame(c, p, n, bcc_mode)
    if c.status == FS_OK and c.bad_oom:
        _fail(c, FS_OUT_OF_MEMORY, R_OOM, -1)
    _finish(c, fs, first)


def decode_one(data, int bcc_mode, int64_t rx_ms, uint32_t meter, int utc_offset_min):
    """Decode one frame.  Returns ``(readings, status, code, offset, reason_index)``; readings is
    empty unless status is OK."""
    cdef Py_buffer view
    cdef reading_buf rb
    cdef ctx_t c
    cdef frame_status_t fs
    if _get_buffer(data, &view, PyBUF_SIMPLE) < 0:
        PyErr_Clear()
        raise TypeError("data must be a bytes-like object, not %r" % type(data).__name__)
    try:
        if rb_init(&rb, view.len // 6 + 16) < 0:
            raise MemoryError()
        c.rb = &rb
        c.meter = meter
        c.rx = rx_ms
        c.off_ms = <int64_t>utc_offset_min * 60000
        _ctx_init(&c)
        _frame(&c, <const uint8_t*>view.buf, view.len, bcc_mode, &fs)
    finally:
        PyBuffer_Release(&view)
    return rb_to_array(&rb), fs.status, fs.code, fs.offset, c.reason


def decode_many(batch, int bcc_mode, meter_ids, rx_ms, int utc_offset_min):
    """Decode every frame of a FrameBatch in one nogil loop.  ``meter_ids``: uint32 array (one per
    frame) or None (frame index); ``rx_ms``: int64 array of ms (one per frame).  Returns
    ``(readings, frame_status)``."""
    cdef FrameBatch b = <FrameBatch>batch
    cdef Py_ssize_t n = b._n, i, ln, total
    cdef const uint8_t* p
    cdef reading_buf rb
    cdef ctx_t c
    cdef const uint32_t* mids = NULL
    cdef const uint32_t[::1] mv
    cdef const int64_t[::1] rv = rx_ms
    cdef frame_status_t[::1] fsv
    if rv.shape[0] != n:
        raise ValueError("received_at needs one value per frame")
    if meter_ids is not None:
        mv = meter_ids
        if mv.shape[0] != n:
            raise ValueError("meter_ids needs one id per frame")
        if n:
            mids = &mv[0]
    out = new_frame_status(n)
    if n == 0:
        if rb_init(&rb, 0) < 0:
            raise MemoryError()
        return rb_to_array(&rb), out
    fsv = out
    total = b._op[n] - b._op[0] if b._op[n] >= b._op[0] else 0
    if total > b._limit or total < 0:
        total = b._limit
    if rb_init(&rb, total // 7 + 16) < 0:
        raise MemoryError()
    c.rb = &rb
    c.off_ms = <int64_t>utc_offset_min * 60000
    _ctx_init(&c)
    with nogil:
        for i in range(n):
            c.meter = mids[i] if mids != NULL else <uint32_t>i
            c.rx = rv[i]
            if not frame_at(b, i, &p, &ln):
                c.status = FS_BAD_LENGTH
                c.reason = R_OFFSETS
                c.offset = -1
                c.skipped = 0
                _finish(&c, &fsv[i], rb.n)
                continue
            _frame(&c, p, ln, bcc_mode, &fsv[i])
    return rb_to_array(&rb), out
