"""When each meter polls: periodic slots by ``periodType``/``period``, limited to
``days_of_week`` / ``days_of_month``, shifted by a per-meter jitter so that ten thousand meters
with the same period do not fire in the same millisecond.  All times are UTC datetimes.

Slots are aligned to the calendar: every 15 minutes means :00, :15, :30, :45 of each hour (plus
the meter's jitter); every 2 hours means 00:00, 02:00, ...; days count from 1970-01-01; months
from the first of January.  A missed slot is not replayed (load-profile catch-up is the
session's job); the next slot after ``now`` is returned.
"""
from __future__ import annotations

import datetime as dt
import zlib

from meterpoll.engine.config import MeterConfig

__all__ = ["jitter_seconds", "next_poll"]

UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_UNIT = {"minutes": 60, "hours": 3600, "days": 86400}


def jitter_seconds(meter_key: str, period_seconds: float, max_jitter: float = 300.0) -> float:
    """A stable offset in [0, min(max_jitter, period/2)) for one meter (CRC-32 of its key), so
    the same meter keeps its place from one cycle and one restart to the next."""
    span = min(max_jitter, period_seconds / 2)
    return (zlib.crc32(meter_key.encode()) / 2**32) * span


def _allowed(cfg: MeterConfig, t: dt.datetime) -> bool:
    if cfg.days_of_week and t.isoweekday() not in cfg.days_of_week:
        return False
    if cfg.days_of_month and t.day not in cfg.days_of_month:
        return False
    return True


def next_poll(cfg: MeterConfig, now: dt.datetime, *, key: str | None = None,
              max_jitter: float = 300.0) -> dt.datetime:
    """The first poll time strictly after ``now`` (aware UTC datetime)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    now = now.astimezone(UTC)
    key = key if key is not None else (cfg.id or cfg.name)
    if cfg.periodType == "months":
        jitter = dt.timedelta(seconds=jitter_seconds(key, 86400.0, max_jitter))
        months = now.year * 12 + now.month - 1
        base = months - months % cfg.period
        for k in range(0, 12 * 40 + cfg.period, cfg.period):  # bounded: 40 years of slots
            m = base + k
            t = dt.datetime(m // 12, m % 12 + 1, 1, tzinfo=UTC) + jitter
            if t > now and _allowed(cfg, t):
                return t
        raise ValueError("no allowed poll day within 40 years (days_of_week/days_of_month)")
    step = _UNIT[cfg.periodType] * cfg.period
    jitter = jitter_seconds(key, step, max_jitter)

    def first_slot_after(t: dt.datetime) -> dt.datetime:
        n = int(((t - _EPOCH).total_seconds() - jitter) // step) + 1
        return _EPOCH + dt.timedelta(seconds=n * step + jitter)

    if step <= 86400:
        # every day has slots: walk day by day (bounded: four years) to the first allowed one
        t = first_slot_after(now)
        for _ in range(4 * 366 * 2):
            if _allowed(cfg, t):
                return t
            midnight = dt.datetime(t.year, t.month, t.day, tzinfo=UTC) + dt.timedelta(days=1)
            t = first_slot_after(midnight - dt.timedelta(microseconds=1))
        raise ValueError("no allowed poll time within four years (days_of_week/days_of_month)")
    t = first_slot_after(now)
    for _ in range(4 * 366):  # slots at least a day apart: four years at most
        if _allowed(cfg, t):
            return t
        t += dt.timedelta(seconds=step)
    raise ValueError("no allowed poll time within four years (days_of_week/days_of_month)")
