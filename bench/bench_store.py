"""Reading store throughput: readings committed per second, ours vs the naive way.

* ``sqlite_write``: ``SQLiteStore.write_readings`` (one transaction, executemany over a chunked
  iterator of the array) vs the naive way: a Python tuple built per row, then executemany of
  the same upsert in one transaction.  Target >= 200,000 readings/s.
* ``pg_write``: ``PostgresStore.write_readings`` (binary COPY built by ext/_pgcopy) vs asyncpg's
  ``copy_records_to_table`` with one Python tuple per reading, into the same partitioned table,
  one transaction each.  Target >= 1,000,000 readings/s.
* ``pg_read`` / ``sqlite_read``: reading one meter's N readings into a READING_DTYPE array,
  ours (binary COPY out parsed natively / cursor straight into numpy, both off the loop) vs
  fetching records and building the array from them row by row.
* ``pgcopy_build``: the native COPY builder alone vs struct.pack per row.

Every write round stores NEW readings (fresh meter ids, prepared outside the timing), so the
store takes its normal path.  PostgreSQL runs durable (fsync on, synchronous_commit on); a
private server is started for the module (tests/pgserver.py; METERPOLL_SKIP_PG=1 skips).
Readings/s of every case are printed at the end of the module.
"""
from __future__ import annotations

import datetime as dt
import itertools
import pathlib
import sqlite3
import struct
import sys

import asyncpg
import numpy as np
import pytest
import uvloop

from benchutil import scaled

TESTS = str(pathlib.Path(__file__).resolve().parent.parent / "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from pgserver import require_server  # noqa: E402

from meterpoll.bindings.readings import READING_DTYPE  # noqa: E402
from meterpoll.engine.store import open_store  # noqa: E402
from meterpoll.ext import _pgcopy  # noqa: E402

N = scaled(200_000, minimum=2_000)        # readings per write
ROUNDS = 5 if N >= 100_000 else 2
OBIS = [0x0100010800FF + (k << 8) for k in range(8)]
_meter_ids = itertools.count(1)
RATES: dict[str, float] = {}


def fresh_readings(n: int = N) -> np.ndarray:
    """n new readings: 96 quarter-hours x 8 OBIS codes per meter, on meters never used before."""
    per_meter = 96 * 8
    meters = -(-n // per_meter)
    first = next(_meter_ids)
    for _ in range(meters - 1):
        next(_meter_ids)
    i = np.arange(n)
    a = np.zeros(n, READING_DTYPE)
    a["meter"] = first + i // per_meter
    a["obis"] = np.array(OBIS, dtype=np.uint64)[i % 8]
    a["ts"] = (np.datetime64("2026-11-01", "ms").astype(np.int64) + ((i // 8) % 96) * 900_000).view("datetime64[ms]")
    a["value"] = np.random.default_rng(first).random(n) * 1e6
    a["unit"] = 30
    return a


def one_meter_readings(n: int = N) -> np.ndarray:
    """n readings of ONE new meter (8 OBIS codes every quarter-hour): what a range read returns."""
    a = fresh_readings(n)
    a["meter"] = a["meter"][0]
    a["ts"] = (np.datetime64("2026-11-01", "ms").astype(np.int64) + (np.arange(n) // 8) * 900_000).view("datetime64[ms]")
    return a


def naive_tuples(a: np.ndarray) -> list[tuple]:
    """What a straightforward implementation does: one tuple of Python scalars per reading."""
    return [(int(r["meter"]), int(r["obis"]), int(r["ts"].astype(np.int64)), float(r["value"]), int(r["unit"]),
             int(r["status"])) for r in a]


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is None or capman is None or not RATES:
        return
    with capman.global_and_fixture_disabled():
        tr.write_line("")
        tr.write_line("meterpoll store: readings/s (best round; writes: %d readings a call)" % N)
        for name, rate in sorted(RATES.items()):
            tr.write_line("  %-28s %14s readings/s" % (name, "{:,.0f}".format(rate)))


def record(benchmark, name: str, n: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.min > 0:
        RATES[name] = n / stats.stats.min


@pytest.fixture(scope="module")
def loop():
    lp = uvloop.new_event_loop()
    yield lp
    lp.close()


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lite(loop, tmp_path_factory):
    store = loop.run_until_complete(open_store("sqlite:///" + str(tmp_path_factory.mktemp("bench") / "b.db")))
    yield store
    loop.run_until_complete(store.close())


def test_sqlite_write__ours(benchmark, loop, lite):
    benchmark.pedantic(lambda a: loop.run_until_complete(lite.write_readings(a)),
                       setup=lambda: ((fresh_readings(),), {}), rounds=ROUNDS, iterations=1)
    record(benchmark, "sqlite_write ours", N)


def test_sqlite_write__naive_tuples(benchmark, loop, lite, tmp_path_factory):
    from meterpoll.engine.store.sqlite import _UPSERT

    path = lite.path

    def write(a):
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA synchronous = NORMAL")
        try:
            con.execute("BEGIN IMMEDIATE")
            con.executemany(_UPSERT, naive_tuples(a))
            con.execute("COMMIT")
        finally:
            con.close()
    benchmark.pedantic(write, setup=lambda: ((fresh_readings(),), {}), rounds=max(1, ROUNDS - 2), iterations=1)
    record(benchmark, "sqlite_write naive", N)


def test_sqlite_read__ours(benchmark, loop, lite):
    a = one_meter_readings()
    loop.run_until_complete(lite.write_readings(a))
    meter = int(a["meter"][0])
    got = benchmark(lambda: loop.run_until_complete(lite.read_readings(meter)))
    assert len(got) == N
    record(benchmark, "sqlite_read ours", len(got))


def test_sqlite_read__naive_tuples(benchmark, loop, lite):
    a = one_meter_readings()
    loop.run_until_complete(lite.write_readings(a))
    meter = int(a["meter"][0])
    con = sqlite3.connect(lite.path)

    def read():
        rows = con.execute("SELECT meter, obis, ts, value, unit, status FROM readings WHERE meter = ? "
                           "ORDER BY obis, ts", (meter,)).fetchall()
        out = np.empty(len(rows), READING_DTYPE)
        for i, (m, o, t, v, u, s) in enumerate(rows):
            out[i] = (m, o, np.datetime64(t, "ms"), np.nan if v is None else v, u, s)
        return out
    got = benchmark(read)
    con.close()
    assert len(got) == N
    record(benchmark, "sqlite_read naive", len(got))


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pgstore(loop):
    server = require_server(durable=True)
    try:
        store = loop.run_until_complete(open_store(server.url()))
        yield store
        loop.run_until_complete(store.close())
    finally:
        server.stop()


def test_pg_write__ours(benchmark, loop, pgstore):
    loop.run_until_complete(pgstore.write_readings(fresh_readings(1000)))   # the month's partition exists
    benchmark.pedantic(lambda a: loop.run_until_complete(pgstore.write_readings(a)),
                       setup=lambda: ((fresh_readings(),), {}), rounds=ROUNDS, iterations=1)
    record(benchmark, "pg_write ours", N)


def test_pg_write__naive_records(benchmark, loop, pgstore):
    """asyncpg's own way: copy_records_to_table with a tuple (and a datetime) per reading."""
    utc = dt.timezone.utc
    conn = loop.run_until_complete(asyncpg.connect(pgstore.dsn))   # stock codecs (datetime)

    async def write(a):
        records = [(m, o, dt.datetime.fromtimestamp(t / 1000, utc), v, u, s) for m, o, t, v, u, s in naive_tuples(a)]
        async with conn.transaction():
            await conn.copy_records_to_table("readings", records=records, columns=list(_pgcopy.COLUMNS))
    try:
        benchmark.pedantic(lambda a: loop.run_until_complete(write(a)), setup=lambda: ((fresh_readings(),), {}),
                           rounds=max(1, ROUNDS - 2), iterations=1)
    finally:
        loop.run_until_complete(conn.close())
    record(benchmark, "pg_write naive", N)


def _pg_meter(loop, pgstore) -> int:
    a = one_meter_readings()
    loop.run_until_complete(pgstore.write_readings(a))
    return int(a["meter"][0])


def test_pg_read__ours(benchmark, loop, pgstore):
    meter = _pg_meter(loop, pgstore)
    got = benchmark(lambda: loop.run_until_complete(pgstore.read_readings(meter)))
    assert len(got) == N
    record(benchmark, "pg_read ours", len(got))


def test_pg_read__naive_records(benchmark, loop, pgstore):
    meter = _pg_meter(loop, pgstore)

    conn = loop.run_until_complete(asyncpg.connect(pgstore.dsn))   # stock codecs (datetime)

    async def read():
        rows = await conn.fetch("SELECT meter, obis, ts, value, unit, status "
                                "FROM readings WHERE meter = $1 ORDER BY obis, ts", meter)
        out = np.empty(len(rows), READING_DTYPE)
        for i, (m, o, t, v, u, s) in enumerate(rows):
            out[i] = (m, o, np.datetime64(t.replace(tzinfo=None), "ms"), v, u, s)
        return out
    try:
        got = benchmark(lambda: loop.run_until_complete(read()))
    finally:
        loop.run_until_complete(conn.close())
    assert len(got) == N
    record(benchmark, "pg_read naive", len(got))


# ---------------------------------------------------------------------------------------------
def test_pgcopy_build__ours(benchmark):
    a = fresh_readings()
    payload = benchmark(_pgcopy.build_copy, a)
    assert len(payload) == 19 + 64 * N + 2
    record(benchmark, "pgcopy_build ours", N)


def test_pgcopy_build__struct_pack(benchmark):
    a = fresh_readings()
    pack = struct.Struct(">h iq iq iq id ih ii").pack

    def build():
        out = [b"PGCOPY\n\xff\r\n\x00" + bytes(8)]
        for m, o, t, v, u, s in zip(a["meter"].tolist(), a["obis"].tolist(), a["ts"].view(np.int64).tolist(),
                                    a["value"].tolist(), a["unit"].tolist(), a["status"].tolist()):
            out.append(pack(6, 8, m, 8, o, 8, (t - 946_684_800_000) * 1000, 8, v, 2, u, 4, s))
        out.append(b"\xff\xff")
        return b"".join(out)
    payload = benchmark.pedantic(build, rounds=max(1, ROUNDS - 2), iterations=1)
    assert payload == _pgcopy.build_copy(a)
    record(benchmark, "pgcopy_build struct", N)

