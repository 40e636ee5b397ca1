"""The engine with a toy protocol driver against simulators on loopback: poll-now, scheduling,
failures recorded as non-OK readings (never zeros), circuit breaker, shared links, raw exchange,
subscribers, graceful stop."""
import asyncio
import time

import numpy as np
import pytest
import uvloop

from faultserver import complete, frame
from meterpoll.bindings.readings import READING_DTYPE, FRAME_STATUS_DTYPE, Quality
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.driver import Driver, PollResult
from meterpoll.engine.engine import Engine
from meterpoll.engine.sim.server import Answerer, Faults, SimServer

OBIS_LEN = 0x0100010800FF


class Echo(Answerer):
    """Toy meter: answers payload P (addressed by its first byte) with P reversed."""

    def __init__(self, addresses=(1,)):
        self.addresses = set(addresses)

    def request_length(self, buf):
        n = 1 + buf[0]
        return n if len(buf) >= n else 0

    def answer(self, request, now):
        if request[1] not in self.addresses:
            return None
        return frame(request[1:][::-1])


class ToyDriver(Driver):
    name = "modbus"  # registered under a real protocol name so MeterConfig accepts it
    complete = staticmethod(complete)

    async def poll(self, lease, meter, deadlines):
        addr = int(meter.connection_address or "1")
        res = PollResult()
        for payload in (bytes([addr]) + b"abc", bytes([addr]) + b"hello"):
            res.frames.append(await lease.exchange(frame(payload), complete, deadlines))
            res.requests.append(payload)
        res.received_at = time.time()
        return res

    def expected_obis(self, meter):
        return [OBIS_LEN]

    def decode_batch(self, frames, requests, meter_ids, received_at):
        out = np.zeros(len(frames), READING_DTYPE)
        st = np.zeros(len(frames), FRAME_STATUS_DTYPE)
        for i, f in enumerate(frames):
            out[i] = (meter_ids[i], OBIS_LEN, received_at[i], float(f[0]), 255, 0)
            st[i]["count"] = 1
            st[i]["first"] = i
        return out, st


def cfg(port, addr=1, **kw):
    return MeterConfig(name="m%d" % addr, protocol="modbus", ip_address="127.0.0.1", port=port,
                       connection_address=str(addr), waiting_time=200, interval_time=50, pause_time=0, **kw)


def run(coro):
    return uvloop.run(coro)


def test_poll_now_returns_committed_readings():
    async def main():
        async with SimServer(Echo()) as sim, Engine(drivers={"modbus": ToyDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(sim.port))
            r = await eng.poll_now(mid)
            assert r.dtype == READING_DTYPE and r["value"].tolist() == [4.0, 6.0]
            assert (r["meter"] == mid).all() and (r["status"] == Quality.OK).all()
            assert eng.polls[-1].ok and eng.polls[-1].frames == 2
    run(main())


def test_silent_meter_gives_timeout_readings_not_zeros_and_is_demoted():
    async def main():
        async with SimServer(Echo(), Faults(silence=1.0)) as sim, \
                Engine(drivers={"modbus": ToyDriver()}, schedule=False, breaker_threshold=2) as eng:
            mid = eng.add_meter(cfg(sim.port))
            for _ in range(2):
                r = await eng.poll_now(mid)
                assert len(r) == 1 and np.isnan(r["value"][0]) and r["status"][0] == Quality.TIMEOUT
                assert r["obis"][0] == OBIS_LEN
            assert eng.meters[mid].breaker.demoted and eng.metrics()["demoted"] == 1
            assert not eng.polls[-1].ok and "no answer" in eng.polls[-1].error
    run(main())


def test_meters_behind_one_gateway_share_a_link_and_other_links_run_concurrently():
    async def main():
        async with SimServer(Echo(addresses=(1, 2, 3))) as gw, SimServer(Echo(), Faults(silence=1.0)) as dead, \
                Engine(drivers={"modbus": ToyDriver()}, schedule=False) as eng:
            ids = [eng.add_meter(cfg(gw.port, a)) for a in (1, 2, 3)]
            slow = eng.add_meter(MeterConfig(name="dead", protocol="modbus", ip_address="127.0.0.1",
                                             port=dead.port, waiting_time=1500))
            assert len(eng.links) == 2
            t = time.monotonic()
            slow_task = asyncio.create_task(eng.poll_now(slow))
            results = await asyncio.gather(*(eng.poll_now(i) for i in ids))
            assert time.monotonic() - t < 1.0  # the silent meter's 1.5 s deadline did not hold them up
            assert all(len(r) == 2 and (r["status"] == 0).all() for r in results)
            assert gw.stats["connections"] == 1 and gw.stats["requests"] == 6
            r = await slow_task
            assert r["status"][0] == Quality.TIMEOUT
    run(main())


def test_scheduler_fires_due_meters_and_subscribers_see_batches():
    async def main():
        async with SimServer(Echo(addresses=(1, 2))) as sim, Engine(drivers={"modbus": ToyDriver()}, tick=0.02) as eng:
            a, b = eng.add_meter(cfg(sim.port, 1)), eng.add_meter(cfg(sim.port, 2))
            got = []

            async def listen():
                async for batch in eng.subscribe():
                    got.append(batch)
                    if sum(len(x) for x in got) >= 4:
                        return

            listener = asyncio.create_task(listen())
            now = time.time()
            eng.schedule_at(a, now)
            eng.schedule_at(b, now)
            await asyncio.wait_for(listener, 5)
            meters = set(np.concatenate(got)["meter"].tolist())
            assert meters == {a, b} and eng.readings_committed >= 4
            assert eng.meters[a].next_due > now + 1  # back on its own schedule
    run(main())


def test_raw_exchange_respects_the_bus_and_returns_bytes():
    async def main():
        async with SimServer(Echo()) as sim, Engine(drivers={"modbus": ToyDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(sim.port))
            assert await eng.raw_exchange(mid, frame(b"\x01xyz")) == frame(b"zyx\x01")
            with pytest.raises(KeyError):
                await eng.raw_exchange(999, b"")
    run(main())


def test_unknown_protocol_is_refused():
    eng = Engine(drivers={"modbus": ToyDriver()})
    with pytest.raises(ValueError, match="protocol: no driver"):
        eng.add_meter(MeterConfig(name="x", protocol="dlms", ip_address="127.0.0.1", port=4059))


def test_stop_abandons_polls_that_outlive_the_grace_period():
    async def main():
        async with SimServer(Echo(), Faults(late=1.0, late_delay=3.0)) as sim:
            eng = Engine(drivers={"modbus": ToyDriver()}, schedule=False)
            await eng.start()
            mid = eng.add_meter(MeterConfig(name="late", protocol="modbus", ip_address="127.0.0.1",
                                            port=sim.port, waiting_time=5000))
            eng._spawn(eng._poll(eng.meters[mid]))
            await asyncio.sleep(0.1)
            t = time.monotonic()
            await eng.stop(abandon_after=0.2)
            assert time.monotonic() - t < 1.5
    run(main())


def test_concurrency_limiter_bounds_and_survives_cancellation():
    from meterpoll.engine.engine import _Limiter

    async def main():
        lim = _Limiter(3)
        active = peak = 0

        async def job(delay):
            nonlocal active, peak
            async with lim:
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(delay)
                active -= 1

        tasks = [asyncio.create_task(job(0.01)) for _ in range(20)]
        await asyncio.sleep(0)
        tasks[10].cancel()  # a waiter cancelled while queued
        await asyncio.gather(*tasks, return_exceptions=True)
        assert peak == 3 and lim.free == 3 and not lim.waiters
    run(main())


class BadFrameDriver(ToyDriver):
    """Answers arrive, but every frame fails decoding (as a CRC error found by the codec)."""

    async def poll(self, lease, meter, deadlines):
        res = await super().poll(lease, meter, deadlines)
        from meterpoll.engine.driver import EventRecord
        res.events.append(EventRecord(ts=1_763_600_000.5, code=1001, text="meter clock +45.0 s off"))
        return res

    def decode_batch(self, frames, requests, meter_ids, received_at):
        out, st = super().decode_batch(frames, requests, meter_ids, received_at)
        st["status"] = 1  # CHECKSUM
        st["count"] = 0
        return out[:0], st


def test_channels_lost_to_bad_frames_become_nan_and_events_are_stored(tmp_path):
    from meterpoll.engine.store import open_store

    async def main():
        store = await open_store("sqlite:///" + str(tmp_path / "e.db"))
        try:
            async with SimServer(Echo()) as sim, Engine(store=store, drivers={"modbus": BadFrameDriver()},
                                                        schedule=False) as eng:
                mid = eng.add_meter(cfg(sim.port))
                r = await eng.poll_now(mid)
                assert len(r) == 1 and np.isnan(r["value"][0]) and r["status"][0] == Quality.CHECKSUM
                assert r["obis"][0] == OBIS_LEN
                assert eng.polls[-1].quality == Quality.CHECKSUM and not eng.polls[-1].ok
                assert eng.events == [(mid, 1_763_600_000.5, 1001, "meter clock +45.0 s off")]
            ev = await store.read_events(mid)
            assert [(e.code, e.text) for e in ev] == [(1001, "meter clock +45.0 s off")]
            assert await store.count_readings() == 1
        finally:
            await store.close()
    run(main())
