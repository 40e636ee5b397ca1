"""The typed face of the native exchange core (:mod:`meterpoll.ext._wire`).

:class:`Wire` is the protocol object of one TCP connection (a meter or a TCP-to-RS-485
gateway); :class:`Round` runs one tick's request/answer exchanges over many wires in C, with
the end of each answer found by its :class:`Framing` and the outcome of each exchange given as
an :class:`ExchangeStatus`.  Deadlines are seconds; received times UTC milliseconds.
"""
from __future__ import annotations

import enum

from meterpoll.ext import _wire
from meterpoll.ext._wire import MAX_ANSWER, Round, Wire, frame_length

__all__ = ["Wire", "Round", "Framing", "ExchangeStatus", "frame_length", "MAX_ANSWER"]


class Framing(enum.IntEnum):
    """How the end of an answer is found in the byte stream."""

    MBAP = _wire.FRAMING_MBAP          # Modbus TCP (transaction id checked, older answers skipped)
    RTU = _wire.FRAMING_RTU            # Modbus RTU (function + byte count; CRC left to the decoder)
    WRAPPER = _wire.FRAMING_WRAPPER    # DLMS/COSEM TCP wrapper (8-byte header, big-endian length)
    MBUS = _wire.FRAMING_MBUS          # M-Bus E5 / short / long frames
    HDLC = _wire.FRAMING_HDLC          # DLMS HDLC frame format type 3


class ExchangeStatus(enum.IntEnum):
    """Outcome of one exchange of a :class:`Round` (``Round.status``)."""

    OK = _wire.EX_OK
    TIMEOUT_FIRST_BYTE = _wire.EX_TIMEOUT_FIRST_BYTE
    TIMEOUT_INTER_BYTE = _wire.EX_TIMEOUT_INTER_BYTE
    TIMEOUT_TOTAL = _wire.EX_TIMEOUT_TOTAL
    CLOSED = _wire.EX_CLOSED
    BAD_FRAME = _wire.EX_BAD_FRAME
    OVERFLOW = _wire.EX_OVERFLOW
    SKIPPED = _wire.EX_SKIPPED
    ABANDONED = _wire.EX_ABANDONED
    PENDING = _wire.EX_PENDING
