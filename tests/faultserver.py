"""A loopback TCP server that misbehaves on purpose, for link and engine tests.

Requests and answers use a toy framing: one length byte, then that many payload bytes.  The
answer to payload P is the frame carrying P reversed, sent according to ``mode``:
ok, silent, late (after ``delay``), dribble (byte by byte, ``delay`` apart), stall (half the
frame, then nothing), disconnect (half the frame, then close), babble (bytes without end, up to
``limit``), garbage (bytes that cannot start a frame), double (the answer twice: a stale copy
stays in the stream).  Every loop is bounded; the server listens on 127.0.0.1 only.
"""
from __future__ import annotations

import asyncio


def frame(payload: bytes) -> bytes:
    return bytes([len(payload)]) + payload


def complete(buf: bytearray) -> int:
    """Toy framing: length byte + payload; 0xFF is not a valid length (-1: cannot be a frame)."""
    if buf[0] == 0xFF:
        return -1
    n = 1 + buf[0]
    return n if len(buf) >= n else 0


class FaultServer:
    def __init__(self, mode: str = "ok", delay: float = 0.0, limit: int = 200_000) -> None:
        self.mode = mode
        self.delay = delay
        self.limit = limit
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def __aenter__(self) -> "FaultServer":
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readexactly(1)
                payload = await reader.readexactly(head[0])
                self.requests.append(payload)
                answer = frame(payload[::-1])
                mode = self.mode
                if mode == "ok":
                    writer.write(answer)
                elif mode == "double":
                    writer.write(answer + answer)
                elif mode == "late":
                    await asyncio.sleep(self.delay)
                    writer.write(answer)
                elif mode == "dribble":
                    for b in answer:
                        writer.write(bytes([b]))
                        await writer.drain()
                        await asyncio.sleep(self.delay)
                elif mode == "stall":
                    writer.write(answer[: max(1, len(answer) // 2)])
                elif mode == "disconnect":
                    writer.write(answer[: max(1, len(answer) // 2)])
                    await writer.drain()
                    writer.close()
                    return
                elif mode == "babble":
                    sent = 0
                    writer.write(b"\x7f")  # claims 127 payload bytes, then never stops
                    while sent < self.limit and not writer.is_closing():
                        writer.write(b"\x01" * 4096)
                        sent += 4096
                        await writer.drain()
                        await asyncio.sleep(0.001)
                elif mode == "garbage":
                    writer.write(b"\xff\xfe\xfd")
                elif mode == "silent":
                    pass
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
