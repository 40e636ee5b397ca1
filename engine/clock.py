"""Clock checks: compare a meter's clock with ours at the moment it answered, raise an event
when the drift passes the meter's ``time_difference``, and say whether to set the clock."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClockCheck", "check_clock", "EVENT_CLOCK_DRIFT", "EVENT_CLOCK_SET"]

EVENT_CLOCK_DRIFT = 1001
EVENT_CLOCK_SET = 1002


@dataclass(frozen=True)
class ClockCheck:
    drift: float           # meter clock minus our clock, seconds (positive: the meter is ahead)
    exceeded: bool         # |drift| > time_difference
    set_clock: bool        # exceeded and the operator enabled setting the clock
    text: str


def check_clock(meter_time: float, sent_at: float, received_at: float, *, time_difference: float,
                set_enabled: bool) -> ClockCheck:
    """``meter_time`` is what the meter reported; it was true somewhere between the request
    (``sent_at``) and the answer (``received_at``), so the midpoint is our estimate and half
    the round trip is the uncertainty, which is not counted as drift."""
    if received_at < sent_at:
        raise ValueError("received_at before sent_at")
    ours = (sent_at + received_at) / 2
    uncertainty = (received_at - sent_at) / 2
    drift = meter_time - ours
    exceeded = abs(drift) - uncertainty > time_difference
    text = "meter clock %+.1f s off (limit %g s)" % (drift, time_difference)
    return ClockCheck(drift, exceeded, exceeded and set_enabled, text)
