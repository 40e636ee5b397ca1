# cython: language_level=3
"""FrameBatch: many frames in one contiguous uint8 buffer plus an int64 offsets array."""
from libc.stdint cimport uint8_t, int64_t


cdef class FrameBatch:
    cdef object _data            # 1-D uint8 ndarray holding the frame bytes
    cdef object _offsets         # 1-D int64 ndarray, at least _n + 1 entries
    cdef const uint8_t* _dp      # &_data[0] (a valid dummy when the buffer is empty)
    cdef const int64_t* _op      # &_offsets[0]
    cdef Py_ssize_t _n           # number of frames
    cdef Py_ssize_t _limit       # bytes of _data a frame may reach: offsets must stay <= _limit
    cdef bint _owned             # True when _data/_offsets are ours and may grow

    cdef int _set_arrays(self, object data, object offsets, Py_ssize_t n, Py_ssize_t limit, bint owned) except -1
    cdef int _make_owned(self, Py_ssize_t extra_frames, Py_ssize_t extra_bytes) except -1
    cdef int _append_raw(self, const uint8_t* p, Py_ssize_t n) except -1
    cdef Py_ssize_t _index(self, Py_ssize_t i) except -1


cdef inline bint frame_at(FrameBatch b, Py_ssize_t i, const uint8_t** p, Py_ssize_t* n) noexcept nogil:
    """Bounds of frame i; False when the offsets were changed after validation to point outside
    the buffer (the caller reports that instead of reading).  i must be in [0, b._n)."""
    cdef int64_t s = b._op[i]
    cdef int64_t e = b._op[i + 1]
    if s < 0 or e < s or e > b._limit:
        return False
    p[0] = b._dp + s
    n[0] = <Py_ssize_t>(e - s)
    return True


cdef Py_ssize_t find_bad_offset(const int64_t* op, Py_ssize_t count, int64_t limit) noexcept nogil
