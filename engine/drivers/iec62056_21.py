"""IEC 62056-21 mode C engine driver.

Readout session (reads ``energy``, ``instant``, ``clock``; also when ``reads`` names nothing
else): sign-on ``/?<address>!`` CR LF, the meter's identification, option select ``ACK 0 Z 0``
CR LF (data readout) and the readout block ``STX ... ! CR LF ETX BCC``, which is the one frame
handed to the batch decoder.

Programming session (reads ``profile`` and/or ``events``), after the readout session when both
are wanted: sign-on, identification, ``ACK 0 Z 1`` CR LF, the meter's ``SOH P0 STX (...) ETX
BCC`` prompt, ``SOH P1 STX (password) ETX BCC`` (``meter.password``; left out when empty) which
the meter must ACK, the R5 reads below, and ``SOH B0 ETX BCC`` (sent without waiting: some
meters answer B0, some nothing).  The exchange is the VDEW one of README 6.4 (Metcom/EMH).

- ``profile``: ``R5 P.01(0YYMMDDhhmm;0YYMMDDhhmm)`` for windows of at most 96 intervals planned
  by :func:`~meterpoll.engine.catchup.plan_catchup` from the newest interval already read (or
  stored: ``resume_profile``), at most ``data_polling_length`` days back, at most
  :data:`MAX_PROFILE_CHUNKS` windows per poll.  The answer (``P.01(s time)(status)(period)(n)
  (id)(unit)...`` headers and ``(v1)...(vn)`` rows) goes to the batch decoder, which stamps each
  row with header time + k x period: the interval's END time in this driver's reading (the
  simulator stamps the header with the end of its first interval).  The window's 'from' is one
  minute after the newest interval held, so the request does not depend on the period; the
  period is learned from the first header.  The newest row time of an answer is where the next
  window starts (a window without rows moves it to the window's end).  Profile channels are not
  in ``expected_obis``: a failed poll's NaN rows would move the store's resume point past
  intervals never read.
- ``events``: ``R5 P.98(0YYMMDDhhmm;)`` from the newest logbook entry read (first poll:
  ``data_polling_length`` days back; 0 = from the first poll on).  Every entry ``P.98(s
  YYMMDDhhmmss)(status)()(n)(id1)(unit1)...(v1)...(vn)`` becomes an :class:`EventRecord` at the
  entry's time with code ``JOURNAL_CODE_BASE + event number`` (the value of the column
  ``91.11.0``, else the first value) and a text naming it (1 power down, 2 power up, 4 / 5
  clock set old / new time: the meanings the Metcom source gives, README 6.4).  The logbook
  frame is not handed to the batch decoder.  Entries at the resume time already seen are not
  repeated.

Answers in partial blocks (``STX ... EOT BCC``) are followed with ACK; each block's BCC is
checked, and the blocks are joined into one ``STX ... ETX BCC`` frame (BCC recomputed over the
joined data) for the decoder.  A block with a bad BCC is handed to the decoder as it came
(CHECKSUM) and ends the reads of that session.  ``P.nn(ERROR)`` answers and NAKs are events
(the meter has no such data), not failures.

Baud: the option select asks the meter to *stay* at the line's speed (the engine does not switch
a port's speed mid-session, and a TCP-to-RS-485 gateway cannot): Z = the configured serial baud
rate, or ``gateway_baud`` (default 9600) for TCP and gateway links.

Clock: with ``"clock"`` in ``meter.reads`` the readout's ``0.9.1`` (hhmmss) and ``0.9.2``
(YYMMDD) lines are compared with the receive time (meter clock taken as UTC +
``utc_offset_min``); a drift beyond ``time_difference`` becomes an event.  Profile and logbook
times are meter local times converted the same way.

Events (codes): 2 clock drift, 6 a profile / logbook read the meter answered with NAK or
``(ERROR)``; logbook entries ``JOURNAL_CODE_BASE`` (0x10000) + event number.

Framing (``complete``): the identification ends at its CR LF, blocks after the BCC that follows
ETX/EOT, ACK and NAK are one byte; any other first byte cannot start an answer.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from meterpoll.bindings import iec62056_21 as iec
from meterpoll.bindings.errors import ChecksumError, FrameError, ProtocolExceptionError
from meterpoll.bindings.readings import obis
from meterpoll.engine.catchup import plan_catchup
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.driver import Driver, EventRecord, PollResult
from meterpoll.engine.errors import LinkError
from meterpoll.engine.link import Lease
from meterpoll.engine.transport import Deadlines

__all__ = ["IecDriver", "complete", "READOUT_OBIS", "PROFILE_OBIS", "JOURNAL_CODE_BASE", "LOGBOOK_EVENTS",
           "parse_logbook"]

STX, ETX, EOT, SOH, ACK, NAK = 0x02, 0x03, 0x04, 0x01, 0x06, 0x15
EVENT_CLOCK_DRIFT = 2
EVENT_NO_DATA = 6
#: EventRecord code of a logbook entry = JOURNAL_CODE_BASE + the meter's event number
JOURNAL_CODE_BASE = 0x10000
#: VDEW logbook event numbers (91.11.0) as the Metcom source names them (README 6.4)
LOGBOOK_EVENTS = {1: "power down", 2: "power up", 4: "clock set (old time)", 5: "clock set (new time)"}
MAX_PROFILE_CHUNKS = 8    # R5 P.01 windows per poll (catch-up continues next poll)
MAX_BLOCKS = 256          # partial blocks followed for one answer

#: what a data readout of a mode C meter is expected to carry (recorded as NaN on a failed poll)
READOUT_OBIS = [obis("1.0.1.8.%d.255" % k) for k in range(5)] + [
    obis("1.0.%d.7.0.255" % c) for c in (32, 52, 72, 31, 51, 71, 14)] + [
    obis("1.0.0.9.1.255"), obis("1.0.0.9.2.255"), obis("1.0.97.97.0.255")]
#: the usual first P.01 channel (1.5 = average P+ of the interval): where catch-up resumes
PROFILE_OBIS = obis("1.0.1.5.0.255")

_BAUD_CHAR = {v: k for k, v in iec.BAUD_RATES.items() if k.isdigit()}
_TIME = re.compile(rb"(?:^|[\r\n\x02])(?:1-0:)?0\.9\.1(?:\*\d+)?\((\d{2})(\d{2})(\d{2})\)")
_DATE = re.compile(rb"(?:^|[\r\n\x02])(?:1-0:)?0\.9\.2(?:\*\d+)?\((\d{2})(\d{2})(\d{2})\)")
_P01_HEADER = re.compile(rb"P\.01\(\d{13}\)\([^()]*\)\((\d+)\)")
_GROUP = re.compile(rb"\(([^()]*)\)")


def complete(buf: bytearray) -> int:
    """Length of the first complete answer in ``buf``; 0 = need more; -1 = not an answer."""
    n = len(buf)
    b0 = buf[0]
    if b0 == 0x2F:  # identification
        i = buf.find(b"\n")
        if i >= 0:
            return i + 1
        return -1 if n > 128 else 0
    if b0 in (STX, SOH):
        for i in range(1, n):
            if buf[i] in (ETX, EOT):
                return i + 2 if n >= i + 2 else 0
        return 0
    if b0 in (ACK, NAK):
        return 1
    return -1


def _vdew_time(text: bytes, utc_offset_min: int) -> float | None:
    """UTC seconds of a VDEW time ``sYYMMDDhhmmss`` (season digit ignored), None if impossible."""
    if len(text) != 13 or not text.isdigit():
        return None
    y, mo, d, h, mi, s = (int(text[i:i + 2]) for i in range(1, 13, 2))
    try:
        t = calendar.timegm((2000 + y, mo, d, h, mi, s))
    except (ValueError, OverflowError):
        return None
    if time.gmtime(t)[:6] != (2000 + y, mo, d, h, mi, s):
        return None
    return float(t) - utc_offset_min * 60


def parse_logbook(block: bytes, utc_offset_min: int = 0) -> tuple[list[tuple[float, int, str]], int]:
    """The entries of a ``P.98`` answer block as (UTC seconds, event number, status) and the
    number of ``P.98`` lines that could not be read.  Line format (README 6.4):
    ``P.98(sYYMMDDhhmmss)(status)()(n)(id1)(unit1)...(idn)(unitn)(v1)...(vn)``; the event number
    is the value of id ``91.11.0``, else the first value."""
    out: list[tuple[float, int, str]] = []
    bad = 0
    for line in bytes(block).split(b"\r\n"):
        line = line.lstrip(b"\x02")
        if not line.startswith(b"P.98("):
            continue
        g = _GROUP.findall(line)
        try:
            n = int(g[3])
            ids = [x.decode("ascii") for x in g[4:4 + 2 * n:2]]
            values = g[4 + 2 * n:4 + 3 * n]
            if len(values) != n or n < 1:
                raise ValueError("entry has %d values for %d columns" % (len(values), n))
            code = int(values[ids.index("91.11.0")] if "91.11.0" in ids else values[0])
        except (IndexError, ValueError, UnicodeDecodeError):
            bad += 1
            continue
        t = _vdew_time(g[0], utc_offset_min)
        if t is None:
            bad += 1
            continue
        out.append((t, code, g[1].decode("ascii", "replace")))
    return out, bad


@dataclass
class _MeterState:
    period: float = 0.0                       # P.01 capture period (s), once seen
    profile_last: float | None = None         # newest interval end read (UTC s)
    first_channel: int | None = None          # OBIS of the first P.01 column
    events_from: float | None = None          # newest logbook entry read (UTC s)
    events_seen: set = field(default_factory=set)   # (time, code, status) at events_from


class IecDriver(Driver):
    name = "iec62056-21"
    complete = staticmethod(complete)

    def __init__(self, *, gateway_baud: int = 9600, bcc: str = "xor", utc_offset_min: int = 0) -> None:
        if gateway_baud not in _BAUD_CHAR:
            raise ValueError("gateway_baud must be one of %s" % sorted(_BAUD_CHAR))
        self.gateway_baud = gateway_baud
        self.bcc = bcc
        self.utc_offset_min = utc_offset_min
        self._state: dict[tuple, _MeterState] = {}

    def _meter_state(self, meter: MeterConfig) -> _MeterState:
        key = (meter.id or meter.name, meter.ip_address, meter.port,
               meter.serial.port if meter.serial else "", meter.connection_address)
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = _MeterState()
        return st

    def _baud_char(self, meter: MeterConfig) -> str:
        if meter.link == "serial" and meter.serial is not None:
            return _BAUD_CHAR.get(meter.serial.baudrate, "5")
        return _BAUD_CHAR[self.gateway_baud]

    @staticmethod
    def _readout_wanted(meter: MeterConfig) -> bool:
        reads = set(meter.reads)
        return bool(reads & {"energy", "instant", "clock"}) or not reads & {"profile", "events"}

    async def poll(self, lease: Lease, meter: MeterConfig, deadlines: Deadlines) -> PollResult:
        res = PollResult()
        st = self._meter_state(meter)
        if self._readout_wanted(meter):
            ident = await lease.exchange(iec.sign_on(meter.connection_address), complete, deadlines)
            iec.parse_identification(ident)  # raises FrameError on a malformed identification
            ack = iec.option_select(mode="readout", baud_char=self._baud_char(meter))
            sent = time.time()
            readout = await lease.exchange(ack, complete, deadlines)
            if readout[0] != STX:
                raise FrameError("the meter answered the option select with %r, not a data readout"
                                 % readout[:16], 0)
            res.frames.append(readout)
            res.requests.append(ack)
            res.received_at = time.time()
            if "clock" in meter.reads:
                self._check_clock(readout, meter, (sent + res.received_at) / 2, res)
        if "profile" in meter.reads or "events" in meter.reads:
            cursor = await self._programming(lease, meter, st, deadlines, res)
            # only a completed session moves the catch-up points
            st.profile_last, st.events_from, st.events_seen = cursor
            res.received_at = time.time()
        return res

    def _check_clock(self, readout: bytes, meter: MeterConfig, now: float, res: PollResult) -> None:
        t, d = _TIME.search(readout), _DATE.search(readout)
        if not (t and d):
            return
        try:
            clk = calendar.timegm((2000 + int(d[1]), int(d[2]), int(d[3]), int(t[1]), int(t[2]), int(t[3])))
        except (ValueError, OverflowError):
            return
        drift = clk - self.utc_offset_min * 60 - now
        if abs(drift) > meter.time_difference:
            res.events.append(EventRecord(now, EVENT_CLOCK_DRIFT, "meter clock off by %+.0f s (tolerance %d s)"
                                          % (drift, meter.time_difference)))

    # ---- programming mode ---------------------------------------------------------------------
    async def _programming(self, lease: Lease, meter: MeterConfig, st: _MeterState, deadlines: Deadlines,
                           res: PollResult) -> tuple:
        """One programming-mode session; returns the new (profile_last, events_from,
        events_seen)."""
        ident = await lease.exchange(iec.sign_on(meter.connection_address), complete, deadlines)
        iec.parse_identification(ident)
        prompt = await lease.exchange(iec.option_select(mode="programming", baud_char=self._baud_char(meter)),
                                      complete, deadlines)
        f = iec.parse_frame(prompt, bcc=self.bcc)
        if f.kind != "command" or f.command != "P0":
            raise FrameError("the meter answered the programming-mode select with %r, not a P0 prompt"
                             % prompt[:16], 0)
        cursor = (st.profile_last, st.events_from, set(st.events_seen))
        try:
            if meter.password:
                ans = await lease.exchange(iec.password(meter.password, bcc=self.bcc), complete, deadlines)
                if ans[:1] == bytes((NAK,)):
                    raise ProtocolExceptionError("P1 password refused by the meter (NAK)", 0, NAK)
                if ans != bytes((ACK,)):
                    raise FrameError("the meter answered the password with %r, not ACK" % ans[:16], 0)
            profile_last = cursor[0]
            if "profile" in meter.reads:
                profile_last, ok = await self._profile(lease, meter, st, deadlines, res)
                if not ok:
                    return profile_last, cursor[1], cursor[2]
            events = cursor[1:]
            if "events" in meter.reads:
                events = await self._logbook(lease, meter, st, deadlines, res)
            return (profile_last,) + tuple(events)
        finally:
            try:
                await lease.send(iec.break_session(bcc=self.bcc), deadlines)
            except (LinkError, OSError):
                pass   # the session is over either way; the meter times out of programming mode

    async def _answer(self, lease: Lease, request: bytes, deadlines: Deadlines) -> tuple[bytes, bool]:
        """The meter's answer to ``request``, partial blocks followed and joined; (frame, ok)
        with ok False when a block failed its BCC (that block is the frame)."""
        ans = await lease.exchange(request, complete, deadlines)
        if ans[:1] != bytes((STX,)):
            return ans, True
        payloads: list[bytes] = []
        for _ in range(MAX_BLOCKS):
            try:
                f = iec.parse_frame(ans, bcc=self.bcc)
            except ChecksumError:
                return ans, False
            payloads.append(bytes(f.payload))
            if not f.partial:
                break
            ans = await lease.exchange(bytes((ACK,)), complete, deadlines)
            if ans[:1] != bytes((STX,)):
                raise FrameError("expected the next partial block, got %r" % ans[:16], 0)
        else:
            raise FrameError("more than %d partial blocks in one answer" % MAX_BLOCKS, 0)
        if len(payloads) == 1:
            return ans, True
        body = b"".join(payloads) + bytes((ETX,))
        return bytes((STX,)) + body + bytes((iec.bcc_of(body, self.bcc),)), True

    def _local(self, t: float) -> dt.datetime:
        """Meter local time (naive) of UTC seconds t."""
        return dt.datetime.fromtimestamp(t + self.utc_offset_min * 60, dt.timezone.utc).replace(tzinfo=None)

    async def _profile(self, lease: Lease, meter: MeterConfig, st: _MeterState, deadlines: Deadlines,
                       res: PollResult) -> tuple[float | None, bool]:
        """The P.01 windows of this poll; (new catch-up point, False when a damaged answer ended
        the session's reads)."""
        last = st.profile_last
        ranges = plan_catchup(last, time.time(), period=st.period or 900.0, depth_days=meter.data_polling_length,
                              max_rows=96)[:MAX_PROFILE_CHUNKS]
        for after, upto in ranges:
            start = after if last is None or after > last else last
            req = iec.load_profile_request(self._local(start + 60), self._local(upto), profile=1, bcc=self.bcc)
            block, ok = await self._answer(lease, req, deadlines)
            if not ok:
                res.frames.append(block)
                res.requests.append(req)
                return last, False
            if block[:1] != bytes((STX,)) or b"(ERROR" in block:
                res.events.append(EventRecord(time.time(), EVENT_NO_DATA, "load profile P.01 %s..%s not read: the "
                                              "meter answered %r" % (self._local(start + 60), self._local(upto),
                                                                     block[:32])))
                return last, True
            try:
                rows = iec.decode(block, bcc=self.bcc, utc_offset_min=self.utc_offset_min)
            except FrameError:
                res.frames.append(block)   # the decoder reports what is wrong with it
                res.requests.append(req)
                return last, False
            if len(rows):
                res.frames.append(block)
                res.requests.append(req)
                newest = float(rows["ts"].max().astype("datetime64[ms]").astype(np.int64)) / 1000.0
                last = newest if last is None else max(last, newest)
                st.first_channel = int(rows["obis"][0])
                header = _P01_HEADER.search(block)
                if header:
                    st.period = float(header[1]) * 60.0
            else:
                last = upto if last is None else max(last, upto)
        return last, True

    async def _logbook(self, lease: Lease, meter: MeterConfig, st: _MeterState, deadlines: Deadlines,
                       res: PollResult) -> tuple[float | None, set]:
        """The P.98 entries after the newest one read, as events; the new (events_from,
        events_seen)."""
        now = time.time()
        since = st.events_from if st.events_from is not None else now - meter.data_polling_length * 86400.0
        req = iec.load_profile_request(self._local(since), None, profile=98, bcc=self.bcc)
        block, ok = await self._answer(lease, req, deadlines)
        if not ok:   # a damaged block: the decoder reports it (CHECKSUM); read again next poll
            res.frames.append(block)
            res.requests.append(req)
            return st.events_from, set(st.events_seen)
        if block[:1] != bytes((STX,)) or b"(ERROR" in block:
            res.events.append(EventRecord(now, EVENT_NO_DATA, "logbook P.98 not read: the meter answered %r"
                                          % block[:32]))
            return st.events_from, set(st.events_seen)
        entries, bad = parse_logbook(block, self.utc_offset_min)
        newest, seen = st.events_from, set(st.events_seen)
        for t, code, status in sorted(entries):
            if st.events_from is not None and (t < st.events_from or (t, code, status) in st.events_seen):
                continue
            if st.events_from is None and t < since:
                continue
            name = LOGBOOK_EVENTS.get(code, "event %d" % code)
            res.events.append(EventRecord(t, JOURNAL_CODE_BASE + code, "logbook P.98: %s (event %d, status %s)"
                                          % (name, code, status)))
            if newest is None or t > newest:
                newest, seen = t, set()
            if t == newest:
                seen.add((t, code, status))
        if bad:
            res.events.append(EventRecord(now, EVENT_NO_DATA, "logbook P.98: %d entries not understood" % bad))
        if newest is None:
            newest = since   # nothing yet: the next read starts where this one did
        return newest, seen

    # ---- engine hooks -------------------------------------------------------------------------
    def profile_obis(self, meter: MeterConfig) -> int | None:
        if "profile" not in meter.reads:
            return None
        first = self._meter_state(meter).first_channel
        return first if first is not None else PROFILE_OBIS

    def resume_profile(self, meter: MeterConfig, last_stored: float | None) -> None:
        st = self._meter_state(meter)
        if last_stored is not None and (st.profile_last is None or last_stored > st.profile_last):
            st.profile_last = last_stored

    def resume_events(self, meter: MeterConfig, last_stored: float | None) -> None:
        """The time (UTC s) of the newest logbook entry already stored, for an engine that
        seeds it from its event store before the first poll (this engine does not yet): the
        next read starts after that second."""
        st = self._meter_state(meter)
        if last_stored is not None and (st.events_from is None or last_stored + 1.0 > st.events_from):
            st.events_from = last_stored + 1.0
            st.events_seen = set()

    def expected_obis(self, meter: MeterConfig) -> list[int]:
        return list(READOUT_OBIS) if self._readout_wanted(meter) else []

    def decode_batch(self, frames: Sequence[bytes], requests: Sequence[Any], meter_ids: np.ndarray,
                     received_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return iec.decode_batch(list(frames), bcc=self.bcc, meter_ids=meter_ids, received_at=received_at,
                                utc_offset_min=self.utc_offset_min)
