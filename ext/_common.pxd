# cython: language_level=3
"""Inline helpers shared by every codec: a bounds-checked read cursor, big/little-endian loads,
OBIS packing, BCD and civil-time conversion.  All ``noexcept nogil``; nothing here allocates.

Cursor reads return 0 on success and -1 when the read would pass ``end`` (the caller turns that
into a TRUNCATED status); they never read outside [p, end).
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t
from libc.string cimport memcpy


ctypedef struct cursor_t:
    const uint8_t* start     # first byte of the frame (offsets are reported relative to it)
    const uint8_t* p         # next byte to read
    const uint8_t* end       # one past the last readable byte


cdef inline void cur_init(cursor_t* c, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    c.start = p
    c.p = p
    c.end = p + n


cdef inline Py_ssize_t cur_left(const cursor_t* c) noexcept nogil:
    return c.end - c.p


cdef inline Py_ssize_t cur_pos(const cursor_t* c) noexcept nogil:
    return c.p - c.start


cdef inline int cur_skip(cursor_t* c, Py_ssize_t n) noexcept nogil:
    if n < 0 or c.end - c.p < n:
        return -1
    c.p += n
    return 0


cdef inline int cur_u8(cursor_t* c, uint8_t* out) noexcept nogil:
    if c.p >= c.end:
        return -1
    out[0] = c.p[0]
    c.p += 1
    return 0


cdef inline int cur_u16be(cursor_t* c, uint16_t* out) noexcept nogil:
    if c.end - c.p < 2:
        return -1
    out[0] = (<uint16_t>c.p[0] << 8) | c.p[1]
    c.p += 2
    return 0


cdef inline int cur_u32be(cursor_t* c, uint32_t* out) noexcept nogil:
    if c.end - c.p < 4:
        return -1
    out[0] = load_u32be(c.p)
    c.p += 4
    return 0


cdef inline int cur_u64be(cursor_t* c, uint64_t* out) noexcept nogil:
    if c.end - c.p < 8:
        return -1
    out[0] = load_u64be(c.p)
    c.p += 8
    return 0


cdef inline uint16_t load_u16be(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint16_t load_u16le(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[1] << 8) | p[0]


cdef inline uint32_t load_u32be(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint32_t load_u32le(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef inline uint64_t load_u64be(const uint8_t* p) noexcept nogil:
    return (<uint64_t>load_u32be(p) << 32) | load_u32be(p + 4)


cdef inline uint64_t load_u64le(const uint8_t* p) noexcept nogil:
    return (<uint64_t>load_u32le(p + 4) << 32) | load_u32le(p)


cdef inline float f32_from_bits(uint32_t bits) noexcept nogil:
    cdef float f
    memcpy(&f, &bits, 4)
    return f


cdef inline double f64_from_bits(uint64_t bits) noexcept nogil:
    cdef double d
    memcpy(&d, &bits, 8)
    return d


cdef inline uint64_t obis_pack(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t e, uint8_t f) noexcept nogil:
    """OBIS A.B.C.D.E.F packed big-endian into the low 48 bits (A is bits 40..47)."""
    return ((<uint64_t>a << 40) | (<uint64_t>b << 32) | (<uint64_t>c << 24) |
            (<uint64_t>d << 16) | (<uint64_t>e << 8) | f)


cdef inline uint64_t obis_from_bytes(const uint8_t* p) noexcept nogil:
    """OBIS from its 6-byte wire form (DLMS logical name)."""
    return obis_pack(p[0], p[1], p[2], p[3], p[4], p[5])


cdef inline int bcd_byte(uint8_t v) noexcept nogil:
    """Value of one packed-BCD byte (0..99), or -1 if a nibble is not a decimal digit."""
    if (v >> 4) > 9 or (v & 0x0F) > 9:
        return -1
    return (v >> 4) * 10 + (v & 0x0F)


cdef inline int64_t days_from_civil(int64_t y, int m, int d) noexcept nogil:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    cdef int64_t era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline bint valid_civil(int y, int mo, int d, int h, int mi, int s) noexcept nogil:
    cdef int dim
    if mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59 or s < 0 or s > 60:
        return False
    if mo == 2:
        dim = 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    elif mo == 4 or mo == 6 or mo == 9 or mo == 11:
        dim = 30
    else:
        dim = 31
    return d <= dim


cdef inline int64_t civil_to_ms(int y, int mo, int d, int h, int mi, int s, int ms) noexcept nogil:
    """Milliseconds since the Unix epoch of a UTC civil time (no validation: see valid_civil)."""
    return ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1000) + ms
