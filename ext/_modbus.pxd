# cython: language_level=3
"""Modbus RTU / TCP batch decoder: the register-map entry and request records.

``mb_entry_t`` mirrors ``meterpoll.ext._modbus.MAP_DTYPE`` and ``mb_request_t`` mirrors
``REQUEST_DTYPE`` (aligned layouts; a test checks both against the numpy dtypes).
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t

from meterpoll.ext._readings cimport reading_buf, frame_status_t


ctypedef struct mb_entry_t:
    uint64_t obis        # OBIS packed as in reading_t
    double scale         # multiplier from the raw register value to the base unit
    uint32_t key         # function << 16 | PDU register address (entries are sorted by key)
    uint8_t width        # registers: 1, 2 or 4
    uint8_t type         # MB_T_* below
    uint8_t order        # 0: most significant register first ("big"), 1: least first ("little")
    uint8_t unit         # DLMS unit


ctypedef struct mb_request_t:
    int32_t transaction  # MBAP transaction id to expect, -1 = do not check
    uint16_t unit        # slave / unit id to expect, 0xFFFF = do not check
    uint16_t start       # 0x03/0x04: first register; 0x06: address; 0x08: sub-function; 0x10: start
    uint16_t count       # 0x03/0x04/0x10: register count; 0x06: value; 0x08: data word
    uint8_t function     # 3, 4, 6, 8 or 16
    uint8_t reserved


cdef enum:
    MB_T_INT16 = 0
    MB_T_UINT16 = 1
    MB_T_INT32 = 2
    MB_T_UINT32 = 3
    MB_T_FLOAT32 = 4
    MB_T_INT64 = 5
    MB_T_UINT64 = 6
    MB_T_FLOAT64 = 7

cdef enum:
    MB_MODE_RTU = 0
    MB_MODE_TCP = 1
    MB_MODE_AUTO = 2


cdef int mb_decode(const uint8_t* p, Py_ssize_t n, int mode, const mb_request_t* rq,
                   const mb_entry_t* ent, Py_ssize_t nent, reading_buf* rb,
                   uint32_t meter, int64_t ts, frame_status_t* fs, int* why) noexcept nogil
