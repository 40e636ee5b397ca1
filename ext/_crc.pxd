# cython: language_level=3
"""C declarations of the checksum kernels (ext/include/mp_crc.h), for every module that checks frames.

A module that cimports these must call ``mp_crc_init_all()`` once at import."""
from libc.stdint cimport uint8_t, uint16_t, int64_t


cdef extern from "mp_crc.h" nogil:
    ctypedef struct mp_crc16_model:
        uint16_t init
        uint16_t xorout

    mp_crc16_model MP_CRC16_MODBUS
    mp_crc16_model MP_CRC16_X25
    mp_crc16_model MP_CRC16_ARC
    int mp_cpu_has_clmul
    int mp_cpu_has_vpclmul512

    void mp_crc_init_all()
    void mp_detect_cpu()
    uint16_t mp_crc16(const mp_crc16_model* m, const uint8_t* p, size_t n)
    uint16_t mp_crc16_update(const mp_crc16_model* m, uint16_t crc, const uint8_t* p, size_t n)
    uint16_t mp_crc16_portable(const mp_crc16_model* m, const uint8_t* p, size_t n)
    int64_t mp_crc16_many(const mp_crc16_model* m, const uint8_t* base, const int64_t* off,
                          int64_t nframes, int64_t limit, uint16_t* out)
    uint8_t mp_sum8(const uint8_t* p, size_t n)
    uint8_t mp_xor8(const uint8_t* p, size_t n)
