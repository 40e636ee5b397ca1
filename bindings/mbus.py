"""M-Bus (EN 13757-2 link layer, EN 13757-3 application layer): frames, encoders, RSP_UD decoding.

Link layer (all multi-byte fields little-endian)::

    single character  E5                              (ACK)
    short frame       10 C A CS 16                    CS = (C + A) mod 256
    control frame     68 03 03 68 C A CI CS 16
    long frame        68 L L 68 C A CI data.. CS 16   L = bytes from C to the last data byte,
                                                       CS = their sum mod 256, frame = L + 6 bytes

C field, master to slave: 0x40 SND_NKE, 0x53/0x73 SND_UD (FCB 0/1), 0x5B/0x7B REQ_UD2,
0x5A/0x7A REQ_UD1.  Slave to master: 0x08 RSP_UD (+0x10 DFC, +0x20 ACD).  A = 0..250 primary
address, 253 (0xFD) secondary addressing, 254/255 broadcast.

RSP_UD application layer: CI 0x72 (12-byte fixed header: ident 8 BCD digits LSB byte first,
manufacturer u16 LE = three 5-bit letters, version, medium, access number, status, signature u16
LE), CI 0x76 (the same, but ident, manufacturer, signature and every data field most significant
byte first), CI 0x7A (4-byte header: access, status, signature), CI 0x78 (no header); then
records DIF [DIFE..] VIF [VIFE..] data.  RSP_UD is self-describing: no request is needed to decode it.

Values and units (what the readings hold)
-----------------------------------------
energy Wh (unit 30; J-based VIFs are converted with 1 Wh = 3600 J, so heat energy is in Wh
too), power W (27; J/h converted), volume m3 (13), volume flow m3/h (15; per-minute and
per-second VIFs converted), mass kg (20), mass flow kg/s (50), flow/return/external temperature
degC (9), temperature difference K (52), pressure bar (24), on/operating time s (7), voltage V
(35), current A (33), fabrication number / error flags / HCA units as plain numbers (255).
Multiplicative correction VIFEs (0x70-0x77: 10^(n-6), 0x7D: 10^3) are applied.

OBIS mapping (``B`` = DIFE subunit, ``E`` = DIFE tariff, ``F`` = storage number, 255 for storage 0;
``D`` from the DIF function field: instantaneous 0, maximum 5, minimum 4 - for electricity 7
(power, voltage, current) or 8 (energy), maximum 6, minimum 3).  ``A`` comes from the header
medium byte; telegrams without the long header (CI 0x7A / 0x78) take the caller's ``medium``
argument, else count as "anything else" below.

=======================  ==================================================================
medium (header byte)     quantity -> OBIS A.B.C.D.E.F
=======================  ==================================================================
0x02 electricity         energy 1.B.1.8.E.F (reverse VIFE 0x3C: 1.B.2.8.E.F),
                         power 1.B.1.7.E.F (reverse: 1.B.2.7.E.F)
0x04 / 0x0C / 0x0D heat  energy 6.B.1.D.E.F (e.g. 6.0.1.0.0.255), volume 6.B.2, power 6.B.8
(A = 6); 0x0A / 0x0B     (6.0.8.0.0.255), volume flow 6.B.9, flow temperature 6.B.10, return
cooling (A = 5)          temperature 6.B.11, temperature difference 6.B.12 (EN 13757-1 heat
                         table; the same codes as openmuc jMBus's M-Bus-to-OBIS rules)
0x07 / 0x16 water (8),   volume 8.B.1.D.E.F (e.g. 8.0.1.0.0.255; warm water 9.B.1), volume flow
0x06 / 0x15 warm (9)     8.B.2, flow temperature 8.B.3 (EN 13757-1 water table)
0x03 gas (A = 7)         volume 7.B.3.D.E.F (meter volume Vm)
0x08 HCA (A = 4)         HCA units 4.B.1.D.E.F
any medium               voltage 1.B.32.D.E.F, current 1.B.31.D.E.F; on time 0.B.96.8.0.F,
                         operating time 0.B.96.8.1.F, fabrication number 0.B.96.1.0.F, error
                         flags (VIF FD 17) 0.B.97.97.0.F (these four only for instantaneous
                         tariff-0 records)
anything else            meterpoll-private 0.B.(200 + Quantity).D.E.F, e.g. mass on a heat meter
                         0.0.203.0.0.255, external temperature 0.0.212.0.0.255, a water volume
                         in a CI 0x7A telegram decoded without ``medium`` 0.0.202.0.0.255
=======================  ==================================================================

No reading is produced for: date/time records (they are timestamps, below), variable-length
data (strings), plain-text (0x7C) and manufacturer-specific (0x7F) VIFs, records with a VIFE
other than the multiplicative corrections, 0x3B (forward) and 0x3C (reverse) - such a VIFE
changes what the record means (per pulse, per time unit, error codes ...) -, reverse (0x3C)
records of anything but electricity energy / power, records with the
function "value during error state", storage number / tariff / subunit above 254, 0x7A bus
address, 0xFD entries other than 0x17 / voltage / current, 0xFB entries other than the
MWh / GJ / 100 m3 / 100 t / MW / GJ/h ones.  ``parse_frame`` still returns every record raw.

Timestamps: readings of storage number 0 carry the meter clock (the first VIF 0x6D type F / I
record of storage 0) where the telegram has one; readings of storage number n > 0 carry the
date of the first date (0x6C type G) or date-time (0x6D) record with the same storage number,
wherever it stands in the telegram; otherwise the receive time.  An invalid date (IV bit,
impossible day) gives the receive time and quality CLOCK_INVALID.  M-Bus times are the meter's
local time and are stored as if UTC.  Years 0-80 are 2000-2080, 81-127 are 1981-2027.

Quality: METER_ERROR for every reading when the header status says application error / busy /
abnormal (bits 0-1) or permanent / temporary error (bits 3, 4); METER_ERROR and value NaN for a
BCD field holding a non-decimal digit.

Frame status ``code``: the header status byte, plus 0x100 when the telegram ends with DIF 0x1F
("more records follow": send REQ_UD2 again with the FCB toggled, see :func:`req_ud2`).
CI 0x70 (application error) gives PROTOCOL_EXCEPTION with the error byte as ``code``.
A frame that fails anywhere (framing, length, checksum, truncated record, more than 10 DIFEs or
VIFEs, reserved DIF) produces no readings.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

import numpy as np

from meterpoll.bindings.errors import (
    ChecksumError, FrameError, ProtocolExceptionError, TruncatedFrameError,
    UnsupportedFrameError, error_for_status,
)
from meterpoll.bindings.readings import FrameStatus, received_ms
from meterpoll.ext._frames import FrameBatch
from meterpoll.ext import _mbus

__all__ = [
    "ACK", "MBusFrame", "MBusRecord", "Quantity", "application_reset", "decode", "decode_batch",
    "dib_bytes", "encode_bcd", "encode_int", "encode_long_frame", "encode_record", "encode_rsp_ud",
    "encode_short_frame", "manufacturer_code", "manufacturer_id", "parse_frame", "req_ud1",
    "req_ud2", "select_secondary", "snd_nke",
]

ACK = b"\xE5"

C_SND_NKE = 0x40
C_SND_UD = 0x53
C_REQ_UD2 = 0x5B
C_REQ_UD1 = 0x5A
C_RSP_UD = 0x08
FCB = 0x20

CI_RESET = 0x50
CI_DATA_SEND = 0x51
CI_SELECT = 0x52
CI_RSP_LONG = 0x72
CI_RSP_LONG_MSB = 0x76
CI_RSP_SHORT = 0x7A
CI_RSP_NONE = 0x78
CI_APP_ERROR = 0x70

DATA_LENGTH = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, -2)


class Quantity(enum.IntEnum):
    """What a record measures (from its VIF); the meterpoll-private OBIS C is 200 + this."""

    NONE = 0
    ENERGY = 1
    VOLUME = 2
    MASS = 3
    ON_TIME = 4
    OPERATING_TIME = 5
    POWER = 6
    VOLUME_FLOW = 7
    MASS_FLOW = 8
    FLOW_TEMPERATURE = 9
    RETURN_TEMPERATURE = 10
    TEMPERATURE_DIFFERENCE = 11
    EXTERNAL_TEMPERATURE = 12
    PRESSURE = 13
    HCA = 14
    FABRICATION_NO = 15
    VOLTAGE = 16
    CURRENT = 17
    ERROR_FLAGS = 18
    DATE = 19
    DATETIME = 20


def _check_address(address: int) -> int:
    if not isinstance(address, int) or not 0 <= address <= 255:
        raise ValueError("M-Bus address must be an int 0..255, got %r" % (address,))
    return address


def encode_short_frame(c: int, address: int) -> bytes:
    """``10 C A CS 16`` with CS = (C + A) mod 256."""
    if not isinstance(c, int) or not 0 <= c <= 255:
        raise ValueError("C field must be 0..255")
    a = _check_address(address)
    return bytes((0x10, c, a, (c + a) & 0xFF, 0x16))


def encode_long_frame(c: int, address: int, ci: int, data: bytes = b"") -> bytes:
    """``68 L L 68 C A CI data CS 16``; L = 3 + len(data) (at most 255), CS = sum(C..data) mod 256.
    With no data this is the control frame ``68 03 03 68 C A CI CS 16``."""
    a = _check_address(address)
    if not 0 <= c <= 255 or not 0 <= ci <= 255:
        raise ValueError("C and CI must be 0..255")
    body = bytes((c, a, ci)) + bytes(data)
    if len(body) > 255:
        raise ValueError("long frame user data too long: L would be %d (max 255)" % len(body))
    return bytes((0x68, len(body), len(body), 0x68)) + body + bytes((sum(body) & 0xFF, 0x16))


def snd_nke(address: int) -> bytes:
    """SND_NKE (link reset, C = 0x40): ``10 40 A CS 16``; the slave answers E5 and clears its FCB."""
    return encode_short_frame(C_SND_NKE, address)


def req_ud2(address: int, fcb: bool = False) -> bytes:
    """REQ_UD2 (class-2 data, C = 0x5B, or 0x7B with the FCB set).  Toggle ``fcb`` for each new
    telegram of a multi-telegram read (code bit 0x100 / ``more_records_follow``); repeating the same
    FCB asks the slave to repeat its last answer."""
    return encode_short_frame(C_REQ_UD2 | (FCB if fcb else 0), address)


def req_ud1(address: int, fcb: bool = False) -> bytes:
    """REQ_UD1 (class-1 / alarm data, C = 0x5A, or 0x7A with the FCB set)."""
    return encode_short_frame(C_REQ_UD1 | (FCB if fcb else 0), address)


def manufacturer_id(code: str) -> int:
    """Three letters A..Z -> the 16-bit field ((c1-64)*32 + (c2-64))*32 + (c3-64) ("ELS" -> 0x1593)."""
    if not isinstance(code, str) or len(code) != 3 or not all("A" <= ch <= "Z" for ch in code):
        raise ValueError("manufacturer code must be three letters A-Z, got %r" % (code,))
    return ((ord(code[0]) - 64) << 10) | ((ord(code[1]) - 64) << 5) | (ord(code[2]) - 64)


def manufacturer_code(value: int) -> str:
    """The 16-bit manufacturer field -> three letters (bits 14..10, 9..5, 4..0, each + 64)."""
    return "".join(chr(((value >> s) & 0x1F) + 64) for s in (10, 5, 0))


def _ident_bytes(ident: str | int) -> bytes:
    """8 BCD digits, least significant byte first; 'F' nibbles are wildcards (selection only)."""
    s = ("%08d" % ident) if isinstance(ident, int) else str(ident).upper()
    if len(s) != 8 or not all(ch in "0123456789F" for ch in s):
        raise ValueError("ident must be 8 decimal digits (F = wildcard), got %r" % (ident,))
    return bytes.fromhex(s)[::-1]


def select_secondary(ident: str | int, manufacturer: str | int | None = None,
                     version: int | None = None, medium: int | None = None, *,
                     fcb: bool = True) -> bytes:
    """Secondary-address selection: SND_UD (C = 0x73 with ``fcb``, else 0x53) to A = 0xFD, CI = 0x52,
    data = ident (4 bytes BCD, LSB first) manufacturer (u16 LE) version medium.  ``None`` and 'F'
    digits are wildcards (0xFF bytes / F nibbles).  The selected slave answers E5; REQ_UD2 to 0xFD
    then reads it, SND_NKE to 0xFD deselects."""
    if manufacturer is None:
        man = 0xFFFF
    elif isinstance(manufacturer, str):
        man = manufacturer_id(manufacturer)
    else:
        man = int(manufacturer)
    if not 0 <= man <= 0xFFFF:
        raise ValueError("manufacturer must fit 16 bits")
    ver = 0xFF if version is None else version
    med = 0xFF if medium is None else medium
    if not 0 <= ver <= 255 or not 0 <= med <= 255:
        raise ValueError("version and medium must be 0..255")
    data = _ident_bytes(ident) + man.to_bytes(2, "little") + bytes((ver, med))
    return encode_long_frame(C_SND_UD | (FCB if fcb else 0), 0xFD, CI_SELECT, data)


def application_reset(address: int, subcode: int | None = None, *, fcb: bool = False) -> bytes:
    """Application reset: SND_UD (C = 0x53 / 0x73) with CI = 0x50, as a control frame, or as a long
    frame with one subcode byte (e.g. 0x10 = reset to standard readout)."""
    data = b"" if subcode is None else bytes((subcode,))
    return encode_long_frame(C_SND_UD | (FCB if fcb else 0), address, CI_RESET, data)


def encode_record(dif: int, vif: int | bytes, data: bytes, difes: bytes = b"") -> bytes:
    """One data record: DIF, DIFEs (each but the last with bit 7 set), VIF (+ VIFEs when ``vif``
    is bytes) and the data field bytes (little-endian, as the data field code of ``dif`` says)."""
    vib = bytes((vif,)) if isinstance(vif, int) else bytes(vif)
    return bytes((dif,)) + bytes(difes) + vib + bytes(data)


def dib_bytes(data_field: int, *, storage: int = 0, function: int = 0, tariff: int = 0,
              subunit: int = 0) -> bytes:
    """DIF (+ DIFEs as needed) for a data field code, storage number, function, tariff and subunit."""
    if not 0 <= data_field <= 15 or not 0 <= function <= 3:
        raise ValueError("data field 0..15, function 0..3")
    dif = data_field | (function << 4) | ((storage & 1) << 6)
    difes = []
    s, t, u = storage >> 1, tariff, subunit
    while s or t or u:
        difes.append((s & 0x0F) | ((t & 0x03) << 4) | ((u & 1) << 6))
        s, t, u = s >> 4, t >> 2, u >> 1
    if len(difes) > 10:
        raise ValueError("storage/tariff/subunit need more than 10 DIFEs")
    if difes:
        dif |= 0x80
        for i in range(len(difes) - 1):
            difes[i] |= 0x80
    return bytes((dif,)) + bytes(difes)


def encode_int(value: int, nbytes: int) -> bytes:
    """Two's complement little-endian integer of ``nbytes``."""
    return int(value).to_bytes(nbytes, "little", signed=True)


def encode_bcd(value: int, nbytes: int) -> bytes:
    """Packed BCD, least significant byte first; a negative value sets the top nibble to F."""
    digits = nbytes * 2
    v = abs(int(value))
    neg = value < 0
    if v >= 10 ** (digits - (1 if neg else 0)):
        raise ValueError("%d does not fit %d BCD digits" % (value, digits))
    s = "%0*d" % (digits, v)
    if neg:
        s = "F" + s[1:]
    return bytes.fromhex(s)[::-1]


def encode_rsp_ud(records: bytes, *, address: int = 1, ident: str | int = 0,
                  manufacturer: str | int = "ABC", version: int = 1, medium: int = 7,
                  access: int = 0, status: int = 0, signature: int = 0, ci: int = CI_RSP_LONG,
                  c: int = C_RSP_UD) -> bytes:
    """An RSP_UD long frame (the slave's answer) around already-encoded ``records``: CI 0x72 with
    the 12-byte header, 0x76 with the same header most significant byte first (the records' data
    fields must then be MSB first too), 0x7A with the 4-byte header, 0x78 with none."""
    if ci in (CI_RSP_LONG, CI_RSP_LONG_MSB):
        man = manufacturer_id(manufacturer) if isinstance(manufacturer, str) else int(manufacturer)
        order = "little" if ci == CI_RSP_LONG else "big"
        ident_b = _ident_bytes(ident)
        hdr = ((ident_b if ci == CI_RSP_LONG else ident_b[::-1]) + man.to_bytes(2, order) +
               bytes((version, medium, access, status)) + signature.to_bytes(2, order))
    elif ci == CI_RSP_SHORT:
        hdr = bytes((access, status)) + signature.to_bytes(2, "little")
    elif ci == CI_RSP_NONE:
        hdr = b""
    else:
        raise ValueError("encode_rsp_ud builds CI 0x72, 0x76, 0x7A or 0x78, not 0x%02X" % ci)
    return encode_long_frame(c, address, ci, hdr + bytes(records))


@dataclass(slots=True)
class MBusRecord:
    """One data record as it is on the wire (``offset`` = its first byte in the frame; ``data`` in
    wire order, i.e. most significant byte first in a CI 0x76 telegram)."""

    offset: int
    dif: int
    difes: bytes
    vif: int | None
    vifes: bytes
    data: bytes
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    function: int = 0
    plain_unit: str | None = None

    @property
    def data_field(self) -> int:
        return self.dif & 0x0F


@dataclass(slots=True)
class MBusFrame:
    """A validated M-Bus frame.  ``kind`` is "ack", "short", "control" or "long"; ``payload`` is
    the user data after CI (a memoryview of the frame).  For RSP_UD (CI 0x72/0x7A/0x78) the header
    fields and ``records`` are filled; ``more_records_follow`` is True for a final DIF 0x1F."""

    kind: str
    c: int | None = None
    address: int | None = None
    ci: int | None = None
    payload: memoryview = field(default_factory=lambda: memoryview(b""))
    ident: str | None = None
    manufacturer: str | None = None
    manufacturer_raw: int | None = None
    version: int | None = None
    medium: int | None = None
    access: int | None = None
    status: int | None = None
    signature: int | None = None
    records: list[MBusRecord] = field(default_factory=list)
    more_records_follow: bool = False
    manufacturer_data: bytes = b""

    @property
    def fcb(self) -> bool:
        return bool(self.c is not None and self.c & FCB)


def _buffer(data) -> bytes:
    if isinstance(data, bytes):
        return data
    try:
        return bytes(memoryview(data).cast("B"))
    except TypeError:
        raise TypeError("frame must be a bytes-like object, not %r" % type(data).__name__) from None


def _parse_records(buf: bytes, start: int, end: int, frame: MBusFrame) -> None:
    q = start
    while q < end:
        rec = q
        dif = buf[q]
        q += 1
        if dif & 0x0F == 0x0F:
            if dif in (0x0F, 0x1F):
                frame.more_records_follow = dif == 0x1F
                frame.manufacturer_data = buf[q:end]
                return
            if dif == 0x2F:
                continue
            raise UnsupportedFrameError("reserved DIF 0x%02X" % dif, rec)
        difes = bytearray()
        last = dif
        while last & 0x80:
            if q >= end:
                raise TruncatedFrameError("record ends inside its DIFEs", q)
            if len(difes) == 10:
                raise FrameError("more than 10 DIFEs", q, FrameStatus.TOO_DEEP)
            last = buf[q]
            difes.append(last)
            q += 1
        storage = (dif >> 6) & 1
        tariff = subunit = 0
        for i, d in enumerate(difes):
            storage |= (d & 0x0F) << (1 + 4 * i)
            tariff |= ((d >> 4) & 3) << (2 * i)
            subunit |= ((d >> 6) & 1) << i
        if q >= end:
            raise TruncatedFrameError("record ends before its VIF", q)
        vif = buf[q]
        q += 1
        vifes = bytearray()
        plain = None
        last = vif
        if vif & 0x7F == 0x7C:
            if q >= end:
                raise TruncatedFrameError("plain-text VIF without its length", q)
            ln = buf[q]
            q += 1
            if end - q < ln:
                raise TruncatedFrameError("plain-text VIF longer than the frame", end)
            plain = buf[q:q + ln][::-1].decode("latin-1")
            q += ln
        elif vif in (0xFB, 0xFD, 0xEF):
            if q >= end:
                raise TruncatedFrameError("extension VIF without its VIFE", q)
            last = buf[q]
            vifes.append(last)
            q += 1
        while last & 0x80:
            if q >= end:
                raise TruncatedFrameError("record ends inside its VIFEs", q)
            if len(vifes) == 10:
                raise FrameError("more than 10 VIFEs", q, FrameStatus.TOO_DEEP)
            last = buf[q]
            vifes.append(last)
            q += 1
        dlen = DATA_LENGTH[dif & 0x0F]
        if dlen == -1:
            if q >= end:
                raise TruncatedFrameError("variable-length record without LVAR", q)
            lv = buf[q]
            if lv <= 0xBF:
                dlen = lv
            elif lv <= 0xCF:
                dlen = lv - 0xC0
            elif lv <= 0xDF:
                dlen = lv - 0xD0
            elif lv <= 0xEF:
                dlen = lv - 0xE0
            elif lv <= 0xFA:
                dlen = lv - 0xF0
            else:
                raise UnsupportedFrameError("reserved LVAR 0x%02X" % lv, q)
            q += 1
        if end - q < dlen:
            raise TruncatedFrameError("data field longer than the frame", end)
        frame.records.append(MBusRecord(rec, dif, bytes(difes), vif, bytes(vifes), buf[q:q + dlen],
                                        storage, tariff, subunit, (dif >> 4) & 3, plain))
        q += dlen


def parse_frame(data, *, direction: str = "response") -> MBusFrame:
    """Validate an M-Bus frame (start/stop bytes, both L fields, length, checksum) and split it.

    ``direction="response"`` accepts E5 and RSP_UD long frames (C & 0x4F == 0x08) and parses
    their header and records; ``"request"`` accepts short / control / long frames with the PRM
    bit (0x40) set.  Raises ChecksumError, TruncatedFrameError, UnsupportedFrameError or
    FrameError (``.offset`` = byte offset, ``.status`` = FrameStatus)."""
    if direction not in ("response", "request"):
        raise ValueError("direction must be 'response' or 'request'")
    buf = _buffer(data)
    n = len(buf)
    if n == 0:
        raise TruncatedFrameError("empty frame", 0)
    if buf[0] == 0xE5:
        if n != 1:
            raise FrameError("single character E5 followed by %d more bytes" % (n - 1), 1,
                             FrameStatus.BAD_LENGTH)
        return MBusFrame("ack")
    if buf[0] == 0x10:
        if n < 5:
            raise TruncatedFrameError("short frame has %d of 5 bytes" % n, n)
        if n > 5:
            raise FrameError("short frame is 5 bytes, got %d" % n, 5, FrameStatus.BAD_LENGTH)
        if buf[4] != 0x16:
            raise FrameError("stop byte is 0x%02X, not 0x16" % buf[4], 4)
        if (buf[1] + buf[2]) & 0xFF != buf[3]:
            raise ChecksumError("checksum 0x%02X, computed 0x%02X" % (buf[3], (buf[1] + buf[2]) & 0xFF), 3)
        f = MBusFrame("short", buf[1], buf[2])
        _check_direction(f, direction)
        return f
    if buf[0] != 0x68:
        raise FrameError("start byte 0x%02X is not E5, 10 or 68" % buf[0], 0)
    if n < 4:
        raise TruncatedFrameError("long frame header has %d of 4 bytes" % n, n)
    if buf[1] != buf[2]:
        raise FrameError("L fields differ (0x%02X, 0x%02X)" % (buf[1], buf[2]), 2)
    if buf[3] != 0x68:
        raise FrameError("second start byte is 0x%02X, not 0x68" % buf[3], 3)
    ln = buf[1]
    if ln < 3:
        raise FrameError("L = %d is below the minimum 3" % ln, 1, FrameStatus.BAD_LENGTH)
    if n < ln + 6:
        raise TruncatedFrameError("frame has %d of %d bytes" % (n, ln + 6), n)
    if n > ln + 6:
        raise FrameError("frame has %d bytes, L says %d" % (n, ln + 6), ln + 6, FrameStatus.BAD_LENGTH)
    if buf[ln + 5] != 0x16:
        raise FrameError("stop byte is 0x%02X, not 0x16" % buf[ln + 5], ln + 5)
    cs = sum(buf[4:4 + ln]) & 0xFF
    if cs != buf[ln + 4]:
        raise ChecksumError("checksum 0x%02X, computed 0x%02X" % (buf[ln + 4], cs), ln + 4)
    f = MBusFrame("control" if ln == 3 else "long", buf[4], buf[5], buf[6],
                  memoryview(buf)[7:4 + ln])
    _check_direction(f, direction)
    if direction == "request":
        return f
    end = 4 + ln
    q = 7
    if f.ci in (CI_RSP_LONG, CI_RSP_LONG_MSB):
        if end - q < 12:
            raise TruncatedFrameError("CI 0x%02X header needs 12 bytes, frame has %d" % (f.ci, end - q), end)
        order = "little" if f.ci == CI_RSP_LONG else "big"
        f.ident = (buf[q:q + 4][::-1] if order == "little" else buf[q:q + 4]).hex().upper()
        f.manufacturer_raw = int.from_bytes(buf[q + 4:q + 6], order)
        f.manufacturer = manufacturer_code(f.manufacturer_raw)
        f.version, f.medium, f.access, f.status = buf[q + 6], buf[q + 7], buf[q + 8], buf[q + 9]
        f.signature = int.from_bytes(buf[q + 10:q + 12], order)
        q += 12
    elif f.ci == CI_RSP_SHORT:
        if end - q < 4:
            raise TruncatedFrameError("CI 0x7A header needs 4 bytes, frame has %d" % (end - q), end)
        f.access, f.status = buf[q], buf[q + 1]
        f.signature = buf[q + 2] | (buf[q + 3] << 8)
        q += 4
    elif f.ci == CI_RSP_NONE:
        pass
    elif f.ci == CI_APP_ERROR:
        code = buf[q] if q < end else 0
        raise ProtocolExceptionError("application error 0x%02X (CI 0x70)" % code, 6, code)
    else:
        raise UnsupportedFrameError("CI 0x%02X is not a variable-data response (72, 76, 7A, 78)" % f.ci, 6)
    _parse_records(buf, q, end, f)
    return f


def _check_direction(f: MBusFrame, direction: str) -> None:
    if direction == "response" and (f.c & 0x4F) != C_RSP_UD:
        raise UnsupportedFrameError("C field 0x%02X is not RSP_UD" % f.c, 4 if f.kind != "short" else 1)
    if direction == "request" and not f.c & 0x40:
        raise UnsupportedFrameError("C field 0x%02X has no PRM bit: not a request" % f.c,
                                    4 if f.kind != "short" else 1)


_REASONS = {
    FrameStatus.CHECKSUM: "checksum mismatch",
    FrameStatus.TRUNCATED: "frame or record truncated",
    FrameStatus.BAD_LENGTH: "length inconsistent with the L field",
    FrameStatus.UNSUPPORTED: "unsupported frame, CI, DIF or LVAR",
    FrameStatus.BAD_FRAMING: "bad start/stop byte or L fields",
    FrameStatus.TOO_DEEP: "more than 10 DIFEs or VIFEs",
    FrameStatus.OUT_OF_MEMORY: "out of memory",
    FrameStatus.PROTOCOL_EXCEPTION: "application error (CI 0x70)",
}


def _medium_arg(medium) -> int:
    if medium is None:
        return -1
    if not isinstance(medium, (int, np.integer)) or not 0 <= int(medium) <= 255:
        raise ValueError("medium must be None or a medium byte 0..255, got %r" % (medium,))
    return int(medium)


def decode(data, *, meter_id: int = 0, received_at=None, medium: int | None = None) -> np.ndarray:
    """Readings (READING_DTYPE) of one RSP_UD telegram; an E5 or short frame gives no readings.
    ``medium`` (the header medium byte, e.g. 0x07 water) chooses the OBIS media group of
    telegrams without the long header (CI 0x7A / 0x78); a CI 0x72 header's own medium wins.
    Raises the FrameError subclass of the first problem (with its byte offset)."""
    buf = _buffer(data)
    batch = FrameBatch.from_frames([buf])
    rx = int(received_ms(received_at, 1)[0])
    readings, fs = _mbus.decode_batch(batch, np.array([meter_id], dtype=np.uint32), None, rx,
                                      None, _medium_arg(medium))
    st = int(fs["status"][0])
    if st in (FrameStatus.OK, FrameStatus.NO_DATA):
        return readings
    off = int(fs["offset"][0])
    try:
        parse_frame(buf)   # the Python parser names the problem precisely
    except FrameError as e:
        if e.status == st:
            raise
    raise error_for_status(st, _REASONS.get(st, "undecodable frame"), off, int(fs["code"][0]))


def decode_batch(batch, *, meter_ids=None, received_at=None, medium=None):
    """Decode many telegrams in one native nogil pass -> (readings, frame_status).

    ``batch``: a FrameBatch or a list of bytes.  ``meter_ids``: one uint32 per frame (default
    the frame index).  ``received_at``: datetime64[ms] scalar or one per frame (default now): the
    ``ts`` of readings without a meter timestamp.  ``medium``: None, one medium byte, or one per
    frame (-1 = unknown), used for CI 0x7A / 0x78 telegrams (see :func:`decode`).  Frame status
    per frame (see module doc for ``code``); a bad frame produces no readings and never affects
    the others."""
    if not isinstance(batch, FrameBatch):
        batch = FrameBatch.from_frames(batch)
    n = len(batch)
    mids = None
    if meter_ids is not None:
        mids = np.ascontiguousarray(meter_ids, dtype=np.uint32)
        if mids.ndim != 1 or mids.shape[0] != n:
            raise ValueError("meter_ids must have one entry per frame (%d)" % n)
    rx_arr = received_ms(received_at, n)
    rx = int(rx_arr[0])
    if rx_arr.shape[0] != n or received_at is None or np.ndim(received_at) == 0:
        rx_arr = None  # one time for every frame
    media = None
    med = -1
    if medium is not None:
        arr = np.asarray(medium)
        if arr.ndim == 0:
            med = _medium_arg(int(arr))
        else:
            if arr.ndim != 1 or arr.shape[0] != n:
                raise ValueError("medium must be a scalar or have one entry per frame (%d)" % n)
            if arr.size and (arr.min() < -1 or arr.max() > 255):
                raise ValueError("medium entries must be -1 (unknown) or 0..255")
            media = np.ascontiguousarray(arr, dtype=np.int16)
    return _mbus.decode_batch(batch, mids, rx_arr, rx, media, med)
