"""The native exchange core (ext/_wire.pyx): framing, one round of exchanges over real loopback
sockets, deadlines, stale answers, faults; on uvloop (buffered protocol path) and on the
standard asyncio loop (data_received path)."""
from __future__ import annotations

import asyncio
import struct
import time

import numpy as np
import pytest
import uvloop
from hypothesis import given, settings, strategies as st

from meterpoll.bindings import modbus
from meterpoll.ext import _wire
from meterpoll.ext._crc import crc16_modbus
from meterpoll.ext._frames import FrameBatch
from meterpoll.ext._wire import Round, Wire

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request):
    def runner(coro_fn, *a):
        loop = LOOPS[request.param]()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro_fn(*a), 30))
        finally:
            loop.close()
    runner.loop_name = request.param
    return runner


# ---- a scripted Modbus TCP server: behaviour(request, n) -> list of (delay s, bytes | "close") ----
def mbap_answer(req: bytes, values: list[int]) -> bytes:
    tid, _pid, _ln, unit, fn = struct.unpack(">HHHBB", req[:8])
    pdu = bytes([fn, 2 * len(values)]) + b"".join(struct.pack(">H", v) for v in values)
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def ok(req: bytes, n: int):
    start, count = struct.unpack(">HH", req[8:12])
    return [(0, mbap_answer(req, [start + k for k in range(count)]))]


class Server:
    def __init__(self, behaviour=ok, size: int = 12) -> None:
        self.behaviour = behaviour
        self.size = size
        self.requests: list[tuple[float, bytes]] = []
        self.tasks: set[asyncio.Task] = set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _client(self, reader, writer):
        self.tasks.add(asyncio.current_task())
        try:
            while True:
                req = await reader.readexactly(self.size)
                self.requests.append((time.monotonic(), req))
                for delay, data in self.behaviour(req, len(self.requests)):
                    if delay:
                        await asyncio.sleep(delay)
                    if data == "close":
                        writer.close()
                        return
                    writer.write(data)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def mbap_request(unit: int, start: int, count: int, fn: int = 4) -> bytes:
    return struct.pack(">HHHBBHH", 0, 0, 6, unit, fn, start, count)


async def connect(port: int, owner=None) -> Wire:
    loop = asyncio.get_running_loop()
    w = Wire(owner)
    await loop.create_connection(lambda: w, "127.0.0.1", port)
    return w


def make_round(per_slot: list[list[tuple[int, bytes]]], framing=_wire.FRAMING_MBAP, first=1.0,
               inter=0.2, total=3.0, pause=None) -> Round:
    """per_slot: for each slot a list of (group, request bytes)."""
    reqs, groups, starts = [], [], [0]
    for slot in per_slot:
        for g, r in slot:
            reqs.append(r)
            groups.append(g)
        starts.append(len(reqs))
    return Round(FrameBatch.from_frames(reqs), starts, groups, [framing] * len(reqs),
                 first, inter, total, pause=pause)


# ---- framing ----
def test_frame_length_each_framing():
    fl = _wire.frame_length
    a = mbap_answer(mbap_request(1, 0, 2), [1, 2])
    assert fl(_wire.FRAMING_MBAP, a) == len(a)
    assert fl(_wire.FRAMING_MBAP, a + b"\x00\x01") == len(a)
    assert fl(_wire.FRAMING_MBAP, a[:-1]) == 0
    assert fl(_wire.FRAMING_MBAP, b"\x00\x01\x00\x05\x00\x03") == -1          # protocol id 5
    assert fl(_wire.FRAMING_MBAP, b"\x00\x01\x00\x00\x01\x00") == -1          # length 256
    rtu = bytes([1, 3, 4, 0, 1, 0, 2])
    rtu += struct.pack("<H", crc16_modbus(rtu))
    assert fl(_wire.FRAMING_RTU, rtu) == 9
    assert fl(_wire.FRAMING_RTU, rtu[:5]) == 0
    assert fl(_wire.FRAMING_RTU, bytes([1, 0x83, 2, 0, 0])) == 5              # exception
    assert fl(_wire.FRAMING_RTU, bytes([1, 3, 3])) == -1                      # odd byte count
    assert fl(_wire.FRAMING_RTU, bytes([1, 0x2B])) == -1                      # unknown function
    wr = bytes([0, 1, 0, 1, 0, 16, 0, 3, 0xC4, 1, 0xC1])
    assert fl(_wire.FRAMING_WRAPPER, wr) == 11
    assert fl(_wire.FRAMING_WRAPPER, wr[:9]) == 0
    assert fl(_wire.FRAMING_WRAPPER, b"\x00\x02") == -1
    assert fl(_wire.FRAMING_MBUS, b"\xE5") == 1
    assert fl(_wire.FRAMING_MBUS, b"\x10\x5B\x01\x5C\x16") == 5
    long = bytes([0x68, 3, 3, 0x68, 8, 1, 0x72, 0x7B, 0x16])
    assert fl(_wire.FRAMING_MBUS, long) == 9
    assert fl(_wire.FRAMING_MBUS, long[:-1] + b"\x00") == -1                  # no stop byte
    assert fl(_wire.FRAMING_MBUS, bytes([0x68, 3, 4])) == -1                  # L fields differ
    hd = bytes([0x7E, 0xA0, 0x07, 0x03, 0x21, 0x93, 0x0F, 0x01, 0x7E])
    assert fl(_wire.FRAMING_HDLC, hd) == 9
    assert fl(_wire.FRAMING_HDLC, hd[:8]) == 0
    assert fl(_wire.FRAMING_HDLC, hd[:8] + b"\x00") == -1
    assert fl(_wire.FRAMING_HDLC, b"\x7E\xB0") == -1
    for framing in range(1, 6):
        assert fl(framing, b"") == 0
    assert fl(99, b"\x00") == -1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=120), st.binary(max_size=20), st.integers(0, 0xFFFF))
def test_frame_length_mbap_any_answer(values, tail, tid):
    a = bytearray(mbap_answer(mbap_request(7, 0, len(values)), values))
    a[0:2] = struct.pack(">H", tid)
    a = bytes(a)
    assert _wire.frame_length(_wire.FRAMING_MBAP, a + tail) == len(a)
    for cut in range(len(a)):
        assert _wire.frame_length(_wire.FRAMING_MBAP, a[:cut]) == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 5), st.binary(max_size=300))
def test_frame_length_never_past_the_bytes(framing, data):
    n = _wire.frame_length(framing, data)
    assert -1 <= n <= len(data)


# ---- rounds over real sockets ----
def test_round_many_links_and_meters(run):
    async def main():
        async with Server() as a, Server() as b, Server() as c:
            wires = [await connect(s.port) for s in (a, b, c)]
            per_slot = [[(0, mbap_request(1, 0, 2)), (0, mbap_request(1, 10, 3)), (1, mbap_request(2, 20, 1))],
                        [(2, mbap_request(5, 100, 4))],
                        []]
            r = make_round(per_slot)
            done = await r.start(wires, asyncio.get_running_loop())
            assert done is r and r.done
            assert r.status.tolist() == [_wire.EX_OK] * 4
            frames, index = r.answers()
            assert index.tolist() == [0, 1, 2, 3]
            readings, st = modbus.decode_batch(
                frames, requests=[(1, 4, 0, 2), (1, 4, 10, 3), (2, 4, 20, 1), (5, 4, 100, 4)], tcp=True)
            assert np.isin(st["status"], [0, 12]).all()          # well-formed (no map: no readings)
            assert r.answer(3)[-8:] == struct.pack(">4H", 100, 101, 102, 103)
            now = time.time() * 1000
            assert (abs(r.received_ms - now) < 5000).all()
            assert (r.latency > 0).all() and (r.latency < 3).all()
            # fresh transaction ids per request on one wire, answers matched by them
            tids = [struct.unpack(">H", q[:2])[0] for _t, q in a.requests]
            assert len(set(tids)) == 3 and 0 not in tids
            assert wires[0].bytes_out == 36 and wires[0].bytes_in == sum(len(r.answer(i)) for i in range(3))
            for w in wires:
                w.close()
    run(main)


def test_stale_answer_skipped_by_transaction_id(run):
    def late_then_ok(req, n):
        old = bytearray(mbap_answer(req, [9]))
        old[0:2] = struct.pack(">H", (struct.unpack(">H", req[:2])[0] - 1) & 0xFFFF)
        return [(0, bytes(old) + ok(req, n)[0][1])]

    async def main():
        async with Server(late_then_ok) as s:
            w = await connect(s.port)
            r = make_round([[(0, mbap_request(1, 0, 1))]])
            await r.start([w], asyncio.get_running_loop())
            assert r.status.tolist() == [_wire.EX_OK]
            assert r.stale == 1
            assert r.answer(0)[-2:] == b"\x00\x00"
            w.close()
    run(main)


def test_silent_meter_costs_only_its_own_link(run):
    def silent_for_unit_2(req, n):
        return [] if req[6] == 2 else ok(req, n)

    async def main():
        async with Server(silent_for_unit_2) as bus, Server() as other:
            wires = [await connect(bus.port), await connect(other.port)]
            r = make_round([[(0, mbap_request(2, 0, 1)), (0, mbap_request(2, 5, 1)), (1, mbap_request(3, 0, 1))],
                            [(2, mbap_request(1, 0, 1))]], first=0.3)
            t0 = time.monotonic()
            await r.start(wires, asyncio.get_running_loop())
            took = time.monotonic() - t0
            assert r.status.tolist() == [_wire.EX_TIMEOUT_FIRST_BYTE, _wire.EX_SKIPPED, _wire.EX_OK, _wire.EX_OK]
            assert 0.3 <= took < 1.5
            assert r.latency[3] < 0.25              # the other link did not wait for the silent meter
            assert r.latency[0] >= 0.3
            assert len(bus.requests) == 2           # the skipped request was never sent
            for w in wires:
                w.close()
    run(main)


def test_dribble_inter_byte_deadline(run):
    def dribble(req, n):
        return [(0.03, bytes([b])) for b in ok(req, n)[0][1]]

    async def main():
        async with Server(dribble) as s:
            w = await connect(s.port)
            r = make_round([[(0, mbap_request(1, 0, 2))]], inter=0.01)
            await r.start([w], asyncio.get_running_loop())
            assert r.status.tolist() == [_wire.EX_TIMEOUT_INTER_BYTE]
            assert 1 <= len(r.answer(0)) < 13       # the partial bytes are kept, not dropped
            w.close()
            w = await connect(s.port)
            r = make_round([[(0, mbap_request(1, 0, 2))]], inter=0.5)
            await r.start([w], asyncio.get_running_loop())
            assert r.status.tolist() == [_wire.EX_OK] and len(r.answer(0)) == 13
            r = make_round([[(0, mbap_request(1, 0, 2))]], inter=0.5, total=0.1)
            await r.start([w], asyncio.get_running_loop())
            assert r.status.tolist() == [_wire.EX_TIMEOUT_TOTAL]
            w.close()
    run(main)


def test_disconnect_mid_frame_and_rest_of_slot(run):
    def half_then_close(req, n):
        return [(0, ok(req, n)[0][1][:5]), (0.01, "close")]

    async def main():
        async with Server(half_then_close) as s:
            w = await connect(s.port)
            r = make_round([[(0, mbap_request(1, 0, 2)), (1, mbap_request(2, 0, 2))]])
            await r.start([w], asyncio.get_running_loop())
            assert r.status.tolist() == [_wire.EX_CLOSED, _wire.EX_CLOSED]
            assert len(r.answer(0)) == 5
            assert w.closed
            # a round on a closed wire ends at once
            r = make_round([[(0, mbap_request(1, 0, 2))]])
            await r.start([w], asyncio.get_running_loop())
            assert r.status.tolist() == [_wire.EX_CLOSED]
    run(main)


def test_garbage_and_babble(run):
    def garbage(req, n):
        return [(0, b"\x00\x01\x77\x77junk")]

    def babble(req, n):
        tid = req[:2]
        return [(0, tid + b"\x00\x00\x00\xFE\x01\x04\xFB")] + [(0, b"\x55" * 4096)] * 20

    async def main():
        async with Server(garbage) as g, Server(babble) as b:
            wires = [await connect(g.port), await connect(b.port)]
            r = make_round([[(0, mbap_request(1, 0, 2)), (1, mbap_request(2, 0, 2))], [(2, mbap_request(1, 0, 125))]])
            await r.start(wires, asyncio.get_running_loop())
            st = r.status.tolist()
            assert st[0] == _wire.EX_BAD_FRAME and st[1] == _wire.EX_BAD_FRAME
            assert r.answer(0).startswith(b"\x00\x01\x77\x77")
            # 6 + 254 bytes is a complete (bad-content) answer for the decoder to judge: it is
            # framed, not babble; babble is an answer that never completes
            assert st[2] == _wire.EX_OK
            for w in wires:
                w.close()
    run(main)


def test_overflow_without_completion(run):
    def endless_hdlc(req, n):
        return [(0, b"\x7E\xA7\xFF")] + [(0, b"\x00" * 8192)] * 10

    async def main():
        async with Server(endless_hdlc, size=9) as s:
            w = await connect(s.port)
            req = bytes([0x7E, 0xA0, 0x07, 0x03, 0x21, 0x93, 0x0F, 0x01, 0x7E])
            r = make_round([[(0, req)]], framing=_wire.FRAMING_HDLC)
            await r.start([w], asyncio.get_running_loop())
            # 0x7FF = 2047 bytes announced, no closing flag at its end: a bad frame, found as soon
            # as the announced length is there (not after 64 KiB of babble)
            assert r.status.tolist() == [_wire.EX_BAD_FRAME]
            w.close()
    run(main)


def test_pause_between_exchanges(run):
    async def main():
        async with Server() as s:
            w = await connect(s.port)
            r = make_round([[(0, mbap_request(1, 0, 1)), (1, mbap_request(2, 0, 1)), (2, mbap_request(3, 0, 1))]],
                           pause=0.05)
            await r.start([w], asyncio.get_running_loop())
            assert r.status.tolist() == [0, 0, 0]
            times = [t for t, _ in s.requests]
            assert all(b - a >= 0.045 for a, b in zip(times, times[1:]))
            w.close()
    run(main)


def test_owner_gets_bytes_outside_rounds(run):
    class Owner:
        def __init__(self):
            self.data = bytearray()
            self.lost = []

        def _feed(self, data):
            self.data += data

        def _wire_lost(self, exc):
            self.lost.append(exc)

    async def main():
        async with Server() as s:
            owner = Owner()
            w = await connect(s.port, owner)
            w.write(mbap_request(1, 0, 2))
            for _ in range(200):
                if len(owner.data) >= 13:
                    break
                await asyncio.sleep(0.005)
            assert bytes(owner.data[-4:]) == b"\x00\x00\x00\x01"
            r = make_round([[(0, mbap_request(1, 3, 1))]])
            await r.start([w], asyncio.get_running_loop())
            assert r.status.tolist() == [0] and len(owner.data) == 13     # the round's bytes stayed in C
            w.close()
            for _ in range(200):
                if owner.lost:
                    break
                await asyncio.sleep(0.005)
            assert owner.lost == [None]
    run(main)


def test_abandon(run):
    async def main():
        async with Server(lambda req, n: []) as s:
            w = await connect(s.port)
            r = make_round([[(0, mbap_request(1, 0, 1)), (1, mbap_request(2, 0, 1))]], first=10)
            fut = r.start([w], asyncio.get_running_loop())
            await asyncio.sleep(0.02)
            r.abandon()
            assert fut.done() and r.status.tolist() == [_wire.EX_ABANDONED, _wire.EX_ABANDONED]
            # the wire is free for the next round
            r2 = make_round([[(0, mbap_request(1, 0, 1))]], first=0.05)
            await r2.start([w], asyncio.get_running_loop())
            assert r2.status.tolist() == [_wire.EX_TIMEOUT_FIRST_BYTE]
            w.close()
    run(main)


def test_round_arguments_refused():
    fb = FrameBatch.from_frames([b"\x01", b"\x02"])
    with pytest.raises(ValueError, match="slot_start"):
        Round(fb, [0, 1], [0, 0], [1, 1], 1, 1, 1)
    with pytest.raises(ValueError, match="one entry per request"):
        Round(fb, [0, 2], [0], [1, 1], 1, 1, 1)
    with pytest.raises(ValueError, match="framing"):
        Round(fb, [0, 2], [0, 0], [1, 9], 1, 1, 1)
    with pytest.raises(ValueError, match="first_byte"):
        Round(fb, [0, 2], [0, 0], [1, 1], 0, 1, 1)
    with pytest.raises(ValueError, match="pause"):
        Round(fb, [0, 2], [0, 0], [1, 1], 1, 1, 1, pause=-1)
    with pytest.raises(ValueError, match="inter_byte"):
        Round(fb, [0, 2], [0, 0], [1, 1], 1, float("nan"), 1)
    r = Round(fb, [0, 2], [0, 0], [1, 1], 1, 1, 1)

    async def main():
        with pytest.raises(ValueError, match="1 slots"):
            r.start([], asyncio.get_running_loop())
        with pytest.raises(TypeError):
            r.start(["not a wire"], asyncio.get_running_loop())

    asyncio.run(main())


def test_slots_reported_done_before_the_round_ends(run):
    def slow_for_unit_9(req, n):
        return [(0.3, ok(req, n)[0][1])] if req[6] == 9 else ok(req, n)

    async def main():
        async with Server(slow_for_unit_9) as slow, Server() as a, Server() as b:
            wires = [await connect(s.port) for s in (slow, a, b)]
            reports: list[tuple[float, list[int]]] = []
            r = make_round([[(0, mbap_request(9, 0, 1))], [(1, mbap_request(1, 0, 1))], [(2, mbap_request(1, 0, 1))]])
            t0 = time.monotonic()
            fut = r.start(wires, asyncio.get_running_loop(), lambda slots: reports.append((time.monotonic() - t0, list(slots))))
            await fut
            done = [s for _t, slots in reports for s in slots]
            assert sorted(done) == [0, 1, 2] and done[-1] == 0
            assert all(t < 0.2 for t, slots in reports if 0 not in slots)   # freed early
            assert len(reports) <= 3
            for w in wires:
                w.close()
    run(main)


def test_empty_round_resolves_at_once(run):
    async def main():
        r = Round(FrameBatch(), [0], [], [], 1, 1, 1)
        assert (await r.start([], asyncio.get_running_loop())) is r
        frames, index = r.answers()
        assert len(frames) == 0 and len(index) == 0
    run(main)
