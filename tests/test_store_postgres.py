"""The PostgreSQL store against a real server started here (tests/pgserver.py), and the native
binary-COPY builder/parser (ext/_pgcopy) against a pure-Python reference.

Without PostgreSQL's server binaries the server tests FAIL with instructions; set
METERPOLL_SKIP_PG=1 to skip them explicitly.  The _pgcopy tests need no server."""
from __future__ import annotations

import asyncio
import itertools
import random
import struct
import tracemalloc

import asyncpg
import numpy as np
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import store_model as scenarios
from meterpoll.bindings.readings import READING_DTYPE
from meterpoll.engine.store import SchemaTooNew, StoreError, open_store
from meterpoll.engine.store.base import TS_MAX_MS, TS_MIN_MS
from meterpoll.engine.store.postgres import PostgresStore
from meterpoll.engine.store.schema import LATEST
from meterpoll.ext import _pgcopy
from pgserver import require_server
from store_model import (
    E, model_latest, model_read, model_write, readings, readings_from_rows, rows_strategy, same_readings,
)

PG_EPOCH_MS = 946_684_800_000


# ---------------------------------------------------------------------------------------------
# the native COPY builder and parser (no server needed)
def ref_copy(arr: np.ndarray) -> bytes:
    """The obvious encoder: PostgreSQL's binary COPY format, one struct.pack per row."""
    out = [b"PGCOPY\n\xff\r\n\x00", struct.pack(">ii", 0, 0)]
    for m, o, t, v, u, s in zip(
            arr["meter"].tolist(), arr["obis"].tolist(), arr["ts"].view(np.int64).tolist(),
            arr["value"].tolist(), arr["unit"].tolist(), arr["status"].tolist()):
        out.append(struct.pack(">h iq iq iq id ih ii", 6, 8, m, 8, o, 8, (t - PG_EPOCH_MS) * 1000,
                               8, v, 2, u, 4, s))
    out.append(struct.pack(">h", -1))
    return b"".join(out)


def random_readings(rng: np.random.Generator, n: int) -> np.ndarray:
    a = np.zeros(n, READING_DTYPE)
    a["meter"] = rng.integers(0, 2**32, n, dtype=np.uint64)
    a["obis"] = rng.integers(0, 2**48, n, dtype=np.uint64)
    a["ts"] = rng.integers(TS_MIN_MS, TS_MAX_MS + 1, n).view("datetime64[ms]")
    a["value"] = rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64)   # any bit pattern, NaNs too
    a["unit"] = rng.integers(0, 256, n)
    a["status"] = rng.integers(0, 65536, n)
    return a


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and all(np.array_equal(a[f], b[f]) for f in ("meter", "obis", "ts", "unit", "status")) \
        and np.array_equal(a["value"].view(np.uint64), b["value"].view(np.uint64))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 40), step=st.integers(1, 50))
def test_copy_builder_matches_reference_and_parses_back(seed, n, step):
    a = random_readings(np.random.default_rng(seed), n)
    payload = _pgcopy.build_copy(a)
    assert payload == ref_copy(a)
    assert len(payload) == 19 + 64 * n + 2
    assert b"".join(_pgcopy.copy_chunks(a, step)) == payload
    assert same_bits(_pgcopy.parse_copy(payload), a)
    if n >= 3:
        assert _pgcopy.build_copy(a, 1, 3, header=False, trailer=False) == payload[19 + 64:19 + 64 * 3]


def test_copy_builder_refuses_unstorable_readings():
    a = readings(1, E, np.arange(5), 1.0)
    for field, value, what in (("ts", np.datetime64("NaT"), "NaT"), ("ts", np.datetime64(TS_MAX_MS + 1, "ms"), "ms"),
                               ("ts", np.datetime64(TS_MIN_MS - 1, "ms"), "ms"), ("obis", 1 << 48, "obis")):
        b = a.copy()
        b[field][3] = value
        with pytest.raises(ValueError, match="reading 3.*" if field == "ts" else "reading 3"):
            _pgcopy.build_copy(b)
        with pytest.raises(ValueError, match="reading 3"):
            _pgcopy.copy_chunks(b, 2)   # refused before the first chunk is produced
        assert _pgcopy.first_bad(b) == 3
    assert _pgcopy.first_bad(a) == -1
    with pytest.raises(TypeError):
        _pgcopy.build_copy(a.astype([("meter", "u4")]))
    with pytest.raises(TypeError):
        _pgcopy.build_copy(b"not an array")
    with pytest.raises(ValueError):
        _pgcopy.build_copy(a[::2])
    with pytest.raises(ValueError):
        _pgcopy.copy_chunks(a, 0)


def test_copy_parser_hostile_input_only_raises_valueerror():
    a = random_readings(np.random.default_rng(5), 3)
    good = _pgcopy.build_copy(a)
    for cut in range(len(good)):               # every truncation
        with pytest.raises(ValueError):
            _pgcopy.parse_copy(good[:cut])
    with pytest.raises(ValueError, match="after the trailer"):
        _pgcopy.parse_copy(good + b"\x00")
    with pytest.raises(ValueError, match="OIDs"):
        _pgcopy.parse_copy(good[:11] + b"\x00\x01\x00\x00" + good[15:])
    # a header extension is skipped
    ext = good[:15] + struct.pack(">i", 3) + b"abc" + good[19:]
    assert same_bits(_pgcopy.parse_copy(ext), a)
    # a NULL value, a field of another width, a tuple with 5 columns
    null = bytearray(good)
    null[19 + 38:19 + 42] = struct.pack(">i", -1)
    with pytest.raises(ValueError, match="wrong length"):
        _pgcopy.parse_copy(bytes(null))
    five = bytearray(good)
    five[19:21] = struct.pack(">h", 5)
    with pytest.raises(ValueError, match="6 reading columns"):
        _pgcopy.parse_copy(bytes(five))
    neg = bytearray(good)
    neg[19 + 6:19 + 14] = struct.pack(">q", -1)           # meter -1
    with pytest.raises(ValueError, match="range"):
        _pgcopy.parse_copy(bytes(neg))
    inf = bytearray(good)
    inf[19 + 30:19 + 38] = struct.pack(">q", 2**63 - 1)   # timestamptz 'infinity'
    with pytest.raises(ValueError, match="range"):
        _pgcopy.parse_copy(bytes(inf))
    rnd = random.Random(7)
    for _ in range(3000):                      # bit flips and random bytes: ValueError or a parse
        b = bytearray(good)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        try:
            out = _pgcopy.parse_copy(bytes(b))
            assert out.dtype == READING_DTYPE and len(out) <= 3
        except ValueError:
            pass
        with pytest.raises(ValueError):
            _pgcopy.parse_copy(rnd.randbytes(rnd.randint(0, 200)))
    assert len(_pgcopy.parse_copy(_pgcopy.HEADER + _pgcopy.TRAILER)) == 0


def test_sub_millisecond_timestamps_from_postgres_are_floored():
    body = struct.pack(">h iq iq iq id ih ii", 6, 8, 1, 8, 2, 8, -1500, 8, 1.0, 2, 30, 4, 0)  # 1.5 ms before 2000
    out = _pgcopy.parse_copy(_pgcopy.HEADER + body + _pgcopy.TRAILER)
    assert int(out["ts"].view(np.int64)[0]) == PG_EPOCH_MS - 2


def test_copy_builder_allocates_no_object_per_row():
    a = random_readings(np.random.default_rng(1), 200_000)
    tracemalloc.start()
    try:
        payload = _pgcopy.build_copy(a)
        _, peak = tracemalloc.get_traced_memory()
        size = len(payload)
        del payload
        tracemalloc.reset_peak()
        parsed = _pgcopy.parse_copy(_pgcopy.build_copy(a))
        _, peak2 = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size + 64 * 1024, (peak, size)               # the payload itself, nothing per row
    assert peak2 < size + parsed.nbytes + 64 * 1024 + 4 * 1024 * 1024, (peak2, size)


# ---------------------------------------------------------------------------------------------
# against a real server
@pytest.fixture(scope="module")
def pg():
    server = require_server()
    try:
        server.create_database("tests")
        yield server
    finally:
        server.stop()


_names = itertools.count()


@pytest.fixture
def pg_url(pg):
    """A fresh empty schema of the test database (faster than a database per test; the store
    follows the connection's search_path, which asyncpg takes from the URL)."""
    name = "t%d" % next(_names)
    pg.psql("CREATE SCHEMA %s" % name, database="tests")
    return pg.url("tests") + "?search_path=" + name


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request):
    def runner(coro):
        return uvloop.run(coro) if request.param == "uvloop" else asyncio.run(coro)
    return runner


@pytest.mark.parametrize("name", ["reinsert_never_duplicates_and_follows_the_rule", "nan_inf_and_every_status_preserved",
                                  "timestamps_exact_to_the_ms", "empty_arrays_and_unknown_meters",
                                  "refused_arrays_store_nothing", "events_and_poll_log", "registry_crud",
                                  "concurrent_writes_and_reads"])
def test_shared_scenarios(pg_url, name):
    """The scenarios every backend passes (on uvloop, the engine's loop; the other tests here
    also run on the stock asyncio loop)."""
    async def main():
        async with await open_store(pg_url) as store:
            assert isinstance(store, PostgresStore)
            await getattr(scenarios, "check_" + name)(store)
    uvloop.run(main())


@pytest.fixture(scope="module")
def shared_pg_url(pg):
    return pg.create_database("roundtrip")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(rows_strategy(), min_size=1, max_size=3))
def test_roundtrip_matches_model_and_sqlite(shared_pg_url, tmp_path_factory, batches):
    """The same random batches through PostgreSQL and SQLite: both equal the model."""
    sqlite_url = "sqlite:///" + str(tmp_path_factory.mktemp("rt") / "x.db")

    async def main():
        model: dict = {}
        async with await open_store(shared_pg_url) as pgs, await open_store(sqlite_url) as lite:
            async with pgs._p().acquire() as c:
                await c.execute("TRUNCATE readings")
            for rows in batches:
                arr = readings_from_rows(rows)
                assert await pgs.write_readings(arr) == len(arr)
                await lite.write_readings(arr)
                model_write(model, rows)
            assert await pgs.count_readings() == len(model)
            meters = sorted({k[0] for k in model} | {7})
            for m in meters:
                got = await pgs.read_readings(m)
                assert same_readings(got, model_read(model, m))
                assert same_readings(await lite.read_readings(m), got)
                codes = sorted({k[1] for k in model if k[0] == m})
                for c in codes:
                    got = await pgs.read_readings(m, obis=c, start=-5000, end=5000)
                    assert same_readings(got, model_read(model, m, c, -5000, 5000))
                    last = await pgs.last_timestamp(m, c)
                    assert int(last.astype(np.int64)) == max(k[2] for k in model if k[:2] == (m, c))
            assert same_readings(await pgs.latest(meters), model_latest(model, meters))
            some = sorted({k[1] for k in model})[:2]
            assert same_readings(await pgs.latest(meters, obis=some), model_latest(model, meters, some))
    asyncio.run(main())


def test_values_are_bit_exact(run, pg_url):
    """PostgreSQL keeps every float8 bit pattern: -0.0, NaN payloads, subnormals."""
    async def main():
        async with await open_store(pg_url) as store:
            a = random_readings(np.random.default_rng(3), 2000)
            a["ts"] = (1_700_000_000_000 + np.arange(2000) * 1000).view("datetime64[ms]")
            a["meter"] = np.array([0, 1, 2**32 - 1, 77], dtype=np.uint32)[np.arange(2000) % 4]
            a["value"][:3] = [-0.0, 5e-324, np.float64(np.nan)]
            await store.write_readings(a)
            got = np.concatenate([await store.read_readings(int(m)) for m in np.unique(a["meter"])])
            order = np.lexsort((got["ts"].view(np.int64), got["obis"], got["meter"]))
            want = a[np.lexsort((a["ts"].view(np.int64), a["obis"], a["meter"]))]
            assert same_bits(got[order], want)
    run(main())


def test_partitions_by_month_created_on_demand(run, pg_url):
    async def main():
        async with await open_store(pg_url) as store:
            assert await store.partitions() == []
            days = np.array(["2026-10-31T23:59:59.999", "2026-11-01T00:00:00.000", "2026-11-30T12:00",
                             "2027-01-15", "0001-01-01", "9999-12-31T23:59:59.999"], dtype="datetime64[ms]")
            a = readings(1, E, days.view(np.int64), np.arange(6.0))
            # within two years: every month from the first to the last (December stays empty)
            await store.write_readings(a[:4])
            assert await store.partitions() == ["readings_p202610", "readings_p202611", "readings_p202612",
                                                "readings_p202701"]
            # far apart: exactly the months present
            await store.write_readings(a)
            assert await store.partitions() == ["readings_p000101", "readings_p202610", "readings_p202611",
                                                "readings_p202612", "readings_p202701", "readings_p999912"]
            async with store._p().acquire() as c:
                rows = await c.fetch("SELECT tableoid::regclass::text AS part, value FROM readings ORDER BY ts")
                assert [(r["part"], r["value"]) for r in rows] == [
                    ("readings_p000101", 4.0), ("readings_p202610", 0.0), ("readings_p202611", 1.0),
                    ("readings_p202611", 2.0), ("readings_p202701", 3.0), ("readings_p999912", 5.0)]
                # range reads by meter+obis+ts use the primary-key index of each partition
                await c.execute("SET enable_seqscan = off")
                plan = "\n".join(r[0] for r in await c.fetch(
                    "EXPLAIN SELECT * FROM readings WHERE meter = 1 AND obis = 2 AND ts >= '2026-11-02' "
                    "AND ts < '2026-11-03'"))
                assert "readings_p202611_pkey" in plan and "readings_p202610" not in plan, plan
                # a partition dropped behind the store's back (retention) is recreated on the next write
                await c.execute("DROP TABLE readings_p202611")
            got = await store.read_readings(1)
            assert got["value"].tolist() == [4.0, 0.0, 3.0, 5.0]
            await store.write_readings(a[1:3])
            assert (await store.read_readings(1))["value"].tolist() == [4.0, 0.0, 1.0, 2.0, 3.0, 5.0]
    run(main())


def test_concurrent_writers_create_partitions_once(run, pg, pg_url):
    """Two stores (like two engine processes) and several coroutines writing new months at once."""
    async def main():
        s1, s2 = await asyncio.gather(open_store(pg_url), open_store(pg_url))
        try:
            arrays = [readings(m, E, np.datetime64("2030-%02d-15" % (1 + m % 6), "ms").astype(np.int64)
                               + np.arange(100) * 60_000, float(m)) for m in range(12)]
            done = await asyncio.gather(*[(s1 if i % 2 else s2).write_readings(a) for i, a in enumerate(arrays)])
            assert done == [100] * 12
            assert await s1.count_readings() == 1200
            assert len(await s2.partitions()) == 6
            # the same arrays again (all duplicates: the merge path), concurrently
            await asyncio.gather(*[(s2 if i % 2 else s1).write_readings(a) for i, a in enumerate(arrays)])
            assert await s1.count_readings() == 1200
        finally:
            await s1.close()
            await s2.close()
    run(main())


def test_fast_path_and_merge_path_are_both_atomic(run, pg_url):
    async def main():
        async with await open_store(pg_url + "&chunk_rows=10&pool_size=2") as store:
            a = readings(1, E, np.arange(1000), 1.0)
            await store.write_readings(a)
            # a COPY that fails after some chunks (refused late by the server: check constraint)
            async with store._p().acquire() as c:
                await c.execute("ALTER TABLE readings ADD CONSTRAINT v_small CHECK (value < 100)")
            b = readings(2, E, np.arange(1000), np.where(np.arange(1000) == 990, 1e6, 2.0))
            with pytest.raises(asyncpg.CheckViolationError):
                await store.write_readings(b)
            c2 = readings(1, E, np.arange(995, 1005), np.where(np.arange(10) == 9, 1e6, 3.0))   # merge path
            with pytest.raises(asyncpg.CheckViolationError):
                await store.write_readings(c2)
            assert await store.count_readings() == 1000
            assert set((await store.read_readings(1))["value"].tolist()) == {1.0}
            async with store._p().acquire() as c:
                await c.execute("ALTER TABLE readings DROP CONSTRAINT v_small")
            assert await store.write_readings(c2) == 10
            assert await store.count_readings() == 1005
    run(main())


def test_migrate_is_idempotent_and_versioned(run, pg_url):
    async def main():
        store = await open_store(pg_url, migrate=False)
        assert await store.schema_version() == 0
        assert await store.migrate() == LATEST
        assert await store.migrate() == LATEST
        async with store._p().acquire() as c:
            assert [r[0] for r in await c.fetch("SELECT version FROM schema_version ORDER BY 1")] == \
                list(range(1, LATEST + 1))
            kind = await c.fetchval("SELECT relkind FROM pg_class WHERE relname = 'readings'")
            assert kind == b"p" or kind == "p"        # partitioned table
            await c.execute("INSERT INTO schema_version (version, name) VALUES ($1, 'future')", LATEST + 1)
        await store.close()
        with pytest.raises(SchemaTooNew):
            await open_store(pg_url)
    run(main())


def test_bad_urls_and_unreachable_server(run, pg):
    async def main():
        with pytest.raises(StoreError):
            await open_store("mysql://x")
        with pytest.raises(StoreError):
            PostgresStore(pg.url() + "?pool_size=0")
        with pytest.raises(StoreError, match="cannot connect"):
            await open_store("postgresql://meterpoll@127.0.0.1:1/postgres")
    run(main())


def test_missing_server_binaries_fail_loudly_unless_skipped(monkeypatch):
    """No silent skip: without initdb/pg_ctl the PostgreSQL tests fail with the fix in the
    message; only METERPOLL_SKIP_PG=1 turns that into an explicit skip."""
    import pgserver

    monkeypatch.setattr(pgserver, "find_bindir", lambda: None)
    monkeypatch.delenv("METERPOLL_SKIP_PG", raising=False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y postgresql"):
        pgserver.require_server()
    monkeypatch.setenv("METERPOLL_SKIP_PG", "1")
    with pytest.raises(pytest.skip.Exception, match="METERPOLL_SKIP_PG=1"):
        pgserver.require_server()
