"""Simulated Modbus meters (Eastron SDM630 / SDM120) behind one port: Modbus TCP (MBAP) or RTU
(serial, or RTU over TCP through a transparent gateway), told apart per request.

Input registers (FC 0x04) hold IEEE-754 float32 values, most significant register first, from
the :class:`MeterModel` at the moment of the request; energies are kWh / kvarh / kVAh as on the
real meters.  Exceptions as an Eastron answers them: 01 for a function other than 0x03 / 0x04 /
0x08, 02 for a read that touches an unmapped register, cuts a value in half or asks for more
than the map's limit (80 registers), 03 for a count outside 1..125.  Diagnostics 0x08
sub-function 0 echoes.  Unit 0 (broadcast) and units not behind this port get no answer.
"""
from __future__ import annotations

import collections
import math
import struct
from typing import Any, Mapping

from meterpoll.bindings import modbus as codec
from meterpoll.bindings.errors import FrameError
from meterpoll.engine.drivers.modbus import resolve_map
from meterpoll.engine.sim.model import MeterModel
from meterpoll.engine.sim.server import Answerer
from meterpoll.ext._crc import crc16_modbus

__all__ = ["ModbusSim", "meter_values"]

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3


def meter_values(model: MeterModel, t: float) -> dict[str, float]:
    """Every quantity of the SDM630 and SDM120 maps (by entry name) in base units at time t."""
    ins = model.instant(t)
    ph = ins["phases"]
    p, q, pf = ins["active_power"], ins["reactive_power"], ins["power_factor"]
    e = model.active_energy(t)
    eq = model.reactive_energy(t)
    angle = math.degrees(math.acos(pf))
    v = {"frequency": ins["frequency"], "active_power": p, "reactive_power": q,
         "apparent_power": sum(x["apparent_power"] for x in ph), "power_factor": pf,
         "import_active_energy": e, "export_active_energy": 0.0,
         "import_reactive_energy": eq, "export_reactive_energy": 0.0,
         "apparent_energy": e / pf, "total_active_energy": e, "total_reactive_energy": eq,
         "active_power_demand": (e - model.active_energy(t - 900.0)) * 4.0}
    v["active_power_demand_max"] = max(v["active_power_demand"], _max_demand(model, t))
    for k, x in enumerate(ph, 1):
        v["voltage_l%d" % k] = x["voltage"]
        v["current_l%d" % k] = x["current"]
        v["active_power_l%d" % k] = x["active_power"]
        v["apparent_power_l%d" % k] = x["apparent_power"]
        v["reactive_power_l%d" % k] = x["reactive_power"]
        v["power_factor_l%d" % k] = x["power_factor"]
        v["phase_angle_l%d" % k] = angle
        share = x["active_power"] / p if p else 1 / 3
        v["import_active_energy_l%d" % k] = e * share
        v["export_active_energy_l%d" % k] = 0.0
        v["total_active_energy_l%d" % k] = e * share
    volts = [x["voltage"] for x in ph]
    amps = [x["current"] for x in ph]
    v["voltage_ln_average"] = sum(volts) / 3
    v["current_average"] = sum(amps) / 3
    v["current_sum"] = sum(amps)
    for name, a, b in (("voltage_l1_l2", 0, 1), ("voltage_l2_l3", 1, 2), ("voltage_l3_l1", 2, 0)):
        v[name] = math.sqrt(volts[a] ** 2 + volts[b] ** 2 + volts[a] * volts[b])
    re = sum(i * math.cos(math.radians(-120 * k)) for k, i in enumerate(amps))
    im = sum(i * math.sin(math.radians(-120 * k)) for k, i in enumerate(amps))
    v["current_neutral"] = math.hypot(re, im)
    # SDM120 (single phase): the meter sees the whole load on one phase
    v["voltage"] = volts[0]
    v["current"] = v["apparent_power"] / volts[0]
    v["phase_angle"] = angle
    return v


_DEMAND_CACHE: dict[tuple[int, int], float] = {}


def _max_demand(model: MeterModel, t: float) -> float:
    """Largest 15-minute demand (W) of the intervals completed today (cached per interval)."""
    key = (id(model), int(t // 900))
    v = _DEMAND_CACHE.get(key)
    if v is None:
        if len(_DEMAND_CACHE) > 65536:
            _DEMAND_CACHE.clear()
        day = math.floor(t / 86400) * 86400
        rows = model.profile(day, math.floor(t / 900) * 900)
        v = _DEMAND_CACHE[key] = max((wh * 4.0 for _, wh in rows), default=0.0)
    return v


def _words(entry: codec.RegisterEntry, value: float) -> list[int]:
    raw = value / entry.scale
    code = entry.type
    if code == "float32":
        b = struct.pack(">f", raw)
    elif code == "float64":
        b = struct.pack(">d", raw)
    else:
        fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q", "uint64": ">Q"}[code]
        b = struct.pack(fmt, int(round(raw)))
    w = [int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b), 2)]
    return w if entry.word_order == "big" else w[::-1]


def _crc_ok(b: bytes | bytearray, n: int) -> bool:
    return n >= 4 and crc16_modbus(bytes(b[:n - 2])) == b[n - 2] | (b[n - 1] << 8)


class ModbusSim(Answerer):
    """Modbus meters at ``addresses`` (unit ids) behind one port.  ``register_map``: a map name
    ("sdm630", "sdm120"), a TOML path, or {unit: name}; ``framing``: "auto" (answer each request
    in its own framing), "tcp" or "rtu"."""

    def __init__(self, addresses=(1,), seed: int = 0, password: str = "", *,
                 register_map: str | Mapping[int, str] = "sdm630", framing: str = "auto") -> None:
        if framing not in ("auto", "tcp", "rtu"):
            raise ValueError("framing must be 'auto', 'tcp' or 'rtu'")
        self.framing = framing
        self.models = {int(a): MeterModel(seed=seed + int(a)) for a in addresses}
        self.maps: dict[int, codec.RegisterMap] = {}
        for a in self.models:
            name = register_map.get(a, "sdm630") if isinstance(register_map, Mapping) else register_map
            self.maps[a] = resolve_map(name)
        #: the latest reads answered (unit, function, start, count) and exceptions (unit, function, code)
        self.served: collections.deque[tuple[int, int, int, int]] = collections.deque(maxlen=4096)
        self.exceptions: collections.deque[tuple[int, int, int]] = collections.deque(maxlen=4096)

    # ---- framing ----
    def request_length(self, buf: bytearray) -> int:
        n = len(buf)
        if n < 8:
            return 0
        if self.framing != "tcp":
            fn = buf[1]
            ln = 9 + buf[6] if fn == 16 else 8
            if n >= ln and _crc_ok(buf, ln):
                return ln
        if self.framing != "rtu" and buf[2] == 0 and buf[3] == 0:
            ln = (buf[4] << 8) | buf[5]
            if 2 <= ln <= 254:
                return 6 + ln if n >= 6 + ln else 0
        if self.framing == "rtu" and buf[1] == 16 and n < 9 + buf[6]:
            return 0
        return -1

    def _is_tcp(self, req: bytes) -> bool:
        if self.framing != "auto":
            return self.framing == "tcp"
        mbap = len(req) >= 8 and req[2] == 0 and req[3] == 0 and len(req) == 6 + ((req[4] << 8) | req[5])
        if not mbap:
            return False
        # One MBAP frame in 65,536 also "passes" a CRC-16 over its last two bytes (transaction id
        # 0x0560 does for a 40-register read), so a valid CRC alone does not make it RTU.  Both
        # readings fit only an 8-byte frame: an RTU read of 2 registers at 0 (MBAP length 2 would
        # be a TCP request without data).
        return len(req) != 8 or not _crc_ok(req, len(req))

    # ---- answers ----
    def answer(self, request: bytes, now: float) -> bytes | None:
        tcp = self._is_tcp(request)
        if tcp:
            tid, unit, fn = (request[0] << 8) | request[1], request[6], request[7]
        else:
            tid, unit, fn = 0, request[0], request[1]
        if unit not in self.models:
            return None  # broadcast, or no such meter on this bus
        kw: dict[str, Any] = {"tcp": tcp, "transaction": tid}

        def exc(code: int) -> bytes:
            self.exceptions.append((unit, fn & 0x7F, code))
            return codec.encode_exception(unit, fn & 0x7F, code, **kw)

        if fn not in (3, 4, 8):
            return exc(ILLEGAL_FUNCTION)
        try:
            f = codec.parse_frame(request, direction="request", tcp=tcp)
        except FrameError:
            return None  # a damaged request: a meter stays silent
        if fn == 8:
            if f.sub_function != 0:
                return exc(ILLEGAL_FUNCTION)
            return codec.encode_write_ack(unit, 8, f.sub_function, f.data, **kw)
        if not 1 <= f.count <= codec.MAX_READ:
            return exc(ILLEGAL_VALUE)
        m = self.maps[unit]
        if f.count > m.max_registers:
            return exc(ILLEGAL_ADDRESS)
        regs = self._registers(unit, m, fn, f.start, f.count, now)
        if regs is None:
            return exc(ILLEGAL_ADDRESS)
        self.served.append((unit, fn, f.start, f.count))
        return codec.encode_read_response(unit, fn, regs, **kw)

    def _registers(self, unit: int, m: codec.RegisterMap, fn: int, start: int, count: int,
                   now: float) -> list[int] | None:
        """The registers start..start+count-1, or None when one is unmapped or a value is cut."""
        end = start + count
        entries = [e for e in m.entries if e.function == fn and e.address < end and e.address + e.width > start]
        if not entries or entries[0].address != start or entries[-1].address + entries[-1].width != end:
            return None
        if sum(e.width for e in entries) != count:
            return None  # a gap inside the read
        values = meter_values(self.models[unit], now)
        out: list[int] = []
        for e in entries:
            out.extend(_words(e, values.get(e.name, 0.0)))
        return out

    def corrupt_checksum(self, frame: bytes) -> bytes:
        """RTU: the CRC's low byte flipped.  MBAP has no checksum: its protocol id is damaged
        instead (the closest a TCP frame gets to a bad check)."""
        if _crc_ok(frame, len(frame)):
            return frame[:-2] + bytes([frame[-2] ^ 0x01]) + frame[-1:]
        return frame[:2] + b"\x00\x01" + frame[4:]
