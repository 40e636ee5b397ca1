# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""FrameBatch: the native core's unit of work.

Layout (the same as an Apache Arrow binary array): one contiguous ``uint8`` buffer ``data`` and
an ``int64`` array ``offsets`` of length N+1; frame i is ``data[offsets[i]:offsets[i+1]]``.
Offsets are validated once when a batch is built (non-negative, non-decreasing, within the
buffer); every kernel re-checks each frame's bounds as it reads, so offsets changed afterwards
through a caller's own array can never make a kernel read outside the buffer.
"""
from cpython.buffer cimport PyBuffer_Release, PyBUF_SIMPLE, PyObject_CheckBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_Clear
from libc.stdint cimport uint8_t, int64_t
from libc.string cimport memcpy

import numpy as np

cdef uint8_t _EMPTY[1]
cdef int64_t _ZERO[1]
_EMPTY[0] = 0
_ZERO[0] = 0


cdef Py_ssize_t find_bad_offset(const int64_t* op, Py_ssize_t count, int64_t limit) noexcept nogil:
    """Index of the first offset that is negative, decreasing or past ``limit``; -1 if none."""
    cdef Py_ssize_t i
    if count == 0:
        return -1
    if op[0] < 0 or op[0] > limit:
        return 0
    for i in range(1, count):
        if op[i] < op[i - 1] or op[i] > limit:
            return i
    return -1


cdef inline const uint8_t* _u8_ptr(object arr) except? NULL:
    cdef const uint8_t[::1] mv
    if arr.shape[0] == 0:
        return _EMPTY
    mv = arr
    return &mv[0]


cdef inline const int64_t* _i64_ptr(object arr) except? NULL:
    cdef const int64_t[::1] mv = arr
    return &mv[0]


cdef class FrameBatch:
    """Many frames in one contiguous buffer.

    Build with :meth:`from_frames` (copies the frames once into one buffer), :meth:`from_buffer`
    (wraps an existing buffer and offsets without copying the bytes) or ``FrameBatch()`` and
    :meth:`append`.  ``len(batch)`` is the number of frames, ``batch[i]`` returns frame i as
    ``bytes``, ``batch.view(i)`` as a zero-copy ``memoryview``, ``batch[a:b]`` a zero-copy
    sub-batch.  ``data`` and ``offsets`` are read-only numpy views.
    """

    def __cinit__(self):
        self._dp = _EMPTY
        self._op = _ZERO
        self._n = 0
        self._limit = 0
        self._owned = True

    def __init__(self, Py_ssize_t capacity_frames=16, Py_ssize_t capacity_bytes=1024):
        if capacity_frames < 0 or capacity_bytes < 0:
            raise ValueError("capacities must be >= 0")
        self._set_arrays(np.empty(capacity_bytes, dtype=np.uint8),
                         np.zeros(capacity_frames + 1, dtype=np.int64), 0, capacity_bytes, True)

    cdef int _set_arrays(self, object data, object offsets, Py_ssize_t n, Py_ssize_t limit, bint owned) except -1:
        self._data = data
        self._offsets = offsets
        self._dp = _u8_ptr(data)
        self._op = _i64_ptr(offsets)
        self._n = n
        self._limit = limit
        self._owned = owned
        return 0

    @staticmethod
    def from_frames(frames):
        """Copy an iterable of bytes-like frames into one new batch (one allocation)."""
        cdef list items = frames if type(frames) is list else list(frames)
        cdef Py_ssize_t count = len(items), total = 0, i, pos = 0, ln
        cdef object item
        cdef Py_buffer view
        cdef object offsets = np.empty(count + 1, dtype=np.int64)
        cdef int64_t* off = <int64_t*>_i64_ptr(offsets)
        off[0] = 0
        # pass 1: lengths (bytes objects directly, anything else through the buffer protocol)
        for i in range(count):
            item = items[i]
            if type(item) is bytes:
                ln = PyBytes_GET_SIZE(item)
            else:
                _frame_buffer(item, i, &view)
                ln = view.len
                PyBuffer_Release(&view)
            total += ln
            off[i + 1] = total
        data = np.empty(total, dtype=np.uint8)
        cdef uint8_t* dst = <uint8_t*>_u8_ptr(data)
        # pass 2: copy; a frame that changed size in between is refused, not half-copied
        for i in range(count):
            item = items[i]
            ln = off[i + 1] - off[i]
            if type(item) is bytes:
                memcpy(dst + pos, PyBytes_AS_STRING(item), ln)
            else:
                _frame_buffer(item, i, &view)
                try:
                    if view.len != ln:
                        raise ValueError("frame %d changed size while the batch was built" % i)
                    memcpy(dst + pos, view.buf, ln)
                finally:
                    PyBuffer_Release(&view)
            pos += ln
        cdef FrameBatch b = FrameBatch.__new__(FrameBatch)
        b._set_arrays(data, offsets, count, total, True)
        return b

    @staticmethod
    def from_buffer(data, offsets):
        """Wrap ``data`` (any C-contiguous bytes-like object) and ``offsets`` (N+1 integers)
        without copying the bytes.  Offsets are converted to int64 only if they are not
        already a C-contiguous int64 array.  Raises ValueError for offsets that are negative,
        decreasing or past the end of the buffer, and TypeError for a non-buffer ``data``."""
        arr = _as_u8_array(data, "data")
        off = np.ascontiguousarray(offsets, dtype=np.int64)
        if off.ndim != 1 or off.shape[0] < 1:
            raise ValueError("offsets must be a 1-D array with at least one entry (N+1 for N frames)")
        cdef Py_ssize_t count = off.shape[0] - 1
        cdef Py_ssize_t limit = arr.shape[0]
        cdef const int64_t[::1] ov = off
        cdef Py_ssize_t bad
        with nogil:
            bad = find_bad_offset(&ov[0], count + 1, limit)
        if bad >= 0:
            v = int(off[bad])
            if v < 0:
                why = "is negative"
            elif v > limit:
                why = "is past the end of the %d-byte buffer" % limit
            else:
                why = "is smaller than offsets[%d] = %d" % (bad - 1, int(off[bad - 1]))
            raise ValueError("offsets[%d] = %d %s" % (bad, v, why))
        cdef FrameBatch b = FrameBatch.__new__(FrameBatch)
        b._set_arrays(arr, off, count, limit, False)
        return b

    cdef int _make_owned(self, Py_ssize_t extra_frames, Py_ssize_t extra_bytes) except -1:
        """Ensure owned storage with room for more frames and bytes (amortised doubling)."""
        cdef Py_ssize_t start = self._op[0]
        cdef Py_ssize_t used = self._op[self._n] - start
        cdef Py_ssize_t need_b = used + extra_bytes
        cdef Py_ssize_t need_f = self._n + extra_frames + 1
        cdef Py_ssize_t cap_b = self._data.shape[0]
        cdef Py_ssize_t cap_f = self._offsets.shape[0]
        if self._owned and start == 0 and need_b <= cap_b and need_f <= cap_f:
            return 0
        if not self._owned or need_b > cap_b:
            cap_b = max(need_b, 2 * cap_b, 64)
        if not self._owned or need_f > cap_f:
            cap_f = max(need_f, 2 * cap_f, 16)
        data = np.empty(cap_b, dtype=np.uint8)
        offs = np.zeros(cap_f, dtype=np.int64)
        if used:
            memcpy(<void*>_u8_ptr(data), self._dp + start, used)
        cdef int64_t* dst = <int64_t*>_i64_ptr(offs)
        cdef Py_ssize_t i
        for i in range(self._n + 1):
            dst[i] = self._op[i] - start
        self._set_arrays(data, offs, self._n, cap_b, True)
        return 0

    cdef int _append_raw(self, const uint8_t* p, Py_ssize_t n) except -1:
        self._make_owned(1, n)
        cdef int64_t end = self._op[self._n]
        memcpy(<void*>(self._dp + end), p, n)
        (<int64_t*>self._op)[self._n + 1] = end + n
        self._n += 1
        return 0

    def append(self, frame):
        """Append one bytes-like frame (copied).  A batch made by from_buffer is first copied
        into storage of its own; views taken before stay valid and unchanged."""
        cdef Py_buffer view
        if type(frame) is bytes:
            self._append_raw(<const uint8_t*>PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame))
            return
        _frame_buffer(frame, -1, &view)
        try:
            self._append_raw(<const uint8_t*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def extend(self, frames):
        """Append every frame of an iterable (or of another FrameBatch)."""
        for f in frames:
            self.append(f)

    def __len__(self):
        return self._n

    cdef Py_ssize_t _index(self, Py_ssize_t i) except -1:
        if i < 0:
            i += self._n
        if i < 0 or i >= self._n:
            raise IndexError("frame index out of range (batch has %d frames)" % self._n)
        return i

    def __getitem__(self, key):
        cdef const uint8_t* p
        cdef Py_ssize_t n, i, start, stop, step
        if isinstance(key, slice):
            start, stop, step = key.indices(self._n)
            if step != 1:
                raise ValueError("FrameBatch slices must be contiguous (step 1)")
            if stop < start:
                stop = start
            return FrameBatch.from_buffer(self._data, self._offsets[start:stop + 1])
        i = self._index(key)
        if not frame_at(self, i, &p, &n):
            raise ValueError("offsets of frame %d point outside the buffer" % i)
        return PyBytes_FromStringAndSize(<const char*>p, n)

    def view(self, Py_ssize_t i):
        """Frame i as a read-only memoryview into the batch buffer (no copy)."""
        i = self._index(i)
        s = self._op[i]
        e = self._op[i + 1]
        if s < 0 or e < s or e > self._limit:
            raise ValueError("offsets of frame %d point outside the buffer" % i)
        return memoryview(self._data[s:e]).toreadonly()

    def __iter__(self):
        cdef Py_ssize_t i
        for i in range(self._n):
            yield self[i]

    @property
    def data(self):
        """The frame bytes as a read-only 1-D uint8 array (frame i spans offsets[i]:offsets[i+1])."""
        if self._owned:
            v = self._data[:self._op[self._n]]
        else:
            v = self._data[:]
        v.flags.writeable = False
        return v

    @property
    def offsets(self):
        """Read-only int64 array of N+1 offsets into ``data``."""
        v = self._offsets[:self._n + 1]
        v.flags.writeable = False
        return v

    @property
    def lengths(self):
        """Frame lengths in bytes, int64 array of N."""
        return np.diff(self._offsets[:self._n + 1])

    @property
    def nbytes(self):
        """Bytes spanned by the frames (offsets[N] - offsets[0])."""
        return int(self._op[self._n] - self._op[0])

    def __repr__(self):
        return "<FrameBatch frames=%d bytes=%d>" % (self._n, self.nbytes)

    def __reduce__(self):
        s = self._op[0]
        e = self._op[self._n]
        return (FrameBatch.from_buffer,
                (bytes(self._data[s:e]), self._offsets[:self._n + 1] - s))


cdef extern from "Python.h":
    # declared without an exception clause: the return code is checked here
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer* view, int flags)


cdef int _frame_buffer(object obj, Py_ssize_t index, Py_buffer* view) except -1:
    """Acquire a C-contiguous byte view of one frame, or raise TypeError naming the frame."""
    if _get_buffer(obj, view, PyBUF_SIMPLE) == 0:
        return 0
    PyErr_Clear()
    where = "" if index < 0 else " (frame %d)" % index
    if PyObject_CheckBuffer(obj):
        raise TypeError("a frame must be C-contiguous%s" % where)
    raise TypeError("a frame must be a bytes-like object (bytes, bytearray, memoryview, "
                    "C-contiguous numpy array)%s, not %r" % (where, type(obj).__name__))


cdef object _as_u8_array(object obj, str name):
    if isinstance(obj, np.ndarray):
        if obj.dtype != np.uint8 or obj.ndim != 1 or not obj.flags.c_contiguous:
            raise TypeError("%s must be a 1-D C-contiguous uint8 array, got %s %s" % (name, obj.dtype, obj.shape))
        return obj
    try:
        mv = memoryview(obj)
    except TypeError:
        raise TypeError("%s must be a bytes-like object, not %r" % (name, type(obj).__name__)) from None
    if not mv.c_contiguous:
        raise TypeError("%s must be C-contiguous" % name)
    return np.frombuffer(mv.cast("B") if (mv.itemsize != 1 or mv.ndim != 1) else mv, dtype=np.uint8)
