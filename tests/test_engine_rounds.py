"""Scheduled session-less polls (Modbus over TCP and over TCP-to-RS-485 gateways) run in the
native exchange core: many meters per Round, the same readings and the same failure qualities
as the Python session path, a silent meter costing only its own link, a clean stop."""
import asyncio
import time

import numpy as np
import pytest
import uvloop

from meterpoll.bindings import modbus as codec
from meterpoll.bindings.readings import Quality
from meterpoll.engine.drivers.modbus import ModbusDriver
from meterpoll.engine.engine import Engine
from meterpoll.engine.sim.modbus import ModbusSim
from meterpoll.engine.sim.server import SimServer
from test_driver_modbus import cfg, check_against_model


def run(coro):
    return uvloop.run(asyncio.wait_for(coro, 60))


async def collect(eng, want: set[int], timeout: float = 10.0) -> dict[int, np.ndarray]:
    """Readings per meter from the subscriber until every meter in ``want`` was seen."""
    got: dict[int, list[np.ndarray]] = {}

    async def reader():
        async for batch in eng.subscribe():
            for mid in np.unique(batch["meter"]).tolist():
                got.setdefault(mid, []).append(batch[batch["meter"] == mid])
            if want <= set(got):
                return

    await asyncio.wait_for(reader(), timeout)
    return {k: np.concatenate(v) for k, v in got.items()}


def test_scheduled_polls_run_in_rounds_and_match_the_model():
    gw = ModbusSim(addresses=(1, 2, 3), seed=4)
    d1, d2 = ModbusSim(addresses=(1,), seed=5), ModbusSim(addresses=(1,), seed=6)

    async def main():
        async with SimServer(gw) as g, SimServer(d1) as s1, SimServer(d2) as s2, \
                Engine(drivers={"modbus": ModbusDriver()}) as eng:
            ids = [eng.add_meter(cfg(g.port, a, link="gateway", period=1, periodType="hours")) for a in (1, 2, 3)]
            ids += [eng.add_meter(cfg(s.port, 1, period=1, periodType="hours")) for s in (s1, s2)]
            for mid in ids:                      # the first poll connects (Python path)
                await eng.poll_now(mid)
            assert eng.rounds == 0
            served = len(gw.served)
            sub = asyncio.ensure_future(collect(eng, set(ids)))
            await asyncio.sleep(0)
            now = time.time()
            for mid in ids:
                eng.schedule_at(mid, now)
            got = await sub
            assert eng.rounds >= 1 and eng.fast_polls == 5
            for mid, model in zip(ids, [gw.models[1], gw.models[2], gw.models[3], d1.models[1], d2.models[1]]):
                r = got[mid]
                assert len(r) == len(codec.SDM630)
                check_against_model(r, model)
            assert all(p.ok for p in eng.polls[-5:])
            # the gateway answered its three meters one at a time, each read once
            assert len(gw.served) - served == 3 * len(codec.SDM630.plan(125))
            m = eng.metrics()
            assert m["native_polls"] == 5 and m["global"]["timeouts"] == 0
            link = eng.links[("tcp", "127.0.0.1", g.port)].metrics
            assert link.ok == link.exchanges and link.bytes_in > 0 and sum(link.latency_counts) == link.ok
    run(main())


@pytest.mark.parametrize("kind,link", [("silence", "tcp"), ("bad_checksum", "gateway"), ("bad_checksum", "tcp"),
                                       ("truncate", "tcp"), ("disconnect", "gateway"), ("garbage", "tcp")])
def test_faults_in_rounds_give_the_python_paths_qualities(kind, link):
    async def poll_both_ways(fast: bool):
        sim = ModbusSim(addresses=(1,), seed=1)
        async with SimServer(sim) as srv, \
                Engine(drivers={"modbus": ModbusDriver()}, fast_path=fast) as eng:
            mid = eng.add_meter(cfg(srv.port, 1, link=link, waiting_time=150, interval_time=30,
                                    period=1, periodType="hours"))
            await eng.poll_now(mid)              # connected and healthy
            setattr(srv.faults, kind, 1.0)       # the connection's session holds this object
            sub = asyncio.ensure_future(collect(eng, {mid}))
            await asyncio.sleep(0)
            eng.schedule_at(mid, time.time())
            r = (await sub)[mid]
            return r, eng.polls[-1], eng.rounds

    async def main():
        (rf, pf, nf), (rs, ps, ns) = await poll_both_ways(True), await poll_both_ways(False)
        assert nf == 1 and ns == 0
        assert len(rf) == len(rs) == len(codec.SDM630)
        assert np.isnan(rf["value"]).all() and np.isnan(rs["value"]).all()
        assert sorted(rf["obis"].tolist()) == sorted(rs["obis"].tolist())
        assert set(rf["status"].tolist()) == set(rs["status"].tolist()) != {Quality.OK}
        assert not pf.ok and not ps.ok and pf.quality == ps.quality
    run(main())


def test_a_silent_meter_behind_a_gateway_costs_only_its_link():
    gw = ModbusSim(addresses=(2,), seed=7)          # unit 1 does not exist: silence
    other = ModbusSim(addresses=(1,), seed=8)

    async def main():
        async with SimServer(gw) as g, SimServer(other) as o, \
                Engine(drivers={"modbus": ModbusDriver()}) as eng:
            silent = eng.add_meter(cfg(g.port, 1, link="gateway", waiting_time=400, period=1, periodType="hours"))
            ok2 = eng.add_meter(cfg(g.port, 2, link="gateway", period=1, periodType="hours"))
            far = eng.add_meter(cfg(o.port, 1, period=1, periodType="hours"))
            for mid in (ok2, far):
                await eng.poll_now(mid)
            sub = asyncio.ensure_future(collect(eng, {silent, ok2, far}))
            await asyncio.sleep(0)
            t0 = time.time()
            for mid in (silent, ok2, far):
                eng.schedule_at(mid, t0)
            got = await sub
            assert (got[silent]["status"] == Quality.TIMEOUT).all() and np.isnan(got[silent]["value"]).all()
            assert len(got[silent]) == len(codec.SDM630)
            check_against_model(got[ok2], gw.models[2])
            check_against_model(got[far], other.models[1])
            log = {p.meter: p for p in eng.polls[-3:]}
            assert not log[silent].ok and "no answer within 0.400 s" in log[silent].error
            assert log[far].ok and log[far].duration < 0.35   # did not wait for the silent meter
            assert log[ok2].ok
    run(main())


def test_stop_abandons_a_round_and_records_it():
    sim = ModbusSim(addresses=(1,), seed=9)

    async def main():
        async with SimServer(sim) as srv:
            eng = Engine(drivers={"modbus": ModbusDriver()})
            await eng.start()
            mid = eng.add_meter(cfg(srv.port, 1, waiting_time=20000, period=1, periodType="hours"))
            await eng.poll_now(mid)
            srv.faults.silence = 1.0
            eng.schedule_at(mid, time.time())
            for _ in range(100):
                if eng.rounds:
                    break
                await asyncio.sleep(0.01)
            t0 = time.monotonic()
            await eng.stop(abandon_after=0.2)
            assert time.monotonic() - t0 < 2.0
            p = eng.polls[-1]
            assert not p.ok and p.quality == Quality.TIMEOUT and "abandoned" in p.error
            link = next(iter(eng.links.values()))
            assert not link._busy and not link._in_round
    run(main())


def test_poll_many_connects_then_runs_rounds_and_returns_committed_readings(tmp_path):
    from meterpoll.engine.store import open_store

    sims = [ModbusSim(addresses=(1,), seed=20 + i) for i in range(6)]

    async def main():
        store = await open_store("sqlite:///" + str(tmp_path / "m.db"))
        servers = [await SimServer(s).start() for s in sims]
        try:
            for fast in (True, False):
                async with Engine(store=store, drivers={"modbus": ModbusDriver()}, schedule=False,
                                  fast_path=fast, max_concurrency=4) as eng:
                    ids = [eng.add_meter(cfg(srv.port, 1), meter_id=100 * fast + k) for k, srv in enumerate(servers)]
                    for call in range(3):
                        r = await eng.poll_many(ids + ids[:2])      # duplicates polled once
                        assert len(r) == 6 * len(codec.SDM630)
                        for mid, sim in zip(ids, sims):
                            check_against_model(r[r["meter"] == mid], sim.models[1])
                    # first call connected through the Python path; the next two ran natively,
                    # four links at a time (max_concurrency) in several rounds
                    assert eng.fast_polls == (12 if fast else 0)
                    assert eng.rounds >= (3 if fast else 0)
                    with pytest.raises(KeyError):
                        await eng.poll_many([999])
                    stored = await store.read_readings(ids[0])
                    assert len(stored) == 3 * len(codec.SDM630)
        finally:
            for srv in servers:
                await srv.stop()
            await store.close()
    run(main())


def test_every_poll_is_in_the_store_poll_log(tmp_path):
    """Native rounds and Python sessions both write their outcome, duration and bytes."""
    from meterpoll.engine.store import PollOutcome, open_store

    good, silent = ModbusSim(addresses=(1,), seed=30), ModbusSim(addresses=(2,), seed=31)

    async def main():
        store = await open_store("sqlite:///" + str(tmp_path / "log.db"))
        async with SimServer(good) as g, SimServer(silent) as s, \
                Engine(store=store, drivers={"modbus": ModbusDriver()}, schedule=False) as eng:
            a = eng.add_meter(cfg(g.port, 1), meter_id=7)
            b = eng.add_meter(cfg(s.port, 1, waiting_time=100), meter_id=8)     # unit 1 is not there
            nowhere = eng.add_meter(cfg(1, 1, waiting_time=100), meter_id=9)    # nothing listens on port 1
            await eng.poll_many([a, b, nowhere])      # Python sessions (they connect)
            await eng.poll_many([a, b])               # native round
            assert eng.fast_polls == 2
            log = await store.read_poll_log()
            by = {}
            for row in log:
                by.setdefault(int(row["meter"]), []).append(row)
            assert [int(r["outcome"]) for r in by[7]] == [PollOutcome.OK, PollOutcome.OK]
            assert [int(r["outcome"]) for r in by[8]] == [PollOutcome.TIMEOUT, PollOutcome.TIMEOUT]
            assert [int(r["outcome"]) for r in by[9]] == [PollOutcome.NO_CONNECTION]
            assert all(r["bytes"] > 100 for r in by[7])           # requests + 51 values answered
            assert all(r["duration_ms"] >= 90 for r in by[8])     # waited out its 100 ms
        await store.close()
    run(main())
