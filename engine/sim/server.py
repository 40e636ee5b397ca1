"""The simulator server: real sockets (TCP on loopback, or a pty pair standing in for a serial
line), real bytes, and fault injection.

A protocol plugs in an :class:`Answerer`: it tells when a request is complete and builds the
answer of the addressed meter (several bus addresses may sit behind one simulated gateway).
Faults are drawn per request from a seeded RNG, so a run is reproducible:

``silence``      no answer at all
``late``         the answer after ``late_delay`` seconds
``bad_checksum`` the answer with its checksum corrupted (the answerer says how)
``truncate``     the first half of the answer, then nothing
``disconnect``   the first half of the answer, then the connection is closed
``dribble``      the answer byte by byte, ``dribble_delay`` apart
``garbage``      random bytes instead of the answer
"""
from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass

__all__ = ["Answerer", "Faults", "SimServer", "SimSerial"]

FAULT_KINDS = ("silence", "late", "bad_checksum", "truncate", "disconnect", "dribble", "garbage")


class Answerer:
    """Protocol side of a simulator.  Subclasses implement ``request_length`` and ``answer``."""

    def request_length(self, buf: bytearray) -> int:
        """Length of the complete request at the start of ``buf``; 0 = need more bytes;
        -1 = the first byte cannot start a request (it is dropped, as a meter ignores noise)."""
        raise NotImplementedError

    def answer(self, request: bytes, now: float) -> bytes | None:
        """The answer frame, or None when no meter answers (other address, broadcast)."""
        raise NotImplementedError

    def corrupt_checksum(self, frame: bytes) -> bytes:
        """The frame with its checksum wrong; default: flip the low bit of the last byte."""
        return frame[:-1] + bytes([frame[-1] ^ 0x01]) if frame else frame


@dataclass
class Faults:
    """Probability of each fault per request (0..1; they are tried in this order), and timings."""

    silence: float = 0.0
    late: float = 0.0
    bad_checksum: float = 0.0
    truncate: float = 0.0
    disconnect: float = 0.0
    dribble: float = 0.0
    garbage: float = 0.0
    late_delay: float = 2.0
    dribble_delay: float = 0.01
    seed: int = 0

    @classmethod
    def parse(cls, spec: str) -> "Faults":
        """From the command line form ``silence=0.05,late=0.01,late_delay=3``."""
        f = cls()
        if not spec:
            return f
        for part in spec.split(","):
            name, _, value = part.partition("=")
            name = name.strip()
            if name not in cls.__dataclass_fields__:
                raise ValueError("unknown fault %r (known: %s)" % (name, ", ".join(cls.__dataclass_fields__)))
            try:
                v = float(value) if value else 1.0
            except ValueError:
                raise ValueError("fault %s needs a number, got %r" % (name, value)) from None
            if name in FAULT_KINDS and not 0 <= v <= 1:
                raise ValueError("fault %s is a probability 0..1, got %g" % (name, v))
            setattr(f, name, int(v) if name == "seed" else v)
        return f

    def draw(self, rnd: random.Random) -> str | None:
        for kind in FAULT_KINDS:
            p = getattr(self, kind)
            if p and rnd.random() < p:
                return kind
        return None


class _Session:
    """Request/answer loop shared by TCP connections and the pty."""

    def __init__(self, answerer: Answerer, faults: Faults, rnd: random.Random, stats: dict) -> None:
        self.answerer = answerer
        self.faults = faults
        self.rnd = rnd
        self.stats = stats
        self.buf = bytearray()

    def requests(self, data: bytes):
        self.buf += data
        while self.buf:
            n = self.answerer.request_length(self.buf)
            if n == 0:
                if len(self.buf) > 65536:
                    self.buf.clear()
                return
            if n < 0:
                del self.buf[:1]
                continue
            req = bytes(self.buf[:n])
            del self.buf[:n]
            yield req

    async def respond(self, req: bytes, write, close) -> bool:
        """Answer one request through ``write``; False when the connection was closed."""
        self.stats["requests"] += 1
        ans = self.answerer.answer(req, time.time())
        if ans is None:
            return True
        fault = self.faults.draw(self.rnd)
        if fault:
            self.stats[fault] = self.stats.get(fault, 0) + 1
        if fault == "silence":
            return True
        if fault == "late":
            await asyncio.sleep(self.faults.late_delay)
        elif fault == "bad_checksum":
            ans = self.answerer.corrupt_checksum(ans)
        elif fault == "garbage":
            ans = bytes(self.rnd.randrange(256) for _ in range(len(ans)))
        elif fault in ("truncate", "disconnect"):
            ans = ans[: max(1, len(ans) // 2)]
        if fault == "dribble":
            for b in ans:
                write(bytes([b]))
                await asyncio.sleep(self.faults.dribble_delay)
        else:
            write(ans)
        self.stats["answers"] += 1
        if fault == "disconnect":
            await close()
            return False
        return True


class SimServer:
    """A TCP simulator on 127.0.0.1: one Answerer per port (a meter, or a gateway with several
    bus addresses behind it).  ``async with SimServer(answerer) as s: s.port``."""

    def __init__(self, answerer: Answerer, faults: Faults | None = None, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("simulators listen on loopback only")
        self.answerer = answerer
        self.faults = faults or Faults()
        self.host = host
        self.port = port
        self.rnd = random.Random(self.faults.seed)
        self.stats = {"connections": 0, "requests": 0, "answers": 0}
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> "SimServer":
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> "SimServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        self._writers.add(writer)
        session = _Session(self.answerer, self.faults, self.rnd, self.stats)

        async def close():
            writer.close()

        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    return
                for req in session.requests(data):
                    if not await session.respond(req, writer.write, close):
                        return
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class SimSerial:
    """A simulator on a pty pair: the engine opens ``path`` (the slave side) with pyserial, the
    simulator answers on the master side, as a meter on a serial line would."""

    def __init__(self, answerer: Answerer, faults: Faults | None = None) -> None:
        self.answerer = answerer
        self.faults = faults or Faults()
        self.rnd = random.Random(self.faults.seed)
        self.stats = {"connections": 1, "requests": 0, "answers": 0}
        self.master = -1
        self.slave = -1
        self.path = ""
        self._session: _Session | None = None
        self._tasks: set[asyncio.Task] = set()
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def start(self) -> "SimSerial":
        import tty

        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self._session = _Session(self.answerer, self.faults, self.rnd, self.stats)
        self._queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        loop.add_reader(self.master, self._readable)
        self._worker = asyncio.create_task(self._serve())
        return self

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return
        for req in self._session.requests(data):
            self._queue.put_nowait(req)

    async def _serve(self) -> None:
        async def close():  # a serial line cannot disconnect: stop answering this request
            pass

        while True:
            req = await self._queue.get()
            await self._session.respond(req, lambda b: os.write(self.master, b), close)

    async def stop(self) -> None:
        if self.master >= 0:
            asyncio.get_running_loop().remove_reader(self.master)
            if self._worker is not None:
                self._worker.cancel()
                try:
                    await self._worker
                except asyncio.CancelledError:
                    pass
            os.close(self.master)
            os.close(self.slave)
            self.master = self.slave = -1

    async def __aenter__(self) -> "SimSerial":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()
