# cython: language_level=3
"""M-Bus (EN 13757-2 link layer, EN 13757-3 application layer) native decoder: declarations.

Frame formats (all multi-byte fields little-endian):
  single character  E5
  short frame       10 C A CS 16                    CS = (C + A) mod 256
  long frame        68 L L 68 C A CI data CS 16     L = bytes C..last data byte, CS = sum of them mod 256
"""
from libc.stdint cimport uint8_t, uint32_t, int64_t

from meterpoll.ext._readings cimport reading_buf, frame_status_t


# Quantity identifiers of the value information (VIF) decoder; bindings/mbus.py mirrors them
# (Quantity) and documents the OBIS each one maps to.
cdef enum:
    QT_NONE = 0
    QT_ENERGY = 1          # Wh (J converted: / 3600)
    QT_VOLUME = 2          # m3
    QT_MASS = 3            # kg
    QT_ON_TIME = 4         # s
    QT_OP_TIME = 5         # s
    QT_POWER = 6           # W (J/h converted: / 3600)
    QT_VOLUME_FLOW = 7     # m3/h
    QT_MASS_FLOW = 8       # kg/s
    QT_FLOW_TEMP = 9       # degC
    QT_RETURN_TEMP = 10    # degC
    QT_TEMP_DIFF = 11      # K
    QT_EXT_TEMP = 12       # degC
    QT_PRESSURE = 13       # bar
    QT_HCA = 14            # heat-cost allocator units (count)
    QT_FABRICATION_NO = 15 # count
    QT_VOLTAGE = 16        # V
    QT_CURRENT = 17        # A
    QT_ERROR_FLAGS = 18    # count (bit field as a number)
    QT_DATE = 19           # type G date: a timestamp source, never a reading
    QT_DATETIME = 20       # type F / I date-time: a timestamp source, never a reading


cdef int mbus_decode_frame(const uint8_t* p, Py_ssize_t n, uint32_t meter, int64_t rx_ts,
                           int medium_default, reading_buf* rb, frame_status_t* fs) noexcept nogil
