"""The SQLite store on real files in tmp dirs: round trips, the duplicate rule, NaN/statuses,
ms-exact timestamps, empty arrays, atomicity, the SIGKILL crash test, migrations, events, poll
log, registry, and that the event loop keeps running during a large commit."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterpoll.engine.store import SchemaTooNew, StoreError, open_store
from meterpoll.engine.store.base import dedupe_readings
from meterpoll.engine.store.schema import LATEST
from meterpoll.engine.store.sqlite import SQLiteStore, parse_sqlite_url
import store_model as scenarios
from store_model import (
    E, model_latest, model_read, model_write, readings, readings_from_rows, rows_strategy, same_readings,
)


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request):
    def runner(coro):
        return uvloop.run(coro) if request.param == "uvloop" else asyncio.run(coro)
    return runner


def url_of(path) -> str:
    return "sqlite:///" + str(path)


# ---------------------------------------------------------------------------------------------
def test_url_parsing(tmp_path):
    assert parse_sqlite_url("sqlite:///rel/x.db") == ("rel/x.db", {})
    assert parse_sqlite_url("sqlite:////abs/x.db?synchronous=full") == ("/abs/x.db", {"synchronous": "full"})
    for bad in ("sqlite://x.db", "sqlite:///", "sqlite:///:memory:", "sqlite:////a.db?foo=1", "mysql:///x"):
        with pytest.raises(StoreError):
            parse_sqlite_url(bad)
    with pytest.raises(StoreError):
        SQLiteStore(url_of(tmp_path / "x.db") + "?synchronous=off")


def test_open_sets_wal_and_synchronous(run, tmp_path):
    import sqlite3

    async def main():
        for sync, code in (("", 1), ("?synchronous=full", 2)):
            path = tmp_path / ("s%d.db" % code)
            store = await open_store(url_of(path) + sync)
            mode, level = await store._write(lambda: (store._wc.execute("PRAGMA journal_mode").fetchone()[0],
                                                      store._wc.execute("PRAGMA synchronous").fetchone()[0]))
            assert (mode, level) == ("wal", code)
            await store.close()
            await store.close()  # idempotent
            with pytest.raises(StoreError):
                await store.read_readings(1)
            assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    run(main())


def test_missing_directory_is_a_store_error(run, tmp_path):
    async def main():
        with pytest.raises(StoreError, match="does not exist"):
            await open_store(url_of(tmp_path / "nope" / "x.db"))
    run(main())


# ---------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(rows_strategy(), min_size=1, max_size=3))
def test_roundtrip_matches_model(tmp_path_factory, batches):
    """Random batches (with duplicate keys, NaN, +-inf, every status) written in order read back
    exactly as the model of the duplicate rule says, by meter, by obis, by range, latest."""
    path = tmp_path_factory.mktemp("rt") / "x.db"

    async def main():
        model: dict = {}
        async with await open_store(url_of(path)) as store:
            for rows in batches:
                arr = readings_from_rows(rows)
                assert await store.write_readings(arr) == len(arr)
                model_write(model, rows)
            assert await store.count_readings() == len(model)
            meters = sorted({k[0] for k in model} | {7})
            for m in meters:
                got = await store.read_readings(m)
                assert same_readings(got, model_read(model, m))
                codes = sorted({k[1] for k in model if k[0] == m})
                if codes:
                    got = await store.read_readings(m, obis=codes[0], start=-5000, end=5000)
                    assert same_readings(got, model_read(model, m, codes[0], -5000, 5000))
                    for c in codes:
                        last = await store.last_timestamp(m, c)
                        assert int(last.astype(np.int64)) == max(k[2] for k in model if k[:2] == (m, c))
            assert same_readings(await store.latest(meters), model_latest(model, meters))
            some = sorted({k[1] for k in model})[:2]
            assert same_readings(await store.latest(meters, obis=some), model_latest(model, meters, some))
    asyncio.run(main())


def test_reinsert_never_duplicates_and_follows_the_rule(run, tmp_path):
    async def main():
        async with await open_store(url_of(tmp_path / "x.db")) as store:
            await scenarios.check_reinsert_never_duplicates_and_follows_the_rule(store)
    run(main())


def test_nan_inf_and_every_status_preserved(run, tmp_path):
    async def main():
        async with await open_store(url_of(tmp_path / "x.db")) as store:
            await scenarios.check_nan_inf_and_every_status_preserved(store)
    run(main())


def test_timestamps_exact_to_the_ms(run, tmp_path):
    async def main():
        async with await open_store(url_of(tmp_path / "x.db")) as store:
            await scenarios.check_timestamps_exact_to_the_ms(store)
    run(main())


def test_empty_arrays_and_unknown_meters(run, tmp_path):
    async def main():
        async with await open_store(url_of(tmp_path / "x.db")) as store:
            await scenarios.check_empty_arrays_and_unknown_meters(store)
    run(main())


def test_refused_arrays_store_nothing(run, tmp_path):
    async def main():
        async with await open_store(url_of(tmp_path / "x.db")) as store:
            await scenarios.check_refused_arrays_store_nothing(store)
    run(main())


def test_a_write_that_fails_midway_leaves_nothing(run, tmp_path):
    """Atomic per call: the generator feeding executemany raises after some chunks."""
    async def main():
        async with await open_store(url_of(tmp_path / "x.db") + "?chunk_rows=100") as store:
            await store.write_readings(readings(6, E, np.arange(3), 1.0))
            real = store._rows

            def failing(arr):
                for i, row in enumerate(real(arr)):
                    if i == 950:
                        raise RuntimeError("disk on fire")
                    yield row
            store._rows = failing
            with pytest.raises(RuntimeError):
                await store.write_readings(readings(7, E, np.arange(1000), 2.0))
            store._rows = real
            assert await store.count_readings() == 3
            assert await store.write_readings(readings(7, E, np.arange(1000), 2.0)) == 1000
            assert await store.count_readings() == 1003
    run(main())


def test_large_write_in_small_chunks(run, tmp_path):
    async def main():
        async with await open_store(url_of(tmp_path / "x.db") + "?chunk_rows=7") as store:
            n = 5000
            a = readings(np.arange(n) % 13, E + np.arange(n) % 3, np.arange(n) * 1000, np.arange(n) / 3)
            await store.write_readings(a)
            total = sum([len(await store.read_readings(m)) for m in range(13)])
            assert total == n
            assert same_readings(np.concatenate([await store.read_readings(m) for m in range(13)]),
                                 dedupe_readings(a))
    run(main())


def test_loop_keeps_running_during_a_big_commit(run, tmp_path):
    async def main():
        async with await open_store(url_of(tmp_path / "x.db")) as store:
            n = 200_000
            a = readings(np.arange(n) // 96, E, (np.arange(n) % 96) * 900_000, 1.0)
            gaps = []
            done = asyncio.Event()

            async def ticker():
                last = time.monotonic()
                while not done.is_set():
                    await asyncio.sleep(0.005)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now
            t = asyncio.create_task(ticker())
            t0 = time.monotonic()
            await store.write_readings(a)
            elapsed = time.monotonic() - t0
            done.set()
            await t
            assert await store.count_readings() == n
            # the loop ran all along: many ticks, none stuck behind the commit
            assert len(gaps) >= 3 and max(gaps) < max(0.3, elapsed / 3), (len(gaps), max(gaps), elapsed)
    run(main())


# ---------------------------------------------------------------------------------------------
CRASH_WRITER = textwrap.dedent("""
    import asyncio, sys
    import numpy as np
    from meterpoll.bindings.readings import READING_DTYPE
    from meterpoll.engine.store import open_store

    async def main(url, first, n):
        store = await open_store(url)
        b = first
        while True:
            a = np.zeros(n, READING_DTYPE)
            a["meter"] = b
            a["obis"] = np.arange(n) % 7
            a["ts"] = (1_700_000_000_000 + np.arange(n) * 60_000).astype("datetime64[ms]")
            a["value"] = b + np.arange(n) / n
            await store.write_readings(a)
            print(b, flush=True)   # reported only after the commit returned
            b += 1

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
""")


def test_sigkill_mid_stream_loses_no_committed_batch(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(CRASH_WRITER)
    url = url_of(tmp_path / "crash.db")
    n = 3000
    reported: set[int] = set()
    first = 0
    rng = np.random.default_rng(1)
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), url, str(first), str(n)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            got = 0
            while got < 5 + round_ * 3 and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                reported.add(int(line))
                got += 1
            time.sleep(float(rng.uniform(0, 0.05)))    # somewhere inside the next batches
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL, err
        reported.update(int(x) for x in out.split())
        assert got >= 5, "writer reported too few batches: %s" % err

        async def check():
            async with await open_store(url) as store:
                present = {}
                for b in range(0, max(reported) + 3):
                    arr = await store.read_readings(b)
                    if len(arr):
                        present[b] = arr
                return present, await store.count_readings()
        present, total = asyncio.run(check())
        for b in reported:
            assert b in present, "batch %d was reported committed but is missing" % b
        for b, arr in present.items():
            assert len(arr) == n, "batch %d is partial: %d of %d readings" % (b, len(arr), n)
            assert np.allclose(np.sort(arr["value"]), b + np.arange(n) / n)
        # at most the one batch whose commit finished but whose print did not get out
        assert set(present) - reported <= {max(reported) + 1}
        assert total == n * len(present)
        first = max(present) + 1
        reported = set(present)


# ---------------------------------------------------------------------------------------------
def test_migrate_is_idempotent_and_versioned(run, tmp_path):
    import sqlite3

    async def main():
        path = tmp_path / "x.db"
        store = await open_store(url_of(path), migrate=False)
        assert await store.schema_version() == 0
        assert await store.migrate() == LATEST
        assert await store.migrate() == LATEST
        await store.close()
        store = await open_store(url_of(path))
        assert await store.schema_version() == LATEST
        await store.close()
        con = sqlite3.connect(path)
        rows = con.execute("SELECT version, name FROM schema_version").fetchall()
        assert [r[0] for r in rows] == list(range(1, LATEST + 1))
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"folders", "meters", "links", "readings", "events", "poll_log", "schema_version"} <= tables
        # the primary key of readings is the range index (meter, obis, ts)
        plan = " ".join(r[3] for r in con.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM readings WHERE meter = 1 AND obis = 2 AND ts >= 3 AND ts < 4"))
        assert "PRIMARY KEY (meter=? AND obis=? AND ts>? AND ts<?)" in plan, plan
        con.execute("INSERT INTO schema_version VALUES (?, 'from the future', 0)", (LATEST + 1,))
        con.commit()
        con.close()
        with pytest.raises(SchemaTooNew):
            await open_store(url_of(path))
    run(main())


def test_events_and_poll_log(run, tmp_path):
    async def main():
        async with await open_store(url_of(tmp_path / "x.db")) as store:
            await scenarios.check_events_and_poll_log(store)
    run(main())


def test_registry_crud(run, tmp_path):
    async def main():
        async with await open_store(url_of(tmp_path / "x.db")) as store:
            await scenarios.check_registry_crud(store)
    run(main())


def test_concurrent_writes_and_reads(run, tmp_path):
    async def main():
        async with await open_store(url_of(tmp_path / "x.db")) as store:
            await scenarios.check_concurrent_writes_and_reads(store)
    run(main())
