"""Modbus driver: reads a meter's register map (``meter.register_map``, default Eastron SDM630)
with the map's planned 0x03/0x04 reads, at most ``meter.package_size`` registers per read.

Framing follows the link: ``link="tcp"`` speaks Modbus TCP (MBAP header, transaction ids,
``unit id = connection_address``), ``link="serial"`` Modbus RTU, and ``link="gateway"`` (a
TCP-to-RS-485 converter) RTU over TCP by default - a transparent converter passes the RTU frame,
CRC included - or MBAP with ``ModbusDriver(gateway="tcp")`` for a Modbus TCP gateway.

``meter.reads``: "energy" reads the map's energy registers (OBIS D = 8), "instant" everything
else; profile / events / clock do not exist on these meters and are skipped.

``poll`` only moves bytes (one exchange per planned read); every answer goes to ``decode_batch``,
which decodes all answers of a tick in one native call per register map.  An answer that fails
there (CRC, exception, mismatch) yields NaN readings with the failure's quality for the channels
that read carried, so a bad frame is never a silent gap and never a zero.
"""
from __future__ import annotations

import itertools
import math
import time
from typing import Any, Sequence

import numpy as np

from meterpoll.bindings import modbus as codec
from meterpoll.bindings.readings import READING_DTYPE, FrameStatus, Quality
from meterpoll.engine.config import MeterConfig
from meterpoll.bindings.wire import Framing
from meterpoll.engine.driver import Driver, FastPlan, PollResult
from meterpoll.engine.link import Lease
from meterpoll.engine.transport import Deadlines
from meterpoll.ext._crc import crc16_modbus

__all__ = ["ModbusDriver", "complete_tcp", "complete_rtu", "complete_auto", "resolve_map"]

_ENERGY_D = 8


def complete_tcp(buf: bytearray) -> int:
    """MBAP framing: 6-byte header whose length field counts unit + PDU."""
    n = len(buf)
    if n >= 4 and (buf[2] or buf[3]):
        return -1
    if n < 6:
        return 0
    ln = (buf[4] << 8) | buf[5]
    if not 2 <= ln <= 254:
        return -1
    return 6 + ln if n >= 6 + ln else 0


def _rtu_response_length(buf: bytearray) -> int:
    """Expected length of an RTU answer from its function / byte count (0: need more, -1: bad)."""
    n = len(buf)
    if n < 2:
        return 0
    fn = buf[1]
    if fn & 0x80:
        return 5
    if fn in (3, 4):
        if n < 3:
            return 0
        return 5 + buf[2] if buf[2] and not buf[2] & 1 else -1
    if fn in (5, 6, 8, 16):
        return 8
    return -1


def complete_rtu(buf: bytearray) -> int:
    """RTU answer framing by function and byte count (the CRC is checked by the decoder)."""
    ln = _rtu_response_length(buf)
    if ln <= 0:
        return ln
    return ln if len(buf) >= ln else 0


def complete_auto(buf: bytearray) -> int:
    """Best effort for raw exchanges: an intact RTU answer, else an MBAP frame."""
    n = len(buf)
    if n < 4:
        return 0
    if buf[2] == 0 and buf[3] == 0:
        if n < 6:
            return 0
        ln = (buf[4] << 8) | buf[5]
        if 2 <= ln <= 254:
            rtu = _rtu_response_length(buf)
            if 0 < rtu <= n and crc16_modbus(bytes(buf[:rtu - 2])) == buf[rtu - 2] | (buf[rtu - 1] << 8):
                return rtu
            return 6 + ln if n >= 6 + ln else 0
    return complete_rtu(buf)


_TOML_MAPS: dict[str, codec.RegisterMap] = {}


def resolve_map(name: str) -> codec.RegisterMap:
    """A built-in map by name ("" = sdm630) or a TOML register map file (loaded once)."""
    key = (name or "sdm630").strip()
    m = codec.MAPS.get(key.lower())
    if m is not None:
        return m
    m = _TOML_MAPS.get(key)
    if m is None:
        m = _TOML_MAPS[key] = codec.RegisterMap.from_toml(key)
    return m


#: late answers (older Modbus TCP transaction ids) skipped per request before giving up
STALE_ANSWERS_SKIPPED = 4


class _Req:
    """What one answer frame answers: the map, the REQUEST_DTYPE record, the framing."""

    __slots__ = ("map", "rec", "raw", "tcp")

    def __init__(self, map: codec.RegisterMap, rec: np.ndarray, tcp: bool) -> None:
        self.map = map
        self.rec = rec
        self.raw = rec.tobytes()   # joined per batch: np.concatenate of 1-row structured arrays is slow
        self.tcp = tcp

    def __repr__(self) -> str:
        r = self.rec[0]
        return "<ModbusRequest %s unit=%d fn=%d start=0x%04X count=%d%s>" % (
            self.map.name, r["unit"], r["function"], r["start"], r["count"], " tcp" if self.tcp else "")


class _Plan:
    __slots__ = ("map", "reads", "obis")

    def __init__(self, map: codec.RegisterMap, reads: list, obis: list[int]) -> None:
        self.map = map
        self.reads = reads
        self.obis = obis


def _status_quality(st: int) -> int:
    if st == FrameStatus.CHECKSUM:
        return Quality.CHECKSUM
    return Quality.PROTOCOL_EXCEPTION


class ModbusDriver(Driver):
    name = "modbus"
    complete = staticmethod(complete_auto)

    def __init__(self, *, gateway: str = "rtu", max_gap: int = 0) -> None:
        if gateway not in ("rtu", "tcp"):
            raise ValueError("gateway framing must be 'rtu' or 'tcp', got %r" % (gateway,))
        self.gateway = gateway
        self.max_gap = max_gap
        self._tid = itertools.count(1)
        self._plans: dict[tuple, _Plan] = {}
        self._fast: dict[tuple, FastPlan] = {}

    # ---- configuration ----
    def is_tcp(self, meter: MeterConfig) -> bool:
        if meter.link == "serial":
            return False
        if meter.link == "gateway":
            return self.gateway == "tcp"
        return True

    def plan(self, meter: MeterConfig) -> _Plan:
        key = (meter.register_map, meter.reads, meter.package_size)
        p = self._plans.get(key)
        if p is None:
            full = resolve_map(meter.register_map)
            want_energy = "energy" in meter.reads
            want_instant = "instant" in meter.reads
            entries = [e for e in full.entries
                       if (want_energy if ((e.obis >> 16) & 0xFF) == _ENERGY_D else want_instant)]
            if entries:
                sub = codec.RegisterMap(entries, name=full.name, max_registers=full.max_registers)
                reads = sub.plan(meter.package_size or codec.MAX_READ, self.max_gap)
            else:
                reads = []
            p = self._plans[key] = _Plan(full, reads, [e.obis for e in entries])
        return p

    def expected_obis(self, meter: MeterConfig) -> list[int]:
        return list(self.plan(meter).obis)

    # ---- native exchange path ----
    def fast_plan(self, meter: MeterConfig) -> FastPlan | None:
        """Modbus reads need no session: over TCP (direct or a gateway) the engine runs them in
        the native core.  MBAP transaction ids are written by the core per request."""
        if meter.link == "serial":
            return None
        unit = int(meter.connection_address or "1", 0)
        tcp = self.is_tcp(meter)
        key = (meter.register_map, meter.reads, meter.package_size, unit, tcp)
        fp = self._fast.get(key)       # meters alike share one plan (100,000 meters, few plans)
        if fp is None:
            p = self.plan(meter)
            if not p.reads:
                return None
            frames, _ = codec.encode_plan(unit, p.reads, tcp=tcp)
            recs = codec.make_requests([(unit, r.function, r.start, r.count, None) for r in p.reads])
            tags = [_Req(p.map, recs[i:i + 1], tcp) for i in range(len(frames))]
            fp = self._fast[key] = FastPlan(frames, Framing.MBAP if tcp else Framing.RTU, tags)
        return fp

    # ---- session ----
    async def poll(self, lease: Lease, meter: MeterConfig, deadlines: Deadlines) -> PollResult:
        p = self.plan(meter)
        unit = int(meter.connection_address or "1", 0)
        tcp = self.is_tcp(meter)
        first = next(self._tid) & 0xFFFF
        for _ in range(len(p.reads) - 1):
            next(self._tid)
        frames, recs = codec.encode_plan(unit, p.reads, tcp=tcp, first_transaction=first)
        complete = complete_tcp if tcp else complete_rtu
        res = PollResult()
        for i, req in enumerate(frames):
            frame = await lease.exchange(req, complete, deadlines)
            # a late answer to an earlier request of this link carries an older transaction id:
            # skip it and read on (bounded), instead of failing this poll on a mismatch
            for _ in range(STALE_ANSWERS_SKIPPED):
                if not tcp or len(frame) < 2 or frame[:2] == req[:2]:
                    break
                frame = await lease.read(complete, deadlines)
            res.frames.append(frame)
            res.requests.append(_Req(p.map, recs[i:i + 1], tcp))
        res.received_at = time.time()
        return res

    # ---- decoding ----
    def decode_batch(self, frames: Sequence[bytes], requests: Sequence[Any], meter_ids: np.ndarray,
                     received_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(frames)
        ids = np.asarray(meter_ids, dtype=np.uint32)
        rx = np.asarray(received_at, dtype="datetime64[ms]")
        if rx.ndim == 0:
            rx = np.full(n, rx)
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(id(r.map), []).append(i)
        parts = []
        status = None
        for idx in groups.values():
            m = requests[idx[0]].map
            if len(groups) == 1:
                fr, rq, gi, grx = frames, requests, ids, rx
            else:
                sel = np.asarray(idx)
                fr, rq, gi, grx = [frames[i] for i in idx], [requests[i] for i in idx], ids[sel], rx[sel]
            recs = np.frombuffer(b"".join([r.raw for r in rq]), dtype=codec.REQUEST_DTYPE)
            tcp = np.fromiter((r.tcp for r in rq), dtype=bool, count=len(rq))
            readings, st = codec.decode_batch(fr, requests=recs, map=m, meter_ids=gi, received_at=grx, tcp=tcp)
            if len(groups) == 1:
                status = st
            else:
                if status is None:
                    status = np.zeros(n, dtype=st.dtype)
                off = sum(len(x) for x in parts)
                if "first" in st.dtype.names:
                    st = st.copy()
                    st["first"] += off
                status[np.asarray(idx)] = st
            parts.append(readings)
            bad = np.flatnonzero((st["status"] != FrameStatus.OK) & (st["status"] != FrameStatus.NO_DATA))
            if len(bad):
                parts.append(self._failed_frames(m, recs, st, bad, gi, grx))
        if status is None:
            from meterpoll.bindings.readings import FRAME_STATUS_DTYPE
            status = np.zeros(0, dtype=FRAME_STATUS_DTYPE)
        out = np.concatenate(parts) if parts else np.zeros(0, READING_DTYPE)
        return out, status

    @staticmethod
    def _failed_frames(m: codec.RegisterMap, recs: np.ndarray, st: np.ndarray, bad: np.ndarray,
                       ids: np.ndarray, rx: np.ndarray) -> np.ndarray:
        """NaN readings with the frame's failure quality for every map entry the read asked for."""
        keys = m.native["key"]
        fn_of, addr_of = keys >> 16, keys & 0xFFFF
        rows = []
        for i in bad.tolist():
            r = recs[i]
            hit = np.flatnonzero((fn_of == r["function"]) & (addr_of >= r["start"])
                                 & (addr_of < int(r["start"]) + int(r["count"])))
            if len(hit):
                rows.append((i, hit, _status_quality(int(st["status"][i]))))
        total = sum(len(h) for _, h, _ in rows)
        out = np.zeros(total, READING_DTYPE)
        k = 0
        for i, hit, q in rows:
            sl = slice(k, k + len(hit))
            out["meter"][sl] = ids[i]
            out["obis"][sl] = m.native["obis"][hit]
            out["ts"][sl] = rx[i]
            out["value"][sl] = math.nan
            out["unit"][sl] = m.native["unit"][hit]
            out["status"][sl] = q
            k += len(hit)
        return out
