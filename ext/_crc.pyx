# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: always_allow_keywords=False
"""Checksum kernels over any C-contiguous buffer, single and batch.

Every function accepts bytes, bytearray, memoryview or a C-contiguous numpy array (its raw
bytes) without copying, and raises TypeError for anything else.  CRC results are returned as
the integer register value; on the wire Modbus, Mercury and HDLC send it low byte first.
"""
from cpython.buffer cimport PyBuffer_Release, PyBUF_SIMPLE, PyObject_CheckBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_Clear
from libc.stdint cimport uint8_t, uint16_t

from meterpoll.ext._frames cimport FrameBatch, frame_at

import numpy as np

from meterpoll.ext._frames import FrameBatch as _FrameBatch

cdef extern from "Python.h":
    # declared without an exception clause: the return code is checked here
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer* view, int flags)

mp_crc_init_all()

# Above this many bytes a single call releases the GIL (releasing costs ~0.1 us).
DEF NOGIL_BYTES = 4096

cdef enum Algo:
    A_MODBUS
    A_X25
    A_ARC
    A_SUM8
    A_XOR8
    A_SUM7


cdef inline unsigned int _run(Algo a, const uint8_t* p, size_t n) noexcept nogil:
    if a == A_MODBUS:
        return mp_crc16(&MP_CRC16_MODBUS, p, n)
    elif a == A_X25:
        return mp_crc16(&MP_CRC16_X25, p, n)
    elif a == A_ARC:
        return mp_crc16(&MP_CRC16_ARC, p, n)
    elif a == A_SUM8:
        return mp_sum8(p, n)
    elif a == A_XOR8:
        return mp_xor8(p, n)
    else:
        return mp_sum8(p, n) & 0x7F


cdef int _raise_not_buffer(object obj, str fname) except -1:
    PyErr_Clear()
    if PyObject_CheckBuffer(obj):
        raise TypeError("%s() needs a C-contiguous buffer; got a non-contiguous %r"
                        % (fname, type(obj).__name__))
    raise TypeError("%s() argument must be a bytes-like object (bytes, bytearray, memoryview or "
                    "C-contiguous numpy array), not %r" % (fname, type(obj).__name__))


cdef inline object _single(Algo a, object data, str fname):
    cdef Py_buffer view
    cdef unsigned int r
    if type(data) is bytes:
        return _run(a, <const uint8_t*>PyBytes_AS_STRING(data), <size_t>PyBytes_GET_SIZE(data))
    if _get_buffer(data, &view, PyBUF_SIMPLE) < 0:
        _raise_not_buffer(data, fname)
    try:
        if view.len > NOGIL_BYTES:
            with nogil:
                r = _run(a, <const uint8_t*>view.buf, <size_t>view.len)
        else:
            r = _run(a, <const uint8_t*>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return r


def crc16_modbus(data):
    """CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF, xorout 0): Modbus RTU and Mercury 230/234.

    Sent low byte first.  ``crc16_modbus(b"123456789") == 0x4B37``; over a frame that ends in
    its own CRC the result is 0."""
    return _single(A_MODBUS, data, "crc16_modbus")


def crc16_x25(data):
    """CRC-16/X-25 (poly 0x1021 reflected, init 0xFFFF, xorout 0xFFFF): DLMS/HDLC HCS and FCS.

    Sent low byte first.  ``crc16_x25(b"123456789") == 0x906E``."""
    return _single(A_X25, data, "crc16_x25")


def crc16_arc(data):
    """CRC-16/ARC (poly 0x8005 reflected, init 0, xorout 0): DSMR P1 (IEC 62056-21 mode D) telegrams.

    ``crc16_arc(b"123456789") == 0xBB3D``."""
    return _single(A_ARC, data, "crc16_arc")


def mbus_checksum(data):
    """Arithmetic sum of the bytes mod 256 (M-Bus CS, EN 13757-2)."""
    return _single(A_SUM8, data, "mbus_checksum")


def bcc(data):
    """XOR of the bytes (IEC 62056-21 block check character, 8 bits; the line carries the
    low 7, so compare ``bcc(x) & 0x7F`` with a BCC received in 7E1)."""
    return _single(A_XOR8, data, "bcc")


def bcc_sum7(data):
    """Arithmetic sum of the bytes mod 128: the Energomera variant of the IEC 62056-21 BCC."""
    return _single(A_SUM7, data, "bcc_sum7")


cdef object _many(Algo a, object batch, type dtype, str fname):
    cdef FrameBatch b
    if isinstance(batch, _FrameBatch):
        b = <FrameBatch>batch
    else:
        try:
            b = _FrameBatch.from_frames(batch)
        except TypeError as e:
            raise TypeError("%s() takes a FrameBatch or an iterable of bytes-like frames: %s" % (fname, e)) from None
    cdef Py_ssize_t n = b._n, i, bad = -1, ln
    cdef const uint8_t* p
    out = np.empty(n, dtype=dtype)
    if n == 0:
        return out
    cdef uint16_t[::1] o16
    cdef uint8_t[::1] o8
    cdef bint wide = dtype is np.uint16
    cdef uint16_t* d16 = NULL
    cdef uint8_t* d8 = NULL
    if wide:
        o16 = out
        d16 = &o16[0]
    else:
        o8 = out
        d8 = &o8[0]
    cdef const mp_crc16_model* model = NULL
    if a == A_MODBUS:
        model = &MP_CRC16_MODBUS
    elif a == A_X25:
        model = &MP_CRC16_X25
    elif a == A_ARC:
        model = &MP_CRC16_ARC
    with nogil:
        if model != NULL:
            bad = mp_crc16_many(model, b._dp, b._op, n, b._limit, d16)
        else:
            for i in range(n):
                if not frame_at(b, i, &p, &ln):
                    bad = i
                    break
                d8[i] = <uint8_t>_run(a, p, <size_t>ln)
    if bad >= 0:
        raise ValueError("%s(): offsets of frame %d point outside the buffer (changed after the batch was built)"
                         % (fname, bad))
    return out


def crc16_modbus_many(batch):
    """CRC-16/MODBUS of every frame of a FrameBatch, as a uint16 array (one nogil loop)."""
    return _many(A_MODBUS, batch, np.uint16, "crc16_modbus_many")


def crc16_x25_many(batch):
    """CRC-16/X-25 of every frame of a FrameBatch, as a uint16 array (one nogil loop)."""
    return _many(A_X25, batch, np.uint16, "crc16_x25_many")


def crc16_arc_many(batch):
    """CRC-16/ARC of every frame of a FrameBatch, as a uint16 array (one nogil loop)."""
    return _many(A_ARC, batch, np.uint16, "crc16_arc_many")


def mbus_checksum_many(batch):
    """Sum mod 256 of every frame of a FrameBatch, as a uint8 array."""
    return _many(A_SUM8, batch, np.uint8, "mbus_checksum_many")


def bcc_many(batch):
    """XOR of every frame of a FrameBatch, as a uint8 array."""
    return _many(A_XOR8, batch, np.uint8, "bcc_many")


def bcc_sum7_many(batch):
    """Sum mod 128 of every frame of a FrameBatch, as a uint8 array."""
    return _many(A_SUM7, batch, np.uint8, "bcc_sum7_many")


def crc_accelerator():
    """The bulk CRC path in use for long buffers: "vpclmulqdq-512", "pclmulqdq" (carry-less
    multiply folding) or "slicing-by-8" (portable tables)."""
    if mp_cpu_has_clmul and mp_cpu_has_vpclmul512:
        return "vpclmulqdq-512"
    return "pclmulqdq" if mp_cpu_has_clmul else "slicing-by-8"


def _force_path(str path):
    """Testing hook: restrict the CRC kernels to "slicing-by-8", "pclmulqdq", or "auto"
    (CPU detection).  Returns the path now in use."""
    global mp_cpu_has_clmul, mp_cpu_has_vpclmul512
    mp_detect_cpu()
    if path == "slicing-by-8":
        mp_cpu_has_clmul = 0
    elif path == "pclmulqdq":
        mp_cpu_has_vpclmul512 = 0
    elif path != "auto":
        raise ValueError("path must be 'auto', 'pclmulqdq' or 'slicing-by-8'")
    return crc_accelerator()
