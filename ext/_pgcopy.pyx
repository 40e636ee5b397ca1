# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""PostgreSQL binary COPY of readings: the payload is built from, and parsed into, a
``READING_DTYPE`` array in one nogil pass, with no Python object per row.

Wire format (PostgreSQL "COPY ... (FORMAT binary)"; every integer big-endian):

* header, 19 bytes: the signature ``PGCOPY\\n\\377\\r\\n\\0``, int32 flags (0: no OIDs), int32
  header-extension length (0);
* one tuple per reading: int16 field count (6), then per field an int32 byte length and the
  bytes: ``meter`` int8, ``obis`` int8, ``ts`` timestamptz (int8 microseconds since
  2000-01-01 00:00 UTC), ``value`` float8 (the IEEE-754 bits, so NaN and infinities survive),
  ``unit`` int2, ``status`` int4 -- 64 bytes a tuple;
* trailer: int16 -1.

Timestamps are milliseconds in the arrays and microseconds in PostgreSQL: ``us = (ms -
946684800000) * 1000`` is exact both ways.  The storage range of a timestamp is
0001-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z (``TS_MIN_MS`` .. ``TS_MAX_MS``); NaT and
anything outside is refused before a byte is built.  ``obis`` must fit the 48 bits of a
packed OBIS code.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

cimport numpy as cnp
import numpy as np

from meterpoll.ext._readings cimport reading_t, reading_buf, rb_init, rb_push, rb_free, rb_to_array
from meterpoll.ext._readings import READING_DTYPE

cnp.import_array()

cdef int64_t _TS_MIN_MS = -62135596800000      # 0001-01-01T00:00:00Z
cdef int64_t _TS_MAX_MS = 253402300799999      # 9999-12-31T23:59:59.999Z
cdef int64_t _EPOCH_SHIFT_MS = 946684800000    # 2000-01-01T00:00:00Z in ms since 1970
cdef uint64_t _OBIS_LIMIT = (<uint64_t>1) << 48

TS_MIN_MS = _TS_MIN_MS
TS_MAX_MS = _TS_MAX_MS
TUPLE_SIZE = PGC_TUPLE_SIZE
HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"
COLUMNS = ("meter", "obis", "ts", "value", "unit", "status")

cdef const char* _SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
cdef int32_t _FIELD_LEN[6]
_FIELD_LEN[:] = [8, 8, 8, 8, 2, 4]


cdef inline void _st16(uint8_t* p, uint16_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 8)
    p[1] = <uint8_t>v


cdef inline void _st32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24)
    p[1] = <uint8_t>(v >> 16)
    p[2] = <uint8_t>(v >> 8)
    p[3] = <uint8_t>v


cdef inline void _st64(uint8_t* p, uint64_t v) noexcept nogil:
    _st32(p, <uint32_t>(v >> 32))
    _st32(p + 4, <uint32_t>v)


cdef inline uint16_t _ld16(const uint8_t* p) noexcept nogil:
    return <uint16_t>((<uint16_t>p[0] << 8) | p[1])


cdef inline uint32_t _ld32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t _ld64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>_ld32(p) << 32) | _ld32(p + 4)


cdef Py_ssize_t pgc_first_bad(const reading_t* rows, Py_ssize_t n) noexcept nogil:
    """Index of the first reading whose ts is NaT or outside the storage range, or whose obis
    does not fit 48 bits; -1 when all are storable."""
    cdef Py_ssize_t i
    for i in range(n):
        if rows[i].ts < _TS_MIN_MS or rows[i].ts > _TS_MAX_MS or rows[i].obis >= _OBIS_LIMIT:
            return i
    return -1


cdef Py_ssize_t pgc_fill(const reading_t* rows, Py_ssize_t n, uint8_t* out) noexcept nogil:
    """Write n tuples (PGC_TUPLE_SIZE bytes each) to ``out``; returns the bytes written.
    The rows must have passed pgc_first_bad."""
    cdef Py_ssize_t i
    cdef uint8_t* p = out
    cdef uint64_t bits
    cdef const reading_t* r
    for i in range(n):
        r = &rows[i]
        memcpy(&bits, &r.value, 8)
        _st16(p, 6)
        _st32(p + 2, 8)
        _st64(p + 6, <uint64_t>r.meter)
        _st32(p + 14, 8)
        _st64(p + 18, r.obis)
        _st32(p + 26, 8)
        _st64(p + 30, <uint64_t>((r.ts - _EPOCH_SHIFT_MS) * 1000))
        _st32(p + 38, 8)
        _st64(p + 42, bits)
        _st32(p + 50, 2)
        _st16(p + 54, <uint16_t>r.unit)
        _st32(p + 56, 4)
        _st32(p + 60, <uint32_t>r.status)
        p += PGC_TUPLE_SIZE
    return p - out


cdef const reading_t* _rows(object readings, Py_ssize_t* n) except NULL:
    """Pointer to the records of a 1-D C-contiguous READING_DTYPE array."""
    cdef cnp.ndarray arr
    if not isinstance(readings, np.ndarray):
        raise TypeError("readings must be a numpy READING_DTYPE array, got %s" % type(readings).__name__)
    arr = <cnp.ndarray>readings
    if arr.dtype != READING_DTYPE:
        raise TypeError("readings must have READING_DTYPE, got %r" % (arr.dtype,))
    if arr.ndim != 1 or not arr.flags.c_contiguous:
        raise ValueError("readings must be a 1-D C-contiguous array (use np.ascontiguousarray)")
    n[0] = arr.shape[0]
    return <const reading_t*>cnp.PyArray_DATA(arr)


cdef int _check(const reading_t* rows, Py_ssize_t n, Py_ssize_t base) except -1:
    cdef Py_ssize_t bad
    with nogil:
        bad = pgc_first_bad(rows, n)
    cdef int64_t ts
    if bad >= 0:
        if rows[bad].obis >= _OBIS_LIMIT:
            raise ValueError("reading %d: obis 0x%x does not fit the 48 bits of a packed OBIS code"
                             % (base + bad, rows[bad].obis))
        ts = rows[bad].ts
        raise ValueError("reading %d: ts %s is outside the storable range "
                         "0001-01-01T00:00:00Z..9999-12-31T23:59:59.999Z"
                         % (base + bad, "NaT" if ts == -0x7FFFFFFFFFFFFFFF - 1 else "%d ms" % ts))
    return 0


def first_bad(readings):
    """Index of the first reading that cannot be stored (NaT or out-of-range ``ts``, ``obis``
    over 48 bits), or -1."""
    cdef Py_ssize_t n
    cdef const reading_t* rows = _rows(readings, &n)
    cdef Py_ssize_t bad
    with nogil:
        bad = pgc_first_bad(rows, n)
    return bad


def build_copy(readings, Py_ssize_t start=0, Py_ssize_t stop=-1, *, bint header=True, bint trailer=True):
    """Binary COPY bytes for ``readings[start:stop]`` (``stop`` -1: to the end), with the
    stream header and/or trailer.  Raises ValueError naming the first unstorable reading."""
    cdef Py_ssize_t n
    cdef const reading_t* rows = _rows(readings, &n)
    cdef Py_ssize_t size, count, written
    cdef uint8_t* out
    if stop < 0 or stop > n:
        stop = n
    if start < 0:
        raise ValueError("start must be >= 0")
    if start > stop:
        start = stop
    count = stop - start
    _check(rows + start, count, start)
    size = count * PGC_TUPLE_SIZE + (PGC_HEADER_SIZE if header else 0) + (PGC_TRAILER_SIZE if trailer else 0)
    result = PyBytes_FromStringAndSize(NULL, size)
    out = <uint8_t*>PyBytes_AS_STRING(result)
    if header:
        memcpy(out, _SIGNATURE, 11)
        _st32(out + 11, 0)
        _st32(out + 15, 0)
        out += PGC_HEADER_SIZE
    with nogil:
        written = pgc_fill(rows + start, count, out)
    if trailer:
        _st16(out + written, 0xFFFF)
    return result


def copy_chunks(readings, Py_ssize_t rows_per_chunk=32768):
    """The COPY stream of a whole array as successive ``bytes`` chunks of at most
    ``rows_per_chunk`` tuples (the first carries the header, the last the trailer).  Every
    reading is validated before the first chunk is produced, so a refused array sends
    nothing."""
    cdef Py_ssize_t n
    cdef const reading_t* rows = _rows(readings, &n)
    if rows_per_chunk < 1:
        raise ValueError("rows_per_chunk must be >= 1")
    _check(rows, n, 0)
    if n == 0:
        return iter((HEADER + TRAILER,))
    return _chunks(readings, n, rows_per_chunk)


def _chunks(readings, Py_ssize_t n, Py_ssize_t step):
    cdef Py_ssize_t i = 0
    while i < n:
        yield build_copy(readings, i, min(i + step, n), header=(i == 0), trailer=(i + step >= n))
        i += step


cdef enum:
    E_OK = 0
    E_SIGNATURE = 1
    E_OIDS = 2
    E_TRUNCATED = 3
    E_FIELD_COUNT = 4
    E_FIELD_LENGTH = 5
    E_RANGE = 6
    E_TRAILING = 7
    E_NOMEM = 8

_ERRORS = {
    E_SIGNATURE: "not a binary COPY stream (signature)",
    E_OIDS: "tuples carry OIDs",
    E_TRUNCATED: "stream ends inside a tuple or before the trailer",
    E_FIELD_COUNT: "a tuple does not have the 6 reading columns",
    E_FIELD_LENGTH: "a field has the wrong length (NULL or another type)",
    E_RANGE: "a value is outside its READING_DTYPE field's range",
    E_TRAILING: "bytes after the trailer",
    E_NOMEM: "out of memory",
}


cdef int _parse(const uint8_t* p, Py_ssize_t n, reading_buf* out, Py_ssize_t* where) noexcept nogil:
    cdef Py_ssize_t pos = 0, f
    cdef uint32_t ext
    cdef int16_t fc
    cdef int32_t flen
    cdef int64_t v[6]
    cdef int64_t us, ms
    cdef double value
    cdef uint64_t bits
    if n < PGC_HEADER_SIZE or memcmp(p, _SIGNATURE, 11) != 0:
        where[0] = 0
        return E_SIGNATURE
    if _ld32(p + 11) & (1u << 16):
        where[0] = 11
        return E_OIDS
    ext = _ld32(p + 15)
    pos = PGC_HEADER_SIZE
    if ext > <uint32_t>(n - pos):
        where[0] = 15
        return E_TRUNCATED
    pos += ext
    while True:
        where[0] = pos
        if n - pos < 2:
            return E_TRUNCATED
        fc = <int16_t>_ld16(p + pos)
        pos += 2
        if fc == -1:
            if pos != n:
                where[0] = pos
                return E_TRAILING
            return E_OK
        if fc != 6:
            return E_FIELD_COUNT
        for f in range(6):
            if n - pos < 4:
                where[0] = pos
                return E_TRUNCATED
            flen = <int32_t>_ld32(p + pos)
            if flen != _FIELD_LEN[f]:
                where[0] = pos
                return E_FIELD_LENGTH
            pos += 4
            if n - pos < flen:
                where[0] = pos
                return E_TRUNCATED
            if flen == 8:
                v[f] = <int64_t>_ld64(p + pos)
            elif flen == 4:
                v[f] = <int32_t>_ld32(p + pos)
            else:
                v[f] = <int16_t>_ld16(p + pos)
            pos += flen
        us = v[2]
        if v[0] < 0 or v[0] > <int64_t>4294967295LL or v[1] < 0 or <uint64_t>v[1] >= _OBIS_LIMIT \
                or v[4] < 0 or v[4] > 0xFF or v[5] < 0 or v[5] > 0xFFFF:
            return E_RANGE
        # floor(us / 1000) without overflow, then back to the 1970 epoch
        ms = us // 1000
        if us % 1000 < 0:
            ms -= 1
        if ms > _TS_MAX_MS - _EPOCH_SHIFT_MS or ms < _TS_MIN_MS - _EPOCH_SHIFT_MS:
            return E_RANGE
        bits = <uint64_t>v[3]
        memcpy(&value, &bits, 8)
        if rb_push(out, <uint32_t>v[0], <uint64_t>v[1], ms + _EPOCH_SHIFT_MS, value,
                   <uint8_t>v[4], <uint16_t>v[5]) < 0:
            return E_NOMEM


def parse_copy(data):
    """A READING_DTYPE array from a binary COPY stream of the six reading columns (as produced
    by ``COPY (SELECT meter, obis, ts, value, unit, status ...) TO STDOUT (FORMAT binary)``).
    Microseconds below the millisecond are floored.  Raises ValueError with the byte offset of
    anything malformed; never reads outside ``data``."""
    cdef Py_buffer view
    cdef reading_buf buf
    cdef Py_ssize_t where = 0
    cdef int rc
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if rb_init(&buf, view.len // PGC_TUPLE_SIZE + 1) < 0:
            raise MemoryError()
        with nogil:
            rc = _parse(<const uint8_t*>view.buf, view.len, &buf, &where)
    finally:
        PyBuffer_Release(&view)
    if rc != E_OK:
        rb_free(&buf)
        if rc == E_NOMEM:
            raise MemoryError()
        raise ValueError("malformed binary COPY stream at byte %d: %s" % (where, _ERRORS[rc]))
    return rb_to_array(&buf)
