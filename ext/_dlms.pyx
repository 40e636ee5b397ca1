# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""DLMS/COSEM native decoder.

Framing
  HDLC (IEC 62056-46): ``7E | A<S><11-bit length> | dst 1/2/4 | src 1/2/4 | control | [HCS] |
  info | FCS | 7E``.  Lengths are big-endian, HCS/FCS are CRC-16/X-25 sent low byte first.
  An address byte carries 7 bits in bits 7..1; bit 0 = 1 ends the address.  No byte stuffing.
  The first segment of an APDU carries the LLC header ``E6 E7 00`` (or ``E6 E6 00``).
  TCP wrapper (IEC 62056-47): ``00 01 | source wPort (2, BE) | destination wPort (2, BE) |
  length (2, BE) | APDU``.
  One *item* (a batch frame) is everything received for one request: one or more HDLC frames
  back to back (segmented frames, S bit set on all but the last, are joined into one APDU; a
  closing flag may double as the next opening flag), or one or more wrapper messages, or one
  bare APDU.  GET.response-with-datablock blocks in consecutive frames/messages are joined
  (block numbers must be consecutive) and decoded when the last block arrives.

APDUs: GET.response normal (C4 01), with-datablock (C4 02), with-list (C4 03: UNSUPPORTED in the
readings path, see bindings.dlms.parse_get_response), DataNotification (0F, push lists);
a data-access-result error gives PROTOCOL_EXCEPTION with ``code`` = the result (e.g. 4
object-undefined); exception-response D8 gives ``code`` = state-error << 8 | service-error;
confirmed-service-error 0E gives ``code`` = error-type tag << 8 | error value.

A-XDR: every multi-byte integer is big-endian; lengths are one byte below 0x80 or 0x81/0x82/
0x83/0x84 followed by 1..4 length bytes.  Nesting deeper than MAX_DEPTH gives TOO_DEEP.

Readings
  register: value * 10**scaler (scaler_unit of the request's object), unit = DLMS unit, OBIS from
  the request, ts = the frame's receive time.
  profile (class 7 attribute 2 buffer): an array of structures, one per row, decoded with the
  caller's columns (OBIS, scaler, unit; one column marked clock).  Row time = the clock column,
  converted to UTC as ``local + deviation`` minutes (DLMS Blue Book sign: CET = -60).  A
  deviation of 0x8000 (not specified) uses ``dev_default`` (0 = the time is taken as UTC).
  Seconds/hundredths 0xFF count as 0.  A null-data clock or one with an unspecified year, month,
  day, hour or minute (compressed profiles) takes previous row + capture period, with the
  previous row's quality; without a previous row or capture period the receive time is used and
  the row's readings get Quality.CLOCK_INVALID.  Clock status bit 0 (invalid) or bit 3 (invalid
  status) or an impossible date: receive time, CLOCK_INVALID.  Bit 1 (doubtful): the meter's
  time is kept, quality CLOCK_INVALID.  Null-data values give no reading.
"""
from cpython.buffer cimport PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy

from meterpoll.ext._common cimport (cursor_t, cur_init, cur_left, cur_pos, cur_skip, cur_u8,
                                    cur_u16be, cur_u32be, cur_u64be, load_u16be, load_u16le,
                                    load_u32be, load_u64be, f32_from_bits, f64_from_bits,
                                    obis_from_bytes, valid_civil, civil_to_ms)
from meterpoll.ext._crc cimport mp_crc16, MP_CRC16_X25, mp_crc_init_all
from meterpoll.ext._frames cimport FrameBatch, frame_at
from meterpoll.ext._readings cimport (reading_t, frame_status_t, reading_buf, rb_init, rb_reserve,
                                      rb_push, rb_free, rb_to_array, new_frame_status,
    FS_OK, FS_CHECKSUM, FS_TRUNCATED, FS_BAD_LENGTH, FS_BAD_ADDRESS, FS_PROTOCOL_EXCEPTION,
    FS_UNSUPPORTED, FS_BAD_FRAMING, FS_BAD_VALUE, FS_TOO_DEEP, FS_MISMATCH, FS_OUT_OF_MEMORY,
    FS_NO_DATA, Q_OK, Q_CLOCK_INVALID)

import collections

import numpy as np

from meterpoll.ext._frames import FrameBatch as _FrameBatch

mp_crc_init_all()

cdef extern from "Python.h":
    int _get_buffer "PyObject_GetBuffer"(object obj, Py_buffer* view, int flags) except -1

# frame statuses and qualities are the shared FS_* / Q_* of ext/_readings.pxd; one more, internal:
cdef enum:
    S_NEED_MORE = 100        # a datablock transfer waits for its next block

MAX_DEPTH = 16
cdef int C_MAX_DEPTH = 16

READ_REQ_DTYPE = np.dtype([
    ("obis", np.uint64), ("now_ms", np.int64), ("period_ms", np.int64), ("meter", np.uint32),
    ("invoke", np.int32), ("col_start", np.int32), ("col_count", np.int32),
    ("dev_default", np.int32), ("exp_dst", np.uint32), ("exp_src", np.uint32),
    ("scaler", np.int8), ("unit", np.uint8), ("framing", np.uint8)], align=True)
COL_DTYPE = np.dtype([("obis", np.uint64), ("scaler", np.int8), ("unit", np.uint8),
                      ("kind", np.uint8)], align=True)
if READ_REQ_DTYPE.itemsize != sizeof(req_t) or COL_DTYPE.itemsize != sizeof(col_t):
    raise ImportError("req_t/col_t layouts do not match their numpy dtypes")

cdef double P10[129]
for _i in range(129):
    P10[_i] = float(10 ** _i)


# ---------------------------------------------------------------------------------------------
# decoder state
# ---------------------------------------------------------------------------------------------

ctypedef struct dec_t:
    reading_buf* rb
    uint8_t* seg            # APDU assembly of segmented HDLC frames
    Py_ssize_t seg_n
    Py_ssize_t seg_cap
    uint8_t* blk            # raw data of a datablock transfer
    Py_ssize_t blk_n
    Py_ssize_t blk_cap
    int64_t blk_no          # last block number seen (-1 = none)
    const col_t* cols
    Py_ssize_t ncols_total
    const req_t* r
    Py_ssize_t off          # error offset in the item
    int code                # protocol exception code
    const char* why         # reason text of the error
    const uint8_t* item     # item start (offset reference)
    Py_ssize_t map_off      # offset reported for errors inside reassembled data


cdef inline int fail(dec_t* d, int st, Py_ssize_t off, const char* why) noexcept nogil:
    d.off = off
    d.why = why
    return st


cdef int grow(uint8_t** buf, Py_ssize_t* cap, Py_ssize_t need) noexcept nogil:
    cdef Py_ssize_t c = cap[0]
    cdef uint8_t* nb
    if need <= c:
        return 0
    if c < 256:
        c = 256
    while c < need:
        c *= 2
    nb = <uint8_t*>realloc(buf[0], c)
    if nb == NULL:
        return -1
    buf[0] = nb
    cap[0] = c
    return 0


# ---------------------------------------------------------------------------------------------
# HDLC
# ---------------------------------------------------------------------------------------------

ctypedef struct hdlc_t:
    uint16_t fmt
    int seg
    Py_ssize_t flen          # bytes from opening to closing flag inclusive (= length + 2)
    uint32_t dst
    uint32_t src
    int dst_n
    int src_n
    uint8_t ctrl
    Py_ssize_t info_off      # -1 when the frame has no information field
    Py_ssize_t info_n
    uint16_t hcs
    uint16_t fcs


cdef int hdlc_parse(dec_t* d, const uint8_t* p, Py_ssize_t n, Py_ssize_t base, hdlc_t* h) noexcept nogil:
    """Validate one HDLC frame at p (n bytes available); offsets reported as base + position."""
    cdef Py_ssize_t L, end, i
    cdef int k
    cdef uint8_t b
    if n < 1:
        return fail(d, FS_TRUNCATED, base, "empty frame")
    if p[0] != 0x7E:
        return fail(d, FS_BAD_FRAMING, base, "HDLC frame does not start with flag 0x7E")
    if n < 3:
        return fail(d, FS_TRUNCATED, base + n, "HDLC frame ends inside the frame format field")
    h.fmt = load_u16be(p + 1)
    if (h.fmt >> 12) != 0xA:
        return fail(d, FS_BAD_FRAMING, base + 1, "HDLC frame format type is not 0xA")
    h.seg = (h.fmt >> 11) & 1
    L = h.fmt & 0x7FF
    if L < 7:
        return fail(d, FS_BAD_LENGTH, base + 1, "HDLC length field below the 7-byte minimum")
    if n < L + 2:
        return fail(d, FS_TRUNCATED, base + n, "HDLC frame shorter than its length field")
    if p[L + 1] != 0x7E:
        return fail(d, FS_BAD_FRAMING, base + L + 1, "HDLC frame does not end with flag 0x7E")
    h.flen = L + 2
    end = L - 1                  # index of the FCS (first byte)
    i = 3
    h.dst = 0
    k = 0
    while True:
        if i >= end:
            return fail(d, FS_BAD_FRAMING, base + i, "HDLC destination address runs into the FCS")
        b = p[i]
        h.dst = (h.dst << 8) | b
        i += 1
        k += 1
        if b & 1:
            break
        if k == 4:
            return fail(d, FS_BAD_ADDRESS, base + i - 1, "HDLC destination address longer than 4 bytes")
    if k == 3:
        return fail(d, FS_BAD_ADDRESS, base + i - 1, "HDLC destination address of 3 bytes")
    h.dst_n = k
    h.src = 0
    k = 0
    while True:
        if i >= end:
            return fail(d, FS_BAD_FRAMING, base + i, "HDLC source address runs into the FCS")
        b = p[i]
        h.src = (h.src << 8) | b
        i += 1
        k += 1
        if b & 1:
            break
        if k == 4:
            return fail(d, FS_BAD_ADDRESS, base + i - 1, "HDLC source address longer than 4 bytes")
    if k == 3:
        return fail(d, FS_BAD_ADDRESS, base + i - 1, "HDLC source address of 3 bytes")
    h.src_n = k
    if i >= end:
        return fail(d, FS_BAD_FRAMING, base + i, "HDLC frame has no control field")
    h.ctrl = p[i]
    i += 1
    h.fcs = load_u16le(p + end)
    if i == end:
        h.info_off = -1
        h.info_n = 0
        h.hcs = 0
    else:
        if i + 2 > end:
            return fail(d, FS_BAD_LENGTH, base + i, "HDLC frame has one byte between control and FCS")
        h.hcs = load_u16le(p + i)
        if mp_crc16(&MP_CRC16_X25, p + 1, i - 1) != h.hcs:
            return fail(d, FS_CHECKSUM, base + i, "HDLC HCS does not match")
        h.info_off = i + 2
        h.info_n = end - (i + 2)
    if mp_crc16(&MP_CRC16_X25, p + 1, L - 2) != h.fcs:
        return fail(d, FS_CHECKSUM, base + end, "HDLC FCS does not match")
    return FS_OK


cdef inline Py_ssize_t next_frame_pos(const uint8_t* p, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t flen) noexcept nogil:
    """Start of the frame after one of flen bytes at pos: the closing flag may be shared."""
    cdef Py_ssize_t q = pos + flen
    if q < n and p[q] != 0x7E:
        return q - 1
    return q


# ---------------------------------------------------------------------------------------------
# A-XDR
# ---------------------------------------------------------------------------------------------

cdef inline int rd_len(cursor_t* c, uint32_t* out) noexcept nogil:
    """A-XDR length: 0 ok, else FS_TRUNCATED / FS_BAD_LENGTH."""
    cdef uint8_t b, k
    cdef uint32_t v = 0
    if cur_u8(c, &b) < 0:
        return FS_TRUNCATED
    if b < 0x80:
        out[0] = b
        return 0
    k = b & 0x7F
    if k == 0 or k > 4:
        c.p -= 1
        return FS_BAD_LENGTH
    if cur_left(c) < k:
        return FS_TRUNCATED
    while k:
        v = (v << 8) | c.p[0]
        c.p += 1
        k -= 1
    out[0] = v
    return 0


cdef inline Py_ssize_t fixed_size(uint8_t tag) noexcept nogil:
    """Size of a fixed-size A-XDR type's body, -1 for variable / structured, -2 unknown."""
    if tag == 0x00:
        return 0
    if tag == 0x03 or tag == 0x0D or tag == 0x0F or tag == 0x11 or tag == 0x16:
        return 1
    if tag == 0x10 or tag == 0x12:
        return 2
    if tag == 0x05 or tag == 0x06 or tag == 0x17:
        return 4
    if tag == 0x14 or tag == 0x15 or tag == 0x18:
        return 8
    if tag == 0x19:
        return 12
    if tag == 0x1A:
        return 5
    if tag == 0x1B:
        return 4
    if tag == 0x01 or tag == 0x02 or tag == 0x04 or tag == 0x09 or tag == 0x0A or tag == 0x0C:
        return -1
    return -2


cdef int skip_body(dec_t* d, cursor_t* c, uint8_t tag, int depth) noexcept nogil:
    """Skip the body of an element whose tag was just read.  0 ok, else a status (d.off set)."""
    cdef Py_ssize_t sz = fixed_size(tag)
    cdef uint32_t n, i
    cdef uint64_t nb
    cdef uint8_t t
    cdef int st
    if sz >= 0:
        if cur_skip(c, sz) < 0:
            return fail(d, FS_TRUNCATED, cur_pos(c), "A-XDR value ends early")
        return 0
    if sz == -2:
        if tag == 0x13:
            return fail(d, FS_UNSUPPORTED, cur_pos(c) - 1, "A-XDR compact-array is not supported")
        return fail(d, FS_UNSUPPORTED, cur_pos(c) - 1, "unknown A-XDR type tag")
    st = rd_len(c, &n)
    if st:
        return fail(d, st, cur_pos(c), "bad A-XDR length")
    if tag == 0x01 or tag == 0x02:
        if depth >= C_MAX_DEPTH:
            return fail(d, FS_TOO_DEEP, cur_pos(c), "A-XDR nesting too deep")
        if <uint64_t>n > <uint64_t>cur_left(c):
            return fail(d, FS_TRUNCATED, cur_pos(c), "A-XDR array/structure longer than the data")
        for i in range(n):
            if cur_u8(c, &t) < 0:
                return fail(d, FS_TRUNCATED, cur_pos(c), "A-XDR array/structure ends early")
            st = skip_body(d, c, t, depth + 1)
            if st:
                return st
        return 0
    if tag == 0x04:
        nb = (<uint64_t>n + 7) >> 3
    else:
        nb = n
    if nb > <uint64_t>cur_left(c):
        return fail(d, FS_TRUNCATED, cur_pos(c), "A-XDR string longer than the data")
    c.p += nb
    return 0


cdef inline int rd_num(dec_t* d, cursor_t* c, uint8_t tag, double* out) noexcept nogil:
    """Numeric A-XDR value after its tag: 0 = number in out, -1 = null-data, -2 = not a number
    (cursor unchanged), else a status (> 0)."""
    cdef const uint8_t* q = c.p
    cdef Py_ssize_t left = c.end - c.p
    if tag == 0x06:
        if left < 4:
            return fail(d, FS_TRUNCATED, cur_pos(c), "double-long-unsigned ends early")
        out[0] = <double>load_u32be(q)
        c.p += 4
    elif tag == 0x12:
        if left < 2:
            return fail(d, FS_TRUNCATED, cur_pos(c), "long-unsigned ends early")
        out[0] = <double>load_u16be(q)
        c.p += 2
    elif tag == 0x05:
        if left < 4:
            return fail(d, FS_TRUNCATED, cur_pos(c), "double-long ends early")
        out[0] = <double><int32_t>load_u32be(q)
        c.p += 4
    elif tag == 0x10:
        if left < 2:
            return fail(d, FS_TRUNCATED, cur_pos(c), "long ends early")
        out[0] = <double><int16_t>load_u16be(q)
        c.p += 2
    elif tag == 0x11 or tag == 0x16:
        if left < 1:
            return fail(d, FS_TRUNCATED, cur_pos(c), "unsigned/enum ends early")
        out[0] = <double>q[0]
        c.p += 1
    elif tag == 0x0F:
        if left < 1:
            return fail(d, FS_TRUNCATED, cur_pos(c), "integer ends early")
        out[0] = <double><int8_t>q[0]
        c.p += 1
    elif tag == 0x03:
        if left < 1:
            return fail(d, FS_TRUNCATED, cur_pos(c), "boolean ends early")
        out[0] = 1.0 if q[0] else 0.0
        c.p += 1
    elif tag == 0x14:
        if left < 8:
            return fail(d, FS_TRUNCATED, cur_pos(c), "long64 ends early")
        out[0] = <double><int64_t>load_u64be(q)
        c.p += 8
    elif tag == 0x15:
        if left < 8:
            return fail(d, FS_TRUNCATED, cur_pos(c), "long64-unsigned ends early")
        out[0] = <double>load_u64be(q)
        c.p += 8
    elif tag == 0x17:
        if left < 4:
            return fail(d, FS_TRUNCATED, cur_pos(c), "float32 ends early")
        out[0] = <double>f32_from_bits(load_u32be(q))
        c.p += 4
    elif tag == 0x18:
        if left < 8:
            return fail(d, FS_TRUNCATED, cur_pos(c), "float64 ends early")
        out[0] = f64_from_bits(load_u64be(q))
        c.p += 8
    elif tag == 0x0D:
        if left < 1:
            return fail(d, FS_TRUNCATED, cur_pos(c), "bcd ends early")
        if (q[0] >> 4) > 9 or (q[0] & 0x0F) > 9:
            return fail(d, FS_BAD_VALUE, cur_pos(c), "bcd digit above 9")
        out[0] = <double>((q[0] >> 4) * 10 + (q[0] & 0x0F))
        c.p += 1
    elif tag == 0x00:
        return -1
    else:
        return -2
    return 0


cdef inline double scale(double v, int s) noexcept nogil:
    if s >= 0:
        return v * P10[s]
    return v / P10[-s]


cdef int dt_parse(const uint8_t* b, int dev_default, int64_t* ms, uint8_t* status) noexcept nogil:
    """12-byte DLMS date-time -> ms UTC.  0 ok, 1 not specified, 2 impossible."""
    cdef int year = (b[0] << 8) | b[1]
    cdef int mon = b[2], day = b[3], hh = b[5], mi = b[6], ss = b[7], hs = b[8]
    cdef int dev = <int16_t>((b[9] << 8) | b[10])
    status[0] = b[11]
    if year == 0xFFFF or mon == 0xFF or mon == 0xFE or mon == 0xFD or day >= 0xE0 or hh == 0xFF or mi == 0xFF:
        return 1
    if ss == 0xFF:
        ss = 0
    if hs == 0xFF:
        hs = 0
    if year < 1 or year > 9999 or not valid_civil(year, mon, day, hh, mi, ss) or hs > 99:
        return 2
    if dev == -32768:
        dev = dev_default
    elif dev < -840 or dev > 840:
        return 2
    ms[0] = civil_to_ms(year, mon, day, hh, mi, ss, hs * 10) + <int64_t>dev * 60000
    return 0


# ---------------------------------------------------------------------------------------------
# readings from one Data
# ---------------------------------------------------------------------------------------------

cdef int data_readings(dec_t* d, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef cursor_t c
    cdef const req_t* r = d.r
    cdef uint8_t tag, t, cstat
    cdef uint32_t rows, cnt, row, j
    cdef int st, ncols, dts
    cdef double v
    cdef const col_t* cols
    cdef const col_t* col
    cdef Py_ssize_t row_first, k
    cdef int64_t ts, prev_ts = 0, dtms
    cdef int q, prev_q = Q_OK
    cdef bint have_prev = False, have_ts
    cdef uint16_t rq
    cdef reading_t* rr
    cur_init(&c, p, n)
    if cur_u8(&c, &tag) < 0:
        return fail(d, FS_TRUNCATED, 0, "GET.response without data")
    if r.col_count <= 0:
        st = rd_num(d, &c, tag, &v)
        if st == -1:
            if c.p != c.end:
                return fail(d, FS_BAD_LENGTH, cur_pos(&c), "bytes after the data")
            return fail(d, FS_NO_DATA, 0, "null-data")
        if st == -2:
            if tag == 0x01 or tag == 0x02:
                return fail(d, FS_MISMATCH, 0, "structured data for a register read: give columns")
            return fail(d, FS_MISMATCH, 0, "the value is not a number")
        if st != 0:
            return st
        if c.p != c.end:
            return fail(d, FS_BAD_LENGTH, cur_pos(&c), "bytes after the data")
        if rb_push(d.rb, r.meter, r.obis, r.now_ms, scale(v, r.scaler), r.unit, Q_OK) < 0:
            return fail(d, FS_OUT_OF_MEMORY, 0, "out of memory")
        return FS_OK
    # profile buffer
    if r.col_start < 0 or <int64_t>r.col_start + r.col_count > d.ncols_total:
        return fail(d, FS_MISMATCH, 0, "column set out of range")
    cols = d.cols + r.col_start
    ncols = r.col_count
    if tag != 0x01:
        return fail(d, FS_MISMATCH, 0, "profile columns given but the data is not an array")
    st = rd_len(&c, &rows)
    if st:
        return fail(d, st, cur_pos(&c), "bad array length")
    if <uint64_t>rows * <uint64_t>(2 + ncols) > <uint64_t>cur_left(&c):
        # a row takes at least 2 + ncols bytes (02 count, one byte per element): this bounds
        # the reservation below by the input size
        return fail(d, FS_TRUNCATED, cur_pos(&c), "profile array longer than the data")
    if rb_reserve(d.rb, <Py_ssize_t>rows * ncols) < 0:
        return fail(d, FS_OUT_OF_MEMORY, 0, "out of memory")
    for row in range(rows):
        if cur_u8(&c, &t) < 0:
            return fail(d, FS_TRUNCATED, cur_pos(&c), "profile row missing")
        if t != 0x02:
            return fail(d, FS_MISMATCH, cur_pos(&c) - 1, "profile row is not a structure")
        st = rd_len(&c, &cnt)
        if st:
            return fail(d, st, cur_pos(&c), "bad structure length")
        if cnt != <uint32_t>ncols:
            return fail(d, FS_MISMATCH, cur_pos(&c), "profile row has another number of columns")
        row_first = d.rb.n
        have_ts = False
        ts = r.now_ms
        q = Q_CLOCK_INVALID
        for j in range(cnt):
            col = cols + j
            if cur_u8(&c, &t) < 0:
                return fail(d, FS_TRUNCATED, cur_pos(&c), "profile row ends early")
            if col.kind == 0:
                st = rd_num(d, &c, t, &v)
                if st == 0:
                    if rb_push(d.rb, r.meter, col.obis, 0, scale(v, col.scaler), col.unit, Q_OK) < 0:
                        return fail(d, FS_OUT_OF_MEMORY, 0, "out of memory")
                elif st == -2:
                    return fail(d, FS_MISMATCH, cur_pos(&c) - 1, "profile value column holds a non-numeric type")
                elif st != -1:
                    return st
            elif col.kind == 1:
                have_ts = True
                if t == 0x00:
                    dts = 1
                elif t == 0x09:
                    if cur_left(&c) < 1:
                        return fail(d, FS_TRUNCATED, cur_pos(&c), "clock ends early")
                    if c.p[0] != 12:
                        return fail(d, FS_BAD_VALUE, cur_pos(&c), "clock octet-string is not 12 bytes")
                    if cur_left(&c) < 13:
                        return fail(d, FS_TRUNCATED, cur_pos(&c), "clock ends early")
                    dts = dt_parse(c.p + 1, r.dev_default, &dtms, &cstat)
                    c.p += 13
                elif t == 0x19:
                    if cur_left(&c) < 12:
                        return fail(d, FS_TRUNCATED, cur_pos(&c), "clock ends early")
                    dts = dt_parse(c.p, r.dev_default, &dtms, &cstat)
                    c.p += 12
                else:
                    return fail(d, FS_MISMATCH, cur_pos(&c) - 1, "clock column is not a date-time")
                if dts == 0 and (cstat == 0xFF or (cstat & 0x09) == 0):
                    ts = dtms
                    q = Q_CLOCK_INVALID if (cstat != 0xFF and (cstat & 0x02)) else Q_OK
                elif dts == 1 and have_prev and r.period_ms > 0:
                    ts = prev_ts + r.period_ms
                    q = prev_q
                else:
                    ts = r.now_ms
                    q = Q_CLOCK_INVALID
            else:
                st = skip_body(d, &c, t, 1)
                if st:
                    return st
        if have_ts:
            if q == Q_OK or ts != r.now_ms:
                have_prev = True
                prev_ts = ts
                prev_q = q
            else:
                have_prev = False
        else:
            q = Q_OK
        rq = <uint16_t>q
        rr = d.rb.data
        for k in range(row_first, d.rb.n):
            rr[k].ts = ts
            rr[k].status = rq
    if c.p != c.end:
        return fail(d, FS_BAD_LENGTH, cur_pos(&c), "bytes after the profile buffer")
    return FS_OK


cdef inline int data_status(dec_t* d, const uint8_t* p, Py_ssize_t n, Py_ssize_t base) noexcept nogil:
    """data_readings with error offsets moved to the item (base < 0: reassembled data)."""
    cdef int st = data_readings(d, p, n)
    if st != FS_OK and st != FS_NO_DATA:
        d.off = d.off + base if base >= 0 else d.map_off
    return st


cdef int clock_quality(int dts, uint8_t cstat) noexcept nogil:
    """-1 when the date-time is unusable, else the reading quality it gives."""
    if dts != 0 or (cstat != 0xFF and (cstat & 0x09)):
        return -1
    return Q_CLOCK_INVALID if (cstat != 0xFF and (cstat & 0x02)) else Q_OK


cdef int push_readings(dec_t* d, const uint8_t* p, Py_ssize_t n, int64_t ts, int q) noexcept nogil:
    """DataNotification body: an array/structure of {logical_name octet-string(6), value,
    [structure{integer scaler, enum unit}]} elements (self-describing push, IEC 62056-7-5 /
    HAN ports).  Numeric values become readings; a 0.0.1.0.0.255 element holding a 12-byte
    date-time gives the time when the notification header has none (ts < 0 on entry).  Other
    elements are skipped.  ts/q: the header's time, or ts = -1 if it had none."""
    cdef cursor_t c
    cdef uint8_t tag, t, t2, cstat
    cdef uint32_t cnt, k, m
    cdef int st, dts, cq, scaler
    cdef uint8_t unit
    cdef uint64_t ob
    cdef double v
    cdef bint isnum
    cdef int64_t clock_ts = -1, dtms
    cdef int clock_q = Q_OK
    cdef bint clock_seen = False
    cdef Py_ssize_t first = d.rb.n, i
    cdef const uint8_t* q0
    cur_init(&c, p, n)
    if cur_u8(&c, &tag) < 0:
        return fail(d, FS_TRUNCATED, 0, "notification body missing")
    if tag != 0x01 and tag != 0x02:
        return fail(d, FS_UNSUPPORTED, 0, "notification body is not a list")
    st = rd_len(&c, &cnt)
    if st:
        return fail(d, st, cur_pos(&c), "bad list length")
    if <uint64_t>cnt > <uint64_t>cur_left(&c):
        return fail(d, FS_TRUNCATED, cur_pos(&c), "list longer than the data")
    for k in range(cnt):
        if cur_u8(&c, &t) < 0:
            return fail(d, FS_TRUNCATED, cur_pos(&c), "list element missing")
        q0 = c.p
        if t != 0x02 or cur_left(&c) < 9 or (c.p[0] != 2 and c.p[0] != 3) or c.p[1] != 0x09 or c.p[2] != 6:
            st = skip_body(d, &c, t, 1)
            if st:
                return st
            continue
        m = c.p[0]
        ob = obis_from_bytes(c.p + 3)
        c.p += 9
        if cur_u8(&c, &t2) < 0:
            return fail(d, FS_TRUNCATED, cur_pos(&c), "push element value missing")
        isnum = False
        if t2 == 0x09 and cur_left(&c) >= 13 and c.p[0] == 12 and ob == 0x0000010000FF:
            dts = dt_parse(c.p + 1, d.r.dev_default, &dtms, &cstat)
            c.p += 13
            clock_seen = True
            cq = clock_quality(dts, cstat)
            if cq >= 0:
                clock_ts = dtms
                clock_q = cq
        else:
            st = rd_num(d, &c, t2, &v)
            if st == 0:
                isnum = True
            elif st == -2:
                st = skip_body(d, &c, t2, 2)
                if st:
                    return st
            elif st != -1:
                return st
        scaler = 0
        unit = 255
        if m == 3:
            if cur_left(&c) >= 6 and c.p[0] == 0x02 and c.p[1] == 2 and c.p[2] == 0x0F and c.p[4] == 0x16:
                scaler = <int8_t>c.p[3]
                unit = c.p[5]
                c.p += 6
            else:
                if cur_u8(&c, &t2) < 0:
                    return fail(d, FS_TRUNCATED, cur_pos(&c), "push element scaler_unit missing")
                st = skip_body(d, &c, t2, 2)
                if st:
                    return st
        if isnum:
            if rb_push(d.rb, d.r.meter, ob, 0, scale(v, scaler), unit, Q_OK) < 0:
                return fail(d, FS_OUT_OF_MEMORY, 0, "out of memory")
    if c.p != c.end:
        return fail(d, FS_BAD_LENGTH, cur_pos(&c), "bytes after the notification body")
    if ts < 0:
        if clock_ts >= 0:
            ts = clock_ts
            q = clock_q
        else:
            ts = d.r.now_ms
            q = Q_CLOCK_INVALID if clock_seen else Q_OK
    for i in range(first, d.rb.n):
        d.rb.data[i].ts = ts
        d.rb.data[i].status = <uint16_t>q
    if d.rb.n == first:
        return fail(d, FS_NO_DATA, 0, "notification without numeric values")
    return FS_OK


# ---------------------------------------------------------------------------------------------
# APDU
# ---------------------------------------------------------------------------------------------

cdef int notification_readings(dec_t* d, const uint8_t* a, Py_ssize_t an, Py_ssize_t base) noexcept nogil:
    """DataNotification: 0F | long-invoke-id-and-priority (4) | date-time (00 = absent, or
    0C + 12 bytes, or 09 0C + 12 bytes) | notification-body (Data)."""
    cdef Py_ssize_t pos = 5
    cdef int64_t ts = -1, dtms
    cdef uint8_t cstat
    cdef int q = Q_OK, dts, st
    if an < 6:
        return fail(d, FS_TRUNCATED, d.map_off if base < 0 else base + an, "DataNotification header ends early")
    if a[5] == 0x09 and an >= 7 and a[6] == 12:
        pos = 6
    if a[pos] == 0:
        pos += 1
    elif a[pos] == 12:
        if an < pos + 13:
            return fail(d, FS_TRUNCATED, d.map_off if base < 0 else base + an, "DataNotification date-time ends early")
        dts = dt_parse(a + pos + 1, d.r.dev_default, &dtms, &cstat)
        q = clock_quality(dts, cstat)
        if q >= 0:
            ts = dtms
        else:
            ts = d.r.now_ms
            q = Q_CLOCK_INVALID
        pos += 13
    else:
        return fail(d, FS_BAD_VALUE, d.map_off if base < 0 else base + pos, "DataNotification date-time is not 00 or 0C")
    st = push_readings(d, a + pos, an - pos, ts, q)
    if st != FS_OK and st != FS_NO_DATA:
        d.off = d.off + base + pos if base >= 0 else d.map_off
    return st


cdef int apdu_readings(dec_t* d, const uint8_t* a, Py_ssize_t an, Py_ssize_t base) noexcept nogil:
    """One APDU (base = its offset in the item, -1 if reassembled).  S_NEED_MORE after a
    non-last datablock."""
    cdef cursor_t c
    cdef uint8_t tag, kind, iip, last, choice
    cdef uint32_t blk, rawlen
    cdef int st
    cdef Py_ssize_t b0 = base if base >= 0 else 0
    cur_init(&c, a, an)
    if an < 1:
        return fail(d, FS_TRUNCATED, d.map_off if base < 0 else base, "empty APDU")
    tag = a[0]
    if tag == 0xC4:
        if an < 4:
            return fail(d, FS_TRUNCATED, d.map_off if base < 0 else base + an, "GET.response header ends early")
        kind = a[1]
        iip = a[2]
        if d.r.invoke >= 0 and (iip & 0x0F) != d.r.invoke:
            return fail(d, FS_MISMATCH, d.map_off if base < 0 else base + 2, "invoke id does not match the request")
        if kind == 0x01:
            if a[3] == 0:
                return data_status(d, a + 4, an - 4, base + 4 if base >= 0 else -1)
            if a[3] == 1:
                if an < 5:
                    return fail(d, FS_TRUNCATED, d.map_off if base < 0 else base + an, "data-access-result missing")
                d.code = a[4]
                return fail(d, FS_PROTOCOL_EXCEPTION, d.map_off if base < 0 else base + 4, "data-access-result error")
            return fail(d, FS_BAD_VALUE, d.map_off if base < 0 else base + 3, "GET.response result choice not 0/1")
        if kind == 0x02:
            if an < 9:
                return fail(d, FS_TRUNCATED, d.map_off if base < 0 else base + an, "datablock header ends early")
            last = a[3]
            blk = load_u32be(a + 4)
            choice = a[8]
            if d.blk_no >= 0 and <int64_t>blk != d.blk_no + 1:
                return fail(d, FS_MISMATCH, d.map_off if base < 0 else base + 4, "datablock number out of sequence")
            d.blk_no = blk
            if choice == 1:
                if an < 10:
                    return fail(d, FS_TRUNCATED, d.map_off if base < 0 else base + an, "data-access-result missing")
                d.code = a[9]
                return fail(d, FS_PROTOCOL_EXCEPTION, d.map_off if base < 0 else base + 9, "datablock data-access-result error")
            if choice != 0:
                return fail(d, FS_BAD_VALUE, d.map_off if base < 0 else base + 8, "datablock result choice not 0/1")
            c.p = a + 9
            st = rd_len(&c, &rawlen)
            if st:
                return fail(d, st, d.map_off if base < 0 else base + cur_pos(&c), "bad raw-data length")
            if <uint64_t>rawlen > <uint64_t>cur_left(&c):
                return fail(d, FS_TRUNCATED, d.map_off if base < 0 else base + an, "raw-data longer than the APDU")
            if <uint64_t>rawlen < <uint64_t>cur_left(&c):
                return fail(d, FS_BAD_LENGTH, d.map_off if base < 0 else base + cur_pos(&c) + rawlen, "bytes after the raw data")
            if last and d.blk_n == 0:
                # the whole transfer in one block: decode in place
                return data_status(d, c.p, rawlen, base + cur_pos(&c) if base >= 0 else -1)
            if grow(&d.blk, &d.blk_cap, d.blk_n + rawlen) < 0:
                return fail(d, FS_OUT_OF_MEMORY, 0, "out of memory")
            memcpy(d.blk + d.blk_n, c.p, rawlen)
            d.blk_n += rawlen
            if not last:
                return S_NEED_MORE
            d.map_off = base if base >= 0 else d.map_off
            return data_status(d, d.blk, d.blk_n, -1)
        if kind == 0x03:
            return fail(d, FS_UNSUPPORTED, d.map_off if base < 0 else base + 1, "GET.response-with-list: use decode_data")
        return fail(d, FS_UNSUPPORTED, d.map_off if base < 0 else base + 1, "unknown GET.response type")
    if tag == 0x0F:
        return notification_readings(d, a, an, base)
    if tag == 0xD8:
        if an < 3:
            return fail(d, FS_TRUNCATED, d.map_off if base < 0 else base + an, "exception-response ends early")
        d.code = (a[1] << 8) | a[2]
        return fail(d, FS_PROTOCOL_EXCEPTION, d.map_off if base < 0 else base, "exception-response")
    if tag == 0x0E:
        if an < 4:
            return fail(d, FS_TRUNCATED, d.map_off if base < 0 else base + an, "confirmed-service-error ends early")
        d.code = (a[2] << 8) | a[3]
        return fail(d, FS_PROTOCOL_EXCEPTION, d.map_off if base < 0 else base, "confirmed-service-error")
    return fail(d, FS_UNSUPPORTED, d.map_off if base < 0 else base, "APDU is not a GET.response")


cdef int item_readings(dec_t* d, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """All readings of one item (one response, any framing)."""
    cdef int framing = d.r.framing
    cdef Py_ssize_t pos = 0, ln
    cdef hdlc_t h
    cdef int st
    cdef bint in_seg = False, first
    cdef const uint8_t* info
    cdef Py_ssize_t info_n
    cdef uint8_t c
    d.seg_n = 0
    d.blk_n = 0
    d.blk_no = -1
    d.code = 0
    d.map_off = 0
    if n == 0:
        return fail(d, FS_TRUNCATED, 0, "empty frame")
    if framing == 0:
        if p[0] == 0x7E:
            framing = 1
        elif n >= 2 and p[0] == 0x00 and p[1] == 0x01:
            framing = 2
        else:
            framing = 3
    if framing == 3:
        st = apdu_readings(d, p, n, 0)
        if st == S_NEED_MORE:
            return fail(d, FS_TRUNCATED, n, "datablock transfer incomplete (last-block = 0)")
        return st
    if framing == 2:
        while True:
            if n - pos < 8:
                return fail(d, FS_TRUNCATED, n, "wrapper header ends early")
            if load_u16be(p + pos) != 1:
                return fail(d, FS_BAD_FRAMING, pos, "wrapper version is not 1")
            ln = load_u16be(p + pos + 6)
            if n - pos - 8 < ln:
                return fail(d, FS_TRUNCATED, n, "wrapper APDU shorter than its length field")
            d.map_off = pos
            st = apdu_readings(d, p + pos + 8, ln, pos + 8)
            pos += 8 + ln
            if st != S_NEED_MORE:
                if st == FS_OK and pos != n:
                    return fail(d, FS_BAD_LENGTH, pos, "bytes after the wrapper message")
                return st
            if pos >= n:
                return fail(d, FS_TRUNCATED, n, "datablock transfer incomplete (last-block = 0)")
    # HDLC
    while True:
        st = hdlc_parse(d, p + pos, n - pos, pos, &h)
        if st:
            return st
        if d.r.exp_dst != 0 and h.dst != d.r.exp_dst:
            return fail(d, FS_BAD_ADDRESS, pos + 3, "HDLC destination is not the requesting client")
        if d.r.exp_src != 0 and h.src != d.r.exp_src:
            return fail(d, FS_BAD_ADDRESS, pos + 3 + h.dst_n, "HDLC source is not the addressed server")
        c = h.ctrl
        if (c & 0x01) == 0 or (c & 0xEF) == 0x03:        # I-frame or UI
            if h.info_off < 0:
                return fail(d, FS_NO_DATA, pos, "I-frame without information field")
            info = p + pos + h.info_off
            info_n = h.info_n
            if not in_seg:
                if info_n < 3 or info[0] != 0xE6 or (info[1] != 0xE7 and info[1] != 0xE6) or info[2] != 0:
                    return fail(d, FS_BAD_FRAMING, pos + h.info_off, "LLC header E6 E7 00 missing")
                info += 3
                info_n -= 3
            if h.seg or in_seg:
                if grow(&d.seg, &d.seg_cap, d.seg_n + info_n) < 0:
                    return fail(d, FS_OUT_OF_MEMORY, 0, "out of memory")
                memcpy(d.seg + d.seg_n, info, info_n)
                d.seg_n += info_n
            if h.seg:
                in_seg = True
                pos = next_frame_pos(p, n, pos, h.flen)
                if pos >= n:
                    return fail(d, FS_TRUNCATED, n, "segmented HDLC frame without its last segment")
                continue
            if in_seg:
                in_seg = False
                d.map_off = pos
                st = apdu_readings(d, d.seg, d.seg_n, -1)
                d.seg_n = 0
            else:
                d.map_off = pos
                st = apdu_readings(d, info, info_n, <Py_ssize_t>(info - p))
            pos = next_frame_pos(p, n, pos, h.flen)
            if st != S_NEED_MORE:
                if st == FS_OK and pos < n:
                    return fail(d, FS_BAD_LENGTH, pos, "bytes after the response frame")
                return st
            if pos >= n:
                return fail(d, FS_TRUNCATED, n, "datablock transfer incomplete (last-block = 0)")
            continue
        if (c & 0xEF) == 0x0F or (c & 0xEF) == 0x87:       # DM, FRMR
            d.code = c
            return fail(d, FS_PROTOCOL_EXCEPTION, pos + 3 + h.dst_n + h.src_n, "HDLC DM/FRMR from the meter")
        if (c & 0x03) == 0x01 or (c & 0xEF) == 0x63:       # RR/RNR/REJ, UA
            return fail(d, FS_NO_DATA, pos, "HDLC frame without data (RR/RNR/UA)")
        return fail(d, FS_UNSUPPORTED, pos + 3 + h.dst_n + h.src_n, "unexpected HDLC control field")


# ---------------------------------------------------------------------------------------------
# Python entry points
# ---------------------------------------------------------------------------------------------

cdef inline void dec_init(dec_t* d, reading_buf* rb, const col_t* cols, Py_ssize_t ncols) noexcept nogil:
    d.rb = rb
    d.seg = NULL
    d.seg_n = 0
    d.seg_cap = 0
    d.blk = NULL
    d.blk_n = 0
    d.blk_cap = 0
    d.blk_no = -1
    d.cols = cols
    d.ncols_total = ncols
    d.off = -1
    d.code = 0
    d.why = ""


cdef inline void dec_free(dec_t* d) noexcept nogil:
    free(d.seg)
    free(d.blk)
    d.seg = NULL
    d.blk = NULL


def decode_batch(FrameBatch batch, reqs, cols, bint want_reasons=False):
    """Decode every item of ``batch`` (see the module doc) into readings.

    ``reqs``: READ_REQ_DTYPE array with one record per item (or one record for all),
    ``cols``: COL_DTYPE array (the column table).  Returns ``(readings, frame_status)``, plus a
    list of reason strings when ``want_reasons``."""
    cdef Py_ssize_t nf = batch._n, i, ncols
    reqs = np.ascontiguousarray(reqs, dtype=READ_REQ_DTYPE)
    cols = np.ascontiguousarray(cols, dtype=COL_DTYPE)
    if reqs.shape[0] != nf and reqs.shape[0] != 1:
        raise ValueError("reqs must have 1 or %d records, got %d" % (nf, reqs.shape[0]))
    cdef bint one = reqs.shape[0] == 1 and nf != 1
    cdef const uint8_t[::1] rv = reqs.view(np.uint8).reshape(-1) if reqs.shape[0] else np.zeros(sizeof(req_t), np.uint8)
    cdef const uint8_t[::1] cv = cols.view(np.uint8).reshape(-1) if cols.shape[0] else np.zeros(sizeof(col_t), np.uint8)
    cdef const req_t* rp = <const req_t*>&rv[0]
    cdef const col_t* cp = <const col_t*>&cv[0]
    ncols = cols.shape[0]
    fs_arr = new_frame_status(nf)
    cdef frame_status_t* fs = NULL
    cdef uint8_t[::1] fsb = fs_arr.view(np.uint8).reshape(-1) if nf else np.zeros(16, np.uint8)
    fs = <frame_status_t*>&fsb[0]
    cdef reading_buf rb
    cdef dec_t d
    cdef const uint8_t* p
    cdef Py_ssize_t n, first
    cdef int st
    cdef Py_ssize_t total = batch._op[nf] - batch._op[0] if nf else 0
    reasons = None
    cdef const char** whys = NULL
    if want_reasons:
        whys = <const char**>malloc((nf + 1) * sizeof(const char*))
        if whys == NULL:
            raise MemoryError()
    if rb_init(&rb, total // 4 + 16) < 0:
        free(whys)
        raise MemoryError()
    dec_init(&d, &rb, cp, ncols)
    with nogil:
        for i in range(nf):
            d.r = rp if one else rp + i
            first = rb.n
            fs[i].first = <uint32_t>first
            d.why = ""
            d.off = -1
            d.code = 0
            if not frame_at(batch, i, &p, &n):
                st = FS_BAD_LENGTH
                d.off = -1
                d.why = "frame offsets point outside the batch buffer"
            else:
                st = item_readings(&d, p, n)
            if st != FS_OK:
                rb.n = first
                if st == FS_NO_DATA:
                    d.off = -1
            fs[i].status = <uint8_t>st
            fs[i].code = <uint16_t>d.code
            fs[i].offset = <int32_t>(d.off if st != FS_OK else -1)
            fs[i].count = <uint32_t>(rb.n - first)
            if whys != NULL:
                whys[i] = d.why
        dec_free(&d)
    if whys != NULL:
        reasons = [(<bytes>whys[i]).decode("ascii") for i in range(nf)]
        free(whys)
    out = rb_to_array(&rb)
    if want_reasons:
        return out, fs_arr, reasons
    return out, fs_arr


# ---------------------------------------------------------------------------------------------
# frame inspection, splitting, reassembly
# ---------------------------------------------------------------------------------------------

class DlmsDecodeError(ValueError):
    """Raised by the inspection functions: args = (status, offset, reason, code)."""


cdef object _raise(dec_t* d, int st):
    raise DlmsDecodeError(st, d.off, (<bytes>d.why).decode("ascii"), d.code)


def hdlc_frame(data):
    """Parse one HDLC frame (exactly the frame bytes, flags included).

    Returns ``(format, segmented, dst_raw, dst_len, src_raw, src_len, control, info_off,
    info_len, hcs, fcs, frame_len)``; raises DlmsDecodeError(status, offset, reason, code)."""
    cdef Py_buffer view
    cdef dec_t d
    cdef hdlc_t h
    cdef int st
    _get_buffer(data, &view, PyBUF_SIMPLE)
    try:
        dec_init(&d, NULL, NULL, 0)
        st = hdlc_parse(&d, <const uint8_t*>view.buf, view.len, 0, &h)
        if st:
            _raise(&d, st)
        return (h.fmt, h.seg, h.dst, h.dst_n, h.src, h.src_n, h.ctrl, h.info_off, h.info_n,
                h.hcs, h.fcs, h.flen)
    finally:
        PyBuffer_Release(&view)


def split_frames(data):
    """Find the HDLC frames in a received byte stream.

    Returns ``(spans, consumed)``: ``spans`` an int64 array of shape (N, 2) with the [start, end)
    of every valid frame (HCS/FCS checked), ``consumed`` the number of leading bytes the caller
    may drop (everything before a trailing partial frame).  Garbage between frames is skipped;
    a 0x7E may close one frame and open the next."""
    cdef Py_buffer view
    cdef dec_t d
    cdef hdlc_t h
    cdef const uint8_t* p
    cdef Py_ssize_t n, pos = 0, consumed = 0, L, hdr, i, k
    cdef int st
    cdef uint16_t fmt
    spans = []
    _get_buffer(data, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t*>view.buf
        n = view.len
        dec_init(&d, NULL, NULL, 0)
        while pos < n:
            if p[pos] != 0x7E:
                pos += 1
                consumed = pos
                continue
            st = hdlc_parse(&d, p + pos, n - pos, 0, &h)
            if st == FS_OK:
                spans.append((pos, pos + h.flen))
                pos = next_frame_pos(p, n, pos, h.flen)
                consumed = pos
                continue
            if st == FS_TRUNCATED and _plausible_partial(p + pos, n - pos):
                break            # keep the partial frame for the next read
            pos += 1
            consumed = pos
        if pos >= n:
            consumed = n
    finally:
        PyBuffer_Release(&view)
    arr = np.array(spans, dtype=np.int64).reshape(-1, 2)
    return arr, consumed


cdef bint _plausible_partial(const uint8_t* p, Py_ssize_t n) noexcept:
    """A truncated frame worth waiting for: format type 0xA and, once the header is complete,
    a matching HCS."""
    cdef Py_ssize_t i, k, L
    cdef uint16_t fmt
    if n < 3:
        return n < 2 or (p[1] >> 4) == 0xA
    fmt = load_u16be(p + 1)
    if (fmt >> 12) != 0xA:
        return False
    L = fmt & 0x7FF
    if L < 7 or n >= L + 2:
        return False
    i = 3
    for k in range(2):           # two addresses
        while True:
            if i >= n or i >= L - 1:
                return i >= n
            i += 1
            if p[i - 1] & 1:
                break
            if i - 3 >= 8:
                return False
    i += 1                       # control
    if i == L - 1:
        return True              # no information field: only the FCS can tell
    if i + 2 > n:
        return True
    return mp_crc16(&MP_CRC16_X25, p + 1, i - 1) == load_u16le(p + i)


def item_apdu(data, int framing=0):
    """The reassembled payload of one response item: for HDLC the APDU of (possibly segmented)
    frames with the LLC header removed, for the wrapper the APDU(s); when the APDUs are
    GET.response-with-datablock blocks, the joined raw data (one A-XDR Data).
    Returns ``(kind, payload)`` with kind "apdu" or "data"."""
    cdef Py_buffer view
    cdef dec_t d
    cdef hdlc_t h
    cdef const uint8_t* p
    cdef Py_ssize_t n, pos = 0, ln
    cdef int st
    cdef bint in_seg = False
    apdus = []
    _get_buffer(data, &view, PyBUF_SIMPLE)
    try:
        p = <const uint8_t*>view.buf
        n = view.len
        dec_init(&d, NULL, NULL, 0)
        if n == 0:
            raise DlmsDecodeError(FS_TRUNCATED, 0, "empty frame", 0)
        if framing == 0:
            framing = 1 if p[0] == 0x7E else (2 if n >= 2 and p[0] == 0 and p[1] == 1 else 3)
        if framing == 3:
            apdus.append(PyBytes_FromStringAndSize(<const char*>p, n))
        elif framing == 2:
            while pos < n:
                if n - pos < 8:
                    raise DlmsDecodeError(FS_TRUNCATED, n, "wrapper header ends early", 0)
                if load_u16be(p + pos) != 1:
                    raise DlmsDecodeError(FS_BAD_FRAMING, pos, "wrapper version is not 1", 0)
                ln = load_u16be(p + pos + 6)
                if n - pos - 8 < ln:
                    raise DlmsDecodeError(FS_TRUNCATED, n, "wrapper APDU shorter than its length field", 0)
                apdus.append(PyBytes_FromStringAndSize(<const char*>p + pos + 8, ln))
                pos += 8 + ln
        else:
            cur = []
            while pos < n:
                st = hdlc_parse(&d, p + pos, n - pos, pos, &h)
                if st:
                    _raise(&d, st)
                if h.info_off >= 0 and ((h.ctrl & 1) == 0 or (h.ctrl & 0xEF) == 0x03):
                    info = PyBytes_FromStringAndSize(<const char*>p + pos + h.info_off, h.info_n)
                    if not in_seg:
                        if len(info) < 3 or info[0] != 0xE6 or info[1] not in (0xE6, 0xE7) or info[2] != 0:
                            raise DlmsDecodeError(FS_BAD_FRAMING, pos + h.info_off, "LLC header E6 E7 00 missing", 0)
                        info = info[3:]
                    cur.append(info)
                    in_seg = bool(h.seg)
                    if not in_seg:
                        apdus.append(b"".join(cur))
                        cur = []
                pos = next_frame_pos(p, n, pos, h.flen)
            if in_seg:
                raise DlmsDecodeError(FS_TRUNCATED, n, "segmented HDLC frame without its last segment", 0)
    finally:
        PyBuffer_Release(&view)
    if not apdus:
        raise DlmsDecodeError(FS_NO_DATA, -1, "no information field", 0)
    if all(len(a) >= 2 and a[0] == 0xC4 and a[1] == 0x02 for a in apdus):
        return "data", _join_blocks(apdus)
    if len(apdus) != 1:
        raise DlmsDecodeError(FS_BAD_LENGTH, -1, "more than one APDU in the item", 0)
    return "apdu", apdus[0]


def _join_blocks(apdus):
    parts = []
    prev = None
    for k, a in enumerate(apdus):
        if len(a) < 9:
            raise DlmsDecodeError(FS_TRUNCATED, -1, "datablock header ends early", 0)
        last = a[3]
        blk = int.from_bytes(a[4:8], "big")
        if prev is not None and blk != prev + 1:
            raise DlmsDecodeError(FS_MISMATCH, -1, "datablock number out of sequence", 0)
        prev = blk
        if a[8] == 1:
            raise DlmsDecodeError(FS_PROTOCOL_EXCEPTION, -1, "datablock data-access-result error",
                                  a[9] if len(a) > 9 else 0)
        if a[8] != 0:
            raise DlmsDecodeError(FS_BAD_VALUE, -1, "datablock result choice not 0/1", 0)
        ln, pos = _py_len(a, 9)
        if pos + ln > len(a):
            raise DlmsDecodeError(FS_TRUNCATED, -1, "raw-data longer than the APDU", 0)
        if pos + ln < len(a):
            raise DlmsDecodeError(FS_BAD_LENGTH, -1, "bytes after the raw data", 0)
        parts.append(a[pos:pos + ln])
        if last and k != len(apdus) - 1:
            raise DlmsDecodeError(FS_BAD_LENGTH, -1, "blocks after the last block", 0)
        if not last and k == len(apdus) - 1:
            raise DlmsDecodeError(FS_TRUNCATED, -1, "datablock transfer incomplete (last-block = 0)", 0)
    return b"".join(parts)


cdef tuple _py_len(bytes b, Py_ssize_t pos):
    if pos >= len(b):
        raise DlmsDecodeError(FS_TRUNCATED, pos, "length ends early", 0)
    cdef int v = b[pos]
    if v < 0x80:
        return v, pos + 1
    k = v & 0x7F
    if k == 0 or k > 4:
        raise DlmsDecodeError(FS_BAD_LENGTH, pos, "bad A-XDR length", 0)
    if pos + 1 + k > len(b):
        raise DlmsDecodeError(FS_TRUNCATED, len(b), "length ends early", 0)
    return int.from_bytes(b[pos + 1:pos + 1 + k], "big"), pos + 1 + k


# ---------------------------------------------------------------------------------------------
# A-XDR to Python objects (inspection, tests)
# ---------------------------------------------------------------------------------------------

DateTime = collections.namedtuple(
    "DateTime", "year month day weekday hour minute second hundredths deviation status")
Date = collections.namedtuple("Date", "year month day weekday")
Time = collections.namedtuple("Time", "hour minute second hundredths")


def datetime_fields(b):
    """The 12 bytes of a DLMS date-time as a DateTime (deviation None for 0x8000)."""
    b = bytes(b)
    if len(b) != 12:
        raise DlmsDecodeError(FS_BAD_VALUE, -1, "a date-time has 12 bytes", 0)
    dev = int.from_bytes(b[9:11], "big", signed=True)
    return DateTime((b[0] << 8) | b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8],
                    None if dev == -32768 else dev, b[11])


def datetime_utc_ms(b, int dev_default=0):
    """ms UTC of a 12-byte date-time, or None when not specified / impossible (see module doc),
    and its clock status: ``(ms or None, state, status)`` with state 0 ok, 1 not specified, 2 bad."""
    cdef bytes bb = bytes(b)
    cdef int64_t ms = 0
    cdef uint8_t stt = 0
    if len(bb) != 12:
        raise DlmsDecodeError(FS_BAD_VALUE, -1, "a date-time has 12 bytes", 0)
    r = dt_parse(<const uint8_t*><const char*>bb, dev_default, &ms, &stt)
    return (ms if r == 0 else None), r, stt


cdef object _pyerr(int st, cursor_t* c, str why):
    raise DlmsDecodeError(st, cur_pos(c), why, 0)


cdef object _py_data(cursor_t* c, int depth):
    cdef uint8_t tag, t
    cdef uint32_t n, i
    cdef int st
    cdef Py_ssize_t sz, nb
    cdef const uint8_t* q
    if cur_u8(c, &tag) < 0:
        _pyerr(FS_TRUNCATED, c, "A-XDR data ends early")
    q = c.p
    if tag == 0x01 or tag == 0x02:
        st = rd_len(c, &n)
        if st:
            _pyerr(st, c, "bad A-XDR length")
        if depth >= C_MAX_DEPTH:
            _pyerr(FS_TOO_DEEP, c, "A-XDR nesting too deep")
        if <uint64_t>n > <uint64_t>cur_left(c):
            _pyerr(FS_TRUNCATED, c, "A-XDR array/structure longer than the data")
        items = [_py_data(c, depth + 1) for i in range(n)]
        return items if tag == 0x01 else tuple(items)
    if tag == 0x00:
        return None
    if tag == 0x04:
        st = rd_len(c, &n)
        if st:
            _pyerr(st, c, "bad A-XDR length")
        nb = (<Py_ssize_t>n + 7) >> 3
        if nb > cur_left(c):
            _pyerr(FS_TRUNCATED, c, "bit-string longer than the data")
        raw = PyBytes_FromStringAndSize(<const char*>c.p, nb)
        c.p += nb
        return "".join(format(x, "08b") for x in raw)[:n]
    if tag == 0x09 or tag == 0x0A or tag == 0x0C:
        st = rd_len(c, &n)
        if st:
            _pyerr(st, c, "bad A-XDR length")
        if <uint64_t>n > <uint64_t>cur_left(c):
            _pyerr(FS_TRUNCATED, c, "string longer than the data")
        raw = PyBytes_FromStringAndSize(<const char*>c.p, n)
        c.p += n
        if tag == 0x09:
            return raw
        if tag == 0x0A:
            return raw.decode("latin-1")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            c.p -= n
            _pyerr(FS_BAD_VALUE, c, "utf8-string is not valid UTF-8")
    sz = fixed_size(tag)
    if sz < 0:
        c.p -= 1
        _pyerr(FS_UNSUPPORTED, c, "compact-array is not supported" if tag == 0x13 else "unknown A-XDR type tag")
    if cur_left(c) < sz:
        _pyerr(FS_TRUNCATED, c, "A-XDR value ends early")
    c.p += sz
    if tag == 0x03:
        return q[0] != 0
    if tag == 0x0D:
        if (q[0] >> 4) > 9 or (q[0] & 0x0F) > 9:
            c.p -= 1
            _pyerr(FS_BAD_VALUE, c, "bcd digit above 9")
        return (q[0] >> 4) * 10 + (q[0] & 0x0F)
    if tag == 0x0F:
        return <int8_t>q[0]
    if tag == 0x11 or tag == 0x16:
        return q[0]
    if tag == 0x10:
        return <int16_t>load_u16be(q)
    if tag == 0x12:
        return load_u16be(q)
    if tag == 0x05:
        return <int32_t>load_u32be(q)
    if tag == 0x06:
        return load_u32be(q)
    if tag == 0x14:
        return <int64_t>load_u64be(q)
    if tag == 0x15:
        return load_u64be(q)
    if tag == 0x17:
        return <double>f32_from_bits(load_u32be(q))
    if tag == 0x18:
        return f64_from_bits(load_u64be(q))
    if tag == 0x19:
        return datetime_fields(PyBytes_FromStringAndSize(<const char*>q, 12))
    if tag == 0x1A:
        return Date((q[0] << 8) | q[1], q[2], q[3], q[4])
    return Time(q[0], q[1], q[2], q[3])


def decode_data(data, bint exact=True):
    """One A-XDR Data as Python objects: null -> None, boolean -> bool, integers/enum/bcd ->
    int, float32/64 -> float, octet-string -> bytes, visible-string -> str (latin-1),
    utf8-string -> str, bit-string -> str of '0'/'1', date-time/date/time tags -> DateTime /
    Date / Time, array -> list, structure -> tuple.  With ``exact`` the data must fill the
    buffer.  Returns the object (and the bytes used when not exact)."""
    cdef Py_buffer view
    cdef cursor_t c
    _get_buffer(data, &view, PyBUF_SIMPLE)
    try:
        cur_init(&c, <const uint8_t*>view.buf, view.len)
        obj = _py_data(&c, 0)
        if exact:
            if c.p != c.end:
                raise DlmsDecodeError(FS_BAD_LENGTH, cur_pos(&c), "bytes after the data", 0)
            return obj
        return obj, cur_pos(&c)
    finally:
        PyBuffer_Release(&view)
