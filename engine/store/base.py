"""The store interface shared by the SQLite and PostgreSQL backends, and the record types.

Every method is a coroutine meant for the engine's asyncio/uvloop loop; no backend blocks the
loop on storage (SQLite work runs on the backend's own worker threads, PostgreSQL goes through
asyncpg).

Readings
--------
``write_readings(arr)`` stores a ``READING_DTYPE`` array in ONE transaction (all or nothing) and
returns ``len(arr)``.  The key of a reading is (meter, obis, ts); a key is stored once.  When a
write brings a key that is already stored (a re-read load-profile interval, a retried poll) the
rule is **"a good value is never replaced by a bad one; otherwise the newer write wins"**:

* the new reading replaces value, unit and status of the stored one, unless the stored reading
  has status ``Quality.OK`` (0) and the new one has not;
* within one array, readings with the same key are applied in array order under the same rule.

So a TIMEOUT placeholder is replaced by the real value when the interval is read again, a
corrected value replaces the old one, and a later failed re-read never destroys a good value.

Timestamps are milliseconds UTC (``datetime64[ms]``) and must lie in 0001-01-01 ..
9999-12-31T23:59:59.999; ``obis`` must fit 48 bits.  A value of NaN is stored and read back as
NaN (SQLite keeps it as NULL, PostgreSQL as float8 NaN); +/-inf are kept.

Time arguments (``start``, ``end``, ``ts``) accept ``numpy.datetime64``, an aware
``datetime.datetime`` or an int of milliseconds since 1970-01-01 UTC.  Ranges are half-open:
``start <= ts < end``.
"""
from __future__ import annotations

import abc
import dataclasses
import datetime as _dt
import enum
import json
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np

from meterpoll.bindings.errors import MeterpollError
from meterpoll.bindings.readings import READING_DTYPE
from meterpoll.ext._pgcopy import TS_MAX_MS, TS_MIN_MS

__all__ = [
    "Store", "StoreError", "SchemaTooNew", "Event", "PollOutcome", "POLL_LOG_DTYPE", "Folder", "Meter",
    "LinkConfig", "to_ms", "check_readings", "dedupe_readings", "READING_INT_DTYPE", "TS_MIN_MS", "TS_MAX_MS",
]

OBIS_LIMIT = 1 << 48
NAT = np.iinfo(np.int64).min


class StoreError(MeterpollError):
    """A storage operation failed (bad URL, unusable database, refused data)."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer meterpoll than this one."""


class PollOutcome(enum.IntEnum):
    """How one poll of one meter ended (``poll_log.outcome``)."""

    OK = 0
    TIMEOUT = 1          # the meter did not answer in time
    NO_CONNECTION = 2    # the link could not be opened (TCP connect, serial port)
    PROTOCOL_ERROR = 3   # answers came, but a frame was bad (checksum, framing, exception)
    PARTIAL = 4          # some requests answered, some not
    CANCELLED = 5        # the poll was stopped (shutdown, priority pre-emption)


#: One row of the poll log: meter, start time, duration, :class:`PollOutcome`, bytes exchanged.
POLL_LOG_DTYPE = np.dtype(
    [("meter", np.uint32), ("ts", "datetime64[ms]"), ("duration_ms", np.uint32),
     ("outcome", np.uint8), ("bytes", np.uint32)], align=True)

#: ``READING_DTYPE`` with ``ts`` as plain int64 ms (same layout: a view, not a copy).
READING_INT_DTYPE = np.dtype({
    "names": list(READING_DTYPE.names),
    "formats": [np.uint32, np.uint64, np.int64, np.float64, np.uint8, np.uint16],
    "offsets": [READING_DTYPE.fields[n][1] for n in READING_DTYPE.names],
    "itemsize": READING_DTYPE.itemsize,
})


class Event(NamedTuple):
    """A meter event (alarm, tamper, power failure, clock set...): ``code`` is the meter's or
    the protocol's event number, ``text`` a human-readable description."""

    meter: int
    ts: np.datetime64
    code: int
    text: str


@dataclasses.dataclass
class Folder:
    """A node of the registry tree (a site, a building, a customer...)."""

    id: int
    name: str
    parent_id: int | None = None
    folder_type: str = "folder"


@dataclasses.dataclass
class LinkConfig:
    """A physical channel: ``kind`` "tcp" (``target`` "host:port") or "serial" (``target`` a
    device path); ``params`` holds the rest (baud rate, parity, deadlines, pause) as JSON."""

    id: int
    name: str
    kind: str
    target: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Meter:
    """A meter in the registry.  ``params`` holds every poll-server field as JSON; the ones
    the engine uses most are columns of their own."""

    id: int
    name: str
    protocol: str
    folder_id: int | None = None
    link_id: int | None = None
    address: str | None = None          # bus address: Modbus unit id, M-Bus address, DLMS SAP...
    serial_number: str | None = None
    poll_interval_s: int | None = None
    enabled: bool = True
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


METER_COLUMNS = ("folder_id", "link_id", "address", "serial_number", "poll_interval_s", "enabled", "params")
FOLDER_COLUMNS = ("name", "parent_id", "folder_type")
LINK_COLUMNS = ("name", "kind", "target", "params")

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def to_ms(t: Any) -> int:
    """Milliseconds since 1970-01-01 UTC from a ``datetime64``, an aware ``datetime`` or an int
    of ms.  Naive datetimes, NaT and times outside the storable range raise ValueError."""
    if isinstance(t, (bool, np.bool_)):
        raise TypeError("a time is a datetime64, an aware datetime or int ms, not bool")
    if isinstance(t, (int, np.integer)):
        ms = int(t)
    elif isinstance(t, np.datetime64):
        if np.isnat(t):
            raise ValueError("NaT is not a time")
        ms = int(t.astype("datetime64[ms]").astype(np.int64))
    elif isinstance(t, _dt.datetime):
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError("naive datetime %s: give a timezone (meterpoll stores UTC)" % t)
        delta = t - _EPOCH
        ms = (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
    else:
        raise TypeError("a time is a datetime64, an aware datetime or int ms, got %s" % type(t).__name__)
    if not TS_MIN_MS <= ms <= TS_MAX_MS:
        raise ValueError("time %d ms is outside 0001-01-01..9999-12-31" % ms)
    return ms


def ms_to_dt64(ms: int) -> np.datetime64:
    return np.datetime64(int(ms), "ms")


def check_readings(readings: Any) -> np.ndarray:
    """The readings as a 1-D C-contiguous ``READING_DTYPE`` array, or TypeError/ValueError
    naming the first reading that cannot be stored."""
    if not isinstance(readings, np.ndarray) or readings.dtype != READING_DTYPE:
        raise TypeError("write_readings takes a numpy READING_DTYPE array, got %r"
                        % (getattr(readings, "dtype", type(readings).__name__),))
    if readings.ndim != 1:
        raise ValueError("readings must be 1-D, got shape %r" % (readings.shape,))
    arr = np.ascontiguousarray(readings)
    if len(arr):
        ts = arr["ts"].view(np.int64)
        if ts.min() < TS_MIN_MS or ts.max() > TS_MAX_MS:
            bad = int(np.flatnonzero((ts < TS_MIN_MS) | (ts > TS_MAX_MS))[0])
            raise ValueError("reading %d: ts %s is outside the storable range 0001-01-01..9999-12-31"
                             % (bad, arr["ts"][bad]))
        if int(arr["obis"].max()) >= OBIS_LIMIT:
            bad = int(np.flatnonzero(arr["obis"] >= OBIS_LIMIT)[0])
            raise ValueError("reading %d: obis 0x%x does not fit the 48 bits of a packed OBIS code"
                             % (bad, int(arr["obis"][bad])))
    return arr


def dedupe_readings(arr: np.ndarray) -> np.ndarray:
    """One reading per (meter, obis, ts): the one the store's rule keeps when the array is
    applied in order (the last reading with status OK if there is one, else the last one).
    The result is sorted by (meter, obis, ts)."""
    if len(arr) < 2:
        return arr
    idx = np.arange(len(arr))
    good = arr["status"] == 0
    order = np.lexsort((idx, good, arr["ts"].view(np.int64), arr["obis"], arr["meter"]))
    s = arr[order]
    last = np.ones(len(s), dtype=bool)
    last[:-1] = ((s["meter"][1:] != s["meter"][:-1]) | (s["obis"][1:] != s["obis"][:-1])
                 | (s["ts"][1:] != s["ts"][:-1]))
    return s[last]


def as_poll_log(entries: Any) -> np.ndarray:
    """A ``POLL_LOG_DTYPE`` array from such an array or from (meter, ts, duration_ms, outcome,
    bytes) tuples."""
    if isinstance(entries, np.ndarray):
        if entries.dtype != POLL_LOG_DTYPE:
            raise TypeError("poll log entries must have POLL_LOG_DTYPE, got %r" % (entries.dtype,))
        arr = np.ascontiguousarray(entries.reshape(-1))
    else:
        rows = list(entries)
        arr = np.zeros(len(rows), dtype=POLL_LOG_DTYPE)
        for i, row in enumerate(rows):
            meter, ts, duration_ms, outcome, nbytes = row
            arr[i] = (int(meter), ms_to_dt64(to_ms(ts)), int(duration_ms), int(PollOutcome(outcome)), int(nbytes))
    if len(arr):
        ts = arr["ts"].view(np.int64)
        if ts.min() < TS_MIN_MS or ts.max() > TS_MAX_MS:
            raise ValueError("a poll log ts is NaT or outside 0001-01-01..9999-12-31")
    return arr


def as_events(events: Iterable[Any]) -> list[tuple[int, int, int, str]]:
    """(meter, ts ms, code, text) rows from :class:`Event` or plain 4-tuples."""
    out = []
    for e in events:
        meter, ts, code, text = e
        meter = int(meter)
        if not 0 <= meter <= 0xFFFFFFFF:
            raise ValueError("meter id %d is not a uint32" % meter)
        out.append((meter, to_ms(ts), int(code), str(text)))
    return out


def meter_list(meters: int | Iterable[int]) -> list[int]:
    if isinstance(meters, (int, np.integer)):
        meters = [meters]
    out = sorted({int(m) for m in meters})
    for m in out:
        if not 0 <= m <= 0xFFFFFFFF:
            raise ValueError("meter id %d is not a uint32" % m)
    return out


def obis_list(obis: int | Iterable[int] | None) -> list[int] | None:
    if obis is None:
        return None
    if isinstance(obis, (int, np.integer)):
        obis = [obis]
    out = sorted({int(o) for o in obis})
    for o in out:
        if not 0 <= o < OBIS_LIMIT:
            raise ValueError("obis 0x%x is not a 48-bit packed OBIS code" % o)
    return out


def check_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    limit = int(limit)
    if limit < 0:
        raise ValueError("limit must be >= 0")
    return limit


def dump_params(params: dict[str, Any] | None) -> str:
    return json.dumps(params or {}, sort_keys=True, separators=(",", ":"))


def load_params(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


class Store(abc.ABC):
    """A reading store.  Open one with :func:`meterpoll.engine.store.open_store`; use it as an
    async context manager or call :meth:`close`."""

    url: str

    #: the registry's meter columns, in the order ``_meter`` reads them (same SQL in every backend)
    _METER_SELECT = ("SELECT id, name, protocol, folder_id, link_id, address, serial_number, poll_interval_s, "
                     "enabled, params FROM meters")

    @staticmethod
    def _meter(row: Any) -> Meter:
        return Meter(*row[:8], enabled=bool(row[8]), params=load_params(row[9]))

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- schema ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def migrate(self) -> int:
        """Apply the pending migrations (idempotent); returns the schema version."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The version recorded in ``schema_version`` (0 for an empty database)."""

    # -- readings -------------------------------------------------------------------------
    @abc.abstractmethod
    async def write_readings(self, readings: np.ndarray) -> int:
        """Store a READING_DTYPE array atomically; returns ``len(readings)``."""

    @abc.abstractmethod
    async def read_readings(self, meter: int, obis: int | Sequence[int] | None = None, start: Any = None,
                            end: Any = None, limit: int | None = None) -> np.ndarray:
        """One meter's readings with ``start <= ts < end`` (either bound optional), of one or
        several OBIS codes (None: all), ordered by (obis, ts), at most ``limit`` of them."""

    @abc.abstractmethod
    async def latest(self, meters: int | Iterable[int], obis: int | Iterable[int] | None = None) -> np.ndarray:
        """The newest reading of every (meter, obis) of the given meters (and OBIS codes),
        ordered by (meter, obis); pairs without readings are absent."""

    @abc.abstractmethod
    async def last_timestamp(self, meter: int, obis: int) -> np.datetime64 | None:
        """The newest ts stored for (meter, obis), or None: where load-profile catch-up
        resumes after a restart."""

    @abc.abstractmethod
    async def count_readings(self) -> int:
        """How many readings are stored (all meters)."""

    # -- events and poll log --------------------------------------------------------------
    @abc.abstractmethod
    async def write_events(self, events: Iterable[Event | tuple]) -> int:
        """Store (meter, ts, code, text) events in one transaction; returns how many."""

    @abc.abstractmethod
    async def read_events(self, meter: int | None = None, start: Any = None, end: Any = None,
                          limit: int | None = None) -> list[Event]:
        """Events (of one meter, or all) ordered by (ts, meter, insertion)."""

    @abc.abstractmethod
    async def write_poll_log(self, entries: np.ndarray | Iterable[tuple]) -> int:
        """Store poll-log rows (POLL_LOG_DTYPE array or tuples); returns how many."""

    @abc.abstractmethod
    async def read_poll_log(self, meter: int | None = None, start: Any = None, end: Any = None,
                            limit: int | None = None) -> np.ndarray:
        """Poll-log rows as a POLL_LOG_DTYPE array ordered by (ts, meter)."""

    # -- registry -------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_folder(self, name: str, parent_id: int | None = None, folder_type: str = "folder") -> int: ...

    @abc.abstractmethod
    async def get_folder(self, folder_id: int) -> Folder | None: ...

    @abc.abstractmethod
    async def list_folders(self, parent_id: int | None = None, *, all: bool = False) -> list[Folder]:
        """The children of ``parent_id`` (None: the top level), or every folder with all=True."""

    @abc.abstractmethod
    async def update_folder(self, folder_id: int, **fields: Any) -> bool: ...

    @abc.abstractmethod
    async def delete_folder(self, folder_id: int) -> bool:
        """Delete an empty folder; a folder with sub-folders or meters raises StoreError."""

    @abc.abstractmethod
    async def add_link(self, name: str, kind: str, target: str, params: dict[str, Any] | None = None) -> int: ...

    @abc.abstractmethod
    async def get_link(self, link_id: int) -> LinkConfig | None: ...

    @abc.abstractmethod
    async def list_links(self) -> list[LinkConfig]: ...

    @abc.abstractmethod
    async def delete_link(self, link_id: int) -> bool: ...

    @abc.abstractmethod
    async def add_meter(self, name: str, protocol: str, *, id: int | None = None, folder_id: int | None = None,
                        link_id: int | None = None, address: str | None = None, serial_number: str | None = None,
                        poll_interval_s: int | None = None, enabled: bool = True,
                        params: dict[str, Any] | None = None) -> int:
        """Register a meter; returns its id (the ``meter`` of its readings, a uint32)."""

    @abc.abstractmethod
    async def get_meter(self, meter_id: int) -> Meter | None: ...

    @abc.abstractmethod
    async def list_meters(self, folder_id: int | None = None, *, all: bool = True) -> list[Meter]:
        """Every meter (all=True, the default) or the meters directly in ``folder_id``."""

    @abc.abstractmethod
    async def update_meter(self, meter_id: int, **fields: Any) -> bool:
        """Change some of name, protocol, folder_id, link_id, address, serial_number,
        poll_interval_s, enabled, params; returns False if there is no such meter."""

    @abc.abstractmethod
    async def delete_meter(self, meter_id: int) -> bool:
        """Remove a meter from the registry (its readings, events and poll log stay)."""

    # -- lifetime -------------------------------------------------------------------------
    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending work and release connections and threads.  Idempotent."""


def check_fields(fields: dict[str, Any], allowed: Sequence[str]) -> dict[str, Any]:
    bad = set(fields) - set(allowed)
    if bad:
        raise TypeError("unknown field(s): %s" % ", ".join(sorted(bad)))
    return fields
