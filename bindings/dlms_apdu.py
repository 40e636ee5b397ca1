"""DLMS/COSEM request encoders, association logic and response builders (pure Python).

This module is the *sending* side of DLMS for meterpoll: everything the engine writes to a meter
(HDLC link frames, AARQ, GET/SET/ACTION requests, release, disconnect) and everything a meter
simulator writes back (UA, AARE, GET.response normal / with-datablock / with-list, A-XDR data).
The hot-path decoding of meter answers into readings lives in :mod:`meterpoll.bindings.dlms`
(native); the small parsers here (:func:`parse_hdlc_frame`, :func:`parse_ua`, :func:`parse_aare`,
:func:`parse_rlre`, :func:`parse_aarq`, :func:`parse_xdlms_request`) serve the association
handshake and the simulators, where a Python object per field costs nothing.

Byte orders (IEC 62056-46/-47/-53/-62, Blue/Green Book):

* HDLC: ``7E | format(2, big-endian: 1010 S LLL LLLLLLLL) | dest | src | control | HCS(2) |
  info | FCS(2) | 7E``; HCS and FCS are CRC-16/X-25 (:func:`meterpoll.crc16_x25`) sent **low byte
  first**; HCS covers format..control and is present only when an information field follows; FCS
  covers format..end of info.  The 11-bit length counts the bytes between the flags.
* HDLC addresses: each byte carries 7 address bits in bits 7..1, bit 0 = 1 only on the last byte.
  Client = 1 byte ``(SAP << 1) | 1``.  Server = 1 byte (upper/logical only), 2 bytes (upper 7
  bits, lower 7 bits) or 4 bytes (upper 14 bits, lower 14 bits), most significant part first.
* LLC header in the first segment of an information field: ``E6 E6 00`` client to server,
  ``E6 E7 00`` server to client.
* A-XDR: every multi-byte integer and float is big-endian; variable lengths are one byte below
  0x80, else ``0x80 | n`` followed by ``n`` big-endian length bytes.  BER (AARQ/AARE) lengths use
  the same form.
* Wrapper (IEC 62056-47): ``version(2)=1 | source wPort(2) | destination wPort(2) | length(2) |
  APDU``, all big-endian, no LLC and no checksum.
* Conformance block: a 24-bit BIT STRING; :class:`Conformance` numbers bits in **wire order**
  (``int.from_bytes(three_bytes, "big")``), so named bit *n* of the Green Book is ``1 << (23-n)``.
  gurux_dlms stores the same block bit-reversed; :func:`conformance_from_gurux` converts.

HDLC parameter negotiation: the SNRM proposes the client's values (only the ones that differ from
the defaults 128/128/1/1 are sent, as gurux does; an SNRM without information field proposes the
defaults).  The UA answers the server's values from the server's point of view (its *transmit*
is our *receive*).  :func:`negotiate` takes the lower of proposal and answer for each direction,
as ISO/IEC 13239 / IEC 62056-46 say (gurux takes the answer as is).

Segmentation: an information field longer than the negotiated ``max_info_tx`` is sent as several
I-frames; each frame's information field (LLC included in the first) is at most ``max_info_tx``
bytes, every frame but the last has the segmentation bit S set in its format field.  gurux keeps
3 bytes spare in the first segment; both forms are valid HDLC.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from meterpoll.bindings.checksums import crc16_x25
from meterpoll.bindings.errors import (
    AddressMismatchError, ChecksumError, FrameError, ProtocolExceptionError, TruncatedFrameError,
    UnsupportedFrameError,
)
from meterpoll.bindings.readings import obis as _obis_pack

__all__ = [
    # HDLC
    "FLAG", "LLC_REQUEST", "LLC_RESPONSE", "SNRM", "UA", "DISC", "DM", "FRMR", "UI",
    "hdlc_client_address", "hdlc_server_address", "parse_hdlc_address", "hdlc_frame",
    "i_control", "rr_control", "rnr_control", "Control", "parse_control",
    "HdlcParameters", "negotiate", "snrm_frame", "ua_frame", "disc_frame", "dm_frame",
    "rr_frame", "ui_frame", "i_frames", "HdlcFrame", "parse_hdlc_frame", "parse_ua",
    "HdlcLink", "SequenceError",
    # wrapper
    "wrapper_frame", "parse_wrapper",
    # A-XDR
    "DataType", "DateTime", "axdr_length", "axdr_null", "axdr_bool", "axdr_bit_string",
    "axdr_int8", "axdr_int16", "axdr_int32", "axdr_int64", "axdr_uint8", "axdr_uint16",
    "axdr_uint32", "axdr_uint64", "axdr_enum", "axdr_float32", "axdr_float64",
    "axdr_octet_string", "axdr_visible_string", "axdr_utf8_string", "axdr_bcd",
    "axdr_date_time", "axdr_date_time_octets", "axdr_date", "axdr_time", "axdr_array",
    "axdr_structure", "axdr_value", "scaler_unit", "register_attributes", "capture_objects", "profile_buffer", "logical_name",
    # ACSE
    "Authentication", "Conformance", "DEFAULT_CONFORMANCE_LN", "DEFAULT_CONFORMANCE_SN",
    "AssociationResult", "SourceDiagnostic", "conformance_from_gurux", "conformance_to_gurux",
    "aarq", "AarqInfo", "parse_aarq", "aare", "AareInfo", "parse_aare", "rlrq", "rlre",
    "parse_rlre", "AssociationError",
    # xDLMS
    "invoke_id_and_priority", "SelectiveAccess", "range_descriptor", "entry_descriptor",
    "get_request", "get_request_next", "get_request_with_list", "set_request", "action_request",
    "ClockMethod", "set_clock_request", "clock_action_request", "DataAccessResult",
    "get_response_normal", "get_response_error", "get_response_blocks", "get_response_block_error",
    "get_response_with_list", "set_response_normal", "action_response_normal",
    "XdlmsRequest", "parse_xdlms_request",
]

# ---------------------------------------------------------------------------------------------
# HDLC (IEC 62056-46)
# ---------------------------------------------------------------------------------------------

FLAG = 0x7E
LLC_REQUEST = b"\xe6\xe6\x00"
LLC_RESPONSE = b"\xe6\xe7\x00"

# U-frame control bytes with the P/F bit set (the only form DLMS uses).
SNRM = 0x93
UA = 0x73
DISC = 0x53
DM = 0x1F
FRMR = 0x97
UI = 0x13

_MAX_FRAME_LEN = 0x7FF  # 11-bit length field


def _check_int(name: str, value: int, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError("%s must be an int in %d..%d, got %r" % (name, lo, hi, value))
    return value


def hdlc_client_address(sap: int) -> bytes:
    """One-byte client address ``(SAP << 1) | 1`` (public client 16 -> ``21``)."""
    _check_int("client SAP", sap, 0, 0x7F)
    return bytes([(sap << 1) | 1])


def hdlc_server_address(logical: int, physical: int | None = None, size: int | None = None) -> bytes:
    """Server address bytes.

    ``size`` 1: upper (logical) address only, ``(logical << 1) | 1``.  ``size`` 2: ``logical << 1``,
    ``(physical << 1) | 1`` (7 bits each).  ``size`` 4: 14 bits each, ``(logical >> 7) << 1,
    (logical & 0x7F) << 1, (physical >> 7) << 1, ((physical & 0x7F) << 1) | 1``.
    Default size: 1 without a physical address, 2 if both fit 7 bits, else 4.
    ``hdlc_server_address(1, 17) == b"\\x02\\x23"``.
    """
    if size is None:
        size = 1 if physical is None else (2 if logical < 0x80 and physical < 0x80 else 4)
    if size == 1:
        if physical is not None:
            raise ValueError("a 1-byte server address has no physical (lower) part")
        _check_int("server logical address", logical, 0, 0x7F)
        return bytes([(logical << 1) | 1])
    if physical is None:
        raise ValueError("a %d-byte server address needs a physical (lower) address" % size)
    if size == 2:
        _check_int("server logical address", logical, 0, 0x7F)
        _check_int("server physical address", physical, 0, 0x7F)
        return bytes([logical << 1, (physical << 1) | 1])
    if size == 4:
        _check_int("server logical address", logical, 0, 0x3FFF)
        _check_int("server physical address", physical, 0, 0x3FFF)
        return bytes([(logical >> 7) << 1, (logical & 0x7F) << 1,
                      (physical >> 7) << 1, ((physical & 0x7F) << 1) | 1])
    raise ValueError("HDLC server address size must be 1, 2 or 4, got %r" % (size,))


def parse_hdlc_address(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[bytes, int, int | None, int]:
    """Read one HDLC address at ``offset``: ``(raw bytes, upper, lower or None, next offset)``.

    1 byte -> (upper, None); 2 bytes -> 7 + 7 bits; 4 bytes -> 14 + 14 bits.  Raises
    :class:`TruncatedFrameError` if no byte with bit 0 set comes, :class:`FrameError` for 3 or
    more than 4 bytes.
    """
    data = bytes(data)
    end = offset
    while True:
        if end >= len(data):
            raise TruncatedFrameError("HDLC address not terminated", end)
        if data[end] & 1:
            break
        end += 1
        if end - offset >= 4:
            raise FrameError("HDLC address longer than 4 bytes", offset)
    raw = data[offset:end + 1]
    b = [x >> 1 for x in raw]
    if len(raw) == 1:
        return raw, b[0], None, end + 1
    if len(raw) == 2:
        return raw, b[0], b[1], end + 1
    if len(raw) == 4:
        return raw, (b[0] << 7) | b[1], (b[2] << 7) | b[3], end + 1
    raise FrameError("HDLC address of 3 bytes", offset)


def i_control(ns: int, nr: int, pf: bool = True) -> int:
    """I-frame control ``RRR P SSS 0``: N(R) bits 7-5, P/F bit 4, N(S) bits 3-1."""
    _check_int("N(S)", ns, 0, 7)
    _check_int("N(R)", nr, 0, 7)
    return (nr << 5) | (0x10 if pf else 0) | (ns << 1)


def rr_control(nr: int, pf: bool = True) -> int:
    """Receive-ready S-frame control ``RRR P 0001``."""
    _check_int("N(R)", nr, 0, 7)
    return (nr << 5) | (0x10 if pf else 0) | 0x01


def rnr_control(nr: int, pf: bool = True) -> int:
    """Receive-not-ready S-frame control ``RRR P 0101``."""
    _check_int("N(R)", nr, 0, 7)
    return (nr << 5) | (0x10 if pf else 0) | 0x05


class Control(NamedTuple):
    """A decoded control byte: ``kind`` is ``"I"``, ``"RR"``, ``"RNR"``, ``"REJ"``, ``"SREJ"``
    or the U-frame name (``"SNRM"``, ``"UA"``, ``"DISC"``, ``"DM"``, ``"FRMR"``, ``"UI"``,
    ``"U?"`` for others); ``ns``/``nr`` are None where the frame has none."""

    kind: str
    ns: int | None
    nr: int | None
    pf: bool


_U_NAMES = {0x83: "SNRM", 0x63: "UA", 0x43: "DISC", 0x0F: "DM", 0x87: "FRMR", 0x03: "UI"}
_S_NAMES = {0x0: "RR", 0x4: "RNR", 0x8: "REJ", 0xC: "SREJ"}


def parse_control(c: int) -> Control:
    """Decode an HDLC control byte (see :class:`Control`)."""
    _check_int("control", c, 0, 0xFF)
    pf = bool(c & 0x10)
    if not c & 1:
        return Control("I", (c >> 1) & 7, c >> 5, pf)
    if not c & 2:
        return Control(_S_NAMES[c & 0x0C], None, c >> 5, pf)
    return Control(_U_NAMES.get(c & 0xEF, "U?"), None, None, pf)


def hdlc_frame(dest: bytes, src: bytes, control: int, info: bytes | bytearray | memoryview = b"",
               *, segmented: bool = False) -> bytes:
    """One HDLC frame ``7E format dest src control [HCS info] FCS 7E``.

    ``format`` = ``0xA000 | S << 11 | length`` (big-endian); HCS/FCS CRC-16/X-25 low byte first.
    Raises ValueError if the frame is longer than the 11-bit length field allows.
    """
    _check_int("control", control, 0, 0xFF)
    info = bytes(info)
    length = 2 + len(dest) + len(src) + 1 + 2 + (len(info) + 2 if info else 0)
    if length > _MAX_FRAME_LEN:
        raise ValueError("HDLC frame of %d bytes exceeds the 11-bit length field" % length)
    head = bytearray(((0xA0 | (0x08 if segmented else 0) | (length >> 8)), length & 0xFF))
    head += dest
    head += src
    head.append(control)
    if info:
        head += crc16_x25(head).to_bytes(2, "little")
        head += info
    head += crc16_x25(head).to_bytes(2, "little")
    return b"\x7e" + bytes(head) + b"\x7e"


@dataclasses.dataclass(frozen=True)
class HdlcParameters:
    """HDLC parameters of one station: maximum information field length it transmits /
    receives (bytes, 32..2030 in practice) and window sizes (1..7)."""

    max_info_tx: int = 128
    max_info_rx: int = 128
    window_tx: int = 1
    window_rx: int = 1

    def encode(self, *, all_parameters: bool = False) -> bytes:
        """The SNRM/UA information field ``81 80 <len> {id len value}``: ids 05 max info tx,
        06 max info rx (1 byte if < 256 else 2), 07 window tx, 08 window rx (4 bytes each, as
        gurux writes them).  Parameters equal to the defaults are left out unless
        ``all_parameters``; returns ``b""`` when nothing is left (no information field)."""
        out = bytearray()
        for pid, value, default in ((5, self.max_info_tx, 128), (6, self.max_info_rx, 128)):
            _check_int("max info length", value, 1, 0xFFFF)
            if all_parameters or value != default:
                out += bytes([pid, 1, value]) if value < 0x100 else bytes([pid, 2]) + value.to_bytes(2, "big")
        for pid, value in ((7, self.window_tx), (8, self.window_rx)):
            _check_int("window size", value, 1, 7)
            if all_parameters or value != 1:
                out += bytes([pid, 4]) + value.to_bytes(4, "big")
        if not out:
            return b""
        return bytes([0x81, 0x80, len(out)]) + bytes(out)

    @classmethod
    def decode(cls, info: bytes | bytearray | memoryview) -> "HdlcParameters":
        """Parse an SNRM/UA information field (empty = all defaults).  Values may be 1, 2 or 4
        bytes.  Raises :class:`FrameError` (offset inside ``info``) if malformed."""
        info = bytes(info)
        if not info:
            return cls()
        if len(info) < 3:
            raise TruncatedFrameError("HDLC parameter header truncated", len(info))
        if info[0] != 0x81 or info[1] != 0x80:
            raise FrameError("HDLC parameters: format 81 / group 80 expected, got %02X %02X" % (info[0], info[1]), 0)
        glen = info[2]
        if 3 + glen > len(info):
            raise TruncatedFrameError("HDLC parameter group truncated", len(info))
        if 3 + glen != len(info):
            raise FrameError("HDLC parameter group length %d does not fill the field" % glen, 2)
        vals = {5: 128, 6: 128, 7: 1, 8: 1}
        pos = 3
        while pos < len(info):
            if pos + 2 > len(info):
                raise TruncatedFrameError("HDLC parameter truncated", pos)
            pid, plen = info[pos], info[pos + 1]
            if pos + 2 + plen > len(info):
                raise TruncatedFrameError("HDLC parameter value truncated", pos)
            if pid not in vals or plen not in (1, 2, 4):
                raise FrameError("unknown HDLC parameter %02X (length %d)" % (pid, plen), pos)
            vals[pid] = int.from_bytes(info[pos + 2:pos + 2 + plen], "big")
            if vals[pid] == 0:
                raise FrameError("HDLC parameter %02X is 0" % pid, pos + 2)
            pos += 2 + plen
        return cls(vals[5], vals[6], vals[7], vals[8])


def negotiate(proposed: HdlcParameters, answered: HdlcParameters) -> HdlcParameters:
    """The client's negotiated parameters: the lower of its proposal and the server's answer,
    with the server's transmit values limiting our receive values and vice versa."""
    return HdlcParameters(
        max_info_tx=min(proposed.max_info_tx, answered.max_info_rx),
        max_info_rx=min(proposed.max_info_rx, answered.max_info_tx),
        window_tx=min(proposed.window_tx, answered.window_rx),
        window_rx=min(proposed.window_rx, answered.window_tx),
    )


def snrm_frame(dest: bytes, src: bytes, params: HdlcParameters | None = None) -> bytes:
    """SNRM (0x93) with the parameter field of ``params`` (none when all defaults)."""
    return hdlc_frame(dest, src, SNRM, params.encode() if params else b"")


def ua_frame(dest: bytes, src: bytes, params: HdlcParameters | None = None, *, all_parameters: bool = True) -> bytes:
    """UA (0x73), server side: ``params`` are the server's values (its tx/rx)."""
    return hdlc_frame(dest, src, UA, params.encode(all_parameters=all_parameters) if params else b"")


def disc_frame(dest: bytes, src: bytes) -> bytes:
    """DISC (0x53), no information field."""
    return hdlc_frame(dest, src, DISC)


def dm_frame(dest: bytes, src: bytes) -> bytes:
    """DM (0x1F), the answer to SNRM/DISC of a station that is disconnected."""
    return hdlc_frame(dest, src, DM)


def rr_frame(dest: bytes, src: bytes, nr: int, pf: bool = True) -> bytes:
    """RR S-frame acknowledging up to N(R)-1 (asks for the next segment)."""
    return hdlc_frame(dest, src, rr_control(nr, pf))


def ui_frame(dest: bytes, src: bytes, info: bytes, *, llc: bytes | None = LLC_RESPONSE) -> bytes:
    """UI (0x13) frame, e.g. a push DataNotification (LLC ``E6 E7 00`` by default)."""
    return hdlc_frame(dest, src, UI, (llc or b"") + bytes(info))


def _segments(payload: bytes, max_info: int) -> list[bytes]:
    _check_int("max info field length", max_info, 1, _MAX_FRAME_LEN - 14)
    if not payload:
        return [b""]
    return [payload[i:i + max_info] for i in range(0, len(payload), max_info)]


def i_frames(dest: bytes, src: bytes, apdu: bytes, *, ns: int = 0, nr: int = 0, max_info: int = 128,
             llc: bytes | None = LLC_REQUEST, pf: bool = True) -> list[bytes]:
    """The I-frames carrying ``llc + apdu``: N(S) counts up from ``ns`` (mod 8), N(R) stays
    ``nr``; segmentation bit on every frame but the last.  Stateless: :class:`HdlcLink` keeps
    the counters for a session."""
    segs = _segments((llc or b"") + bytes(apdu), max_info)
    out = []
    for k, seg in enumerate(segs):
        out.append(hdlc_frame(dest, src, i_control((ns + k) % 8, nr, pf), seg, segmented=k < len(segs) - 1))
    return out


class HdlcFrame(NamedTuple):
    """One parsed HDLC frame.  ``dest``/``src`` are the raw address bytes, ``*_upper``/
    ``*_lower`` their values (lower None for a 1-byte address); ``info`` excludes the LLC
    header only if ``strip_llc`` was asked (``llc`` then holds it)."""

    dest: bytes
    dest_upper: int
    dest_lower: int | None
    src: bytes
    src_upper: int
    src_lower: int | None
    control: int
    segmented: bool
    info: bytes
    llc: bytes

    @property
    def kind(self) -> str:
        return parse_control(self.control).kind


def parse_hdlc_frame(data: bytes | bytearray | memoryview, *, strip_llc: bool = False) -> HdlcFrame:
    """Parse exactly one HDLC frame (flags included), checking the format type, the length,
    HCS and FCS.  Raises :class:`TruncatedFrameError`, :class:`ChecksumError` or
    :class:`FrameError` with the byte offset."""
    data = bytes(data)
    if len(data) < 9:
        raise TruncatedFrameError("HDLC frame shorter than 9 bytes", len(data))
    if data[0] != FLAG:
        raise FrameError("HDLC frame does not start with 7E", 0)
    fmt = (data[1] << 8) | data[2]
    if fmt >> 12 != 0xA:
        raise FrameError("HDLC format type %X is not A" % (fmt >> 12), 1)
    length = fmt & 0x7FF
    if length + 2 > len(data):
        raise TruncatedFrameError("HDLC frame shorter than its length field (%d)" % length, len(data))
    if length + 2 < len(data):
        raise FrameError("bytes after the HDLC frame", length + 2)
    if data[length + 1] != FLAG:
        raise FrameError("HDLC frame does not end with 7E", length + 1)
    dest, du, dl, pos = parse_hdlc_address(data[:length + 1], 3)
    src, su, sl, pos = parse_hdlc_address(data[:length + 1], pos)
    if pos >= length + 1:
        raise TruncatedFrameError("HDLC frame has no control byte", pos)
    control = data[pos]
    pos += 1
    body_end = length - 1  # index of the first FCS byte
    if pos > body_end:
        raise TruncatedFrameError("HDLC frame has no FCS", pos)
    fcs = int.from_bytes(data[body_end:body_end + 2], "little")
    if crc16_x25(data[1:body_end]) != fcs:
        raise ChecksumError("HDLC FCS mismatch", body_end)
    info = b""
    if pos < body_end:
        if pos + 2 > body_end:
            raise FrameError("HDLC frame with a 1-byte field after the control byte", pos)
        hcs = int.from_bytes(data[pos:pos + 2], "little")
        if crc16_x25(data[1:pos]) != hcs:
            raise ChecksumError("HDLC HCS mismatch", pos)
        info = data[pos + 2:body_end]
    llc = b""
    if strip_llc and info[:3] in (LLC_REQUEST, LLC_RESPONSE):
        llc, info = info[:3], info[3:]
    return HdlcFrame(dest, du, dl, src, su, sl, control, bool(fmt & 0x0800), info, llc)


def parse_ua(data: bytes | bytearray | memoryview | HdlcFrame) -> HdlcParameters:
    """The server's HDLC parameters from a UA frame (raw, server's point of view; see
    :func:`negotiate`).  A DM answer raises :class:`ProtocolExceptionError` (code 0x1F), any
    other frame :class:`UnsupportedFrameError`."""
    frame = data if isinstance(data, HdlcFrame) else parse_hdlc_frame(data)
    if frame.control == DM or frame.control == DM & 0xEF:
        raise ProtocolExceptionError("server answered DM (disconnected mode)", -1, DM)
    if frame.control & 0xEF != UA & 0xEF:
        raise UnsupportedFrameError("expected UA, got control %02X" % frame.control)
    return HdlcParameters.decode(frame.info)


class SequenceError(FrameError):
    """A received frame's N(S) or N(R) does not fit the link state (lost or repeated frame)."""

    status = 10  # FrameStatus.MISMATCH


class HdlcLink:
    """State of one HDLC link (client or server side): addresses, send/receive state variables
    V(S)/V(R), the last acknowledged N(R), negotiated sizes and windows.

    Client use::

        link = HdlcLink(client_sap=32, server_logical=1, server_physical=20)
        send(link.snrm()); link.accept_ua(recv())
        for f in link.send_apdu(aarq(...)): send(f)
        fr = parse_hdlc_frame(recv()); link.receive(fr.control)   # checks N(S)/N(R)
        if fr.segmented: send(link.rr())

    ``role="server"`` swaps the address order, uses the ``E6 E7 00`` LLC and builds UA.
    """

    def __init__(self, client_sap: int = 16, server_logical: int = 1, server_physical: int | None = None,
                 server_address_size: int | None = None, *, role: str = "client",
                 params: HdlcParameters | None = None) -> None:
        if role not in ("client", "server"):
            raise ValueError("role must be 'client' or 'server'")
        self.role = role
        self.client_address = hdlc_client_address(client_sap)
        self.server_address = hdlc_server_address(server_logical, server_physical, server_address_size)
        self.proposed = params or HdlcParameters()
        self.negotiated = self.proposed
        self.reset()

    # addresses as seen on the wire from this side
    @property
    def dest(self) -> bytes:
        return self.server_address if self.role == "client" else self.client_address

    @property
    def src(self) -> bytes:
        return self.client_address if self.role == "client" else self.server_address

    @property
    def max_info_tx(self) -> int:
        return self.negotiated.max_info_tx

    @property
    def max_info_rx(self) -> int:
        return self.negotiated.max_info_rx

    @property
    def window_tx(self) -> int:
        return self.negotiated.window_tx

    @property
    def window_rx(self) -> int:
        return self.negotiated.window_rx

    def reset(self) -> None:
        """Back to the state after SNRM/UA: V(S) = V(R) = 0, nothing outstanding."""
        self.vs = 0
        self.vr = 0
        self.va = 0  # oldest unacknowledged N(S)
        self.unacked = 0  # I-frames produced and not yet acknowledged (not reduced mod 8)

    # -- client link procedures ------------------------------------------------------------
    def snrm(self) -> bytes:
        """SNRM proposing ``self.proposed``; resets the sequence numbers."""
        self.reset()
        self.negotiated = self.proposed
        return snrm_frame(self.dest, self.src, self.proposed)

    def accept_ua(self, data: bytes | HdlcFrame) -> HdlcParameters:
        """Parse the UA answering our SNRM and store the negotiated parameters."""
        frame = data if isinstance(data, HdlcFrame) else parse_hdlc_frame(data)
        self._check_addresses(frame)
        answered = parse_ua(frame)
        self.negotiated = negotiate(self.proposed, answered)
        self.reset()
        return self.negotiated

    def disc(self) -> bytes:
        return disc_frame(self.dest, self.src)

    # -- server link procedures ------------------------------------------------------------
    def accept_snrm(self, data: bytes | HdlcFrame, *, answer_all: bool = True) -> bytes:
        """Server side: parse an SNRM, negotiate against our own ``proposed`` values and return
        the UA carrying the answer (server's point of view)."""
        frame = data if isinstance(data, HdlcFrame) else parse_hdlc_frame(data)
        self._check_addresses(frame)
        if frame.control & 0xEF != SNRM & 0xEF:
            raise UnsupportedFrameError("expected SNRM, got control %02X" % frame.control)
        client = HdlcParameters.decode(frame.info)
        # our tx is the client's rx and so on
        mine = HdlcParameters(
            max_info_tx=min(self.proposed.max_info_tx, client.max_info_rx),
            max_info_rx=min(self.proposed.max_info_rx, client.max_info_tx),
            window_tx=min(self.proposed.window_tx, client.window_rx),
            window_rx=min(self.proposed.window_rx, client.window_tx))
        self.negotiated = mine
        self.reset()
        return ua_frame(self.dest, self.src, mine, all_parameters=answer_all)

    def ua(self) -> bytes:
        return ua_frame(self.dest, self.src, self.negotiated)

    # -- data transfer ---------------------------------------------------------------------
    def send_apdu(self, apdu: bytes, *, llc: bool = True) -> list[bytes]:
        """I-frames for one APDU (LLC header added unless ``llc=False``), segmented to
        ``max_info_tx``; advances V(S) by the number of frames."""
        header = (LLC_REQUEST if self.role == "client" else LLC_RESPONSE) if llc else None
        frames = i_frames(self.dest, self.src, apdu, ns=self.vs, nr=self.vr,
                          max_info=self.max_info_tx, llc=header)
        self.vs = (self.vs + len(frames)) % 8
        self.unacked += len(frames)
        return frames

    def rr(self) -> bytes:
        """RR with N(R) = V(R): acknowledges what we received and asks for the next segment."""
        return rr_frame(self.dest, self.src, self.vr)

    def receive(self, control: int) -> Control:
        """Check a received frame's control byte against the link state and update it.

        I-frame: N(S) must equal V(R) (then V(R) += 1); I/RR/RNR: N(R) must acknowledge only
        frames we sent (V(A) <= N(R) <= V(S) modulo 8; with window 1 a segmented APDU is
        produced in one go and sent frame by frame, so up to 7 frames ahead of V(A) are taken
        as sent).  Raises :class:`SequenceError`.
        U-frames other than UI are returned as parsed without touching the counters."""
        c = parse_control(control)
        if c.kind == "I":
            if c.ns != self.vr:
                raise SequenceError("N(S)=%d, expected %d" % (c.ns, self.vr))
            self.vr = (self.vr + 1) % 8
        if c.nr is not None:
            acked = (c.nr - self.va) % 8
            if acked > min(self.unacked, 7):
                raise SequenceError("N(R)=%d outside V(A)=%d..V(S)=%d" % (c.nr, self.va, self.vs))
            self.va = c.nr
            self.unacked -= acked
        return c

    def _check_addresses(self, frame: HdlcFrame) -> None:
        if frame.dest != self.src or frame.src != self.dest:
            raise AddressMismatchError("frame %s->%s, link expects %s->%s" % (
                frame.src.hex(), frame.dest.hex(), self.dest.hex(), self.src.hex()))


# ---------------------------------------------------------------------------------------------
# Wrapper (IEC 62056-47)
# ---------------------------------------------------------------------------------------------

def wrapper_frame(apdu: bytes, source_wport: int, dest_wport: int, version: int = 1) -> bytes:
    """``version | source wPort | destination wPort | length | APDU``, 2 bytes big-endian each."""
    for name, v in (("version", version), ("source wPort", source_wport), ("destination wPort", dest_wport)):
        _check_int(name, v, 0, 0xFFFF)
    apdu = bytes(apdu)
    _check_int("APDU length", len(apdu), 0, 0xFFFF)
    return struct.pack(">HHHH", version, source_wport, dest_wport, len(apdu)) + apdu


def parse_wrapper(data: bytes | bytearray | memoryview) -> tuple[int, int, int, bytes]:
    """``(version, source wPort, destination wPort, APDU)``; raises on a short or long frame."""
    data = bytes(data)
    if len(data) < 8:
        raise TruncatedFrameError("wrapper header shorter than 8 bytes", len(data))
    version, src, dst, n = struct.unpack_from(">HHHH", data)
    if version != 1:
        raise FrameError("wrapper version %d, expected 1" % version, 0)
    if 8 + n > len(data):
        raise TruncatedFrameError("wrapper APDU shorter than its length %d" % n, len(data))
    if 8 + n < len(data):
        raise FrameError("bytes after the wrapper APDU", 8 + n)
    return version, src, dst, data[8:]


# ---------------------------------------------------------------------------------------------
# A-XDR data encoders
# ---------------------------------------------------------------------------------------------

class DataType(enum.IntEnum):
    """A-XDR Data choice tags."""

    NULL = 0x00
    ARRAY = 0x01
    STRUCTURE = 0x02
    BOOLEAN = 0x03
    BIT_STRING = 0x04
    INT32 = 0x05
    UINT32 = 0x06
    OCTET_STRING = 0x09
    VISIBLE_STRING = 0x0A
    UTF8_STRING = 0x0C
    BCD = 0x0D
    INT8 = 0x0F
    INT16 = 0x10
    UINT8 = 0x11
    UINT16 = 0x12
    COMPACT_ARRAY = 0x13
    INT64 = 0x14
    UINT64 = 0x15
    ENUM = 0x16
    FLOAT32 = 0x17
    FLOAT64 = 0x18
    DATE_TIME = 0x19
    DATE = 0x1A
    TIME = 0x1B


def axdr_length(n: int) -> bytes:
    """A-XDR / BER length: ``n`` if < 0x80, else ``0x80 | k`` + k big-endian bytes."""
    _check_int("length", n, 0, 0xFFFFFFFF)
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def axdr_null() -> bytes:
    return b"\x00"


def axdr_bool(value: bool) -> bytes:
    return b"\x03\x01" if value else b"\x03\x00"


def axdr_bit_string(bits: str | Sequence[bool] | Sequence[int]) -> bytes:
    """Bit-string ``04 <number of bits> <bytes>``: first bit = MSB of the first byte, unused
    trailing bits zero.  ``bits`` is a ``"1011"`` string or a sequence of bools/0-1."""
    if isinstance(bits, str):
        if set(bits) - {"0", "1"}:
            raise ValueError("bit string text must hold only 0 and 1")
        seq = [c == "1" for c in bits]
    else:
        seq = [bool(b) for b in bits]
    out = bytearray((len(seq) + 7) // 8)
    for i, b in enumerate(seq):
        if b:
            out[i >> 3] |= 0x80 >> (i & 7)
    return b"\x04" + axdr_length(len(seq)) + bytes(out)


def _int_enc(tag: int, size: int, signed: bool, value: int) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("integer expected, got %r" % (value,))
    lo, hi = (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if signed else (0, (1 << (8 * size)) - 1)
    if not lo <= value <= hi:
        raise ValueError("%d does not fit A-XDR type %02X (%d..%d)" % (value, tag, lo, hi))
    return bytes([tag]) + value.to_bytes(size, "big", signed=signed)


def axdr_int8(v: int) -> bytes:
    return _int_enc(0x0F, 1, True, v)


def axdr_int16(v: int) -> bytes:
    return _int_enc(0x10, 2, True, v)


def axdr_int32(v: int) -> bytes:
    return _int_enc(0x05, 4, True, v)


def axdr_int64(v: int) -> bytes:
    return _int_enc(0x14, 8, True, v)


def axdr_uint8(v: int) -> bytes:
    return _int_enc(0x11, 1, False, v)


def axdr_uint16(v: int) -> bytes:
    return _int_enc(0x12, 2, False, v)


def axdr_uint32(v: int) -> bytes:
    return _int_enc(0x06, 4, False, v)


def axdr_uint64(v: int) -> bytes:
    return _int_enc(0x15, 8, False, v)


def axdr_enum(v: int) -> bytes:
    return _int_enc(0x16, 1, False, v)


def axdr_float32(v: float) -> bytes:
    return b"\x17" + struct.pack(">f", v)


def axdr_float64(v: float) -> bytes:
    return b"\x18" + struct.pack(">d", v)


def axdr_octet_string(b: bytes | bytearray | memoryview) -> bytes:
    b = bytes(b)
    return b"\x09" + axdr_length(len(b)) + b


def axdr_visible_string(s: str | bytes) -> bytes:
    """Visible-string (tag 0A): ASCII only."""
    b = s.encode("ascii") if isinstance(s, str) else bytes(s)
    return b"\x0a" + axdr_length(len(b)) + b


def axdr_utf8_string(s: str) -> bytes:
    b = s.encode("utf-8")
    return b"\x0c" + axdr_length(len(b)) + b


def axdr_bcd(v: int) -> bytes:
    """bcd (tag 0D): one byte as the Blue Book defines it (an Integer8 in gurux)."""
    return _int_enc(0x0D, 1, True, v)


def axdr_array(elements: Iterable[bytes]) -> bytes:
    """Array ``01 <count> elements...`` of already encoded Data."""
    els = [bytes(e) for e in elements]
    return b"\x01" + axdr_length(len(els)) + b"".join(els)


def axdr_structure(elements: Iterable[bytes]) -> bytes:
    """Structure ``02 <count> elements...`` of already encoded Data."""
    els = [bytes(e) for e in elements]
    return b"\x02" + axdr_length(len(els)) + b"".join(els)


@dataclasses.dataclass(frozen=True)
class DateTime:
    """COSEM date-time (12 bytes): year (0xFFFF = not specified), month, day, weekday (1 =
    Monday; 0xFF not specified), hour, minute, second, hundredths (0xFF not specified),
    deviation in minutes (int16, 0x8000 = not specified, Blue Book sign: minutes from local
    time to UTC, so UTC+01:00 is -60), clock status (bit 0 invalid, 1 doubtful, 2 different
    base, 3 invalid status, 7 daylight saving active; 0xFF not specified)."""

    year: int = 0xFFFF
    month: int = 0xFF
    day: int = 0xFF
    weekday: int = 0xFF
    hour: int = 0xFF
    minute: int = 0xFF
    second: int = 0xFF
    hundredths: int = 0xFF
    deviation: int = -0x8000
    status: int = 0xFF

    NOT_SPECIFIED_DEVIATION = -0x8000

    def __post_init__(self) -> None:
        _check_int("year", self.year, 0, 0xFFFF)
        for name in ("month", "day", "weekday", "hour", "minute", "second", "hundredths", "status"):
            _check_int(name, getattr(self, name), 0, 0xFF)
        _check_int("deviation", self.deviation, -0x8000, 0x7FFF)

    def to_bytes(self) -> bytes:
        """The 12 bytes: year big-endian, ..., deviation int16 big-endian, status."""
        return struct.pack(">HBBBBBBBhB", self.year, self.month, self.day, self.weekday, self.hour,
                           self.minute, self.second, self.hundredths, self.deviation, self.status)

    @classmethod
    def from_bytes(cls, b: bytes | bytearray | memoryview) -> "DateTime":
        b = bytes(b)
        if len(b) != 12:
            raise ValueError("a COSEM date-time has 12 bytes, got %d" % len(b))
        return cls(*struct.unpack(">HBBBBBBBhB", b))

    @classmethod
    def from_datetime(cls, dt: _dt.datetime, *, status: int = 0, weekday: bool = True) -> "DateTime":
        """From a Python datetime: an aware one gets deviation = -(UTC offset in minutes) (Blue
        Book convention, also used by gurux and dlms-cosem), a naive one "not specified".
        Hundredths are truncated from microseconds."""
        off = dt.utcoffset()
        dev = cls.NOT_SPECIFIED_DEVIATION if off is None else -int(off.total_seconds() // 60)
        return cls(dt.year, dt.month, dt.day, dt.isoweekday() if weekday else 0xFF, dt.hour,
                   dt.minute, dt.second, dt.microsecond // 10000, dev, status)

    def to_datetime(self) -> _dt.datetime:
        """A Python datetime (aware if the deviation is specified); raises ValueError when a
        date or time field is not specified."""
        tz = None
        if self.deviation != self.NOT_SPECIFIED_DEVIATION:
            tz = _dt.timezone(_dt.timedelta(minutes=-self.deviation))
        return _dt.datetime(self.year, self.month, self.day, self.hour, self.minute, self.second,
                            0 if self.hundredths == 0xFF else self.hundredths * 10000, tzinfo=tz)


def _as_datetime(value: DateTime | _dt.datetime) -> DateTime:
    return value if isinstance(value, DateTime) else DateTime.from_datetime(value)


def axdr_date_time(value: DateTime | _dt.datetime) -> bytes:
    """date-time as its own type (tag 19, 12 bytes)."""
    return b"\x19" + _as_datetime(value).to_bytes()


def axdr_date_time_octets(value: DateTime | _dt.datetime) -> bytes:
    """date-time as ``09 0C`` octet-string, the form Clock.time and profile buffers use."""
    return b"\x09\x0c" + _as_datetime(value).to_bytes()


def axdr_date(year: int = 0xFFFF, month: int = 0xFF, day: int = 0xFF, weekday: int = 0xFF) -> bytes:
    """date (tag 1A, 5 bytes)."""
    return b"\x1a" + struct.pack(">HBBB", year, month, day, weekday)


def axdr_time(hour: int = 0xFF, minute: int = 0xFF, second: int = 0xFF, hundredths: int = 0xFF) -> bytes:
    """time (tag 1B, 4 bytes)."""
    return b"\x1b" + bytes([hour, minute, second, hundredths])


def logical_name(code: str | bytes | Sequence[int] | int) -> bytes:
    """The 6 bytes of an OBIS logical name from ``"1.0.1.8.0.255"``, ``"1-0:1.8.0*255"``, a
    6-tuple, 6 bytes or a packed int (:func:`meterpoll.obis`)."""
    if isinstance(code, int) and not isinstance(code, bool):
        _check_int("packed OBIS", code, 0, (1 << 48) - 1)
        return code.to_bytes(6, "big")
    return _obis_pack(code).to_bytes(6, "big")  # type: ignore[arg-type]


def scaler_unit(scaler: int, unit: int) -> bytes:
    """Register attribute 3: ``02 02 0F <scaler> 16 <unit>`` (value = raw x 10^scaler)."""
    return axdr_structure([axdr_int8(scaler), axdr_enum(unit)])


_SCALAR_ENCODERS = {
    DataType.NULL: lambda v: axdr_null(), DataType.BOOLEAN: axdr_bool, DataType.BIT_STRING: axdr_bit_string,
    DataType.INT32: axdr_int32, DataType.UINT32: axdr_uint32, DataType.OCTET_STRING: axdr_octet_string,
    DataType.VISIBLE_STRING: axdr_visible_string, DataType.UTF8_STRING: axdr_utf8_string, DataType.BCD: axdr_bcd,
    DataType.INT8: axdr_int8, DataType.INT16: axdr_int16, DataType.UINT8: axdr_uint8, DataType.UINT16: axdr_uint16,
    DataType.INT64: axdr_int64, DataType.UINT64: axdr_uint64, DataType.ENUM: axdr_enum,
    DataType.FLOAT32: axdr_float32, DataType.FLOAT64: axdr_float64, DataType.DATE_TIME: axdr_date_time,
}


def axdr_value(data_type: int, value: object) -> bytes:
    """Encode one scalar of the given :class:`DataType` (arrays/structures: use
    :func:`axdr_array` / :func:`axdr_structure`)."""
    try:
        enc = _SCALAR_ENCODERS[DataType(data_type)]
    except (KeyError, ValueError):
        raise ValueError("no scalar encoder for A-XDR type %r" % (data_type,)) from None
    return enc(value)  # type: ignore[arg-type]


def register_attributes(value: float, scaler: int, unit: int, data_type: int = DataType.UINT32) -> tuple[bytes, bytes]:
    """A Register's attribute 2 (value) and attribute 3 (scaler_unit) as a meter would answer
    them for the physical ``value``: raw = round(value / 10**scaler) encoded as ``data_type``
    (floats are sent unscaled-rounded as floats), scaler_unit = ``02 02 0F <scaler> 16 <unit>``."""
    dtp = DataType(data_type)
    raw: object = value / (10 ** scaler)
    if dtp not in (DataType.FLOAT32, DataType.FLOAT64):
        raw = int(round(raw))  # type: ignore[call-overload]
    return axdr_value(dtp, raw), scaler_unit(scaler, unit)


def capture_objects(columns: Iterable[tuple[int, str | bytes, int, int]]) -> bytes:
    """Profile generic attribute 3: array of structure{long-unsigned class id, octet-string
    logical name, integer attribute, long-unsigned data index}."""
    return axdr_array(axdr_structure([axdr_uint16(c), axdr_octet_string(logical_name(ln)),
                                      axdr_int8(a), axdr_uint16(d)]) for c, ln, a, d in columns)


def profile_buffer(rows: Iterable[Sequence[object]], *, value_encoder=axdr_uint32) -> bytes:
    """Profile generic attribute 2: array of structure rows.  In each row a
    :class:`DateTime`/``datetime`` becomes a ``09 0C`` date-time, ``bytes`` is taken as already
    encoded Data, None is null-data, anything else goes through ``value_encoder``."""
    def cell(v: object) -> bytes:
        if isinstance(v, (DateTime, _dt.datetime)):
            return axdr_date_time_octets(v)
        if isinstance(v, (bytes, bytearray)):
            return bytes(v)
        if v is None:
            return b"\x00"
        return value_encoder(v)
    return axdr_array(axdr_structure(cell(v) for v in row) for row in rows)


# ---------------------------------------------------------------------------------------------
# ACSE: AARQ / AARE / RLRQ / RLRE
# ---------------------------------------------------------------------------------------------

class Authentication(enum.IntEnum):
    """Mechanism name ids (last arc of 2.16.756.5.8.2.x)."""

    NONE = 0
    LOW = 1
    HIGH = 2
    HIGH_MD5 = 3
    HIGH_SHA1 = 4
    HIGH_GMAC = 5
    HIGH_SHA256 = 6
    HIGH_ECDSA = 7


class Conformance(enum.IntFlag):
    """xDLMS conformance bits, wire order (named bit n = ``1 << (23 - n)``)."""

    GENERAL_PROTECTION = 1 << 22
    GENERAL_BLOCK_TRANSFER = 1 << 21
    READ = 1 << 20
    WRITE = 1 << 19
    UNCONFIRMED_WRITE = 1 << 18
    DELTA_VALUE_ENCODING = 1 << 17
    ATTRIBUTE0_SUPPORTED_WITH_SET = 1 << 15
    PRIORITY_MGMT_SUPPORTED = 1 << 14
    ATTRIBUTE0_SUPPORTED_WITH_GET = 1 << 13
    BLOCK_TRANSFER_WITH_GET_OR_READ = 1 << 12
    BLOCK_TRANSFER_WITH_SET_OR_WRITE = 1 << 11
    BLOCK_TRANSFER_WITH_ACTION = 1 << 10
    MULTIPLE_REFERENCES = 1 << 9
    INFORMATION_REPORT = 1 << 8
    DATA_NOTIFICATION = 1 << 7
    ACCESS = 1 << 6
    PARAMETERIZED_ACCESS = 1 << 5
    GET = 1 << 4
    SET = 1 << 3
    SELECTIVE_ACCESS = 1 << 2
    EVENT_NOTIFICATION = 1 << 1
    ACTION = 1 << 0


#: ``00 1E 1D``: block transfer with get/set/action, multiple references, get, set,
#: selective access, action (the dlms-cosem vector's proposal).
DEFAULT_CONFORMANCE_LN = Conformance(0x001E1D)
#: ``1C 03 20``: read, write, unconfirmed write, multiple references, information report,
#: parameterized access (gurux's SN default).
DEFAULT_CONFORMANCE_SN = Conformance(0x1C0320)


def _bitrev24(v: int) -> int:
    return int("{:024b}".format(v & 0xFFFFFF)[::-1], 2)


def conformance_to_gurux(value: int) -> int:
    """Our wire-order conformance -> gurux_dlms ``Conformance`` int (bit-reversed)."""
    return _bitrev24(value)


def conformance_from_gurux(value: int) -> int:
    return _bitrev24(value)


class AssociationResult(enum.IntEnum):
    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class SourceDiagnostic(enum.IntEnum):
    """acse-service-user diagnostics (the acse-service-provider ones are 0 null, 1 no reason,
    2 no common ACSE version)."""

    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
    CALLING_AP_TITLE_NOT_RECOGNIZED = 3
    CALLING_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 4
    CALLING_AE_QUALIFIER_NOT_RECOGNIZED = 5
    CALLING_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 6
    CALLED_AP_TITLE_NOT_RECOGNIZED = 7
    CALLED_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 8
    CALLED_AE_QUALIFIER_NOT_RECOGNIZED = 9
    CALLED_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 10
    AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED = 11
    AUTHENTICATION_MECHANISM_NAME_REQUIRED = 12
    AUTHENTICATION_FAILURE = 13
    AUTHENTICATION_REQUIRED = 14


_DLMS_OID = b"\x60\x85\x74\x05\x08"  # 2.16.756.5.8 (joint-iso-ccitt country(16) ch(756) ...)
_CONTEXT_LN, _CONTEXT_SN = 1, 2


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + axdr_length(len(body)) + body


def _initiate_request(conformance: int, max_pdu_size: int, dlms_version: int) -> bytes:
    _check_int("conformance", int(conformance), 0, 0xFFFFFF)
    _check_int("max PDU size", max_pdu_size, 0, 0xFFFF)
    _check_int("DLMS version", dlms_version, 0, 0xFF)
    return (b"\x01\x00\x00\x00" + bytes([dlms_version]) + b"\x5f\x1f\x04\x00"
            + int(conformance).to_bytes(3, "big") + max_pdu_size.to_bytes(2, "big"))


def aarq(*, logical_name: bool = True, authentication: int = Authentication.NONE,
         password: bytes | str | None = None, conformance: int | None = None,
         max_pdu_size: int = 0xFFFF, dlms_version: int = 6, calling_ap_title: bytes | None = None,
         ciphered_initiate: bytes | None = None) -> bytes:
    """AARQ APDU (no ciphering).

    ``60 len | A1 09 06 07 60 85 74 05 08 01 <1 LN | 2 SN>`` then, with authentication,
    ``8A 02 07 80`` (sender-acse-requirements: authentication), ``8B 07 60 85 74 05 08 02 <mech>``
    (mechanism name) and ``AC len 80 len <password or challenge>`` (calling-authentication-value),
    then ``BE len 04 len`` + xDLMS InitiateRequest ``01 00 00 00 <version> 5F 1F 04 00
    <conformance 3> <client max receive PDU size 2>``.  For LOW (LLS) ``password`` is the
    password; for HLS mechanisms it is the client challenge (the HLS exchange itself is not
    handled here).

    No ciphering is done here, but an AARQ whose xDLMS InitiateRequest was ciphered elsewhere can
    be framed: ``ciphered_initiate`` (a complete ``21 ...`` glo-initiate-request) replaces the
    InitiateRequest, switches the context name to ``...01 03``/``...01 04`` (ciphered LN/SN),
    and ``calling_ap_title`` (the 8-byte client system title) goes into ``A6 len 04 len``.
    """
    auth = Authentication(authentication)
    if conformance is None:
        conformance = DEFAULT_CONFORMANCE_LN if logical_name else DEFAULT_CONFORMANCE_SN
    ctx = (_CONTEXT_LN if logical_name else _CONTEXT_SN) + (2 if ciphered_initiate is not None else 0)
    body = _tlv(0xA1, b"\x06\x07" + _DLMS_OID + bytes([1, ctx]))
    if calling_ap_title is not None:
        body += _tlv(0xA6, _tlv(0x04, bytes(calling_ap_title)))
    if auth != Authentication.NONE:
        body += b"\x8a\x02\x07\x80"
        body += b"\x8b\x07" + _DLMS_OID + bytes([2, int(auth)])
        pw = password.encode("latin-1") if isinstance(password, str) else bytes(password or b"")
        body += _tlv(0xAC, _tlv(0x80, pw))
    elif password:
        raise ValueError("a password needs authentication LOW or higher")
    if ciphered_initiate is not None:
        ui = bytes(ciphered_initiate)
    else:
        ui = _initiate_request(conformance, max_pdu_size, dlms_version)
    body += _tlv(0xBE, _tlv(0x04, ui))
    return _tlv(0x60, body)


class _Ber:
    """Minimal BER reader for the ACSE APDUs (definite lengths only)."""

    def __init__(self, data: bytes, base: int = 0) -> None:
        self.d = data
        self.p = 0
        self.base = base

    def more(self) -> bool:
        return self.p < len(self.d)

    def byte(self) -> int:
        if self.p >= len(self.d):
            raise TruncatedFrameError("ACSE APDU truncated", self.base + self.p)
        v = self.d[self.p]
        self.p += 1
        return v

    def length(self) -> int:
        n = self.byte()
        if n < 0x80:
            return n
        k = n & 0x7F
        if k == 0 or k > 4:
            raise FrameError("unsupported BER length form %02X" % n, self.base + self.p - 1)
        v = 0
        for _ in range(k):
            v = (v << 8) | self.byte()
        return v

    def take(self, n: int) -> bytes:
        if self.p + n > len(self.d):
            raise TruncatedFrameError("ACSE field longer than the APDU", self.base + self.p)
        v = self.d[self.p:self.p + n]
        self.p += n
        return v

    def tlv(self) -> tuple[int, bytes, int]:
        tag = self.byte()
        n = self.length()
        off = self.base + self.p
        return tag, self.take(n), off


def _open_apdu(apdu: bytes, tag: int, name: str) -> _Ber:
    apdu = bytes(apdu)
    outer = _Ber(apdu)
    t, body, off = outer.tlv()
    if t != tag:
        raise UnsupportedFrameError("expected %s (%02X), got tag %02X" % (name, tag, t), 0)
    if outer.more():
        raise FrameError("bytes after the %s APDU" % name, outer.p)
    return _Ber(body, off)


def _context_name(body: bytes, off: int) -> bool:
    """True for LN, False for SN referencing (ciphered contexts 3/4 map to LN/SN)."""
    if len(body) != 9 or body[:2] != b"\x06\x07" or body[2:7] != _DLMS_OID or body[7] != 1 or body[8] not in (1, 2, 3, 4):
        raise FrameError("unknown application context name %s" % body.hex(), off)
    return body[8] in (1, 3)


def _int_value(body: bytes, off: int) -> int:
    r = _Ber(body, off)
    t, v, voff = r.tlv()
    if t != 0x02 or not v:
        raise FrameError("INTEGER expected", off)
    return int.from_bytes(v, "big", signed=True)


@dataclasses.dataclass(frozen=True)
class AarqInfo:
    """What a server needs from an AARQ."""

    logical_name: bool
    authentication: int
    password: bytes | None
    conformance: int
    max_pdu_size: int
    dlms_version: int


def _parse_initiate_request(ui: bytes, off: int) -> tuple[int, int, int]:
    r = _Ber(ui, off)
    t, inner, ioff = r.tlv()
    if t != 0x04:
        raise FrameError("user-information is not an OCTET STRING", off)
    c = _Ber(inner, ioff)
    if c.byte() != 0x01:
        raise UnsupportedFrameError("user-information is not an xDLMS InitiateRequest", ioff)
    if c.byte():  # dedicated key
        c.take(c.length())
    if c.byte():  # response-allowed given explicitly
        c.byte()
    if c.byte():  # proposed QoS
        c.byte()
    version = c.byte()
    if c.take(2) != b"\x5f\x1f":
        raise FrameError("conformance block tag 5F 1F expected", ioff + c.p - 2)
    if c.byte() != 4:
        raise FrameError("conformance block length 4 expected", ioff + c.p - 1)
    c.byte()  # unused bits
    conf = int.from_bytes(c.take(3), "big")
    pdu = int.from_bytes(c.take(2), "big")
    return conf, pdu, version


def parse_aarq(apdu: bytes | bytearray | memoryview) -> AarqInfo:
    """Parse an AARQ (server side / round trips)."""
    r = _open_apdu(bytes(apdu), 0x60, "AARQ")
    ln, auth, pw, conf, pdu, ver = True, Authentication.NONE, None, None, None, None
    while r.more():
        tag, body, off = r.tlv()
        if tag == 0xA1:
            ln = _context_name(body, off)
        elif tag == 0x8B:
            if len(body) != 7 or body[:6] != _DLMS_OID + b"\x02":
                raise FrameError("unknown mechanism name %s" % body.hex(), off)
            auth = body[6]
        elif tag == 0xAC:
            t, v, _ = _Ber(body, off).tlv()
            if t != 0x80:
                raise UnsupportedFrameError("authentication value is not a charstring", off)
            pw = v
        elif tag == 0xBE:
            conf, pdu, ver = _parse_initiate_request(body, off)
    if conf is None:
        raise FrameError("AARQ without user-information", len(bytes(apdu)))
    return AarqInfo(ln, auth, pw, conf, pdu, ver)


def aare(result: int = AssociationResult.ACCEPTED, diagnostic: int = SourceDiagnostic.NULL, *,
         logical_name: bool = True, conformance: int | None = None, max_pdu_size: int = 0x04C8,
         dlms_version: int = 6, diagnostic_source: str = "user",
         service_error: tuple[int, int] | None = None, include_user_information: bool = True) -> bytes:
    """AARE APDU (server side / simulators).

    ``61 len | A1 09 <context> | A2 03 02 01 <result> | A3 05 <A1 user | A2 provider> 03 02 01
    <diagnostic> | BE len 04 len <InitiateResponse 08 00 <version> 5F 1F 04 00 <conf 3>
    <server max receive PDU 2> <vaa-name 00 07 LN | FA 00 SN>>``.  ``service_error`` =
    (service-error choice, value) puts a ConfirmedServiceError ``0E 01 <choice> <value>``
    (initiateError) into user-information instead (e.g. (6, 1) = initiate: dlms-version-too-low).
    """
    if diagnostic_source not in ("user", "provider"):
        raise ValueError("diagnostic_source must be 'user' or 'provider'")
    if conformance is None:
        conformance = DEFAULT_CONFORMANCE_LN if logical_name else DEFAULT_CONFORMANCE_SN
    _check_int("result", int(result), 0, 2)
    _check_int("diagnostic", int(diagnostic), 0, 0xFF)
    body = _tlv(0xA1, b"\x06\x07" + _DLMS_OID + bytes([1, _CONTEXT_LN if logical_name else _CONTEXT_SN]))
    body += b"\xa2\x03\x02\x01" + bytes([int(result)])
    body += b"\xa3\x05" + (b"\xa1" if diagnostic_source == "user" else b"\xa2") + b"\x03\x02\x01" + bytes([int(diagnostic)])
    if include_user_information:
        if service_error is not None:
            ui = b"\x0e\x01" + bytes([service_error[0], service_error[1]])
        else:
            _check_int("max PDU size", max_pdu_size, 0, 0xFFFF)
            ui = (b"\x08\x00" + bytes([dlms_version]) + b"\x5f\x1f\x04\x00" + int(conformance).to_bytes(3, "big")
                  + max_pdu_size.to_bytes(2, "big") + (b"\x00\x07" if logical_name else b"\xfa\x00"))
        body += _tlv(0xBE, _tlv(0x04, ui))
    return _tlv(0x61, body)


@dataclasses.dataclass(frozen=True)
class AareInfo:
    """A parsed AARE.  ``diagnostic_source`` is ``"user"`` (acse-service-user) or
    ``"provider"`` (acse-service-provider).  The InitiateResponse fields are None when the
    AARE carries none (rejections often don't); ``service_error`` = (choice, value) of a
    ConfirmedServiceError in user-information."""

    result: int
    diagnostic_source: str
    diagnostic: int
    logical_name: bool
    conformance: int | None
    max_pdu_size: int | None
    vaa_name: int | None
    dlms_version: int | None
    service_error: tuple[int, int] | None
    responding_authentication_value: bytes | None

    @property
    def accepted(self) -> bool:
        return self.result == AssociationResult.ACCEPTED


class AssociationError(ProtocolExceptionError):
    """The server rejected the association; ``code`` = diagnostic, ``result`` the association
    result, ``info`` the parsed :class:`AareInfo`."""

    def __init__(self, info: AareInfo) -> None:
        self.info = info
        self.result = info.result
        if info.diagnostic_source == "user" and info.diagnostic in SourceDiagnostic._value2member_map_:
            dname = SourceDiagnostic(info.diagnostic).name.lower().replace("_", "-")
        else:
            dname = "%s diagnostic %d" % (info.diagnostic_source, info.diagnostic)
        rname = (AssociationResult(info.result).name.lower().replace("_", "-")
                 if info.result in (0, 1, 2) else str(info.result))
        text = "association %s: %s" % (rname, dname)
        if info.service_error is not None:
            text += " (confirmed service error %d/%d)" % info.service_error
        super().__init__(text, -1, info.diagnostic)


def parse_aare(apdu: bytes | bytearray | memoryview, *, raise_on_reject: bool = False) -> AareInfo:
    """Parse an AARE: association result, result-source-diagnostic, negotiated conformance,
    server max receive PDU size, VAA name.  With ``raise_on_reject`` a rejection (or a
    ConfirmedServiceError) raises :class:`AssociationError` carrying the diagnostic."""
    apdu = bytes(apdu)
    r = _open_apdu(apdu, 0x61, "AARE")
    result = diag = None
    source = "user"
    ln = True
    conf = pdu = vaa = ver = None
    serr = None
    rav = None
    while r.more():
        tag, body, off = r.tlv()
        if tag == 0xA1:
            ln = _context_name(body, off)
        elif tag == 0xA2:
            result = _int_value(body, off)
        elif tag == 0xA3:
            inner = _Ber(body, off)
            t, v, voff = inner.tlv()
            if t not in (0xA1, 0xA2):
                raise FrameError("result-source-diagnostic choice %02X" % t, off)
            source = "user" if t == 0xA1 else "provider"
            diag = _int_value(v, voff)
        elif tag == 0xAA:
            t, v, _ = _Ber(body, off).tlv()
            rav = v
        elif tag == 0xBE:
            t, ui, uoff = _Ber(body, off).tlv()
            if t != 0x04:
                raise FrameError("user-information is not an OCTET STRING", off)
            c = _Ber(ui, uoff)
            kind = c.byte()
            if kind == 0x08:
                if c.byte():  # negotiated QoS present
                    c.byte()
                ver = c.byte()
                if c.take(2) != b"\x5f\x1f":
                    raise FrameError("conformance block tag 5F 1F expected", uoff + c.p - 2)
                if c.byte() != 4:
                    raise FrameError("conformance block length 4 expected", uoff + c.p - 1)
                c.byte()
                conf = int.from_bytes(c.take(3), "big")
                pdu = int.from_bytes(c.take(2), "big")
                vaa = int.from_bytes(c.take(2), "big")
            elif kind == 0x0E:
                c.byte()  # initiateError [1]
                serr = (c.byte(), c.byte())
            else:
                raise UnsupportedFrameError("user-information tag %02X (ciphered?)" % kind, uoff)
    if result is None or diag is None:
        raise FrameError("AARE without result or result-source-diagnostic", len(apdu))
    info = AareInfo(result, source, diag, ln, conf, pdu, vaa, ver, serr, rav)
    if raise_on_reject and (result != 0 or serr is not None):
        raise AssociationError(info)
    return info


def rlrq(reason: int | None = 0) -> bytes:
    """RLRQ ``62 03 80 01 <reason>`` (0 normal, 1 urgent, 30 user-defined); ``reason=None``
    gives the empty ``62 00``."""
    if reason is None:
        return b"\x62\x00"
    _check_int("release reason", reason, 0, 0x7F)
    return b"\x62\x03\x80\x01" + bytes([reason])


def rlre(reason: int | None = 0) -> bytes:
    """RLRE ``63 03 80 01 <reason>`` (0 normal, 1 not finished, 30 user-defined)."""
    if reason is None:
        return b"\x63\x00"
    _check_int("release reason", reason, 0, 0x7F)
    return b"\x63\x03\x80\x01" + bytes([reason])


def parse_rlre(apdu: bytes | bytearray | memoryview) -> int | None:
    """The reason of an RLRE (None if absent)."""
    r = _open_apdu(bytes(apdu), 0x63, "RLRE")
    reason = None
    while r.more():
        tag, body, off = r.tlv()
        if tag == 0x80:
            if len(body) != 1:
                raise FrameError("release reason of %d bytes" % len(body), off)
            reason = body[0]
    return reason


# ---------------------------------------------------------------------------------------------
# xDLMS services (LN referencing)
# ---------------------------------------------------------------------------------------------

def invoke_id_and_priority(invoke_id: int = 1, *, high_priority: bool = True, confirmed: bool = True) -> int:
    """``iip``: bit 7 priority high, bit 6 service class confirmed, bits 3..0 invoke id."""
    _check_int("invoke id", invoke_id, 0, 15)
    return (0x80 if high_priority else 0) | (0x40 if confirmed else 0) | invoke_id


class SelectiveAccess(NamedTuple):
    """Access selector and its already encoded parameters (Data)."""

    selector: int
    parameters: bytes

    def encode(self) -> bytes:
        return b"\x01" + bytes([self.selector]) + self.parameters


def range_descriptor(start: DateTime | _dt.datetime, end: DateTime | _dt.datetime, *,
                     restricting_class: int = 8, restricting_obis: str | bytes = "0.0.1.0.0.255",
                     restricting_attribute: int = 2, data_index: int = 0,
                     columns: Iterable[tuple[int, str | bytes, int, int]] | None = None) -> SelectiveAccess:
    """Selector 1: structure{restricting object structure{long-unsigned class, octet-string
    OBIS, integer attribute, long-unsigned data index}, from date-time, to date-time (``09 0C``
    octet-strings), selected values (array of capture object definitions; empty = all)}."""
    params = axdr_structure([
        axdr_structure([axdr_uint16(restricting_class), axdr_octet_string(logical_name(restricting_obis)),
                        axdr_int8(restricting_attribute), axdr_uint16(data_index)]),
        axdr_date_time_octets(start), axdr_date_time_octets(end),
        capture_objects(columns or ())])
    return SelectiveAccess(1, params)


def entry_descriptor(from_entry: int, to_entry: int = 0, from_selected_value: int = 1,
                     to_selected_value: int = 0) -> SelectiveAccess:
    """Selector 2: structure{double-long-unsigned from_entry, to_entry (0 = last),
    long-unsigned from_selected_value, to_selected_value (0 = last column)}."""
    return SelectiveAccess(2, axdr_structure([axdr_uint32(from_entry), axdr_uint32(to_entry),
                                               axdr_uint16(from_selected_value), axdr_uint16(to_selected_value)]))


def _descriptor(class_id: int, obis: str | bytes | int, index: int) -> bytes:
    _check_int("class id", class_id, 0, 0xFFFF)
    _check_int("attribute/method id", index, 0, 0xFF)
    return class_id.to_bytes(2, "big") + logical_name(obis) + bytes([index])


def get_request(class_id: int, obis: str | bytes | int, attribute: int = 2, *,
                access: SelectiveAccess | None = None, invoke_id: int = 1,
                high_priority: bool = True, confirmed: bool = True) -> bytes:
    """GET.request-normal ``C0 01 <iip> <class 2> <OBIS 6> <attribute 1> <00 | 01 selector
    params>``."""
    iip = invoke_id_and_priority(invoke_id, high_priority=high_priority, confirmed=confirmed)
    return (b"\xc0\x01" + bytes([iip]) + _descriptor(class_id, obis, attribute)
            + (access.encode() if access else b"\x00"))


def get_request_next(block_number: int, *, invoke_id: int = 1, high_priority: bool = True,
                     confirmed: bool = True) -> bytes:
    """GET.request-next ``C0 02 <iip> <block number 4>`` (the last block received)."""
    _check_int("block number", block_number, 0, 0xFFFFFFFF)
    iip = invoke_id_and_priority(invoke_id, high_priority=high_priority, confirmed=confirmed)
    return b"\xc0\x02" + bytes([iip]) + block_number.to_bytes(4, "big")


def get_request_with_list(items: Iterable[tuple], *, invoke_id: int = 1, high_priority: bool = True,
                          confirmed: bool = True) -> bytes:
    """GET.request-with-list ``C0 03 <iip> <count> {<class><OBIS><attr><00 | 01 ...>}``;
    items are (class_id, obis, attribute) or (class_id, obis, attribute, SelectiveAccess)."""
    iip = invoke_id_and_priority(invoke_id, high_priority=high_priority, confirmed=confirmed)
    body = bytearray()
    n = 0
    for it in items:
        class_id, obis, attr = it[0], it[1], it[2]
        access = it[3] if len(it) > 3 else None
        body += _descriptor(class_id, obis, attr) + (access.encode() if access else b"\x00")
        n += 1
    return b"\xc0\x03" + bytes([iip]) + axdr_length(n) + bytes(body)


def set_request(class_id: int, obis: str | bytes | int, attribute: int, data: bytes, *,
                access: SelectiveAccess | None = None, invoke_id: int = 1, high_priority: bool = True,
                confirmed: bool = True) -> bytes:
    """SET.request-normal ``C1 01 <iip> <class><OBIS><attr> <00 | 01 ...> <Data>``."""
    iip = invoke_id_and_priority(invoke_id, high_priority=high_priority, confirmed=confirmed)
    return (b"\xc1\x01" + bytes([iip]) + _descriptor(class_id, obis, attribute)
            + (access.encode() if access else b"\x00") + bytes(data))


def action_request(class_id: int, obis: str | bytes | int, method: int, data: bytes | None = None, *,
                   invoke_id: int = 1, high_priority: bool = True, confirmed: bool = True) -> bytes:
    """ACTION.request-normal ``C3 01 <iip> <class><OBIS><method> <00 | 01 Data>``."""
    iip = invoke_id_and_priority(invoke_id, high_priority=high_priority, confirmed=confirmed)
    return (b"\xc3\x01" + bytes([iip]) + _descriptor(class_id, obis, method)
            + (b"\x01" + bytes(data) if data is not None else b"\x00"))


class ClockMethod(enum.IntEnum):
    """Clock (class 8) methods."""

    ADJUST_TO_QUARTER = 1
    ADJUST_TO_MEASURING_PERIOD = 2
    ADJUST_TO_MINUTE = 3
    ADJUST_TO_PRESET_TIME = 4
    PRESET_ADJUSTING_TIME = 5
    SHIFT_TIME = 6


CLOCK_OBIS = "0.0.1.0.0.255"


def set_clock_request(time: DateTime | _dt.datetime, *, obis: str | bytes = CLOCK_OBIS, **kw) -> bytes:
    """SET Clock.time (class 8, attribute 2) to a ``09 0C`` date-time."""
    return set_request(8, obis, 2, axdr_date_time_octets(time), **kw)


def clock_action_request(method: int, *, shift_seconds: int = 0, preset: tuple | None = None,
                         obis: str | bytes = CLOCK_OBIS, **kw) -> bytes:
    """ACTION on the Clock: methods 1-3 carry ``integer 0``, shift_time a ``long`` (seconds,
    -900..900), preset_adjusting_time a structure{preset, validity start, validity end}
    of date-times (``preset`` = 3 DateTime/datetime), adjust_to_preset_time ``integer 0``."""
    m = ClockMethod(method)
    if m == ClockMethod.SHIFT_TIME:
        _check_int("shift seconds", shift_seconds, -900, 900)
        data = axdr_int16(shift_seconds)
    elif m == ClockMethod.PRESET_ADJUSTING_TIME:
        if not preset or len(preset) != 3:
            raise ValueError("preset_adjusting_time needs (preset, validity start, validity end)")
        data = axdr_structure(axdr_date_time_octets(p) for p in preset)
    else:
        data = axdr_int8(0)
    return action_request(8, obis, int(m), data, **kw)


class DataAccessResult(enum.IntEnum):
    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    DATA_BLOCK_NUMBER_INVALID = 19
    OTHER_REASON = 250


def _iip_byte(iip: int | None, invoke_id: int) -> int:
    if iip is not None:
        return _check_int("invoke-id-and-priority", iip, 0, 0xFF)
    return invoke_id_and_priority(invoke_id)


def get_response_normal(data: bytes, *, invoke_id: int = 1, iip: int | None = None) -> bytes:
    """GET.response-normal ``C4 01 <iip> 00 <Data>``; ``iip`` overrides the whole byte (some
    meters answer ``81`` to ``C1``)."""
    return b"\xc4\x01" + bytes([_iip_byte(iip, invoke_id), 0]) + bytes(data)


def get_response_error(result: int, *, invoke_id: int = 1, iip: int | None = None) -> bytes:
    """GET.response-normal with a data-access-result ``C4 01 <iip> 01 <dar>``."""
    _check_int("data-access-result", int(result), 0, 0xFF)
    return b"\xc4\x01" + bytes([_iip_byte(iip, invoke_id), 1, int(result)])


def get_response_blocks(data: bytes, block_size: int, *, invoke_id: int = 1, iip: int | None = None,
                        first_block: int = 1) -> list[bytes]:
    """A long encoded result as GET.response-with-datablock APDUs ``C4 02 <iip> <last-block>
    <block-number 4> 00 <raw-data length> <raw-data>``, ``block_size`` raw bytes each (the last
    may be shorter), block numbers from ``first_block``, last-block = 1 on the last one."""
    _check_int("block size", block_size, 1, 0xFFFFFFFF)
    data = bytes(data)
    chunks = [data[i:i + block_size] for i in range(0, len(data), block_size)] or [b""]
    b = _iip_byte(iip, invoke_id)
    out = []
    for k, ch in enumerate(chunks):
        last = 1 if k == len(chunks) - 1 else 0
        out.append(b"\xc4\x02" + bytes([b, last]) + (first_block + k).to_bytes(4, "big") + b"\x00"
                   + axdr_length(len(ch)) + ch)
    return out


def get_response_block_error(block_number: int, result: int, *, invoke_id: int = 1,
                             iip: int | None = None) -> bytes:
    """GET.response-with-datablock carrying a data-access-result (last-block = 1)."""
    return (b"\xc4\x02" + bytes([_iip_byte(iip, invoke_id), 1]) + block_number.to_bytes(4, "big")
            + b"\x01" + bytes([int(result)]))


def get_response_with_list(results: Iterable[bytes | int], *, invoke_id: int = 1, iip: int | None = None) -> bytes:
    """GET.response-with-list ``C4 03 <iip> <count> {00 <Data> | 01 <dar>}``: ``bytes`` items
    are encoded Data, ints are data-access-results."""
    body = bytearray()
    n = 0
    for r in results:
        body += (b"\x00" + bytes(r)) if isinstance(r, (bytes, bytearray)) else bytes([1, int(r)])
        n += 1
    return b"\xc4\x03" + bytes([_iip_byte(iip, invoke_id)]) + axdr_length(n) + bytes(body)


def set_response_normal(result: int = 0, *, invoke_id: int = 1, iip: int | None = None) -> bytes:
    """SET.response-normal ``C5 01 <iip> <dar>``."""
    return b"\xc5\x01" + bytes([_iip_byte(iip, invoke_id), int(result)])


def action_response_normal(result: int = 0, data: bytes | None = None, *, invoke_id: int = 1,
                           iip: int | None = None) -> bytes:
    """ACTION.response-normal ``C7 01 <iip> <action-result> <00 | 01 (00 Data | 01 dar)>``."""
    tail = b"\x00" if data is None else b"\x01\x00" + bytes(data)
    return b"\xc7\x01" + bytes([_iip_byte(iip, invoke_id), int(result)]) + tail


class XdlmsRequest(NamedTuple):
    """A parsed GET/SET/ACTION request (``service`` "get", "set", "action"; ``kind`` "normal",
    "next", "with-list").  ``items`` holds (class_id, obis bytes, attribute/method, selector or
    None, access parameters / data bytes) tuples."""

    service: str
    kind: str
    iip: int
    block_number: int | None
    items: tuple
    data: bytes | None

    @property
    def invoke_id(self) -> int:
        return self.iip & 0x0F


def _skip_data(b: bytes, p: int, depth: int = 0) -> int:
    """End offset of one A-XDR Data starting at ``p`` (for request parsing)."""
    if depth > 32:
        raise FrameError("A-XDR nesting too deep", p, 9)
    if p >= len(b):
        raise TruncatedFrameError("A-XDR data truncated", p)
    tag = b[p]
    p += 1
    fixed = {0: 0, 3: 1, 5: 4, 6: 4, 0x0D: 1, 0x0F: 1, 0x10: 2, 0x11: 1, 0x12: 2, 0x14: 8, 0x15: 8,
             0x16: 1, 0x17: 4, 0x18: 8, 0x19: 12, 0x1A: 5, 0x1B: 4}

    def length(p: int) -> tuple[int, int]:
        if p >= len(b):
            raise TruncatedFrameError("A-XDR length truncated", p)
        n = b[p]
        if n < 0x80:
            return n, p + 1
        k = n & 0x7F
        if k == 0 or k > 4 or p + 1 + k > len(b):
            raise TruncatedFrameError("A-XDR length truncated", p)
        return int.from_bytes(b[p + 1:p + 1 + k], "big"), p + 1 + k

    if tag in fixed:
        end = p + fixed[tag]
    elif tag in (1, 2):
        n, p = length(p)
        for _ in range(n):
            p = _skip_data(b, p, depth + 1)
        return p
    elif tag == 4:
        n, p = length(p)
        end = p + (n + 7) // 8
    elif tag in (9, 0x0A, 0x0C):
        n, p = length(p)
        end = p + n
    else:
        raise UnsupportedFrameError("A-XDR type %02X" % tag, p - 1)
    if end > len(b):
        raise TruncatedFrameError("A-XDR value truncated", len(b))
    return end


def parse_xdlms_request(apdu: bytes | bytearray | memoryview) -> XdlmsRequest:
    """Parse a GET (normal / next / with-list), SET-normal or ACTION-normal request (for the
    simulators and round-trip tests)."""
    b = bytes(apdu)
    if len(b) < 3:
        raise TruncatedFrameError("xDLMS request shorter than 3 bytes", len(b))
    tag, kind, iip = b[0], b[1], b[2]
    services = {0xC0: "get", 0xC1: "set", 0xC3: "action"}
    if tag not in services:
        raise UnsupportedFrameError("not a GET/SET/ACTION request: %02X" % tag, 0)
    service = services[tag]
    p = 3

    def descriptor(p: int) -> tuple[tuple, int]:
        if p + 9 > len(b):
            raise TruncatedFrameError("attribute descriptor truncated", len(b))
        cls_id = int.from_bytes(b[p:p + 2], "big")
        ln = b[p + 2:p + 8]
        idx = b[p + 8]
        return (cls_id, ln, idx), p + 9

    def access(p: int) -> tuple[tuple, int]:
        if p >= len(b):
            raise TruncatedFrameError("access selection flag missing", p)
        if b[p] == 0:
            return (None, None), p + 1
        if b[p] != 1 or p + 2 > len(b):
            raise FrameError("bad access selection flag %02X" % b[p], p)
        sel = b[p + 1]
        end = _skip_data(b, p + 2)
        return (sel, b[p + 2:end]), end

    if service == "get" and kind == 2:
        if len(b) != 7:
            raise FrameError("GET.request-next must be 7 bytes", min(len(b), 7))
        return XdlmsRequest("get", "next", iip, int.from_bytes(b[3:7], "big"), (), None)
    if kind == 1:
        d, p = descriptor(p)
        if service == "action":
            if p >= len(b):
                raise TruncatedFrameError("method-invocation-parameters flag missing", p)
            flag = b[p]
            p += 1
            data = None
            if flag:
                end = _skip_data(b, p)
                data, p = b[p:end], end
            if p != len(b):
                raise FrameError("bytes after the ACTION request", p)
            return XdlmsRequest("action", "normal", iip, None, (d + (None, None),), data)
        acc, p = access(p)
        data = None
        if service == "set":
            end = _skip_data(b, p)
            data, p = b[p:end], end
        if p != len(b):
            raise FrameError("bytes after the request", p)
        return XdlmsRequest(service, "normal", iip, None, (d + acc,), data)
    if service == "get" and kind == 3:
        if p >= len(b):
            raise TruncatedFrameError("GET.request-with-list count missing", p)
        n = b[p]
        p += 1
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(b[p:p + k], "big")
            p += k
        items = []
        for _ in range(n):
            d, p = descriptor(p)
            acc, p = access(p)
            items.append(d + acc)
        if p != len(b):
            raise FrameError("bytes after the request", p)
        return XdlmsRequest("get", "with-list", iip, None, tuple(items), None)
    raise UnsupportedFrameError("request type %02X %02X not handled" % (tag, kind), 1)
