"""The embeddable polling engine.

    async with Engine(store=store, drivers={"modbus": ModbusDriver()}) as engine:
        mid = engine.add_meter(MeterConfig(...))
        readings = await engine.poll_now(mid)
        async for batch in engine.subscribe(): ...

Meters sharing an endpoint (a TCP-to-RS-485 gateway's ip:port, or a serial port) share one
:class:`~meterpoll.engine.link.Link`, which serialises them; different links run concurrently
up to ``max_concurrency``.  The scheduler keeps a heap of next poll times (calendar slots with a
per-meter jitter).  Answers are gathered per protocol and decoded every ``tick`` seconds in one
native call per protocol; readings are committed to the store (off the event loop) and then
published to subscribers.  A poll that fails records readings of quality TIMEOUT /
PROTOCOL_EXCEPTION / CHECKSUM with NaN values, never zeros, plus a poll-log entry.
"""
from __future__ import annotations

import asyncio
import collections
import datetime as dt
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import numpy as np

from meterpoll.bindings.errors import ChecksumError
from meterpoll.bindings.readings import READING_DTYPE, FrameStatus, Quality
from meterpoll.engine.breaker import CircuitBreaker
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.driver import Driver, PollResult
from meterpoll.engine.errors import LinkClosed, LinkError, LinkTimeout
from meterpoll.engine.link import Link
from meterpoll.engine.metrics import LinkMetrics
from meterpoll.engine.schedule import next_poll
from meterpoll.engine.transport import Deadlines, SerialTransport, TcpTransport

__all__ = ["Engine", "PollOutcome"]

log = logging.getLogger("meterpoll.engine")
UTC = dt.timezone.utc


@dataclass
class PollOutcome:
    """What one poll produced, as recorded in the poll log."""

    meter: int
    started: float
    duration: float
    ok: bool
    quality: int = Quality.OK
    error: str = ""
    frames: int = 0
    readings: int = 0
    frame_status: list[int] = field(default_factory=list)


def _group_by_meter(readings: np.ndarray):
    """A function meter id -> that meter's readings, after one stable sort (not one scan of the
    whole array per meter, which is quadratic in a tick with thousands of polls)."""
    order = np.argsort(readings["meter"], kind="stable")
    keys = readings["meter"][order]

    def of(mid: int) -> np.ndarray:
        lo, hi = np.searchsorted(keys, [mid, mid + 1])
        return readings[order[lo:hi]]

    return of


class _Limiter:
    """Bounded concurrency with O(1) hand-over (asyncio.Semaphore in 3.11 scans its waiters on
    every release, quadratic with thousands of meters)."""

    __slots__ = ("free", "waiters")

    def __init__(self, n: int) -> None:
        self.free = n
        self.waiters: "collections.deque[asyncio.Future]" = collections.deque()

    async def __aenter__(self) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # granted as we were cancelled: pass it on
            else:
                self.waiters.remove(fut)
            raise

    async def __aexit__(self, *exc) -> None:
        self._release()

    def _release(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes straight to the waiter
                return
        self.free += 1


@dataclass
class _Meter:
    id: int
    cfg: MeterConfig
    link: Link
    breaker: CircuitBreaker
    next_due: float = 0.0
    resumed: bool = False      # catch-up resume point taken from the store


class Engine:
    def __init__(self, *, store: Any = None, drivers: dict[str, Driver] | None = None,
                 max_concurrency: int = 512, tick: float = 0.05, schedule: bool = True,
                 breaker_threshold: int = 3, probe_interval: float = 600.0) -> None:
        self.store = store
        self.drivers: dict[str, Driver] = dict(drivers or {})
        self.max_concurrency = max_concurrency
        self.tick = tick
        self.schedule_enabled = schedule
        self.breaker_threshold = breaker_threshold
        self.probe_interval = probe_interval
        self.meters: dict[int, _Meter] = {}
        self.links: dict[tuple, Link] = {}
        self.polls: list[PollOutcome] = []         # recent poll log (bounded)
        self.poll_log_limit = 10_000
        self._ids = itertools.count(1)
        self._heap: list[tuple[float, int]] = []
        # per protocol: (meter id, result, future of poll_now or None, poll-log outcome)
        self._pending: dict[str, list[tuple[int, PollResult, asyncio.Future | None, PollOutcome]]] = {}
        self._flush_now: asyncio.Event | None = None
        self._subscribers: set[asyncio.Queue] = set()
        self._tasks: set[asyncio.Task] = set()
        self._sem: _Limiter | None = None
        self._wake: asyncio.Event | None = None
        self._running = False
        self._scheduler: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None
        self.readings_committed = 0
        self.events: list[tuple[int, float, int, str]] = []   # recent (meter, ts, code, text), bounded

    # ---- lifecycle ----
    async def __aenter__(self) -> "Engine":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._sem = _Limiter(self.max_concurrency)
        self._wake = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_loop(), name="meterpoll-flush")
        if self.schedule_enabled:
            self._scheduler = asyncio.create_task(self._schedule_loop(), name="meterpoll-schedule")

    async def stop(self, *, abandon_after: float = 5.0) -> None:
        """Stop scheduling, let in-flight polls finish for up to ``abandon_after`` seconds
        (then cancel them), decode and commit what arrived, close the links."""
        if not self._running:
            return
        self._running = False
        for t in (self._scheduler,):
            if t is not None:
                t.cancel()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=abandon_after)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush()
        for link in self.links.values():
            await link.close()
        for q in list(self._subscribers):
            q.put_nowait(None)

    # ---- registry ----
    def add_meter(self, cfg: MeterConfig, *, meter_id: int | None = None) -> int:
        """Register a meter; returns its id.  Pass ``meter_id`` (e.g. the store registry's id) so
        readings keep the same meter id across restarts; otherwise a process-local number."""
        if meter_id is not None and meter_id in self.meters:
            raise ValueError("meter id %d is already registered" % meter_id)
        if cfg.protocol not in self.drivers:
            raise ValueError("protocol: no driver for %r (have: %s)" % (cfg.protocol, ", ".join(sorted(self.drivers)) or "none"))
        key: tuple
        if cfg.link == "serial":
            key = ("serial", cfg.serial.port)
        else:
            key = ("tcp", cfg.ip_address, cfg.port)
        link = self.links.get(key)
        if link is None:
            transport = (SerialTransport(cfg.serial.port, cfg.serial.baudrate, cfg.serial.bytesize,
                                         cfg.serial.parity, cfg.serial.stopbits)
                         if cfg.link == "serial" else TcpTransport(cfg.ip_address, cfg.port))
            link = self.links[key] = Link(transport, pause=cfg.pause_time / 1000.0,
                                          name="%s:%s" % key[1:] if cfg.link != "serial" else key[1])
        else:
            link.pause = max(link.pause, cfg.pause_time / 1000.0)
        if meter_id is None:
            mid = next(self._ids)
            while mid in self.meters:
                mid = next(self._ids)
        else:
            mid = int(meter_id)
        m = _Meter(mid, cfg, link, CircuitBreaker(self.breaker_threshold, self.probe_interval))
        self.meters[mid] = m
        if self.schedule_enabled:
            self._push(m, time.time())
        return mid

    def remove_meter(self, meter_id: int) -> None:
        self.meters.pop(meter_id, None)  # its heap entry is skipped when it comes up

    def _push(self, m: _Meter, now: float) -> None:
        due = next_poll(m.cfg, dt.datetime.fromtimestamp(now, UTC), key=str(m.id)).timestamp()
        m.next_due = due
        heapq.heappush(self._heap, (due, m.id))
        if self._wake is not None:
            self._wake.set()

    # ---- polling ----
    async def poll_now(self, meter_id: int) -> np.ndarray:
        """Poll one meter now on the link's priority lane; returns its decoded readings once
        they are committed (failures come back as readings with a non-OK quality)."""
        m = self.meters.get(meter_id)
        if m is None:
            raise KeyError("no meter %r" % meter_id)
        fut = asyncio.get_running_loop().create_future()
        await self._poll(m, priority=True, done=fut)
        return await fut

    async def raw_exchange(self, meter_id: int, request: bytes, *, deadlines: Deadlines | None = None) -> bytes:
        """Send a raw command frame on the meter's link (bus lock respected, priority lane) and
        return the raw answer, framed by the meter's protocol."""
        m = self.meters.get(meter_id)
        if m is None:
            raise KeyError("no meter %r" % meter_id)
        drv = self.drivers[m.cfg.protocol]
        async with m.link.lease(meter_id, priority=True) as lease:
            return await lease.exchange(request, drv.complete, deadlines or self._deadlines(m.cfg))

    @staticmethod
    def _deadlines(cfg: MeterConfig) -> Deadlines:
        fb, ib = cfg.waiting_time / 1000.0, cfg.interval_time / 1000.0
        return Deadlines(first_byte=fb, inter_byte=ib, total=fb + max(2.0, 20 * ib), connect=max(1.0, fb))

    async def _resume(self, m: _Meter, drv: Driver) -> None:
        """Before a meter's first poll: where its load profile stands in the store."""
        m.resumed = True
        obis = drv.profile_obis(m.cfg)
        if obis is None or self.store is None:
            return
        last = await self.store.last_timestamp(m.id, obis)
        if last is not None:
            drv.resume_profile(m.cfg, last.astype("datetime64[ms]").astype(np.int64) / 1000.0)

    async def _poll(self, m: _Meter, *, priority: bool = False, done: asyncio.Future | None = None) -> None:
        drv = self.drivers[m.cfg.protocol]
        if not m.resumed:
            await self._resume(m, drv)
        started = time.time()
        t0 = time.monotonic()
        quality, error = Quality.OK, ""
        result = PollResult()
        async with self._sem:
            try:
                async with m.link.lease(m.id, priority=priority) as lease:
                    result = await drv.poll(lease, m.cfg, self._deadlines(m.cfg))
            except LinkTimeout as e:
                quality, error = Quality.TIMEOUT, str(e)
            except LinkClosed as e:
                quality, error = Quality.TIMEOUT, str(e)
            except LinkError as e:
                quality, error = Quality.PROTOCOL_EXCEPTION, str(e)
            except ChecksumError as e:  # a session answer (ACK, UA, AARE...) failed its check
                quality, error = Quality.CHECKSUM, "%s: %s" % (type(e).__name__, e)
            except (ValueError, OSError) as e:  # a driver's FrameError, a socket error
                quality, error = Quality.PROTOCOL_EXCEPTION, "%s: %s" % (type(e).__name__, e)
        ok = quality == Quality.OK
        m.breaker.record(ok, time.monotonic())
        outcome = PollOutcome(m.id, started, time.monotonic() - t0, ok, quality, error, len(result.frames))
        if not result.received_at:
            result.received_at = time.time()
        self._pending.setdefault(m.cfg.protocol, []).append((m.id, result, done, outcome))
        if done is not None or len(self._pending[m.cfg.protocol]) >= 4096:
            self._flush_now.set()

    def _spawn(self, coro) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _schedule_loop(self) -> None:
        while self._running:
            now = time.time()
            while self._heap and self._heap[0][0] <= now:
                due, mid = heapq.heappop(self._heap)
                m = self.meters.get(mid)
                if m is None or m.next_due != due:
                    continue
                self._push(m, now)
                if m.breaker.allow(time.monotonic()):
                    self._spawn(self._poll(m))
            delay = (self._heap[0][0] - time.time()) if self._heap else 3600.0
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(delay, 3600.0)))
            except asyncio.TimeoutError:
                pass

    # ---- decoding, committing, publishing ----
    async def _flush_loop(self) -> None:
        """Every ``tick`` (or at once for poll_now and full batches): decode and commit."""
        while True:
            try:
                await asyncio.wait_for(self._flush_now.wait(), timeout=self.tick)
            except asyncio.TimeoutError:
                pass
            self._flush_now.clear()
            await self._flush()

    def schedule_at(self, meter_id: int, ts: float) -> None:
        """Poll a meter at UTC time ``ts`` (then on its own schedule again)."""
        m = self.meters[meter_id]
        m.next_due = ts
        heapq.heappush(self._heap, (ts, meter_id))
        self._wake.set()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        events = [(mid, ev.ts, ev.code, ev.text) for items in pending.values()
                  for mid, res, _d, _o in items for ev in res.events]
        if events:
            if self.store is not None:
                await self.store.write_events(
                    [(m, np.datetime64(int(ts * 1000), "ms"), code, text) for m, ts, code, text in events])
            self.events.extend(events)
            del self.events[: max(0, len(self.events) - self.poll_log_limit)]
        for protocol, items in pending.items():
            readings = await self._decode(protocol, items)
            if len(readings):
                if self.store is not None:
                    await self.store.write_readings(readings)
                self.readings_committed += len(readings)
                for q in self._subscribers:
                    q.put_nowait(readings)
            by_meter = _group_by_meter(readings)
            for mid, _res, done, outcome in items:
                self.polls.append(outcome)
                if done is not None and not done.done():
                    done.set_result(by_meter(mid))
            if len(self.polls) > self.poll_log_limit:
                del self.polls[: len(self.polls) - self.poll_log_limit]

    async def _decode(self, protocol: str, items) -> np.ndarray:
        drv = self.drivers[protocol]
        frames, requests, meter_ids, received, failed = [], [], [], [], []
        for mid, res, _done, outcome in items:
            if not outcome.ok:
                failed.append((mid, outcome))
                continue
            frames.extend(res.frames)
            requests.extend(res.requests)
            meter_ids.extend([mid] * len(res.frames))
            received.extend([res.received_at] * len(res.frames))
        parts = []
        if frames:
            ids = np.asarray(meter_ids, dtype=np.uint32)
            rx = (np.asarray(received) * 1000).astype("datetime64[ms]")
            readings, status = drv.decode_batch(frames, requests, ids, rx)
            parts.append(readings)
            # per-poll frame statuses into the poll log
            by_meter: dict[int, list[int]] = {}
            for mid, st in zip(meter_ids, status["status"].tolist()):
                by_meter.setdefault(mid, []).append(st)
            for mid, _res, _done, outcome in items:
                sts = by_meter.get(mid)
                if sts:
                    outcome.frame_status = sts
                    bad = [s for s in sts if s != FrameStatus.OK]
                    if bad:
                        outcome.ok = False
                        outcome.quality = Quality.CHECKSUM if FrameStatus.CHECKSUM in bad else Quality.PROTOCOL_EXCEPTION
                        outcome.error = "frame status %s" % ",".join(FrameStatus(s).name for s in sorted(set(bad)))
        lost = []
        decoded_of = _group_by_meter(parts[0]) if parts else None
        for mid, _res, _done, outcome in items:
            if outcome.ok or not outcome.frames or mid not in self.meters:
                continue
            have = set(decoded_of(mid)["obis"].tolist()) if decoded_of else set()
            missing = [o for o in drv.expected_obis(self.meters[mid].cfg) if o not in have]
            if missing:
                lost.append((mid, outcome, missing))
        if failed:
            parts.append(self._failure_readings(drv, failed))
        if lost:
            parts.append(self._nan_readings([(mid, o, outcome.started, outcome.quality)
                                             for mid, outcome, missing in lost for o in missing]))
        out = np.concatenate(parts) if parts else np.empty(0, READING_DTYPE)
        ids, counts = np.unique(out["meter"], return_counts=True)
        count_of = dict(zip(ids.tolist(), counts.tolist()))
        for mid, _res, _done, outcome in items:
            outcome.readings = count_of.get(mid, 0)
        return out

    #: channel of a failed poll when the driver cannot say which channels it would have read:
    #: a manufacturer-specific OBIS (B = 128) meaning "meterpoll poll status"
    POLL_STATUS_OBIS = 0x0080600500FF  # 0.128.96.5.0.255

    def _failure_readings(self, drv: Driver, failed) -> np.ndarray:
        """NaN readings with the failure's quality for every channel the poll would have read
        (the driver's ``expected_obis``), so a meter that did not answer is never a zero."""
        rows = []
        for mid, outcome in failed:
            channels = drv.expected_obis(self.meters[mid].cfg) if mid in self.meters else []
            for obis in channels or [self.POLL_STATUS_OBIS]:
                rows.append((mid, obis, outcome.started, outcome.quality))
        return self._nan_readings(rows)

    @staticmethod
    def _nan_readings(rows: list[tuple[int, int, float, int]]) -> np.ndarray:
        """NaN readings from (meter, obis, UTC seconds, quality) rows."""
        arr = np.zeros(len(rows), dtype=READING_DTYPE)
        if rows:
            arr["meter"] = [r[0] for r in rows]
            arr["obis"] = [r[1] for r in rows]
            arr["ts"] = (np.asarray([r[2] for r in rows]) * 1000).astype("datetime64[ms]")
            arr["value"] = np.nan
            arr["unit"] = 255
            arr["status"] = [r[3] for r in rows]
        return arr

    async def subscribe(self) -> AsyncIterator[np.ndarray]:
        """Yields every committed batch of readings (READING_DTYPE arrays) until the engine stops."""
        q: asyncio.Queue = asyncio.Queue()
        self._subscribers.add(q)
        try:
            while True:
                batch = await q.get()
                if batch is None:
                    return
                yield batch
        finally:
            self._subscribers.discard(q)

    # ---- metrics ----
    def metrics(self) -> dict:
        total = LinkMetrics()
        per_link = {}
        for key, link in self.links.items():
            total.add(link.metrics)
            per_link[link.name] = link.metrics.as_dict()
        return {"global": total.as_dict(), "links": per_link, "meters": len(self.meters),
                "demoted": sum(m.breaker.demoted for m in self.meters.values()),
                "readings_committed": self.readings_committed}
