"""Reading store: where polled readings, meter events, the poll log and the meter registry live.

``store = await open_store(url)`` picks the backend from the URL and migrates the schema:

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` -- the embedded default, one
  SQLite file in WAL mode (see :mod:`meterpoll.engine.store.sqlite` for threads and durability);
* ``postgresql://user@host:port/dbname`` (or ``postgres://``) -- PostgreSQL through asyncpg, binary
  COPY built by the native core, readings partitioned by month (see
  :mod:`meterpoll.engine.store.postgres`).

Every method is a coroutine; none blocks the event loop.  The interface, the duplicate rule
(a good value is never replaced by a bad one, otherwise the newer write wins) and the time
conventions are documented in :mod:`meterpoll.engine.store.base`.
"""
from __future__ import annotations

from meterpoll.engine.store.base import (
    POLL_LOG_DTYPE, Event, Folder, LinkConfig, Meter, PollOutcome, SchemaTooNew, Store, StoreError,
)
from meterpoll.engine.store.schema import LATEST as SCHEMA_VERSION

__all__ = ["open_store", "Store", "StoreError", "SchemaTooNew", "Event", "PollOutcome", "POLL_LOG_DTYPE",
           "Folder", "LinkConfig", "Meter", "SCHEMA_VERSION"]


async def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store at ``url``; with ``migrate`` (the default) apply pending migrations."""
    if not isinstance(url, str):
        raise TypeError("the store URL is a string")
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from meterpoll.engine.store.sqlite import SQLiteStore

        return await SQLiteStore.open(url, migrate=migrate)
    if scheme in ("postgresql", "postgres"):
        from meterpoll.engine.store.postgres import PostgresStore

        return await PostgresStore.open(url, migrate=migrate)
    raise StoreError("unknown store URL scheme %r: use sqlite:///path.db or postgresql://user@host:port/db" % scheme)
