"""The physics of a simulated meter, independent of any protocol.

A three-phase meter with a daily load curve (night trough, morning and evening peaks, weekend
factor), per-meter variation from a seed, energy registers that are the exact integral of the
power curve (so that any two reads are consistent and a load profile sums to the register
difference), four tariff zones by time of day, reactive energy from a power factor, a clock that
drifts by a fixed rate, and an event journal.  Everything is a pure function of (seed, time):
no state to advance, so a simulator with 10,000 meters costs no CPU between polls.

Units: energy in Wh / varh, power in W / var / VA, voltage V, current A, frequency Hz, angles
degrees, times in seconds since the epoch (UTC) unless a name says ms.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

__all__ = ["MeterModel", "TARIFF_ZONES"]

#: (start hour, end hour, tariff 1..4): T1 day, T2 night, T3 peak, T4 semi-peak
TARIFF_ZONES = ((0, 7, 2), (7, 10, 3), (10, 17, 1), (17, 21, 3), (21, 23, 4), (23, 24, 2))

# hourly shape of residential/commercial load, mean 1.0
_SHAPE = [0.55, 0.5, 0.48, 0.47, 0.5, 0.6, 0.85, 1.15, 1.25, 1.15, 1.05, 1.0,
          1.0, 0.98, 0.97, 1.0, 1.1, 1.3, 1.45, 1.5, 1.4, 1.2, 0.9, 0.7]
_SHAPE_MEAN = sum(_SHAPE) / 24


def _shape_integral(h: float) -> float:
    """Integral of the (piecewise linear, periodic) hourly shape from 0 to h hours."""
    days, rem = divmod(h, 24.0)
    total = days * sum((_SHAPE[i] + _SHAPE[(i + 1) % 24]) / 2 for i in range(24))
    i = int(rem)
    for k in range(i):
        total += (_SHAPE[k] + _SHAPE[(k + 1) % 24]) / 2
    f = rem - i
    a, b = _SHAPE[i], _SHAPE[(i + 1) % 24]
    return total + a * f + (b - a) * f * f / 2


def _shape_at(h: float) -> float:
    i = int(h) % 24
    f = h - math.floor(h)
    return _SHAPE[i] + (_SHAPE[(i + 1) % 24] - _SHAPE[i]) * f


@dataclass
class MeterModel:
    """One simulated meter.  ``seed`` makes every meter different and reproducible."""

    seed: int = 0
    mean_power_w: float = 0.0           # 0: drawn from the seed (0.4 .. 12 kW)
    power_factor: float = 0.0           # 0: drawn from the seed (0.85 .. 0.99)
    nominal_voltage: float = 230.0
    frequency: float = 50.0
    clock_drift_ppm: float = 0.0        # seconds of meter clock gained per 1e6 s
    energy_origin: float = 1_700_000_000.0  # registers start at 0 at this instant
    serial: str = field(default="")

    def __post_init__(self) -> None:
        rnd = random.Random(self.seed)
        if not self.mean_power_w:
            self.mean_power_w = rnd.uniform(400, 12_000)
        if not self.power_factor:
            self.power_factor = rnd.uniform(0.85, 0.99)
        self._phase_split = [rnd.uniform(0.8, 1.2) for _ in range(3)]
        s = sum(self._phase_split)
        self._phase_split = [p / s for p in self._phase_split]
        self._v_offset = [rnd.uniform(-4, 4) for _ in range(3)]
        if not self.serial:
            self.serial = "%08d" % (10_000_000 + self.seed % 89_999_999)

    # ---- instantaneous values at time t ----
    def active_power(self, t: float) -> float:
        """Total active power in W at time t."""
        return self.mean_power_w * _shape_at((t / 3600.0) % 24) / _SHAPE_MEAN

    def instant(self, t: float) -> dict:
        """Per-phase and total instantaneous values at time t (base units)."""
        p = self.active_power(t)
        tan = math.tan(math.acos(self.power_factor))
        phases = []
        for k in range(3):
            pk = p * self._phase_split[k]
            v = self.nominal_voltage + self._v_offset[k] + 2.0 * math.sin(t / 600.0 + k)
            s = pk / self.power_factor
            phases.append({"voltage": v, "current": s / v, "active_power": pk,
                           "reactive_power": pk * tan, "apparent_power": s, "power_factor": self.power_factor,
                           "angle": 120.0 * k})
        return {"phases": phases, "active_power": p, "reactive_power": p * tan,
                "apparent_power": p / self.power_factor, "power_factor": self.power_factor,
                "frequency": self.frequency + 0.02 * math.sin(t / 97.0)}

    # ---- registers ----
    def active_energy(self, t: float) -> float:
        """Active energy import register in Wh at time t (integral of active_power)."""
        h0 = (self.energy_origin / 3600.0)
        h = t / 3600.0
        return max(0.0, self.mean_power_w / _SHAPE_MEAN * (_shape_integral(h) - _shape_integral(h0)))

    def reactive_energy(self, t: float) -> float:
        return self.active_energy(t) * math.tan(math.acos(self.power_factor))

    def tariff_at(self, t: float) -> int:
        h = (t / 3600.0) % 24
        for start, end, tariff in TARIFF_ZONES:
            if start <= h < end:
                return tariff
        return 1

    def energy_by_tariff(self, t: float) -> list[float]:
        """[total, T1, T2, T3, T4] active energy import in Wh at time t.  Each tariff register
        grows only during its zones (TARIFF_ZONES); the four add up to the total."""
        e = self.active_energy
        zone = [0.0] * 5
        origin = self.energy_origin
        first_day = math.floor(origin / 86400) * 86400
        today = math.floor(t / 86400) * 86400

        def add_day(day: float, upto: float) -> None:
            for start, end, tariff in TARIFF_ZONES:
                a = max(day + start * 3600, origin)
                b = min(day + end * 3600, upto)
                if b > a:
                    zone[tariff] += e(b) - e(a)

        if today <= first_day:
            add_day(first_day, t)
        else:
            add_day(first_day, first_day + 86400)
            full = int((today - first_day) // 86400) - 1
            if full > 0:  # the curve repeats daily: every whole day adds the same per zone
                ref = first_day + 86400
                for start, end, tariff in TARIFF_ZONES:
                    zone[tariff] += full * (e(ref + end * 3600) - e(ref + start * 3600))
            add_day(today, t)
        return [e(t), zone[1], zone[2], zone[3], zone[4]]

    def profile(self, start: float, end: float, interval: float = 900.0) -> list[tuple[float, float]]:
        """Load profile rows (interval end time, active energy in Wh during the interval) for
        intervals ending in (start, end]; interval-aligned."""
        first = math.floor(start / interval) * interval + interval
        rows = []
        t = first
        while t <= end:
            rows.append((t, self.active_energy(t) - self.active_energy(t - interval)))
            t += interval
        return rows

    def interval_energy(self, end: float, interval: float) -> tuple[float, float]:
        """(active Wh, reactive varh) imported in the interval (end - interval, end]: what a
        load-profile record of that interval holds."""
        active = self.active_energy(end) - self.active_energy(end - interval)
        return active, active * math.tan(math.acos(self.power_factor))

    # ---- clock and events ----
    def clock(self, t: float) -> float:
        """The meter's own clock at true time t (drifting)."""
        return t + (t - self.energy_origin) * self.clock_drift_ppm / 1e6

    def events(self, start: float, end: float) -> list[tuple[float, int, str]]:
        """Journal entries (time, code, text) in [start, end): a deterministic sprinkle of power
        failures (code 1) and restorations (code 2), about one pair per ten days."""
        out = []
        day = math.floor(start / 86400)
        while day * 86400 < end:
            rnd = random.Random(self.seed * 1_000_003 + day)
            if rnd.random() < 0.1:
                off = day * 86400 + rnd.uniform(0, 86000)
                for tt, code, text in ((off, 1, "power failure"), (off + rnd.uniform(5, 300), 2, "power restored")):
                    if start <= tt < end:
                        out.append((tt, code, text))
            day += 1
        return out

    def power_cut_in(self, start: float, end: float) -> bool:
        """True when a power failure or restoration of :meth:`events` falls in (start, end]
        (the interval a meter marks as incomplete)."""
        # a restoration can fall after midnight of the day whose draw made the failure
        return any(start < t <= end and code in (1, 2) for t, code, _ in self.events(start - 86400, end + 1e-6))
