"""The embedded store: one SQLite file.

URL: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (the SQLAlchemy rule: what
follows ``sqlite:///`` is the path), with optional query parameters ``synchronous`` (``normal``,
the default, or ``full``) and ``chunk_rows`` (rows converted per step of a batched insert).

Threads: the event loop never touches SQLite.  All writes go through ONE writer connection
owned by a dedicated single worker thread (so writes are serialised and the file has a single
writer); reads go through a second, read-only connection on its own worker thread, and since
the file is in WAL mode they run concurrently with a write and see every write whose coroutine
has returned.  The sqlite3 module releases the GIL inside SQLite, so the loop keeps running
during a long commit.  A cancelled coroutine does not cancel the statement already running on
its thread: that write still commits or rolls back as a whole.

Durability: ``journal_mode=WAL`` with ``synchronous=NORMAL``.  A commit has been written to the
WAL file with write(2) before ``write_readings`` returns, so once the coroutine has returned
the readings survive the process being killed at any moment (kill -9, a crash of the engine):
the WAL is replayed on the next open.  The crash test in tests/test_store_sqlite.py checks this
with SIGKILL.  NORMAL does not fsync each commit, so after a power failure or an OS crash the
last commits before the failure may be rolled back (the database is never corrupted); the engine
re-reads such intervals through its load-profile catch-up (``last_timestamp``).  Use
``?synchronous=full`` to fsync every commit and survive power loss too.

Writes: ``write_readings`` inserts straight from the array: one ``executemany`` of an upsert
over a generator that converts the array chunk by chunk (``chunk_rows`` rows at a time through
an int64 view of ``ts``), so memory stays bounded whatever the array's size, all in ONE
transaction (the call is atomic).  Reads fill numpy arrays directly from the cursor
(``numpy.fromiter``), with no list of rows in between.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import sqlite3
import time
import urllib.parse
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from meterpoll.bindings.readings import READING_DTYPE
from meterpoll.engine.store import schema
from meterpoll.engine.store.base import (
    FOLDER_COLUMNS, METER_COLUMNS, POLL_LOG_DTYPE, READING_INT_DTYPE, Event, Folder, LinkConfig,
    Meter, SchemaTooNew, Store, StoreError, as_events, as_poll_log, check_fields, check_limit, check_readings,
    dump_params, load_params, meter_list, ms_to_dt64, obis_list, to_ms,
)

__all__ = ["SQLiteStore", "parse_sqlite_url"]

_UPSERT = (
    "INSERT INTO readings (meter, obis, ts, value, unit, status) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (meter, obis, ts) DO UPDATE SET value = excluded.value, unit = excluded.unit, "
    "status = excluded.status WHERE excluded.status = 0 OR readings.status <> 0"
)

# What the read queries return: value split into (value or 0.0, value IS NULL) since SQLite
# stores NaN as NULL and numpy cannot take None into a float field.
_FETCH_DTYPE = np.dtype([("meter", np.uint32), ("obis", np.uint64), ("ts", np.int64), ("value", np.float64),
                         ("isnull", np.bool_), ("unit", np.uint8), ("status", np.uint16)])
_READ_COLS = "meter, obis, ts, ifnull(value, 0.0), value IS NULL, unit, status"
_READ_COLS_R = "r.meter, r.obis, r.ts, ifnull(r.value, 0.0), r.value IS NULL, r.unit, r.status"

_POLL_INT_DTYPE = np.dtype({
    "names": list(POLL_LOG_DTYPE.names), "formats": [np.uint32, np.int64, np.uint32, np.uint8, np.uint32],
    "offsets": [POLL_LOG_DTYPE.fields[n][1] for n in POLL_LOG_DTYPE.names], "itemsize": POLL_LOG_DTYPE.itemsize})


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """(path, options) of a ``sqlite:///path`` URL."""
    if not url.startswith("sqlite:///"):
        raise StoreError("a SQLite store URL is sqlite:///relative/path.db or sqlite:////absolute/path.db, got %r" % url)
    rest = url[len("sqlite:///"):]
    path, _, query = rest.partition("?")
    path = urllib.parse.unquote(path)
    if not path or path == ":memory:":
        raise StoreError("the SQLite store needs a file path (WAL mode and a separate reader connection), got %r" % url)
    opts = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    bad = set(opts) - {"synchronous", "chunk_rows"}
    if bad:
        raise StoreError("unknown SQLite store option(s): %s" % ", ".join(sorted(bad)))
    return path, opts


def _fetch_readings(cur: sqlite3.Cursor) -> np.ndarray:
    raw = np.fromiter(cur, dtype=_FETCH_DTYPE)
    out = np.empty(len(raw), dtype=READING_DTYPE)
    out["meter"] = raw["meter"]
    out["obis"] = raw["obis"]
    out["ts"] = raw["ts"].view("datetime64[ms]")
    out["value"] = raw["value"]
    out["value"][raw["isnull"]] = np.nan
    out["unit"] = raw["unit"]
    out["status"] = raw["status"]
    return out


def _time_clause(col: str, start: Any, end: Any, params: list) -> str:
    sql = ""
    if start is not None:
        sql += " AND %s >= ?" % col
        params.append(to_ms(start))
    if end is not None:
        sql += " AND %s < ?" % col
        params.append(to_ms(end))
    return sql


class SQLiteStore(Store):
    """See the module docstring.  Open with ``await SQLiteStore.open(url)`` (or
    :func:`meterpoll.engine.store.open_store`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path, opts = parse_sqlite_url(url)
        self.synchronous = opts.get("synchronous", "normal").upper()
        if self.synchronous not in ("NORMAL", "FULL"):
            raise StoreError("synchronous must be normal or full (both survive kill -9; full also power loss)")
        try:
            self.chunk_rows = int(opts.get("chunk_rows", "8192"))
        except ValueError:
            raise StoreError("chunk_rows must be an integer") from None
        if self.chunk_rows < 1:
            raise StoreError("chunk_rows must be >= 1")
        self._wx = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="meterpoll-sqlite-write")
        self._rx = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="meterpoll-sqlite-read")
        self._wc: sqlite3.Connection | None = None
        self._rc: sqlite3.Connection | None = None
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> "SQLiteStore":
        store = cls(url)
        try:
            await store._write(store._open_writer)
            if migrate:
                await store.migrate()
            await store._read(store._open_reader)
        except BaseException:
            await store.close()
            raise
        return store

    # -- threads --------------------------------------------------------------------------
    async def _write(self, fn: Callable, *args: Any) -> Any:
        if self._closed:
            raise StoreError("store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._wx, fn, *args)

    async def _read(self, fn: Callable, *args: Any) -> Any:
        if self._closed:
            raise StoreError("store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._rx, fn, *args)

    def _connect(self) -> sqlite3.Connection:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StoreError("directory of the SQLite store does not exist: %s" % directory)
        c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True, timeout=30.0)
        c.execute("PRAGMA busy_timeout = 30000")
        return c

    def _open_writer(self) -> None:
        c = self._connect()
        try:
            mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError("SQLite refused WAL mode for %s (got %s)" % (self.path, mode))
            c.execute("PRAGMA synchronous = %s" % self.synchronous)
            c.execute("PRAGMA foreign_keys = ON")
            c.execute("PRAGMA cache_size = -65536")       # 64 MiB page cache for the writer
            c.execute("PRAGMA temp_store = MEMORY")
        except BaseException:
            c.close()
            raise
        self._wc = c

    def _open_reader(self) -> None:
        c = self._connect()
        c.execute("PRAGMA query_only = ON")
        c.execute("PRAGMA cache_size = -32768")
        self._rc = c

    def _tx(self, body: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run body in one write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error)."""
        c = self._wc
        if c is None:
            raise StoreError("store is not open")
        c.execute("BEGIN IMMEDIATE")
        try:
            result = body(c)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        return result

    # -- schema ---------------------------------------------------------------------------
    def _version_sync(self, c: sqlite3.Connection) -> int:
        row = c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
        if row is None:
            return 0
        v = c.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        return int(v or 0)

    def _migrate_sync(self) -> int:
        c = self._wc
        c.execute(schema.SQLITE_VERSION_TABLE)
        for m in schema.MIGRATIONS:
            def apply(c: sqlite3.Connection, m: schema.Migration = m) -> None:
                current = self._version_sync(c)
                if current > schema.LATEST:
                    raise SchemaTooNew("database %s is at schema version %d, newer than this meterpoll's %d"
                                       % (self.path, current, schema.LATEST))
                if m.version <= current:
                    return
                for stmt in m.sqlite:
                    c.execute(stmt)
                c.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                          (m.version, m.name, int(time.time() * 1000)))
            self._tx(apply)
        current = self._version_sync(c)
        if current > schema.LATEST:
            raise SchemaTooNew("database %s is at schema version %d, newer than this meterpoll's %d"
                               % (self.path, current, schema.LATEST))
        return current

    async def migrate(self) -> int:
        return await self._write(self._migrate_sync)

    async def schema_version(self) -> int:
        return await self._write(lambda: self._version_sync(self._wc))

    # -- readings -------------------------------------------------------------------------
    def _rows(self, arr: np.ndarray) -> Iterator[tuple]:
        v = arr.view(READING_INT_DTYPE)
        step = self.chunk_rows
        for i in range(0, len(v), step):
            yield from v[i:i + step].tolist()

    def _write_readings_sync(self, arr: np.ndarray) -> int:
        # in key order, so the B-tree's leaf pages are visited once each, in order (2.3 -> 1.85
        # us a reading with 400,000 readings of 20,000 series per commit, measured)
        if len(arr) > 1:
            arr = arr[np.lexsort((arr["ts"], arr["obis"], arr["meter"]))]
        self._tx(lambda c: c.executemany(_UPSERT, self._rows(arr)))
        return len(arr)

    async def write_readings(self, readings: np.ndarray) -> int:
        arr = check_readings(readings)
        if len(arr) == 0:
            return 0
        return await self._write(self._write_readings_sync, arr)

    async def read_readings(self, meter: int, obis: int | Sequence[int] | None = None, start: Any = None,
                            end: Any = None, limit: int | None = None) -> np.ndarray:
        (meter,) = meter_list(meter)
        obis_codes = obis_list(obis)
        limit = check_limit(limit)
        params: list = [meter]
        sql = "SELECT %s FROM readings WHERE meter = ?" % _READ_COLS
        if obis_codes is not None:
            sql += " AND obis IN (%s)" % ",".join("?" * len(obis_codes))
            params += obis_codes
        sql += _time_clause("ts", start, end, params)
        sql += " ORDER BY obis, ts"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return await self._read(lambda: _fetch_readings(self._rc.execute(sql, params)))

    async def latest(self, meters: int | Iterable[int], obis: int | Iterable[int] | None = None) -> np.ndarray:
        ids = meter_list(meters)
        codes = obis_list(obis)
        if codes is None:
            # skip-scan: walk the distinct OBIS codes of each meter through the primary key
            sql = """
            WITH RECURSIVE m(meter) AS (SELECT value FROM json_each(?)),
            k(meter, obis) AS (
                SELECT m.meter, (SELECT min(obis) FROM readings WHERE meter = m.meter) FROM m
                UNION ALL
                SELECT k.meter, (SELECT min(obis) FROM readings WHERE meter = k.meter AND obis > k.obis)
                FROM k WHERE k.obis IS NOT NULL)
            SELECT %s FROM k JOIN readings r ON r.meter = k.meter AND r.obis = k.obis
                AND r.ts = (SELECT max(ts) FROM readings WHERE meter = k.meter AND obis = k.obis)
            WHERE k.obis IS NOT NULL ORDER BY r.meter, r.obis""" % _READ_COLS_R
            params: list = [json.dumps(ids)]
        else:
            sql = """
            WITH m(meter) AS (SELECT value FROM json_each(?)), o(obis) AS (SELECT value FROM json_each(?))
            SELECT %s FROM m CROSS JOIN o JOIN readings r ON r.meter = m.meter AND r.obis = o.obis
                AND r.ts = (SELECT max(ts) FROM readings WHERE meter = m.meter AND obis = o.obis)
            ORDER BY r.meter, r.obis""" % _READ_COLS_R
            params = [json.dumps(ids), json.dumps(codes)]
        if not ids:
            return np.empty(0, dtype=READING_DTYPE)
        return await self._read(lambda: _fetch_readings(self._rc.execute(sql, params)))

    async def last_timestamp(self, meter: int, obis: int) -> np.datetime64 | None:
        (meter,) = meter_list(meter)
        (code,) = obis_list(obis)
        v = await self._read(lambda: self._rc.execute(
            "SELECT max(ts) FROM readings WHERE meter = ? AND obis = ?", (meter, code)).fetchone()[0])
        return None if v is None else ms_to_dt64(v)

    async def count_readings(self) -> int:
        return await self._read(lambda: self._rc.execute("SELECT count(*) FROM readings").fetchone()[0])

    # -- events and poll log --------------------------------------------------------------
    async def write_events(self, events: Iterable[Event | tuple]) -> int:
        rows = as_events(events)
        if not rows:
            return 0
        await self._write(self._tx, lambda c: c.executemany(
            "INSERT INTO events (meter, ts, code, text) VALUES (?, ?, ?, ?)", rows))
        return len(rows)

    async def read_events(self, meter: int | None = None, start: Any = None, end: Any = None,
                          limit: int | None = None) -> list[Event]:
        params: list = []
        sql = "SELECT meter, ts, code, text FROM events WHERE 1 = 1"
        if meter is not None:
            sql += " AND meter = ?"
            params.append(meter_list(meter)[0])
        sql += _time_clause("ts", start, end, params) + " ORDER BY ts, meter, id"
        limit = check_limit(limit)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = await self._read(lambda: self._rc.execute(sql, params).fetchall())
        return [Event(m, ms_to_dt64(ts), code, text) for m, ts, code, text in rows]

    async def write_poll_log(self, entries: np.ndarray | Iterable[tuple]) -> int:
        arr = as_poll_log(entries)
        if len(arr) == 0:
            return 0
        rows = arr.view(_POLL_INT_DTYPE).tolist()
        await self._write(self._tx, lambda c: c.executemany(
            "INSERT INTO poll_log (meter, ts, duration_ms, outcome, bytes) VALUES (?, ?, ?, ?, ?)", rows))
        return len(rows)

    async def read_poll_log(self, meter: int | None = None, start: Any = None, end: Any = None,
                            limit: int | None = None) -> np.ndarray:
        params: list = []
        sql = "SELECT meter, ts, duration_ms, outcome, bytes FROM poll_log WHERE 1 = 1"
        if meter is not None:
            sql += " AND meter = ?"
            params.append(meter_list(meter)[0])
        sql += _time_clause("ts", start, end, params) + " ORDER BY ts, meter, id"
        limit = check_limit(limit)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return await self._read(
            lambda: np.fromiter(self._rc.execute(sql, params), dtype=_POLL_INT_DTYPE).view(POLL_LOG_DTYPE))

    # -- registry -------------------------------------------------------------------------
    def _insert(self, table: str, values: dict[str, Any]) -> int:
        cols = list(values)
        sql = "INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(cols), ", ".join("?" * len(cols)))

        def body(c: sqlite3.Connection) -> int:
            try:
                return c.execute(sql, [values[k] for k in cols]).lastrowid
            except sqlite3.IntegrityError as e:
                raise StoreError("cannot add to %s: %s" % (table, e)) from e
        return self._tx(body)

    def _update(self, table: str, key: int, values: dict[str, Any]) -> bool:
        if not values:
            return self._rc_exists_w(table, key)
        sql = "UPDATE %s SET %s WHERE id = ?" % (table, ", ".join("%s = ?" % k for k in values))

        def body(c: sqlite3.Connection) -> bool:
            try:
                return c.execute(sql, [*values.values(), key]).rowcount > 0
            except sqlite3.IntegrityError as e:
                raise StoreError("cannot update %s %d: %s" % (table, key, e)) from e
        return self._tx(body)

    def _rc_exists_w(self, table: str, key: int) -> bool:
        return self._wc.execute("SELECT 1 FROM %s WHERE id = ?" % table, (key,)).fetchone() is not None

    def _delete(self, table: str, key: int) -> bool:
        def body(c: sqlite3.Connection) -> bool:
            try:
                return c.execute("DELETE FROM %s WHERE id = ?" % table, (key,)).rowcount > 0
            except sqlite3.IntegrityError as e:
                raise StoreError("cannot delete %s %d: still in use (%s)" % (table, key, e)) from e
        return self._tx(body)

    async def add_folder(self, name: str, parent_id: int | None = None, folder_type: str = "folder") -> int:
        return await self._write(self._insert, "folders",
                                 {"name": str(name), "parent_id": parent_id, "folder_type": str(folder_type)})

    async def get_folder(self, folder_id: int) -> Folder | None:
        row = await self._read(lambda: self._rc.execute(
            "SELECT id, name, parent_id, folder_type FROM folders WHERE id = ?", (int(folder_id),)).fetchone())
        return None if row is None else Folder(*row)

    async def list_folders(self, parent_id: int | None = None, *, all: bool = False) -> list[Folder]:
        if all:
            sql, params = "SELECT id, name, parent_id, folder_type FROM folders ORDER BY id", ()
        elif parent_id is None:
            sql, params = "SELECT id, name, parent_id, folder_type FROM folders WHERE parent_id IS NULL ORDER BY id", ()
        else:
            sql, params = ("SELECT id, name, parent_id, folder_type FROM folders WHERE parent_id = ? ORDER BY id",
                           (int(parent_id),))
        rows = await self._read(lambda: self._rc.execute(sql, params).fetchall())
        return [Folder(*r) for r in rows]

    async def update_folder(self, folder_id: int, **fields: Any) -> bool:
        return await self._write(self._update, "folders", int(folder_id), check_fields(fields, FOLDER_COLUMNS))

    async def delete_folder(self, folder_id: int) -> bool:
        return await self._write(self._delete, "folders", int(folder_id))

    async def add_link(self, name: str, kind: str, target: str, params: dict[str, Any] | None = None) -> int:
        return await self._write(self._insert, "links", {"name": str(name), "kind": str(kind), "target": str(target),
                                                         "params": dump_params(params)})

    async def get_link(self, link_id: int) -> LinkConfig | None:
        row = await self._read(lambda: self._rc.execute(
            "SELECT id, name, kind, target, params FROM links WHERE id = ?", (int(link_id),)).fetchone())
        return None if row is None else LinkConfig(*row[:4], load_params(row[4]))

    async def list_links(self) -> list[LinkConfig]:
        rows = await self._read(lambda: self._rc.execute(
            "SELECT id, name, kind, target, params FROM links ORDER BY id").fetchall())
        return [LinkConfig(*r[:4], load_params(r[4])) for r in rows]

    async def delete_link(self, link_id: int) -> bool:
        return await self._write(self._delete, "links", int(link_id))

    async def add_meter(self, name: str, protocol: str, *, id: int | None = None, folder_id: int | None = None,
                        link_id: int | None = None, address: str | None = None, serial_number: str | None = None,
                        poll_interval_s: int | None = None, enabled: bool = True,
                        params: dict[str, Any] | None = None) -> int:
        values = {"name": str(name), "protocol": str(protocol), "folder_id": folder_id, "link_id": link_id,
                  "address": address, "serial_number": serial_number, "poll_interval_s": poll_interval_s,
                  "enabled": 1 if enabled else 0, "params": dump_params(params)}
        if id is not None:
            values["id"] = int(id)
        return await self._write(self._insert, "meters", values)

    async def get_meter(self, meter_id: int) -> Meter | None:
        row = await self._read(lambda: self._rc.execute(self._METER_SELECT + " WHERE id = ?",
                                                        (int(meter_id),)).fetchone())
        return None if row is None else self._meter(row)

    async def list_meters(self, folder_id: int | None = None, *, all: bool = True) -> list[Meter]:
        if folder_id is not None:
            sql, params = self._METER_SELECT + " WHERE folder_id = ? ORDER BY id", (int(folder_id),)
        elif all:
            sql, params = self._METER_SELECT + " ORDER BY id", ()
        else:
            sql, params = self._METER_SELECT + " WHERE folder_id IS NULL ORDER BY id", ()
        rows = await self._read(lambda: self._rc.execute(sql, params).fetchall())
        return [self._meter(r) for r in rows]

    async def update_meter(self, meter_id: int, **fields: Any) -> bool:
        check_fields(fields, ("name", "protocol") + METER_COLUMNS)
        if "params" in fields:
            fields["params"] = dump_params(fields["params"])
        if "enabled" in fields:
            fields["enabled"] = 1 if fields["enabled"] else 0
        return await self._write(self._update, "meters", int(meter_id), fields)

    async def delete_meter(self, meter_id: int) -> bool:
        return await self._write(self._delete, "meters", int(meter_id))

    # -- lifetime -------------------------------------------------------------------------
    def _close_writer(self) -> None:
        if self._wc is not None:
            try:
                self._wc.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            self._wc.close()
            self._wc = None

    def _close_reader(self) -> None:
        if self._rc is not None:
            self._rc.close()
            self._rc = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._rx, self._close_reader)
            await loop.run_in_executor(self._wx, self._close_writer)
        finally:
            self._rx.shutdown(wait=False)
            self._wx.shutdown(wait=False)
