# cython: language_level=3
"""PostgreSQL binary COPY payloads of readings, built and parsed natively (see _pgcopy.pyx).

One tuple carries the six columns of the ``readings`` table in this order and these types
(all big-endian, each field preceded by its int32 byte length):

=======  ===========  =====  ==================================================
column   pg type      bytes  value
=======  ===========  =====  ==================================================
meter    int8         8      reading.meter (uint32, zero-extended)
obis     int8         8      reading.obis (packed OBIS, 48 bits)
ts       timestamptz  8      microseconds since 2000-01-01 UTC = (ts_ms - 946684800000) * 1000
value    float8       8      IEEE-754 bits of reading.value (NaN and infinities kept)
unit     int2         2      reading.unit
status   int4         4      reading.status
=======  ===========  =====  ==================================================

A tuple is therefore 2 + 6 * 4 + 38 = 64 bytes; the stream starts with the 19-byte header
(``PGCOPY\\n\\377\\r\\n\\0``, flags 0, extension length 0) and ends with the int16 -1 trailer.
"""
from libc.stdint cimport uint8_t, int64_t
from meterpoll.ext._readings cimport reading_t

cdef enum:
    PGC_HEADER_SIZE = 19
    PGC_TUPLE_SIZE = 64
    PGC_TRAILER_SIZE = 2

cdef Py_ssize_t pgc_fill(const reading_t* rows, Py_ssize_t n, uint8_t* out) noexcept nogil
cdef Py_ssize_t pgc_first_bad(const reading_t* rows, Py_ssize_t n) noexcept nogil
