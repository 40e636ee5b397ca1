"""Shared by the store tests (tests/test_store_sqlite.py, tests/test_store_postgres.py):

* the obvious model of the reading store, their oracle: a dict keyed by (meter, obis, ts)
  applying the duplicate rule row by row ("a good value is never replaced by a bad one;
  otherwise the newer write wins");
* ``check_*`` scenarios that every backend must pass, run by both test files on a real store.
"""
from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import strategies as st

from meterpoll.bindings.readings import READING_DTYPE, Quality, Unit
from meterpoll.engine.store import POLL_LOG_DTYPE, Event, PollOutcome, StoreError
from meterpoll.engine.store.base import TS_MAX_MS, TS_MIN_MS, dedupe_readings

E = 0x0100010800FF   # 1.0.1.8.0.255


def readings(meter, obis, ts_ms, value, unit=30, status=0) -> np.ndarray:
    """A READING_DTYPE array from broadcastable columns (ts in int ms)."""
    n = max(np.size(x) for x in (meter, obis, ts_ms, value, unit, status))
    a = np.zeros(n, READING_DTYPE)
    a["meter"], a["obis"], a["value"], a["unit"], a["status"] = meter, obis, value, unit, status
    a["ts"] = np.asarray(np.broadcast_to(ts_ms, n), dtype=np.int64).view("datetime64[ms]")
    return a

Row = tuple  # (meter, obis, ts_ms, value, unit, status)


def rows_strategy(max_size: int = 60):
    """Lists of reading rows over small key domains, so duplicates (in one batch and across
    batches) are frequent; values include NaN, +-inf, -0.0 and subnormals; every status."""
    row = st.tuples(
        st.sampled_from([0, 1, 2, 4_294_967_295]),
        st.sampled_from([0, 0x0100010800FF, 0x01001F0700FF, (1 << 48) - 1]),
        st.one_of(st.integers(-3000, 3000), st.sampled_from([TS_MIN_MS, TS_MAX_MS, 1_763_769_600_123])),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(0, 255),
        st.one_of(st.just(0), st.integers(0, 7), st.just(65535)),
    )
    return st.lists(row, min_size=0, max_size=max_size)


def readings_from_rows(rows: list[Row]) -> np.ndarray:
    a = np.zeros(len(rows), READING_DTYPE)
    for i, (m, o, t, v, u, s) in enumerate(rows):
        a[i] = (m, o, np.datetime64(t, "ms"), v, u, s)
    return a


def model_write(model: dict, rows: list[Row]) -> None:
    for row in rows:
        key = row[:3]
        old = model.get(key)
        if old is not None and old[5] == 0 and row[5] != 0:
            continue
        model[key] = row


def model_read(model: dict, meter: int, obis: int | None = None, start: int | None = None,
               end: int | None = None) -> np.ndarray:
    rows = [r for k, r in model.items() if k[0] == meter and (obis is None or k[1] == obis)
            and (start is None or k[2] >= start) and (end is None or k[2] < end)]
    return readings_from_rows(sorted(rows, key=lambda r: (r[1], r[2])))


def model_latest(model: dict, meters, obis=None) -> np.ndarray:
    best: dict = {}
    for (m, o, t), r in model.items():
        if m in meters and (obis is None or o in obis) and ((m, o) not in best or t > best[(m, o)][2]):
            best[(m, o)] = r
    return readings_from_rows([best[k] for k in sorted(best)])


def same_readings(got: np.ndarray, want: np.ndarray) -> bool:
    """Field-by-field equality; NaN equals NaN (SQLite keeps no NaN payload), 0.0 == -0.0."""
    assert got.dtype == READING_DTYPE, got.dtype
    if len(got) != len(want):
        return False
    for f in ("meter", "obis", "ts", "unit", "status"):
        if not np.array_equal(got[f], want[f]):
            return False
    return bool(np.array_equal(got["value"], want["value"], equal_nan=True))


async def check_reinsert_never_duplicates_and_follows_the_rule(store) -> None:
    ts = 1_700_000_000_000 + 900_000 * np.arange(4)
    first = readings(1, E, ts, [1.0, 2.0, np.nan, 4.0], status=[0, 0, Quality.TIMEOUT, Quality.ESTIMATED])
    await store.write_readings(first)
    await store.write_readings(first)
    assert await store.count_readings() == 4
    # re-read: good values replace the TIMEOUT and ESTIMATED ones; a failed re-read of a
    # good interval (status CHECKSUM) does not replace it; bad over bad: newer wins
    again = readings(1, E, ts, [10.0, 20.0, 30.0, np.nan], status=[Quality.CHECKSUM, 0, 0, Quality.TIMEOUT])
    await store.write_readings(again)
    got = await store.read_readings(1)
    assert len(got) == 4 and await store.count_readings() == 4
    assert got["value"][:3].tolist() == [1.0, 20.0, 30.0] and np.isnan(got["value"][3])
    assert got["status"].tolist() == [0, 0, 0, Quality.TIMEOUT]
    # inside one array: the last good one wins, else the last one
    dup = readings(2, E, [5, 5, 5, 6, 6], [1.0, 2.0, 3.0, 4.0, 5.0], status=[0, 0, 4, 3, 4])
    await store.write_readings(dup)
    got = await store.read_readings(2)
    assert got["value"].tolist() == [2.0, 5.0] and got["status"].tolist() == [0, 4]
    assert same_readings(got, dedupe_readings(dup))


async def check_nan_inf_and_every_status_preserved(store) -> None:
    statuses = [int(q) for q in Quality] + [65535, 1000]
    values = [np.nan, np.inf, -np.inf, 5e-324, -1.7976931348623157e308, 0.1, 1e15 + 0.5, np.pi, 0.0, 1.0]
    a = readings(3, np.arange(len(statuses)) + E, 1000, values[:len(statuses)], unit=[int(u) for u in Unit][:len(statuses)],
                 status=statuses)
    await store.write_readings(a)
    got = await store.read_readings(3)
    assert same_readings(got, a)
    assert np.isnan(got["value"][0]) and got["value"][1] == np.inf and got["value"][2] == -np.inf
    assert got["status"].tolist() == statuses


async def check_timestamps_exact_to_the_ms(store) -> None:
    ts = np.array([TS_MIN_MS, TS_MIN_MS + 1, -1, 0, 1, 1_763_769_600_123, 1_763_769_600_999,
                   TS_MAX_MS - 1, TS_MAX_MS], dtype=np.int64)
    a = readings(4, E, ts, np.arange(len(ts), dtype=float))
    await store.write_readings(a)
    got = await store.read_readings(4)
    assert got["ts"].view(np.int64).tolist() == ts.tolist()
    assert got["ts"].dtype == np.dtype("datetime64[ms]")
    # half-open ranges with datetime64, aware datetime and int bounds
    import datetime as dt
    r = await store.read_readings(4, start=np.datetime64(0, "ms"),
                                  end=dt.datetime(2025, 11, 22, 0, 0, 0, 999000, tzinfo=dt.timezone.utc))
    assert r["ts"].view(np.int64).tolist() == [0, 1, 1_763_769_600_123]
    with pytest.raises(ValueError, match="naive"):
        await store.read_readings(4, start=dt.datetime(2025, 1, 1))
    assert (await store.read_readings(4, limit=2))["ts"].view(np.int64).tolist() == ts[:2].tolist()


async def check_empty_arrays_and_unknown_meters(store) -> None:
    assert await store.write_readings(np.empty(0, READING_DTYPE)) == 0
    for got in (await store.read_readings(9), await store.latest([9, 10]), await store.latest([]),
                await store.read_readings(9, obis=[]), await store.read_readings(9, limit=0)):
        assert got.dtype == READING_DTYPE and len(got) == 0
    assert await store.last_timestamp(9, E) is None
    assert await store.write_events([]) == 0 and await store.read_events() == []
    assert await store.write_poll_log(np.empty(0, POLL_LOG_DTYPE)) == 0
    assert len(await store.read_poll_log()) == 0


async def check_refused_arrays_store_nothing(store) -> None:
    good = readings(5, E, np.arange(10), 1.0)
    with pytest.raises(TypeError):
        await store.write_readings(good.astype([("meter", "u4"), ("value", "f8")]))
    with pytest.raises(TypeError):
        await store.write_readings(list(good))
    bad = good.copy()
    bad["ts"][7] = np.datetime64("NaT")
    with pytest.raises(ValueError, match="reading 7"):
        await store.write_readings(bad)
    bad = good.copy()
    bad["obis"][3] = 1 << 48
    with pytest.raises(ValueError, match="reading 3"):
        await store.write_readings(bad)
    with pytest.raises(ValueError):
        await store.write_readings(good.reshape(2, 5))
    assert await store.count_readings() == 0
    # non-contiguous input is fine
    assert await store.write_readings(good[::2]) == 5
    assert len(await store.read_readings(5)) == 5


async def check_events_and_poll_log(store) -> None:
    evs = [Event(1, np.datetime64("2026-11-01T10:00:00.123"), 17, "power failure"),
           (2, 1_700_000_000_000, 3, "cover opened ✓"), (1, np.datetime64("2026-11-01T09:00:00", "s"), 5, "")]
    assert await store.write_events(evs) == 3
    got = await store.read_events()
    def ms(text):
        return int(np.datetime64(text, "ms").astype(np.int64))
    assert [(e.meter, int(e.ts.astype(np.int64)), e.code, e.text) for e in got] == [
        (2, 1_700_000_000_000, 3, "cover opened ✓"), (1, ms("2026-11-01T09:00:00"), 5, ""),
        (1, ms("2026-11-01T10:00:00.123"), 17, "power failure")]
    assert all(e.ts.dtype == np.dtype("datetime64[ms]") for e in got)
    assert [e.code for e in await store.read_events(1)] == [5, 17]
    assert [e.code for e in await store.read_events(1, start=np.datetime64("2026-11-01T09:30"))] == [17]
    assert [e.code for e in await store.read_events(limit=1)] == [3]
    log = np.zeros(3, POLL_LOG_DTYPE)
    log["meter"] = [1, 2, 1]
    log["ts"] = np.array([3000, 1000, 2000]).astype("datetime64[ms]")
    log["duration_ms"] = [120, 4000, 90]
    log["outcome"] = [PollOutcome.OK, PollOutcome.TIMEOUT, PollOutcome.PARTIAL]
    log["bytes"] = [512, 0, 2**32 - 1]
    assert await store.write_poll_log(log) == 3
    assert await store.write_poll_log([(3, 4000, 10, PollOutcome.NO_CONNECTION, 0)]) == 1
    got = await store.read_poll_log()
    assert got.dtype == POLL_LOG_DTYPE
    assert got["meter"].tolist() == [2, 1, 1, 3] and got["bytes"].tolist() == [0, 2**32 - 1, 512, 0]
    assert got["ts"].view(np.int64).tolist() == [1000, 2000, 3000, 4000]
    assert (await store.read_poll_log(1, end=3000))["duration_ms"].tolist() == [90]
    with pytest.raises(ValueError):
        await store.write_poll_log([(3, 4000, 10, 99, 0)])


async def check_registry_crud(store) -> None:
    site = await store.add_folder("Site A", folder_type="site")
    bld = await store.add_folder("Building 1", parent_id=site)
    assert (await store.get_folder(bld)).parent_id == site
    assert [f.name for f in await store.list_folders()] == ["Site A"]
    assert [f.name for f in await store.list_folders(site)] == ["Building 1"]
    assert len(await store.list_folders(all=True)) == 2
    assert await store.update_folder(bld, name="B1") and (await store.get_folder(bld)).name == "B1"
    link = await store.add_link("gw1", "tcp", "127.0.0.1:502", {"pause_ms": 50})
    assert (await store.get_link(link)).params == {"pause_ms": 50}
    with pytest.raises(StoreError):
        await store.add_link("bad", "carrier-pigeon", "x")
    m1 = await store.add_meter("M1", "modbus", folder_id=bld, link_id=link, address="17",
                               poll_interval_s=900, params={"map": "sdm630", "baud": 9600})
    m2 = await store.add_meter("M2", "mbus", id=4_000_000_000, serial_number="12345678")
    m3 = await store.add_meter("M3", "dlms")
    assert m2 == 4_000_000_000 and m3 == 4_000_000_001
    got = await store.get_meter(m1)
    assert (got.name, got.protocol, got.folder_id, got.link_id, got.address, got.poll_interval_s,
            got.enabled, got.params) == ("M1", "modbus", bld, link, "17", 900, True, {"map": "sdm630", "baud": 9600})
    assert [m.id for m in await store.list_meters()] == [m1, m2, m3]
    assert [m.id for m in await store.list_meters(bld)] == [m1]
    assert await store.update_meter(m1, enabled=False, params={"map": "x"})
    got = await store.get_meter(m1)
    assert got.enabled is False and got.params == {"map": "x"}
    assert not await store.update_meter(12345, name="ghost")
    with pytest.raises(TypeError):
        await store.update_meter(m1, colour="red")
    with pytest.raises(StoreError):
        await store.add_meter("M4", "modbus", folder_id=999)
    with pytest.raises(StoreError):
        await store.add_meter("M5", "modbus", id=2**32)
    with pytest.raises(StoreError):
        await store.delete_folder(bld)        # still holds M1
    with pytest.raises(StoreError):
        await store.delete_link(link)
    assert await store.delete_meter(m1) and await store.get_meter(m1) is None
    assert not await store.delete_meter(m1)
    assert await store.delete_folder(bld) and await store.delete_link(link)
    assert await store.get_folder(bld) is None and await store.list_links() == []


async def check_concurrent_writes_and_reads(store) -> None:
    arrays = [readings(m, E + np.arange(50) % 5, np.arange(50) * 1000, float(m)) for m in range(20)]
    results = await asyncio.gather(*[store.write_readings(a) for a in arrays],
                                   *[store.read_readings(m) for m in range(20)])
    assert results[:20] == [50] * 20
    assert await store.count_readings() == 1000
    for m in range(20):
        assert same_readings(await store.read_readings(m), dedupe_readings(arrays[m]))
