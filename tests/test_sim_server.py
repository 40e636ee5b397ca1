"""The simulator server on real sockets and a pty, with every fault, read by our own links."""
import asyncio

import pytest
import uvloop

from faultserver import complete, frame
from meterpoll.engine.errors import LinkClosed, LinkError, LinkTimeout
from meterpoll.engine.link import Link
from meterpoll.engine.sim.server import Answerer, Faults, SimSerial, SimServer
from meterpoll.engine.transport import Deadlines, SerialTransport, TcpTransport

FAST = Deadlines(first_byte=0.3, inter_byte=0.1, total=2.0, connect=1.0)


class Reverse(Answerer):
    """Toy protocol: length byte + payload; the answer carries the payload reversed.  A payload
    starting with b"!" is a broadcast: no answer."""

    def request_length(self, buf):
        n = 1 + buf[0]
        return n if len(buf) >= n else 0

    def answer(self, request, now):
        payload = request[1:]
        if payload.startswith(b"!"):
            return None
        return frame(payload[::-1])


def test_fault_spec_parsing():
    f = Faults.parse("silence=0.1,late,late_delay=0.5,seed=7")
    assert f.silence == 0.1 and f.late == 1.0 and f.late_delay == 0.5 and f.seed == 7
    with pytest.raises(ValueError, match="unknown fault"):
        Faults.parse("explode=1")
    with pytest.raises(ValueError, match="probability"):
        Faults.parse("silence=2")


def test_simulators_listen_on_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        SimServer(Reverse(), host="0.0.0.0")


@pytest.mark.parametrize(("fault", "error"), [
    ("", None), ("silence", LinkTimeout), ("late", LinkTimeout), ("bad_checksum", None),
    ("truncate", LinkTimeout), ("disconnect", LinkClosed), ("dribble", None), ("garbage", LinkError),
])
def test_each_fault_over_tcp(fault, error):
    async def main():
        faults = Faults.parse(fault + ("=1,late_delay=0.5,dribble_delay=0.01" if fault else ""))
        async with SimServer(Reverse(), faults) as sim:
            link = Link(TcpTransport("127.0.0.1", sim.port))
            async with link.lease("m") as lease:
                if error is None:
                    got = await lease.exchange(frame(b"abcdef"), complete, FAST)
                    want = frame(b"fedcba")
                    assert got == (Reverse().corrupt_checksum(want) if fault == "bad_checksum" else want)
                else:
                    def strict(buf):  # garbage must not look like a frame
                        return -1 if buf[0] != 6 else complete(buf)
                    with pytest.raises(error):
                        await lease.exchange(frame(b"abcdef"), strict, FAST)
            await link.close()
            assert sim.stats["requests"] == 1 and (not fault or sim.stats[fault] == 1)
    uvloop.run(main())


def test_broadcast_gets_no_answer_and_faults_are_reproducible():
    async def main():
        async with SimServer(Reverse(), Faults(silence=0.5, seed=42)) as sim:
            link = Link(TcpTransport("127.0.0.1", sim.port))
            outcomes = []
            async with link.lease("m") as lease:
                await lease.send(frame(b"!all"), FAST)
                for i in range(20):
                    try:
                        await lease.exchange(frame(b"%d" % i), complete, Deadlines(first_byte=0.05, inter_byte=0.05))
                        outcomes.append(1)
                    except LinkTimeout:
                        outcomes.append(0)
            await link.close()
            return outcomes
    a, b = uvloop.run(main()), uvloop.run(main())
    assert a == b and 0 < sum(a) < 20


def test_serial_simulator_on_a_pty():
    async def main():
        async with SimSerial(Reverse()) as sim:
            link = Link(SerialTransport(sim.path, baudrate=9600))
            async with link.lease("m") as lease:
                assert await lease.exchange(frame(b"pty"), complete, FAST) == frame(b"ytp")
            await link.close()
            assert sim.stats["answers"] == 1
    asyncio.run(main())
