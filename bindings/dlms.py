"""DLMS/COSEM decoding: HDLC (IEC 62056-46) and TCP wrapper (IEC 62056-47) frames, xDLMS
GET.response APDUs and A-XDR data, straight into readings (native core: ``meterpoll.ext._dlms``).

Byte orders: every HDLC/wrapper/A-XDR integer is big-endian; HDLC HCS/FCS (CRC-16/X-25) are
sent low byte first.  Request encoders and the association (SNRM/UA, AARQ/AARE) live in
:mod:`meterpoll.bindings.dlms_apdu`.

One *response item* is everything the meter sent for one request: one HDLC frame, several
segmented HDLC frames back to back, several frames/wrapper messages each carrying one
GET.response-with-datablock block, or one bare APDU.  :func:`decode` and :func:`decode_batch`
take items; :func:`split_frames` cuts a received byte stream into HDLC frames.

Readings (see ``meterpoll.ext._dlms`` for the full rules):

- register (class 3, attribute 2): ``value * 10**scaler`` with the ``scaler_unit`` of the
  object (attribute 3, read once), the OBIS of the request, ts = receive time.
- profile generic (class 7, attribute 2 buffer): ``columns`` describe the capture objects (one
  :class:`Column` per column: OBIS, scaler, unit; one ``Column.clock()``); every row gives one
  reading per value column at the row's clock time, converted to UTC as local + deviation
  (DLMS sign: CET is -60).  A deviation of 0x8000 (not specified) is taken as UTC unless
  ``deviation_default`` says otherwise.  Null clocks (compressed profiles) take previous row +
  ``capture_period``.  Invalid clock status / impossible times: receive time and
  ``Quality.CLOCK_INVALID``; doubtful clock: meter time kept, ``Quality.CLOCK_INVALID``.
- push (DataNotification ``0F``, e.g. HAN ports, in UI or I frames): every element
  {logical name, numeric value, [scaler_unit]} of the notification body becomes a reading; the
  time is the notification's date-time, else the element 0.0.1.0.0.255, else the receive time.

Units are DLMS units (:class:`Unit`): energies in Wh/varh/VAh (a meter's kWh register with
scaler 3 gives Wh), power W/var/VA, voltage V, current A, frequency Hz, angles degrees,
volume m3, heat energy J (unit 25) or Wh (30) as the meter states it.  Registers read without a
``scaler_unit`` get scaler 0 and unit 255 (COUNT = no unit).

Error codes in ``frame_status.code``: data-access-result (e.g. 4 object-undefined) for
GET.response errors; ``state_error << 8 | service_error`` for an exception-response (D8);
``error_type_tag << 8 | value`` for a confirmed-service-error (0E); the control byte for an
HDLC DM (0x1F) or FRMR (0x97).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from meterpoll.bindings.errors import FrameError, error_for_status
from meterpoll.bindings.readings import FrameStatus, obis as _obis, received_ms
from meterpoll.ext import _dlms
from meterpoll.ext._dlms import COL_DTYPE, READ_REQ_DTYPE, Date, DateTime, DlmsDecodeError, Time
from meterpoll.ext._frames import FrameBatch

__all__ = [
    "Column", "Date", "DateTime", "GetRequest", "GetResponse", "HdlcFrame", "parse_get_response", "Time", "WrapperFrame",
    "columns_from_capture_objects", "datetime_to_utc_ms", "decode", "decode_batch",
    "decode_data", "parse_frame", "parse_request", "reassemble", "split_frames",
]

_FRAMING = {None: 0, "auto": 0, "hdlc": 1, "wrapper": 2, "apdu": 3}
_KIND = {"value": 0, "clock": 1, "skip": 2}
UNIT_NONE = 255


def _framing(framing: str | None) -> int:
    try:
        return _FRAMING[framing]
    except KeyError:
        raise ValueError("framing must be 'auto', 'hdlc', 'wrapper' or 'apdu', not %r" % (framing,)) from None


def _err(e: DlmsDecodeError) -> FrameError:
    st, off, why, code = e.args
    return error_for_status(st, why, off, code)


def _buffer(data: Any) -> memoryview:
    try:
        return memoryview(data).cast("B")
    except TypeError:
        raise TypeError("data must be a bytes-like object, not %r" % type(data).__name__) from None


# ---------------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------------

def _addr_parts(raw: int, n: int) -> tuple[int, int | None]:
    """(upper, lower) of an HDLC address: 1 byte -> (value, None); 2 bytes -> 7 bits each;
    4 bytes -> 14 bits each."""
    b = raw.to_bytes(n, "big")
    if n == 1:
        return b[0] >> 1, None
    if n == 2:
        return b[0] >> 1, b[1] >> 1
    return ((b[0] >> 1) << 7) | (b[1] >> 1), ((b[2] >> 1) << 7) | (b[3] >> 1)


_U_NAMES = {0x83: "SNRM", 0x63: "UA", 0x43: "DISC", 0x0F: "DM", 0x87: "FRMR", 0x03: "UI"}
_S_NAMES = {0: "RR", 1: "RNR", 2: "REJ", 3: "SREJ"}


class HdlcFrame:
    """One validated HDLC frame.  ``dest``/``src`` are the raw address values (wire bytes as a
    big-endian integer, ``dest_len``/``src_len`` bytes); ``dest_address``/``src_address`` give
    (upper/logical, lower/physical).  ``kind`` is "I", "RR", "RNR", "REJ", "SREJ", "SNRM", "UA",
    "DISC", "DM", "FRMR", "UI" or "U?"; ``ns``/``nr`` are None where the frame has none.
    ``info`` is the information field, ``apdu`` the info without its LLC header (or None)."""

    __slots__ = ("format", "segmented", "length", "dest", "dest_len", "src", "src_len", "control",
                 "kind", "ns", "nr", "pf", "hcs", "fcs", "info", "llc", "apdu")

    def __init__(self, data: memoryview, t: tuple) -> None:
        (fmt, seg, dst, dst_n, src, src_n, ctrl, info_off, info_n, hcs, fcs, flen) = t
        self.format = fmt
        self.segmented = bool(seg)
        self.length = fmt & 0x7FF
        self.dest, self.dest_len, self.src, self.src_len = dst, dst_n, src, src_n
        self.control = ctrl
        self.pf = bool(ctrl & 0x10)
        if ctrl & 1 == 0:
            self.kind, self.ns, self.nr = "I", (ctrl >> 1) & 7, ctrl >> 5
        elif ctrl & 3 == 1:
            self.kind, self.ns, self.nr = _S_NAMES[(ctrl >> 2) & 3], None, ctrl >> 5
        else:
            self.kind, self.ns, self.nr = _U_NAMES.get(ctrl & 0xEF, "U?"), None, None
        self.hcs = hcs if info_off >= 0 else None
        self.fcs = fcs
        self.info = data[info_off:info_off + info_n] if info_off >= 0 else data[0:0]
        i = self.info
        if len(i) >= 3 and i[0] == 0xE6 and i[1] in (0xE6, 0xE7) and i[2] == 0:
            self.llc, self.apdu = bytes(i[:3]), i[3:]
        else:
            self.llc, self.apdu = None, (i if self.kind in ("I", "UI") and len(i) else None)

    @property
    def dest_address(self) -> tuple[int, int | None]:
        return _addr_parts(self.dest, self.dest_len)

    @property
    def src_address(self) -> tuple[int, int | None]:
        return _addr_parts(self.src, self.src_len)

    @property
    def payload(self) -> memoryview:
        return self.apdu if self.apdu is not None else self.info

    def __repr__(self) -> str:
        return "<HdlcFrame %s dst=%s src=%s ctrl=0x%02X seg=%d info=%d>" % (
            self.kind, self.dest_address, self.src_address, self.control, self.segmented, len(self.info))


class WrapperFrame:
    """One IEC 62056-47 wrapper message (``payload`` = the APDU)."""

    __slots__ = ("version", "source_wport", "dest_wport", "length", "payload")

    def __init__(self, version: int, src: int, dst: int, length: int, payload: memoryview) -> None:
        self.version, self.source_wport, self.dest_wport, self.length, self.payload = (
            version, src, dst, length, payload)

    def __repr__(self) -> str:
        return "<WrapperFrame v%d %d->%d len=%d>" % (self.version, self.source_wport, self.dest_wport, self.length)


def parse_frame(data: Any, *, framing: str | None = None, direction: str = "response") -> HdlcFrame | WrapperFrame:
    """Validate one frame (HDLC or wrapper; autodetected from the first byte unless
    ``framing`` is given) and return its fields.  Raises ChecksumError, TruncatedFrameError or
    another FrameError carrying the byte offset."""
    if direction not in ("response", "request"):
        raise ValueError("direction must be 'response' or 'request'")
    mv = _buffer(data)
    f = _framing(framing)
    if f == 0:
        if len(mv) == 0:
            raise error_for_status(FrameStatus.TRUNCATED, "empty frame", 0)
        f = 1 if mv[0] == 0x7E else 2
    if f == 1:
        try:
            t = _dlms.hdlc_frame(mv)
        except DlmsDecodeError as e:
            raise _err(e) from None
        if t[-1] != len(mv):
            raise error_for_status(FrameStatus.BAD_LENGTH, "bytes after the HDLC frame", t[-1])
        return HdlcFrame(mv, t)
    if f == 2:
        if len(mv) < 8:
            raise error_for_status(FrameStatus.TRUNCATED, "wrapper header ends early", len(mv))
        ver = int.from_bytes(mv[0:2], "big")
        if ver != 1:
            raise error_for_status(FrameStatus.BAD_FRAMING, "wrapper version is not 1", 0)
        ln = int.from_bytes(mv[6:8], "big")
        if len(mv) - 8 < ln:
            raise error_for_status(FrameStatus.TRUNCATED, "wrapper APDU shorter than its length field", len(mv))
        if len(mv) - 8 > ln:
            raise error_for_status(FrameStatus.BAD_LENGTH, "bytes after the wrapper message", 8 + ln)
        return WrapperFrame(ver, int.from_bytes(mv[2:4], "big"), int.from_bytes(mv[4:6], "big"), ln, mv[8:])
    raise ValueError("parse_frame handles 'hdlc' and 'wrapper' framing")


def split_frames(buffer: Any) -> tuple[np.ndarray, int]:
    """Cut a received byte stream into HDLC frames: ``(spans, consumed)`` with ``spans`` an
    (N, 2) int64 array of [start, end) of each valid frame and ``consumed`` the number of
    leading bytes that can be dropped (a partial frame at the end is kept).  Garbage between
    frames is skipped; a flag may be shared by two frames."""
    return _dlms.split_frames(_buffer(buffer))


def reassemble(data: Any, *, framing: str | None = None) -> bytes:
    """The reassembled content of one response item: the APDU (segmented HDLC frames joined,
    LLC removed), or, when the item holds GET.response-with-datablock blocks, the joined raw
    data (one A-XDR Data)."""
    try:
        return _dlms.item_apdu(_buffer(data), _framing(framing))[1]
    except DlmsDecodeError as e:
        raise _err(e) from None


def decode_data(data: Any) -> Any:
    """One A-XDR Data as Python objects (see ``meterpoll.ext._dlms.decode_data``)."""
    try:
        return _dlms.decode_data(_buffer(data))
    except DlmsDecodeError as e:
        raise _err(e) from None


def datetime_to_utc_ms(dt: Any, deviation_default: int = 0) -> int | None:
    """ms UTC of a 12-byte date-time (bytes or :class:`DateTime`); None if not specified."""
    if isinstance(dt, DateTime):
        dev = -32768 if dt.deviation is None else dt.deviation
        dt = (bytes([dt.year >> 8, dt.year & 0xFF, dt.month, dt.day, dt.weekday, dt.hour, dt.minute,
                     dt.second, dt.hundredths]) + dev.to_bytes(2, "big", signed=True) + bytes([dt.status]))
    return _dlms.datetime_utc_ms(bytes(dt), deviation_default)[0]


class GetResponse(NamedTuple):
    """A parsed GET.response APDU.  ``kind`` "normal", "block" or "list"; ``values``/``errors``
    one entry per result (a decoded Data or None, a data-access-result or None); for "block"
    ``raw_data`` is the block's raw bytes, ``last_block``/``block_number`` its header."""

    kind: str
    invoke_id: int
    values: list
    errors: list
    last_block: bool | None = None
    block_number: int | None = None
    raw_data: bytes | None = None


def _axdr_len(a: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(a):
        raise error_for_status(FrameStatus.TRUNCATED, "length ends early", pos)
    v = a[pos]
    if v < 0x80:
        return v, pos + 1
    k = v & 0x7F
    if k == 0 or k > 4:
        raise error_for_status(FrameStatus.BAD_LENGTH, "bad A-XDR length", pos)
    if pos + 1 + k > len(a):
        raise error_for_status(FrameStatus.TRUNCATED, "length ends early", len(a))
    return int.from_bytes(a[pos + 1:pos + 1 + k], "big"), pos + 1 + k


def parse_get_response(apdu: Any) -> GetResponse:
    """Parse a GET.response APDU (normal C4 01, with-datablock C4 02, with-list C4 03) into
    Python objects.  Meter errors are returned in ``errors``, not raised; malformed APDUs raise
    FrameError subclasses."""
    a = bytes(_buffer(apdu))
    if len(a) < 4:
        raise error_for_status(FrameStatus.TRUNCATED, "GET.response header ends early", len(a))
    if a[0] != 0xC4:
        raise error_for_status(FrameStatus.UNSUPPORTED, "APDU is not a GET.response", 0)
    kind, invoke = a[1], a[2] & 0x0F
    try:
        if kind == 1:
            if a[3] == 0:
                return GetResponse("normal", invoke, [_dlms.decode_data(a[4:])], [None])
            if a[3] == 1 and len(a) == 5:
                return GetResponse("normal", invoke, [None], [a[4]])
            raise error_for_status(FrameStatus.BAD_VALUE if a[3] > 1 else FrameStatus.BAD_LENGTH,
                                   "bad GET.response-normal result", 3)
        if kind == 2:
            if len(a) < 10:
                raise error_for_status(FrameStatus.TRUNCATED, "datablock header ends early", len(a))
            last, blk = bool(a[3]), int.from_bytes(a[4:8], "big")
            if a[8] == 1:
                return GetResponse("block", invoke, [None], [a[9]], last, blk, None)
            if a[8] != 0:
                raise error_for_status(FrameStatus.BAD_VALUE, "datablock result choice not 0/1", 8)
            ln, pos = _axdr_len(a, 9)
            if pos + ln != len(a):
                raise error_for_status(FrameStatus.TRUNCATED if pos + ln > len(a) else FrameStatus.BAD_LENGTH,
                                       "raw-data length does not match the APDU", pos)
            return GetResponse("block", invoke, [], [], last, blk, a[pos:])
        if kind == 3:
            count, pos = _axdr_len(a, 3)
            values, errors = [], []
            for _ in range(count):
                if pos >= len(a):
                    raise error_for_status(FrameStatus.TRUNCATED, "with-list result missing", pos)
                if a[pos] == 0:
                    v, used = _dlms.decode_data(a[pos + 1:], False)
                    values.append(v)
                    errors.append(None)
                    pos += 1 + used
                elif a[pos] == 1 and pos + 1 < len(a):
                    values.append(None)
                    errors.append(a[pos + 1])
                    pos += 2
                else:
                    raise error_for_status(FrameStatus.BAD_VALUE if a[pos] > 1 else FrameStatus.TRUNCATED,
                                           "bad with-list result", pos)
            if pos != len(a):
                raise error_for_status(FrameStatus.BAD_LENGTH, "bytes after the last result", pos)
            return GetResponse("list", invoke, values, errors)
    except DlmsDecodeError as e:
        raise _err(e) from None
    raise error_for_status(FrameStatus.UNSUPPORTED, "unknown GET.response type", 1)


# ---------------------------------------------------------------------------------------------
# requests and columns
# ---------------------------------------------------------------------------------------------

class GetRequest(NamedTuple):
    """What a response is decoded against: the object asked for (and, when known, the invoke id
    and HDLC addresses of the request so that the answer can be matched)."""

    class_id: int
    obis: int                   # packed OBIS (see meterpoll.obis)
    attribute: int
    invoke_id: int | None = None
    client: int | None = None   # raw HDLC address the request came from (answer's destination)
    server: int | None = None   # raw HDLC address the request went to (answer's source)


def parse_request(data: Any, *, framing: str | None = None) -> GetRequest:
    """Parse a GET.request-normal (``C0 01 iip class(2) OBIS(6) attr [selector]``) in any
    framing.  Raises FrameError for anything else."""
    mv = _buffer(data)
    client = server = None
    f = _framing(framing)
    if f == 0:
        f = 1 if len(mv) and mv[0] == 0x7E else (2 if len(mv) >= 2 and mv[0] == 0 and mv[1] == 1 else 3)
    if f == 1:
        fr = parse_frame(mv, framing="hdlc", direction="request")
        apdu = fr.apdu
        client, server = fr.src, fr.dest
        if apdu is None:
            raise error_for_status(FrameStatus.NO_DATA, "request frame carries no APDU", -1)
    elif f == 2:
        apdu = parse_frame(mv, framing="wrapper", direction="request").payload
    else:
        apdu = mv
    a = bytes(apdu)
    if len(a) < 13 or a[0] != 0xC0 or a[1] != 0x01:
        raise error_for_status(FrameStatus.UNSUPPORTED, "not a GET.request-normal", 0)
    return GetRequest(int.from_bytes(a[3:5], "big"), _obis(a[5:11]), a[11], a[2] & 0x0F, client, server)


class Column(NamedTuple):
    """One profile column: a value (OBIS, scaler, DLMS unit), the clock, or skipped."""

    obis: int = 0
    scaler: int = 0
    unit: int = UNIT_NONE
    kind: str = "value"

    @classmethod
    def clock(cls) -> Column:
        return cls(_obis("0.0.1.0.0.255"), 0, UNIT_NONE, "clock")

    @classmethod
    def skip(cls) -> Column:
        return cls(0, 0, UNIT_NONE, "skip")


def _column(c: Any) -> Column:
    if isinstance(c, Column):
        col = c
    elif c is None:
        col = Column.skip()
    elif isinstance(c, str):
        if c == "clock":
            col = Column.clock()
        elif c == "skip":
            col = Column.skip()
        else:
            col = Column(_obis(c))
    elif isinstance(c, tuple) and 1 <= len(c) <= 3:
        col = Column(_obis(c[0]) if not isinstance(c[0], int) else c[0], *c[1:])
    else:
        raise TypeError("a column is a Column, 'clock', 'skip', None or (obis, scaler, unit), not %r" % (c,))
    if col.kind not in _KIND:
        raise ValueError("column kind must be value, clock or skip")
    if not -128 <= col.scaler <= 127 or not 0 <= col.unit <= 255 or not 0 <= col.obis < (1 << 48):
        raise ValueError("column out of range: %r" % (col,))
    return col


def columns_from_capture_objects(capture_objects: Sequence[Any],
                                 scaler_units: dict[Any, tuple[int, int]] | None = None) -> list[Column]:
    """Columns from a decoded profile attribute 3 (``decode_data`` of the capture_objects:
    a list of (class_id, logical_name bytes, attribute, data_index)).  The clock (class 8,
    attribute 2) becomes the clock column; other attribute-2 objects become value columns with
    the scaler/unit of ``scaler_units[obis]`` (packed int or text); anything else is skipped."""
    su = {(_obis(k) if not isinstance(k, int) else k): v for k, v in (scaler_units or {}).items()}
    cols = []
    for item in capture_objects:
        cid, ln, attr = item[0], item[1], item[2]
        ob = _obis(ln)
        if cid == 8 and attr == 2:
            cols.append(Column(ob, 0, UNIT_NONE, "clock"))
        elif attr == 2 and cid in (1, 3, 4, 5):
            s, u = su.get(ob, (0, UNIT_NONE))
            cols.append(Column(ob, s, u))
        else:
            cols.append(Column.skip())
    return cols


def _is_per_frame_columns(columns: Any) -> bool:
    # a list of column lists / None (one per frame); a single column list holds Column, str,
    # tuple or None entries, and one made only of None (all skipped) would be meaningless
    return (isinstance(columns, list) and len(columns) > 0
            and all(c is None or isinstance(c, list) for c in columns))


# ---------------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------------

def _period_ms(p: Any) -> int:
    if p is None:
        return 0
    if isinstance(p, np.timedelta64):
        return int(p.astype("timedelta64[ms]").astype(np.int64))
    if hasattr(p, "total_seconds"):
        return int(round(p.total_seconds() * 1000))
    p = float(p)
    if p < 0:
        raise ValueError("capture_period must be >= 0 seconds")
    return int(round(p * 1000))


def _per(value: Any, n: int, name: str) -> list | None:
    """A per-frame list, or None when ``value`` applies to every frame (lists are per frame)."""
    if isinstance(value, list):
        if len(value) != n:
            raise ValueError("%s: expected one entry per frame (%d), got %d" % (name, n, len(value)))
        return value
    return None


def _request_of(r: Any, framing: str | None) -> GetRequest | None:
    if r is None or isinstance(r, GetRequest):
        return r
    if isinstance(r, tuple) and len(r) == 3:
        return GetRequest(int(r[0]), _obis(r[1]) if not isinstance(r[1], int) else r[1], int(r[2]))
    return parse_request(r)


def _build(n: int, *, requests, obis, scaler_unit, columns, capture_period, meter_ids,
           received_at, framing, deviation_default) -> tuple[np.ndarray, np.ndarray]:
    if n == 0:
        return np.zeros(0, dtype=READ_REQ_DTYPE), np.zeros(0, dtype=COL_DTYPE)
    reqs = np.zeros(n, dtype=READ_REQ_DTYPE)
    reqs["invoke"] = -1
    reqs["unit"] = UNIT_NONE
    reqs["framing"] = _framing(framing)
    reqs["dev_default"] = int(deviation_default)
    reqs["now_ms"] = received_ms(received_at, n)
    reqs["meter"] = np.arange(n, dtype=np.uint32) if meter_ids is None else np.asarray(meter_ids, dtype=np.uint32)
    if meter_ids is not None and np.asarray(meter_ids).shape not in ((n,), ()):
        raise ValueError("meter_ids must have one entry per frame (%d)" % n)
    # requests / obis
    if requests is not None:
        if isinstance(requests, GetRequest) or not isinstance(requests, (list, tuple)) or (
                isinstance(requests, tuple) and len(requests) == 3 and isinstance(requests[0], int)):
            requests = [requests] * n           # one request for every frame
        if len(requests) != n:
            raise ValueError("requests: expected one entry per frame (%d), got %d" % (n, len(requests)))
        cache: dict[int, GetRequest | None] = {}
        for i, r in enumerate(requests):
            key = id(r)
            g = cache.get(key)
            if g is None:
                g = cache[key] = _request_of(r, framing)
            if g is None:
                continue
            rec = reqs[i]
            rec["obis"] = g.obis
            if g.invoke_id is not None:
                rec["invoke"] = g.invoke_id
            if g.client is not None:
                rec["exp_dst"] = g.client
                rec["exp_src"] = g.server
    if obis is not None:
        if isinstance(obis, list):          # a list is per frame; a 6-tuple is one OBIS
            if len(obis) != n:
                raise ValueError("obis: expected one entry per frame (%d), got %d" % (n, len(obis)))
            reqs["obis"] = [(_obis(o) if not isinstance(o, (int, np.integer)) else int(o)) for o in obis]
        else:
            reqs["obis"] = _obis(obis) if not isinstance(obis, (int, np.integer)) else int(obis)
    # scaler_unit
    if scaler_unit is not None:
        if isinstance(scaler_unit, tuple):
            s, u = scaler_unit
            reqs["scaler"], reqs["unit"] = s, u
        else:
            if len(scaler_unit) != n:
                raise ValueError("scaler_unit: expected one (scaler, unit) or one per frame (%d)" % n)
            su = np.asarray([(UNIT_NONE * 0, UNIT_NONE) if x is None else x for x in scaler_unit], dtype=np.int64)
            reqs["scaler"], reqs["unit"] = su[:, 0], su[:, 1]
    if ((reqs["scaler"] < -128) | (reqs["scaler"] > 127)).any():
        raise ValueError("scaler out of range")
    # columns
    col_recs: list[tuple] = []
    if columns is not None:
        specs = columns if _is_per_frame_columns(columns) else [columns] * n
        if len(specs) != n:
            raise ValueError("columns: expected one column list per frame (%d)" % n)
        index: dict[int, tuple[int, int]] = {}
        starts = np.zeros(n, dtype=np.int32)
        counts = np.zeros(n, dtype=np.int32)
        for i, spec in enumerate(specs):
            if spec is None:
                continue
            key = id(spec)
            se = index.get(key)
            if se is None:
                cols = [_column(c) for c in spec]
                if sum(c.kind == "clock" for c in cols) > 1:
                    raise ValueError("at most one clock column")
                if not cols:
                    raise ValueError("empty column list")
                se = index[key] = (len(col_recs), len(cols))
                col_recs.extend((c.obis, c.scaler, c.unit, _KIND[c.kind]) for c in cols)
            starts[i], counts[i] = se
        reqs["col_start"], reqs["col_count"] = starts, counts
    per = _per(capture_period, n, "capture_period")
    if per is not None:
        reqs["period_ms"] = [_period_ms(p) for p in per]
    else:
        reqs["period_ms"] = _period_ms(capture_period)
    cols_arr = np.array(col_recs, dtype=COL_DTYPE) if col_recs else np.zeros(0, dtype=COL_DTYPE)
    return reqs, cols_arr


def _as_batch(batch: Any) -> FrameBatch:
    if isinstance(batch, FrameBatch):
        return batch
    return FrameBatch.from_frames(batch)


def decode_batch(batch: Any, *, requests: Any = None, obis: Any = None, scaler_unit: Any = None,
                 columns: Any = None, capture_period: Any = None, meter_ids: Any = None,
                 received_at: Any = None, framing: str | None = None,
                 deviation_default: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Decode many response items in one native call: ``(readings, frame_status)``.

    Per-frame or shared: ``requests`` (GET request frames/APDUs, :class:`GetRequest` or
    (class, obis, attribute); gives the OBIS and lets the invoke id and HDLC addresses be
    checked), ``obis``, ``scaler_unit`` ((scaler, unit) or a list), ``columns`` (one column list
    for every frame, or a list of column lists / None per frame), ``capture_period`` (seconds).
    ``meter_ids`` -> ``reading.meter`` (default: frame index); ``received_at`` (datetime64[ms] or
    int ms, scalar or per frame; default now) -> ts of readings without a meter timestamp.
    A bad frame costs only its own readings and is reported in ``frame_status``."""
    b = _as_batch(batch)
    reqs, cols = _build(len(b), requests=requests, obis=obis, scaler_unit=scaler_unit, columns=columns,
                        capture_period=capture_period, meter_ids=meter_ids, received_at=received_at,
                        framing=framing, deviation_default=deviation_default)
    return _dlms.decode_batch(b, reqs, cols)


def decode(data: Any, *, request: Any = None, obis: Any = None, scaler_unit: tuple[int, int] | None = None,
           columns: Sequence[Any] | None = None, capture_period: Any = None, received_at: Any = None,
           meter_id: int = 0, framing: str | None = None, deviation_default: int = 0) -> np.ndarray:
    """Readings of one response item (see :func:`decode_batch`).  Raises the FrameError
    subclass of the problem (ProtocolExceptionError with ``code`` for meter errors); a
    well-formed answer without values (null-data, RR, UA) gives an empty array."""
    b = FrameBatch.from_frames([_buffer(data)])
    reqs, cols = _build(1, requests=None if request is None else [request], obis=obis,
                        scaler_unit=scaler_unit, columns=columns, capture_period=capture_period,
                        meter_ids=[meter_id], received_at=received_at, framing=framing,
                        deviation_default=deviation_default)
    out, fs, why = _dlms.decode_batch(b, reqs, cols, True)
    st = int(fs["status"][0])
    if st not in (FrameStatus.OK, FrameStatus.NO_DATA):
        raise error_for_status(st, why[0], int(fs["offset"][0]), int(fs["code"][0]))
    return out
