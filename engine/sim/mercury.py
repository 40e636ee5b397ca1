"""A simulated Mercury 230/234 meter (or an RS-485 gateway with several behind it).

Requests are framed by their code (the protocol has no length field; see :func:`request_length`),
checked with the codec (``parse_request``: CRC and known layout) and answered from a
:class:`MeterModel` per bus address (``seed + address``).

Answer builders: the codec only decodes answers, so the byte orders live here, written from the
codec's layout table (``_mercury.layout``: OBIS, encoding, scale, sign of each value) and
cross-checked in the tests by decoding every built answer with the codec:

* energy (05h array 0 / 6, 08 14 Fx): 4 bytes ``[2][1][4][3]``, 1 Wh / varh
* auxiliary 3-byte values ``[1][3][2]``, direction bits 7 (active) / 6 (reactive) of the first
* 4-byte power (08 14 0x) ``[2][1][4][3]``, direction bits in the second byte
* time (04 00): BCD sec, min, hour, weekday, day, month, year, winter flag
* journal records (04 J R): two 6-byte BCD stamps sec, min, hour, day, month, year; journal 01
  (power off first, then on) comes from the model's events, record R = the R-th most recent

Load profile (memory 3, the main average-power profile): one 16-byte record per interval
(``profile_period_min``, default 30) in a ring of ``profile_records`` records (default 4096 =
64 KiB, a Mercury 230; 8192 uses the 17th address bit b17 of the 06h request).  A record is
15 data bytes -- status, hour, minute, day, month, year (BCD), period (min), P+, P-, Q+, Q-
(u16 little endian, N = 2 * A * energy kWh of the interval, A = the meter constant) -- and one
unused byte (00).  The record time is the END of its interval (meter clock, stamped as UTC);
status = tariff (bits 6..5) | winter (bit 3) | memory initialised (bit 2) | incomplete slice
(bit 1, set when a power cut of the model's journal falls in the interval).  The interval
ending at t sits in slot ``(t / period + profile_slot_offset) mod profile_records``.
``08 13`` answers the newest closed record: its address, status, time (BCD hour, minute, day,
month, year), period.  What the address is depends on ``profile_pointer``: ``"record"`` (the
record number, x 16 = byte address: the Incotex manual's example ``00 01`` = address 0010h) or
``"byte"`` (the byte address itself: a public Pascal poller's reading; see the driver).
``06 <b17<<7 | 3> <addr hi> <addr lo> <count>`` answers ``count`` raw bytes of that memory
(count 1..254; kind nibble 0 only); outside the memory: status 1.  ``08 12`` (variant) answers 6
bytes whose second byte's low nibble is the meter constant code (0 = 5000, 1 = 25000, 2 = 1250,
3 = 500, 4 = 1000, 5 = 250 imp/kWh); the other bits are 0 here.

Clock: ``03 0C`` + 8 BCD bytes (sec, min, hour, weekday, day, month, year, winter flag) sets
the clock; it needs the channel open at level 2 (status 3 otherwise).  Each set is logged in
journal 02 (clock corrections: the old and the new time).

Access: ``test`` always answers; ``open`` level 1 checks ``password``, level 2 ``admin_password``
(a wrong one is answered with status 3, "access level insufficient", and closes the channel);
every other request needs an open channel (status 5 "channel not open" otherwise).  The channel
stays open 240 s after the last valid request, per meter address.  Requests the simulator does
not serve get status 1 ("invalid command or parameter").  Address 0 (universal) is answered only
when one meter sits behind the port; 254 (broadcast) never.
"""
from __future__ import annotations

import calendar
import math
import time

from meterpoll.bindings import mercury as merc
from meterpoll.bindings.checksums import crc16_modbus
from meterpoll.bindings.errors import FrameError
from meterpoll.engine.sim.model import MeterModel
from meterpoll.engine.sim.server import Answerer
from meterpoll.ext import _mercury

__all__ = ["MercurySim", "request_length", "energy_bytes", "u24_bytes", "p32_bytes", "time_bytes",
           "stamp_bytes", "power_journal", "build_answer", "profile_record_bytes", "CONSTANT_CODES"]

CHANNEL_TIMEOUT = 240.0

#: meter constant A (impulses per kWh) -> its code in the low nibble of the 08 12 answer's
#: second byte (as in the driver: see METER_CONSTANTS there for the sources)
CONSTANT_CODES = {5000: 0, 25000: 1, 1250: 2, 500: 3, 1000: 4, 250: 5}
PROFILE_RECORD_SIZE = 16

# layout encodings (ext/_mercury.pxd ME_*)
_ME_U24, _ME_P32, _ME_E32, _ME_U16LE, _ME_S16BE = 1, 2, 3, 4, 5
_MS_ACTIVE, _MS_REACTIVE = 1, 2


def _frame(body: bytes) -> bytes:
    return body + crc16_modbus(body).to_bytes(2, "little")


def request_length(buf: bytearray) -> int:
    """Length of the request at the start of ``buf`` (0 = need more).  The length follows from
    the code and the first parameter; an unknown code is framed by the first CRC match."""
    n = len(buf)
    if n < 2:
        return 0
    code = buf[1]
    if code in (0, 2):
        want = 4
    elif code == 1:
        want = 11
    elif code in (5, 0x15):
        want = 6
    elif code == 3:
        if n < 3:
            return 0
        if buf[2] == 0x0C:   # set time: 8 BCD bytes
            want = 13
        else:
            for k in range(4, min(n, 24) + 1):
                if crc16_modbus(bytes(buf[: k - 2])) == (buf[k - 2] | buf[k - 1] << 8):
                    return k
            return 0 if n < 24 else -1
    elif code == 6:
        want = 8
    elif code in (4, 8):
        if n < 3:
            return 0
        if code == 4:
            want = 5 if buf[2] == 0 else 6
        else:
            want = 6 if buf[2] in (0x11, 0x14, 0x16) else 5
    else:
        for k in range(4, min(n, 16) + 1):
            if crc16_modbus(bytes(buf[: k - 2])) == (buf[k - 2] | buf[k - 1] << 8):
                return k
        return 0 if n < 16 else -1
    return want if n >= want else 0


# ---------------------------------------------------------------------------- byte orders

def energy_bytes(v: float) -> bytes:
    """4-byte energy value, wire order [2][1][4][3] (1 = most significant)."""
    raw = max(0, min(0xFFFFFFFE, int(round(v))))
    return bytes(((raw >> 16) & 0xFF, (raw >> 24) & 0xFF, raw & 0xFF, (raw >> 8) & 0xFF))


def u24_bytes(v: float, scale: float, sign: int = 0) -> bytes:
    """3-byte value, wire order [1][3][2], 22-bit magnitude, direction bits in the first byte."""
    raw = min(0x3FFFFF, int(round(abs(v) / scale)))
    bits = 0
    if v < 0 and raw:
        bits = 0x80 if sign == _MS_ACTIVE else (0x40 if sign == _MS_REACTIVE else 0)
    return bytes((((raw >> 16) & 0x3F) | bits, raw & 0xFF, (raw >> 8) & 0xFF))


def p32_bytes(v: float, scale: float, sign: int = 0) -> bytes:
    """4-byte power value (08 14), wire order [2][1][4][3], direction bits in the second byte."""
    raw = min(0x3FFFFFFF, int(round(abs(v) / scale)))
    bits = 0
    if v < 0 and raw:
        bits = 0x80 if sign == _MS_ACTIVE else (0x40 if sign == _MS_REACTIVE else 0)
    return bytes(((raw >> 16) & 0xFF, ((raw >> 24) & 0x3F) | bits, raw & 0xFF, (raw >> 8) & 0xFF))


def _bcd(v: int) -> int:
    return (v // 10) << 4 | (v % 10)


def time_bytes(t: float, winter: bool = True) -> bytes:
    """8 BCD bytes sec, min, hour, weekday (1 = Monday), day, month, year, winter flag of the
    wall-clock time ``t`` (the simulated meter keeps UTC as its local time)."""
    tm = time.gmtime(int(t))
    return bytes((_bcd(tm.tm_sec), _bcd(tm.tm_min), _bcd(tm.tm_hour), tm.tm_wday + 1, _bcd(tm.tm_mday),
                  _bcd(tm.tm_mon), _bcd(tm.tm_year % 100), 1 if winter else 0))


# ---------------------------------------------------------------------------- values

def _obis_value(model: MeterModel, t: float, obis: int, cache: dict) -> float | None:
    """The model's value of one Mercury OBIS channel at time t (base units), None = unknown."""
    a, b, c, d, e, f = ((obis >> s) & 0xFF for s in (40, 32, 24, 16, 8, 0))
    if a == 0:
        if (c, d) == (96, 9):
            return 25.0
        return None
    if d == 8 and f == 255:
        if "energy" not in cache:
            cache["energy"] = model.energy_by_tariff(t)
        if e > 4:
            return None
        ap = cache["energy"][e]
        tan = math.tan(math.acos(model.power_factor))
        if c == 1:
            return ap
        if c == 3:
            return ap * tan
        if c in (2, 4):
            return 0.0
        if c in (21, 41, 61):  # A+ per phase (array 6): the model's phase split
            return ap * model._phase_split[(c - 21) // 20]
        return None
    if d != 7:
        return None
    if "inst" not in cache:
        cache["inst"] = model.instant(t)
    inst = cache["inst"]
    ph = inst["phases"]
    if c in (1, 3, 9, 13):
        key = {1: "active_power", 3: "reactive_power", 9: "apparent_power", 13: "power_factor"}[c]
        return inst[key]
    if c in (21, 41, 61, 23, 43, 63, 29, 49, 69, 33, 53, 73, 32, 52, 72, 31, 51, 71):
        k = {21: 0, 41: 1, 61: 2, 23: 0, 43: 1, 63: 2, 29: 0, 49: 1, 69: 2, 33: 0, 53: 1, 73: 2,
             32: 0, 52: 1, 72: 2, 31: 0, 51: 1, 71: 2}[c]
        if e == 124:
            return 1.5  # voltage THD %
        key = {1: "active_power", 3: "reactive_power", 9: "apparent_power", 13: "power_factor",
               12: "voltage", 11: "current"}[c % 20]
        return ph[k][key]
    if c == 14:
        return inst["frequency"]
    if c == 81:
        return {1: 120.0, 2: 240.0, 12: 120.0}.get(e)
    if c == 128:
        v = [p["voltage"] for p in ph]
        i, j = {1: (0, 1), 2: (1, 2), 3: (2, 0)}.get(e, (0, 1))
        return math.sqrt(v[i] ** 2 + v[j] ** 2 + v[i] * v[j])
    return None


def stamp_bytes(t: float) -> bytes:
    """6 BCD bytes sec, min, hour, day, month, year of a journal stamp."""
    tm = time.gmtime(int(t))
    return bytes((_bcd(tm.tm_sec), _bcd(tm.tm_min), _bcd(tm.tm_hour), _bcd(tm.tm_mday), _bcd(tm.tm_mon),
                  _bcd(tm.tm_year % 100)))


#: how far back the power on/off journal looks for its ten records
JOURNAL_DAYS = 400


def power_journal(model: MeterModel, t: float) -> list[tuple[float, float | None]]:
    """The (power failure, restoration or None) pairs of journal 01, most recent first, at most
    ten, true times (the meter stamps them with its own clock)."""
    pairs: list[tuple[float, float | None]] = []
    for tt, code, _text in model.events(t - JOURNAL_DAYS * 86400, t):
        if code == 1:
            pairs.append((tt, None))
        elif code == 2 and pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], tt)
    return pairs[::-1][:10]


def profile_record_bytes(model: MeterModel, end: float, period_min: int, constant: int) -> bytes:
    """The 15 data bytes of the load-profile record of the interval ending at ``end`` (meter
    clock): status, BCD hour, minute, day, month, year, period (min), then P+, P-, Q+, Q- as
    u16 little endian counts N = 2 * A * kWh (A = ``constant``, impulses per kWh), so that
    N * (60 / T) / (2 * A) is the average kW / kvar over the T-minute interval (manual 2.6)."""
    period = period_min * 60.0
    active, reactive = model.interval_energy(end, period)
    status = ((model.tariff_at(end - 1.0) - 1) << 5) | 0x08 | 0x04
    if model.power_cut_in(end - period, end):
        status |= 0x02
    tm = time.gmtime(int(end))

    def counts(wh: float) -> bytes:
        return min(0xFFFE, int(round(wh * 2 * constant / 1000.0))).to_bytes(2, "little")

    return (bytes((status, _bcd(tm.tm_hour), _bcd(tm.tm_min), _bcd(tm.tm_mday), _bcd(tm.tm_mon),
                   _bcd(tm.tm_year % 100), period_min))
            + counts(active) + counts(0.0) + counts(reactive) + counts(0.0))


def build_answer(model: MeterModel, req: merc.Request, t: float, address: int,
                 clock_offset: float = 0.0) -> bytes | None:
    """Data answer (address + data + CRC) to a data request from the model at time t, or None
    when the simulator has no answer for it (the caller answers status 1).  ``clock_offset``:
    seconds added to the model's clock by clock sets."""
    L = _mercury.layout(req.address, req.code, req.p1, req.p2, req.aux)
    kind = L["kind"]
    cache: dict = {}
    if kind == _mercury.MK_TIME:
        data = time_bytes(model.clock(t) + clock_offset)
    elif kind == _mercury.MK_JOURNAL:
        # journal 01 (power off / on) from the model's events, record r = the r-th most recent;
        # the other two-stamp journals are empty (all-zero records)
        data = bytes(12)
        if req.p1 == 1:
            pairs = power_journal(model, t)
            if req.p2 < len(pairs):
                off, on = pairs[req.p2]
                data = stamp_bytes(model.clock(off)) + (stamp_bytes(model.clock(on)) if on is not None else bytes(6))
    elif kind == _mercury.MK_SERIAL:
        s = int(model.serial[-8:])
        data = bytes((s // 1000000 % 100, s // 10000 % 100, s // 100 % 100, s % 100, 1, 1, 23))
    elif kind == _mercury.MK_VERSION:
        data = bytes((9, 1, 0))
    elif kind in (_mercury.MK_ENERGY, _mercury.MK_AUX):
        out = bytearray()
        for obis in L["obis"]:
            v = _obis_value(model, t, obis, cache)
            if v is None:
                return None
            enc = L["enc"]
            if enc == _ME_E32:
                out += energy_bytes(v)
            elif enc == _ME_U24:
                out += u24_bytes(v, L["scale"], L["sign"])
            elif enc == _ME_P32:
                out += p32_bytes(v, L["scale"], L["sign"])
            elif enc == _ME_U16LE:
                out += int(round(v / L["scale"])).to_bytes(2, "little")
            elif enc == _ME_S16BE:
                out += int(round(v)).to_bytes(2, "big", signed=True)
            else:
                return None
        data = bytes(out)
    else:
        return None
    return _frame(bytes((address,)) + data)


# ---------------------------------------------------------------------------- the meter

class MercurySim(Answerer):
    """Mercury 230/234 meters behind one port.  ``password`` / ``admin_password``: six digits;
    ``ascii``: the meter takes the password as ASCII digits (D meters) instead of binary."""

    def __init__(self, addresses=(1,), seed: int = 0, password: str = "111111", *,
                 admin_password: str = "222222", ascii: bool = False, clock_drift_ppm: float = 0.0,
                 constant: int = 1000, profile_period_min: int = 30, profile_records: int = 4096,
                 profile_pointer: str = "record", profile_slot_offset: int = 0) -> None:
        self.addresses = tuple(int(a) for a in addresses)
        for a in self.addresses:
            if not 1 <= a <= 240:
                raise ValueError("Mercury meter addresses are 1..240, got %d" % a)
        if constant not in CONSTANT_CODES:
            raise ValueError("meter constant must be one of %s" % sorted(CONSTANT_CODES))
        if profile_pointer not in ("record", "byte"):
            raise ValueError("profile_pointer is 'record' or 'byte'")
        limit = 0x10000 if profile_pointer == "byte" else 0x20000   # 16-bit pointer / 17-bit address
        if not 1 <= profile_records * PROFILE_RECORD_SIZE <= limit:
            raise ValueError("profile_records must fit %d bytes of profile memory" % limit)
        if not 1 <= profile_period_min <= 60 or 1440 % profile_period_min:
            raise ValueError("profile_period_min must divide a day (1..60)")
        self.constant = constant
        self.profile_period_min = profile_period_min
        self.profile_records = profile_records
        self.profile_pointer = profile_pointer
        self.profile_slot_offset = profile_slot_offset
        self.models = {a: MeterModel(seed=seed + a, clock_drift_ppm=clock_drift_ppm) for a in self.addresses}
        #: seconds added to a meter's clock by 03 0C sets, and its journal 02 (old, new) pairs
        self.clock_offset: dict[int, float] = {a: 0.0 for a in self.addresses}
        self.clock_sets: dict[int, list[tuple[float, float]]] = {a: [] for a in self.addresses}
        self._pw = {1: self._pw_bytes(password, ascii), 2: self._pw_bytes(admin_password, ascii)}
        self._open: dict[int, tuple[int, float]] = {}   # address -> (level, expires monotonic)
        #: (address, request bytes without CRC) -> the `now` its last data answer was built at
        self.answered_at: dict[tuple[int, bytes], float] = {}
        self.log: list[tuple[int, str, int]] = []        # (address, request kind, status or -1 data)

    @staticmethod
    def _pw_bytes(pw: str, ascii: bool) -> bytes:
        return merc.open_channel(1, 1, pw, ascii=ascii).params["password"]

    def model(self, address: int) -> MeterModel:
        return self.models[address]

    def request_length(self, buf: bytearray) -> int:
        return request_length(buf)

    def _status(self, address: int, code: int, kind: str) -> bytes:
        self.log.append((address, kind, code))
        return _frame(bytes((address, code)))

    def answer(self, request: bytes, now: float) -> bytes | None:
        try:
            req = merc.parse_request(request)
        except FrameError:
            req = None
        a = request[0]
        if a == 0 and len(self.addresses) == 1:
            meter = self.addresses[0]
        elif a in self.models:
            meter = a
        else:
            return None  # another meter's address, broadcast, or several meters on address 0
        n = len(request)
        crc_ok = n >= 4 and crc16_modbus(request[:-2]) == (request[-2] | request[-1] << 8)
        if req is None and crc_ok and request[1] == 3 and n == 13 and request[2] == 0x0C:
            req = merc.Request("set_time", {}, a, 3, 0x0C, 0, request[:-2])
        elif req is None and crc_ok and request[1] == 8 and n == 5 and request[2] == 0x12:
            req = merc.Request("variant", {}, a, 8, 0x12, 0, request[:-2])
        if req is None:
            # bad CRC: a meter ignores the frame; a known CRC but unknown request: status 1
            if crc_ok:
                return self._status(a, 1, "unknown")
            return None
        mono = time.monotonic()
        if req.kind == "test":
            return self._status(a, 0, "test")
        if req.kind == "open":
            level = req.params["level"]
            if req.params["password"] != self._pw[level]:
                self._open.pop(meter, None)
                return self._status(a, 3, "open")
            self._open[meter] = (level, mono + CHANNEL_TIMEOUT)
            return self._status(a, 0, "open")
        st = self._open.get(meter)
        if st is None or st[1] < mono:
            self._open.pop(meter, None)
            return self._status(a, 5, req.kind)
        self._open[meter] = (st[0], mono + CHANNEL_TIMEOUT)
        if req.kind == "close":
            del self._open[meter]
            return self._status(a, 0, "close")
        if req.kind == "set_time":
            if st[0] < 2:
                return self._status(a, 3, "set_time")
            return self._set_time(meter, a, request[3:11], now)
        if req.kind in ("variant", "profile_pointer", "memory", "profile_record"):
            ans = self._profile_answer(meter, a, req, now)
        elif req.kind == "journal" and req.p1 == 2:
            ans = self._clock_journal(meter, a, req.p2)
        else:
            ans = build_answer(self.models[meter], req, now, a, self.clock_offset[meter])
        if ans is None:
            return self._status(a, 1, req.kind)
        self.answered_at[(meter, request[:-2])] = now
        self.log.append((a, req.kind, -1))
        return ans

    # ---- clock set and journal 02 ----------------------------------------------------------
    def meter_clock(self, address: int, t: float) -> float:
        """The clock of meter ``address`` at true time t (model drift plus the sets)."""
        return self.models[address].clock(t) + self.clock_offset[address]

    def _set_time(self, meter: int, a: int, bcd: bytes, now: float) -> bytes:
        def dec(b: int) -> int:
            return (b >> 4) * 10 + (b & 15) if b >> 4 <= 9 and b & 15 <= 9 else -1

        sec, mi, hour, _wd, day, month, year = (dec(b) for b in bcd[:7])
        try:
            new = float(calendar.timegm((2000 + year, month, day, hour, mi, sec)))
            ok = min(sec, mi, hour, day, month, year) >= 0 and sec < 60 and mi < 60 and hour < 24 \
                and 1 <= month <= 12 and time.gmtime(new).tm_mday == day and bcd[7] in (0, 1)
        except (ValueError, OverflowError):
            ok = False
        if not ok:
            return self._status(a, 1, "set_time")
        old = self.meter_clock(meter, now)
        self.clock_offset[meter] += new - old
        self.clock_sets[meter].append((old, new))
        return self._status(a, 0, "set_time")

    def _clock_journal(self, meter: int, a: int, record: int) -> bytes:
        """Journal 02 record ``record`` (0 = the most recent set): old time, new time."""
        sets = self.clock_sets[meter][::-1]
        data = bytes(12)
        if record < len(sets):
            old, new = sets[record]
            data = stamp_bytes(old) + stamp_bytes(new)
        self.log.append((a, "journal", -1))
        return _frame(bytes((a,)) + data)

    # ---- load profile -------------------------------------------------------------------------
    def _newest_record(self, meter: int, now: float) -> tuple[float, int]:
        """(end time of the newest closed interval on the meter's clock, its slot)."""
        period = self.profile_period_min * 60
        end = math.floor(self.meter_clock(meter, now) / period) * period
        return end, (int(end // period) + self.profile_slot_offset) % self.profile_records

    def profile_slot_time(self, meter: int, slot: int, now: float) -> float:
        """End time of the interval whose record is in ``slot`` at true time ``now``."""
        end, newest = self._newest_record(meter, now)
        return end - ((newest - slot) % self.profile_records) * self.profile_period_min * 60

    def _memory(self, meter: int, start: int, count: int, now: float) -> bytes:
        """``count`` bytes of the profile memory from byte address ``start``."""
        out = bytearray()
        model = self.models[meter]
        for slot in range(start // PROFILE_RECORD_SIZE, (start + count - 1) // PROFILE_RECORD_SIZE + 1):
            end = self.profile_slot_time(meter, slot, now)
            out += profile_record_bytes(model, end, self.profile_period_min, self.constant) + b"\x00"
        skip = start % PROFILE_RECORD_SIZE
        return bytes(out[skip:skip + count])

    def _profile_answer(self, meter: int, a: int, req: merc.Request, now: float) -> bytes | None:
        if req.kind == "variant":
            return _frame(bytes((a, 0, CONSTANT_CODES[self.constant], 0, 0, 0, 0)))
        if req.kind == "profile_pointer":
            end, slot = self._newest_record(meter, now)
            rec = profile_record_bytes(self.models[meter], end, self.profile_period_min, self.constant)
            value = slot if self.profile_pointer == "record" else slot * PROFILE_RECORD_SIZE
            return _frame(bytes((a, value >> 8, value & 0xFF)) + rec[:7])
        raw = req.encode()
        mem, count = raw[2], raw[5]
        start = (mem >> 7) << 16 | raw[3] << 8 | raw[4]
        if mem & 0x7F != 3 or not 1 <= count <= 254 \
                or start + count > self.profile_records * PROFILE_RECORD_SIZE:
            return None
        return _frame(bytes((a,)) + self._memory(meter, start, count, now))

    def corrupt_checksum(self, frame: bytes) -> bytes:
        """Flip a bit of the CRC's low byte (the byte before the last)."""
        if len(frame) < 4:
            return frame
        return frame[:-2] + bytes([frame[-2] ^ 0x01]) + frame[-1:]
