# cython: language_level=3
"""The exchange core: a byte-stream protocol object per link (Wire) and one tick's exchanges
over many links (Round).  See _wire.pyx."""
from libc.stdint cimport uint8_t, uint16_t, int32_t, int64_t

from meterpoll.ext._frames cimport FrameBatch


# Answer framing (how the end of an answer is found in the byte stream)
cdef enum:
    FRAMING_MBAP = 1          # Modbus TCP: 7-byte MBAP header, length field, transaction id
    FRAMING_RTU = 2           # Modbus RTU answer: function + byte count (+ CRC-16)
    FRAMING_WRAPPER = 3       # DLMS/COSEM TCP wrapper: 8-byte header with length
    FRAMING_MBUS = 4          # M-Bus: E5, short 10..16 or long/control 68 L L 68 .. 16
    FRAMING_HDLC = 5          # DLMS HDLC: 7E, frame format type 3 with 11-bit length, 7E

# Exchange status (bindings: meterpoll.engine.ExchangeStatus)
cdef enum:
    EX_OK = 0
    EX_TIMEOUT_FIRST_BYTE = 1
    EX_TIMEOUT_INTER_BYTE = 2
    EX_TIMEOUT_TOTAL = 3
    EX_CLOSED = 4             # connection lost before or during the answer
    EX_BAD_FRAME = 5          # the bytes cannot start an answer of this framing
    EX_OVERFLOW = 6           # more than MAX_ANSWER bytes without a complete answer
    EX_SKIPPED = 7            # not sent: an earlier exchange of the same meter failed
    EX_ABANDONED = 8          # the round was abandoned (engine stopping) before an answer
    EX_PENDING = 255


cdef class Round


cdef class Wire:
    cdef object transport        # the asyncio/uvloop transport once connected
    cdef object owner            # gets _feed(bytes) and _wire_lost(exc) outside rounds (or None)
    cdef uint8_t* buf            # received bytes not yet consumed
    cdef Py_ssize_t cap
    cdef Py_ssize_t len
    cdef Round round             # the round this wire serves, or None
    cdef Py_ssize_t slot         # its slot in that round
    cdef uint16_t tid            # last Modbus TCP transaction id sent
    cdef readonly long long bytes_in
    cdef readonly long long bytes_out
    cdef readonly bint closed
    cdef readonly object close_reason

    cdef int _reserve(self, Py_ssize_t extra) except -1
    cdef int _received(self) except -1
    cdef int _send(self, const uint8_t* p, Py_ssize_t n, bint mbap) except -1


cdef class Round:
    cdef FrameBatch requests
    cdef object _keep            # arrays whose memory the pointers below use
    cdef const int64_t* slot_start
    cdef const int32_t* group
    cdef const uint8_t* framing
    cdef Py_ssize_t n            # requests
    cdef Py_ssize_t nslots
    cdef object wires            # list of Wire, one per slot
    cdef int64_t* nxt            # per slot: index of the request in flight / next to send
    cdef uint8_t* state          # per slot: SLOT_*
    cdef int64_t* sent_ns        # per slot: when the request in flight was written
    cdef int64_t* last_ns        # per slot: when its last byte arrived (0: none yet)
    cdef int64_t* ready_ns       # per slot: pause over, send allowed
    cdef int64_t* first_ns       # per slot deadlines (ns)
    cdef int64_t* inter_ns
    cdef int64_t* total_ns
    cdef int64_t* pause_ns
    cdef object status_arr       # uint8 per request
    cdef uint8_t* status
    cdef object rx_arr           # int64 ms (UTC) per request: when the answer completed
    cdef int64_t* rx_ms
    cdef object lat_arr          # float64 seconds per request: write to complete answer
    cdef double* latency
    cdef int64_t* ans_start      # per request: where its answer (or partial bytes) starts in adata
    cdef int64_t* ans_len
    cdef uint8_t* adata
    cdef Py_ssize_t acap
    cdef Py_ssize_t alen
    cdef Py_ssize_t active       # slots not done
    cdef readonly long long stale        # Modbus TCP answers of earlier transaction ids skipped
    cdef readonly long long flushed      # stale bytes discarded before requests
    cdef object loop
    cdef object future
    cdef object on_slot_done     # callable(list of slots) or None
    cdef list done_slots         # slots finished since the last on_slot_done call
    cdef bint report_scheduled
    cdef object timer
    cdef int64_t timer_ns        # the deadline the timer is armed for (0: no timer)

    cdef int _start_slot(self, Py_ssize_t s, int64_t now) except -1
    cdef int _send_next(self, Py_ssize_t s, int64_t now) except -1
    cdef int _finish(self, Py_ssize_t s, uint8_t st, const uint8_t* p, Py_ssize_t n, int64_t now) except -1
    cdef int _keep_bytes(self, Py_ssize_t i, const uint8_t* p, Py_ssize_t n) except -1
    cdef int _slot_done(self, Py_ssize_t s) except -1
    cdef int _arm(self) except -1
    cdef int _arm_at(self, int64_t when) except -1
    cdef int64_t _deadline(self, Py_ssize_t s) noexcept
    cdef int _resolve(self) except -1
    cdef int _on_bytes(self, Py_ssize_t s) except -1
    cdef int _lost(self, Py_ssize_t s) except -1
