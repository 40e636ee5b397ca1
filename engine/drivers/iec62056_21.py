"""IEC 62056-21 mode C engine driver: one poll = sign-on ``/?<address>!`` CR LF, the meter's
identification, option select ``ACK 0 Z 0`` CR LF (data readout) and the readout block
``STX ... ! CR LF ETX BCC``, which is the one frame handed to the batch decoder.

Baud: the option select asks the meter to *stay* at the line's speed (the engine does not switch
a port's speed mid-session, and a TCP-to-RS-485 gateway cannot): Z = the configured serial baud
rate, or ``gateway_baud`` (default 9600) for TCP and gateway links.

Clock: with ``"clock"`` in ``meter.reads`` the readout's ``0.9.1`` (hhmmss) and ``0.9.2``
(YYMMDD) lines are compared with the receive time (meter clock taken as UTC +
``utc_offset_min``); a drift beyond ``time_difference`` becomes an event.

Framing (``complete``): the identification ends at its CR LF, blocks after the BCC that follows
ETX/EOT, ACK and NAK are one byte; any other first byte cannot start an answer.
"""
from __future__ import annotations

import calendar
import re
import time
from typing import Any, Sequence

import numpy as np

from meterpoll.bindings import iec62056_21 as iec
from meterpoll.bindings.errors import FrameError
from meterpoll.bindings.readings import obis
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.driver import Driver, EventRecord, PollResult
from meterpoll.engine.link import Lease
from meterpoll.engine.transport import Deadlines

__all__ = ["IecDriver", "complete"]

STX, ETX, EOT, SOH, ACK, NAK = 0x02, 0x03, 0x04, 0x01, 0x06, 0x15
EVENT_CLOCK_DRIFT = 2

#: what a data readout of a mode C meter is expected to carry (recorded as NaN on a failed poll)
READOUT_OBIS = [obis("1.0.1.8.%d.255" % k) for k in range(5)] + [
    obis("1.0.%d.7.0.255" % c) for c in (32, 52, 72, 31, 51, 71, 14)] + [
    obis("1.0.0.9.1.255"), obis("1.0.0.9.2.255"), obis("1.0.97.97.0.255")]

_BAUD_CHAR = {v: k for k, v in iec.BAUD_RATES.items() if k.isdigit()}
_TIME = re.compile(rb"(?:^|[\r\n\x02])(?:1-0:)?0\.9\.1(?:\*\d+)?\((\d{2})(\d{2})(\d{2})\)")
_DATE = re.compile(rb"(?:^|[\r\n\x02])(?:1-0:)?0\.9\.2(?:\*\d+)?\((\d{2})(\d{2})(\d{2})\)")


def complete(buf: bytearray) -> int:
    """Length of the first complete answer in ``buf``; 0 = need more; -1 = not an answer."""
    n = len(buf)
    b0 = buf[0]
    if b0 == 0x2F:  # identification
        i = buf.find(b"\n")
        if i >= 0:
            return i + 1
        return -1 if n > 128 else 0
    if b0 in (STX, SOH):
        for i in range(1, n):
            if buf[i] in (ETX, EOT):
                return i + 2 if n >= i + 2 else 0
        return 0
    if b0 in (ACK, NAK):
        return 1
    return -1


class IecDriver(Driver):
    name = "iec62056-21"
    complete = staticmethod(complete)

    def __init__(self, *, gateway_baud: int = 9600, bcc: str = "xor", utc_offset_min: int = 0) -> None:
        if gateway_baud not in _BAUD_CHAR:
            raise ValueError("gateway_baud must be one of %s" % sorted(_BAUD_CHAR))
        self.gateway_baud = gateway_baud
        self.bcc = bcc
        self.utc_offset_min = utc_offset_min

    def _baud_char(self, meter: MeterConfig) -> str:
        if meter.link == "serial" and meter.serial is not None:
            return _BAUD_CHAR.get(meter.serial.baudrate, "5")
        return _BAUD_CHAR[self.gateway_baud]

    async def poll(self, lease: Lease, meter: MeterConfig, deadlines: Deadlines) -> PollResult:
        ident = await lease.exchange(iec.sign_on(meter.connection_address), complete, deadlines)
        iec.parse_identification(ident)  # raises FrameError on a malformed identification
        ack = iec.option_select(mode="readout", baud_char=self._baud_char(meter))
        sent = time.time()
        readout = await lease.exchange(ack, complete, deadlines)
        if readout[0] != STX:
            raise FrameError("the meter answered the option select with %r, not a data readout"
                             % readout[:16], 0)
        res = PollResult(frames=[readout], requests=[ack])
        res.received_at = time.time()
        if "clock" in meter.reads:
            self._check_clock(readout, meter, (sent + res.received_at) / 2, res)
        return res

    def _check_clock(self, readout: bytes, meter: MeterConfig, now: float, res: PollResult) -> None:
        t, d = _TIME.search(readout), _DATE.search(readout)
        if not (t and d):
            return
        try:
            clk = calendar.timegm((2000 + int(d[1]), int(d[2]), int(d[3]), int(t[1]), int(t[2]), int(t[3])))
        except (ValueError, OverflowError):
            return
        drift = clk - self.utc_offset_min * 60 - now
        if abs(drift) > meter.time_difference:
            res.events.append(EventRecord(now, EVENT_CLOCK_DRIFT, "meter clock off by %+.0f s (tolerance %d s)"
                                          % (drift, meter.time_difference)))

    def expected_obis(self, meter: MeterConfig) -> list[int]:
        return list(READOUT_OBIS)

    def decode_batch(self, frames: Sequence[bytes], requests: Sequence[Any], meter_ids: np.ndarray,
                     received_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return iec.decode_batch(list(frames), bcc=self.bcc, meter_ids=meter_ids, received_at=received_at,
                                utc_offset_min=self.utc_offset_min)
