"""A simulated IEC 62056-21 mode C meter (or several on one RS-485 line / gateway port).

Session: sign-on ``/?<address>!`` CR LF wakes the meter with that device address (an empty
address only when one meter is on the line; any other address: no answer), which sends its
identification ``/XXXZident`` CR LF; the option select ``ACK V Z Y`` CR LF with Y = 0 gets the
data readout ``STX lines ! CR LF ETX BCC`` built with the codec's ``data_block`` from the
:class:`MeterModel` at the answer time, and ends the session.  Y = 1 (programming mode) gets the
password prompt ``SOH P0 STX (serial) ETX BCC``; ``P1 (password)`` is answered ACK or NAK, ``R1``
reads of the readout addresses ``STX addr(value) ETX BCC`` (NAK before a good password or for an
unknown address), ``B0`` ends the session.  Other messages of an awake meter get NAK.

Readout lines: ``1.8.0``..``1.8.4`` (A+ total, T1..T4 in kWh, 3 decimals = 1 Wh), ``32.7``,
``52.7``, ``72.7`` (V, 2 decimals), ``31.7``, ``51.7``, ``71.7`` (A, 3 decimals), ``14.7`` (Hz,
2 decimals), ``0.9.1`` (meter time hhmmss), ``0.9.2`` (meter date YYMMDD), ``F.F`` (error
register, 0).  The meter's clock runs on UTC.
"""
from __future__ import annotations

import time

from meterpoll.bindings import iec62056_21 as iec
from meterpoll.engine.sim.model import MeterModel
from meterpoll.engine.sim.server import Answerer

__all__ = ["IecSim", "request_length", "readout_lines"]

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


class _Meter:
    __slots__ = ("address", "model", "state")

    def __init__(self, address: str, model: MeterModel) -> None:
        self.address = address
        self.model = model
        self.state = "idle"   # idle -> ident (after sign-on) -> prompt/prog (programming mode)


class IecSim(Answerer):
    """Mode C meters behind one port.  ``addresses``: device addresses (ints or strings; numeric
    ones also match with leading zeros, ``/?0001!`` reaches meter 1).  ``password``: the P1
    password of programming mode.  ``manufacturer``, ``baud_char``, ``ident``: the identification
    ``/MPL5meterpoll-sim``.  ``bcc``: ``"xor"`` or ``"sum7"`` (Energomera style)."""

    def __init__(self, addresses=(1,), seed: int = 0, password: str = "00000000", *,
                 manufacturer: str = "MPL", baud_char: str = "5", ident: str = "meterpoll-sim",
                 bcc: str = "xor", clock_drift_ppm: float = 0.0) -> None:
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
        return self._nak()

    def corrupt_checksum(self, frame: bytes) -> bytes:
        """Flip the low bit of the BCC of a block (identification and ACK/NAK have none)."""
        if frame and frame[0] in (STX, SOH):
            return frame[:-1] + bytes([frame[-1] ^ 0x01])
        return frame
