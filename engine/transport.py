"""Byte transports driven by the event loop: TCP (asyncio protocol, works on uvloop) and serial
ports (pyserial opened non-blocking, read through the loop's reader callbacks: no thread per port).

A transport only moves bytes.  ``read_frame`` gathers bytes until a protocol's ``complete``
function says a frame is whole, enforcing the first-byte, inter-byte and total deadlines.

``complete(buf) -> int`` looks at the bytes received so far and returns the length of the first
complete frame, 0 if more bytes are needed, or -1 if the bytes cannot start a valid frame (the
exchange fails with the bytes as ``partial``; nothing is silently discarded).
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Callable

from meterpoll.engine.errors import FrameOverflow, LinkClosed, LinkError, LinkTimeout
from meterpoll.bindings.wire import Wire

__all__ = ["Deadlines", "Transport", "TcpTransport", "SerialTransport", "Complete"]

Complete = Callable[[bytearray], int]

#: no meter frame we speak is longer (DLMS max info field 2030 B, M-Bus 261 B, IEC readouts a
#: few KiB); a device that sends more without completing a frame is babbling
MAX_FRAME = 65536


class Deadlines:
    """Timeouts of one exchange, in seconds.

    ``connect``: to open the TCP connection or port; ``first_byte``: from the end of the request
    to the first byte of the answer (the poll server's ``waiting_time``); ``inter_byte``: the
    longest silence inside an answer (``interval_time``); ``total``: the whole answer.
    """

    __slots__ = ("connect", "first_byte", "inter_byte", "total")

    def __init__(self, first_byte: float = 1.0, inter_byte: float = 0.2, total: float | None = None,
                 connect: float = 3.0) -> None:
        for name, v in (("first_byte", first_byte), ("inter_byte", inter_byte), ("connect", connect)):
            if not v > 0:
                raise ValueError("%s deadline must be positive, got %r" % (name, v))
        self.connect = connect
        self.first_byte = first_byte
        self.inter_byte = inter_byte
        self.total = total if total is not None else first_byte + 10 * inter_byte + 1.0
        if not self.total > 0:
            raise ValueError("total deadline must be positive, got %r" % total)

    def __repr__(self) -> str:
        return "Deadlines(connect=%g, first_byte=%g, inter_byte=%g, total=%g)" % (
            self.connect, self.first_byte, self.inter_byte, self.total)


class Transport:
    """Base class: a receive buffer filled by the loop, and a waiter woken on new bytes."""

    __slots__ = ("_buf", "_waiter", "_closed_exc", "bytes_in", "bytes_out")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._waiter: asyncio.Future | None = None
        self._closed_exc: BaseException | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    # -- subclasses --
    @property
    def is_open(self) -> bool:
        raise NotImplementedError

    async def open(self, timeout: float) -> None:
        raise NotImplementedError

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    # -- shared --
    def _feed(self, data: bytes) -> None:
        self._buf += data
        self.bytes_in += len(data)
        self._wake()

    def _lost(self, exc: BaseException | None) -> None:
        self._closed_exc = exc or LinkClosed("connection closed by the peer")
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            _resolve(w, True)

    def flush_input(self) -> int:
        """Discard bytes that arrived outside an exchange (late answers, noise); returns how many."""
        n = len(self._buf)
        self._buf.clear()
        return n

    def write(self, data: bytes) -> None:
        if not self.is_open:
            raise LinkClosed("link is not open")
        self._send(data)
        self.bytes_out += len(data)

    async def _wait(self, timeout: float) -> bool:
        """Wait for more bytes or a close; False on timeout."""
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        handle = loop.call_later(timeout, _resolve, waiter, False)
        try:
            return await waiter
        finally:
            handle.cancel()
            self._waiter = None

    async def read_frame(self, complete: Complete, deadlines: Deadlines) -> bytes:
        """The next complete frame, or LinkTimeout / LinkClosed / FrameOverflow / LinkError
        carrying the partial bytes.  Bytes after the frame stay buffered (flushed before the
        next request)."""
        loop_time = time.monotonic
        start = loop_time()
        end_total = start + deadlines.total
        phase = "first_byte"
        while True:
            if self._buf:
                n = complete(self._buf)
                if n > 0:
                    frame = bytes(self._buf[:n])
                    del self._buf[:n]
                    return frame
                if n < 0:
                    partial = bytes(self._buf)
                    self._buf.clear()
                    raise LinkError("bytes do not start a valid frame", partial)
                if len(self._buf) > MAX_FRAME:
                    partial = bytes(self._buf)
                    self._buf.clear()
                    raise FrameOverflow("more than %d bytes without a complete frame" % MAX_FRAME, partial)
                phase = "inter_byte"
            if self._closed_exc is not None:
                partial = bytes(self._buf)
                self._buf.clear()
                raise LinkClosed(str(self._closed_exc) + (" mid-frame" if partial else ""), partial)
            now = loop_time()
            left_total = end_total - now
            step = deadlines.first_byte if phase == "first_byte" else deadlines.inter_byte
            if left_total <= 0:
                raise LinkTimeout("total", deadlines.total, bytes(self._buf))
            if not await self._wait(min(step, left_total)):
                # the wait was bounded by whichever deadline came first (timers may fire up to
                # a millisecond early on uvloop: decide by which bound was used, not the clock)
                if left_total < step:
                    raise LinkTimeout("total", deadlines.total, bytes(self._buf))
                raise LinkTimeout(phase, step, bytes(self._buf))


def _resolve(fut: asyncio.Future, value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class TcpTransport(Transport):
    """A TCP connection (direct meter or TCP-to-RS-485 gateway), opened on demand.

    Its protocol object is the native :class:`~meterpoll.ext._wire.Wire`: on uvloop the kernel's
    bytes land in the wire's own buffer; outside the engine's native rounds the wire hands them
    to this transport (``_feed``) for the Python sessions' ``read_frame``."""

    __slots__ = ("host", "port", "wire")

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.wire: Wire | None = None

    def __repr__(self) -> str:
        return "TcpTransport(%s:%d)" % (self.host, self.port)

    @property
    def is_open(self) -> bool:
        w = self.wire
        return w is not None and w.is_open

    async def open(self, timeout: float) -> None:
        if self.is_open:
            return
        loop = asyncio.get_running_loop()
        self._buf.clear()
        self._closed_exc = None
        wire = Wire(self)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: wire, self.host, self.port), timeout)
        except asyncio.TimeoutError:
            raise LinkTimeout("connect", timeout) from None
        except OSError as e:
            raise LinkClosed("cannot connect to %s:%d: %s" % (self.host, self.port, e.strerror or e)) from None
        self.wire = wire

    def _wire_lost(self, exc: BaseException | None) -> None:
        self._lost(LinkClosed("connection lost: %s" % exc) if exc else None)

    def _send(self, data: bytes) -> None:
        assert self.wire is not None
        self.wire.write(data)

    def flush_input(self) -> int:
        n = super().flush_input()
        if self.wire is not None:
            n += self.wire.flush()
        return n

    async def close(self) -> None:
        w = self.wire
        self.wire = None
        if w is not None:
            w.close()
            await asyncio.sleep(0)


class SerialTransport(Transport):
    """A serial port through pyserial, non-blocking, read by the loop's reader callback.

    ``port`` is a device path (``/dev/ttyUSB0``, a pty in tests); ``baudrate``, ``bytesize``,
    ``parity`` ("N", "E", "O"), ``stopbits`` as pyserial takes them."""

    __slots__ = ("port", "settings", "_serial", "_loop", "_pending")

    def __init__(self, port: str, baudrate: int = 9600, bytesize: int = 8, parity: str = "N",
                 stopbits: float = 1) -> None:
        super().__init__()
        self.port = port
        self.settings = dict(baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits)
        self._serial = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = bytearray()

    def __repr__(self) -> str:
        return "SerialTransport(%s, %s)" % (self.port, self.settings)

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    async def open(self, timeout: float) -> None:
        if self._serial is not None:
            return
        import serial  # pyserial

        self._buf.clear()
        self._closed_exc = None
        try:
            s = serial.Serial(self.port, timeout=0, write_timeout=0, exclusive=True, **self.settings)
        except (serial.SerialException, OSError, ValueError) as e:
            raise LinkClosed("cannot open %s: %s" % (self.port, e)) from None
        os.set_blocking(s.fileno(), False)
        self._serial = s
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(s.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._serial.fileno(), 4096)
        except BlockingIOError:
            return
        except OSError as e:
            self._drop(LinkClosed("serial port error: %s" % e))
            return
        if not data:  # the other side of a pty went away
            self._drop(LinkClosed("serial port closed"))
            return
        self._feed(data)

    def _drop(self, exc: BaseException) -> None:
        s, self._serial = self._serial, None
        if s is not None and self._loop is not None:
            self._loop.remove_reader(s.fileno())
            self._loop.remove_writer(s.fileno())
            s.close()
        self._lost(exc)

    def _send(self, data: bytes) -> None:
        self._pending += data
        self._on_writable()

    def _on_writable(self) -> None:
        s = self._serial
        if s is None:
            return
        try:
            n = os.write(s.fileno(), self._pending)
        except BlockingIOError:
            n = 0
        except OSError as e:
            self._drop(LinkClosed("serial write failed: %s" % e))
            return
        del self._pending[:n]
        if self._pending:
            self._loop.add_writer(s.fileno(), self._on_writable)
        else:
            self._loop.remove_writer(s.fileno())

    def flush_input(self) -> int:
        n = super().flush_input()
        if self._serial is not None:
            try:
                self._serial.reset_input_buffer()
            except OSError:
                pass
        return n

    async def close(self) -> None:
        if self._serial is not None:
            s, self._serial = self._serial, None
            self._loop.remove_reader(s.fileno())
            self._loop.remove_writer(s.fileno())
            s.close()
