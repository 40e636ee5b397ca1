"""kill -9 in the middle of polling: every reading the engine reported as committed is in the
SQLite store afterwards, exactly once, and a restarted engine goes on writing to the same store."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import uvloop

from meterpoll.engine.store import open_store

CHILD = textwrap.dedent(r"""
    import asyncio, json, sys, uvloop
    from meterpoll.engine.config import MeterConfig
    from meterpoll.engine.drivers import driver, simulator
    from meterpoll.engine.engine import Engine
    from meterpoll.engine.sim.server import SimServer
    from meterpoll.engine.store import open_store

    async def main(db, n):
        store = await open_store("sqlite:///" + db)
        sims = [await SimServer(simulator("modbus", addresses=(1,), seed=i)).start() for i in range(n)]
        eng = Engine(store=store, drivers={"modbus": driver("modbus")}, schedule=False, tick=0.01)
        async with eng:
            ids = [eng.add_meter(MeterConfig(name="m%d" % i, protocol="modbus", ip_address="127.0.0.1",
                                             port=sims[i].port, connection_address="1", pause_time=0,
                                             reads=("energy",))) for i in range(n)]

            async def report():
                async for batch in eng.subscribe():  # only batches already committed to the store
                    keys = [[int(m), int(o), int(t)] for m, o, t in
                            zip(batch["meter"], batch["obis"], batch["ts"].astype("int64"))]
                    print(json.dumps(keys), flush=True)

            asyncio.create_task(report())
            for _ in range(10_000):  # bounded: the test kills us long before
                await asyncio.gather(*(eng.poll_now(i) for i in ids))

    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
""")


def test_sigkill_mid_polling_loses_nothing_committed(tmp_path):
    db = str(tmp_path / "crash.db")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, db, "20"], stdout=subprocess.PIPE, text=True)
    committed = []
    deadline = time.monotonic() + 60
    try:
        while len(committed) < 6 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed.append(json.loads(line))
        assert len(committed) >= 6, "the engine reported too few committed batches"
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: it is polling and committing right now
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    keys = {tuple(k) for batch in committed for k in batch}

    async def check():
        store = await open_store("sqlite:///" + db)
        try:
            stored = set()
            for meter in sorted({k[0] for k in keys}):
                r = await store.read_readings(meter)
                got = list(zip(r["meter"].tolist(), r["obis"].tolist(), r["ts"].astype("int64").tolist()))
                assert len(got) == len(set(got)), "duplicate readings for meter %d" % meter
                assert not np.isnan(r["value"]).any() and (r["value"] >= 0).all()
                stored.update(got)
            missing = keys - stored
            assert not missing, "%d committed readings lost, e.g. %s" % (len(missing), sorted(missing)[:3])
            before = await store.count_readings()
        finally:
            await store.close()
        return before

    before = uvloop.run(check())
    # a restarted engine writes on into the same store
    proc = subprocess.Popen([sys.executable, "-c", CHILD, db, "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()

    async def count():
        store = await open_store("sqlite:///" + db)
        try:
            return await store.count_readings()
        finally:
            await store.close()

    assert uvloop.run(count()) > before
