"""Simulated M-Bus heat meters behind one port (a level converter / TCP gateway on a bus).

Each primary address holds a heat meter driven by a :class:`MeterModel`: heat energy is the
model's active energy (Wh), power its active power (W); the water circuit runs at a fixed 20 K
spread, so volume flow is P / (1.163 kWh/(m3 K) x 20 K) and the volume register is the exact
integral of the flow.  Flow temperature swings 50..70 degC over two hours.  The meter clock is
``model.clock`` (M-Bus local time, sent as UTC).

Link layer as a slave answers it: SND_NKE -> E5 (and the FCB state is cleared); REQ_UD2 -> RSP_UD
(CI 0x72, medium 0x04 heat); the same FCB twice in a row repeats the last telegram, a toggled
FCB gets the next one.  With ``telegrams=2`` a readout is two telegrams, the first ending with
DIF 0x1F (more records follow).  REQ_UD1 -> E5 (no alarm data).  Secondary selection (SND_UD
CI 0x52 to 0xFD, wildcards) -> E5 from the one meter that matches; other SND_UD CIs get an
application error (CI 0x70, code 1: unimplemented CI).  Damaged requests get no answer.
"""
from __future__ import annotations

import collections
import datetime as dt
import math

from meterpoll.bindings import mbus as codec
from meterpoll.bindings.errors import FrameError
from meterpoll.engine.sim.model import MeterModel
from meterpoll.engine.sim.server import Answerer

__all__ = ["MbusSim", "heat_values", "SPREAD_K", "WATER_KWH_PER_M3K"]

SPREAD_K = 20.0                 # flow - return temperature
WATER_KWH_PER_M3K = 1.163       # heat capacity of water
MANUFACTURER = "MPL"


def heat_values(model: MeterModel, t: float) -> dict[str, float]:
    """The heat meter's quantities at true time t: energy Wh, volume m3, power W, flow m3/h,
    flow / return temperature degC, temperature difference K, and the energy at the start of
    the current month (Wh, storage 1) with that date."""
    e = model.active_energy(t)
    p = model.active_power(t)
    k = WATER_KWH_PER_M3K * 1000.0 * SPREAD_K   # Wh per m3
    tf = 60.0 + 10.0 * math.sin(t / 1145.9)
    clock = dt.datetime.fromtimestamp(model.clock(t), dt.timezone.utc)
    month = clock.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {"energy": e, "volume": e / k, "power": p, "flow": p / k, "flow_temperature": tf,
            "return_temperature": tf - SPREAD_K, "temperature_difference": SPREAD_K,
            "clock": clock, "month_start": month, "month_energy": model.active_energy(month.timestamp())}


def _type_f(t: dt.datetime) -> bytes:
    y = t.year % 100
    return bytes((t.minute, t.hour, t.day | ((y & 0x07) << 5), t.month | ((y & 0x78) << 1)))


def _type_g(t: dt.datetime) -> bytes:
    y = t.year % 100
    return bytes((t.day | ((y & 0x07) << 5), t.month | ((y & 0x78) << 1)))


def _rec(data_field: int, vif: int, data: bytes, **dib) -> bytes:
    return codec.dib_bytes(data_field, **dib) + bytes((vif,)) + data


class _Slave:
    __slots__ = ("model", "fcb", "next", "last", "access")

    def __init__(self, model: MeterModel) -> None:
        self.model = model
        self.fcb: bool | None = None
        self.next = 0
        self.last: bytes | None = None
        self.access = 0

    def reset(self) -> None:
        self.fcb, self.next, self.last = None, 0, None


class MbusSim(Answerer):
    """Heat meters at primary ``addresses`` behind one port; ``telegrams``: 1 or 2 per readout."""

    def __init__(self, addresses=(1,), seed: int = 0, password: str = "", *, telegrams: int = 2,
                 status: int = 0) -> None:
        if telegrams not in (1, 2):
            raise ValueError("telegrams must be 1 or 2")
        self.telegrams = telegrams
        self.status = status
        self.slaves = {int(a): _Slave(MeterModel(seed=seed + int(a))) for a in addresses}
        self.models = {a: s.model for a, s in self.slaves.items()}
        self.selected: int | None = None
        #: (address, telegram index, time) of the latest telegrams built
        self.log: collections.deque[tuple[int, int, float]] = collections.deque(maxlen=4096)

    # ---- framing ----
    def request_length(self, buf: bytearray) -> int:
        b0 = buf[0]
        if b0 == 0x10:
            return 5 if len(buf) >= 5 else 0
        if b0 != 0x68:
            return -1
        if len(buf) < 4:
            return 0
        if buf[1] != buf[2] or buf[3] != 0x68 or buf[1] < 3:
            return -1
        return buf[1] + 6 if len(buf) >= buf[1] + 6 else 0

    # ---- answers ----
    def answer(self, request: bytes, now: float) -> bytes | None:
        try:
            f = codec.parse_frame(request, direction="request")
        except FrameError:
            return None  # a slave ignores a damaged frame
        a = f.address
        if a == 0xFD:
            a = self.selected
        elif a == 0xFE and len(self.slaves) == 1:
            a = next(iter(self.slaves))
        if f.kind == "long" and f.address == 0xFD and f.ci == codec.CI_SELECT:
            return self._select(bytes(f.payload))
        slave = self.slaves.get(a) if a is not None else None
        if slave is None:
            return None
        c = f.c
        if f.kind == "short":
            if c == codec.C_SND_NKE:
                slave.reset()
                if f.address == 0xFD:
                    self.selected = None
                return codec.ACK
            if c & ~codec.FCB == codec.C_REQ_UD2:
                return self._req_ud2(a, slave, bool(c & codec.FCB), now)
            if c & ~codec.FCB == codec.C_REQ_UD1:
                return codec.ACK
            return None
        if c & ~codec.FCB == codec.C_SND_UD and f.ci == codec.CI_RESET:
            slave.reset()
            return codec.ACK
        return codec.encode_long_frame(codec.C_RSP_UD, a, codec.CI_APP_ERROR, b"\x01")

    def _select(self, data: bytes) -> bytes | None:
        if len(data) != 8:
            return None
        want_id = data[:4][::-1].hex().upper()
        man = int.from_bytes(data[4:6], "little")
        hits = []
        for a, s in self.slaves.items():
            ident = s.model.serial[-8:]
            if not all(w in ("F", d) for w, d in zip(want_id, ident)):
                continue
            if man != 0xFFFF and man != codec.manufacturer_id(MANUFACTURER):
                continue
            if data[6] not in (0xFF, 1) or data[7] not in (0xFF, 0x04):
                continue
            hits.append(a)
        self.selected = hits[0] if len(hits) == 1 else None
        if self.selected is not None:
            self.slaves[self.selected].reset()
        return codec.ACK if hits else None   # several matches: a collision the master sees as E5 too

    def _req_ud2(self, a: int, slave: _Slave, fcb: bool, now: float) -> bytes:
        if slave.last is not None and slave.fcb is not None and fcb == slave.fcb:
            return slave.last   # the master did not get it: repeat
        idx = slave.next
        slave.last = self.telegram(a, idx, now)
        slave.fcb = fcb
        slave.next = (idx + 1) % self.telegrams
        return slave.last

    def telegram(self, a: int, index: int, now: float) -> bytes:
        """RSP_UD telegram ``index`` of the readout of meter ``a`` at true time ``now``."""
        s = self.slaves[a]
        v = heat_values(s.model, now)
        self.log.append((a, index, now))
        first = (_rec(0x0E, 0x03, codec.encode_bcd(round(v["energy"]), 6))            # energy Wh, BCD12
                 + _rec(0x04, 0x13, codec.encode_int(round(v["volume"] * 1000), 4))   # volume l
                 + _rec(0x04, 0x2B, codec.encode_int(round(v["power"]), 4))           # power W
                 + _rec(0x04, 0x3A, codec.encode_int(round(v["flow"] * 10000), 4)))   # flow 0.1 l/h
        second = (_rec(0x02, 0x59, codec.encode_int(round(v["flow_temperature"] * 100), 2))    # 0.01 degC
                  + _rec(0x02, 0x5D, codec.encode_int(round(v["return_temperature"] * 100), 2))
                  + _rec(0x02, 0x61, codec.encode_int(round(v["temperature_difference"] * 100), 2))  # 0.01 K
                  + _rec(0x04, 0x03, codec.encode_int(round(v["month_energy"]), 4), storage=1)
                  + _rec(0x02, 0x6C, _type_g(v["month_start"]), storage=1))
        clock = _rec(0x04, 0x6D, _type_f(v["clock"]))
        if self.telegrams == 1:
            records = first + second + clock
        elif index == 0:
            records = first + clock + b"\x1F"
        else:
            records = second + clock
        s.access = (s.access + 1) & 0xFF
        return codec.encode_rsp_ud(records, address=a, ident=s.model.serial[-8:], manufacturer=MANUFACTURER,
                                   version=1, medium=0x04, access=s.access, status=self.status)

    def corrupt_checksum(self, frame: bytes) -> bytes:
        """The checksum byte (before the 0x16 stop byte) flipped; E5 becomes E4."""
        if len(frame) >= 5 and frame[-1] == 0x16:
            return frame[:-2] + bytes([frame[-2] ^ 0x01]) + frame[-1:]
        return bytes([frame[0] ^ 0x01]) + frame[1:] if frame else frame
