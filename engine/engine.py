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
from meterpoll.bindings.frames import FrameBatch
from meterpoll.bindings.readings import READING_DTYPE, FrameStatus, Quality
from meterpoll.bindings.wire import ExchangeStatus, Round
from meterpoll.engine.breaker import CircuitBreaker
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.driver import Driver, FastPlan, PollResult
from meterpoll.engine.errors import LinkClosed, LinkError, LinkTimeout
from meterpoll.engine.link import Link
from meterpoll.engine.metrics import LATENCY_BUCKETS, LinkMetrics
from meterpoll.engine.schedule import next_poll
from meterpoll.engine.store.base import POLL_LOG_DTYPE, PollOutcome as LogOutcome
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
    nbytes: int = 0            # bytes written and read on the link for this poll

    @property
    def log_outcome(self) -> int:
        """The store's poll-log outcome (:class:`meterpoll.engine.store.PollOutcome`)."""
        return _log_outcome(self.ok, self.quality, self.error, self.frames)


def _log_outcome(ok: bool, quality: int, error: str, frames: int) -> int:
    if ok:
        return LogOutcome.OK
    if error.startswith(("no connection", "cannot connect")):
        return LogOutcome.NO_CONNECTION
    if error.startswith("abandoned"):
        return LogOutcome.CANCELLED
    if quality == Quality.TIMEOUT:
        return LogOutcome.PARTIAL if frames else LogOutcome.TIMEOUT
    return LogOutcome.PROTOCOL_ERROR


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


@dataclass(slots=True)
class _Meter:
    id: int
    cfg: MeterConfig
    link: Link
    breaker: CircuitBreaker
    next_due: float = 0.0
    resumed: bool = False      # catch-up resume point taken from the store
    fast: Any = None           # the driver's FastPlan (False: none; None: not asked yet)
    ticket: Any = None         # the poll_many call waiting for this meter's next round


class _Ticket:
    """One poll_many call: the meters it still waits for and the readings committed so far."""

    __slots__ = ("pending", "parts", "future", "ids", "uncommitted")

    def __init__(self, ids: list[int], future: asyncio.Future) -> None:
        self.pending = set(ids)
        self.parts: list[np.ndarray] = []
        self.future = future
        self.ids = np.asarray(sorted(ids), dtype=np.uint32)
        self.uncommitted = 0       # finished rounds with its meters not committed yet

    def done_meter(self, mid: int, readings: np.ndarray | None = None) -> None:
        self.pending.discard(mid)
        if readings is not None:
            self.parts.append(readings)
            self.resolve_if_done()

    def resolve_if_done(self) -> None:
        if not self.pending and not self.uncommitted and not self.future.done():
            self.future.set_result(np.concatenate(self.parts) if self.parts else np.zeros(0, READING_DTYPE))


#: quality of the readings of a meter whose exchange ended with this status
_EX_QUALITY = {
    ExchangeStatus.TIMEOUT_FIRST_BYTE: Quality.TIMEOUT, ExchangeStatus.TIMEOUT_INTER_BYTE: Quality.TIMEOUT,
    ExchangeStatus.TIMEOUT_TOTAL: Quality.TIMEOUT, ExchangeStatus.CLOSED: Quality.TIMEOUT,
    ExchangeStatus.ABANDONED: Quality.TIMEOUT, ExchangeStatus.BAD_FRAME: Quality.PROTOCOL_EXCEPTION,
    ExchangeStatus.OVERFLOW: Quality.PROTOCOL_EXCEPTION,
}
_EX_TEXT = {
    ExchangeStatus.TIMEOUT_FIRST_BYTE: "no answer within %.3f s (first-byte deadline)",
    ExchangeStatus.TIMEOUT_INTER_BYTE: "answer stopped mid-frame for %.3f s (inter-byte deadline)",
    ExchangeStatus.TIMEOUT_TOTAL: "answer took longer than %.3f s (total deadline)",
    ExchangeStatus.CLOSED: "connection lost",
    ExchangeStatus.ABANDONED: "abandoned: the engine stopped",
    ExchangeStatus.BAD_FRAME: "bytes do not start a valid frame",
    ExchangeStatus.OVERFLOW: "more bytes than any frame without completing one",
}
_LAT_EDGES = np.asarray(LATENCY_BUCKETS)


class Engine:
    def __init__(self, *, store: Any = None, drivers: dict[str, Driver] | None = None,
                 max_concurrency: int = 512, tick: float = 0.5, schedule: bool = True,
                 breaker_threshold: int = 3, probe_interval: float = 600.0, fast_path: bool = True) -> None:
        self.store = store
        #: run session-less polls (Modbus over TCP...) in the native exchange core, many per call
        self.fast_path = fast_path
        self.drivers: dict[str, Driver] = dict(drivers or {})
        self.max_concurrency = max_concurrency
        self.tick = tick
        #: readings that trigger a commit before the tick is over
        self.commit_rows = 262_144
        #: write every poll's outcome to the store's poll log
        self.log_polls = True
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
        self._fast_queue: dict[str, collections.deque[_Meter]] = {}
        self._rounds: set[Round] = set()
        self._kicked = False
        self.rounds = 0                            # native rounds run
        self.fast_polls = 0                        # polls run in them
        # decoded readings of finished rounds to commit, with the poll_many calls waiting for them
        self._ready: list[tuple[np.ndarray, list[_Ticket]]] = []
        self._ready_rows = 0
        self._log_parts: list[np.ndarray] = []     # poll-log rows of finished rounds, to commit
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
        for q in self._fast_queue.values():       # queued, never sent: the callers learn it
            for m in q:
                if m.ticket is not None and not m.ticket.future.done():
                    m.ticket.future.set_exception(RuntimeError("engine stopped before meter %d was polled" % m.id))
                m.ticket = None
            q.clear()
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

    async def poll_many(self, meter_ids: Any) -> np.ndarray:
        """Poll these meters now and return their readings once committed (one array, failures
        as non-OK NaN readings).  Session-less protocols on connected links run in native
        rounds, many meters per call; the others (and first connections) in Python sessions."""
        if not self._running:
            raise RuntimeError("the engine is not running")
        ids = list(dict.fromkeys(int(i) for i in meter_ids))
        for mid in ids:
            if mid not in self.meters:
                raise KeyError("no meter %r" % mid)
        loop = asyncio.get_running_loop()
        ticket = _Ticket(ids, loop.create_future())
        for mid in ids:
            m = self.meters[mid]
            if m.ticket is None and self._plan_of(m):
                m.ticket = ticket
                q = self._fast_queue.get(m.cfg.protocol)
                if q is None:
                    q = self._fast_queue[m.cfg.protocol] = collections.deque()
                q.append(m)
            else:
                self._poll_python(m, ticket)
        self._dispatch()
        ticket.resolve_if_done()
        return await ticket.future

    def _poll_python(self, m: _Meter, ticket: "_Ticket | None") -> None:
        """Poll one meter through its driver's Python session (connects the link if needed)."""
        if ticket is None:
            self._spawn(self._poll(m))
            return
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f, mid=m.id: ticket.done_meter(
            mid, f.result() if not f.cancelled() and f.exception() is None else np.zeros(0, READING_DTYPE)))
        self._spawn(self._poll(m, done=fut))

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
        lm = m.link.metrics
        bytes_before = lm.bytes_in + lm.bytes_out      # the lease is this meter's alone
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
        outcome = PollOutcome(m.id, started, time.monotonic() - t0, ok, quality, error, len(result.frames),
                              nbytes=lm.bytes_in + lm.bytes_out - bytes_before)
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
                    if self._plan_of(m):
                        q = self._fast_queue.get(m.cfg.protocol)
                        if q is None:
                            q = self._fast_queue[m.cfg.protocol] = collections.deque()
                        q.append(m)
                    else:
                        self._spawn(self._poll(m))
            if self._fast_queue:
                self._dispatch()
            delay = (self._heap[0][0] - time.time()) if self._heap else 3600.0
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(delay, 3600.0)))
            except asyncio.TimeoutError:
                pass

    # ---- the native exchange path: many session-less polls per Round ----
    def _plan_of(self, m: _Meter) -> FastPlan | None:
        if m.fast is None:
            drv = self.drivers[m.cfg.protocol]
            fp = drv.fast_plan(m.cfg) if self.fast_path else None
            m.fast = fp if fp is not None and drv.profile_obis(m.cfg) is None else False
        return m.fast or None

    def _kick(self) -> None:
        """A link or a concurrency slot came free: dispatch queued polls soon (once per loop
        iteration however many slots finish in it), but only once enough slots are free for a
        round worth its fixed cost (a round's Python work is per round, not per meter):
        ``max_concurrency / 8`` slots (at least 16), or all the queue needs."""
        if self._kicked or not self._running:
            return
        queued = sum(len(q) for q in self._fast_queue.values())
        if queued and self._sem.free >= min(queued, max(16, self.max_concurrency // 8)):
            self._kicked = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        """Start one Round per protocol with the queued meters whose links are connected and
        free, as many links as the concurrency limit allows.  A meter whose link is not
        connected (or is leased by a Python session) takes the Python path, which connects or
        waits its turn; one whose link is in another round waits for that slot to finish."""
        self._kicked = False
        sem = self._sem
        if not self._running or sem is None:
            return
        for protocol, q in self._fast_queue.items():
            slot_of: dict[int, int] = {}
            slots: list[list[_Meter]] = []
            links: list[Link] = []
            wires: list = []
            deferred: list[_Meter] = []
            while q:
                m = q.popleft()
                if self.meters.get(m.id) is not m:
                    if m.ticket is not None:      # removed meanwhile
                        m.ticket.done_meter(m.id, np.zeros(0, READING_DTYPE))
                        m.ticket = None
                    continue
                link = m.link
                s = slot_of.get(id(link))
                if s is not None:
                    slots[s].append(m)            # behind the same gateway: same slot, in turn
                    continue
                if link._busy or link._priority or link._by_owner:
                    if link._in_round:
                        deferred.append(m)
                    else:
                        self._poll_python(m, m.ticket)
                        m.ticket = None
                    continue
                w = getattr(link.transport, "wire", None)
                if w is None or link._closing or not w.is_open:
                    self._poll_python(m, m.ticket)    # the Python path connects first
                    m.ticket = None
                    continue
                if sem.free <= 0 or sem.waiters:
                    q.appendleft(m)
                    break
                sem.free -= 1
                link._busy = link._in_round = True
                slot_of[id(link)] = len(slots)
                slots.append([m])
                links.append(link)
                wires.append(w)
            if deferred:
                q.extendleft(reversed(deferred))
            if slots:
                self._spawn(self._run_round(protocol, slots, links, wires))

    async def _run_round(self, protocol: str, slots: list[list[_Meter]], links: list[Link], wires: list) -> None:
        drv = self.drivers[protocol]
        reqs: list[bytes] = []
        tags: list[Any] = []
        groups: list[int] = []
        framing: list[int] = []
        starts = [0]
        meters: list[_Meter] = []
        first, inter, total, pause, delay = [], [], [], [], []
        mono = time.monotonic()
        for ms in slots:
            for m in ms:
                fp = m.fast
                k = len(fp.requests)
                reqs += fp.requests
                tags += fp.tags
                groups += [len(meters)] * k
                framing += [fp.framing] * k
                meters.append(m)
            starts.append(len(reqs))
            fb, ib, tt = self._deadline_seconds(ms[0].cfg)
            link = links[len(pause)]
            first.append(fb)
            inter.append(ib)
            total.append(tt)
            pause.append(link.pause)
            delay.append(max(0.0, link._last_end + link.pause - mono) if link.pause else 0.0)
        rnd = Round(FrameBatch.from_frames(reqs), starts, groups, framing, first, inter, total, pause, delay)
        sem = self._sem
        self.rounds += 1
        self.fast_polls += len(meters)

        def slots_done(done: list[int]) -> None:
            now = time.monotonic()
            for s in done:
                link = links[s]
                link._last_end = now
                link._in_round = False
                if link._priority or link._by_owner:
                    link._release()               # a Python session waits for this link
                else:
                    link._busy = False
            if sem.waiters:
                for _ in done:
                    sem._release()
            else:
                sem.free += len(done)
            self._kick()

        started = time.time()
        fut = rnd.start(wires, asyncio.get_running_loop(), slots_done)
        self._rounds.add(rnd)
        try:
            await fut
        except asyncio.CancelledError:
            rnd.abandon()
            self._round_results(drv, rnd, meters, np.asarray(groups, np.int32), tags, links, starts, started)
            raise
        finally:
            self._rounds.discard(rnd)
        self._round_results(drv, rnd, meters, np.asarray(groups, np.int32), tags, links, starts, started)

    @staticmethod
    def _deadline_seconds(cfg: MeterConfig) -> tuple[float, float, float]:
        fb, ib = cfg.waiting_time / 1000.0, cfg.interval_time / 1000.0
        return fb, ib, fb + max(2.0, 20 * ib)

    def _round_results(self, drv: Driver, rnd: Round, meters: list[_Meter], group: np.ndarray,
                       tags: list[Any], links: list[Link], starts: list[int], started: float) -> None:
        """Decode a finished round in one native call, record failures as NaN readings of the
        failure's quality, update breakers, the poll log and the link metrics; the readings
        wait for the flusher's next commit."""
        status = rnd.status
        n_m = len(meters)
        ids = np.fromiter((m.id for m in meters), dtype=np.uint32, count=n_m)
        req_mid = ids[group]
        frames, index = rnd.answers()
        parts = []
        quality = np.zeros(n_m, dtype=np.uint16)
        errors: dict[int, str] = {}
        if len(index):
            rx = rnd.received_ms[index].view("datetime64[ms]")
            readings, fst = drv.decode_batch(frames, [tags[i] for i in index.tolist()], req_mid[index], rx)
            parts.append(readings)
            fs = fst["status"]
            for j in np.flatnonzero((fs != FrameStatus.OK) & (fs != FrameStatus.NO_DATA)).tolist():
                k = int(group[index[j]])
                if not quality[k]:
                    quality[k] = Quality.CHECKSUM if fs[j] == FrameStatus.CHECKSUM else Quality.PROTOCOL_EXCEPTION
                    errors[k] = "frame status %s" % FrameStatus(int(fs[j])).name
        failed = np.flatnonzero(status != ExchangeStatus.OK)
        ex_failed: dict[int, None] = {}
        for i in failed.tolist():
            st = int(status[i])
            k = int(group[i])
            if st == ExchangeStatus.SKIPPED or k in ex_failed:
                continue                          # the meter's first failed exchange says why
            ex_failed[k] = None
            quality[k] = _EX_QUALITY.get(st, Quality.PROTOCOL_EXCEPTION)
            cfg = meters[k].cfg
            secs = {ExchangeStatus.TIMEOUT_FIRST_BYTE: cfg.waiting_time / 1000.0,
                    ExchangeStatus.TIMEOUT_INTER_BYTE: cfg.interval_time / 1000.0,
                    ExchangeStatus.TIMEOUT_TOTAL: self._deadline_seconds(cfg)[2]}.get(st)
            text = _EX_TEXT.get(st, "exchange failed")
            partial = len(rnd.answer(i))
            errors[k] = (text % secs if secs is not None else text) + (
                ", %d bytes received" % partial if partial else "")
        if ex_failed:
            decoded = np.concatenate(parts) if parts else np.empty(0, READING_DTYPE)
            have_of = _group_by_meter(decoded) if len(decoded) else None
            rows = []
            for k in ex_failed:
                m = meters[k]
                have = set(have_of(m.id)["obis"].tolist()) if have_of else set()
                for o in drv.expected_obis(m.cfg) or [self.POLL_STATUS_OBIS]:
                    if o not in have:
                        rows.append((m.id, o, started, int(quality[k])))
            if rows:
                parts.append(self._nan_readings(rows))
        out = np.concatenate(parts) if len(parts) != 1 else parts[0]
        # poll log and breakers
        raw_lat = rnd.latency
        lat = np.nan_to_num(raw_lat)
        dur = np.bincount(group, weights=lat, minlength=n_m)
        nframes = np.bincount(group[index], minlength=n_m) if len(index) else np.zeros(n_m, np.int64)
        u, c = np.unique(out["meter"], return_counts=True)
        count_of = dict(zip(u.tolist(), c.tolist()))
        sent = ~np.isnan(raw_lat)
        nbytes = np.bincount(group, weights=(rnd.request_lengths + rnd.answer_lengths) * sent, minlength=n_m)
        log = np.zeros(n_m, POLL_LOG_DTYPE)
        log["meter"] = ids
        log["ts"] = np.datetime64(int(started * 1000), "ms")
        log["duration_ms"] = np.minimum(dur * 1000.0, 2**32 - 1)
        log["bytes"] = np.minimum(nbytes, 2**32 - 1)
        outcomes = log["outcome"]
        mono = time.monotonic()
        q_list = quality.tolist()
        nf_list = nframes.tolist()
        nb_list = nbytes.tolist()
        polls = self.polls
        for k, m in enumerate(meters):
            q = q_list[k]
            m.breaker.record(not q, mono)
            po = PollOutcome(m.id, started, float(dur[k]), not q, q or Quality.OK, errors.get(k, ""),
                             nf_list[k], count_of.get(m.id, 0), nbytes=int(nb_list[k]))
            polls.append(po)
            if q:
                outcomes[k] = po.log_outcome
        self._log_parts.append(log)
        if len(polls) > self.poll_log_limit:
            del polls[: len(polls) - self.poll_log_limit]
        self._link_metrics(rnd, status, raw_lat, links, starts)
        tickets: dict[int, _Ticket] = {}
        for m in meters:
            t = m.ticket
            if t is not None:
                m.ticket = None
                t.done_meter(m.id)
                if id(t) not in tickets:
                    t.uncommitted += 1
                    tickets[id(t)] = t
        self._ready.append((out, list(tickets.values())))
        self._ready_rows += len(out)
        # commit at once for a poll_many call that has all its meters; otherwise every tick, or
        # sooner for a big batch (SQLite writes each touched page once per commit: bigger
        # commits cost less per reading)
        if any(not t.pending for t in tickets.values()) or self._ready_rows >= self.commit_rows:
            self._flush_now.set()

    def _link_metrics(self, rnd: Round, status: np.ndarray, latency: np.ndarray, links: list[Link],
                      starts: list[int]) -> None:
        """Add a round's exchanges to its links' counters and latency histograms (numpy per
        round, then one small loop over the links)."""
        n_s = len(links)
        nb = len(LATENCY_BUCKETS) + 1
        slot = np.repeat(np.arange(n_s), np.diff(starts))
        sent = ~np.isnan(latency)                 # written (skipped / never-sent ones are NaN)
        ok = status == ExchangeStatus.OK

        def per_slot(mask: np.ndarray, weights: np.ndarray | None = None) -> list:
            return np.bincount(slot[mask], weights=None if weights is None else weights[mask],
                               minlength=n_s).tolist()

        ex, oks = per_slot(sent), per_slot(ok)
        tos = per_slot((status >= ExchangeStatus.TIMEOUT_FIRST_BYTE) & (status <= ExchangeStatus.TIMEOUT_TOTAL))
        closed = per_slot(status == ExchangeStatus.CLOSED)
        bad = per_slot(status == ExchangeStatus.BAD_FRAME)
        over = per_slot(status == ExchangeStatus.OVERFLOW)
        b_out = per_slot(sent, rnd.request_lengths.astype(np.float64))
        b_in = per_slot(sent, rnd.answer_lengths.astype(np.float64))
        bucket = np.searchsorted(_LAT_EDGES, latency[ok], side="left")
        hist = np.bincount(slot[ok] * nb + bucket, minlength=n_s * nb).reshape(n_s, nb).tolist()
        lat_sum = per_slot(ok, latency)
        for s, link in enumerate(links):
            lm = link.metrics
            lm.exchanges += ex[s]
            lm.ok += oks[s]
            lm.timeouts += tos[s]
            lm.closed += closed[s]
            lm.errors += bad[s]
            lm.overflows += over[s]
            lm.bytes_out += int(b_out[s])
            lm.bytes_in += int(b_in[s])
            h = lm.latency_counts
            for b, c in enumerate(hist[s]):
                if c:
                    h[b] += c
            lm.latency_sum += lat_sum[s]

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
        """Decode what the Python sessions brought since the last flush, then commit it with
        the native rounds' readings in ONE store write (bigger commits cost less a reading),
        publish, and answer the callers waiting for these polls."""
        ready, self._ready, self._ready_rows = self._ready, [], 0
        log_parts, self._log_parts = self._log_parts, []
        pending, self._pending = self._pending, {}
        events = [(mid, ev.ts, ev.code, ev.text) for items in pending.values()
                  for mid, res, _d, _o in items for ev in res.events]
        if events:
            if self.store is not None:
                await self.store.write_events(
                    [(m, np.datetime64(int(ts * 1000), "ms"), code, text) for m, ts, code, text in events])
            self.events.extend(events)
            del self.events[: max(0, len(self.events) - self.poll_log_limit)]
        decoded = [(items, self._decode(protocol, items)) for protocol, items in pending.items()]
        parts = [r for r, _ in ready] + [r for _, r in decoded]
        readings = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else None
        if readings is not None and len(readings):
            if self.store is not None:
                await self.store.write_readings(readings)
            self.readings_committed += len(readings)
            for q in self._subscribers:
                q.put_nowait(readings)
        for items, _r in decoded:             # the Python sessions' poll-log rows
            log = np.zeros(len(items), POLL_LOG_DTYPE)
            for k, (mid, _res, _done, o) in enumerate(items):
                log[k] = (mid, np.datetime64(int(o.started * 1000), "ms"), min(int(o.duration * 1000), 2**32 - 1),
                          o.log_outcome, min(o.nbytes, 2**32 - 1))
            log_parts.append(log)
        if log_parts and self.store is not None and self.log_polls:
            await self.store.write_poll_log(np.concatenate(log_parts) if len(log_parts) > 1 else log_parts[0])
        # all committed: now the callers waiting for these polls learn it
        waiting: dict[int, _Ticket] = {}
        for out, tickets in ready:
            for t in tickets:
                t.parts.append(out[np.isin(out["meter"], t.ids)])
                t.uncommitted -= 1
                waiting[id(t)] = t
        for t in waiting.values():
            t.resolve_if_done()
        for items, r in decoded:
            by_meter = _group_by_meter(r)
            for mid, _res, done, outcome in items:
                self.polls.append(outcome)
                if done is not None and not done.done():
                    done.set_result(by_meter(mid))
        if len(self.polls) > self.poll_log_limit:
            del self.polls[: len(self.polls) - self.poll_log_limit]

    def _decode(self, protocol: str, items) -> np.ndarray:
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
                "readings_committed": self.readings_committed,
                "native_rounds": self.rounds, "native_polls": self.fast_polls}
