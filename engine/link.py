"""A link: one physical channel (a TCP connection to a meter or to a TCP-to-RS-485 gateway, or a
serial port) shared by the meters behind it.

Bus arbitration: a meter's session leases the link (``async with link.lease(meter)``) and is
alone on it until it ends; a whole DLMS association or Mercury open-read-close runs in one lease.
Waiting leases are served from a priority lane first (on-demand reads, raw commands, clock
sets), then round-robin across meters, so one meter with many queued polls cannot starve the
others.  Within a lease every exchange flushes stale input, waits out the link's ``pause``
since the previous exchange ended, writes the request and reads one answer under its deadlines.
A failed exchange costs only this link its deadline; other links run concurrently.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import AsyncIterator, Hashable

from meterpoll.engine.errors import FrameOverflow, LinkBusy, LinkClosed, LinkError, LinkTimeout
from meterpoll.engine.metrics import LinkMetrics
from meterpoll.engine.transport import Complete, Deadlines, Transport

__all__ = ["Link", "Lease"]


class Lease:
    """Exclusive use of a link by one owner; obtained from :meth:`Link.lease`."""

    __slots__ = ("link", "owner", "active")

    def __init__(self, link: "Link", owner: Hashable) -> None:
        self.link = link
        self.owner = owner
        self.active = True

    async def exchange(self, request: bytes, complete: Complete, deadlines: Deadlines) -> bytes:
        """Send ``request`` and return one complete answer frame (see :meth:`Link._exchange`)."""
        if not self.active:
            raise LinkBusy("lease already released")
        return await self.link._exchange(request, complete, deadlines)

    async def read(self, complete: Complete, deadlines: Deadlines) -> bytes:
        """Read one more answer frame without sending: for a protocol that recognises a stale
        answer (a Modbus TCP transaction id of an earlier request) and waits for the right one."""
        if not self.active:
            raise LinkBusy("lease already released")
        return await self.link._read_only(complete, deadlines)

    async def send(self, request: bytes, deadlines: Deadlines) -> None:
        """Send without waiting for an answer (broadcasts, M-Bus SND_NKE to a silent bus...)."""
        if not self.active:
            raise LinkBusy("lease already released")
        await self.link._send_only(request, deadlines)


class Link:
    """One channel, one exchange in flight.  ``pause`` is the quiet time in seconds between the
    end of one exchange and the next request (the poll server's ``pause_time``).

    Kept small (slots, a list and a dict for the waiting lines, empty most of the time): an
    engine holds one per TCP endpoint, 100,000 of them on a big head-end."""

    __slots__ = ("transport", "name", "pause", "metrics", "_busy", "_closing", "_priority",
                 "_by_owner", "_last_end", "_opened", "_in_round")

    def __init__(self, transport: Transport, *, name: str = "", pause: float = 0.0) -> None:
        if pause < 0:
            raise ValueError("pause must be >= 0")
        self.transport = transport
        self.name = name or repr(transport)
        self.pause = pause
        self.metrics = LinkMetrics()
        self._busy = False
        self._closing = False
        self._priority: list[asyncio.Future] = []
        # insertion-ordered: the owner at the front is served next, then moves to the back
        self._by_owner: dict[Hashable, collections.deque[asyncio.Future]] = {}
        self._last_end = 0.0
        self._opened = False
        self._in_round = False     # held by the engine's native exchange round

    def __repr__(self) -> str:
        return "<Link %s busy=%s waiting=%d>" % (self.name, self._busy, self.waiting)

    @property
    def waiting(self) -> int:
        return len(self._priority) + sum(len(q) for q in self._by_owner.values())

    # ---- arbitration ----
    @contextlib.asynccontextmanager
    async def lease(self, owner: Hashable, *, priority: bool = False) -> AsyncIterator[Lease]:
        if self._closing:
            raise LinkBusy("link %s is closing" % self.name)
        if self._busy or self.waiting:
            fut = asyncio.get_running_loop().create_future()
            if priority:
                self._priority.append(fut)
            else:
                self._by_owner.setdefault(owner, collections.deque()).append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():  # granted just as we were cancelled
                    self._release()
                else:
                    self._forget(fut)
                raise
            if self._closing:  # woken by close(), never granted the link
                raise LinkBusy("link %s closed while waiting" % self.name)
        else:
            self._busy = True
        lease = Lease(self, owner)
        try:
            yield lease
        finally:
            lease.active = False
            self._release()

    def _forget(self, fut: asyncio.Future) -> None:
        if fut in self._priority:
            self._priority.remove(fut)
            return
        for owner, q in list(self._by_owner.items()):
            if fut in q:
                q.remove(fut)
                if not q:
                    del self._by_owner[owner]
                return

    def _release(self) -> None:
        while True:
            nxt = None
            if self._priority:
                nxt = self._priority.pop(0)
            elif self._by_owner:
                owner, q = next(iter(self._by_owner.items()))
                nxt = q.popleft()
                del self._by_owner[owner]
                if q:  # round-robin: the owner goes to the back of the line
                    self._by_owner[owner] = q
            if nxt is None:
                self._busy = False
                return
            if not nxt.done():
                nxt.set_result(None)  # stays busy: handed over
                return

    # ---- exchanges (called through a Lease) ----
    async def _prepare(self, deadlines: Deadlines) -> None:
        tr = self.transport
        if not tr.is_open:
            if self._opened:
                self.metrics.reconnects += 1
            await tr.open(deadlines.connect)
            self._opened = True
        flushed = tr.flush_input()
        self.metrics.flushed_bytes += flushed
        wait = self._last_end + self.pause - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _exchange(self, request: bytes, complete: Complete, deadlines: Deadlines) -> bytes:
        m = self.metrics
        m.exchanges += 1
        started = None
        try:
            await self._prepare(deadlines)
            started = time.monotonic()
            before_in = self.transport.bytes_in
            self.transport.write(request)
            m.bytes_out += len(request)
            frame = await self.transport.read_frame(complete, deadlines)
            m.bytes_in += self.transport.bytes_in - before_in
            m.ok += 1
            m.observe_latency(time.monotonic() - started)
            return frame
        except LinkTimeout:
            m.timeouts += 1
            raise
        except FrameOverflow:
            m.overflows += 1
            await self.transport.close()  # resynchronise: a fresh connection after babble
            raise
        except LinkClosed:
            m.closed += 1
            await self.transport.close()
            raise
        except LinkError:
            m.errors += 1
            raise
        finally:
            self._last_end = time.monotonic()

    async def _read_only(self, complete: Complete, deadlines: Deadlines) -> bytes:
        m = self.metrics
        before_in = self.transport.bytes_in
        try:
            frame = await self.transport.read_frame(complete, deadlines)
        except LinkTimeout:
            m.timeouts += 1
            raise
        except (FrameOverflow, LinkClosed):
            await self.transport.close()
            raise
        finally:
            self._last_end = time.monotonic()
        m.bytes_in += self.transport.bytes_in - before_in
        return frame

    async def _send_only(self, request: bytes, deadlines: Deadlines) -> None:
        await self._prepare(deadlines)
        self.transport.write(request)
        self.metrics.bytes_out += len(request)
        self._last_end = time.monotonic()

    async def close(self) -> None:
        """Refuse new leases, fail the waiting ones with LinkBusy, close the transport."""
        self._closing = True
        waiters = list(self._priority) + [f for q in self._by_owner.values() for f in q]
        self._priority.clear()
        self._by_owner.clear()
        for f in waiters:
            if not f.done():
                f.set_result(None)  # woken, they see _closing and raise LinkBusy
        await self.transport.close()
