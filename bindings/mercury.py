"""Mercury 230/234 (Incotex proprietary protocol): request encoders and answer decoders.

Frames
------
Request ``address (1) | code (1) | params (0..n) | CRC (2)``; answer ``address (1) | data (1..n) |
CRC (2)``.  CRC = CRC-16/MODBUS over address..data, low byte first.  Address 0 is universal (any
meter answers; only point-to-point), 1..240 individual, 254 broadcast (no answer).  The answer
carries neither the request code nor a length, so it is always decoded through the
:class:`Request` it answers (``decode(frame, request=...)``, ``decode_batch(..., requests=...)``).

Channel passwords (``open_channel``): non-"D" meters (Mercury 230/234 without D in the type code)
take the six password digits as binary bytes (``111111`` -> ``01 01 01 01 01 01``); "D" meters
take ASCII (``31 31 31 31 31 31``).  ``open_channel(..., ascii=False)`` is the default; pass
``ascii=True`` for D meters, or a 6-byte ``bytes`` password to send it unchanged.

Units and scales
----------------
Energy 1 Wh / 1 varh per unit (the 05h/15h arrays and the fixed energy are in Wh, whatever the
meter constant; ``FF FF FF FF`` = energy kind not measured: no reading is emitted).  Auxiliary
values: U, P, Q, S, frequency, angles, distortion /100 (V, W, var, VA, Hz, degree, %), I and
cos phi /1000; temperature in whole degrees C (signed).  P and cos phi are negative when the
active-direction bit (bit 7 of the value's high byte) is set, Q when the reactive-direction bit
(bit 6) is set; S is never signed.  Both bits are always masked off the magnitude.

OBIS map (Mercury has no OBIS of its own; this table is the mapping this module emits)
-----------------------------------------------------------------------------------------
==========================================  ===============================  ==========
answer to                                   OBIS                             unit
==========================================  ===============================  ==========
05h array 0 (since reset), tariff T         1.0.{1,2,3,4}.8.T.255            Wh / varh
  (A+, A-, R+, R- in answer order)
05h array 1..5 (current year, previous      1.0.{1,2,3,4}.9.T.F              Wh / varh
  year, month m, today, yesterday):         F = request byte (array<<4 | month):
  energy accumulated in the period            16 cur. year, 32 prev. year, 48+m month m,
                                              64 today, 80 yesterday
05h array 9..D (register at the start of    1.0.{1,2,3,4}.8.T.F              Wh / varh
  cur. year, prev. year, month m, today,    F = request byte: 144, 160, 176+m, 192, 208
  yesterday)
05h array 6 (A+ per phase)                  1.0.{21,41,61}.8.T.255           Wh
15h (four-quadrant reactive R1..R4), any    1.0.{5,6,7,8}.D.T.F (D, F as     varh
  array as for 05h                            for 05h)
08 14 Fx (fixed energy, tariff x)           1.0.{1,2,3,4}.8.x.240            Wh / varh
08 11/14/16 power P sum, L1, L2, L3         1.0.{1,21,41,61}.7.0.255 signed  W
  reactive power Q                          1.0.{3,23,43,63}.7.0.255 signed  var
  apparent power S                          1.0.{9,29,49,69}.7.0.255         VA
  cos phi sum, L1, L2, L3                   1.0.{13,33,53,73}.7.0.255 signed (count 255)
  phase voltage L1..L3                      1.0.{32,52,72}.7.0.255           V
  current L1..L3                            1.0.{31,51,71}.7.0.255           A
  frequency                                 1.0.14.7.0.255                   Hz
  angle U L1-L2, L1-L3, L2-L3               1.0.81.7.{1,2,12}.255            degree
  voltage distortion L1..L3                 1.0.{32,52,72}.7.124.255 (THD)   %
  phase-to-phase voltage 1..3               1.0.128.7.{1,2,3}.255 (manufacturer-specific) V
  internal temperature                      0.0.96.9.0.255                   C
04 00 (time)                                0.0.1.0.0.255 value = meter      s
                                              clock as Unix seconds, ts = same
                                            0.0.96.50.0.255 (manufacturer-   (count)
                                              specific): 1 winter, 0 summer
06 03 <offset> 0F (profile record)         1.0.{1,2,3,4}.5.0.255 average    W / var
                                              P+, P-, Q+, Q- over the period,
                                              ts = record time
04 J R (journal J record R)                 0.0.96.11.J.255, ts = event      (count)
                                              time, value 1 = first stamp,
                                              2 = second stamp (all-zero
                                              stamp = empty: no reading)
08 00 (serial number)                       0.0.96.1.0.255 value = serial    (count)
08 03 (firmware version a.b.c)              1.0.0.2.0.255 value = a*10000+b*100+c
==========================================  ===============================  ==========

Meter clocks (time answer, journal stamps, profile records) are local wall-clock times; they are
stored as if they were UTC (no zone is known to the decoder).  Profile-record readings whose
status bit 1 (incomplete slice: power cut or init inside the interval) is set get quality
METER_ERROR; all other readings are OK.  A zero magnitude is never negated (+0.0).

Not decoded (encoders exist, ``decode`` reports UNSUPPORTED): ``08 14 E0`` fixation time, raw
memory reads other than one main-profile record, ``08 13`` through the batch path (use
:func:`decode_profile_pointer`).  Not built: journal record FFh/FEh (last / all), energy tariff
5 (losses) and 6 (all tariffs in one answer), code 18h snapshots, power-quality journals 20h-2Fh,
journals 13h/14h (different record layouts): their answer layouts are not in the vectors.
"""
from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from meterpoll.bindings.checksums import crc16_modbus
from meterpoll.bindings.errors import (
    ChecksumError, FrameError, TruncatedFrameError, UnsupportedFrameError, error_for_status,
)
from meterpoll.bindings.readings import READING_DTYPE, FrameStatus, received_ms
from meterpoll.ext import _mercury
from meterpoll.ext._frames import FrameBatch

__all__ = [
    "REQUEST_DTYPE", "AuxQuantity", "EnergyArray", "MercuryFrame", "Request", "close_channel",
    "decode", "decode_batch", "open_channel", "parse_frame", "parse_request", "read_aux",
    "read_energy", "read_fixation_time", "read_fixed_energy", "read_memory",
    "read_profile_pointer", "read_profile_record", "decode_profile_pointer", "read_journal", "read_reactive_quadrants",
    "read_serial", "read_time", "read_version", "requests_array", "test_channel",
    "STATUS_CODES",
]

#: Compact batch form of a request: the bytes that decide how its answer is read, plus ``aux``
#: (the meter constant A of a load-profile record read, else 0).  Packed, 6 bytes.
REQUEST_DTYPE = np.dtype([("address", np.uint8), ("code", np.uint8), ("p1", np.uint8), ("p2", np.uint8),
                          ("aux", "<u2")])

#: Low nibble of a 1-byte status answer.
STATUS_CODES = {
    0: "OK",
    1: "invalid command or parameter",
    2: "internal meter error",
    3: "access level insufficient",
    4: "clock already corrected today",
    5: "channel not open",
}


class EnergyArray(enum.IntEnum):
    """Energy arrays of request 05h / 15h (high nibble of the first parameter)."""

    SINCE_RESET = 0
    CURRENT_YEAR = 1
    PREVIOUS_YEAR = 2
    MONTH = 3            # needs month 1..12
    TODAY = 4
    YESTERDAY = 5
    PER_PHASE = 6        # A+ per phase (05h only), 12-byte answer
    START_CURRENT_YEAR = 9
    START_PREVIOUS_YEAR = 10
    START_MONTH = 11     # needs month 1..12
    START_TODAY = 12
    START_YESTERDAY = 13


class AuxQuantity(enum.IntEnum):
    """Quantity nibble of a BWRI (bits 7..4) for request 08h 11h/14h/16h."""

    POWER = 0
    VOLTAGE = 1
    CURRENT = 2
    POWER_FACTOR = 3
    FREQUENCY = 4
    ANGLE = 5
    DISTORTION = 6
    TEMPERATURE = 7
    LINE_VOLTAGE = 8
    FIXED_ENERGY = 15


_POWER_KIND = {"P": 0, "Q": 1, "S": 2}


def _u8(name: str, v: Any, lo: int = 0, hi: int = 255) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError("%s must be an int, not %r" % (name, type(v).__name__))
    v = int(v)
    if not lo <= v <= hi:
        raise ValueError("%s must be in %d..%d, got %d" % (name, lo, hi, v))
    return v


def _address(a: Any) -> int:
    a = _u8("address", a)
    if 0xF1 <= a <= 0xFF and a != 0xFE:
        raise ValueError("address %d is reserved (0 universal, 1..240 individual, 254 broadcast)" % a)
    return a


def _crc(body: bytes) -> bytes:
    return body + crc16_modbus(body).to_bytes(2, "little")


class Request:
    """One Mercury request: ``kind`` (text), ``params`` (dict), the address and the bytes that
    decide how the answer is read (``code``, ``p1``, ``p2``).  ``encode()`` gives the frame."""

    __slots__ = ("kind", "params", "address", "code", "p1", "p2", "aux", "_body")

    def __init__(self, kind: str, params: dict, address: int, code: int, p1: int, p2: int, body: bytes,
                 aux: int = 0) -> None:
        self.aux = aux
        self.kind = kind
        self.params = params
        self.address = address
        self.code = code
        self.p1 = p1
        self.p2 = p2
        self._body = body

    def encode(self) -> bytes:
        """The request frame: address, code, parameters, CRC-16/MODBUS low byte first."""
        return _crc(self._body)

    @property
    def row(self) -> tuple[int, int, int, int, int]:
        """The compact (address, code, p1, p2, aux) row of :data:`REQUEST_DTYPE`."""
        return (self.address, self.code, self.p1, self.p2, self.aux)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Request) and self._body == other._body and self.aux == other.aux

    def __hash__(self) -> int:
        return hash((self._body, self.aux))

    def __repr__(self) -> str:
        return "Request(%r, %r, address=%d)" % (self.kind, self.params, self.address)


def test_channel(address: int) -> Request:
    """``AA 00 CRC``: test the link; the meter answers status 00."""
    a = _address(address)
    return Request("test", {}, a, 0, 0, 0, bytes((a, 0)))


test_channel.__test__ = False  # not a pytest test


def open_channel(address: int, level: int = 1, password: str | bytes = "111111", *, ascii: bool = False) -> Request:
    """``AA 01 <level> <6 password bytes> CRC``.  ``level`` 1 = user (read), 2 = admin.
    ``password``: six decimal digits, sent as binary bytes 0..9 (non-D meters, default) or as
    ASCII digits with ``ascii=True`` (D meters); a 6-byte ``bytes`` is sent unchanged."""
    a = _address(address)
    level = _u8("level", level, 1, 2)
    if isinstance(password, (bytes, bytearray)):
        pw = bytes(password)
        if len(password) != 6:
            raise ValueError("a raw password has 6 bytes, got %d" % len(password))
    elif isinstance(password, str):
        if len(password) != 6 or not all(c in "0123456789" for c in password):
            raise ValueError("password must be 6 decimal digits, got %r" % password)
        pw = password.encode("ascii") if ascii else bytes(int(c) for c in password)
    else:
        raise TypeError("password must be str or bytes, not %r" % type(password).__name__)
    return Request("open", {"level": level, "password": pw}, a, 1, level, pw[0], bytes((a, 1, level)) + pw)


def close_channel(address: int) -> Request:
    """``AA 02 CRC``."""
    a = _address(address)
    return Request("close", {}, a, 2, 0, 0, bytes((a, 2)))


def read_time(address: int) -> Request:
    """``AA 04 00 CRC``: answer 8 BCD bytes sec, min, hour, weekday, day, month, year, winter."""
    a = _address(address)
    return Request("time", {}, a, 4, 0, 0, bytes((a, 4, 0)))


def read_journal(address: int, journal: int, record: int) -> Request:
    """``AA 04 <journal> <record> CRC``: one record (0..9) of a journal whose records are two
    6-byte BCD stamps (journals 01..07, 09, 0A, 12, 17..1A, 80..87)."""
    a = _address(address)
    journal = _u8("journal", journal)
    record = _u8("record", record, 0, 9)
    if _mercury.layout(a, 4, journal, record)["kind"] != _mercury.MK_JOURNAL:
        raise ValueError("journal 0x%02X is not a two-timestamp journal this codec decodes" % journal)
    return Request("journal", {"journal": journal, "record": record}, a, 4, journal, record,
                   bytes((a, 4, journal, record)))


def _energy(kind: str, code: int, address: int, array: int, month: int, tariff: int) -> Request:
    a = _address(address)
    array = int(EnergyArray(_u8("array", array, 0, 15)))
    month = _u8("month", month, 0, 12)
    tariff = _u8("tariff", tariff, 0, 4)
    if array in (EnergyArray.MONTH, EnergyArray.START_MONTH):
        if month == 0:
            raise ValueError("array %s needs a month 1..12" % EnergyArray(array).name)
    elif month:
        raise ValueError("only the MONTH arrays take a month")
    if code == 0x15 and array == EnergyArray.PER_PHASE:
        raise ValueError("the per-phase array is read with 05h only")
    p1 = (array << 4) | month
    return Request(kind, {"array": EnergyArray(array), "month": month, "tariff": tariff}, a, code, p1,
                   tariff, bytes((a, code, p1, tariff)))


def read_energy(address: int, array: int = EnergyArray.SINCE_RESET, *, month: int = 0, tariff: int = 0) -> Request:
    """``AA 05 <array<<4 | month> <tariff> CRC``; tariff 0 = sum, 1..4 = T1..T4.  The answer is
    A+, A-, R+, R- (4 bytes each, ``[2][1][4][3]``, Wh/varh); array 6 gives A+ L1, L2, L3."""
    return _energy("energy", 0x05, address, array, month, tariff)


def read_reactive_quadrants(address: int, array: int = EnergyArray.SINCE_RESET, *, month: int = 0,
                            tariff: int = 0) -> Request:
    """``AA 15 <array<<4 | month> <tariff> CRC`` (parameters as for 05h; assumed from the
    manual's answer example, the request bytes are not in the vectors): R1..R4 in varh."""
    return _energy("reactive_quadrants", 0x15, address, array, month, tariff)


def read_fixed_energy(address: int, tariff: int = 0) -> Request:
    """``AA 08 14 F<tariff> CRC``: energy frozen at the last fixation, A+, A-, R+, R-."""
    a = _address(address)
    tariff = _u8("tariff", tariff, 0, 4)
    return Request("fixed_energy", {"tariff": tariff}, a, 8, 0x14, 0xF0 | tariff, bytes((a, 8, 0x14, 0xF0 | tariff)))


def read_aux(address: int, quantity: int | str, phase: int = 0, *, param: int = 0x11, power: str = "P") -> Request:
    """``AA 08 <param> <BWRI> CRC``: instantaneous values.

    ``param`` 0x11 reads one value (``phase`` 0 = sum for power/cos phi, 1..3 = L1..L3; for
    angles 1 = L1-L2, 2 = L1-L3, 3 = L2-L3), 0x16 all phases (3 bytes each: power/cos phi
    sum, L1, L2, L3; U, I, angles, line voltage L1..L3), 0x14 power with 4 bytes per value or
    cos phi.  ``power`` selects P, Q or S for the power quantity.  BWRI = quantity<<4 |
    (power kind<<2 | phase) for power, quantity<<4 | phase otherwise; with 14h/16h the phase
    nibble is 0 for power and cos phi (manual example 08 14 08) and 1 for the others.
    """
    a = _address(address)
    if isinstance(quantity, str):
        try:
            quantity = AuxQuantity[quantity.upper()]
        except KeyError:
            raise ValueError("unknown quantity %r" % quantity) from None
    q = AuxQuantity(_u8("quantity", quantity, 0, 15))
    if q == AuxQuantity.FIXED_ENERGY:
        raise ValueError("use read_fixed_energy() for fixed energy")
    param = _u8("param", param)
    if param not in (0x11, 0x14, 0x16):
        raise ValueError("param must be 0x11, 0x14 or 0x16")
    phase = _u8("phase", phase, 0, 3)
    if power not in _POWER_KIND:
        raise ValueError("power must be 'P', 'Q' or 'S'")
    if param != 0x11:
        phase = 0 if q in (AuxQuantity.POWER, AuxQuantity.POWER_FACTOR) else 1
    sub = (_POWER_KIND[power] << 2 | phase) if q == AuxQuantity.POWER else phase
    bwri = (int(q) << 4) | sub
    if _mercury.layout(a, 8, param, bwri)["kind"] != _mercury.MK_AUX:
        raise ValueError("quantity %s phase %d cannot be read with param 0x%02X" % (q.name, phase, param))
    params = {"quantity": q, "phase": phase, "param": param}
    if q == AuxQuantity.POWER:
        params["power"] = power
    return Request("aux", params, a, 8, param, bwri, bytes((a, 8, param, bwri)))


def read_serial(address: int) -> Request:
    """``AA 08 00 CRC``: serial number (4 bytes, each binary 0..99) and manufacture date."""
    a = _address(address)
    return Request("serial", {}, a, 8, 0, 0, bytes((a, 8, 0)))


def read_version(address: int) -> Request:
    """``AA 08 03 CRC``: firmware version, 3 bytes (binary; not checked against a meter)."""
    a = _address(address)
    return Request("version", {}, a, 8, 3, 0, bytes((a, 8, 3)))


def read_fixation_time(address: int) -> Request:
    """``AA 08 14 E0 CRC``: time of the last data fixation.  Encoder only: the answer layout is
    not in the vectors, ``decode`` reports UNSUPPORTED for it."""
    a = _address(address)
    return Request("fixation_time", {}, a, 8, 0x14, 0xE0, bytes((a, 8, 0x14, 0xE0)))


def read_profile_pointer(address: int) -> Request:
    """``AA 08 13 CRC``: last record of the main load profile.  Encoder only (see the module
    notes: the meaning of the returned address is in doubt), decode reports UNSUPPORTED."""
    a = _address(address)
    return Request("profile_pointer", {}, a, 8, 0x13, 0, bytes((a, 8, 0x13)))


def read_memory(address: int, memory: int, offset: int, length: int) -> Request:
    """``AA 06 <memory> <offset hi> <offset lo> <length> CRC``: raw memory read (memory 3 = main
    load profile, 16 bytes per record; length 0x0F = one record).  Encoder only: decode reports
    UNSUPPORTED for the answer."""
    a = _address(address)
    memory = _u8("memory", memory)
    offset = _u8("offset", offset, 0, 0xFFFF)
    length = _u8("length", length)
    return Request("memory", {"memory": memory, "offset": offset, "length": length}, a, 6, memory,
                   length, bytes((a, 6, memory, offset >> 8, offset & 0xFF, length)))


def read_profile_record(address: int, offset: int, *, constant: int, memory: int = 3) -> Request:
    """``AA 06 <memory> <offset hi> <offset lo> 0F CRC``: one 15-byte record of the main load
    profile (memory 3).  ``constant`` is the meter constant A in impulses/kWh (from the
    "variant" read 08 12), needed to turn the record's counts into average power.

    Doubt (README 2.6 / 6.2): whether ``offset`` is the ``08 13`` pointer value itself (a byte
    address, records 16 bytes apart) or that value x 16 is not settled; pass the byte address.
    The answer decodes to 1.0.{1,2,3,4}.5.0.255 (average P+, P-, Q+, Q- over the period, W /
    var) stamped with the record's time; ``FF FF`` = not measured (no reading); readings of a
    record whose status bit 1 (incomplete slice) is set get quality METER_ERROR."""
    a = _address(address)
    memory = _u8("memory", memory, 3, 3)
    offset = _u8("offset", offset, 0, 0xFFFF)
    constant = _u8("constant", constant, 1, 0xFFFF)
    return Request("profile_record", {"offset": offset, "constant": constant}, a, 6, memory, 0x0F,
                   bytes((a, 6, memory, offset >> 8, offset & 0xFF, 0x0F)), constant)


def decode_profile_pointer(data) -> dict:
    """The answer to ``AA 08 13`` (9 data bytes): last-record address (2 bytes, high first),
    status, hour, minute, day, month, year (BCD), integration period (minutes), as a dict.
    Pure Python (one frame per session, not a batch quantity).  Raises FrameError subclasses."""
    f = parse_frame(data)
    p = bytes(f.payload)
    if len(p) == 1 and p[0] & 0x0F:
        raise error_for_status(5, "meter status %d: %s" % (p[0] & 0x0F, STATUS_CODES.get(p[0] & 0x0F, "?")), 1, p[0] & 0x0F)
    if len(p) != 9:
        raise error_for_status(2 if len(p) < 9 else 3, "an 08 13 answer has 9 data bytes, got %d" % len(p), 1)

    def bcd(i: int) -> int:
        b = p[i]
        if b >> 4 > 9 or b & 15 > 9:
            raise FrameError("byte %d (0x%02X) is not BCD" % (i + 1, b), i + 1, 8)
        return (b >> 4) * 10 + (b & 15)

    try:
        t = _dt.datetime(2000 + bcd(7), bcd(6), bcd(5), bcd(3), bcd(4))
    except ValueError:
        raise FrameError("impossible record time", 4, 8) from None
    st = p[2]
    return {"address": p[0] << 8 | p[1], "status": st, "time": t, "period_min": p[8],
            "tariff": (st >> 5) & 3, "additional_profile": bool(st & 0x10), "winter": bool(st & 0x08),
            "initialised": bool(st & 0x04), "incomplete": bool(st & 0x02), "overflow": bool(st & 0x01)}


class MercuryFrame:
    """A checked Mercury frame.  ``payload`` is the data between the address (and, for a request,
    the code) and the CRC, as a read-only memoryview of the caller's bytes."""

    __slots__ = ("direction", "address", "code", "payload", "crc")

    def __init__(self, direction: str, address: int, code: int | None, payload: memoryview, crc: int) -> None:
        self.direction = direction
        self.address = address
        self.code = code
        self.payload = payload
        self.crc = crc

    @property
    def is_status(self) -> bool:
        """True for a 1-byte status answer."""
        return self.direction == "response" and len(self.payload) == 1

    @property
    def status_code(self) -> int | None:
        """Low nibble of a status answer (0 OK), else None."""
        return self.payload[0] & 0x0F if self.is_status else None

    def __repr__(self) -> str:
        return "MercuryFrame(%s, address=%d, code=%r, payload=%s)" % (
            self.direction, self.address, self.code, bytes(self.payload).hex(" "))


def parse_frame(data, *, direction: str = "response") -> MercuryFrame:
    """Check length and CRC of one frame.  Raises TruncatedFrameError (shorter than 4 bytes for
    an answer, 4 for a request) or ChecksumError (offset = position of the CRC)."""
    if direction not in ("response", "request"):
        raise ValueError("direction must be 'response' or 'request'")
    mv = memoryview(data).cast("B").toreadonly()
    n = len(mv)
    if n < 4:
        raise TruncatedFrameError("a Mercury frame has at least 4 bytes, got %d" % n, n)
    crc = mv[n - 2] | (mv[n - 1] << 8)
    if crc16_modbus(mv[: n - 2]) != crc:
        raise ChecksumError("CRC-16/MODBUS mismatch: frame says 0x%04X, computed 0x%04X"
                            % (crc, crc16_modbus(mv[: n - 2])), n - 2)
    if direction == "request":
        return MercuryFrame(direction, mv[0], mv[1], mv[2 : n - 2], crc)
    return MercuryFrame(direction, mv[0], None, mv[1 : n - 2], crc)


def parse_request(data, *, constant: int = 0) -> Request:
    """A request frame back to its :class:`Request` (the inverse of ``Request.encode``).  A
    one-record load-profile read becomes ``read_profile_record`` when ``constant`` (the meter
    constant, not on the wire) is given, else ``read_memory``.  Raises a FrameError subclass
    for a bad CRC or a request this module does not build."""
    f = parse_frame(data, direction="request")
    a, code, p = f.address, f.code, bytes(f.payload)

    def bad(why: str) -> FrameError:
        return UnsupportedFrameError("request %02X %s: %s" % (code, p.hex(" "), why), 1)

    try:
        if code in (0, 2) and not p:
            return test_channel(a) if code == 0 else close_channel(a)
        if code == 1 and len(p) == 7:
            return open_channel(a, p[0], p[1:])
        if code == 4 and p == b"\x00":
            return read_time(a)
        if code == 4 and len(p) == 2:
            return read_journal(a, p[0], p[1])
        if code in (5, 0x15) and len(p) == 2:
            fn = read_energy if code == 5 else read_reactive_quadrants
            return fn(a, p[0] >> 4, month=p[0] & 0x0F, tariff=p[1])
        if code == 8 and p == b"\x00":
            return read_serial(a)
        if code == 8 and p == b"\x13":
            return read_profile_pointer(a)
        if code == 8 and p == b"\x14\xe0":
            return read_fixation_time(a)
        if code == 6 and len(p) == 4:
            if constant and p[0] == 3 and p[3] == 0x0F:
                return read_profile_record(a, p[1] << 8 | p[2], constant=constant)
            return read_memory(a, p[0], p[1] << 8 | p[2], p[3])
        if code == 8 and p == b"\x03":
            return read_version(a)
        if code == 8 and len(p) == 2 and p[0] == 0x14 and p[1] >> 4 == 0x0F:
            return read_fixed_energy(a, p[1] & 0x0F)
        if code == 8 and len(p) == 2 and p[0] in (0x11, 0x14, 0x16):
            q, sub = p[1] >> 4, p[1] & 0x0F
            if q == 0:
                kind = sub >> 2
                if kind > 2:
                    raise ValueError("power kind 3")
                r = read_aux(a, q, sub & 3, param=p[0], power="PQS"[kind])
            else:
                r = read_aux(a, q, sub, param=p[0])
            if r.encode() != bytes(data):
                raise ValueError("BWRI phase is not the one this codec sends")
            return r
    except (ValueError, TypeError) as e:
        raise bad(str(e)) from None
    raise bad("unknown request")


def requests_array(requests: Request | Iterable[Request] | np.ndarray) -> np.ndarray:
    """The compact :data:`REQUEST_DTYPE` form of one request or many (numpy input is checked
    and returned as is)."""
    if isinstance(requests, np.ndarray):
        if requests.dtype == REQUEST_DTYPE:
            return np.ascontiguousarray(requests).reshape(-1)
        raise TypeError("a request array must have REQUEST_DTYPE, got %s" % requests.dtype)
    if isinstance(requests, Request):
        return np.array([requests.row], dtype=REQUEST_DTYPE)
    rows = []
    for r in requests:
        if not isinstance(r, Request):
            raise TypeError("requests must be Request objects, got %r" % type(r).__name__)
        rows.append(r.row)
    return np.array(rows, dtype=REQUEST_DTYPE)


def decode_batch(batch, *, requests=None, meter_ids=None, received_at=None):
    """Decode many answers in one native call: ``(readings, frame_status)``.

    ``batch``: a :class:`FrameBatch` or a list of bytes.  ``requests``: one :class:`Request` for
    every frame, one per frame (list or :data:`REQUEST_DTYPE` array), or None (only status
    answers decode; data answers get UNSUPPORTED).  ``meter_ids``: uint32 per frame (default
    the frame index).  ``received_at``: datetime64 scalar or one per frame (default now), the
    ``ts`` of readings without a meter timestamp.  A bad frame only costs its own readings.
    """
    if not isinstance(batch, FrameBatch):
        batch = FrameBatch.from_frames(batch)
    n = len(batch)
    if requests is None:
        req = None
    else:
        ra = requests_array(requests)
        if ra.shape[0] not in (1, n):
            raise ValueError("%d requests for %d frames: give one, or one per frame" % (ra.shape[0], n))
        req = ra.view(np.uint8).reshape(-1, 6)
    if meter_ids is None:
        meters = np.arange(n, dtype=np.uint32)
    else:
        meters = np.ascontiguousarray(meter_ids, dtype=np.uint32).reshape(-1)
        if meters.shape[0] != n:
            raise ValueError("meter_ids has %d entries for %d frames" % (meters.shape[0], n))
    return _mercury.decode_batch(batch, req, meters, received_ms(received_at, n))


_REASON = {
    FrameStatus.TRUNCATED: "answer shorter than the request's answer layout",
    FrameStatus.CHECKSUM: "CRC-16/MODBUS mismatch",
    FrameStatus.BAD_ADDRESS: "answer from another address than the one asked",
    FrameStatus.BAD_LENGTH: "answer longer than the request's answer layout",
    FrameStatus.UNSUPPORTED: "no answer layout for this request (pass request=)",
    FrameStatus.BAD_VALUE: "field holds an impossible value (BCD digit, date, serial byte)",
    FrameStatus.MISMATCH: "status OK answer where the request expects data",
    FrameStatus.OUT_OF_MEMORY: "out of memory",
}


def decode(data, *, request: Request | None = None, meter_id: int = 0, received_at=None) -> np.ndarray:
    """Decode one answer to ``request`` into READING_DTYPE readings.  A status OK answer gives an
    empty array; any other problem raises the FrameError subclass of its status
    (ProtocolExceptionError carries the meter's status ``code``)."""
    if isinstance(data, (str, int)):
        raise TypeError("a frame must be bytes-like, not %r" % type(data).__name__)
    readings, fs = decode_batch([data], requests=request, meter_ids=[meter_id], received_at=received_at)
    st = FrameStatus(int(fs["status"][0]))
    if st in (FrameStatus.OK, FrameStatus.NO_DATA):
        return readings
    code = int(fs["code"][0])
    off = int(fs["offset"][0])
    if st == FrameStatus.PROTOCOL_EXCEPTION:
        reason = "meter status %d: %s" % (code, STATUS_CODES.get(code, "unknown status"))
    else:
        reason = _REASON.get(st, st.name)
    raise error_for_status(int(st), reason, off, code)
