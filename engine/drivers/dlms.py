"""DLMS/COSEM driver (LN referencing) over the IEC 62056-47 TCP wrapper or over HDLC (a
TCP-to-RS-485 gateway or a serial line carrying HDLC frames).

Options (one driver serves every DLMS meter of an engine):

- ``client_sap``: 16 (public client, no authentication; the default) or 1 (management client)
  / 32; with ``meter.password`` set the AARQ asks for low-level security (LLS) with it.
- ``framing``: ``"wrapper"`` (default) or ``"hdlc"``.
- ``max_info``: HDLC maximum information field length proposed in the SNRM (default 128).
- ``event_logs``: the event journals (class 7 profile generic) read for ``events``; default
  the standard event log ``0.0.99.98.0.255`` (companion specifications number their logs
  differently, README 1.5 (d) / 6.3: SPODES meters e.g. ``0.0.99.98.2.255`` power on/off).

The server address is ``meter.connection_address``: ``logical`` or ``logical/physical``.  In the
wrapper the destination wPort is the logical address; in HDLC the server address is 1 byte
(logical only), or 2/4 bytes (logical/physical).  ``meter.package_size`` is the client's max
receive PDU proposed in the AARQ (0 = 1024).

A session: (HDLC: SNRM/UA) AARQ/AARE (a rejection fails the poll with the AARE's diagnostic,
e.g. "association rejected-permanent: authentication-failure"), GETs, RLRQ/RLRE (HDLC: DISC/UA).
Reads: ``energy`` (1.0.1.8.0, 1.0.2.8.0, 1.0.1.8.1..4), ``instant`` (U/I per phase, P total and per
phase, Q, S, power factor, frequency), ``profile`` (1.0.99.1.0.255 buffer by clock range, the
capture objects, capture period and the columns' scaler_unit read once per meter; ranges follow
:func:`~meterpoll.engine.catchup.plan_catchup` from the last row read), ``clock`` (0.0.1.0.0.255;
a drift beyond ``meter.time_difference`` becomes an :class:`EventRecord`, and with
``meter.set_clock`` the clock is SET to the host's UTC time, which needs a client with write
access, e.g. 1 with LLS), ``events`` (each of ``event_logs``: attribute 3 once per meter to
find its clock column and its event-code column -- the first class 1/3/4 attribute-2 object,
e.g. 0.0.96.11.0.255 -- then attribute 2 with selective access by range (restricting object
the clock) from the time of the newest entry already read to the host time + 1 day (a meter
clock running ahead loses nothing); the first read starts ``data_polling_length`` days before
the poll began (0: at the first poll).  Every new entry becomes an :class:`EventRecord` at
the entry's time, code ``JOURNAL_CODE_BASE + event code`` and a text naming the log and, for
the standard event log, the IDIS meaning of codes 1, 2, 4, 5 (power down / up, clock adjusted
old / new time -- the same numbers as the VDEW logbook, README 6.4).  Entries at the newest time already
read are remembered so the overlapping range returns none twice.  Event logs are decoded here,
not in the batch decoder; nothing of them is in ``expected_obis``.

Catch-up points (profile, event logs) move only when a poll's session completes: a poll that
fails part way reads the same intervals / entries again next time.

Events (``PollResult.events`` codes): 1 clock drift, 2 clock unreadable, 3 clock set, 4 clock
set refused (data-access-result), 5 release failed (the readings are kept), 6 an event log the
meter does not serve (data-access-result, or no clock / code column; reported once), and
``JOURNAL_CODE_BASE`` (0x10000) + event code for every journal entry.  The scaler_unit
(attribute 3) of every register is read once per meter and cached; an object the meter does not
know (data-access-result on attribute 3) is left out of that meter's reads.  Long answers are
followed through GET.request-next (datablocks) and RR (HDLC segments); all frames of one answer
form one item for the native decoder.
"""
from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any, NamedTuple, Sequence

import numpy as np

from meterpoll.bindings import dlms as D
from meterpoll.bindings import dlms_apdu as A
from meterpoll.bindings.errors import ChecksumError, FrameError, ProtocolExceptionError
from meterpoll.bindings.readings import obis as _obis
from meterpoll.engine.catchup import plan_catchup
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.driver import Driver, EventRecord, PollResult
from meterpoll.engine.errors import LinkError
from meterpoll.engine.link import Lease
from meterpoll.engine.transport import Deadlines

__all__ = ["DlmsDriver", "ENERGY_OBIS", "INSTANT_OBIS", "PROFILE_OBIS", "CLOCK_OBIS", "DlmsRead",
           "STANDARD_EVENT_LOG", "JOURNAL_CODE_BASE", "STANDARD_EVENTS"]

UTC = dt.timezone.utc
ENERGY_OBIS = ("1.0.1.8.0.255", "1.0.2.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255", "1.0.1.8.3.255",
               "1.0.1.8.4.255")
INSTANT_OBIS = ("1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255",     # U L1..L3
                "1.0.31.7.0.255", "1.0.51.7.0.255", "1.0.71.7.0.255",     # I L1..L3
                "1.0.1.7.0.255", "1.0.21.7.0.255", "1.0.41.7.0.255", "1.0.61.7.0.255",  # P
                "1.0.3.7.0.255", "1.0.9.7.0.255", "1.0.13.7.0.255", "1.0.14.7.0.255")   # Q S PF f
PROFILE_OBIS = "1.0.99.1.0.255"
CLOCK_OBIS = "0.0.1.0.0.255"
STANDARD_EVENT_LOG = "0.0.99.98.0.255"
#: EventRecord code of a journal entry = JOURNAL_CODE_BASE + the meter's event code
JOURNAL_CODE_BASE = 0x10000
#: standard event log codes (IDIS numbering; 1/2/4/5 as the VDEW logbook, README 6.4)
STANDARD_EVENTS = {1: "power down", 2: "power up", 3: "daylight saving time changed",
                   4: "clock adjusted (old time)", 5: "clock adjusted (new time)"}
EVENT_LOG_UNAVAILABLE = 6
MAX_BLOCKS = 256          # datablocks / HDLC segments followed for one answer
MAX_PROFILE_CHUNKS = 8    # profile requests per poll (catch-up continues next poll)


class DlmsRead(NamedTuple):
    """What one returned item answers (the ``requests`` entry of a PollResult)."""

    get: D.GetRequest
    scaler_unit: tuple[int, int] | None = None
    columns: list | None = None
    period: float = 0.0


class _MeterCache:
    def __init__(self) -> None:
        self.scaler_unit: dict[str, tuple[int, int] | None] = {}   # None = object unknown
        self.columns: list | None = None
        self.capture_objects: list | None = None
        self.period: float = 0.0
        self.profile_last: float | None = None
        #: per event log: (clock column, code column), or None when the meter lacks it
        self.event_columns: dict[str, tuple[int, int] | None] = {}
        self.event_from: dict[str, float] = {}         # time of the newest entry read (UTC s)
        self.event_seen: dict[str, set] = {}           # (ms, code) entries read at that time


def _wrapper_complete(buf: bytearray) -> int:
    if buf[0] != 0x00 or (len(buf) >= 2 and buf[1] != 0x01):
        return -1
    if len(buf) < 8:
        return 0
    n = 8 + int.from_bytes(buf[6:8], "big")
    return n if len(buf) >= n else 0


def _hdlc_complete(buf: bytearray) -> int:
    if buf[0] != 0x7E:
        return -1
    if len(buf) < 3:
        return 0
    if buf[1] >> 4 != 0xA:
        return -1
    n = (((buf[1] & 0x07) << 8) | buf[2]) + 2
    if n < 9:
        return -1
    if len(buf) < n:
        return 0
    return n if buf[n - 1] == 0x7E else -1


def _any_complete(buf: bytearray) -> int:
    return _hdlc_complete(buf) if buf[0] == 0x7E else _wrapper_complete(buf)


def _server_address(meter: MeterConfig) -> tuple[int, int | None]:
    parts = (meter.connection_address or "1").split("/")
    logical = int(parts[0], 0)
    physical = int(parts[1], 0) if len(parts) > 1 else None
    return logical, physical


class _Session:
    """One association over a lease: sends APDUs, returns (raw item bytes, APDU)."""

    def __init__(self, driver: "DlmsDriver", lease: Lease, meter: MeterConfig, deadlines: Deadlines) -> None:
        self.lease = lease
        self.deadlines = deadlines
        self.framing = driver.framing
        self.client = driver.client_sap
        self.logical, self.physical = _server_address(meter)
        self.invoke = 0
        self.started = time.time()   # UTC s: where a first event-log read with depth 0 starts
        self.link: A.HdlcLink | None = None
        if self.framing == "hdlc":
            self.link = A.HdlcLink(self.client, self.logical, self.physical,
                                   params=A.HdlcParameters(driver.max_info, driver.max_info, 1, 1))

    def next_invoke(self) -> int:
        self.invoke = self.invoke % 15 + 1
        return self.invoke

    @property
    def hdlc_addresses(self) -> tuple[int | None, int | None]:
        if self.link is None:
            return None, None
        return int.from_bytes(self.link.client_address, "big"), int.from_bytes(self.link.server_address, "big")

    async def connect(self) -> None:
        if self.link is not None:
            ua = await self.lease.exchange(self.link.snrm(), _hdlc_complete, self.deadlines)
            fr = A.parse_hdlc_frame(ua)
            self.link.accept_ua(fr)

    async def transfer(self, apdu: bytes) -> tuple[bytes, bytes]:
        """Send one APDU, return (all raw frames of the answer, the answer APDU)."""
        if self.link is None:
            req = A.wrapper_frame(apdu, self.client, self.logical)
            raw = await self.lease.exchange(req, _wrapper_complete, self.deadlines)
            _v, src, dst, out = A.parse_wrapper(raw)
            if src != self.logical or dst != self.client:
                raise A.AddressMismatchError("wrapper answer from wPort %d to %d, expected %d to %d"
                                             % (src, dst, self.logical, self.client))
            return raw, out
        link = self.link
        frames = link.send_apdu(apdu)
        for f in frames[:-1]:  # a segmented request: each segment is acknowledged with RR
            ack = A.parse_hdlc_frame(await self.lease.exchange(f, _hdlc_complete, self.deadlines))
            self._check_addresses(ack)
            link.receive(ack.control)
        raw = await self.lease.exchange(frames[-1], _hdlc_complete, self.deadlines)
        items = [raw]
        info = bytearray()
        for _ in range(MAX_BLOCKS):
            try:
                fr = A.parse_hdlc_frame(raw)
            except ChecksumError as e:
                e.frame = b"".join(items)  # type: ignore[attr-defined]
                raise
            self._check_addresses(fr)
            c = link.receive(fr.control)
            if c.kind in ("DM", "FRMR"):
                raise ProtocolExceptionError("meter answered %s" % c.kind, -1, fr.control)
            if c.kind != "I":
                raise A.UnsupportedFrameError("expected an I-frame, got %s" % c.kind)
            info += fr.info
            if not fr.segmented:
                break
            raw = await self.lease.exchange(link.rr(), _hdlc_complete, self.deadlines)
            items.append(raw)
        else:
            raise FrameError("more than %d HDLC segments in one answer" % MAX_BLOCKS)
        if info[:3] != A.LLC_RESPONSE:
            raise FrameError("LLC header E6 E7 00 missing")
        return b"".join(items), bytes(info[3:])

    def _check_addresses(self, fr: A.HdlcFrame) -> None:
        link = self.link
        assert link is not None
        if fr.dest != link.client_address or fr.src != link.server_address:
            raise A.AddressMismatchError("HDLC answer %s->%s, expected %s->%s" % (
                fr.src.hex(), fr.dest.hex(), link.server_address.hex(), link.client_address.hex()))

    async def set_clock(self, when: dt.datetime) -> int:
        """SET Clock.time; returns the data-access-result (0 = done)."""
        _raw, apdu = await self.transfer(A.set_clock_request(when, invoke_id=self.next_invoke()))
        if len(apdu) < 4 or apdu[0] != 0xC5 or apdu[1] != 0x01:
            raise A.UnsupportedFrameError("expected SET.response-normal, got %s" % apdu[:4].hex())
        return apdu[3]

    async def associate(self, password: str) -> A.AareInfo:
        kw: dict[str, Any] = {}
        if password:
            kw = dict(authentication=A.Authentication.LOW, password=password)
        _raw, apdu = await self.transfer(A.aarq(max_pdu_size=self.max_pdu, **kw))
        return A.parse_aare(apdu, raise_on_reject=True)

    max_pdu = 1024

    async def get(self, class_id: int, obis: str, attribute: int,
                  access: A.SelectiveAccess | None = None) -> tuple[bytes, bytes, D.GetRequest]:
        """GET one attribute, following datablocks: (item bytes, first answer APDU, request)."""
        iid = self.next_invoke()
        client, server = self.hdlc_addresses
        greq = D.GetRequest(class_id, _obis(obis), attribute, iid, client, server)
        parts: list[bytes] = []
        try:
            raw, apdu = await self.transfer(A.get_request(class_id, obis, attribute, access=access, invoke_id=iid))
            parts.append(raw)
            for _ in range(MAX_BLOCKS):
                if len(apdu) < 9 or apdu[0] != 0xC4 or apdu[1] != 0x02 or apdu[3] or apdu[8] != 0:
                    break  # normal answer, error, or the last block
                blk = int.from_bytes(apdu[4:8], "big")
                raw, apdu = await self.transfer(A.get_request_next(blk, invoke_id=iid))
                parts.append(raw)
            else:
                raise FrameError("more than %d datablocks in one answer" % MAX_BLOCKS)
        except ChecksumError as e:
            e.frame = b"".join(parts) + getattr(e, "frame", b"")  # type: ignore[attr-defined]
            e.request = greq  # type: ignore[attr-defined]
            raise
        return b"".join(parts), apdu, greq

    async def get_value(self, class_id: int, obis: str, attribute: int, access: A.SelectiveAccess | None = None):
        """GET an attribute and decode it in Python (session data: scaler_unit, capture
        objects, clock, event logs); raises ProtocolExceptionError with the
        data-access-result."""
        item, _apdu, _ = await self.get(class_id, obis, attribute, access)
        data = D.reassemble(item, framing="hdlc" if self.link is not None else "wrapper")
        if data[:1] == b"\xc4":
            r = D.parse_get_response(data)
            if r.errors and r.errors[0] is not None:
                raise ProtocolExceptionError("data-access-result %d for %s attribute %d" % (r.errors[0], obis, attribute),
                                             -1, r.errors[0])
            return r.values[0]
        return D.decode_data(data)

    async def release(self) -> None:
        try:
            _raw, apdu = await self.transfer(A.rlrq(0))
            A.parse_rlre(apdu)
        finally:
            if self.link is not None:
                ans = await self.lease.exchange(self.link.disc(), _hdlc_complete, self.deadlines)
                A.parse_hdlc_frame(ans)


class DlmsDriver(Driver):
    name = "dlms"
    complete = staticmethod(_any_complete)

    def __init__(self, client_sap: int = 16, framing: str = "wrapper", max_info: int = 128,
                 event_logs: Sequence[str] = (STANDARD_EVENT_LOG,)) -> None:
        if framing not in ("wrapper", "hdlc"):
            raise ValueError("framing must be 'wrapper' or 'hdlc', not %r" % (framing,))
        A.hdlc_client_address(client_sap)  # range check
        for log in event_logs:
            _obis(log)   # raises ValueError for a malformed OBIS code
        self.event_logs = tuple(event_logs)
        self.client_sap = client_sap
        self.framing = framing
        self.max_info = max_info
        self.complete = _hdlc_complete if framing == "hdlc" else _wrapper_complete
        self._cache: dict[tuple, _MeterCache] = {}

    def _meter_cache(self, meter: MeterConfig) -> _MeterCache:
        key = (meter.id or meter.name, meter.ip_address, meter.port,
               meter.serial.port if meter.serial else "", meter.connection_address)
        c = self._cache.get(key)
        if c is None:
            c = self._cache[key] = _MeterCache()
        return c

    @staticmethod
    def _registers(meter: MeterConfig) -> list[str]:
        regs: list[str] = []
        if "energy" in meter.reads:
            regs += ENERGY_OBIS
        if "instant" in meter.reads:
            regs += INSTANT_OBIS
        return regs

    def profile_obis(self, meter: MeterConfig) -> int | None:
        if "profile" not in meter.reads:
            return None
        cache = self._meter_cache(meter)
        values = [c.obis for c in cache.columns or () if c.kind == "value"]
        return values[0] if values else _obis("1.0.1.29.0.255")  # A+ per interval, the usual first

    def resume_profile(self, meter: MeterConfig, last_stored: float | None) -> None:
        cache = self._meter_cache(meter)
        if last_stored is not None and (cache.profile_last is None or last_stored > cache.profile_last):
            cache.profile_last = last_stored

    def resume_events(self, meter: MeterConfig, last_stored: float | None) -> None:
        """The time (UTC s) of the newest journal entry already stored, for an engine that
        seeds it from its event store before the first poll (this engine does not yet): the
        next read of every event log starts after that second."""
        cache = self._meter_cache(meter)
        if last_stored is None:
            return
        for log in self.event_logs:
            if last_stored + 1.0 > cache.event_from.get(log, float("-inf")):
                cache.event_from[log] = last_stored + 1.0
                cache.event_seen[log] = set()

    def expected_obis(self, meter: MeterConfig) -> list[int]:
        cache = self._meter_cache(meter)
        out = [_obis(o) for o in self._registers(meter) if cache.scaler_unit.get(o, (0, 0)) is not None]
        if "profile" in meter.reads and cache.columns:
            out += [c.obis for c in cache.columns if c.kind == "value"]
        return out

    async def poll(self, lease: Lease, meter: MeterConfig, deadlines: Deadlines) -> PollResult:
        cache = self._meter_cache(meter)
        s = _Session(self, lease, meter, deadlines)
        s.max_pdu = meter.package_size or 1024
        res = PollResult()
        await s.connect()
        try:
            await s.associate(meter.password)
        except A.AssociationError as e:
            if s.link is not None:  # leave the link in NDM
                try:
                    await lease.exchange(s.link.disc(), _hdlc_complete, deadlines)
                except (LinkError, FrameError):
                    pass
            raise ProtocolExceptionError("DLMS %s (client %d, server %s)" % (e, self.client_sap,
                                         meter.connection_address or "1"), -1, e.code) from None
        cursors: dict = {}
        ok = await self._reads(s, meter, cache, res, cursors)
        res.received_at = time.time()
        if ok:
            try:
                await s.release()
            except (LinkError, FrameError) as e:
                # the readings are in hand; the next poll's SNRM / AARQ starts afresh anyway
                res.events.append(EventRecord(time.time(), 5, "DLMS release failed: %s" % e))
        # the session returned its frames: now the catch-up points may move
        if "profile_last" in cursors:
            cache.profile_last = cursors["profile_last"]
        for log, (t, seen) in cursors.get("events", {}).items():
            cache.event_from[log] = t
            cache.event_seen[log] = seen
        return res

    async def _reads(self, s: _Session, meter: MeterConfig, cache: _MeterCache, res: PollResult,
                     cursors: dict) -> bool:
        """All reads of this poll into ``res``; False when the session was cut short by a
        damaged data answer (its frame is returned for the decoder to report).  New catch-up
        points go into ``cursors`` (applied by ``poll`` once the session is over)."""
        for obis in self._registers(meter):
            if obis not in cache.scaler_unit:
                try:
                    v = await s.get_value(3, obis, 3)
                    cache.scaler_unit[obis] = (int(v[0]), int(v[1]))
                except ProtocolExceptionError:
                    cache.scaler_unit[obis] = None
            su = cache.scaler_unit[obis]
            if su is None:
                continue
            if not await self._item(s, res, 3, obis, 2, su=su):
                return False
        if "profile" in meter.reads:
            if cache.columns is None:
                co = await s.get_value(7, PROFILE_OBIS, 3)
                period = await s.get_value(7, PROFILE_OBIS, 4)
                sus = {}
                for cid, ln, attr, _di in co:
                    if cid in (3, 4) and attr == 2:
                        o = D.Column(_obis(ln)).obis
                        try:
                            v = await s.get_value(cid, bytes(ln), 3)
                            sus[o] = (int(v[0]), int(v[1]))
                        except ProtocolExceptionError:
                            pass
                cache.columns = D.columns_from_capture_objects(co, sus)
                cache.period = float(period) or 900.0
            now = time.time()
            ranges = plan_catchup(cache.profile_last, now, period=cache.period,
                                  depth_days=meter.data_polling_length, max_rows=96)[:MAX_PROFILE_CHUNKS]
            for after, upto in ranges:
                acc = A.range_descriptor(dt.datetime.fromtimestamp(after + 1, UTC),
                                         dt.datetime.fromtimestamp(upto, UTC))
                ok = await self._item(s, res, 7, PROFILE_OBIS, 2, access=acc, columns=cache.columns,
                                      period=cache.period)
                if not ok:
                    return False
                if ok is True:  # not a data-access-result: the rows are in hand
                    cursors["profile_last"] = upto
        if "clock" in meter.reads:
            v = await s.get_value(8, CLOCK_OBIS, 2)
            now = time.time()
            ms = D.datetime_to_utc_ms(bytes(v)) if isinstance(v, (bytes, bytearray)) else (
                D.datetime_to_utc_ms(v) if isinstance(v, D.DateTime) else None)
            if ms is None:
                res.events.append(EventRecord(now, 2, "meter clock not readable: %r" % (v,)))
            else:
                drift = ms / 1000.0 - now
                if abs(drift) > meter.time_difference:
                    res.events.append(EventRecord(now, 1, "clock drift %+.1f s (tolerance %d s)"
                                                  % (drift, meter.time_difference)))
                    if meter.set_clock:
                        dar = await s.set_clock(dt.datetime.now(UTC))
                        res.events.append(EventRecord(time.time(), 3 if dar == 0 else 4,
                                                      "clock set" if dar == 0 else
                                                      "clock set refused: data-access-result %d" % dar))
        if "events" in meter.reads:
            for log in self.event_logs:
                await self._event_log(s, meter, cache, log, res, cursors.setdefault("events", {}))
        return True

    async def _event_log(self, s: _Session, meter: MeterConfig, cache: _MeterCache, log: str,
                         res: PollResult, cursors: dict) -> None:
        """The entries of one event log after the newest one read, as EventRecords."""
        now = time.time()
        if log not in cache.event_columns:
            cols = None
            why = "no clock or no event-code column in its capture objects"
            try:
                co = await s.get_value(7, log, 3)
                clock = [i for i, c in enumerate(co) if c[0] == 8 and c[2] == 2]
                codes = [i for i, c in enumerate(co) if c[0] in (1, 3, 4) and c[2] == 2]
                if clock and codes:
                    cols = (clock[0], codes[0])
            except ProtocolExceptionError as e:
                why = "data-access-result %d" % e.code
            except (TypeError, IndexError):
                why = "capture objects not understood"
            cache.event_columns[log] = cols
            if cols is None:
                res.events.append(EventRecord(now, EVENT_LOG_UNAVAILABLE, "event log %s not read: %s" % (log, why)))
        cols = cache.event_columns[log]
        if cols is None:
            return
        since = cache.event_from.get(log)
        seen = cache.event_seen.get(log, set())
        start = since if since is not None else float(math.floor(s.started - meter.data_polling_length * 86400.0))
        acc = A.range_descriptor(dt.datetime.fromtimestamp(math.floor(start), UTC),
                                 dt.datetime.fromtimestamp(math.floor(now) + 86400, UTC))
        try:
            rows = await s.get_value(7, log, 2, access=acc)
        except ProtocolExceptionError as e:
            res.events.append(EventRecord(now, EVENT_LOG_UNAVAILABLE, "event log %s not read: data-access-result %d"
                                          % (log, e.code)))
            return
        newest, newest_seen = since, set(seen)
        names = STANDARD_EVENTS if log == STANDARD_EVENT_LOG else {}
        entries = []
        for row in rows or ():
            ms = _time_ms(row[cols[0]])
            code = row[cols[1]]
            if ms is None or not isinstance(code, int):
                res.events.append(EventRecord(now, EVENT_LOG_UNAVAILABLE, "event log %s: entry %r not understood"
                                              % (log, row)))
                continue
            entries.append((ms, code))
        for ms, code in sorted(entries):
            t = ms / 1000.0
            if t < start or (since is not None and t == since and (ms, code) in seen):
                continue
            res.events.append(EventRecord(t, JOURNAL_CODE_BASE + code, "event log %s: %s (event %d)"
                                          % (log, names.get(code, "event %d" % code), code)))
            if newest is None or t > newest:
                newest, newest_seen = t, set()
            if t == newest:
                newest_seen.add((ms, code))
        cursors[log] = (newest if newest is not None else start, newest_seen)

    async def _item(self, s: _Session, res: PollResult, class_id: int, obis: str, attr: int, *,
                    su=None, access=None, columns=None, period: float = 0.0) -> bool | str:
        """GET one item into ``res``: True, "error" (a data-access-result, kept for the
        decoder), or False (a damaged answer: the session ends)."""
        try:
            item, apdu, greq = await s.get(class_id, obis, attr, access)
        except ChecksumError as e:
            # a damaged answer: hand its bytes to the decoder (CHECKSUM status, no values) and
            # end the session; the next poll starts afresh
            raw = getattr(e, "frame", None)
            if not raw:
                raise
            res.frames.append(raw)
            res.requests.append(DlmsRead(e.request, su, columns, period))  # type: ignore[attr-defined]
            return False
        res.frames.append(item)
        res.requests.append(DlmsRead(greq, su, columns, period))
        if (len(apdu) >= 4 and apdu[:2] == b"\xc4\x01" and apdu[3] == 1) or (
                len(apdu) >= 9 and apdu[:2] == b"\xc4\x02" and apdu[8] == 1):
            return "error"  # type: ignore[return-value]  # the decoder reports it
        return True

    def decode_batch(self, frames: Sequence[bytes], requests: Sequence[Any], meter_ids: np.ndarray,
                     received_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gets = [r.get for r in requests]
        sus = [r.scaler_unit if r.scaler_unit is not None else (0, 255) for r in requests]
        cols = [r.columns for r in requests]
        periods = [r.period for r in requests]
        any_cols = any(c is not None for c in cols)
        return D.decode_batch(list(frames), requests=gets, scaler_unit=sus,
                              columns=cols if any_cols else None,
                              capture_period=periods, meter_ids=meter_ids, received_at=received_at)


def _time_ms(v) -> int | None:
    """UTC ms of a decoded date-time (octet string or DateTime), None if not a valid one."""
    if isinstance(v, (bytes, bytearray)) and len(v) == 12:
        return D.datetime_to_utc_ms(bytes(v))
    if isinstance(v, D.DateTime):
        return D.datetime_to_utc_ms(v)
    return None
