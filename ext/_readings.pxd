# cython: language_level=3
"""The one reading record every decoder emits, and the per-frame status record.

``reading_t`` mirrors ``meterpoll.READING_DTYPE`` field for field (aligned layout, 40 bytes);
``frame_status_t`` mirrors ``meterpoll.FRAME_STATUS_DTYPE`` (16 bytes).  A test checks both
layouts against the numpy dtypes.  Decoders append to a ``reading_buf`` inside their nogil
loop and hand it to numpy at the end without copying (``rb_to_array``).
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int32_t
from libc.stdlib cimport malloc, realloc, free


cdef extern from "stdlib.h" nogil:
    int posix_memalign(void** memptr, size_t alignment, size_t size)

cdef extern from "sys/mman.h" nogil:
    int madvise(void* addr, size_t length, int advice)
    int MADV_HUGEPAGE

# Buffers of at least this many bytes are 2 MiB aligned and advised for transparent huge
# pages: a fresh 80 MB output otherwise costs ~20,000 page faults (tens of ms) per batch.
DEF RB_HUGE = 2097152
DEF RB_HUGE_FROM = 8388608


ctypedef struct reading_t:
    uint32_t meter       # frame index in the batch, or the caller's meter id
    uint64_t obis        # OBIS A.B.C.D.E.F packed big-endian into the low 48 bits
    int64_t ts           # ms since 1970-01-01 UTC (numpy datetime64[ms])
    double value         # scaled to the base unit (Wh, varh, V, A, W, Hz, m3, J, ...)
    uint8_t unit         # DLMS unit enumeration (meterpoll.Unit)
    uint16_t status      # reading quality (meterpoll.Quality)


ctypedef struct frame_status_t:
    uint8_t status       # meterpoll.FrameStatus
    uint8_t reserved
    uint16_t code        # protocol exception / error code reported by the meter (0 if none)
    int32_t offset       # byte offset in the frame where decoding stopped (-1 if n/a)
    uint32_t first       # index of the frame's first reading in the readings array
    uint32_t count       # readings this frame produced


# FrameStatus values (bindings/readings.py holds the matching IntEnum)
cdef enum:
    FS_OK = 0
    FS_CHECKSUM = 1
    FS_TRUNCATED = 2
    FS_BAD_LENGTH = 3
    FS_BAD_ADDRESS = 4
    FS_PROTOCOL_EXCEPTION = 5
    FS_UNSUPPORTED = 6
    FS_BAD_FRAMING = 7
    FS_BAD_VALUE = 8
    FS_TOO_DEEP = 9
    FS_MISMATCH = 10      # answer does not belong to the request (function, address, length)
    FS_OUT_OF_MEMORY = 11
    FS_NO_DATA = 12       # well-formed, but carried nothing to decode (e.g. an ACK)

# Quality values for reading_t.status (bindings/readings.py: Quality)
cdef enum:
    Q_OK = 0
    Q_TIMEOUT = 1
    Q_PROTOCOL_EXCEPTION = 2
    Q_CHECKSUM = 3
    Q_OUT_OF_RANGE = 4
    Q_ESTIMATED = 5
    Q_METER_ERROR = 6     # the meter flagged the value itself (M-Bus/DLMS status, NaN register...)
    Q_CLOCK_INVALID = 7   # value fine, the meter's timestamp was invalid: batch time used


ctypedef struct reading_buf:
    reading_t* data
    Py_ssize_t n
    Py_ssize_t cap


cdef inline int rb_init(reading_buf* b, Py_ssize_t cap) noexcept nogil:
    """Allocate room for ``cap`` readings (big buffers on huge pages); -1 on OOM."""
    cdef size_t nbytes
    cdef void* p = NULL
    if cap < 16:
        cap = 16
    nbytes = <size_t>cap * sizeof(reading_t)
    b.n = 0
    if nbytes >= RB_HUGE_FROM:
        nbytes = (nbytes + RB_HUGE - 1) & ~(<size_t>RB_HUGE - 1)
        if posix_memalign(&p, RB_HUGE, nbytes) == 0 and p != NULL:
            madvise(p, nbytes, MADV_HUGEPAGE)  # advice only: failure is harmless
            b.data = <reading_t*>p
            b.cap = <Py_ssize_t>(nbytes // sizeof(reading_t))
            return 0
    b.data = <reading_t*>malloc(nbytes)
    b.cap = cap if b.data != NULL else 0
    return 0 if b.data != NULL else -1


cdef inline int rb_reserve(reading_buf* b, Py_ssize_t extra) noexcept nogil:
    """Make room for ``extra`` more readings, doubling the capacity (so size the buffer with
    a good estimate first: reserving a fixed maximum per frame near the end of an exactly sized
    buffer doubles it for nothing)."""
    cdef Py_ssize_t cap
    cdef reading_t* d
    if b.n + extra <= b.cap:
        return 0
    cap = b.cap * 2
    if cap < b.n + extra:
        cap = b.n + extra
    d = <reading_t*>realloc(b.data, cap * sizeof(reading_t))
    if d == NULL:
        return -1
    b.data = d
    b.cap = cap
    return 0


cdef inline int rb_push(reading_buf* b, uint32_t meter, uint64_t obis, int64_t ts, double value,
                        uint8_t unit, uint16_t status) noexcept nogil:
    cdef reading_t* r
    if b.n == b.cap and rb_reserve(b, 1) < 0:
        return -1
    r = &b.data[b.n]
    r.meter = meter
    r.obis = obis
    r.ts = ts
    r.value = value
    r.unit = unit
    r.status = status
    b.n += 1
    return 0


cdef inline void rb_free(reading_buf* b) noexcept nogil:
    free(b.data)
    b.data = NULL
    b.n = 0
    b.cap = 0


cdef object rb_to_array(reading_buf* b)
cdef object new_frame_status(Py_ssize_t n)
