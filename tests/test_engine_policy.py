"""Meter records (the seed's fields), schedules and the circuit breaker."""
import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from meterpoll.engine.breaker import CircuitBreaker
from meterpoll.engine.config import ConfigError, MeterConfig, SerialSettings, load_meter
from meterpoll.engine.schedule import jitter_seconds, next_poll

UTC = dt.timezone.utc
SEED = {  # the poll server's create/update body, every value as text (seed 002)
    "name": "Feeder 7", "number_meter": "41234567", "connection_address": "12", "password": "111111",
    "ip_address": "127.0.0.1", "port": "4001", "waiting_time": "1500", "interval_time": "100",
    "pause_time": "60", "package_size": "0", "time_difference": "20", "periodType": "minutes",
    "data_polling_length": "7", "days_of_week": "1,2,3,4,5", "days_of_month": "",
    "protocol": "mercury", "link": "gateway",
}


def test_seed_record_loads_with_text_values():
    m = load_meter(SEED)
    assert m.port == 4001 and m.waiting_time == 1500 and m.days_of_week == (1, 2, 3, 4, 5)
    assert m.days_of_month == () and m.link == "gateway" and m.period == 15


@pytest.mark.parametrize(("field", "value", "match"), [
    ("waiting_time", "10", "waiting_time"),
    ("interval_time", "100000", "interval_time"),
    ("port", "70000", "port"),
    ("periodType", "weeks", "periodType"),
    ("days_of_week", "0,8", "days_of_week"),
    ("days_of_month", "32", "days_of_month"),
    ("connection_address", "241", "connection_address"),
    ("password", "12ab", "password"),
    ("ip_address", "not a host!", "ip_address"),
    ("name", "", "name"),
    ("protocol", "foo", "protocol"),
    ("time_difference", "0", "time_difference"),
    ("unknown_field", "1", "unknown_field"),
])
def test_invalid_values_are_refused_naming_the_field(field, value, match):
    rec = dict(SEED, **{field: value})
    with pytest.raises(ConfigError, match=match):
        load_meter(rec)


def test_protocol_specific_addresses():
    base = {"name": "m", "ip_address": "10.0.0.5", "port": 502}
    assert MeterConfig(protocol="modbus", connection_address="247", **base)
    with pytest.raises(ConfigError, match="Modbus unit id"):
        MeterConfig(protocol="modbus", connection_address="0", **base)
    assert MeterConfig(protocol="mbus", connection_address="12345678ABCDEF01", **base)
    assert MeterConfig(protocol="dlms", connection_address="1/17", **base)
    with pytest.raises(ConfigError, match="DLMS"):
        MeterConfig(protocol="dlms", connection_address="1/2/3", **base)
    with pytest.raises(ConfigError, match="125 registers"):
        MeterConfig(protocol="modbus", package_size=200, **base)


def test_serial_link_needs_settings_and_tcp_needs_an_endpoint():
    with pytest.raises(ConfigError, match="serial"):
        MeterConfig(name="m", protocol="mbus", link="serial")
    assert MeterConfig(name="m", protocol="mbus", link="serial", serial=SerialSettings(port="/dev/ttyS0", baudrate=2400, parity="E"))
    with pytest.raises(ConfigError, match="ip_address"):
        MeterConfig(name="m", protocol="modbus")
    with pytest.raises(ConfigError, match="port"):
        MeterConfig(name="m", protocol="modbus", ip_address="h")


def _cfg(**kw):
    return MeterConfig(name="m", protocol="modbus", ip_address="127.0.0.1", port=502, **kw)


def test_quarter_hour_slots_with_stable_jitter():
    cfg = _cfg(periodType="minutes", period=15)
    now = dt.datetime(2026, 11, 20, 10, 7, 0, tzinfo=UTC)
    j = jitter_seconds("m", 900)
    assert 0 <= j < 300
    t = next_poll(cfg, now)
    assert t == dt.datetime(2026, 11, 20, 10, 15, tzinfo=UTC) + dt.timedelta(seconds=j)
    assert next_poll(cfg, t) == t + dt.timedelta(minutes=15)


def test_jitter_spreads_ten_thousand_meters():
    offsets = {round(jitter_seconds("meter-%d" % i, 900), 3) for i in range(10_000)}
    assert len(offsets) > 9_000 and max(offsets) < 300


def test_days_of_week_and_month():
    cfg = _cfg(periodType="days", period=1, days_of_week=(6, 7))  # weekends only
    t = next_poll(cfg, dt.datetime(2026, 11, 18, 12, tzinfo=UTC), max_jitter=0)  # a Wednesday
    assert t == dt.datetime(2026, 11, 21, tzinfo=UTC) and t.isoweekday() == 6
    cfg = _cfg(periodType="hours", period=6, days_of_month=(1,))
    t = next_poll(cfg, dt.datetime(2026, 11, 20, tzinfo=UTC), max_jitter=0)
    assert t == dt.datetime(2026, 12, 1, tzinfo=UTC)
    cfg = _cfg(periodType="months", period=3)
    t = next_poll(cfg, dt.datetime(2026, 11, 20, tzinfo=UTC), max_jitter=0)
    assert t == dt.datetime(2027, 1, 1, tzinfo=UTC)


def test_impossible_constraints_fail_clearly():
    cfg = _cfg(periodType="months", period=1, days_of_month=(31,))  # monthly slots fall on the 1st
    with pytest.raises(ValueError, match="no allowed poll"):
        next_poll(cfg, dt.datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_poll(cfg, dt.datetime(2026, 1, 1))


def test_thirty_first_of_the_month_with_quarter_hours():
    cfg = _cfg(periodType="minutes", period=15, days_of_month=(31,))
    t = next_poll(cfg, dt.datetime(2026, 11, 5, tzinfo=UTC), max_jitter=0)
    assert t == dt.datetime(2026, 12, 31, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(period=st.integers(1, 1440), unit=st.sampled_from(["minutes", "hours", "days"]),
       ts=st.integers(0, 2_000_000_000), dow=st.sets(st.integers(1, 7), max_size=7))
def test_next_poll_is_after_now_and_allowed(period, unit, ts, dow):
    cfg = _cfg(periodType=unit, period=period, days_of_week=tuple(sorted(dow)))
    now = dt.datetime.fromtimestamp(ts, UTC)
    try:
        t = next_poll(cfg, now)
    except ValueError:
        # only when no slot of the period ever falls on an allowed weekday: the weekday pattern
        # of the slots repeats within 168 slots, so check them all
        step = dt.timedelta(seconds=period * {"minutes": 60, "hours": 3600, "days": 86400}[unit])
        first = next_poll(_cfg(periodType=unit, period=period), now)
        assert not any((first + k * step).isoweekday() in dow for k in range(169))
        return
    assert t > now
    if dow:
        assert t.isoweekday() in dow


def test_circuit_breaker_demotes_and_promotes():
    b = CircuitBreaker(threshold=3, probe_interval=60)
    for i in range(3):
        assert b.allow(i)
        b.record(False, i)
    assert b.demoted
    assert not b.allow(10)        # demoted: no regular polls
    assert b.allow(63)            # one probe per interval
    assert not b.allow(64)
    b.record(True, 64)
    assert not b.demoted and b.allow(65)
