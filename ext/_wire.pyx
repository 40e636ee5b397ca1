# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The exchange core: byte-stream protocol objects and one tick's request/answer exchanges.

:class:`Wire` is the protocol object of one link's connection.  On uvloop it is a *buffered*
protocol: libuv reads straight into the wire's own buffer (``get_buffer`` / ``buffer_updated``,
no ``bytes`` object per read); on the standard asyncio loop ``data_received`` copies into the
same buffer.  Outside a round it hands what arrives to its owner (``owner._feed(bytes)``), which
is how the engine's Python sessions (DLMS associations, Mercury channels...) use it.

:class:`Round` runs many exchanges at once: one *slot* per link, each slot a sequence of
requests sent one at a time on that link (meters behind one gateway or on one bus take turns,
with the link's pause between exchanges).  The end of each answer is found in C by the
request's framing (Modbus TCP MBAP with transaction-id check, Modbus RTU, DLMS TCP wrapper,
DLMS HDLC, M-Bus); deadlines (first byte, inter-byte, total, in nanoseconds of
CLOCK_MONOTONIC) are kept per slot and checked by ONE loop timer per round, not one per
exchange.  When every slot is done, one future resolves; the answers are then available as a
FrameBatch in request order with a status, a UTC receive time and a latency per request.
A failed exchange keeps its partial bytes (nothing is silently dropped) and makes the rest of
that meter's requests ``SKIPPED``; the slot goes on with the next meter.  Per exchange there
is no Python object besides the request ``bytes`` handed to ``transport.write``.

Byte orders: Modbus MBAP fields and the DLMS wrapper length are big-endian, as on the wire.
"""
from cpython.buffer cimport PyBuffer_FillInfo
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.list cimport PyList_GET_ITEM
from libc.stdint cimport uint8_t, uint16_t, int32_t, int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memmove
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_REALTIME

import numpy as np

from meterpoll.ext._frames cimport FrameBatch, frame_at

__all__ = ["Wire", "Round", "frame_length", "MAX_ANSWER",
           "FRAMING_MBAP", "FRAMING_RTU", "FRAMING_WRAPPER", "FRAMING_MBUS", "FRAMING_HDLC",
           "EX_OK", "EX_TIMEOUT_FIRST_BYTE", "EX_TIMEOUT_INTER_BYTE", "EX_TIMEOUT_TOTAL",
           "EX_CLOSED", "EX_BAD_FRAME", "EX_OVERFLOW", "EX_SKIPPED", "EX_ABANDONED", "EX_PENDING"]

#: an answer longer than this without completing is babble (DLMS max info field is 2030 B)
DEF MAX_ANSWER_C = 65536
MAX_ANSWER = MAX_ANSWER_C
DEF MIN_SPARE = 256

cdef enum:
    SLOT_IDLE = 0
    SLOT_SENT = 1            # request written, answer awaited
    SLOT_WAIT = 2            # pause between exchanges, next request at ready_ns
    SLOT_DONE = 3

(FRAMING_MBAP_, FRAMING_RTU_, FRAMING_WRAPPER_, FRAMING_MBUS_, FRAMING_HDLC_) = (
    FRAMING_MBAP, FRAMING_RTU, FRAMING_WRAPPER, FRAMING_MBUS, FRAMING_HDLC)
globals().update(FRAMING_MBAP=FRAMING_MBAP_, FRAMING_RTU=FRAMING_RTU_, FRAMING_WRAPPER=FRAMING_WRAPPER_,
                 FRAMING_MBUS=FRAMING_MBUS_, FRAMING_HDLC=FRAMING_HDLC_)
globals().update(EX_OK=int(EX_OK), EX_TIMEOUT_FIRST_BYTE=int(EX_TIMEOUT_FIRST_BYTE),
                 EX_TIMEOUT_INTER_BYTE=int(EX_TIMEOUT_INTER_BYTE), EX_TIMEOUT_TOTAL=int(EX_TIMEOUT_TOTAL),
                 EX_CLOSED=int(EX_CLOSED), EX_BAD_FRAME=int(EX_BAD_FRAME), EX_OVERFLOW=int(EX_OVERFLOW),
                 EX_SKIPPED=int(EX_SKIPPED), EX_ABANDONED=int(EX_ABANDONED), EX_PENDING=int(EX_PENDING))


cdef inline int64_t _mono_ns() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return <int64_t>t.tv_sec * 1000000000 + t.tv_nsec


cdef inline int64_t _utc_ms() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_REALTIME, &t)
    return <int64_t>t.tv_sec * 1000 + t.tv_nsec // 1000000


cdef Py_ssize_t _rtu_length(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """Length of a Modbus RTU answer from its function and byte count (CRC included)."""
    if n < 2:
        return 0
    cdef uint8_t fn = p[1]
    if fn & 0x80:
        return 5
    if fn == 1 or fn == 2 or fn == 3 or fn == 4:
        if n < 3:
            return 0
        if p[2] == 0 or ((fn == 3 or fn == 4) and (p[2] & 1)):
            return -1
        return 5 + p[2]
    if fn == 5 or fn == 6 or fn == 8 or fn == 15 or fn == 16:
        return 8
    return -1


cdef Py_ssize_t frame_len(int framing, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """Length of the complete answer at the start of ``p[:n]``; 0 when more bytes are needed;
    -1 when these bytes cannot start an answer of this framing."""
    cdef Py_ssize_t ln
    if n <= 0:
        return 0
    if framing == FRAMING_MBAP:
        if n >= 4 and (p[2] or p[3]):
            return -1                       # protocol id must be 0
        if n < 6:
            return 0
        ln = (p[4] << 8) | p[5]
        if ln < 2 or ln > 254:
            return -1
        return 6 + ln if n >= 6 + ln else 0
    if framing == FRAMING_RTU:
        ln = _rtu_length(p, n)
        if ln <= 0:
            return ln
        return ln if n >= ln else 0
    if framing == FRAMING_WRAPPER:
        if n >= 2 and (p[0] != 0 or p[1] != 1):
            return -1                       # wrapper version 0x0001
        if n < 8:
            return 0
        ln = (p[6] << 8) | p[7]
        return 8 + ln if n >= 8 + ln else 0
    if framing == FRAMING_MBUS:
        if p[0] == 0xE5:
            return 1
        if p[0] == 0x10:
            return 5 if n >= 5 else 0
        if p[0] != 0x68:
            return -1
        if n < 4:
            if n >= 3 and p[2] != p[1]:
                return -1
            return 0
        if p[2] != p[1] or p[3] != 0x68 or p[1] < 3:
            return -1
        ln = p[1] + 6
        if n < ln:
            return 0
        return ln if p[ln - 1] == 0x16 else -1
    if framing == FRAMING_HDLC:
        if p[0] != 0x7E:
            return -1
        if n >= 2 and (p[1] & 0xF0) != 0xA0:
            return -1                       # frame format type 3
        if n < 3:
            return 0
        ln = ((p[1] & 0x07) << 8) | p[2]
        if ln < 7:
            return -1
        if n < ln + 2:
            return 0
        return ln + 2 if p[ln + 1] == 0x7E else -1
    return -1


def frame_length(int framing, const uint8_t[::1] data not None):
    """The length of the complete answer at the start of ``data`` (0: incomplete, -1: cannot
    be an answer of ``framing``).  Exposed for tests and for Python-side framing."""
    return frame_len(framing, &data[0] if data.shape[0] else NULL, data.shape[0])


cdef class Wire:
    """The protocol object of one byte-stream connection (a meter, a TCP-to-RS-485 gateway).

    Pass it to ``loop.create_connection(lambda: wire, host, port)``.  ``owner`` (optional)
    receives the bytes that arrive while no :class:`Round` holds the wire, through
    ``owner._feed(data: bytes)``, and the loss of the connection through
    ``owner._wire_lost(exc)``.  ``bytes_in`` / ``bytes_out`` count every byte.
    """

    def __cinit__(self):
        self.buf = <uint8_t*>malloc(512)
        if self.buf == NULL:
            raise MemoryError()
        self.cap = 512
        self.len = 0
        self.closed = True

    def __init__(self, owner=None):
        self.owner = owner
        self.round = None

    def __dealloc__(self):
        free(self.buf)

    def __repr__(self):
        return "<Wire %s in=%d out=%d%s>" % ("closed" if self.closed else "open", self.bytes_in,
                                              self.bytes_out, " in round" if self.round is not None else "")

    @property
    def transport(self):
        return self.transport

    @property
    def is_open(self):
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    @property
    def buffered(self):
        """Bytes received and not consumed yet."""
        return self.len

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t want = self.len + extra
        cdef Py_ssize_t cap = self.cap
        cdef uint8_t* nb
        if want <= cap:
            return 0
        while cap < want:
            cap *= 2
        nb = <uint8_t*>realloc(self.buf, cap)
        if nb == NULL:
            raise MemoryError()
        self.buf = nb
        self.cap = cap
        return 0

    # ---- asyncio protocol interface ----
    def connection_made(self, transport):
        self.transport = transport
        self.closed = False
        self.close_reason = None
        self.len = 0

    def connection_lost(self, exc):
        self.closed = True
        self.transport = None
        self.close_reason = exc
        if self.round is not None:
            self.round._lost(self.slot)
        elif self.owner is not None:
            self.owner._wire_lost(exc)

    def eof_received(self):
        return False                        # let the transport close; connection_lost follows

    def pause_writing(self):
        pass

    def resume_writing(self):
        pass

    def get_buffer(self, Py_ssize_t sizehint):
        """uvloop asks where to read to: the spare end of our buffer (at least 256 bytes)."""
        self._reserve(MIN_SPARE)
        return self

    def __getbuffer__(self, Py_buffer* view, int flags):
        PyBuffer_FillInfo(view, self, self.buf + self.len, self.cap - self.len, 0, flags)

    def __releasebuffer__(self, Py_buffer* view):
        pass

    def buffer_updated(self, Py_ssize_t nbytes):
        if nbytes <= 0 or nbytes > self.cap - self.len:
            return
        self.len += nbytes
        self.bytes_in += nbytes
        self._received()

    def data_received(self, data):
        cdef const uint8_t[::1] v = data
        cdef Py_ssize_t n = v.shape[0]
        if n == 0:
            return
        self._reserve(n)
        memcpy(self.buf + self.len, &v[0], n)
        self.len += n
        self.bytes_in += n
        self._received()

    cdef int _received(self) except -1:
        if self.round is not None:
            self.round._on_bytes(self.slot)
        elif self.owner is not None:
            data = PyBytes_FromStringAndSize(<char*>self.buf, self.len)
            self.len = 0
            self.owner._feed(data)
        else:
            self.len = 0                    # nobody listens: noise between exchanges
        return 0

    cdef int _send(self, const uint8_t* p, Py_ssize_t n, bint mbap) except -1:
        data = PyBytes_FromStringAndSize(<const char*>p, n)
        cdef char* q
        if mbap and n >= 2:
            self.tid = <uint16_t>(self.tid + 1)
            q = PyBytes_AS_STRING(data)
            q[0] = <char>(self.tid >> 8)
            q[1] = <char>(self.tid & 0xFF)
        self.transport.write(data)
        self.bytes_out += n
        return 0

    def write(self, data):
        """Write outside a round (the owner's sessions)."""
        if self.closed or self.transport is None:
            raise ConnectionError("wire is not connected")
        self.transport.write(data)
        self.bytes_out += len(data)

    def flush(self):
        """Discard received bytes not consumed yet; returns how many."""
        cdef Py_ssize_t n = self.len
        self.len = 0
        return n

    def close(self):
        if self.transport is not None:
            self.transport.close()

    def abort(self):
        if self.transport is not None:
            self.transport.abort()


cdef inline const int64_t* _i64(object a) except NULL:
    cdef const int64_t[::1] v = a
    return &v[0]


cdef class Round:
    """One tick's exchanges over many wires.

    ``requests``: FrameBatch of every request, grouped by slot (slot s sends requests
    ``slot_start[s]:slot_start[s+1]`` in order).  ``group`` (int32 per request): requests of
    one meter share a group number; when one fails, the rest of its group is skipped.
    ``framing`` (uint8 per request): FRAMING_* of the answer (FRAMING_MBAP also writes a fresh
    transaction id into the request's first two bytes and skips answers carrying an older one).
    ``first_byte``, ``inter_byte``, ``total``, ``pause`` (float64 seconds per slot): the
    deadlines of each exchange and the quiet time between two exchanges of a slot;
    ``delay`` (float64 seconds per slot, optional): wait before the slot's first request (what
    is left of the link's pause since its previous exchange).

    ``start(wires, loop, on_slot_done)`` returns a future resolved with the round when every
    slot is done; ``on_slot_done(slots)`` (optional) gets the list of slots that finished, once
    per event-loop iteration in which any did (their wires are already free again: hand the
    links to their next users before the round ends), and always before the future resolves.
    """

    def __cinit__(self):
        self.n = 0
        self.nslots = 0

    def __init__(self, FrameBatch requests not None, slot_start, group, framing, first_byte,
                 inter_byte, total, pause=None, delay=None):
        cdef Py_ssize_t n = len(requests)
        ss = np.ascontiguousarray(slot_start, dtype=np.int64)
        gr = np.ascontiguousarray(group, dtype=np.int32)
        fr = np.ascontiguousarray(framing, dtype=np.uint8)
        if ss.ndim != 1 or ss.shape[0] < 1 or ss[0] != 0 or ss[ss.shape[0] - 1] != n:
            raise ValueError("slot_start must run from 0 to the number of requests (%d)" % n)
        if n and (np.diff(ss) < 0).any():
            raise ValueError("slot_start must not decrease")
        if gr.shape[0] != n or fr.shape[0] != n:
            raise ValueError("group and framing need one entry per request (%d)" % n)
        if n and not np.isin(fr, [FRAMING_MBAP, FRAMING_RTU, FRAMING_WRAPPER, FRAMING_MBUS, FRAMING_HDLC]).all():
            raise ValueError("unknown framing in %s" % np.unique(fr).tolist())
        cdef Py_ssize_t S = ss.shape[0] - 1

        def per_slot(x, name, default=None, positive=True):
            if x is None:
                x = default
            a = np.broadcast_to(np.asarray(x, dtype=np.float64), (S,))
            bad = (a <= 0) if positive else (a < 0)
            if not np.isfinite(a).all() or bad.any():
                raise ValueError("%s must be %s seconds (one value or one per slot)"
                                 % (name, "positive" if positive else "non-negative"))
            return np.ascontiguousarray((a * 1e9).astype(np.int64))

        fb = per_slot(first_byte, "first_byte")
        ib = per_slot(inter_byte, "inter_byte")
        tt = per_slot(total, "total")
        pz = per_slot(pause, "pause", 0.0, False)
        dl = per_slot(delay, "delay", 0.0, False)
        self.requests = requests
        self._keep = (ss, gr, fr, fb, ib, tt, pz, dl)
        self.slot_start = _i64(ss)
        cdef const int32_t[::1] gv = gr
        cdef const uint8_t[::1] fv = fr
        self.group = &gv[0] if n else NULL
        self.framing = &fv[0] if n else NULL
        self.first_ns = <int64_t*>_i64(fb) if S else NULL
        self.inter_ns = <int64_t*>_i64(ib) if S else NULL
        self.total_ns = <int64_t*>_i64(tt) if S else NULL
        self.pause_ns = <int64_t*>_i64(pz) if S else NULL
        self.ready_ns = <int64_t*>malloc(sizeof(int64_t) * (S + 1))
        self.nxt = <int64_t*>malloc(sizeof(int64_t) * (S + 1))
        self.state = <uint8_t*>malloc(S + 1)
        self.sent_ns = <int64_t*>malloc(sizeof(int64_t) * (S + 1))
        self.last_ns = <int64_t*>malloc(sizeof(int64_t) * (S + 1))
        self.ans_start = <int64_t*>malloc(sizeof(int64_t) * (n + 1))
        self.ans_len = <int64_t*>malloc(sizeof(int64_t) * (n + 1))
        self.acap = 256 * (n + 1)
        self.adata = <uint8_t*>malloc(self.acap)
        if (self.ready_ns == NULL or self.nxt == NULL or self.state == NULL or self.sent_ns == NULL
                or self.last_ns == NULL or self.ans_start == NULL or self.ans_len == NULL or self.adata == NULL):
            raise MemoryError()
        cdef const int64_t* dv = _i64(dl) if S else NULL
        cdef Py_ssize_t s, i
        for s in range(S):
            self.nxt[s] = self.slot_start[s]
            self.state[s] = SLOT_IDLE
            self.ready_ns[s] = dv[s]        # relative until start()
            self.sent_ns[s] = 0
            self.last_ns[s] = 0
        for i in range(n):
            self.ans_start[i] = 0
            self.ans_len[i] = 0
        self.status_arr = np.full(n, EX_PENDING, dtype=np.uint8)
        self.rx_arr = np.zeros(n, dtype=np.int64)
        self.lat_arr = np.full(n, np.nan, dtype=np.float64)
        cdef uint8_t[::1] sv = self.status_arr
        cdef int64_t[::1] rv = self.rx_arr
        cdef double[::1] lv = self.lat_arr
        self.status = &sv[0] if n else NULL
        self.rx_ms = &rv[0] if n else NULL
        self.latency = &lv[0] if n else NULL
        self.n = n
        self.nslots = S
        self.alen = 0

    def __dealloc__(self):
        free(self.ready_ns)
        free(self.nxt)
        free(self.state)
        free(self.sent_ns)
        free(self.last_ns)
        free(self.ans_start)
        free(self.ans_len)
        free(self.adata)

    def __len__(self):
        return self.n

    def __repr__(self):
        return "<Round %d requests on %d slots, %d active>" % (self.n, self.nslots, self.active)

    # ---- running ----
    def start(self, wires, loop, on_slot_done=None):
        """Send every slot's first request on its wire (slot s on ``wires[s]``) and return a
        future resolved with this round once all slots are done."""
        if self.future is not None:
            raise RuntimeError("a round runs once")
        if not isinstance(wires, list):
            wires = list(wires)
        if len(wires) != self.nslots:
            raise ValueError("%d wires for %d slots" % (len(wires), self.nslots))
        cdef Py_ssize_t s
        cdef Wire w
        for s in range(self.nslots):
            w = <Wire?>wires[s]
            if w.round is not None:
                raise RuntimeError("wire of slot %d already serves a round" % s)
        self.wires = wires
        self.loop = loop
        self.on_slot_done = on_slot_done
        self.future = loop.create_future()
        self.active = self.nslots
        cdef int64_t now = _mono_ns()
        for s in range(self.nslots):
            w = <Wire>PyList_GET_ITEM(wires, s)
            w.round = self
            w.slot = s
        for s in range(self.nslots):
            self._start_slot(s, now)
        if self.active == 0:
            self._resolve()
        else:
            self._arm()
        return self.future

    cdef int _start_slot(self, Py_ssize_t s, int64_t now) except -1:
        cdef int64_t delay = self.ready_ns[s]
        if delay > 0:
            self.state[s] = SLOT_WAIT
            self.ready_ns[s] = now + delay
            return 0
        return self._send_next(s, now)

    cdef int _send_next(self, Py_ssize_t s, int64_t now) except -1:
        cdef Py_ssize_t i = self.nxt[s]
        cdef Py_ssize_t end = self.slot_start[s + 1]
        cdef Wire w = <Wire>PyList_GET_ITEM(self.wires, s)
        cdef const uint8_t* p
        cdef Py_ssize_t plen
        if i >= end:
            return self._slot_done(s)
        if w.closed or w.transport is None:
            while i < end:
                self.status[i] = EX_CLOSED
                i += 1
            self.nxt[s] = end
            return self._slot_done(s)
        if not frame_at(self.requests, i, &p, &plen):
            raise ValueError("request %d lies outside its batch" % i)
        self.flushed += w.len               # stale bytes from before this request
        w.len = 0
        self.state[s] = SLOT_SENT
        self.sent_ns[s] = now
        self.last_ns[s] = 0
        try:
            w._send(p, plen, self.framing[i] == FRAMING_MBAP)
        except Exception:
            self.state[s] = SLOT_IDLE
            return self._finish(s, EX_CLOSED, NULL, 0, now)
        return 0

    cdef int _keep_bytes(self, Py_ssize_t i, const uint8_t* p, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap = self.acap
        cdef uint8_t* nb
        if self.alen + n > cap:
            while self.alen + n > cap:
                cap *= 2
            nb = <uint8_t*>realloc(self.adata, cap)
            if nb == NULL:
                raise MemoryError()
            self.adata = nb
            self.acap = cap
        if n:
            memcpy(self.adata + self.alen, p, n)
        self.ans_start[i] = self.alen
        self.ans_len[i] = n
        self.alen += n
        return 0

    cdef int _finish(self, Py_ssize_t s, uint8_t st, const uint8_t* p, Py_ssize_t n, int64_t now) except -1:
        """The exchange in flight on slot s ended with status st (answer or partial bytes p[:n]);
        go on with the slot's next request (after its pause)."""
        cdef Py_ssize_t i = self.nxt[s]
        cdef Py_ssize_t end = self.slot_start[s + 1]
        cdef int32_t g
        self.status[i] = st
        self._keep_bytes(i, p, n)
        self.rx_ms[i] = _utc_ms()
        self.latency[i] = (now - self.sent_ns[s]) * 1e-9
        i += 1
        if st != EX_OK:
            g = self.group[i - 1]
            while i < end and self.group[i] == g:
                self.status[i] = EX_SKIPPED
                i += 1
        self.nxt[s] = i
        if st == EX_CLOSED:
            while i < end:
                self.status[i] = EX_CLOSED
                i += 1
            self.nxt[s] = end
        if i >= end:
            return self._slot_done(s)
        if self.pause_ns[s] > 0:
            self.state[s] = SLOT_WAIT
            self.ready_ns[s] = now + self.pause_ns[s]
            self._arm_at(self.ready_ns[s])
            return 0
        return self._send_next(s, now)

    cdef int _slot_done(self, Py_ssize_t s) except -1:
        cdef Wire w
        if self.state[s] == SLOT_DONE:
            return 0
        self.state[s] = SLOT_DONE
        w = <Wire>PyList_GET_ITEM(self.wires, s)
        if w.round is self:
            w.round = None
        self.active -= 1
        if self.on_slot_done is not None:
            if self.done_slots is None:
                self.done_slots = []
            self.done_slots.append(s)
            if self.active and not self.report_scheduled:
                self.report_scheduled = True
                self.loop.call_soon(self._report_done)
        if self.active == 0:
            self._report_done()
            self._resolve()
        return 0

    def _report_done(self):
        """Hand the slots finished since the last call to on_slot_done (one call per loop
        iteration, not one per slot)."""
        self.report_scheduled = False
        if not self.done_slots:
            return
        slots, self.done_slots = self.done_slots, []
        try:
            self.on_slot_done(slots)
        except Exception as e:              # never into the transport's read callback
            self.loop.call_exception_handler(
                {"message": "on_slot_done callback of a meterpoll Round failed", "exception": e})

    cdef int _resolve(self) except -1:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_ns = 0
        if self.future is not None and not self.future.done():
            self.future.set_result(self)
        return 0

    cdef int _on_bytes(self, Py_ssize_t s) except -1:
        """The wire of slot s received bytes: complete answers are taken in C.  The wire's
        buffer is emptied before ``_finish`` (its bytes stay readable: nothing is written
        into it until the loop's next read), so the next request starts clean."""
        cdef Wire w = <Wire>PyList_GET_ITEM(self.wires, s)
        cdef Py_ssize_t i, n, have
        cdef int64_t now
        cdef const uint8_t* b = w.buf
        if self.state[s] != SLOT_SENT:
            self.flushed += w.len           # between exchanges: a late answer or noise
            w.len = 0
            return 0
        now = _mono_ns()
        i = self.nxt[s]
        while True:
            have = w.len
            n = frame_len(self.framing[i], b, have)
            if n == 0:
                if have > MAX_ANSWER_C:
                    w.len = 0
                    self._finish(s, EX_OVERFLOW, b, have, now)
                    w.abort()               # resynchronise on a fresh connection
                    return 0
                self.last_ns[s] = now
                if have:                    # the inter-byte deadline may come before the timer
                    self._arm_at(self._deadline(s))
                return 0
            if n < 0:
                w.len = 0
                return self._finish(s, EX_BAD_FRAME, b, have, now)
            if self.framing[i] == FRAMING_MBAP and ((b[0] << 8) | b[1]) != w.tid:
                self.stale += 1             # an answer to an earlier, timed-out request
                memmove(w.buf, b + n, have - n)
                w.len = have - n
                continue
            self.flushed += have - n        # bytes after the answer are not ours
            w.len = 0
            return self._finish(s, EX_OK, b, n, now)

    cdef int _lost(self, Py_ssize_t s) except -1:
        """The wire of slot s lost its connection."""
        cdef Wire w = <Wire>PyList_GET_ITEM(self.wires, s)
        cdef int64_t now = _mono_ns()
        cdef Py_ssize_t have = w.len
        if self.state[s] == SLOT_SENT:
            w.len = 0
            return self._finish(s, EX_CLOSED, w.buf, have, now)
        if self.state[s] != SLOT_DONE:
            while self.nxt[s] < self.slot_start[s + 1]:
                self.status[self.nxt[s]] = EX_CLOSED
                self.nxt[s] += 1
            return self._slot_done(s)
        return 0

    # ---- deadlines: one timer per round ----
    cdef int64_t _deadline(self, Py_ssize_t s) noexcept:
        cdef int64_t d, t
        if self.state[s] == SLOT_WAIT:
            return self.ready_ns[s]
        if self.state[s] != SLOT_SENT:
            return 0
        d = self.sent_ns[s] + self.total_ns[s]
        if self.last_ns[s]:
            t = self.last_ns[s] + self.inter_ns[s]
        else:
            t = self.sent_ns[s] + self.first_ns[s]
        return t if t < d else d

    cdef int _arm(self) except -1:
        cdef int64_t best = 0, d
        cdef Py_ssize_t s
        for s in range(self.nslots):
            d = self._deadline(s)
            if d and (best == 0 or d < best):
                best = d
        return self._arm_at(best)

    cdef int _arm_at(self, int64_t when) except -1:
        """Make sure the timer fires by ``when`` (ns, CLOCK_MONOTONIC; 0: nothing to do)."""
        if when == 0:
            return 0
        if self.timer is not None:
            if self.timer_ns <= when:
                return 0
            self.timer.cancel()
        # uvloop timers have 1 ms resolution: never fire before the deadline
        self.timer = self.loop.call_later((when - _mono_ns()) * 1e-9 + 0.001, self._on_timer)
        self.timer_ns = when
        return 0

    def _on_timer(self):
        cdef int64_t now = _mono_ns()
        cdef Py_ssize_t s, have
        cdef Wire w
        cdef uint8_t st
        self.timer = None
        self.timer_ns = 0
        for s in range(self.nslots):
            if self.state[s] == SLOT_WAIT:
                if now >= self.ready_ns[s]:
                    self._send_next(s, now)
            elif self.state[s] == SLOT_SENT:
                if now < self._deadline(s):
                    continue
                if now >= self.sent_ns[s] + self.total_ns[s]:
                    st = EX_TIMEOUT_TOTAL
                elif self.last_ns[s]:
                    st = EX_TIMEOUT_INTER_BYTE
                else:
                    st = EX_TIMEOUT_FIRST_BYTE
                w = <Wire>PyList_GET_ITEM(self.wires, s)
                have = w.len
                w.len = 0
                self._finish(s, st, w.buf, have, now)
        if self.active:
            self._arm()

    def abandon(self):
        """Give up every exchange still running (engine stopping): their status becomes
        EX_ABANDONED (partial bytes kept), the wires are released, the future resolves."""
        cdef Py_ssize_t s, i
        cdef Wire w
        if self.future is None:
            return
        for s in range(self.nslots):
            if self.state[s] == SLOT_DONE:
                continue
            w = <Wire>PyList_GET_ITEM(self.wires, s)
            i = self.nxt[s]
            if self.state[s] == SLOT_SENT and i < self.slot_start[s + 1]:
                self._keep_bytes(i, w.buf, w.len)
                w.len = 0
            while i < self.slot_start[s + 1]:
                self.status[i] = EX_ABANDONED
                i += 1
            self.nxt[s] = i
            self._slot_done(s)

    # ---- results ----
    @property
    def status(self):
        """uint8 per request: EX_OK or why not (EX_PENDING while running)."""
        return self.status_arr

    @property
    def received_ms(self):
        """int64 per request: UTC milliseconds since 1970 when the exchange ended (0: never)."""
        return self.rx_arr

    @property
    def latency(self):
        """float64 seconds per request from the write to the end of the answer (NaN: not sent)."""
        return self.lat_arr

    @property
    def request_lengths(self):
        """int64 per request: its length in bytes."""
        return self.requests.lengths

    @property
    def answer_lengths(self):
        """int64 per request: bytes of its answer (or of the partial answer of a failure)."""
        out = np.empty(self.n, dtype=np.int64)
        cdef int64_t[::1] ov = out
        cdef Py_ssize_t i
        for i in range(self.n):
            ov[i] = self.ans_len[i]
        return out

    @property
    def done(self):
        return self.future is not None and self.active == 0

    def answer(self, Py_ssize_t i):
        """Request i's answer, or for a failed exchange the partial bytes that came (bytes)."""
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("request index out of range")
        return PyBytes_FromStringAndSize(<char*>self.adata + self.ans_start[i], self.ans_len[i])

    def answers(self, bint ok_only=True):
        """``(FrameBatch, index)``: the answers in request order (only EX_OK ones unless
        ``ok_only`` is False, then every request with its partial bytes) and, as int64, the
        request index of each."""
        cdef Py_ssize_t i, k = 0, total = 0
        for i in range(self.n):
            if not ok_only or self.status[i] == EX_OK:
                k += 1
                total += self.ans_len[i]
        index = np.empty(k, dtype=np.int64)
        data = np.empty(total, dtype=np.uint8)
        offsets = np.empty(k + 1, dtype=np.int64)
        cdef int64_t[::1] iv = index
        cdef int64_t[::1] ov = offsets
        cdef uint8_t[::1] dv = data
        cdef uint8_t* dp = &dv[0] if total else NULL
        cdef int64_t pos = 0
        k = 0
        ov[0] = 0
        for i in range(self.n):
            if not ok_only or self.status[i] == EX_OK:
                if self.ans_len[i]:
                    memcpy(dp + pos, self.adata + self.ans_start[i], self.ans_len[i])
                pos += self.ans_len[i]
                iv[k] = i
                k += 1
                ov[k] = pos
        return FrameBatch.from_buffer(data, offsets), index
