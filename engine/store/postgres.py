"""The PostgreSQL store (asyncpg).

URL: ``postgresql://user[:password]@host[:port]/dbname`` (or ``postgres://``); extra query
parameters ``pool_size`` (connections, default 4) and ``chunk_rows`` (readings per COPY chunk,
default 16384) are ours, any other is handed to asyncpg / the server.

Writes: ``write_readings`` streams the array to the server as a binary COPY whose payload the
native core builds (``meterpoll.ext._pgcopy``: 64 bytes a reading, written in one nogil pass per
chunk, no Python object per row), in ONE transaction.  It first tries to COPY straight into
``readings`` (the common case: new readings); if that hits the unique key (an interval read
again, a duplicate inside the array) the savepoint is rolled back and the array, reduced to one
reading per key by the store's rule (see :mod:`.base`), is copied into a temporary table and
merged with ``INSERT ... ON CONFLICT DO UPDATE ... WHERE excluded.status = 0 OR
readings.status <> 0``.  Either way the call is atomic.

Partitions: ``readings`` is RANGE-partitioned on ``ts`` by calendar month (UTC).  Before a
write the store makes sure every month the array touches has its partition
(``readings_pYYYYMM``), creating the missing ones under an advisory lock so that concurrent
writers (and processes) never race; the set of existing partitions is cached and reloaded if a
COPY finds a month without one (e.g. after a retention job dropped it).

Reads: ``read_readings`` and ``latest`` run ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` and
the native core parses the stream straight into a READING_DTYPE array.  Query parameters of
those COPY statements are integers and timestamps formatted by this module (COPY takes no bind
parameters), never caller text.
"""
from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any, AsyncIterator, Iterable, Sequence

import numpy as np

try:
    import asyncpg
except ImportError as _e:  # pragma: no cover - asyncpg is a dependency of the PostgreSQL backend
    asyncpg = None
    _IMPORT_ERROR: Exception | None = _e
else:
    _IMPORT_ERROR = None

from meterpoll.bindings.readings import READING_DTYPE
from meterpoll.engine.store import schema
from meterpoll.engine.store.base import (
    FOLDER_COLUMNS, METER_COLUMNS, POLL_LOG_DTYPE, Event, Folder, LinkConfig, Meter, SchemaTooNew,
    Store, StoreError, as_events, as_poll_log, check_fields, check_limit, check_readings, dedupe_readings,
    dump_params, load_params, meter_list, ms_to_dt64, obis_list, to_ms,
)
from meterpoll.ext._pgcopy import COLUMNS, copy_chunks, parse_copy

__all__ = ["PostgresStore"]

_EPOCH_SHIFT_MS = 946_684_800_000          # 2000-01-01 (PostgreSQL's epoch) in ms since 1970
_LOCK_MIGRATE = 0x6D70_0001                # advisory lock keys ("mp" + n)
_LOCK_PARTITIONS = 0x6D70_0002
_STAGE = "meterpoll_readings_in"
_MERGE = (
    "INSERT INTO readings (meter, obis, ts, value, unit, status) "
    "SELECT meter, obis, ts, value, unit, status FROM %s "
    "ON CONFLICT (meter, obis, ts) DO UPDATE SET value = EXCLUDED.value, unit = EXCLUDED.unit, "
    "status = EXCLUDED.status WHERE EXCLUDED.status = 0 OR readings.status <> 0" % _STAGE
)
_COLS = ", ".join(COLUMNS)


def _ts_literal(ms: int) -> str:
    """A timestamptz SQL literal of ms since 1970 UTC (exact to the ms)."""
    return "'%s+00'::timestamptz" % np.datetime64(int(ms), "ms")


def _us(ms: int) -> tuple[int]:
    return ((int(ms) - _EPOCH_SHIFT_MS) * 1000,)


def _ms(us: tuple[int]) -> int:
    return us[0] // 1000 + _EPOCH_SHIFT_MS


def _bigint_array(values: Sequence[int]) -> str:
    return "'{%s}'::bigint[]" % ",".join(str(int(v)) for v in values)


async def _init_connection(conn: "asyncpg.Connection") -> None:
    # timestamptz as (microseconds since 2000-01-01,): exact ms in and out, no datetime objects
    await conn.set_type_codec("timestamptz", schema="pg_catalog", encoder=lambda v: v, decoder=lambda v: v,
                              format="tuple")


class PostgresStore(Store):
    """See the module docstring.  Open with ``await PostgresStore.open(url)`` (or
    :func:`meterpoll.engine.store.open_store`)."""

    def __init__(self, url: str) -> None:
        if asyncpg is None:
            raise StoreError("the PostgreSQL store needs asyncpg (pip install asyncpg): %s" % _IMPORT_ERROR)
        self.url = url
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise StoreError("a PostgreSQL store URL is postgresql://user@host:port/db, got %r" % url)
        opts = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in opts if k in ("pool_size", "chunk_rows")}
        rest = [(k, v) for k, v in opts if k not in ours]
        self.dsn = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(rest)))
        try:
            self.pool_size = int(ours.get("pool_size", "4"))
            self.chunk_rows = int(ours.get("chunk_rows", "16384"))
        except ValueError:
            raise StoreError("pool_size and chunk_rows must be integers") from None
        if self.pool_size < 1 or self.chunk_rows < 1:
            raise StoreError("pool_size and chunk_rows must be >= 1")
        self._pool: asyncpg.Pool | None = None
        self._months: set[int] | None = None
        self._partition_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> "PostgresStore":
        store = cls(url)
        try:
            store._pool = await asyncpg.create_pool(store.dsn, min_size=1, max_size=store.pool_size,
                                                    init=_init_connection)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise StoreError("cannot connect to %s: %s" % (url, e)) from e
        try:
            if migrate:
                await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    def _p(self) -> "asyncpg.Pool":
        if self._closed or self._pool is None:
            raise StoreError("store is closed")
        return self._pool

    # -- schema ---------------------------------------------------------------------------
    async def migrate(self) -> int:
        async with self._p().acquire() as c:
            for m in [None, *schema.MIGRATIONS]:
                async with c.transaction():
                    await c.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_MIGRATE)
                    await c.execute(schema.PG_VERSION_TABLE)
                    current = await c.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
                    if current > schema.LATEST:
                        raise SchemaTooNew("database is at schema version %d, newer than this meterpoll's %d"
                                           % (current, schema.LATEST))
                    if m is None or m.version <= current:
                        continue
                    for stmt in m.postgres:
                        await c.execute(stmt)
                    await c.execute("INSERT INTO schema_version (version, name) VALUES ($1, $2)", m.version, m.name)
            return await c.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")

    async def schema_version(self) -> int:
        async with self._p().acquire() as c:
            exists = await c.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
            if not exists:
                return 0
            return await c.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")

    # -- partitions -----------------------------------------------------------------------
    async def _load_months(self, c: "asyncpg.Connection") -> set[int]:
        names = await c.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'readings'::regclass")
        months = set()
        for (name,) in names:
            if len(name) == 16 and name.startswith("readings_p") and name[10:].isdigit():
                months.add((int(name[10:14]) - 1970) * 12 + int(name[14:16]) - 1)
        return months

    async def partitions(self) -> list[str]:
        """Names of the existing monthly partitions of ``readings``, oldest first."""
        async with self._p().acquire() as c:
            return [schema.pg_partition_name(m) for m in sorted(await self._load_months(c))]

    @staticmethod
    def _months_of(arr: np.ndarray) -> set[int]:
        """The months (datetime64[M] as int) whose partitions the array needs: every month from
        the oldest to the newest reading when they are at most two years apart (no pass over
        the array; a month in between without readings just gets an empty partition), else
        exactly the months present."""
        ts = arr["ts"]
        lo = int(ts.min().astype("datetime64[M]").astype(np.int64))
        hi = int(ts.max().astype("datetime64[M]").astype(np.int64))
        if hi - lo <= 24:
            return set(range(lo, hi + 1))
        return set(np.unique(ts.astype("datetime64[M]")).astype(np.int64).tolist())

    async def _ensure_partitions(self, arr: np.ndarray, reload: bool = False) -> None:
        months = self._months_of(arr)
        if not reload and self._months is not None and months <= self._months:
            return
        async with self._partition_lock:
            async with self._p().acquire() as c:
                if reload or self._months is None:
                    self._months = await self._load_months(c)
                missing = sorted(months - self._months)
                if missing:
                    async with c.transaction():
                        await c.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_PARTITIONS)
                        for m in missing:
                            await c.execute(schema.pg_partition_ddl(m))
                    self._months.update(missing)

    # -- readings -------------------------------------------------------------------------
    async def _stream(self, arr: np.ndarray) -> AsyncIterator[bytes]:
        for chunk in copy_chunks(arr, self.chunk_rows):
            yield chunk

    async def _merge(self, c: "asyncpg.Connection", arr: np.ndarray) -> None:
        one = dedupe_readings(arr)
        await c.execute(
            "CREATE TEMP TABLE IF NOT EXISTS %s (meter bigint, obis bigint, ts timestamptz, value float8, "
            "unit smallint, status integer) ON COMMIT DELETE ROWS" % _STAGE)
        await c.execute("TRUNCATE %s" % _STAGE)
        await c.copy_to_table(_STAGE, source=self._stream(one), columns=list(COLUMNS), format="binary")
        await c.execute(_MERGE)

    async def write_readings(self, readings: np.ndarray) -> int:
        arr = check_readings(readings)
        if len(arr) == 0:
            return 0
        await self._ensure_partitions(arr)
        for attempt in (0, 1):
            try:
                async with self._p().acquire() as c:
                    async with c.transaction():
                        try:
                            async with c.transaction():  # savepoint: the fast path may hit the key
                                await c.copy_to_table("readings", source=self._stream(arr), columns=list(COLUMNS),
                                                      format="binary")
                        except asyncpg.UniqueViolationError:
                            await self._merge(c, arr)
                return len(arr)
            except asyncpg.CheckViolationError as e:
                # "no partition of relation readings found for row": a partition vanished
                if attempt or "no partition" not in str(e):
                    raise
                await self._ensure_partitions(arr, reload=True)
        raise AssertionError("unreachable")

    async def _copy_out(self, query: str) -> np.ndarray:
        parts: list[bytes] = []

        async def sink(chunk: bytes) -> None:
            parts.append(chunk)

        async with self._p().acquire() as c:
            await c.copy_from_query(query, output=sink, format="binary")
        return parse_copy(b"".join(parts))

    def _time_sql(self, start: Any, end: Any, col: str = "ts") -> str:
        sql = ""
        if start is not None:
            sql += " AND %s >= %s" % (col, _ts_literal(to_ms(start)))
        if end is not None:
            sql += " AND %s < %s" % (col, _ts_literal(to_ms(end)))
        return sql

    async def read_readings(self, meter: int, obis: int | Sequence[int] | None = None, start: Any = None,
                            end: Any = None, limit: int | None = None) -> np.ndarray:
        (meter,) = meter_list(meter)
        codes = obis_list(obis)
        limit = check_limit(limit)
        if limit == 0 or codes == []:
            return np.empty(0, dtype=READING_DTYPE)
        sql = "SELECT %s FROM readings WHERE meter = %d" % (_COLS, meter)
        if codes is not None:
            sql += " AND obis = ANY(%s)" % _bigint_array(codes)
        sql += self._time_sql(start, end) + " ORDER BY obis, ts"
        if limit is not None:
            sql += " LIMIT %d" % limit
        return await self._copy_out(sql)

    async def latest(self, meters: int | Iterable[int], obis: int | Iterable[int] | None = None) -> np.ndarray:
        ids = meter_list(meters)
        codes = obis_list(obis)
        if not ids or codes == []:
            return np.empty(0, dtype=READING_DTYPE)
        pick = ("CROSS JOIN LATERAL (SELECT %s FROM readings r WHERE r.meter = k.meter AND r.obis = k.obis "
                "ORDER BY r.ts DESC LIMIT 1) l" % ", ".join("r." + c for c in COLUMNS))
        cols = ", ".join("l." + c for c in COLUMNS)
        if codes is None:
            # skip-scan through the primary key: the distinct OBIS codes of each meter
            sql = ("WITH RECURSIVE k(meter, obis) AS ("
                   " SELECT m.meter, (SELECT min(obis) FROM readings WHERE meter = m.meter)"
                   " FROM unnest(%s) AS m(meter)"
                   " UNION ALL"
                   " SELECT k.meter, (SELECT min(obis) FROM readings WHERE meter = k.meter AND obis > k.obis)"
                   " FROM k WHERE k.obis IS NOT NULL)"
                   " SELECT %s FROM k %s WHERE k.obis IS NOT NULL ORDER BY l.meter, l.obis"
                   % (_bigint_array(ids), cols, pick))
        else:
            sql = ("SELECT %s FROM unnest(%s) AS m(meter) CROSS JOIN unnest(%s) AS o(obis)"
                   " CROSS JOIN LATERAL (SELECT m.meter, o.obis) k %s ORDER BY l.meter, l.obis"
                   % (cols, _bigint_array(ids), _bigint_array(codes), pick))
        return await self._copy_out(sql)

    async def last_timestamp(self, meter: int, obis: int) -> np.datetime64 | None:
        (meter,) = meter_list(meter)
        (code,) = obis_list(obis)
        async with self._p().acquire() as c:
            v = await c.fetchval("SELECT max(ts) FROM readings WHERE meter = $1 AND obis = $2", meter, code)
        return None if v is None else ms_to_dt64(_ms(v))

    async def count_readings(self) -> int:
        async with self._p().acquire() as c:
            return await c.fetchval("SELECT count(*) FROM readings")

    # -- events and poll log --------------------------------------------------------------
    async def write_events(self, events: Iterable[Event | tuple]) -> int:
        rows = [(m, _us(ts), code, text) for m, ts, code, text in as_events(events)]
        if not rows:
            return 0
        async with self._p().acquire() as c:
            async with c.transaction():
                await c.copy_records_to_table("events", records=rows, columns=["meter", "ts", "code", "text"])
        return len(rows)

    def _filter(self, meter: int | None, start: Any, end: Any, limit: int | None, order: str) -> tuple[str, list]:
        sql, params = " WHERE true", []
        if meter is not None:
            params.append(meter_list(meter)[0])
            sql += " AND meter = $%d" % len(params)
        if start is not None:
            params.append(_us(to_ms(start)))
            sql += " AND ts >= $%d" % len(params)
        if end is not None:
            params.append(_us(to_ms(end)))
            sql += " AND ts < $%d" % len(params)
        sql += " ORDER BY " + order
        limit = check_limit(limit)
        if limit is not None:
            params.append(limit)
            sql += " LIMIT $%d" % len(params)
        return sql, params

    async def read_events(self, meter: int | None = None, start: Any = None, end: Any = None,
                          limit: int | None = None) -> list[Event]:
        where, params = self._filter(meter, start, end, limit, "ts, meter, id")
        async with self._p().acquire() as c:
            rows = await c.fetch("SELECT meter, ts, code, text FROM events" + where, *params)
        return [Event(r[0], ms_to_dt64(_ms(r[1])), r[2], r[3]) for r in rows]

    async def write_poll_log(self, entries: np.ndarray | Iterable[tuple]) -> int:
        arr = as_poll_log(entries)
        if len(arr) == 0:
            return 0
        ts = arr["ts"].view(np.int64)
        rows = [(int(m), ((int(t) - _EPOCH_SHIFT_MS) * 1000,), int(d), int(o), int(b))
                for m, t, d, o, b in zip(arr["meter"].tolist(), ts.tolist(), arr["duration_ms"].tolist(),
                                         arr["outcome"].tolist(), arr["bytes"].tolist())]
        async with self._p().acquire() as c:
            async with c.transaction():
                await c.copy_records_to_table("poll_log", records=rows,
                                              columns=["meter", "ts", "duration_ms", "outcome", "bytes"])
        return len(rows)

    async def read_poll_log(self, meter: int | None = None, start: Any = None, end: Any = None,
                            limit: int | None = None) -> np.ndarray:
        where, params = self._filter(meter, start, end, limit, "ts, meter, id")
        async with self._p().acquire() as c:
            rows = await c.fetch("SELECT meter, ts, duration_ms, outcome, bytes FROM poll_log" + where, *params)
        out = np.zeros(len(rows), dtype=POLL_LOG_DTYPE)
        for i, r in enumerate(rows):
            out[i] = (r[0], ms_to_dt64(_ms(r[1])), r[2], r[3], r[4])
        return out

    # -- registry -------------------------------------------------------------------------
    async def _insert(self, table: str, values: dict[str, Any]) -> int:
        cols = list(values)
        sql = "INSERT INTO %s (%s) VALUES (%s) RETURNING id" % (
            table, ", ".join(cols), ", ".join("$%d" % (i + 1) for i in range(len(cols))))
        try:
            async with self._p().acquire() as c:
                async with c.transaction():
                    new_id = await c.fetchval(sql, *values.values())
                    if "id" in values:  # keep the identity sequence ahead of explicit ids
                        await c.execute("SELECT setval(pg_get_serial_sequence('%s', 'id'), "
                                        "greatest((SELECT max(id) FROM %s), 1))" % (table, table))
                    return new_id
        except asyncpg.IntegrityConstraintViolationError as e:
            raise StoreError("cannot add to %s: %s" % (table, e)) from e

    async def _update(self, table: str, key: int, values: dict[str, Any]) -> bool:
        async with self._p().acquire() as c:
            if not values:
                return await c.fetchval("SELECT count(*) FROM %s WHERE id = $1" % table, key) > 0
            sql = "UPDATE %s SET %s WHERE id = $%d" % (
                table, ", ".join("%s = $%d" % (k, i + 1) for i, k in enumerate(values)), len(values) + 1)
            try:
                status = await c.execute(sql, *values.values(), key)
            except asyncpg.IntegrityConstraintViolationError as e:
                raise StoreError("cannot update %s %d: %s" % (table, key, e)) from e
        return status != "UPDATE 0"

    async def _delete(self, table: str, key: int) -> bool:
        async with self._p().acquire() as c:
            try:
                status = await c.execute("DELETE FROM %s WHERE id = $1" % table, key)
            except asyncpg.IntegrityConstraintViolationError as e:
                raise StoreError("cannot delete %s %d: still in use (%s)" % (table, key, e)) from e
        return status != "DELETE 0"

    async def add_folder(self, name: str, parent_id: int | None = None, folder_type: str = "folder") -> int:
        return await self._insert("folders", {"name": str(name), "parent_id": parent_id,
                                              "folder_type": str(folder_type)})

    async def get_folder(self, folder_id: int) -> Folder | None:
        async with self._p().acquire() as c:
            row = await c.fetchrow("SELECT id, name, parent_id, folder_type FROM folders WHERE id = $1",
                                   int(folder_id))
        return None if row is None else Folder(*row)

    async def list_folders(self, parent_id: int | None = None, *, all: bool = False) -> list[Folder]:
        base = "SELECT id, name, parent_id, folder_type FROM folders"
        async with self._p().acquire() as c:
            if all:
                rows = await c.fetch(base + " ORDER BY id")
            elif parent_id is None:
                rows = await c.fetch(base + " WHERE parent_id IS NULL ORDER BY id")
            else:
                rows = await c.fetch(base + " WHERE parent_id = $1 ORDER BY id", int(parent_id))
        return [Folder(*r) for r in rows]

    async def update_folder(self, folder_id: int, **fields: Any) -> bool:
        return await self._update("folders", int(folder_id), check_fields(fields, FOLDER_COLUMNS))

    async def delete_folder(self, folder_id: int) -> bool:
        return await self._delete("folders", int(folder_id))

    async def add_link(self, name: str, kind: str, target: str, params: dict[str, Any] | None = None) -> int:
        return await self._insert("links", {"name": str(name), "kind": str(kind), "target": str(target),
                                            "params": dump_params(params)})

    async def get_link(self, link_id: int) -> LinkConfig | None:
        async with self._p().acquire() as c:
            row = await c.fetchrow("SELECT id, name, kind, target, params FROM links WHERE id = $1", int(link_id))
        return None if row is None else LinkConfig(*row[:4], load_params(row[4]))

    async def list_links(self) -> list[LinkConfig]:
        async with self._p().acquire() as c:
            rows = await c.fetch("SELECT id, name, kind, target, params FROM links ORDER BY id")
        return [LinkConfig(*r[:4], load_params(r[4])) for r in rows]

    async def delete_link(self, link_id: int) -> bool:
        return await self._delete("links", int(link_id))

    async def add_meter(self, name: str, protocol: str, *, id: int | None = None, folder_id: int | None = None,
                        link_id: int | None = None, address: str | None = None, serial_number: str | None = None,
                        poll_interval_s: int | None = None, enabled: bool = True,
                        params: dict[str, Any] | None = None) -> int:
        values = {"name": str(name), "protocol": str(protocol), "folder_id": folder_id, "link_id": link_id,
                  "address": address, "serial_number": serial_number, "poll_interval_s": poll_interval_s,
                  "enabled": bool(enabled), "params": dump_params(params)}
        if id is not None:
            values["id"] = int(id)
        return await self._insert("meters", values)

    async def get_meter(self, meter_id: int) -> Meter | None:
        async with self._p().acquire() as c:
            row = await c.fetchrow(self._METER_SELECT + " WHERE id = $1", int(meter_id))
        return None if row is None else self._meter(row)

    async def list_meters(self, folder_id: int | None = None, *, all: bool = True) -> list[Meter]:
        async with self._p().acquire() as c:
            if folder_id is not None:
                rows = await c.fetch(self._METER_SELECT + " WHERE folder_id = $1 ORDER BY id", int(folder_id))
            elif all:
                rows = await c.fetch(self._METER_SELECT + " ORDER BY id")
            else:
                rows = await c.fetch(self._METER_SELECT + " WHERE folder_id IS NULL ORDER BY id")
        return [self._meter(r) for r in rows]

    async def update_meter(self, meter_id: int, **fields: Any) -> bool:
        check_fields(fields, ("name", "protocol") + METER_COLUMNS)
        if "params" in fields:
            fields["params"] = dump_params(fields["params"])
        if "enabled" in fields:
            fields["enabled"] = bool(fields["enabled"])
        return await self._update("meters", int(meter_id), fields)

    async def delete_meter(self, meter_id: int) -> bool:
        return await self._delete("meters", int(meter_id))

    # -- lifetime -------------------------------------------------------------------------
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            await self._pool.close()
