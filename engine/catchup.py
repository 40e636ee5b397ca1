"""Load-profile catch-up: which intervals to read so the store has no gaps and no duplicates.

After a restart or an outage the engine asks the meter for the intervals after the last one
stored (``last_stored``), never before ``now - data_polling_length days``, in chunks a single
request can carry, up to the last interval that has closed.  Intervals are aligned to the
profile's capture period (e.g. 900 s); ranges are half-open ``(start, end]`` in interval-end
times, which is how meters stamp profile rows.
"""
from __future__ import annotations

import math

__all__ = ["plan_catchup"]


def plan_catchup(last_stored: float | None, now: float, *, period: float = 900.0,
                 depth_days: int = 0, max_rows: int = 96) -> list[tuple[float, float]]:
    """Ranges ``(after, upto)`` of interval-end timestamps to request, oldest first.

    ``last_stored``: end time of the newest interval in the store (None: nothing stored);
    ``now``: current UTC seconds; ``period``: capture period in seconds; ``depth_days``: the
    meter's ``data_polling_length`` (0 = only the newest closed interval when nothing is
    stored); ``max_rows``: intervals per request.  Every closed interval after ``last_stored``
    and within the depth appears in exactly one range.
    """
    if period <= 0 or max_rows < 1:
        raise ValueError("period must be > 0 and max_rows >= 1")
    newest = math.floor(now / period) * period          # end of the newest closed interval
    floor_t = newest - depth_days * 86400.0 if depth_days else newest - period
    if last_stored is not None:
        start = max(math.floor(last_stored / period) * period, floor_t)
    else:
        start = floor_t
    start = math.floor(start / period) * period
    ranges = []
    t = start
    while t < newest:
        upto = min(t + max_rows * period, newest)
        ranges.append((t, upto))
        t = upto
    return ranges
