"""What a protocol contributes to the engine: a :class:`Driver`.

A driver runs one poll of one meter over a leased link (``poll``: the whole session, e.g. DLMS
SNRM/AARQ/GETs/release or Mercury open/read/close) and returns the raw answer frames with the
request each one answers.  It does not decode: the engine gathers the frames of a tick from all
meters of a protocol into one FrameBatch and calls ``decode_batch`` once, in the native core.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from meterpoll.engine.config import MeterConfig
from meterpoll.engine.link import Lease
from meterpoll.engine.transport import Complete, Deadlines

__all__ = ["Driver", "PollResult", "EventRecord", "FastPlan"]


@dataclass
class EventRecord:
    """Something a session noticed (clock drift, meter journal entry, access denied...)."""

    ts: float          # UTC seconds
    code: int
    text: str


@dataclass
class PollResult:
    """The answer frames of one poll and the requests they answer, in order."""

    frames: list[bytes] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    received_at: float = 0.0   # UTC seconds when the last frame arrived


class FastPlan:
    """One meter's poll as fixed request frames that the native exchange core runs by itself
    (:class:`~meterpoll.bindings.wire.Round`): no session state and no request that depends on
    an earlier answer.  ``framing``: a :class:`~meterpoll.bindings.wire.Framing`; ``tags``: one
    per request, what :meth:`Driver.decode_batch` takes as that answer's request."""

    __slots__ = ("requests", "framing", "tags")

    def __init__(self, requests: list[bytes], framing: int, tags: list[Any]) -> None:
        if len(requests) != len(tags):
            raise ValueError("one tag per request")
        self.requests = requests
        self.framing = framing
        self.tags = tags


class Driver:
    """Base class of the protocol drivers."""

    name = ""

    #: answer framing (see meterpoll.engine.transport.Complete)
    complete: Complete

    async def poll(self, lease: Lease, meter: MeterConfig, deadlines: Deadlines) -> PollResult:
        raise NotImplementedError

    def fast_plan(self, meter: MeterConfig) -> FastPlan | None:
        """The meter's poll as a :class:`FastPlan` when it needs no session (the engine then
        runs it in the native exchange core, many meters per call), else None: ``poll`` runs."""
        return None

    def profile_obis(self, meter: MeterConfig) -> int | None:
        """The load-profile channel whose newest stored timestamp is where catch-up resumes
        after a restart (None: this driver reads no profile for the meter)."""
        return None

    def resume_profile(self, meter: MeterConfig, last_stored: float | None) -> None:
        """Told once per meter, before its first poll, the end time (UTC seconds) of the newest
        profile interval already in the store, so catch-up starts after it: no gaps, no
        re-reads."""

    def expected_obis(self, meter: MeterConfig) -> list[int]:
        """Channels a poll of this meter reads (for recording a failed poll as NaN readings)."""
        return []

    def decode_batch(self, frames: Sequence[bytes], requests: Sequence[Any], meter_ids: np.ndarray,
                     received_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(READING_DTYPE readings, FRAME_STATUS_DTYPE per frame) for frames from many meters."""
        raise NotImplementedError
