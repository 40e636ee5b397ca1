# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Hand-over of native reading buffers to numpy, and the layouts the bindings check."""
from cpython.pycapsule cimport PyCapsule_Destructor, PyCapsule_GetPointer, PyCapsule_New
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    object PyArray_NewFromDescr(type subtype, cnp.dtype descr, int nd, cnp.npy_intp* dims,
                                cnp.npy_intp* strides, void* data, int flags, object obj)

# The numpy mirror of reading_t / frame_status_t (aligned, so offsets follow C rules).
READING_DTYPE = np.dtype(
    [("meter", np.uint32), ("obis", np.uint64), ("ts", "datetime64[ms]"),
     ("value", np.float64), ("unit", np.uint8), ("status", np.uint16)], align=True)
FRAME_STATUS_DTYPE = np.dtype(
    [("status", np.uint8), ("reserved", np.uint8), ("code", np.uint16), ("offset", np.int32),
     ("first", np.uint32), ("count", np.uint32)], align=True)


def c_layouts():
    """sizeof and field offsets of the C structs, for the layout test."""
    cdef reading_t r
    cdef frame_status_t f
    cdef char* rb = <char*>&r
    cdef char* fb = <char*>&f
    return {
        "reading": (sizeof(reading_t), {
            "meter": <char*>&r.meter - rb, "obis": <char*>&r.obis - rb, "ts": <char*>&r.ts - rb,
            "value": <char*>&r.value - rb, "unit": <char*>&r.unit - rb, "status": <char*>&r.status - rb}),
        "frame_status": (sizeof(frame_status_t), {
            "status": <char*>&f.status - fb, "reserved": <char*>&f.reserved - fb,
            "code": <char*>&f.code - fb, "offset": <char*>&f.offset - fb,
            "first": <char*>&f.first - fb, "count": <char*>&f.count - fb}),
    }


cdef void _free_capsule(object cap) noexcept:
    free(PyCapsule_GetPointer(cap, NULL))


cdef object rb_to_array(reading_buf* b):
    """Give the buffer's memory to a new READING_DTYPE array (no copy); ``b`` is left empty.
    The array frees the memory when it is collected."""
    cdef cnp.npy_intp dims[1]
    cdef reading_t* data = b.data
    cdef Py_ssize_t n = b.n
    if data == NULL or n == 0:
        rb_free(b)
        return np.empty(0, dtype=READING_DTYPE)
    if n < b.cap // 2:  # give back the slack of a generous estimate
        shrunk = <reading_t*>realloc(data, n * sizeof(reading_t))
        if shrunk != NULL:
            data = shrunk
    b.data = NULL
    b.n = 0
    b.cap = 0
    dims[0] = n
    cap = PyCapsule_New(<void*>data, NULL, <PyCapsule_Destructor>_free_capsule)
    dtype = READING_DTYPE
    Py_INCREF(dtype)  # PyArray_NewFromDescr steals a reference to the descriptor
    arr = PyArray_NewFromDescr(np.ndarray, <cnp.dtype>dtype, 1, dims, NULL, <void*>data,
                               cnp.NPY_ARRAY_CARRAY, None)
    cnp.set_array_base(arr, cap)
    return arr


cdef object new_frame_status(Py_ssize_t n):
    """A zeroed FRAME_STATUS_DTYPE array of n records (offset -1 is set by the decoders)."""
    return np.zeros(n, dtype=FRAME_STATUS_DTYPE)


def _synthetic(Py_ssize_t n, Py_ssize_t initial_capacity=16):
    """Testing hook: n readings pushed through a reading_buf (growing from initial_capacity)
    and handed to numpy by rb_to_array.  Reading i has meter i, obis i, ts i, value i/2."""
    cdef reading_buf b
    cdef Py_ssize_t i
    cdef int rc = 0
    with nogil:
        rc = rb_init(&b, initial_capacity)
        i = 0
        while rc == 0 and i < n:
            rc = rb_push(&b, <uint32_t>i, <uint64_t>i, <int64_t>i, i / 2.0, 30, 0)
            i += 1
    if rc != 0:
        rb_free(&b)
        raise MemoryError()
    return rb_to_array(&b)
