"""The reading format shared by every protocol: ``READING_DTYPE``, frame statuses, qualities,
OBIS codes and DLMS units.

A reading is one row of a numpy structured array of ``READING_DTYPE``:

=========  ==============  ==========================================================
field      dtype           meaning
=========  ==============  ==========================================================
meter      uint32          index of the frame's meter in the batch, or the caller's id
obis       uint64          OBIS A.B.C.D.E.F packed big-endian in the low 48 bits
ts         datetime64[ms]  UTC; the meter's own timestamp where the frame has one,
                           else the batch's receive time
value      float64         scaled to the base unit (Wh, varh, V, A, W, Hz, m3, J, ...)
unit       uint8           DLMS unit enumeration (:class:`Unit`)
status     uint16          reading quality (:class:`Quality`): 0 is a good value
=========  ==============  ==========================================================

A batch decode also returns one ``FRAME_STATUS_DTYPE`` record per frame: its
:class:`FrameStatus`, the meter's exception code, the byte offset where decoding stopped, and
which slice of the readings array the frame produced (``first``, ``count``).
"""
from __future__ import annotations

import datetime as _dt
import enum
import re
import time

import numpy as np

from meterpoll.ext._readings import FRAME_STATUS_DTYPE, READING_DTYPE

__all__ = ["FRAME_STATUS_DTYPE", "READING_DTYPE", "FrameStatus", "Quality", "Unit", "obis", "obis_str",
           "received_ms"]


class FrameStatus(enum.IntEnum):
    """Outcome of decoding one frame (``FRAME_STATUS_DTYPE['status']``)."""

    OK = 0
    CHECKSUM = 1            # CRC / sum / BCC does not match
    TRUNCATED = 2           # frame ends before its length field or structure says
    BAD_LENGTH = 3          # length field inconsistent with the frame
    BAD_ADDRESS = 4         # answer from another address than the one asked
    PROTOCOL_EXCEPTION = 5  # the meter answered with an exception; see ``code``
    UNSUPPORTED = 6         # well-formed, but a type or function this decoder does not handle
    BAD_FRAMING = 7         # start/stop bytes, flags or control field wrong
    BAD_VALUE = 8           # a field holds a value its type does not allow (BCD, date...)
    TOO_DEEP = 9            # nesting deeper than the decoder's limit
    MISMATCH = 10           # answer does not match the request (function, register count)
    OUT_OF_MEMORY = 11
    NO_DATA = 12            # well-formed but carries no readings (ACK, empty block)


class Quality(enum.IntEnum):
    """Quality of one reading (``READING_DTYPE['status']``).  A meter that did not answer is
    recorded with TIMEOUT, never as a zero value."""

    OK = 0
    TIMEOUT = 1
    PROTOCOL_EXCEPTION = 2
    CHECKSUM = 3
    OUT_OF_RANGE = 4
    ESTIMATED = 5
    METER_ERROR = 6      # the meter flagged the value itself
    CLOCK_INVALID = 7    # value good, the meter's timestamp was not: batch time used instead


class Unit(enum.IntEnum):
    """DLMS/COSEM unit enumeration (IEC 62056-62, class 3 ``scaler_unit``), common subset."""

    YEAR = 1
    MONTH = 2
    WEEK = 3
    DAY = 4
    HOUR = 5
    MINUTE = 6
    SECOND = 7
    DEGREE = 8            # phase angle
    CELSIUS = 9
    CURRENCY = 10
    METRE = 11
    METRE_PER_SECOND = 12
    CUBIC_METRE = 13
    CUBIC_METRE_CORRECTED = 14
    CUBIC_METRE_PER_HOUR = 15
    CUBIC_METRE_PER_HOUR_CORRECTED = 16
    CUBIC_METRE_PER_DAY = 17
    CUBIC_METRE_PER_DAY_CORRECTED = 18
    LITRE = 19
    KILOGRAM = 20
    NEWTON = 21
    NEWTON_METRE = 22
    PASCAL = 23
    BAR = 24
    JOULE = 25
    JOULE_PER_HOUR = 26
    WATT = 27
    VOLT_AMPERE = 28
    VAR = 29
    WATT_HOUR = 30
    VOLT_AMPERE_HOUR = 31
    VAR_HOUR = 32
    AMPERE = 33
    COULOMB = 34
    VOLT = 35
    VOLT_PER_METRE = 36
    FARAD = 37
    OHM = 38
    OHM_SQUARE_METRE_PER_METRE = 39
    WEBER = 40
    TESLA = 41
    AMPERE_PER_METRE = 42
    HENRY = 43
    HERTZ = 44
    ACTIVE_ENERGY_METER_CONSTANT = 45
    REACTIVE_ENERGY_METER_CONSTANT = 46
    APPARENT_ENERGY_METER_CONSTANT = 47
    VOLT_SQUARED_HOUR = 48
    AMPERE_SQUARED_HOUR = 49
    KILOGRAM_PER_SECOND = 50
    SIEMENS = 51
    KELVIN = 52
    PERCENT = 56
    AMPERE_HOUR = 57
    WATT_HOUR_PER_CUBIC_METRE = 60
    JOULE_PER_CUBIC_METRE = 61
    OTHER = 254
    COUNT = 255           # no unit / unitless count


_OBIS_DOTTED = re.compile(r"^\s*(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\s*$")
_OBIS_IEC = re.compile(r"^\s*(\d{1,3})-(\d{1,3}):(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:[*&](\d{1,3}))?\s*$")


def obis(code: str | tuple[int, int, int, int, int, int] | bytes) -> int:
    """Pack an OBIS code into an int, A.B.C.D.E.F big-endian in the low 48 bits.

    Accepts ``"1.0.1.8.0.255"``, the IEC forms ``"1-0:1.8.0*255"`` and ``"1-0:1.8.0"`` (F
    defaults to 255), a 6-tuple, or the 6 bytes of a DLMS logical name.
    ``obis("1.0.1.8.0.255") == 0x0100010800FF``.  Raises ValueError for anything else.
    """
    if isinstance(code, (bytes, bytearray, memoryview)):
        parts = list(bytes(code))
        if len(parts) != 6:
            raise ValueError("an OBIS logical name has 6 bytes, got %d" % len(parts))
    elif isinstance(code, str):
        m = _OBIS_DOTTED.match(code) or _OBIS_IEC.match(code)
        if m is None:
            raise ValueError("not an OBIS code: %r (expected A.B.C.D.E.F or A-B:C.D.E*F)" % code)
        parts = [int(g) if g is not None else 255 for g in m.groups()]
    else:
        parts = list(code)
        if len(parts) != 6:
            raise ValueError("an OBIS code has 6 groups, got %d" % len(parts))
    value = 0
    for p in parts:
        if not isinstance(p, int) or not 0 <= p <= 255:
            raise ValueError("OBIS groups are 0..255, got %r" % (p,))
        value = (value << 8) | p
    return value


def obis_str(value: int) -> str:
    """The dotted text form ``A.B.C.D.E.F`` of a packed OBIS code (see :func:`obis`)."""
    value = int(value)
    if not 0 <= value < (1 << 48):
        raise ValueError("a packed OBIS code is a 48-bit unsigned integer, got %r" % value)
    return ".".join(str((value >> s) & 0xFF) for s in (40, 32, 24, 16, 8, 0))


def received_ms(received_at: object, n: int) -> np.ndarray:
    """The ``received_at`` argument of every decoder as int64 milliseconds since the epoch (UTC):
    an array of one value (None = now, a numpy datetime64, a ``datetime`` (naive = UTC) or an
    int of ms, applying to every frame) or of ``n`` values (one per frame).  Raises TypeError
    for other types and ValueError for a per-frame array of the wrong length."""
    if received_at is None:
        return np.array([time.time_ns() // 1_000_000], dtype=np.int64)
    if isinstance(received_at, _dt.datetime):
        if received_at.tzinfo is not None:
            received_at = received_at.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        received_at = np.datetime64(received_at, "ms")
    arr = np.asarray(received_at)
    if arr.dtype.kind == "M":
        arr = arr.astype("datetime64[ms]").view(np.int64)
    elif arr.dtype.kind not in "iu":
        raise TypeError("received_at must be numpy datetime64, a datetime or int ms since the epoch, "
                        "not %s" % arr.dtype)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] not in (1, n)):
        raise ValueError("received_at must be one time or one per frame (%d), got shape %s" % (n, arr.shape))
    return np.ascontiguousarray(arr.reshape(-1), dtype=np.int64)
