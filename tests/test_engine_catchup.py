"""Load-profile catch-up planning and clock checks."""
import warnings

import pytest
from hypothesis import given, settings, strategies as st

from meterpoll.engine.catchup import plan_catchup
from meterpoll.engine.clock import check_clock
from meterpoll.engine import loop

P = 900.0
NOW = 1_763_600_000.0 + 437.0  # not on an interval boundary


def intervals(ranges):
    out = []
    for a, b in ranges:
        t = a + P
        while t <= b + 1e-9:
            out.append(t)
            t += P
    return out


def test_fresh_meter_reads_the_configured_depth():
    r = plan_catchup(None, NOW, period=P, depth_days=1, max_rows=96)
    ivs = intervals(r)
    assert len(ivs) == 96 and ivs[-1] <= NOW and NOW - ivs[-1] < P
    assert all(b - a <= 96 * P for a, b in r)


def test_resume_after_restart_has_no_gap_and_no_duplicate():
    first = intervals(plan_catchup(None, NOW, period=P, depth_days=2))
    last_stored = first[-1]
    later = NOW + 5 * 3600
    more = intervals(plan_catchup(last_stored, later, period=P, depth_days=2))
    assert more[0] == last_stored + P and len(set(first) & set(more)) == 0
    assert more[-1] == later - later % P


def test_outage_longer_than_the_depth_is_capped():
    r = plan_catchup(NOW - 30 * 86400, NOW, period=P, depth_days=3)
    assert len(intervals(r)) == 3 * 96


@settings(max_examples=200, deadline=None)
@given(last=st.one_of(st.none(), st.floats(NOW - 10 * 86400, NOW)), depth=st.integers(0, 5),
       rows=st.integers(1, 200), advance=st.floats(0, 86400))
def test_every_closed_interval_exactly_once(last, depth, rows, advance):
    now = NOW + advance
    ivs = intervals(plan_catchup(last, now, period=P, depth_days=depth, max_rows=rows))
    assert len(ivs) == len(set(ivs)) and ivs == sorted(ivs)
    assert all(t <= now for t in ivs)
    if last is not None and ivs:
        assert ivs[0] > last - 1e-6
    if ivs:
        assert now - ivs[-1] < P  # up to the newest closed interval


def test_bad_arguments():
    with pytest.raises(ValueError):
        plan_catchup(None, NOW, period=0)


def test_clock_drift_beyond_the_limit():
    c = check_clock(1000.0 + 45, 999.0, 1001.0, time_difference=30, set_enabled=True)
    assert c.exceeded and c.set_clock and c.drift == pytest.approx(45)
    c = check_clock(1000.0 + 10, 999.0, 1001.0, time_difference=30, set_enabled=True)
    assert not c.exceeded and not c.set_clock
    # round-trip uncertainty is not blamed on the meter
    c = check_clock(1000.0 + 31, 990.0, 1010.0, time_difference=30, set_enabled=False)
    assert not c.exceeded
    with pytest.raises(ValueError):
        check_clock(0, 2, 1, time_difference=1, set_enabled=False)


def test_loop_runner_prefers_uvloop():
    assert loop.loop_kind() == "uvloop"

    async def which():
        import asyncio
        return type(asyncio.get_running_loop()).__module__

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loop.run(which()).startswith("uvloop")
