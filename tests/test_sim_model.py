"""The simulated meter's physics is self-consistent: registers integrate power, tariffs add up,
profiles sum to register differences, every meter differs and is reproducible."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from meterpoll.engine.sim.model import MeterModel

T0 = 1_763_600_000.0  # 2025-11-20


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10**6), t=st.floats(T0, T0 + 86400 * 60), dt=st.floats(1, 3600))
def test_energy_is_the_integral_of_power(seed, t, dt):
    m = MeterModel(seed=seed)
    e = m.active_energy(t + dt) - m.active_energy(t)
    # trapezoid over small steps
    n = 64
    approx = sum((m.active_power(t + dt * k / n) + m.active_power(t + dt * (k + 1) / n)) / 2 for k in range(n)) * dt / n / 3600
    assert e == pytest.approx(approx, rel=1e-3)
    assert e > 0


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), t=st.floats(T0, T0 + 86400 * 400))
def test_tariffs_add_up_to_the_total(seed, t):
    m = MeterModel(seed=seed)
    total, *tariffs = m.energy_by_tariff(t)
    assert total == pytest.approx(sum(tariffs), rel=1e-9, abs=1e-6)
    assert all(x >= -1e-6 for x in tariffs)


def test_tariff_registers_grow_only_in_their_zone():
    m = MeterModel(seed=3)
    day = math.floor(T0 / 86400) * 86400 + 86400 * 3
    a = m.energy_by_tariff(day + 2 * 3600)   # 02:00, night zone (T2)
    b = m.energy_by_tariff(day + 5 * 3600)   # 05:00, still night
    assert b[2] - a[2] == pytest.approx(b[0] - a[0])
    assert b[1] == pytest.approx(a[1]) and b[3] == pytest.approx(a[3])


def test_profile_sums_to_register_difference():
    m = MeterModel(seed=9)
    rows = m.profile(T0, T0 + 86400)
    assert len(rows) == 96
    assert sum(e for _, e in rows) == pytest.approx(m.active_energy(rows[-1][0]) - m.active_energy(rows[0][0] - 900))


def test_instant_values_are_plausible_and_meters_differ():
    a, b = MeterModel(seed=1), MeterModel(seed=2)
    ia = a.instant(T0)
    assert 215 < ia["phases"][0]["voltage"] < 245 and 49.9 < ia["frequency"] < 50.1
    assert sum(p["active_power"] for p in ia["phases"]) == pytest.approx(ia["active_power"])
    assert a.active_energy(T0 + 3600) != b.active_energy(T0 + 3600)
    assert MeterModel(seed=1).active_energy(T0 + 3600) == a.active_energy(T0 + 3600)


def test_clock_drift_and_events():
    m = MeterModel(seed=5, clock_drift_ppm=100)
    assert m.clock(m.energy_origin + 1e6) == pytest.approx(m.energy_origin + 1e6 + 100)
    ev = m.events(T0, T0 + 86400 * 100)
    assert ev and all(T0 <= t < T0 + 86400 * 100 for t, _, _ in ev)
    assert ev == m.events(T0, T0 + 86400 * 100)
