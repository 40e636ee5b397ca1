"""M-Bus driver: SND_NKE (expects E5), then REQ_UD2 with the FCB toggled per telegram, following
"more records follow" (a final DIF 0x1F) up to ``max_telegrams`` RSP_UD telegrams.

``connection_address`` is the primary address (0..250), or a secondary address of 16 hex digits
``IIIIIIIIMMMMVVDD`` (identification number, manufacturer id, version, medium; ``F`` = wildcard):
the driver then selects the meter (SND_UD CI 0x52 to 0xFD, expects E5) and reads it at 0xFD.

RSP_UD telegrams are self-describing: ``decode_batch`` hands every telegram of a tick to the
codec's native decoder in one call.  A telegram that fails there (checksum, framing...) yields a
NaN reading with the failure's quality on the engine's poll-status channel.
"""
from __future__ import annotations

import re
import time
from typing import Any, Sequence

import numpy as np

from meterpoll.bindings import mbus as codec
from meterpoll.bindings.errors import AddressMismatchError, FrameError
from meterpoll.bindings.readings import FRAME_STATUS_DTYPE, READING_DTYPE, FrameStatus, Quality
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.driver import Driver, PollResult
from meterpoll.engine.link import Lease
from meterpoll.engine.transport import Deadlines

__all__ = ["MbusDriver", "complete"]

SECONDARY = 0xFD
#: a failed telegram's reading goes on the engine's "meterpoll poll status" channel (0.128.96.5.0.255)
POLL_STATUS_OBIS = 0x0080600500FF


def complete(buf: bytearray) -> int:
    """M-Bus framing: E5, a 5-byte short frame, or a long / control frame of L + 6 bytes."""
    b0 = buf[0]
    if b0 == 0xE5:
        return 1
    if b0 == 0x10:
        return 5 if len(buf) >= 5 else 0
    if b0 != 0x68:
        return -1
    n = len(buf)
    if n >= 3 and (buf[1] != buf[2] or buf[1] < 3):
        return -1
    if n >= 4 and buf[3] != 0x68:
        return -1
    if n < 4:
        return 0
    ln = buf[1] + 6
    return ln if n >= ln else 0


def _more_follow(frame: bytes) -> bool:
    """True when an intact RSP_UD ends with DIF 0x1F (its last data byte, before CS and stop)."""
    return len(frame) > 9 and frame[0] == 0x68 and frame[-3] == 0x1F


def _checksum_ok(frame: bytes) -> bool:
    return len(frame) >= 9 and frame[0] == 0x68 and (sum(frame[4:-2]) & 0xFF) == frame[-2] and frame[-1] == 0x16


def _secondary(text: str) -> bytes | None:
    """The selection frame for a 16-hex-digit secondary address, None for a primary one."""
    if not re.fullmatch(r"[0-9A-Fa-f]{16}", text or ""):
        return None
    t = text.upper()
    ver, med = int(t[12:14], 16), int(t[14:16], 16)
    return codec.select_secondary(t[:8], int(t[8:12], 16), None if ver == 0xFF else ver,
                                  None if med == 0xFF else med)


class MbusDriver(Driver):
    name = "mbus"
    complete = staticmethod(complete)

    def __init__(self, *, max_telegrams: int = 8, reset: bool = True) -> None:
        if not 1 <= max_telegrams <= 255:
            raise ValueError("max_telegrams must be 1..255")
        self.max_telegrams = max_telegrams
        self.reset = reset

    def expected_obis(self, meter: MeterConfig) -> list[int]:
        return []   # self-describing telegrams: the channels are known only from an answer

    async def _expect_ack(self, lease: Lease, request: bytes, what: str, deadlines: Deadlines) -> None:
        ans = await lease.exchange(request, complete, deadlines)
        if ans != codec.ACK:
            raise FrameError("M-Bus %s: expected E5, got %s" % (what, ans[:16].hex(" ")), 0, FrameStatus.MISMATCH)

    async def poll(self, lease: Lease, meter: MeterConfig, deadlines: Deadlines) -> PollResult:
        select = _secondary(meter.connection_address)
        if select is not None:
            addr = SECONDARY
            await self._expect_ack(lease, select, "secondary address selection", deadlines)
        else:
            addr = int(meter.connection_address or "0", 0)
            if self.reset:
                await self._expect_ack(lease, codec.snd_nke(addr), "SND_NKE", deadlines)
        res = PollResult()
        fcb = True   # the first frame after a reset carries FCB = 1; then it toggles
        for _ in range(self.max_telegrams):
            frame = await lease.exchange(codec.req_ud2(addr, fcb), complete, deadlines)
            if frame == codec.ACK or frame[0] == 0x10:
                raise FrameError("M-Bus REQ_UD2: expected RSP_UD, got %s" % frame.hex(" "), 0,
                                 FrameStatus.MISMATCH)
            intact = _checksum_ok(frame)
            if intact and addr != SECONDARY and frame[5] != addr:
                raise AddressMismatchError("M-Bus RSP_UD from address %d, asked %d" % (frame[5], addr), 5)
            res.frames.append(frame)
            res.requests.append(addr)
            if not (intact and _more_follow(frame)):
                break
            fcb = not fcb
        res.received_at = time.time()
        return res

    def decode_batch(self, frames: Sequence[bytes], requests: Sequence[Any], meter_ids: np.ndarray,
                     received_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(frames):
            return np.zeros(0, READING_DTYPE), np.zeros(0, FRAME_STATUS_DTYPE)
        ids = np.asarray(meter_ids, dtype=np.uint32)
        rx = np.asarray(received_at, dtype="datetime64[ms]")
        readings, st = codec.decode_batch(frames, meter_ids=ids, received_at=rx)
        bad = np.flatnonzero((st["status"] != FrameStatus.OK) & (st["status"] != FrameStatus.NO_DATA))
        if len(bad):
            fail = np.zeros(len(bad), READING_DTYPE)
            fail["meter"] = ids[bad]
            fail["obis"] = POLL_STATUS_OBIS
            fail["ts"] = rx[bad] if rx.ndim else rx
            fail["value"] = np.nan
            fail["unit"] = 255
            fail["status"] = np.where(st["status"][bad] == FrameStatus.CHECKSUM, Quality.CHECKSUM,
                                      Quality.PROTOCOL_EXCEPTION)
            readings = np.concatenate([readings, fail])
        return readings, st
