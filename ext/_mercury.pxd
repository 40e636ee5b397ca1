# cython: language_level=3
"""Mercury 230/234 (Incotex) answer layouts.

A Mercury answer carries no request code, no length and no OBIS: how its data bytes are read
depends entirely on the request it answers.  ``merc_layout`` turns the four bytes that matter
in a request (address, request code, parameter 1, parameter 2) into a ``merc_layout_t``; the
batch decoder reads every answer through the layout of its request.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t


# merc_layout_t.kind
cdef enum:
    MK_ANY = 0          # no request given: only 1-byte status answers can be decoded
    MK_STATUS = 1       # 00 test / 01 open / 02 close channel: answer = 1 status byte
    MK_ENERGY = 2       # 05h / 15h arrays, 08 14 Fx fixed energy: 4-byte [2][1][4][3] values
    MK_AUX = 3          # 08 11 / 14 / 16 + BWRI instantaneous values
    MK_TIME = 4         # 04 00: 8 BCD bytes
    MK_JOURNAL = 5      # 04 J R: 2 x 6 BCD bytes
    MK_SERIAL = 6       # 08 00: 4 binary 0..99 bytes + day, month, year
    MK_VERSION = 7      # 08 03: 3 binary bytes
    MK_UNSUPPORTED = 8  # a request whose answer this decoder does not interpret
    MK_PROFILE = 9      # 06 03 <offset 2> 0F: one 15-byte load-profile record (needs constant A)

# merc_layout_t.enc (value encodings)
cdef enum:
    ME_NONE = 0
    ME_U24 = 1      # 3 bytes [1][3][2]: (b0 & 0x3F) << 16 | b2 << 8 | b1, direction bits in b0
    ME_P32 = 2      # 4 bytes [2][1][4][3]: (b1 & 0x3F) << 24 | b0 << 16 | b3 << 8 | b2, bits in b1
    ME_E32 = 3      # 4 bytes [2][1][4][3] unmasked energy; FF FF FF FF = not measured (skipped)
    ME_U16LE = 4    # 2 bytes little-endian (distortion coefficient)
    ME_S16BE = 5    # 2 bytes big-endian signed (internal temperature)

# merc_layout_t.sign
cdef enum:
    MS_NONE = 0
    MS_ACTIVE = 1       # bit 7 of the direction byte set = reverse = negative value
    MS_REACTIVE = 2     # bit 6 of the direction byte set = reverse = negative value


ctypedef struct merc_layout_t:
    uint8_t kind
    uint8_t enc
    uint8_t count        # values in the answer
    uint8_t width        # bytes per value
    uint8_t sign
    uint8_t unit         # DLMS unit of every value
    uint8_t journal      # MK_JOURNAL: journal number (OBIS E)
    uint8_t addr         # request address (0 = universal: any answer address accepted)
    uint16_t constant    # MK_PROFILE: meter constant A (impulses per kWh)
    Py_ssize_t dlen      # expected number of data bytes (between address and CRC)
    double scale         # raw * scale = value in base units
    uint64_t obis[4]


cdef void merc_layout(uint8_t addr, uint8_t code, uint8_t p1, uint8_t p2, uint16_t aux,
                      merc_layout_t* L) noexcept nogil
