"""A simulated IEC 62056-21 mode C meter (or several on one RS-485 line / gateway port).

Session: sign-on ``/?<address>!`` CR LF wakes the meter with that device address (an empty
address only when one meter is on the line; any other address: no answer), which sends its
identification ``/XXXZident`` CR LF; the option select ``ACK V Z Y`` CR LF with Y = 0 gets the
data readout ``STX lines ! CR LF ETX BCC`` built with the codec's ``data_block`` from the
:class:`MeterModel` at the answer time, and ends the session.  Y = 1 (programming mode) gets the
password prompt ``SOH P0 STX (serial) ETX BCC``; ``P1 (password)`` is answered ACK or NAK, ``R1``
reads of the readout addresses ``STX addr(value) ETX BCC`` (NAK before a good password or for an
unknown address), ``B0`` ends the session.  Other messages of an awake meter get NAK.

Programming mode also serves ``R5`` with ``P.01(sYYMMDDhhmm;sYYMMDDhhmm)`` (load profile) and
``P.98(...)`` (logbook), after the VDEW exchange documented in README 6.4 (the 'to' part may be
empty: up to now; the season digit ``s`` is ignored; times are the meter clock, UTC here):

* ``P.01``: the intervals of ``profile_period_min`` (default 15) whose END time t lies in
  [from, to]: a header ``P.01(0YYMMDDhhmmss)(00000000)(15)(3)(1.5)(kW)(2.5)(kW)(3.5)(kvar)``
  stamped with the end of its first interval, then one line ``(P+)(P-)(Q+)`` per interval, the
  average power over the interval in kW / kvar with 3 decimals (1 W) from the model; every
  day's first interval (ending 00:15) starts with a new header (meters repeat headers; the
  codec must accept them).
* ``P.98``: the model's power failures (event 1) and restorations (event 2) in [from, to] as
  ``P.98(0YYMMDDhhmmss)(00)()(2)(91.11.0)()(91.11.10)()(code)(0)``, one entry per line, the
  format of the Metcom/EMH vector (91.11.0 = event number; 91.11.10 is always 0 here).
* an empty window gets an empty block ``STX ETX BCC``; any other profile number ``P.nn(ERROR)``.
  The meter keeps ``MEMORY_DAYS`` (60) days of both.

With ``block_lines`` > 0 an answer longer than that many lines comes in partial blocks
(``STX ... EOT BCC``); the client asks for the next one with ACK (NAK repeats the last).

Readout lines: ``1.8.0``..``1.8.4`` (A+ total, T1..T4 in kWh, 3 decimals = 1 Wh), ``32.7``,
``52.7``, ``72.7`` (V, 2 decimals), ``31.7``, ``51.7``, ``71.7`` (A, 3 decimals), ``14.7`` (Hz,
2 decimals), ``0.9.1`` (meter time hhmmss), ``0.9.2`` (meter date YYMMDD), ``F.F`` (error
register, 0).  The meter's clock runs on UTC.
"""
from __future__ import annotations

import calendar
import math
import re
import time

from meterpoll.bindings import iec62056_21 as iec
from meterpoll.engine.sim.model import MeterModel
from meterpoll.engine.sim.server import Answerer

__all__ = ["IecSim", "request_length", "readout_lines", "profile_lines", "logbook_lines"]

SOH, STX, ETX, EOT, ACK, NAK = 0x01, 0x02, 0x03, 0x04, 0x06, 0x15


def request_length(buf: bytearray) -> int:
    """Length of the message at the start of ``buf`` (sign-on, option select, command)."""
    n = len(buf)
    b0 = buf[0]
    if b0 == 0x2F:  # '/'
        i = buf.find(b"\n")
        if i >= 0:
            return i + 1
        return -1 if n > 64 else 0
    if b0 == ACK:
        if n < 2:
            return 0
        if buf[1] in (0x0D, 0x0A):
            return 1
        return 6 if n >= 6 else 0
    if b0 == SOH:
        for i in range(1, n):
            if buf[i] in (ETX, EOT):
                return i + 2 if n >= i + 2 else 0
        return -1 if n > 1024 else 0
    return -1


def readout_lines(model: MeterModel, t: float) -> list[tuple[str, str]]:
    """(address, value) data sets of the readout at true time t."""
    e = model.energy_by_tariff(t)
    inst = model.instant(t)
    ph = inst["phases"]
    clk = time.gmtime(int(model.clock(t)))
    out = [("1.8.%d" % k, "%010.3f*kWh" % (e[k] / 1000.0)) for k in range(5)]
    out += [("%d.7" % c, "%06.2f*V" % p["voltage"]) for c, p in zip((32, 52, 72), ph)]
    out += [("%d.7" % c, "%07.3f*A" % p["current"]) for c, p in zip((31, 51, 71), ph)]
    out += [("14.7", "%05.2f*Hz" % inst["frequency"]),
            ("0.9.1", "%02d%02d%02d" % (clk.tm_hour, clk.tm_min, clk.tm_sec)),
            ("0.9.2", "%02d%02d%02d" % (clk.tm_year % 100, clk.tm_mon, clk.tm_mday)),
            ("F.F", "00000000")]
    return out


def _stamp(t: float) -> str:
    """``YYMMDDhhmmss`` of UTC time t."""
    return time.strftime("%y%m%d%H%M%S", time.gmtime(int(t)))


PROFILE_CHANNELS = "(3)(1.5)(kW)(2.5)(kW)(3.5)(kvar)"
#: how far back the simulated meter keeps its load profile and logbook
MEMORY_DAYS = 60


def profile_lines(model: MeterModel, start: float, end: float, period_min: int = 15) -> list[str]:
    """``P.01`` answer lines for the intervals whose end time t (meter clock) is in
    [start, end]: a header before the first interval and before every interval that ends at
    00:15 (the first of a day), then ``(P+ kW)(P- kW)(Q+ kvar)`` averages per interval."""
    period = period_min * 60
    lines = []
    t = math.ceil(start / period) * period
    first = True
    while t <= end:
        if first or (t - period) % 86400 == 0:
            lines.append("P.01(0%s)(00000000)(%d)%s" % (_stamp(t), period_min, PROFILE_CHANNELS))
            first = False
        active, reactive = model.interval_energy(t, period)
        lines.append("(%.3f)(%.3f)(%.3f)" % (active * 3.6 / period, 0.0, reactive * 3.6 / period))
        t += period
    return lines


def logbook_lines(model: MeterModel, start: float, end: float) -> list[str]:
    """``P.98`` entries of the model's power failures (1) / restorations (2) stamped by the
    meter clock in [start, end]."""
    out = []
    for t, code, _ in model.events(start - 3600, end + 3600):
        stamp = model.clock(t)
        if start <= stamp <= end and code in (1, 2):
            out.append("P.98(0%s)(00)()(2)(91.11.0)()(91.11.10)()(%d)(0)" % (_stamp(stamp), code))
    return out


_R5 = re.compile(r"P\.(\d\d)\((?:\d(\d{10}))?;(?:\d(\d{10}))?\)")


def _minute(text: str) -> float:
    """UTC seconds of ``YYMMDDhhmm``; ValueError when impossible."""
    y, mo, d, h, mi = (int(text[i:i + 2]) for i in range(0, 10, 2))
    t = calendar.timegm((2000 + y, mo, d, h, mi, 0))
    if time.gmtime(t)[:5] != (2000 + y, mo, d, h, mi):
        raise ValueError("impossible time %r" % text)
    return float(t)


class _Meter:
    __slots__ = ("address", "model", "state", "pending", "last_block")

    def __init__(self, address: str, model: MeterModel) -> None:
        self.address = address
        self.model = model
        self.state = "idle"   # idle -> ident (after sign-on) -> prompt/prog (programming mode)
        self.pending: list[bytes] = []   # partial blocks not yet sent
        self.last_block = b""


class IecSim(Answerer):
    """Mode C meters behind one port.  ``addresses``: device addresses (ints or strings; numeric
    ones also match with leading zeros, ``/?0001!`` reaches meter 1).  ``password``: the P1
    password of programming mode.  ``manufacturer``, ``baud_char``, ``ident``: the identification
    ``/MPL5meterpoll-sim``.  ``bcc``: ``"xor"`` or ``"sum7"`` (Energomera style)."""

    def __init__(self, addresses=(1,), seed: int = 0, password: str = "00000000", *,
                 manufacturer: str = "MPL", baud_char: str = "5", ident: str = "meterpoll-sim",
                 bcc: str = "xor", clock_drift_ppm: float = 0.0, profile_period_min: int = 15,
                 block_lines: int = 0) -> None:
        if len(manufacturer) != 3 or baud_char not in iec.BAUD_RATES:
            raise ValueError("manufacturer is 3 letters, baud_char one of %s" % sorted(iec.BAUD_RATES))
        self.meters: dict[str, _Meter] = {}
        for i, a in enumerate(addresses):
            key = str(a)
            n = int(key) if key.isdigit() else i
            self.meters[key] = _Meter(key, MeterModel(seed=seed + n, clock_drift_ppm=clock_drift_ppm))
        self.password = password
        self.identification = ("/%s%s%s\r\n" % (manufacturer, baud_char, ident)).encode("ascii")
        self.bcc = bcc
        if not 1 <= profile_period_min <= 60 or 1440 % profile_period_min:
            raise ValueError("profile_period_min must divide a day (1..60)")
        self.profile_period_min = profile_period_min
        self.block_lines = block_lines
        #: (device address, profile number, from, to) of every R5 answered
        self.profile_requests: list[tuple[str, int, float | None, float | None]] = []
        self._active: _Meter | None = None
        #: device address -> the `now` the last readout was built at
        self.answered_at: dict[str, float] = {}
        self.option_selects: list[bytes] = []

    def model(self, address) -> MeterModel:
        return self.meters[str(address)].model

    def _find(self, address: str) -> _Meter | None:
        if address == "":
            return next(iter(self.meters.values())) if len(self.meters) == 1 else None
        m = self.meters.get(address)
        if m is None and address.isdigit():
            for key, cand in self.meters.items():
                if key.isdigit() and int(key) == int(address):
                    return cand
        return m

    def request_length(self, buf: bytearray) -> int:
        if buf[0] in (ACK, NAK) and self._active is not None and self._active.pending:
            return 1   # ACK / NAK of a partial block
        return request_length(buf)

    def _nak(self) -> bytes:
        return bytes((NAK,))

    def answer(self, request: bytes, now: float) -> bytes | None:
        try:
            f = iec.parse_frame(request, direction="request", bcc=self.bcc)
        except ValueError:
            return self._nak() if self._active is not None else None
        if f.kind == "sign_on":
            m = self._find(f.address or "")
            if self._active is not None and self._active is not m:
                self._active.state = "idle"
            self._active = m
            if m is None:
                return None   # not our address: silence on the bus
            m.state = "ident"
            return self.identification
        m = self._active
        if m is None:
            return None
        if f.kind in ("ack", "nak") and m.pending:
            if f.kind == "ack":
                m.last_block = m.pending.pop(0)
            return m.last_block
        m.pending = []
        if f.kind == "option_select" and m.state == "ident":
            self.option_selects.append(request)
            if f.mode == "0":
                m.state = "idle"
                self._active = None
                self.answered_at[m.address] = now
                lines = ["%s(%s)" % kv for kv in readout_lines(m.model, now)]
                return iec.data_block(lines, bcc=self.bcc)
            if f.mode == "1":
                m.state = "prompt"
                return iec.command("P0", "(%s)" % m.model.serial, bcc=self.bcc)
            return self._nak()
        if f.kind == "command":
            payload = bytes(f.payload).decode("ascii", "replace")
            if f.command == "B0":
                m.state = "idle"
                self._active = None
                return None
            if f.command == "P1" and m.state in ("prompt", "prog"):
                if payload == "(%s)" % self.password:
                    m.state = "prog"
                    return bytes((ACK,))
                m.state = "prompt"
                return self._nak()
            if f.command == "R1" and m.state == "prog" and payload.endswith("()"):
                want = payload[:-2]
                for addr, value in readout_lines(m.model, now):
                    if addr == want:
                        self.answered_at[m.address] = now
                        return iec.data_block("%s(%s)" % (addr, value), end=False, bcc=self.bcc)
                return iec.data_block("%s(ERR05)" % want, end=False, bcc=self.bcc)
            if f.command == "R5" and m.state == "prog":
                return self._profile(m, payload, now)
        return self._nak()

    def _profile(self, m: _Meter, payload: str, now: float) -> bytes:
        match = _R5.fullmatch(payload)
        if match is None:
            return self._nak()
        try:
            start = _minute(match[2]) if match[2] else None
            end = _minute(match[3]) if match[3] else None
        except ValueError:
            return self._nak()
        number = int(match[1])
        self.profile_requests.append((m.address, number, start, end))
        clock = m.model.clock(now)
        lo = max(start if start is not None else 0.0, clock - MEMORY_DAYS * 86400)
        hi = min(end + 59 if end is not None else clock, clock)
        if number == 1:
            period = self.profile_period_min * 60
            lines = profile_lines(m.model, lo, min(hi, math.floor(clock / period) * period), self.profile_period_min)
        elif number == 98:
            lines = logbook_lines(m.model, lo, hi)
        else:
            lines = ["P.%02d(ERROR)" % number]
        self.answered_at[m.address] = now
        if not self.block_lines or len(lines) <= self.block_lines:
            return iec.data_block(lines, end=False, bcc=self.bcc)
        chunks = [lines[i:i + self.block_lines] for i in range(0, len(lines), self.block_lines)]
        blocks = [iec.data_block(c, end=False, partial=k < len(chunks) - 1, bcc=self.bcc)
                  for k, c in enumerate(chunks)]
        m.last_block = blocks[0]
        m.pending = blocks[1:]
        return blocks[0]

    def corrupt_checksum(self, frame: bytes) -> bytes:
        """Flip the low bit of the BCC of a block (identification and ACK/NAK have none)."""
        if frame and frame[0] in (STX, SOH):
            return frame[:-1] + bytes([frame[-1] ^ 0x01])
        return frame
