"""Mercury 230/234 engine driver: one poll = test channel, open channel (the meter's password;
level 1, or level 2 when the meter may have its clock set), the reads of ``meter.reads``,
close channel.

Reads
-----
``energy``   05h array 0 (since reset), tariff 0 (sum) and 1..4: A+, A-, R+, R- in Wh / varh
``instant``  08 14 00 / 04 / 08 (P, Q, S: sum and L1..L3, 4-byte values), 08 16 30 (cos phi),
             08 16 11 (U L1..L3), 08 16 21 (I L1..L3), 08 11 40 (frequency)
``clock``    04 00 (meter time).  A drift beyond ``meter.time_difference`` (round trip not
             counted, :func:`~meterpoll.engine.clock.check_clock`) is an event; with
             ``meter.set_clock`` the clock is then set to the host's UTC time with ``03 0C``
             (8 BCD bytes sec, min, hour, weekday 1 = Monday, day, month, year, winter flag 1:
             the layout of the 04 00 answer, README 2.5), which needs access level 2: a meter
             with ``set_clock`` has its channel opened at level 2, so its ``password`` must be
             the level-2 (admin) password.  The write code 03h / parameter 0Ch is the Incotex
             command list's "set time"; no vector or capture of it was found: unverified
             against a meter (the ±4 min daily correction 03 0Dh, level 1, is not used).
``events``   04 01 00..09: the ten records of the power off/on journal (0.0.96.11.1.255, value 1
             = off stamp, 2 = on stamp, ts = the stamp); not in ``expected_obis`` (a failed
             poll records no NaN events)
``profile``  the main load profile (memory 3): ``08 12`` once per meter for the meter constant
             A (low nibble of the second answer byte: 0 = 5000, 1 = 25000, 2 = 1250, 3 = 500,
             4 = 1000, 5 = 250 imp/kWh), ``08 13`` for the newest record (address, status, time,
             period), then one ``06 <b17<<7 | 03> <addr hi> <addr lo> 0F`` per interval, oldest
             first, at most :data:`MAX_PROFILE_RECORDS` per poll.  Each record decodes (in the
             native batch) to 1.0.1.5.0.255 / 1.0.2.5.0.255 (average P+ / P- in W),
             1.0.3.5.0.255 / 1.0.4.5.0.255 (Q+ / Q- in var) at the record's own time, which is
             the END of its interval; incomplete slices (status bit 1) get quality METER_ERROR.
             Catch-up: the intervals after the newest stored one (``resume_profile``) and at
             most ``data_polling_length`` days back (0: only the newest), counted back from the
             ``08 13`` record on the meter's clock; records older than the ring
             (``profile_records``) are gone and skipped.  Profile channels are not in
             ``expected_obis``: a failed poll's NaN rows would move the store's resume point
             past intervals never read; the next poll catches up instead.

The load-profile address unit (README 2.6 / 6.2 leave it open)
-----------------------------------------------------------------
The ``08 13`` answer's two address bytes are read as a RECORD NUMBER first (byte address =
value x 16), because (1) the Incotex manual's worked example answers ``00 01`` and reads that
record at address ``0010h`` (vectors ``80 08 13`` / ``80 06 03 00 10 0F``), and (2) the 06h
request carries a 17th address bit (b17) for meters with 128 KiB of profile memory, which a
16-bit byte pointer could not reach, while a 13-bit record number x 16 needs exactly 17 bits.
Two public pollers disagree: one (a Pascal poller, index id 14655345632) uses the value as the
byte address itself and steps 16 bytes per record; another (Olejek88/escada, mercury230.cpp)
multiplies by 16 for some of its meters and not for others -- firmware differs.  So the unit
is not trusted blindly: once per meter the driver reads the record the pointer designates
under each reading (record number first; byte address only when the value is a multiple of
16) and keeps the one whose record carries the pointer's own time stamp (a pointer of 0 reads
the same both ways and settles nothing).  When neither does,
no profile is read and the poll carries an event (code 5).  The minute byte of the ``08 13``
answer is read with bit 7 masked (escada does; its meaning is not documented).

Events (``PollResult.events`` codes): 2 clock drift, 3 clock set, 4 clock set refused (meter
status), 5 profile pointer not understood (profile not read), 6 a profile record is stamped
with another time than expected (memory not contiguous, e.g. after an outage or a clock set;
its readings keep the record's own time).

Framing: a Mercury answer has no length field; its length follows from the request (the codec's
layout table: 1 address byte + data + 2 CRC bytes), or it is the 4-byte status answer
(``address status CRC``) when the meter refuses.  :func:`complete_for` builds that ``complete``
per exchange; :func:`complete_any` (the driver's ``complete``, for raw exchanges) ends a frame at
the first CRC match.

Passwords: non-D meters take the six digits as binary bytes (default), D meters as ASCII
(``MercuryDriver(ascii_password=True)``).  An empty ``meter.password`` means the factory
default ``111111`` (``222222`` at level 2).  Meter clocks are taken as UTC, as the codec
stores them.
"""
from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from meterpoll.bindings import mercury as merc
from meterpoll.bindings.checksums import crc16_modbus
from meterpoll.bindings.errors import FrameError, ProtocolExceptionError
from meterpoll.bindings.readings import obis as _obis
from meterpoll.engine.catchup import plan_catchup
from meterpoll.engine.clock import check_clock
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.driver import Driver, EventRecord, PollResult
from meterpoll.engine.link import Lease
from meterpoll.engine.transport import Complete, Deadlines
from meterpoll.ext import _mercury

__all__ = ["MercuryDriver", "complete_for", "complete_any", "plan", "set_time_request", "METER_CONSTANTS",
           "MAX_PROFILE_RECORDS"]

DEFAULT_PASSWORD = {1: "111111", 2: "222222"}
_CLOCK_OBIS = 0x0000010000FF  # 0.0.1.0.0.255
PROFILE_OBIS = _obis("1.0.1.5.0.255")  # average P+ of an interval: where catch-up resumes
EVENT_CLOCK_DRIFT = 2
EVENT_CLOCK_SET = 3
EVENT_CLOCK_SET_REFUSED = 4
EVENT_PROFILE_POINTER = 5
EVENT_PROFILE_GAP = 6

#: code in the low nibble of the 08 12 answer's second byte -> meter constant A (imp/kWh).
#: Source: the public Pascal poller (index id 14655345632); Olejek88/escada mercury230.cpp has
#: the same 0, 1, 2 and 5 and marks its own values for 3 and 4 as doubtful.  Not in the vectors.
METER_CONSTANTS = {0: 5000, 1: 25000, 2: 1250, 3: 500, 4: 1000, 5: 250}
#: profile records read per poll (catch-up continues at the next poll)
MAX_PROFILE_RECORDS = 240
RECORD_SIZE = 16


def _crc_ok(buf, n: int) -> bool:
    return crc16_modbus(bytes(buf[: n - 2])) == (buf[n - 2] | buf[n - 1] << 8)


def _with_crc(body: bytes) -> bytes:
    return body + crc16_modbus(body).to_bytes(2, "little")


def _complete_len(addr: int, dlen: int) -> Complete:
    """``complete`` for an answer of ``dlen`` data bytes (0: unknown length), or the 4-byte
    status answer (recognised by its CRC and a status byte 00..0F / 80..8F)."""
    full = 3 + dlen if dlen > 0 else 0

    def complete(buf: bytearray) -> int:
        n = len(buf)
        if addr and buf[0] != addr:
            return -1
        if n >= 4 and (full == 4 or (buf[1] & 0x70) == 0 and _crc_ok(buf, 4)):
            return 4
        if full:
            return full if n >= full else 0
        return complete_any(buf)

    return complete


def complete_for(req: merc.Request) -> Complete:
    """``complete`` for the answer to ``req``: its layout's length, or the 4-byte status answer
    (recognised by its CRC and a status byte 00..0F / 80..8F)."""
    return _complete_len(req.address, _mercury.layout(req.address, req.code, req.p1, req.p2, req.aux)["dlen"])


def complete_any(buf: bytearray) -> int:
    """Best effort for an answer to an unknown request: the shortest prefix with a valid CRC."""
    n = len(buf)
    for k in range(4, min(n, 258) + 1):
        if _crc_ok(buf, k):
            return k
    return -1 if n > 258 else 0


def plan(address: int, reads: Sequence[str]) -> list[merc.Request]:
    """The fixed data requests of one poll for ``reads`` (the profile reads depend on the
    meter's pointer and are planned during the poll)."""
    out: list[merc.Request] = []
    if "energy" in reads:
        out += [merc.read_energy(address, merc.EnergyArray.SINCE_RESET, tariff=t) for t in range(5)]
    if "instant" in reads:
        out += [merc.read_aux(address, "power", param=0x14, power=k) for k in "PQS"]
        out += [merc.read_aux(address, "power_factor", param=0x16),
                merc.read_aux(address, "voltage", param=0x16),
                merc.read_aux(address, "current", param=0x16),
                merc.read_aux(address, "frequency", 0, param=0x11)]
    if "clock" in reads:
        out.append(merc.read_time(address))
    if "events" in reads:
        out += [merc.read_journal(address, 1, r) for r in range(10)]
    return out


def _bcd(v: int) -> int:
    return (v // 10) << 4 | (v % 10)


def _unbcd(b: int) -> int:
    """A packed BCD byte's value, -1 when a nibble is not a digit."""
    return (b >> 4) * 10 + (b & 15) if b >> 4 <= 9 and b & 15 <= 9 else -1


def set_time_request(address: int, t: float) -> bytes:
    """``AA 03 0C`` + sec, min, hour, weekday (1 = Monday), day, month, year (BCD) + winter flag
    (1; the meter clock is kept on UTC here) + CRC: set the meter clock to UTC time ``t``."""
    tm = time.gmtime(int(t))
    return _with_crc(bytes((address, 3, 0x0C, _bcd(tm.tm_sec), _bcd(tm.tm_min), _bcd(tm.tm_hour), tm.tm_wday + 1,
                            _bcd(tm.tm_mday), _bcd(tm.tm_mon), _bcd(tm.tm_year % 100), 1)))


def _stamp(d: bytes) -> float | None:
    """UTC seconds of BCD hour, minute (bit 7 masked), day, month, year; None if impossible."""
    h, mi, dd, mo, y = _unbcd(d[0]), _unbcd(d[1] & 0x7F), _unbcd(d[2]), _unbcd(d[3]), _unbcd(d[4])
    if min(h, mi, dd, mo, y) < 0 or h > 23 or mi > 59 or not 1 <= mo <= 12 or not 1 <= dd <= 31:
        return None
    t = calendar.timegm((2000 + y, mo, dd, h, mi, 0))
    return float(t) if time.gmtime(t).tm_mday == dd else None


@dataclass
class _Pointer:
    """The ``08 13`` answer: the newest record's address value, status, time (UTC s), period."""

    value: int
    status: int
    time: float
    period_min: int


def _parse_pointer(ans: bytes, addr: int) -> _Pointer:
    f = merc.parse_frame(ans)   # raises ChecksumError / TruncatedFrameError
    if addr and f.address != addr:
        raise FrameError("08 13 answer from address %d, asked %d" % (f.address, addr), 0)
    p = bytes(f.payload)
    if len(p) == 1:
        code = p[0] & 0x0F
        raise ProtocolExceptionError("profile pointer (08 13) refused by meter %d: status %d (%s)"
                                     % (addr, code, merc.STATUS_CODES.get(code, "unknown status")), 1, code)
    if len(p) != 9:
        raise FrameError("an 08 13 answer has 9 data bytes, got %d" % len(p), 1)
    t = _stamp(p[3:8])
    if t is None or p[8] == 0 or 1440 % p[8]:
        raise FrameError("08 13 answer with an impossible time or period: %s" % p.hex(" "), 4)
    return _Pointer(p[0] << 8 | p[1], p[2], t, p[8])


def _record_time(ans: bytes) -> float | None:
    """The time stamped in a one-record 06h answer (None: a status answer or not a record)."""
    if len(ans) != 18:
        return None
    return _stamp(ans[2:7])


def _record_request(addr: int, byte_address: int, constant: int) -> merc.Request:
    """One 15-byte main-profile record at ``byte_address`` (0..0x1FFFF; bit 16 goes into b17,
    bit 7 of the memory byte)."""
    if byte_address <= 0xFFFF:
        return merc.read_profile_record(addr, byte_address, constant=constant)
    lo = byte_address & 0xFFFF
    body = bytes((addr, 6, 0x83, lo >> 8, lo & 0xFF, 0x0F))
    return merc.Request("profile_record", {"offset": byte_address, "constant": constant}, addr, 6, 0x83, 0x0F,
                        body, constant)


def _address(meter: MeterConfig) -> int:
    return int(meter.connection_address or "0", 0)


@dataclass
class _MeterState:
    constant: int | None = None          # meter constant A, from 08 12
    unit: str | None = None              # "record" or "byte": how the 08 13 address reads
    profile_last: float | None = None    # end time of the newest interval read (meter clock)


class MercuryDriver(Driver):
    """``ascii_password``: D meters; ``level``: access level of a session without clock
    setting; ``profile_records``: records in the meter's profile ring (4096 = 64 KiB, Mercury
    230; 8192 for a meter with the 17-bit profile memory)."""

    name = "mercury"
    complete = staticmethod(complete_any)

    def __init__(self, *, ascii_password: bool = False, level: int = 1, profile_records: int = 4096) -> None:
        if not 1 <= profile_records <= 0x20000 // RECORD_SIZE:
            raise ValueError("profile_records must be 1..8192")
        self.ascii_password = ascii_password
        self.level = level
        self.profile_records = profile_records
        self._state: dict[tuple, _MeterState] = {}

    def _meter_state(self, meter: MeterConfig) -> _MeterState:
        key = (meter.id or meter.name, meter.ip_address, meter.port,
               meter.serial.port if meter.serial else "", meter.connection_address)
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = _MeterState()
        return st

    async def _session(self, lease: Lease, req: merc.Request, deadlines: Deadlines, what: str) -> None:
        """A session-control exchange: the status answer must be OK."""
        ans = await lease.exchange(req.encode(), complete_for(req), deadlines)
        try:
            merc.decode(ans, request=req)
        except ProtocolExceptionError as e:
            reason = merc.STATUS_CODES.get(e.code, "unknown status")
            if req.kind == "open":
                raise ProtocolExceptionError(
                    "open channel level %d refused by meter %d: status %d (%s): wrong password?"
                    % (req.params["level"], req.address, e.code, reason), e.offset, e.code) from None
            raise ProtocolExceptionError("%s refused by meter %d: status %d (%s)"
                                         % (what, req.address, e.code, reason), e.offset, e.code) from None

    async def poll(self, lease: Lease, meter: MeterConfig, deadlines: Deadlines) -> PollResult:
        addr = _address(meter)
        st = self._meter_state(meter)
        res = PollResult()
        level = 2 if meter.set_clock else self.level
        await self._session(lease, merc.test_channel(addr), deadlines, "test channel")
        await self._session(lease, merc.open_channel(addr, level, meter.password or DEFAULT_PASSWORD[level],
                                                     ascii=self.ascii_password), deadlines, "open channel")
        for req in plan(addr, meter.reads):
            sent = time.time()
            ans = await lease.exchange(req.encode(), complete_for(req), deadlines)
            received = time.time()
            if len(ans) == 4 and req.code > 2:
                # the meter refused a data read: say why (the frame would only decode as an error)
                merc.decode(ans, request=req)
            res.frames.append(ans)
            res.requests.append(req)
            if req.kind == "time":
                await self._clock(lease, ans, req, meter, sent, received, deadlines, res)
        profile_last = st.profile_last
        if "profile" in meter.reads:
            profile_last = await self._profile(lease, addr, meter, st, deadlines, res)
        await self._session(lease, merc.close_channel(addr), deadlines, "close channel")
        res.received_at = time.time()
        st.profile_last = profile_last   # only a completed session moves the catch-up point
        return res

    # ---- clock ------------------------------------------------------------------------------
    async def _clock(self, lease: Lease, ans: bytes, req: merc.Request, meter: MeterConfig, sent: float,
                     received: float, deadlines: Deadlines, res: PollResult) -> None:
        try:
            r = merc.decode(ans, request=req)
        except ValueError:
            return  # the batch decode reports the frame
        clk = r[r["obis"] == _CLOCK_OBIS]
        if not len(clk):
            return
        c = check_clock(float(clk["value"][0]), sent, received, time_difference=meter.time_difference,
                        set_enabled=meter.set_clock)
        if not c.exceeded:
            return
        res.events.append(EventRecord(received, EVENT_CLOCK_DRIFT, "meter clock off by %+.0f s (tolerance %d s)"
                                      % (c.drift, meter.time_difference)))
        if not c.set_clock:
            return
        ans = await lease.exchange(set_time_request(req.address, time.time()), _complete_len(req.address, 1),
                                   deadlines)
        f = merc.parse_frame(ans)   # a damaged answer fails the poll (ChecksumError)
        code = f.status_code
        if code == 0:
            res.events.append(EventRecord(time.time(), EVENT_CLOCK_SET, "clock set"))
        else:
            reason = merc.STATUS_CODES.get(code, "unknown status") if code is not None else "not a status answer"
            res.events.append(EventRecord(time.time(), EVENT_CLOCK_SET_REFUSED,
                                          "clock set refused: status %s (%s)" % (code, reason)))

    # ---- load profile ----------------------------------------------------------------------
    async def _profile(self, lease: Lease, addr: int, meter: MeterConfig, st: _MeterState,
                       deadlines: Deadlines, res: PollResult) -> float | None:
        """Read the profile records this poll catches up; returns the new catch-up point."""
        if st.constant is None:
            ans = await lease.exchange(_with_crc(bytes((addr, 8, 0x12))), _complete_len(addr, 6), deadlines)
            f = merc.parse_frame(ans)
            if f.is_status:
                raise ProtocolExceptionError("variant (08 12) refused by meter %d: status %d (%s)" % (
                    addr, f.status_code, merc.STATUS_CODES.get(f.status_code, "unknown status")), 1, f.status_code)
            code = f.payload[1] & 0x0F
            if code not in METER_CONSTANTS:
                raise FrameError("08 12 answer names an unknown meter constant code %d" % code, 2)
            st.constant = METER_CONSTANTS[code]
        ptr_req = merc.read_profile_pointer(addr)
        ptr = _parse_pointer(await lease.exchange(ptr_req.encode(), _complete_len(addr, 9), deadlines), addr)
        unit = st.unit
        if unit is None:
            unit = await self._address_unit(lease, addr, ptr, st.constant, deadlines)
            if unit is not None and ptr.value != 0:
                st.unit = unit   # a pointer 0 reads the same both ways (and so do its records): decide later
            if unit is None:
                res.events.append(EventRecord(time.time(), EVENT_PROFILE_POINTER,
                                              "profile not read: no record at the 08 13 pointer 0x%04X carries its "
                                              "time %s (read as record number or as byte address)"
                                              % (ptr.value, time.strftime("%Y-%m-%d %H:%M", time.gmtime(ptr.time)))))
                return st.profile_last
        period = ptr.period_min * 60.0
        ranges = plan_catchup(st.profile_last, ptr.time, period=period, depth_days=meter.data_polling_length,
                              max_rows=MAX_PROFILE_RECORDS)
        ends = []
        for after, upto in ranges:
            t = after + period
            while t <= upto + 1e-6 and len(ends) < MAX_PROFILE_RECORDS:
                ends.append(t)
                t += period
        last = st.profile_last
        gap_reported = False
        for t in ends:
            back = int(round((ptr.time - t) / period))
            if back >= self.profile_records:
                continue   # overwritten in the ring
            req = _record_request(addr, self._record_address(ptr.value, unit, back), st.constant)
            ans = await lease.exchange(req.encode(), complete_for(req), deadlines)
            if len(ans) == 4:
                merc.decode(ans, request=req)   # a refusal fails the poll with the meter's status
            res.frames.append(ans)
            res.requests.append(req)
            stamp = _record_time(ans)
            if stamp is not None and stamp != t and not gap_reported:
                gap_reported = True
                res.events.append(EventRecord(time.time(), EVENT_PROFILE_GAP,
                                              "profile record %d back from the newest is stamped %s, expected %s"
                                              % (back, time.strftime("%Y-%m-%d %H:%M", time.gmtime(stamp)),
                                                 time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)))))
            last = t
        return last

    def _record_address(self, value: int, unit: str, back: int) -> int:
        """Byte address of the record ``back`` records before the newest (ring of
        ``profile_records``)."""
        if unit == "record":
            return ((value - back) % self.profile_records) * RECORD_SIZE
        return (value - back * RECORD_SIZE) % (self.profile_records * RECORD_SIZE)

    async def _address_unit(self, lease: Lease, addr: int, ptr: _Pointer, constant: int,
                            deadlines: Deadlines) -> str | None:
        """"record" or "byte": the reading of the 08 13 address whose record carries the
        pointer's time (see the module notes), None when neither does."""
        for unit, byte_address in (("record", ptr.value * RECORD_SIZE), ("byte", ptr.value)):
            if unit == "byte" and ptr.value % RECORD_SIZE:
                continue   # not the start of a 16-byte record
            if byte_address + RECORD_SIZE > 0x20000:
                continue   # beyond the 17-bit address space
            req = _record_request(addr, byte_address, constant)
            ans = await lease.exchange(req.encode(), complete_for(req), deadlines)
            merc.parse_frame(ans)   # a damaged answer fails the poll (the next poll retries)
            if _record_time(ans) == ptr.time:
                return unit
        return None

    def profile_obis(self, meter: MeterConfig) -> int | None:
        return PROFILE_OBIS if "profile" in meter.reads else None

    def resume_profile(self, meter: MeterConfig, last_stored: float | None) -> None:
        st = self._meter_state(meter)
        if last_stored is not None and (st.profile_last is None or last_stored > st.profile_last):
            st.profile_last = last_stored

    def expected_obis(self, meter: MeterConfig) -> list[int]:
        out: list[int] = []
        for req in plan(_address(meter), meter.reads):
            if req.kind == "journal":
                continue
            out += _mercury.layout(req.address, req.code, req.p1, req.p2, req.aux)["obis"]
        return out

    def decode_batch(self, frames: Sequence[bytes], requests: Sequence[Any], meter_ids: np.ndarray,
                     received_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return merc.decode_batch(list(frames), requests=list(requests), meter_ids=meter_ids,
                                 received_at=received_at)
