"""IEC 62056-21 (formerly IEC 61107) mode C, and DSMR P1 (mode D push) telegrams.

Every message is 7-bit ASCII (7E1 on the line; this module works on the 7-bit bytes).

Requests (encoders, all return ``bytes``)
=========================================
================================  ====================================================
:func:`sign_on`                   ``/ ? [address] ! CR LF``
:func:`option_select`             ``ACK V Z Y CR LF`` (V protocol, Z baud char, Y mode)
:func:`password`                  ``SOH P1|P2 STX (password) ETX BCC``
:func:`read`                      ``SOH R1|R2 STX address(params) ETX BCC``
:func:`load_profile_request`      ``SOH R5 STX P.01(sYYMMDDhhmm;sYYMMDDhhmm) ETX BCC``
:func:`write`                     ``SOH W1|W2 STX address(value) ETX BCC``
:func:`break_session`             ``SOH B0 ETX BCC``
:func:`command`                   any ``SOH C D [STX data] ETX BCC``
:func:`data_block`                ``STX data ETX|EOT BCC`` (answers; used by tests/simulators)
================================  ====================================================

BCC = XOR (``bcc="xor"``) or arithmetic sum mod 128 (``bcc="sum7"``, Energomera) of every byte
after SOH (or after STX when there is no SOH) up to and including ETX/EOT; only its low 7 bits
are compared.  DSMR telegrams carry CRC-16/ARC over ``/`` .. ``!`` as 4 hex digits instead.

Decoding (self-describing: no request needed)
=============================================
:func:`decode` / :func:`decode_batch` turn data readouts (``STX ... ! CR LF ETX BCC``),
programming-mode answers (``STX addr(value) ETX BCC``, partial blocks ending in EOT) and DSMR
telegrams into ``READING_DTYPE`` readings.

Data-set address -> OBIS (A.B.C.D.E.F):

==============================  ==================================================================
address form                    OBIS
==============================  ==================================================================
``A-B:C.D.E*F`` / ``&F``        as written (``E`` may be left out: 0; ``*F`` left out: 255)
``C.D.E`` / ``C.D`` [``*F``]    A = 1, B = 0, E = 0, F = 255 unless given
letter groups in C, D, E        ``C`` = 96, ``F`` = 97, ``L`` = 98, ``P`` = 99 (IEC 62056-61 letter
                                codes): ``C.1.0`` -> 1.0.96.1.0.255, ``F.F`` (error register) ->
                                1.0.97.97.0.255.  Kept as readings whenever the value is numeric.
NEVA ``CCDDEEFF`` (8 hex)       1.0.C.D.E.F; E = 0x80 ("sum, T1..Tn" list) is read as E = 0, so
                                item k of the list is 1.0.C.D.k.F.  Values carry no unit; the unit
                                implied by the wb-mqtt-serial NEVA template is used: D = 8 -> kWh /
                                kvarh / kVAh, D = 7 -> kW / kvar / kVA, V (C = 12, 32, 52, 72),
                                A (C = 11, 31, 51, 71), Hz (14.7); otherwise unitless.
Energomera names                ``ET0PE`` 1.0.1.8.0 kWh, ``ET0PI`` 1.0.2.8.0 kWh, ``ET0QE`` 1.0.3.8.0
                                kvarh, ``ET0QI`` 1.0.4.8.0 kvarh (item k -> tariff E = k);
                                ``VOLTA`` 1.0.32.7.0 V, ``CURRE`` 1.0.31.7.0 A (item k -> phase k+1:
                                C = 32/52/72, 31/51/71); ``POWEP`` 1.0.1.7.0 kW, ``POWEQ`` 1.0.3.7.0
                                kvar, ``POWES`` 1.0.9.7.0 kVA, ``COS_f`` 1.0.13.7.0 (item 0 total,
                                items 1..3 the phases 21/41/61, 23/43/63, 29/49/69, 33/53/73);
                                ``FREQU`` and the CE30x GROUP code ``400D`` 1.0.14.7.0 Hz.
                                POWEQ/POWES/COS_f and the item order of POWEP are unverified.
``P.01`` .. ``P.99``            profile / logbook header (section 6.4): see below
anything else                   skipped; counted in ``frame_status.code``
==============================  ==================================================================

Several values in one data set (``ID(v1*u1)(v2*u2)``, or comma lists ``ID(v1,v2)``, or bare
``(v)`` lines continuing the previous data set): item k (k = 0, 1, ...) gets OBIS group E + k
(the tariff index), except for the phase-wise Energomera names above.  A group that is a
timestamp -- 10 digits ``YYMMDDhhmm`` or DSMR's 12 digits + ``S``/``W`` -- in a data set with at
least two groups is the timestamp of that data set's values (maximum-demand lines, DSMR gas
``0-1:24.2.1(YYMMDDhhmmssX)(value*m3)``) and is not a value itself.  A lone DSMR timestamp
group (``0-0:1.0.0``, the telegram clock) is no reading; the telegram clock is the ``ts`` of
every DSMR reading without its own timestamp.

Load profile ``P.01(sYYMMDDhhmmss)(status)(period min)(n)(id1)(unit1)...(idn)(unitn)`` then
values ``(v1)...(vn)`` on the same line or on the following lines: value j belongs to channel
j mod n and interval j div n, ``ts`` = header time + interval * period.  The logbook
``P.98(...)(status)()(n)(id)(unit)...(v1)...(vn)`` is the same with one entry per line.  The
header status is not interpreted.

Items ``[+-]digits[.digits][*unit]`` (at most 18 digits; spaces around are ignored) are
readings; anything else (text, ``ERRnn``, serial numbers in hex, empty ``()``) is not.
``frame_status.code`` of an OK frame = number of non-empty items that gave no reading.

Units -> DLMS unit code, value scaled to the base unit: ``Wh`` 30, ``varh`` 32, ``VAh`` 31,
``W`` 27, ``var`` 29, ``VA`` 28, ``V`` 35, ``A`` 33, ``J`` 25, with ``k`` (x1000), ``M``
(x10^6), ``G`` (x10^9) prefixes (case-insensitive apart from ``M``); ``Hz`` 44, ``m3`` 13,
``m3/h`` 15, ``%`` 56, ``h`` 5, ``min`` 6, ``s`` 7, ``deg`` 8.  No unit: 255 (count).  Unknown
unit: 254 (other), value unscaled.

Timestamps: DSMR ``S`` = UTC+2, ``W`` = UTC+1 (CEST/CET as DSMR specifies); mode C timestamps
(``YYMMDDhhmm``, profile headers) are meter local time, converted with ``utc_offset_min``
(default 0 = the meter runs on UTC).  The profile season digit is ignored.  An invalid date
gives the frame's receive time and quality ``CLOCK_INVALID``.

Frame status of a decode: ``NO_DATA`` for ACK, option select, sign-on, identification only,
command messages (P0 prompts, B0) and blocks without any item; ``UNSUPPORTED`` when items were
present but none could be mapped; ``PROTOCOL_EXCEPTION`` (code 0x15) for NAK.
"""
from __future__ import annotations

import datetime as _dt

import numpy as np

from meterpoll.bindings.errors import FrameError, error_for_status
from meterpoll.bindings.readings import received_ms
from meterpoll.ext import _iec62056_21 as _native
from meterpoll.ext._frames import FrameBatch

__all__ = [
    "BAUD_RATES",
    "IecFrame",
    "Identification",
    "bcc_of",
    "break_session",
    "command",
    "data_block",
    "decode",
    "decode_batch",
    "load_profile_request",
    "option_select",
    "parse_frame",
    "parse_identification",
    "password",
    "read",
    "sign_on",
    "write",
    "ACK",
    "NAK",
]

SOH, STX, ETX, EOT, ACK, NAK = b"\x01", b"\x02", b"\x03", b"\x04", b"\x06", b"\x15"
CRLF = b"\r\n"

#: Baud-rate character of the identification -> baud: mode C/E digits, mode B letters.
BAUD_RATES = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200,
              "A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}
_BAUD_CHAR = {v: k for k, v in BAUD_RATES.items() if k.isdigit()}

_BCC_MODES = {"xor": 0, "sum7": 1, "none": 2}


def _bcc_mode(bcc: str) -> int:
    try:
        return _BCC_MODES[bcc]
    except (KeyError, TypeError):
        raise ValueError("bcc must be 'xor', 'sum7' or 'none', not %r" % (bcc,)) from None


def bcc_of(data: bytes, bcc: str = "xor") -> int:
    """BCC (7 bits) of ``data`` = the bytes after SOH/STX up to and including ETX/EOT."""
    mode = _bcc_mode(bcc)
    if mode == 1:
        return sum(data) & 0x7F
    x = 0
    for b in data:
        x ^= b
    return x & 0x7F


def _ascii(value: str | bytes, what: str, forbidden: bytes = b"()!/", controls: bytes = b"") -> bytes:
    if isinstance(value, str):
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("%s must be ASCII: %r" % (what, value)) from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise TypeError("%s must be str or bytes, not %s" % (what, type(value).__name__))
    for b in raw:
        if (b < 0x20 and b not in controls) or b > 0x7E or b in forbidden:
            raise ValueError("%s contains a byte not allowed here: %r" % (what, raw))
    return raw


# ----------------------------------------------------------------------------- encoders

def sign_on(address: str | bytes = "") -> bytes:
    """Sign-on request ``/?[address]!`` CR LF (address: up to 32 printable characters)."""
    a = _ascii(address, "address")
    if len(a) > 32:
        raise ValueError("device address longer than 32 characters")
    return b"/?" + a + b"!" + CRLF


def option_select(*, mode: str = "readout", baud: int | None = None, baud_char: str | None = None,
                  protocol: str = "0") -> bytes:
    """Acknowledgement / option select ``ACK V Z Y CR LF``.

    ``protocol`` V: ``"0"`` normal, ``"1"`` secondary, ``"2"`` HDLC (mode E).  Z: the baud char
    (``baud_char``, or from ``baud`` in 300..19200; default ``"0"`` = stay at 300 Bd).
    ``mode`` Y: ``"readout"`` (``0``), ``"programming"`` (``1``), or a digit."""
    if protocol not in ("0", "1", "2"):
        raise ValueError("protocol must be '0', '1' or '2'")
    if baud is not None and baud_char is not None:
        raise ValueError("give baud or baud_char, not both")
    if baud is not None:
        if baud not in _BAUD_CHAR:
            raise ValueError("mode C baud rates are %s" % sorted(_BAUD_CHAR))
        z = _BAUD_CHAR[baud]
    else:
        z = "0" if baud_char is None else baud_char
        if z not in _BAUD_CHAR.values():
            raise ValueError("baud_char must be '0'..'6'")
    y = {"readout": "0", "programming": "1"}.get(mode, mode)
    if not (isinstance(y, str) and len(y) == 1 and y.isdigit()):
        raise ValueError("mode must be 'readout', 'programming' or one digit")
    return ACK + (protocol + z + y).encode() + CRLF


def command(cmd: str, data: str | bytes | None = None, *, bcc: str = "xor") -> bytes:
    """Command message ``SOH C D STX data ETX BCC`` (``SOH C D ETX BCC`` when data is None).
    ``cmd`` is a letter of P, W, R, E, B and a digit, e.g. ``"R1"``."""
    if not (isinstance(cmd, str) and len(cmd) == 2 and cmd[0] in "PWREB" and cmd[1].isdigit()):
        raise ValueError("command must be one of P, W, R, E, B followed by a digit, e.g. 'R1'")
    body = cmd.encode()
    if data is not None:
        body += STX + _ascii(data, "command data", b"", b"\r\n")
    body += ETX
    return SOH + body + bytes([bcc_of(body, bcc)])


def _dataset(address: str | bytes, value: str | bytes) -> bytes:
    return _ascii(address, "address") + b"(" + _ascii(value, "value") + b")"


def password(pw: str | bytes, *, level: int = 1, bcc: str = "xor") -> bytes:
    """Password command ``SOH P1 STX (pw) ETX BCC`` (``level=2``: P2, manufacturer level)."""
    if level not in (1, 2):
        raise ValueError("password level is 1 or 2")
    return command("P%d" % level, b"(" + _ascii(pw, "password") + b")", bcc=bcc)


def read(address: str | bytes, params: str | bytes = "", *, formatted: bool = False,
         bcc: str = "xor") -> bytes:
    """Read command ``SOH R1 STX address(params) ETX BCC`` (``formatted=True``: R2).  E.g.
    ``read("VOLTA", bcc="sum7")`` for an Energomera, ``read("100700FF")`` for a NEVA."""
    return command("R2" if formatted else "R1", _dataset(address, params), bcc=bcc)


def write(address: str | bytes, value: str | bytes, *, formatted: bool = False,
          bcc: str = "xor") -> bytes:
    """Write command ``SOH W1 STX address(value) ETX BCC`` (``formatted=True``: W2)."""
    return command("W2" if formatted else "W1", _dataset(address, value), bcc=bcc)


def _profile_time(t: _dt.datetime | None, season: int) -> str:
    if t is None:
        return ""
    return "%d%02d%02d%02d%02d%02d" % (season, t.year % 100, t.month, t.day, t.hour, t.minute)


def load_profile_request(start: _dt.datetime, end: _dt.datetime | None = None, *, profile: int = 1,
                         season: int = 0, bcc: str = "xor") -> bytes:
    """``SOH R5 STX P.nn(sYYMMDDhhmm;sYYMMDDhhmm) ETX BCC``: profile ``nn`` (1 = load profile,
    98 = logbook) between two meter-local times (``end=None`` leaves the 'to' part empty)."""
    if not 1 <= profile <= 99:
        raise ValueError("profile number is 1..99")
    if season not in range(10):
        raise ValueError("season flag is one digit")
    rng = _profile_time(start, season) + ";" + _profile_time(end, season)
    return command("R5", "P.%02d(%s)" % (profile, rng), bcc=bcc)


def break_session(*, bcc: str = "xor") -> bytes:
    """Break ``SOH B0 ETX BCC`` (ends programming mode)."""
    return command("B0", None, bcc=bcc)


def data_block(lines: list[str | bytes] | str | bytes, *, end: bool = True, partial: bool = False,
               bcc: str = "xor") -> bytes:
    """``STX data ETX BCC`` (``partial=True``: EOT).  ``lines`` are joined with CR LF; ``end`` adds
    the readout end line ``!`` CR LF."""
    if isinstance(lines, (str, bytes)):
        body = _ascii(lines, "data", b"", b"\r\n")
    else:
        body = b"".join(_ascii(x, "data line", b"") + CRLF for x in lines)
    if end:
        body += b"!" + CRLF
    body += EOT if partial else ETX
    return STX + body + bytes([bcc_of(body, bcc)])


# ----------------------------------------------------------------------------- frames

class Identification:
    """Identification message ``/XXXZ[\\W]ident`` CR LF."""

    __slots__ = ("manufacturer", "baud_char", "baud", "mode", "enhanced", "ident", "short_reaction")

    def __init__(self, manufacturer: str, baud_char: str, ident: str, enhanced: str | None) -> None:
        self.manufacturer = manufacturer
        self.baud_char = baud_char
        self.baud = BAUD_RATES.get(baud_char)
        self.mode = "C" if baud_char.isdigit() else ("B" if baud_char in "ABCDEF" else "A")
        self.enhanced = enhanced
        self.ident = ident
        #: third manufacturer letter lower case: the meter answers after 20 ms (not 200 ms)
        self.short_reaction = manufacturer[2].islower()

    def __repr__(self) -> str:
        return "Identification(manufacturer=%r, baud_char=%r, baud=%r, enhanced=%r, ident=%r)" % (
            self.manufacturer, self.baud_char, self.baud, self.enhanced, self.ident)


def parse_identification(data: bytes | bytearray | memoryview) -> Identification:
    """Parse ``/XXXZ[\\W]ident`` CR LF (the first line of ``data``; a DSMR telegram starts with one)."""
    raw = bytes(data)
    if not raw.startswith(b"/") or raw.startswith(b"/?"):
        raise FrameError("identification must start with '/' (and is not a '/?' sign-on)", 0)
    lf = raw.find(b"\n")
    if lf < 0:
        raise error_for_status(2, "identification line not terminated by CR LF", len(raw))
    if lf < 6 or raw[lf - 1] != 0x0D:
        raise FrameError("identification line malformed (needs /XXXZ ident CR LF)", lf)
    line = raw[1:lf - 1]
    for i, b in enumerate(line):
        if b < 0x20 or b > 0x7E:
            raise FrameError("non-printable byte in identification", i + 1)
    text = line.decode("ascii")
    ident = text[4:]
    enhanced = None
    if ident.startswith("\\") and len(ident) >= 2:
        enhanced = ident[1]
        ident = ident[2:]
    return Identification(text[:3], text[3], ident, enhanced)


class IecFrame:
    """One IEC 62056-21 message.  ``kind``: ``"sign_on"``, ``"identification"``, ``"ack"``,
    ``"nak"``, ``"option_select"``, ``"command"`` (SOH; ``command`` = e.g. ``"R1"``), ``"data"``
    (STX block; ``partial`` when it ends in EOT) or ``"dsmr"``.  ``payload`` is a memoryview of
    the data between STX (or the identification line) and ETX/EOT/``!``; ``bcc`` the received
    BCC (or DSMR CRC, None when absent)."""

    __slots__ = ("kind", "command", "payload", "bcc", "partial", "address", "identification",
                 "protocol", "baud_char", "mode")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.command: str | None = None
        self.payload = memoryview(b"")
        self.bcc: int | None = None
        self.partial = False
        self.address: str | None = None
        self.identification: Identification | None = None
        self.protocol: str | None = None
        self.baud_char: str | None = None
        self.mode: str | None = None

    def __repr__(self) -> str:
        return "IecFrame(kind=%r, command=%r, payload=%r, bcc=%r)" % (
            self.kind, self.command, bytes(self.payload), self.bcc)


def _block_end(raw: bytes, start: int, bcc: str) -> tuple[int, int]:
    """(index of ETX/EOT, bcc) of the block whose first checked byte is raw[start]."""
    i = start
    while i < len(raw) and raw[i] not in (3, 4):
        i += 1
    if i >= len(raw):
        raise error_for_status(2, "no ETX/EOT: block not terminated", len(raw))
    if i + 1 >= len(raw):
        raise error_for_status(2, "BCC missing after ETX/EOT", len(raw))
    if i + 2 < len(raw):
        raise error_for_status(3, "bytes after the BCC", i + 2)
    got = raw[i + 1]
    if _bcc_mode(bcc) != 2 and (bcc_of(raw[start:i + 1], bcc) ^ got) & 0x7F:
        raise error_for_status(1, "BCC mismatch: received %02X, computed %02X"
                               % (got, bcc_of(raw[start:i + 1], bcc)), i + 1)
    return i, got


def parse_frame(data: bytes | bytearray | memoryview, *, direction: str = "response",
                bcc: str = "xor") -> IecFrame:
    """Validate one message's framing and BCC/CRC and return an :class:`IecFrame` (``direction``
    is accepted for API symmetry; IEC 62056-21 messages identify themselves)."""
    if direction not in ("request", "response"):
        raise ValueError("direction must be 'request' or 'response'")
    _bcc_mode(bcc)
    raw = bytes(data)
    mv = memoryview(raw)
    if not raw:
        raise error_for_status(2, "empty frame", 0)
    b0 = raw[0]
    if b0 == 0x06:
        if len(raw) == 1:
            return IecFrame("ack")
        f = IecFrame("option_select")
        if len(raw) < 6:
            raise error_for_status(2, "option select truncated", len(raw))
        if len(raw) > 6 or raw[4:6] != CRLF or not (chr(raw[1]).isdigit() and chr(raw[3]).isdigit()):
            raise FrameError("malformed acknowledgement/option select", 1)
        f.protocol, f.baud_char, f.mode = chr(raw[1]), chr(raw[2]), chr(raw[3])
        return f
    if b0 == 0x15:
        if len(raw) != 1:
            raise error_for_status(3, "NAK is a single byte", 1)
        return IecFrame("nak")
    if b0 == 0x01:
        if len(raw) < 3:
            raise error_for_status(2, "command header truncated", len(raw))
        if chr(raw[1]) not in "PWREB" or not chr(raw[2]).isdigit():
            raise FrameError("bad command message header (SOH C D)", 1)
        end, got = _block_end(raw, 1, bcc)
        f = IecFrame("command")
        f.command = raw[1:3].decode()
        f.bcc = got
        f.partial = raw[end] == 4
        if end > 3 and raw[3] == 2:
            f.payload = mv[4:end]
        else:
            f.payload = mv[3:end]
        return f
    if b0 == 0x02:
        end, got = _block_end(raw, 1, bcc)
        f = IecFrame("data")
        f.bcc = got
        f.partial = raw[end] == 4
        f.payload = mv[1:end]
        return f
    if b0 == 0x2F:
        if raw.startswith(b"/?"):
            if not raw.endswith(b"!\r\n") or len(raw) < 5:
                raise error_for_status(2, "sign-on request not terminated by '!' CR LF", len(raw))
            f = IecFrame("sign_on")
            f.address = raw[2:-3].decode("latin-1")
            return f
        ident = parse_identification(raw)
        lf = raw.index(b"\n")
        if lf + 1 == len(raw):
            f = IecFrame("identification")
            f.identification = ident
            return f
        if raw[lf + 1] == 2:
            end, got = _block_end(raw, lf + 2, bcc)
            f = IecFrame("data")
            f.identification = ident
            f.bcc = got
            f.partial = raw[end] == 4
            f.payload = mv[lf + 2:end]
            return f
        bang = raw.find(b"!", lf + 1)
        if bang < 0:
            raise error_for_status(2, "DSMR telegram without '!' end", len(raw))
        # the native decoder owns the tail rules; reuse its verdict
        _r, status, _code, offset, reason = _native.decode_one(raw, _bcc_mode(bcc), 0, 0, 0)
        if status in (1, 2) or _native.REASONS[reason].startswith("malformed CRC"):
            raise error_for_status(status, _native.REASONS[reason], offset)
        f = IecFrame("dsmr")
        f.identification = ident
        f.payload = mv[lf + 1:bang]
        tail = raw[bang + 1:bang + 5]
        f.bcc = int(tail, 16) if len(tail) == 4 and all(c in b"0123456789abcdefABCDEF" for c in tail) else None
        return f
    raise FrameError("unknown start byte %02X (expected STX, SOH, '/', ACK or NAK)" % b0, 0)


# ----------------------------------------------------------------------------- decoding

def _per_frame_ms(received_at, n: int) -> np.ndarray:
    """received_at as one int64 ms value per frame (the native batch loop indexes it)."""
    rx = received_ms(received_at, n)
    return rx if rx.shape[0] == n else np.full(n, rx[0], dtype=np.int64)


def decode(data: bytes | bytearray | memoryview, *, bcc: str = "xor", request=None,
           meter_id: int = 0, received_at=None, utc_offset_min: int = 0) -> np.ndarray:
    """Readings of one answer (data readout, programming-mode answer, partial block or DSMR
    telegram) as a ``READING_DTYPE`` array.  Messages without readings (ACK, P0 prompts,
    identification) give an empty array; a bad frame raises the precise :class:`FrameError`
    subclass (``ChecksumError``, ``TruncatedFrameError``, ``UnsupportedFrameError``,
    ``ProtocolExceptionError`` for NAK, ...).  ``request`` is accepted and ignored (answers are
    self-describing)."""
    mode = _bcc_mode(bcc)
    if not 0 <= meter_id <= 0xFFFFFFFF:
        raise ValueError("meter_id must fit in uint32")
    if not -1440 <= utc_offset_min <= 1440:
        raise ValueError("utc_offset_min must be within +-1440")
    rx = int(received_ms(received_at, 1)[0])
    readings, status, code, offset, reason = _native.decode_one(data, mode, rx, meter_id, utc_offset_min)
    if status in (0, 12):
        return readings
    raise error_for_status(status, _native.REASONS[reason], offset, code)


def decode_batch(batch, *, bcc: str = "xor", requests=None, meter_ids=None, received_at=None,
                 utc_offset_min: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Decode many answers in one native nogil loop -> ``(readings, frame_status)``.

    ``batch``: a FrameBatch or a list of bytes-like frames.  ``meter_ids``: one uint32 per frame
    (default: frame index).  ``received_at``: datetime64[ms] scalar or one per frame (default
    now).  A bad frame only loses its own readings; its status, offset and (OK frames) skipped
    item count are in ``frame_status``."""
    mode = _bcc_mode(bcc)
    if not -1440 <= utc_offset_min <= 1440:
        raise ValueError("utc_offset_min must be within +-1440")
    if not isinstance(batch, FrameBatch):
        batch = FrameBatch.from_frames(batch)
    n = len(batch)
    mids = None
    if meter_ids is not None:
        mids = np.asarray(meter_ids)
        if mids.shape != (n,):
            raise ValueError("meter_ids needs one id per frame (%d), got shape %s" % (n, mids.shape))
        if mids.dtype != np.uint32:
            if mids.size and (mids.min() < 0 or mids.max() > 0xFFFFFFFF):
                raise ValueError("meter_ids must fit in uint32")
            mids = mids.astype(np.uint32)
        mids = np.ascontiguousarray(mids)
    rx = _per_frame_ms(received_at, n)
    return _native.decode_many(batch, mode, mids, rx, utc_offset_min)

