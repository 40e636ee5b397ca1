"""Load-profile catch-up resumes from the store after a restart: a new engine (new driver, no
memory of earlier polls) reads only the intervals after the newest stored one; the stored series
has no gaps and no duplicates."""
import math
import time

import numpy as np
import uvloop

from meterpoll.bindings.readings import obis
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.drivers.dlms import DlmsDriver
from meterpoll.engine.engine import Engine
from meterpoll.engine.sim.dlms import PROFILE_PERIOD, DlmsSim
from meterpoll.engine.sim.server import SimServer
from meterpoll.engine.store import open_store

A_PLUS = obis("1.0.1.29.0.255")


def test_restart_resumes_catch_up_from_the_store(tmp_path):
    async def main():
        sim = DlmsSim(addresses=(7,), seed=3)
        store = await open_store("sqlite:///" + str(tmp_path / "p.db"))
        fresh = await open_store("sqlite:///" + str(tmp_path / "fresh.db"))
        try:
            async with SimServer(sim) as s:
                cfg = MeterConfig(name="p", protocol="dlms", ip_address="127.0.0.1", port=s.port,
                                  connection_address="7", reads=("profile",), data_polling_length=1,
                                  waiting_time=500, pause_time=0)

                async def poll(st):
                    async with Engine(store=st, drivers={"dlms": DlmsDriver()}, schedule=False) as eng:
                        mid = eng.add_meter(cfg, meter_id=1)
                        r = await eng.poll_now(mid)
                        assert eng.polls[-1].ok, eng.polls[-1]
                        return r[r["obis"] == A_PLUS]

                first = await poll(store)
                assert len(first) == 96
                before = math.floor(time.time() / PROFILE_PERIOD)
                second = await poll(store)           # a restart: new engine, new driver
                control = await poll(fresh)          # the same restart without stored rows
                closed = math.floor(time.time() / PROFILE_PERIOD) - before + 1
                assert len(second) <= closed         # only intervals closed since the first poll
                assert len(control) == 96            # without the store it would read them all again
                ts = lambda a: a["ts"].astype("datetime64[ms]").astype(np.int64) // 1000  # noqa: E731
                assert all(t > ts(first)[-1] for t in ts(second))
                stored = await store.read_readings(1, A_PLUS)
                st = ts(stored)
                assert len(st) == len(set(st.tolist())) == 96 + len(second)
                assert (np.diff(st) == PROFILE_PERIOD).all()  # no gap
        finally:
            await store.close()
            await fresh.close()

    uvloop.run(main())
