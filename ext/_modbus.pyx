# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Modbus RTU / TCP response decoder: one frame or a whole FrameBatch in one nogil call.

Framing (all multi-byte fields big-endian unless said otherwise):

* RTU (also "RTU over TCP"): ``slave(1) function(1) data(n) CRC(2)``; the CRC is
  CRC-16/MODBUS over slave..data, sent **low byte first**.  The expected length follows from the
  function: exception ``fc|0x80`` 5 bytes, 0x03/0x04 ``5 + byte_count``, 0x06/0x08/0x10 8 bytes.
* TCP: MBAP ``transaction(2) protocol(2)=0 length(2) unit(1)`` then ``function data``; the
  length counts unit + PDU.  No CRC.

Register payload: each register is 2 bytes big-endian.  A value of several registers is
assembled most-significant register first (word order "big") or least first ("little").
Values are ``raw * scale`` as float64; a non-finite float register (NaN, +-inf) becomes a
reading with quality METER_ERROR.

Statuses (FrameStatus), checked in this order: framing/length (TRUNCATED, BAD_LENGTH,
CHECKSUM for RTU, BAD_FRAMING for a protocol id != 0), transaction id (MISMATCH), unit
(BAD_ADDRESS), exception (PROTOCOL_EXCEPTION, code = the exception code; MISMATCH if it answers
another function), function (MISMATCH), byte count != 2*count (MISMATCH), echo of a write /
diagnostic != request (MISMATCH); a good write/diagnostic echo is NO_DATA, as is a read whose
register range holds no entry of the map.
"""
from libc.math cimport isfinite
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int16_t, int32_t, int64_t

from meterpoll.ext._common cimport load_u16be, load_u32be, load_u64be, f32_from_bits, f64_from_bits
from meterpoll.ext._crc cimport mp_crc16, mp_crc_init_all, MP_CRC16_MODBUS
from meterpoll.ext._frames cimport FrameBatch, frame_at
from meterpoll.ext._readings cimport (
    reading_buf, reading_t, frame_status_t, rb_init, rb_reserve, rb_push, rb_free, rb_to_array,
    new_frame_status, FS_OK, FS_CHECKSUM, FS_TRUNCATED, FS_BAD_LENGTH, FS_BAD_ADDRESS,
    FS_PROTOCOL_EXCEPTION, FS_UNSUPPORTED, FS_BAD_FRAMING, FS_MISMATCH, FS_OUT_OF_MEMORY,
    FS_NO_DATA, Q_OK, Q_METER_ERROR,
)

import numpy as np

from meterpoll.ext._readings import READING_DTYPE

mp_crc_init_all()

MAP_DTYPE = np.dtype(
    [("obis", np.uint64), ("scale", np.float64), ("key", np.uint32), ("width", np.uint8),
     ("type", np.uint8), ("order", np.uint8), ("unit", np.uint8)], align=True)
REQUEST_DTYPE = np.dtype(
    [("transaction", np.int32), ("unit", np.uint16), ("start", np.uint16), ("count", np.uint16),
     ("function", np.uint8), ("reserved", np.uint8)], align=True)

# Why a frame was refused (single API: the bindings turn this into the exception's text).
cdef enum:
    W_NONE = 0
    W_SHORT = 1            # shorter than the fixed header
    W_SHORT_FRAME = 2      # shorter than its function / byte count / MBAP length says
    W_CRC = 3
    W_TRAILING = 4         # bytes after the frame's end (CRC good at the expected end)
    W_BYTE_COUNT = 5       # byte count / function disagrees with a frame whose CRC is good
    W_PROTOCOL_ID = 6
    W_MBAP_LENGTH = 7      # MBAP length < 2
    W_MBAP_LONG = 8        # more bytes than the MBAP length
    W_PDU_LENGTH = 9       # TCP PDU length does not fit its function
    W_TRANSACTION = 10
    W_UNIT = 11
    W_EXC_FUNCTION = 12    # exception for another function than requested
    W_EXCEPTION = 13
    W_FUNCTION = 14
    W_COUNT = 15           # byte count != 2 * requested count
    W_ECHO = 16
    W_NO_ENTRIES = 17
    W_OOM = 18
    W_OFFSETS = 19         # FrameBatch offsets edited to point outside the buffer
    W_ODD_COUNT = 20       # byte count odd


cdef inline bint _crc_ok(const uint8_t* p, Py_ssize_t L) noexcept nogil:
    """CRC-16/MODBUS of p[0:L-2] equals the low-byte-first CRC in p[L-2:L] (L >= 4)."""
    return mp_crc16(&MP_CRC16_MODBUS, p, <size_t>(L - 2)) == ((<uint16_t>p[L - 1] << 8) | p[L - 2])


cdef inline int _fail(frame_status_t* fs, int* why, uint8_t status, Py_ssize_t offset, int w) noexcept nogil:
    fs.status = status
    fs.offset = <int32_t>offset
    why[0] = w
    return 0


cdef inline Py_ssize_t _lower_bound(const mb_entry_t* ent, Py_ssize_t nent, uint32_t key) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = nent, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if ent[mid].key < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t _entries_for(const mb_request_t* rq, const mb_entry_t* ent, Py_ssize_t nent,
                                    Py_ssize_t* lo) noexcept nogil:
    """[lo, lo+k): the entries whose key falls in the request's register range (an upper bound
    of the readings a good answer gives)."""
    cdef uint32_t k0 = (<uint32_t>rq.function << 16) | rq.start
    cdef uint32_t k1 = k0 + rq.count
    cdef Py_ssize_t a = _lower_bound(ent, nent, k0)
    lo[0] = a
    return _lower_bound(ent, nent, k1) - a


cdef inline double _value(const uint8_t* q, const mb_entry_t* e, bint* bad) noexcept nogil:
    cdef uint32_t u32
    cdef uint64_t u64
    cdef double v
    cdef uint8_t t = e.type
    if e.width == 1:
        if t == MB_T_INT16:
            return <double><int16_t>load_u16be(q)
        return <double>load_u16be(q)
    if e.width == 2:
        if e.order == 0:
            u32 = load_u32be(q)
        else:
            u32 = (<uint32_t>load_u16be(q + 2) << 16) | load_u16be(q)
        if t == MB_T_FLOAT32:
            v = <double>f32_from_bits(u32)
            bad[0] = not isfinite(v)
            return v
        if t == MB_T_INT32:
            return <double><int32_t>u32
        return <double>u32
    if e.order == 0:
        u64 = load_u64be(q)
    else:
        u64 = ((<uint64_t>load_u16be(q + 6) << 48) | (<uint64_t>load_u16be(q + 4) << 32) |
               (<uint64_t>load_u16be(q + 2) << 16) | load_u16be(q))
    if t == MB_T_FLOAT64:
        v = f64_from_bits(u64)
        bad[0] = not isfinite(v)
        return v
    if t == MB_T_INT64:
        return <double><int64_t>u64
    return <double>u64


cdef int mb_decode(const uint8_t* p, Py_ssize_t n, int mode, const mb_request_t* rq,
                   const mb_entry_t* ent, Py_ssize_t nent, reading_buf* rb,
                   uint32_t meter, int64_t ts, frame_status_t* fs, int* why) noexcept nogil:
    """Decode one response frame p[0:n] against request rq.  Fills fs (status, code, offset,
    count; fs.first is set by the caller) and pushes readings.  Returns -1 only when out of
    memory (fs.status is then OUT_OF_MEMORY)."""
    cdef Py_ssize_t L, base, pdu_len, i, lo, k, rel, first_n
    cdef const uint8_t* pdu
    cdef uint8_t fn, unit, bc
    cdef uint32_t end_reg, addr
    cdef bint tcp, bad
    cdef double v
    cdef const mb_entry_t* e
    cdef reading_t* r
    fs.status = FS_OK
    fs.code = 0
    fs.offset = -1
    fs.count = 0
    why[0] = W_NONE

    tcp = mode == MB_MODE_TCP
    if mode == MB_MODE_AUTO:
        tcp = (n >= 8 and p[2] == 0 and p[3] == 0 and <Py_ssize_t>load_u16be(p + 4) == n - 6
               and not _crc_ok(p, n))

    if tcp:
        if n < 8:
            return _fail(fs, why, FS_TRUNCATED, n, W_SHORT)
        if p[2] != 0 or p[3] != 0:
            return _fail(fs, why, FS_BAD_FRAMING, 2, W_PROTOCOL_ID)
        L = 6 + <Py_ssize_t>load_u16be(p + 4)
        if L < 8:
            return _fail(fs, why, FS_BAD_LENGTH, 4, W_MBAP_LENGTH)
        if n < L:
            return _fail(fs, why, FS_TRUNCATED, n, W_SHORT_FRAME)
        if n > L:
            return _fail(fs, why, FS_BAD_LENGTH, L, W_MBAP_LONG)
        if rq.transaction >= 0 and <int32_t>load_u16be(p) != rq.transaction:
            return _fail(fs, why, FS_MISMATCH, 0, W_TRANSACTION)
        unit = p[6]
        base = 7
        pdu_len = L - 7
    else:
        if n < 2:
            return _fail(fs, why, FS_TRUNCATED, n, W_SHORT)
        fn = p[1]
        if fn & 0x80:
            L = 5
        elif fn == 3 or fn == 4:
            if n < 3:
                return _fail(fs, why, FS_TRUNCATED, n, W_SHORT)
            L = 5 + <Py_ssize_t>p[2]
        elif fn == 6 or fn == 8 or fn == 16:
            L = 8
        else:
            if n < 4:
                return _fail(fs, why, FS_TRUNCATED, n, W_SHORT)
            L = n
        if n != L:
            if n >= 4 and _crc_ok(p, n):
                # intact frame (its CRC is good) whose function / byte count says another length
                return _fail(fs, why, FS_BAD_LENGTH, 2 if (fn == 3 or fn == 4) else 1, W_BYTE_COUNT)
            if n < L:
                return _fail(fs, why, FS_TRUNCATED, n, W_SHORT_FRAME)
            if _crc_ok(p, L):
                return _fail(fs, why, FS_BAD_LENGTH, L, W_TRAILING)
            return _fail(fs, why, FS_CHECKSUM, n - 2, W_CRC)
        if not _crc_ok(p, L):
            return _fail(fs, why, FS_CHECKSUM, L - 2, W_CRC)
        unit = p[0]
        base = 1
        pdu_len = L - 3

    # ---- PDU (pdu_len >= 1 here) ----
    pdu = p + base
    fn = pdu[0]
    if rq.unit != 0xFFFF and unit != rq.unit:
        return _fail(fs, why, FS_BAD_ADDRESS, 6 if tcp else 0, W_UNIT)
    if fn & 0x80:
        if pdu_len != 2:
            return _fail(fs, why, FS_BAD_LENGTH, base, W_PDU_LENGTH)
        if (fn & 0x7F) != rq.function:
            return _fail(fs, why, FS_MISMATCH, base, W_EXC_FUNCTION)
        fs.code = pdu[1]
        return _fail(fs, why, FS_PROTOCOL_EXCEPTION, base + 1, W_EXCEPTION)
    if fn == 3 or fn == 4:
        if pdu_len < 2 or pdu_len != 2 + <Py_ssize_t>pdu[1]:
            return _fail(fs, why, FS_BAD_LENGTH, base + 1 if pdu_len >= 2 else base, W_PDU_LENGTH)
    elif fn == 6 or fn == 8 or fn == 16:
        if pdu_len != 5:
            return _fail(fs, why, FS_BAD_LENGTH, base, W_PDU_LENGTH)
    if fn != rq.function:
        return _fail(fs, why, FS_MISMATCH, base, W_FUNCTION)
    if fn == 6 or fn == 8 or fn == 16:
        if load_u16be(pdu + 1) != rq.start or load_u16be(pdu + 3) != rq.count:
            return _fail(fs, why, FS_MISMATCH, base + 1, W_ECHO)
        return _fail(fs, why, FS_NO_DATA, -1, W_NONE)
    if fn != 3 and fn != 4:
        return _fail(fs, why, FS_UNSUPPORTED, base, W_FUNCTION)
    bc = pdu[1]
    if <uint32_t>bc != 2 * <uint32_t>rq.count:
        return _fail(fs, why, FS_MISMATCH, base + 1, W_COUNT if not (bc & 1) else W_ODD_COUNT)

    # ---- registers -> readings ----
    k = _entries_for(rq, ent, nent, &lo)
    if k and rb.n + k > rb.cap and rb_reserve(rb, k) < 0:
        return _fail(fs, why, FS_OUT_OF_MEMORY, -1, W_OOM)
    first_n = rb.n
    end_reg = <uint32_t>rq.start + rq.count
    for i in range(lo, lo + k):
        e = &ent[i]
        addr = e.key & 0xFFFF
        if (e.key >> 16) != rq.function or addr + e.width > end_reg:
            continue
        rel = (<Py_ssize_t>(addr - rq.start)) * 2
        bad = False
        v = _value(pdu + 2 + rel, e, &bad) * e.scale
        # capacity was reserved above: store directly
        r = &rb.data[rb.n]
        r.meter = meter
        r.obis = e.obis
        r.ts = ts
        r.value = v
        r.unit = e.unit
        r.status = Q_METER_ERROR if bad else Q_OK
        rb.n += 1
    fs.count = <uint32_t>(rb.n - first_n)
    if fs.count == 0:
        return _fail(fs, why, FS_NO_DATA, -1, W_NO_ENTRIES)
    return 0


def decode_one(data, request, entries, int mode, uint32_t meter, int64_t ts):
    """Decode one frame.  ``request``: REQUEST_DTYPE array of 1; ``entries``: MAP_DTYPE array
    sorted by key.  Returns (readings, status, code, offset, why)."""
    _check_arrays(request, entries)
    if request.shape[0] != 1:
        raise ValueError("one request record expected")
    cdef const uint8_t[::1] dv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    cdef const uint8_t[::1] rv = request.view(np.uint8)
    cdef const uint8_t[::1] ev = entries.view(np.uint8) if entries.shape[0] else np.zeros(1, np.uint8)
    cdef const mb_request_t* rq = <const mb_request_t*>&rv[0]
    cdef const mb_entry_t* ent = <const mb_entry_t*>&ev[0]
    cdef Py_ssize_t nent = entries.shape[0]
    cdef Py_ssize_t n = dv.shape[0]
    cdef const uint8_t* p = &dv[0] if n else <const uint8_t*>&rv[0]
    cdef reading_buf rb
    cdef frame_status_t fs
    cdef int why = 0
    if rb_init(&rb, 16) < 0:
        raise MemoryError()
    with nogil:
        mb_decode(p, n, mode, rq, ent, nent, &rb, meter, ts, &fs, &why)
    out = rb_to_array(&rb)
    return out, fs.status, fs.code, fs.offset, why


cdef int _check_arrays(object requests, object entries) except -1:
    if not isinstance(requests, np.ndarray) or requests.dtype != REQUEST_DTYPE or requests.ndim != 1:
        raise TypeError("requests must be a 1-D REQUEST_DTYPE array")
    if not isinstance(entries, np.ndarray) or entries.dtype != MAP_DTYPE or entries.ndim != 1:
        raise TypeError("entries must be a 1-D MAP_DTYPE array")
    if entries.shape[0] > 1 and not (np.diff(entries["key"].astype(np.int64)) >= 0).all():
        raise ValueError("map entries must be sorted by key")
    return 0


def decode_many(FrameBatch batch, requests, int req_stride, entries, modes, int mode_stride,
                meter_ids, ts, int ts_stride, out=None):
    """Decode every frame of ``batch`` in one nogil loop.

    ``requests``: REQUEST_DTYPE array (one record per frame, or one for all with req_stride 0);
    ``entries``: MAP_DTYPE array sorted by key; ``modes``: uint8 array of MB_MODE_* (stride 0 or
    1); ``meter_ids``: uint32 array of len(batch); ``ts``: int64 ms array (stride 0 or 1).
    ``out``: optional caller-owned, writable, C-contiguous READING_DTYPE array to decode into
    (reused across calls it spares the page faults of a fresh output); it must hold the upper
    bound of readings (``capacity_needed``), else ValueError.  Returns (readings,
    frame_status); with ``out`` the readings are ``out[:n]``."""
    cdef Py_ssize_t nf = batch._n, i, lo, total = 0
    _check_arrays(requests, entries)
    cdef const uint8_t[::1] rv = requests.view(np.uint8)
    cdef const uint8_t[::1] ev = entries.view(np.uint8) if entries.shape[0] else np.zeros(1, np.uint8)
    cdef const uint8_t[::1] mv = modes
    cdef const uint32_t[::1] idv = meter_ids
    cdef const int64_t[::1] tsv = ts
    if requests.shape[0] < (nf if req_stride else 1) or modes.shape[0] < (nf if mode_stride else 1):
        raise ValueError("one request / mode per frame needed")
    if meter_ids.shape[0] < nf or ts.shape[0] < (nf if ts_stride else 1):
        raise ValueError("one meter id / timestamp per frame needed")
    cdef const mb_request_t* rqs = <const mb_request_t*>&rv[0]
    cdef const mb_entry_t* ent = <const mb_entry_t*>&ev[0]
    cdef Py_ssize_t nent = entries.shape[0]
    fs_arr = new_frame_status(nf)
    cdef frame_status_t* fsp = NULL
    cdef uint8_t[::1] fsv
    if nf:
        fsv = fs_arr.view(np.uint8)
        fsp = <frame_status_t*>&fsv[0]
    cdef const uint8_t* p
    cdef Py_ssize_t n
    cdef reading_buf rb
    cdef int why = 0, oom = 0
    cdef uint8_t[::1] outv
    with nogil:
        if nf:
            total = _capacity(rqs, req_stride, nf, ent, nent)
    if out is not None:
        if (not isinstance(out, np.ndarray) or out.dtype != READING_DTYPE or out.ndim != 1
                or not out.flags.c_contiguous or not out.flags.writeable):
            raise TypeError("out must be a writable, C-contiguous 1-D READING_DTYPE array")
        if out.shape[0] < total:
            raise ValueError("out holds %d readings, this batch may produce %d" % (out.shape[0], total))
        rb.n = 0
        rb.cap = out.shape[0]
        rb.data = NULL
        if rb.cap:
            outv = out.view(np.uint8)
            rb.data = <reading_t*>&outv[0]
    elif rb_init(&rb, 16) < 0:
        raise MemoryError()
    with nogil:
        if out is None and total > 16 and rb_reserve(&rb, total) < 0:
            oom = 1
        for i in range(nf):
            fsp[i].first = <uint32_t>rb.n
            if oom:
                fsp[i].status = FS_OUT_OF_MEMORY
                fsp[i].offset = -1
                continue
            if not frame_at(batch, i, &p, &n):
                fsp[i].status = FS_BAD_LENGTH
                fsp[i].offset = -1
                continue
            mb_decode(p, n, mv[i * mode_stride], &rqs[i * req_stride], ent, nent, &rb,
                      idv[i], tsv[i * ts_stride], &fsp[i], &why)
    if out is not None:
        # the capacity check above means mb_decode never had to grow (realloc) out's memory
        return out[:rb.n], fs_arr
    return rb_to_array(&rb), fs_arr


cdef Py_ssize_t _capacity(const mb_request_t* rqs, int req_stride, Py_ssize_t nf,
                          const mb_entry_t* ent, Py_ssize_t nent) noexcept nogil:
    cdef Py_ssize_t i, lo, k, total = 0
    if req_stride == 0:
        k = _entries_for(rqs, ent, nent, &lo)
        return (k if k > 0 else 0) * nf
    for i in range(nf):
        k = _entries_for(&rqs[i], ent, nent, &lo)
        if k > 0:
            total += k
    return total


def capacity_needed(FrameBatch batch, requests, int req_stride, entries):
    """Upper bound of the readings decode_many may produce for this batch (size of ``out``)."""
    _check_arrays(requests, entries)
    cdef const uint8_t[::1] rv = requests.view(np.uint8)
    cdef const uint8_t[::1] ev = entries.view(np.uint8) if entries.shape[0] else np.zeros(1, np.uint8)
    if batch._n == 0:
        return 0
    if requests.shape[0] < (batch._n if req_stride else 1):
        raise ValueError("one request per frame needed")
    return _capacity(<const mb_request_t*>&rv[0], req_stride, batch._n,
                     <const mb_entry_t*>&ev[0], entries.shape[0])


def c_layouts():
    """sizeof and field offsets of mb_entry_t / mb_request_t, for the layout test."""
    cdef mb_entry_t e
    cdef mb_request_t r
    cdef char* eb = <char*>&e
    cdef char* qb = <char*>&r
    return {
        "entry": (sizeof(mb_entry_t), {
            "obis": <char*>&e.obis - eb, "scale": <char*>&e.scale - eb, "key": <char*>&e.key - eb,
            "width": <char*>&e.width - eb, "type": <char*>&e.type - eb,
            "order": <char*>&e.order - eb, "unit": <char*>&e.unit - eb}),
        "request": (sizeof(mb_request_t), {
            "transaction": <char*>&r.transaction - qb, "unit": <char*>&r.unit - qb,
            "start": <char*>&r.start - qb, "count": <char*>&r.count - qb,
            "function": <char*>&r.function - qb, "reserved": <char*>&r.reserved - qb}),
    }
