"""Simulated DLMS/COSEM meters (LN referencing) behind one TCP port or serial line.

Framing is recognised per request: the IEC 62056-47 wrapper (``00 01 ...``, destination wPort =
the meter's logical address) or HDLC (``7E ...``, server address ``logical`` or
``logical/physical``; a meter is picked by its physical address when the frame has one, else by
the logical address).  ``addresses`` are those bus addresses; each gets a
:class:`~meterpoll.engine.sim.model.MeterModel` seeded ``seed + address``.

Objects (all answered from the model at ``now``):

- class 3 registers, attribute 2 (value) and 3 (scaler_unit): energy 1.0.1.8.0.255 (total A+),
  1.0.1.8.1..4.255 (tariffs), 1.0.2.8.0.255 (A-, always 0), 1.0.3.8.0.255 (R+); instantaneous
  U/I per phase, P total and per phase, Q, S, power factor, frequency; interval energies
  1.0.1.29.0.255 / 1.0.3.29.0.255 (the profile's value columns);
- class 8 clock 0.0.1.0.0.255 attribute 2 (UTC, deviation 0; SET by the LLS clients only);
- class 7 load profile 1.0.99.1.0.255: attribute 2 buffer with selective access by range
  (restricting object = the clock; rows whose time lies in [from, to]) or entries, attribute 3
  capture objects (clock, A+ and R+ of the interval), attribute 4 capture period (900 s);
- class 7 standard event log 0.0.99.98.0.255 (IDIS numbering): capture objects {clock, event
  code 0.0.96.11.0.255 (class 1, unsigned)}, capture period 0 (asynchronous), at most 100
  entries (attribute 8; attribute 7 = entries in use): the model's power failures (event 1,
  power down) and restorations (2, power up) of the last 400 days and every clock SET (4 =
  clock adjusted, old time; 5 = new time), stamped with the meter clock.  Attribute 2 answers
  all entries, a range selection (rows whose clock is in [from, to]) or an entry selection;
  0.0.96.11.0.255 attribute 2 is the newest event code.

Anything else gets a data-access-result (object-undefined, or scaler-of-access-violated for an
unknown attribute).  Association: client SAP 16 (public) needs no authentication; clients 1 and
32 need LLS with ``password`` (else the AARE is rejected: authentication-required / failure);
other client SAPs are rejected.  GETs before an association are refused (read-write-denied).
An answer longer than the negotiated PDU is split into GET.response-with-datablock blocks
(served on GET.request-next); an HDLC information field longer than the negotiated maximum is
split into segments (served on RR).
"""
from __future__ import annotations

import datetime as dt
import math

from meterpoll.bindings import dlms_apdu as A
from meterpoll.bindings.errors import FrameError
from meterpoll.engine.sim.model import MeterModel
from meterpoll.engine.sim.server import Answerer

__all__ = ["DlmsSim", "REGISTERS", "PROFILE_OBIS", "CLOCK_OBIS", "EVENT_LOG_OBIS", "EVENT_CODE_OBIS"]

UTC = dt.timezone.utc
CLOCK_OBIS = "0.0.1.0.0.255"
PROFILE_OBIS = "1.0.99.1.0.255"
PROFILE_PERIOD = 900
EVENT_LOG_OBIS = "0.0.99.98.0.255"     # standard event log
EVENT_CODE_OBIS = "0.0.96.11.0.255"    # its event code object (class 1 Data)
EVENT_LOG_ENTRIES = 100
EVENT_LOG_DAYS = 400

# OBIS -> (getter(model, t) -> physical value, scaler, unit, data type)
_U32, _I32, _U16, _I16 = A.DataType.UINT32, A.DataType.INT32, A.DataType.UINT16, A.DataType.INT16


def _ph(k, key):
    return lambda m, t: m.instant(t)["phases"][k][key]


def _tot(key):
    return lambda m, t: m.instant(t)[key]


REGISTERS = {
    "1.0.1.8.0.255": (lambda m, t: m.active_energy(t), 0, 30, _U32),
    "1.0.1.8.1.255": (lambda m, t: m.energy_by_tariff(t)[1], 0, 30, _U32),
    "1.0.1.8.2.255": (lambda m, t: m.energy_by_tariff(t)[2], 0, 30, _U32),
    "1.0.1.8.3.255": (lambda m, t: m.energy_by_tariff(t)[3], 0, 30, _U32),
    "1.0.1.8.4.255": (lambda m, t: m.energy_by_tariff(t)[4], 0, 30, _U32),
    "1.0.2.8.0.255": (lambda m, t: 0.0, 0, 30, _U32),
    "1.0.3.8.0.255": (lambda m, t: m.reactive_energy(t), 0, 32, _U32),
    "1.0.32.7.0.255": (_ph(0, "voltage"), -1, 35, _U16),
    "1.0.52.7.0.255": (_ph(1, "voltage"), -1, 35, _U16),
    "1.0.72.7.0.255": (_ph(2, "voltage"), -1, 35, _U16),
    "1.0.31.7.0.255": (_ph(0, "current"), -2, 33, _U16),
    "1.0.51.7.0.255": (_ph(1, "current"), -2, 33, _U16),
    "1.0.71.7.0.255": (_ph(2, "current"), -2, 33, _U16),
    "1.0.1.7.0.255": (_tot("active_power"), 0, 27, _I32),
    "1.0.21.7.0.255": (_ph(0, "active_power"), 0, 27, _I32),
    "1.0.41.7.0.255": (_ph(1, "active_power"), 0, 27, _I32),
    "1.0.61.7.0.255": (_ph(2, "active_power"), 0, 27, _I32),
    "1.0.3.7.0.255": (_tot("reactive_power"), 0, 29, _I32),
    "1.0.9.7.0.255": (_tot("apparent_power"), 0, 28, _I32),
    "1.0.13.7.0.255": (_tot("power_factor"), -3, 255, _I16),
    "1.0.14.7.0.255": (_tot("frequency"), -2, 44, _U16),
    # interval energies: the profile's value columns (attribute 2 = the last closed interval)
    "1.0.1.29.0.255": (lambda m, t: m.profile(t - PROFILE_PERIOD, t, PROFILE_PERIOD)[-1][1], 0, 30, _U32),
    "1.0.3.29.0.255": (lambda m, t: m.profile(t - PROFILE_PERIOD, t, PROFILE_PERIOD)[-1][1]
                       * math.tan(math.acos(m.power_factor)), 0, 32, _U32),
}
_REG = {A.logical_name(k): v for k, v in REGISTERS.items()}
_CLOCK = A.logical_name(CLOCK_OBIS)
_PROFILE = A.logical_name(PROFILE_OBIS)
_CAPTURE = ((8, CLOCK_OBIS, 2, 0), (3, "1.0.1.29.0.255", 2, 0), (3, "1.0.3.29.0.255", 2, 0))
_EVENT_LOG = A.logical_name(EVENT_LOG_OBIS)
_EVENT_CODE = A.logical_name(EVENT_CODE_OBIS)
_EVENT_CAPTURE = ((8, CLOCK_OBIS, 2, 0), (1, EVENT_CODE_OBIS, 2, 0))
_LLS_CLIENTS = (1, 32)
_PUBLIC_CLIENT = 16


class _Assoc:
    """State of one client's association with one meter (shared by all connections)."""

    def __init__(self) -> None:
        self.associated = False
        self.max_pdu = 0xFFFF
        self.blocks: list[bytes] = []       # pending datablock APDUs (the first already sent)
        self.block_no = 0
        self.segments: list[bytes] = []     # pending HDLC segments (frames) of the last answer
        self.segments_in = b""               # a segmented request being received
        self.link: A.HdlcLink | None = None


class DlmsSim(Answerer):
    def __init__(self, addresses=(1,), seed: int = 0, password: str = "12345678", *,
                 max_pdu: int = 512, max_info: int = 128, models: dict | None = None) -> None:
        self.addresses = tuple(int(a) for a in addresses)
        self.models = models or {a: MeterModel(seed=seed + a) for a in self.addresses}
        self.password = password.encode("latin-1") if isinstance(password, str) else bytes(password)
        self.max_pdu = max_pdu
        self.hdlc_params = A.HdlcParameters(max_info, max_info, 1, 1)
        self._assoc: dict[tuple, _Assoc] = {}
        self.clock_offset: dict[int, float] = {}  # seconds added to a meter's clock by SETs
        #: (meter time, event code 4 / 5) entries the clock SETs added to the event log
        self.clock_events: dict[int, list[tuple[float, int]]] = {a: [] for a in self.models}
        self.log: list[tuple] = []  # (address, what) for tests

    def _addr_of(self, m: MeterModel) -> int:
        return next(a for a, x in self.models.items() if x is m)

    # ---- framing -------------------------------------------------------------------------
    def request_length(self, buf: bytearray) -> int:
        if buf[0] == 0x7E:
            if len(buf) < 3:
                return 0
            if buf[1] >> 4 != 0xA:
                return -1
            n = (((buf[1] & 0x07) << 8) | buf[2]) + 2
            if len(buf) < n:
                return 0
            return n if buf[n - 1] == 0x7E else -1
        if buf[0] == 0x00:
            if len(buf) < 2:
                return 0
            if buf[1] != 0x01:
                return -1
            if len(buf) < 8:
                return 0
            n = 8 + int.from_bytes(buf[6:8], "big")
            return n if len(buf) >= n else 0
        return -1

    def corrupt_checksum(self, frame: bytes) -> bytes:
        """HDLC: the FCS (the two bytes before the closing flag) is wrong.  The wrapper has no
        checksum (TCP guards it): its version field is made invalid instead, so the damage is
        seen and never decoded as a value."""
        if frame[:1] == b"\x7e" and len(frame) >= 9:
            return frame[:-3] + bytes([frame[-3] ^ 0xFF]) + frame[-2:]
        if len(frame) >= 8:
            return b"\x00\x02" + frame[2:]
        return frame

    def answer(self, request: bytes, now: float) -> bytes | None:
        try:
            if request[0] == 0x7E:
                return self._hdlc(request, now)
            return self._wrapper(request, now)
        except FrameError:
            return None  # a meter ignores what it cannot parse

    # ---- wrapper -------------------------------------------------------------------------
    def _wrapper(self, request: bytes, now: float) -> bytes | None:
        _v, client, server, apdu = A.parse_wrapper(request)
        if server not in self.models:
            return None
        st = self._assoc.setdefault((client, server, "w"), _Assoc())
        out = self._apdu(st, client, server, apdu, now)
        return None if out is None else A.wrapper_frame(out, server, client)

    # ---- HDLC ----------------------------------------------------------------------------
    def _hdlc(self, request: bytes, now: float) -> bytes | None:
        fr = A.parse_hdlc_frame(request)
        addr = fr.dest_lower if fr.dest_lower is not None else fr.dest_upper
        if addr not in self.models:
            return None
        client = fr.src_upper
        key = (client, addr, "h")
        st = self._assoc.get(key)
        kind = fr.kind
        if kind == "SNRM":
            st = self._assoc[key] = _Assoc()
            st.link = A.HdlcLink(client, fr.dest_upper, fr.dest_lower, len(fr.dest), role="server",
                                 params=self.hdlc_params)
            self.log.append((addr, "SNRM"))
            return st.link.accept_snrm(fr)
        if st is None or st.link is None:
            return A.dm_frame(fr.src, fr.dest)
        link = st.link
        if kind == "DISC":
            del self._assoc[key]
            self.log.append((addr, "DISC"))
            return A.ua_frame(fr.src, fr.dest, None)
        try:
            link.receive(fr.control)
        except A.SequenceError:
            return A.hdlc_frame(fr.src, fr.dest, A.FRMR)
        if kind == "RR":
            if st.segments:
                self.log.append((addr, "RR"))
                return st.segments.pop(0)
            return link.rr()
        if kind != "I":
            return A.hdlc_frame(fr.src, fr.dest, A.FRMR)
        info = fr.info
        if fr.segmented:  # a segmented request: collect, acknowledge
            st.segments_in += info
            self.log.append((addr, "segment in"))
            return link.rr()
        info = st.segments_in + info
        st.segments_in = b""
        if info[:3] != A.LLC_REQUEST:
            return None
        out = self._apdu(st, client, addr, info[3:], now)
        if out is None:
            return None
        frames = link.send_apdu(out)
        st.segments = frames[1:]
        return frames[0]

    # ---- application layer ---------------------------------------------------------------
    def _apdu(self, st: _Assoc, client: int, addr: int, apdu: bytes, now: float) -> bytes | None:
        if not apdu:
            return None
        tag = apdu[0]
        if tag == 0x60:
            return self._aarq(st, client, addr, apdu)
        if tag == 0x62:
            st.associated = False
            self.log.append((addr, "RLRQ"))
            return A.rlre(0)
        if tag == 0xC0:
            return self._get(st, addr, apdu, now)
        if tag == 0xC1:
            return self._set(st, client, addr, apdu, now)
        return None

    def _aarq(self, st: _Assoc, client: int, addr: int, apdu: bytes) -> bytes:
        info = A.parse_aarq(apdu)
        st.associated = False
        st.blocks = []
        if not info.logical_name:
            return A.aare(A.AssociationResult.REJECTED_PERMANENT,
                          A.SourceDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED, include_user_information=False)
        if client in _LLS_CLIENTS:
            if info.authentication != A.Authentication.LOW or info.password is None:
                self.log.append((addr, "AARQ rejected: authentication required"))
                return A.aare(A.AssociationResult.REJECTED_PERMANENT, A.SourceDiagnostic.AUTHENTICATION_REQUIRED,
                              include_user_information=False)
            if info.password != self.password:
                self.log.append((addr, "AARQ rejected: wrong password"))
                return A.aare(A.AssociationResult.REJECTED_PERMANENT, A.SourceDiagnostic.AUTHENTICATION_FAILURE,
                              include_user_information=False)
        elif client != _PUBLIC_CLIENT:
            return A.aare(A.AssociationResult.REJECTED_PERMANENT, A.SourceDiagnostic.NO_REASON_GIVEN,
                          include_user_information=False)
        st.associated = True
        st.max_pdu = max(64, min(self.max_pdu, info.max_pdu_size or 0xFFFF))
        conf = (info.conformance & int(A.DEFAULT_CONFORMANCE_LN)) or int(A.DEFAULT_CONFORMANCE_LN)
        self.log.append((addr, "AARQ accepted"))
        return A.aare(conformance=conf, max_pdu_size=self.max_pdu)

    def _get(self, st: _Assoc, addr: int, apdu: bytes, now: float) -> bytes:
        req = A.parse_xdlms_request(apdu)
        iip = req.iip
        if not st.associated:
            return A.get_response_error(A.DataAccessResult.READ_WRITE_DENIED, iip=iip)
        if req.kind == "next":
            if not st.blocks:
                return A.get_response_block_error(req.block_number + 1, A.DataAccessResult.NO_LONG_GET_IN_PROGRESS, iip=iip)
            if req.block_number != st.block_no:
                st.blocks = []
                return A.get_response_block_error(req.block_number + 1, A.DataAccessResult.DATA_BLOCK_NUMBER_INVALID, iip=iip)
            st.block_no += 1
            self.log.append((addr, "NEXT", req.block_number))
            return st.blocks.pop(0)
        if req.kind != "normal":
            return A.get_response_error(A.DataAccessResult.OTHER_REASON, iip=iip)
        class_id, ln, attr, selector, params = req.items[0]
        self.log.append((addr, "GET", class_id, bytes(ln), attr))
        data = self._value(self.models[addr], class_id, bytes(ln), attr, selector, params, now)
        if isinstance(data, int):
            return A.get_response_error(data, iip=iip)
        normal = A.get_response_normal(data, iip=iip)
        if len(normal) <= st.max_pdu:
            st.blocks = []
            return normal
        blocks = A.get_response_blocks(data, st.max_pdu - 16, iip=iip)
        st.blocks, st.block_no = blocks[1:], 1
        return blocks[0]

    def _set(self, st: _Assoc, client: int, addr: int, apdu: bytes, now: float) -> bytes:
        """SET: only Clock.time, only for the LLS clients (the public client may not write)."""
        from meterpoll.bindings import dlms as D

        req = A.parse_xdlms_request(apdu)
        R = A.DataAccessResult
        if req.kind != "normal":
            return A.set_response_normal(R.OTHER_REASON, iip=req.iip)
        class_id, ln, attr, _sel, _params = req.items[0]
        if not st.associated or client not in _LLS_CLIENTS:
            return A.set_response_normal(R.READ_WRITE_DENIED, iip=req.iip)
        if bytes(ln) != _CLOCK or class_id != 8 or attr != 2:
            return A.set_response_normal(R.OBJECT_UNDEFINED if bytes(ln) not in _REG and bytes(ln) != _CLOCK
                                         else R.READ_WRITE_DENIED, iip=req.iip)
        try:
            ms = D.datetime_to_utc_ms(D.decode_data(req.data))
        except (FrameError, TypeError, ValueError):
            ms = None
        if ms is None:
            return A.set_response_normal(R.TYPE_UNMATCHED, iip=req.iip)
        m = self.models[addr]
        old = m.clock(now) + self.clock_offset.get(addr, 0.0)
        self.clock_offset[addr] = ms / 1000.0 - m.clock(now)
        self.clock_events.setdefault(addr, []).extend(((old, 4), (ms / 1000.0, 5)))
        self.log.append((addr, "SET clock"))
        return A.set_response_normal(R.SUCCESS, iip=req.iip)

    def _value(self, m: MeterModel, class_id: int, ln: bytes, attr: int, selector, params, now: float):
        """Encoded Data of an attribute, or a data-access-result."""
        R = A.DataAccessResult
        if ln in _REG:
            if class_id != 3:
                return R.OBJECT_CLASS_INCONSISTENT
            get, scaler, unit, dtp = _REG[ln]
            if attr == 1:
                return A.axdr_octet_string(ln)
            if attr not in (2, 3):
                return R.SCOPE_OF_ACCESS_VIOLATED
            value, su = A.register_attributes(get(m, now), scaler, unit, dtp)
            return value if attr == 2 else su
        if ln == _CLOCK:
            if class_id != 8:
                return R.OBJECT_CLASS_INCONSISTENT
            if attr != 2:
                return R.SCOPE_OF_ACCESS_VIOLATED
            t = m.clock(now) + self.clock_offset.get(self._addr_of(m), 0.0)
            return A.axdr_date_time_octets(dt.datetime.fromtimestamp(t, UTC))
        if ln == _PROFILE:
            if class_id != 7:
                return R.OBJECT_CLASS_INCONSISTENT
            if attr == 3:
                return A.capture_objects(_CAPTURE)
            if attr == 4:
                return A.axdr_uint32(PROFILE_PERIOD)
            if attr != 2:
                return R.SCOPE_OF_ACCESS_VIOLATED
            return self._buffer(m, selector, params, now)
        if ln == _EVENT_LOG:
            if class_id != 7:
                return R.OBJECT_CLASS_INCONSISTENT
            entries = self.event_entries(self._addr_of(m), now)
            if attr == 3:
                return A.capture_objects(_EVENT_CAPTURE)
            if attr == 4:
                return A.axdr_uint32(0)
            if attr == 7:
                return A.axdr_uint32(len(entries))
            if attr == 8:
                return A.axdr_uint32(EVENT_LOG_ENTRIES)
            if attr != 2:
                return R.SCOPE_OF_ACCESS_VIOLATED
            return self._event_buffer(entries, selector, params)
        if ln == _EVENT_CODE:
            if class_id != 1:
                return R.OBJECT_CLASS_INCONSISTENT
            if attr != 2:
                return R.SCOPE_OF_ACCESS_VIOLATED
            entries = self.event_entries(self._addr_of(m), now)
            return A.axdr_uint8(entries[-1][1] if entries else 0)
        return R.OBJECT_UNDEFINED

    def event_entries(self, addr: int, now: float) -> list[tuple[float, int]]:
        """The standard event log of meter ``addr`` at true time ``now``: (meter time, event
        code) oldest first, the newest ``EVENT_LOG_ENTRIES``."""
        m = self.models[addr]
        out = [(m.clock(t), code) for t, code, _ in m.events(now - EVENT_LOG_DAYS * 86400, now) if code in (1, 2)]
        out += self.clock_events.get(addr, [])
        out.sort()
        return out[-EVENT_LOG_ENTRIES:]

    def _event_buffer(self, entries: list[tuple[float, int]], selector, params):
        from meterpoll.bindings import dlms as D

        if selector == 1:
            try:
                p = D.decode_data(params)
                t0 = D.datetime_to_utc_ms(p[1]) / 1000.0
                t1 = D.datetime_to_utc_ms(p[2]) / 1000.0
            except (FrameError, TypeError, IndexError, ValueError):
                return A.DataAccessResult.TYPE_UNMATCHED
            entries = [e for e in entries if t0 <= math.floor(e[0]) <= t1]
        elif selector == 2:
            try:
                p = D.decode_data(params)
                first, last = int(p[0]), int(p[1])
            except (FrameError, TypeError, IndexError, ValueError):
                return A.DataAccessResult.TYPE_UNMATCHED
            entries = entries[max(first, 1) - 1:(last or len(entries))]
        elif selector is not None:
            return A.DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
        rows = [(dt.datetime.fromtimestamp(math.floor(t), UTC), code) for t, code in entries]
        return A.profile_buffer(rows, value_encoder=A.axdr_uint8)

    def _buffer(self, m: MeterModel, selector, params, now: float):
        from meterpoll.bindings import dlms as D

        newest = math.floor(now / PROFILE_PERIOD) * PROFILE_PERIOD
        if selector is None:  # the whole buffer: the last day
            start, end = newest - 86400, newest
        elif selector == 1:
            try:
                p = D.decode_data(params)
                t0 = D.datetime_to_utc_ms(p[1]) / 1000.0
                t1 = D.datetime_to_utc_ms(p[2]) / 1000.0
            except (FrameError, TypeError, IndexError, ValueError):
                return A.DataAccessResult.TYPE_UNMATCHED
            start, end = t0 - 0.001, min(t1, newest)
        elif selector == 2:
            p = D.decode_data(params)
            first, last = int(p[0]), int(p[1])
            n_all = 96 * 10
            last = n_all if last == 0 else min(last, n_all)
            start = newest - (n_all - first + 1) * PROFILE_PERIOD
            end = newest - (n_all - last) * PROFILE_PERIOD
        else:
            return A.DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
        tan = math.tan(math.acos(m.power_factor))
        rows = []
        if end > start:
            for t, e in m.profile(start, end, PROFILE_PERIOD):
                rows.append((dt.datetime.fromtimestamp(m.clock(t), UTC), int(round(e)), int(round(e * tan))))
        return A.profile_buffer(rows)
