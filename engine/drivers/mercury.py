"""Mercury 230/234 engine driver: one poll = test channel, open channel (level 1, the meter's
password), the reads of ``meter.reads``, close channel.

Reads
-----
``energy``   05h array 0 (since reset), tariff 0 (sum) and 1..4: A+, A-, R+, R- in Wh / varh
``instant``  08 14 00 / 04 / 08 (P, Q, S: sum and L1..L3, 4-byte values), 08 16 30 (cos phi),
             08 16 11 (U L1..L3), 08 16 21 (I L1..L3), 08 11 40 (frequency)
``clock``    04 00 (meter time; a drift beyond ``time_difference`` is reported as an event)
``events``   04 01 00..09: the ten records of the power off/on journal (0.0.96.11.1.255, value 1
             = off stamp, 2 = on stamp, ts = the stamp); not in ``expected_obis`` (a failed
             poll records no NaN events)

``profile`` is not read yet (the record address semantics are in doubt, README 2.6 / 6.2).

Framing: a Mercury answer has no length field; its length follows from the request (the codec's
layout table: 1 address byte + data + 2 CRC bytes), or it is the 4-byte status answer
(``address status CRC``) when the meter refuses.  :func:`complete_for` builds that ``complete``
per exchange; :func:`complete_any` (the driver's ``complete``, for raw exchanges) ends a frame at
the first CRC match.

Passwords: non-D meters take the six digits as binary bytes (default), D meters as ASCII
(``MercuryDriver(ascii_password=True)``).  An empty ``meter.password`` means the factory
default ``111111``.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from meterpoll.bindings import mercury as merc
from meterpoll.bindings.checksums import crc16_modbus
from meterpoll.bindings.errors import ProtocolExceptionError
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.driver import Driver, EventRecord, PollResult
from meterpoll.engine.link import Lease
from meterpoll.engine.transport import Complete, Deadlines
from meterpoll.ext import _mercury

__all__ = ["MercuryDriver", "complete_for", "complete_any", "plan"]

DEFAULT_PASSWORD = "111111"
_CLOCK_OBIS = 0x0000010000FF  # 0.0.1.0.0.255
EVENT_CLOCK_DRIFT = 2


def _crc_ok(buf, n: int) -> bool:
    return crc16_modbus(bytes(buf[: n - 2])) == (buf[n - 2] | buf[n - 1] << 8)


def complete_for(req: merc.Request) -> Complete:
    """``complete`` for the answer to ``req``: its layout's length, or the 4-byte status answer
    (recognised by its CRC and a status byte 00..0F / 80..8F)."""
    dlen = _mercury.layout(req.address, req.code, req.p1, req.p2, req.aux)["dlen"]
    full = 3 + dlen if dlen > 0 else 0
    addr = req.address

    def complete(buf: bytearray) -> int:
        n = len(buf)
        if addr and buf[0] != addr:
            return -1
        if n >= 4 and (full == 4 or (buf[1] & 0x70) == 0 and _crc_ok(buf, 4)):
            return 4
        if full:
            return full if n >= full else 0
        return complete_any(buf)

    return complete


def complete_any(buf: bytearray) -> int:
    """Best effort for an answer to an unknown request: the shortest prefix with a valid CRC."""
    n = len(buf)
    for k in range(4, min(n, 258) + 1):
        if _crc_ok(buf, k):
            return k
    return -1 if n > 258 else 0


def plan(address: int, reads: Sequence[str]) -> list[merc.Request]:
    """The data requests of one poll for ``reads``."""
    out: list[merc.Request] = []
    if "energy" in reads:
        out += [merc.read_energy(address, merc.EnergyArray.SINCE_RESET, tariff=t) for t in range(5)]
    if "instant" in reads:
        out += [merc.read_aux(address, "power", param=0x14, power=k) for k in "PQS"]
        out += [merc.read_aux(address, "power_factor", param=0x16),
                merc.read_aux(address, "voltage", param=0x16),
                merc.read_aux(address, "current", param=0x16),
                merc.read_aux(address, "frequency", 0, param=0x11)]
    if "clock" in reads:
        out.append(merc.read_time(address))
    if "events" in reads:
        out += [merc.read_journal(address, 1, r) for r in range(10)]
    return out


def _address(meter: MeterConfig) -> int:
    return int(meter.connection_address or "0", 0)


class MercuryDriver(Driver):
    name = "mercury"
    complete = staticmethod(complete_any)

    def __init__(self, *, ascii_password: bool = False, level: int = 1) -> None:
        self.ascii_password = ascii_password
        self.level = level

    async def _session(self, lease: Lease, req: merc.Request, deadlines: Deadlines, what: str) -> None:
        """A session-control exchange: the status answer must be OK."""
        ans = await lease.exchange(req.encode(), complete_for(req), deadlines)
        try:
            merc.decode(ans, request=req)
        except ProtocolExceptionError as e:
            reason = merc.STATUS_CODES.get(e.code, "unknown status")
            if req.kind == "open":
                raise ProtocolExceptionError(
                    "open channel level %d refused by meter %d: status %d (%s): wrong password?"
                    % (req.params["level"], req.address, e.code, reason), e.offset, e.code) from None
            raise ProtocolExceptionError("%s refused by meter %d: status %d (%s)"
                                         % (what, req.address, e.code, reason), e.offset, e.code) from None

    async def poll(self, lease: Lease, meter: MeterConfig, deadlines: Deadlines) -> PollResult:
        addr = _address(meter)
        res = PollResult()
        await self._session(lease, merc.test_channel(addr), deadlines, "test channel")
        await self._session(lease, merc.open_channel(addr, self.level, meter.password or DEFAULT_PASSWORD,
                                                     ascii=self.ascii_password), deadlines, "open channel")
        for req in plan(addr, meter.reads):
            sent = time.time()
            ans = await lease.exchange(req.encode(), complete_for(req), deadlines)
            if len(ans) == 4 and req.code > 2:
                # the meter refused a data read: say why (the frame would only decode as an error)
                merc.decode(ans, request=req)
            res.frames.append(ans)
            res.requests.append(req)
            if req.kind == "time":
                self._check_clock(ans, req, meter, (sent + time.time()) / 2, res)
        await self._session(lease, merc.close_channel(addr), deadlines, "close channel")
        res.received_at = time.time()
        return res

    @staticmethod
    def _check_clock(ans: bytes, req: merc.Request, meter: MeterConfig, now: float, res: PollResult) -> None:
        try:
            r = merc.decode(ans, request=req)
        except ValueError:
            return  # the batch decode reports the frame
        clk = r[r["obis"] == _CLOCK_OBIS]
        if len(clk):
            drift = float(clk["value"][0]) - now
            if abs(drift) > meter.time_difference:
                res.events.append(EventRecord(now, EVENT_CLOCK_DRIFT,
                                              "meter clock off by %+.0f s (tolerance %d s)" % (drift, meter.time_difference)))

    def expected_obis(self, meter: MeterConfig) -> list[int]:
        out: list[int] = []
        for req in plan(_address(meter), meter.reads):
            if req.kind == "journal":
                continue
            out += _mercury.layout(req.address, req.code, req.p1, req.p2, req.aux)["obis"]
        return out

    def decode_batch(self, frames: Sequence[bytes], requests: Sequence[Any], meter_ids: np.ndarray,
                     received_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return merc.decode_batch(list(frames), requests=list(requests), meter_ids=meter_ids,
                                 received_at=received_at)
