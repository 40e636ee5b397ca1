"""Links and transports against a misbehaving loopback server and a real pty serial line, on
uvloop and on the stock asyncio loop."""
from __future__ import annotations

import asyncio
import os
import time

import pytest
import uvloop

from faultserver import FaultServer, complete, frame
from meterpoll.engine.errors import FrameOverflow, LinkBusy, LinkClosed, LinkError, LinkTimeout
from meterpoll.engine.link import Link
from meterpoll.engine.transport import Deadlines, SerialTransport, TcpTransport

FAST = Deadlines(first_byte=0.3, inter_byte=0.1, total=2.0, connect=1.0)


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request):
    def runner(coro):
        return uvloop.run(coro) if request.param == "uvloop" else asyncio.run(coro)
    return runner


def tcp_link(server: FaultServer, pause: float = 0.0) -> Link:
    return Link(TcpTransport("127.0.0.1", server.port), pause=pause)


def test_exchange_ok(run):
    async def main():
        async with FaultServer("ok") as srv:
            link = tcp_link(srv)
            async with link.lease("m1") as lease:
                assert await lease.exchange(frame(b"abc"), complete, FAST) == frame(b"cba")
                assert await lease.exchange(frame(b""), complete, FAST) == frame(b"")
            await link.close()
            assert link.metrics.ok == 2 and link.metrics.bytes_out == 5 and link.metrics.bytes_in == 5
            assert sum(link.metrics.latency_counts) == 2
    run(main())


@pytest.mark.parametrize(("mode", "phase", "partial"), [
    ("silent", "first_byte", b""),
    ("stall", "inter_byte", b"\x03c"),
])
def test_timeouts_name_their_phase_and_keep_partial_bytes(run, mode, phase, partial):
    async def main():
        async with FaultServer(mode) as srv:
            link = tcp_link(srv)
            t = time.monotonic()
            async with link.lease("m") as lease:
                with pytest.raises(LinkTimeout) as ei:
                    await lease.exchange(frame(b"abc"), complete, FAST)
            elapsed = time.monotonic() - t
            assert ei.value.phase == phase and ei.value.partial == partial
            assert isinstance(ei.value, TimeoutError)
            limit = FAST.first_byte if phase == "first_byte" else FAST.inter_byte
            assert limit * 0.9 <= elapsed < limit + 0.5
            assert link.metrics.timeouts == 1
            await link.close()
    run(main())


def test_late_answer_is_flushed_before_the_next_request(run):
    async def main():
        async with FaultServer("late", delay=0.4) as srv:
            link = tcp_link(srv)
            async with link.lease("m") as lease:
                with pytest.raises(LinkTimeout):
                    await lease.exchange(frame(b"one"), complete, FAST)
                await asyncio.sleep(0.3)  # the late answer to "one" arrives now
                srv.mode = "ok"
                assert await lease.exchange(frame(b"two"), complete, FAST) == frame(b"owt")
            assert link.metrics.flushed_bytes == 4
            await link.close()
    run(main())


def test_stale_duplicate_never_answers_the_next_request(run):
    async def main():
        async with FaultServer("double") as srv:
            link = tcp_link(srv)
            async with link.lease("m") as lease:
                assert await lease.exchange(frame(b"ab"), complete, FAST) == frame(b"ba")
                await asyncio.sleep(0.05)
                assert await lease.exchange(frame(b"cd"), complete, FAST) == frame(b"dc")
            assert link.metrics.flushed_bytes == 3
            await link.close()
    run(main())


def test_dribbling_answer_within_inter_byte_deadline(run):
    async def main():
        async with FaultServer("dribble", delay=0.02) as srv:
            link = tcp_link(srv)
            async with link.lease("m") as lease:
                assert await lease.exchange(frame(b"hello"), complete, FAST) == frame(b"olleh")
            await link.close()
    run(main())


def test_total_deadline_cuts_a_slow_dribble(run):
    async def main():
        async with FaultServer("dribble", delay=0.05) as srv:
            link = tcp_link(srv)
            d = Deadlines(first_byte=0.3, inter_byte=0.2, total=0.12)
            async with link.lease("m") as lease:
                with pytest.raises(LinkTimeout) as ei:
                    await lease.exchange(frame(b"0123456789"), complete, d)
            assert ei.value.phase == "total" and 0 < len(ei.value.partial) < 11
            await link.close()
    run(main())


def test_disconnect_mid_frame_then_reconnect(run):
    async def main():
        async with FaultServer("disconnect") as srv:
            link = tcp_link(srv)
            async with link.lease("m") as lease:
                with pytest.raises(LinkClosed) as ei:
                    await lease.exchange(frame(b"abcd"), complete, FAST)
                assert ei.value.partial and "mid-frame" in str(ei.value)
                srv.mode = "ok"
                assert await lease.exchange(frame(b"x"), complete, FAST) == frame(b"x")
            assert srv.connections == 2 and link.metrics.reconnects == 1
            await link.close()
    run(main())


def test_babbling_device_is_cut_off(run):
    async def main():
        async with FaultServer("babble", limit=400_000) as srv:
            link = tcp_link(srv)
            d = Deadlines(first_byte=0.5, inter_byte=0.5, total=3.0)

            def never_complete(buf):  # a protocol waiting for an end marker that never comes
                return 0

            async with link.lease("m") as lease:
                with pytest.raises(FrameOverflow) as ei:
                    await lease.exchange(frame(b"a"), never_complete, d)
            assert len(ei.value.partial) > 65536 and link.metrics.overflows == 1
            await link.close()
    run(main())


def test_garbage_is_an_error_with_the_bytes(run):
    async def main():
        async with FaultServer("garbage") as srv:
            link = tcp_link(srv)
            async with link.lease("m") as lease:
                with pytest.raises(LinkError) as ei:
                    await lease.exchange(frame(b"a"), complete, FAST)
            assert ei.value.partial.startswith(b"\xff")
            await link.close()
    run(main())


def test_connect_refused_and_connect_timeout(run):
    async def main():
        link = Link(TcpTransport("127.0.0.1", 1))  # nothing listens on port 1
        async with link.lease("m") as lease:
            with pytest.raises(LinkClosed, match="cannot connect"):
                await lease.exchange(frame(b"a"), complete, FAST)
        await link.close()
    run(main())


def test_pause_between_exchanges(run):
    async def main():
        async with FaultServer("ok") as srv:
            link = tcp_link(srv, pause=0.1)
            async with link.lease("m") as lease:
                await lease.exchange(frame(b"a"), complete, FAST)
                t = time.monotonic()
                await lease.exchange(frame(b"b"), complete, FAST)
                assert time.monotonic() - t >= 0.09
            await link.close()
    run(main())


def test_priority_lane_and_round_robin(run):
    async def main():
        async with FaultServer("ok") as srv:
            link = tcp_link(srv)
            order = []

            async def job(owner, tag, priority=False):
                async with link.lease(owner, priority=priority) as lease:
                    await lease.exchange(frame(tag.encode()), complete, FAST)
                    order.append(tag)

            async with link.lease("holder"):
                tasks = [asyncio.create_task(job("A", "A1")), asyncio.create_task(job("A", "A2")),
                         asyncio.create_task(job("A", "A3")), asyncio.create_task(job("B", "B1")),
                         asyncio.create_task(job("raw", "P", priority=True))]
                await asyncio.sleep(0.05)
                assert link.waiting == 5
            await asyncio.gather(*tasks)
            assert order == ["P", "A1", "B1", "A2", "A3"]
            await link.close()
    run(main())


def test_cancelled_waiter_leaves_the_queue(run):
    async def main():
        async with FaultServer("ok") as srv:
            link = tcp_link(srv)

            async def waiter():
                async with link.lease("w"):
                    pass

            async with link.lease("holder"):
                t = asyncio.create_task(waiter())
                await asyncio.sleep(0.01)
                assert link.waiting == 1
                t.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await t
                assert link.waiting == 0
            async with link.lease("next") as lease:  # the link is free again
                assert await lease.exchange(frame(b"z"), complete, FAST) == frame(b"z")
            await link.close()
    run(main())


def test_a_silent_link_does_not_stall_another(run):
    async def main():
        async with FaultServer("silent") as dead, FaultServer("ok") as alive:
            slow, fast = tcp_link(dead), tcp_link(alive)
            done_fast = []

            async def poll_slow():
                async with slow.lease("s") as lease:
                    with pytest.raises(LinkTimeout):
                        await lease.exchange(frame(b"x"), complete, Deadlines(first_byte=1.0, inter_byte=0.1))

            async def poll_fast():
                t = time.monotonic()
                for i in range(20):
                    async with fast.lease("f%d" % i) as lease:
                        await lease.exchange(frame(b"y"), complete, FAST)
                done_fast.append(time.monotonic() - t)

            await asyncio.gather(poll_slow(), poll_fast())
            assert done_fast[0] < 0.5
            await slow.close()
            await fast.close()
    run(main())


def test_close_fails_waiters_and_refuses_new_leases(run):
    async def main():
        async with FaultServer("ok") as srv:
            link = tcp_link(srv)

            async def waiter():
                async with link.lease("w"):
                    pass

            async with link.lease("holder"):
                t = asyncio.create_task(waiter())
                await asyncio.sleep(0.01)
                await link.close()
            with pytest.raises(LinkBusy):
                await t
            with pytest.raises(LinkBusy):
                async with link.lease("late"):
                    pass
    run(main())


def test_deadlines_are_validated():
    with pytest.raises(ValueError, match="first_byte"):
        Deadlines(first_byte=0)
    with pytest.raises(ValueError, match="inter_byte"):
        Deadlines(inter_byte=-1)


def test_serial_line_over_a_pty(run):
    """pyserial on the slave side of a real pty; the test plays the meter on the master side."""
    async def main():
        master, slave = os.openpty()
        os.set_blocking(master, False)
        link = Link(SerialTransport(os.ttyname(slave), baudrate=9600))
        loop = asyncio.get_running_loop()

        def meter():  # answers every request frame read from the master side
            data = os.read(master, 1024)
            if data and len(data) >= 1 + data[0]:
                os.write(master, frame(data[1:1 + data[0]][::-1]))

        loop.add_reader(master, meter)
        try:
            async with link.lease("m") as lease:
                assert await lease.exchange(frame(b"serial"), complete, FAST) == frame(b"laires")
                loop.remove_reader(master)
                with pytest.raises(LinkTimeout):
                    await lease.exchange(frame(b"x"), complete, FAST)
        finally:
            loop.remove_reader(master)
            await link.close()
            os.close(master)
            os.close(slave)
    run(main())


def test_serial_port_that_does_not_exist(run):
    async def main():
        link = Link(SerialTransport("/dev/does-not-exist-meterpoll"))
        async with link.lease("m") as lease:
            with pytest.raises(LinkClosed, match="cannot open"):
                await lease.exchange(frame(b"a"), complete, FAST)
        await link.close()
    run(main())
