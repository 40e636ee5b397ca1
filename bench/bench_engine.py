"""Polling throughput: the engine against simulated Modbus TCP meters on loopback, and the same
meters read by pymodbus's AsyncModbusTcpClient as its users write it, at equal concurrency.

Each poll reads 40 input registers (20 SDM630 float32 values) from one meter and decodes them;
the engine also commits the readings to SQLite.  The simulators run in separate processes.
Sizes: 10,000 meters at scale 1 ($METERPOLL_BENCH_SCALE).  Reported in extra_info and printed:
polls/s, poller CPU us per poll, p50/p99 poll latency, peak RSS.  (pytest-benchmark's own time
covers setup too, so these two are not paired for the ratio table: compare the printed figures.)

Both sides open their connections and run one warm-up round before the measured rounds.
"""
from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import uvloop

from benchutil import scaled

N = scaled(10_000, 50)
PER_PROC = 2500  # meters per simulator process (each needs a listening and an accepted socket)
BASE = 21000
CONCURRENCY = 512
ROUNDS = 2

MAP_TOML = """
name = "sdm630-40"
[defaults]
function = 4
type = "float32"
""" + "".join('[[register]]\nname = "r%d"\naddress = %d\nobis = "1.0.%d.7.0.255"\nunit = "V"\n' % (i, 2 * i, 100 + i)
              for i in range(20))

SIM = r"""
import asyncio, os, struct, sys, time, uvloop
from meterpoll.engine.sim.modbus import ModbusSim

# A lean simulated meter: the register image of a ModbusSim meter taken once at start (float32
# values from its MeterModel), answered by a minimal protocol so that the simulator's own CPU
# stays small and the POLLER's cost decides the polls/s (pinned to the other core).
class Meter(asyncio.Protocol):
    def __init__(self, image):
        self.image = image

    def connection_made(self, tr):
        self.tr = tr
        self.buf = b""

    def data_received(self, data):
        buf = self.buf + data
        while len(buf) >= 12:
            tid, fn, start, count = buf[0:2], buf[7], (buf[8] << 8) | buf[9], (buf[10] << 8) | buf[11]
            regs = self.image.get((fn, start, count))
            if regs is None:
                pdu = bytes([fn | 0x80, 2])
            else:
                pdu = bytes([fn, len(regs)]) + regs
            self.tr.write(tid + b"\x00\x00" + struct.pack(">HB", len(pdu) + 1, buf[6]) + pdu)
            buf = buf[12:]
        self.buf = buf

async def main(first, count, reads):
    if hasattr(os, "sched_setaffinity") and os.cpu_count() > 1:
        os.sched_setaffinity(0, {0})
    loop = asyncio.get_running_loop()
    now = time.time()
    servers = []
    for i in range(count):
        sim = ModbusSim(addresses=(1,), seed=i)
        image = {}
        for fn, start, n in reads:
            req = struct.pack(">HHHBBHH", 0, 0, 6, 1, fn, start, n)
            ans = sim.answer(req, now)
            image[(fn, start, n)] = ans[9:]
        servers.append(await loop.create_server(lambda image=image: Meter(image), "127.0.0.1", first + i, backlog=64))
    print("ready", flush=True)
    await asyncio.sleep(3600)
uvloop.run(main(int(sys.argv[1]), int(sys.argv[2]), [(4, 0, 40)]))
"""


def _pin_poller() -> None:
    """The poller on core 1, the simulators on core 0 (as measured for the issue)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})


def _simulators(script: str, base: int, n: int):
    """Simulator processes of PER_PROC meters each on ports base..base+n-1, the poller pinned
    to the other core while they run."""
    procs = [subprocess.Popen([sys.executable, "-c", script, str(base + first), str(min(PER_PROC, n - first))],
                              stdout=subprocess.PIPE, text=True) for first in range(0, n, PER_PROC)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        _pin_poller()
        yield
        if before is not None:
            os.sched_setaffinity(0, before)
    finally:
        for p in procs:
            p.kill()
            p.wait()
            p.stdout.close()


@pytest.fixture(scope="module")
def sims():
    yield from _simulators(SIM, BASE, N)


def _report(benchmark, polls, wall, cpu, lat, capsys):
    lat = np.asarray(lat)
    info = {"polls_per_s": polls / wall, "cpu_us_per_poll": cpu / polls * 1e6,
            "p50_ms": float(np.percentile(lat, 50) * 1e3), "p99_ms": float(np.percentile(lat, 99) * 1e3),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    benchmark.extra_info.update(info)
    with capsys.disabled():
        print("\n  %s" % " ".join("%s=%.1f" % kv for kv in info.items()))


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@pytest.mark.parametrize("store_kind", ["sqlite", "none"])
def test_engine_modbus_tcp_polls(benchmark, sims, capsys, tmp_path, store_kind):
    """The engine with its SQLite store (decode + commit), and without a store (decode only:
    what the exchange path itself costs)."""
    from meterpoll.engine.config import MeterConfig
    from meterpoll.engine.drivers import driver
    from meterpoll.engine.engine import Engine
    from meterpoll.engine.store import open_store

    mapfile = tmp_path / "sdm630_40.toml"
    mapfile.write_text(MAP_TOML)
    stats = {}

    async def main():
        store = await open_store("sqlite:///" + str(tmp_path / "bench.db")) if store_kind == "sqlite" else None
        eng = Engine(store=store, drivers={"modbus": driver("modbus")}, schedule=False,
                     max_concurrency=CONCURRENCY)
        async with eng:
            ids = [eng.add_meter(MeterConfig(name="m%d" % i, protocol="modbus", ip_address="127.0.0.1",
                                             port=BASE + i, connection_address="1", register_map=str(mapfile),
                                             reads=("instant",), pause_time=0, waiting_time=5000))
                   for i in range(N)]
            for _ in range(2):  # connect (Python sessions), then one warm-up round (native)
                await eng.poll_many(ids)
            c0, t0 = _cpu(), time.perf_counter()
            for _ in range(ROUNDS):
                rs = await eng.poll_many(ids)
            stats["wall"], stats["cpu"] = time.perf_counter() - t0, _cpu() - c0
            assert len(rs) == 20 * N and (rs["status"] == 0).all()
            assert eng.fast_polls == (ROUNDS + 1) * N
            stats["lat"] = [p.duration for p in eng.polls[-ROUNDS * N:]]
        if store is not None:
            await store.close()

    benchmark.pedantic(lambda: uvloop.run(main()), rounds=1, iterations=1)
    _report(benchmark, ROUNDS * N, stats["wall"], stats["cpu"], stats["lat"], capsys)


def test_pymodbus_modbus_tcp_polls(benchmark, sims, capsys):
    from pymodbus.client import AsyncModbusTcpClient

    stats = {}

    async def main():
        clients = [AsyncModbusTcpClient("127.0.0.1", port=BASE + i, timeout=5, retries=0) for i in range(N)]
        sem = asyncio.Semaphore(CONCURRENCY)

        async def connect(c):
            async with sem:
                await c.connect()

        await asyncio.gather(*(connect(c) for c in clients))
        lat = []
        for c in clients:  # one warm-up round, as for the engine
            await c.read_input_registers(0, count=40, device_id=1)

        async def poll(c):
            async with sem:
                t = time.perf_counter()
                rr = await c.read_input_registers(0, count=40, device_id=1)
                values = c.convert_from_registers(rr.registers, data_type=c.DATATYPE.FLOAT32)
                lat.append(time.perf_counter() - t)
                return values

        c0, t0 = _cpu(), time.perf_counter()
        for _ in range(ROUNDS):
            out = await asyncio.gather(*(poll(c) for c in clients))
        stats["wall"], stats["cpu"] = time.perf_counter() - t0, _cpu() - c0
        assert all(len(v) == 20 for v in out)
        stats["lat"] = lat
        for c in clients:
            c.close()

    benchmark.pedantic(lambda: uvloop.run(main()), rounds=1, iterations=1)
    _report(benchmark, ROUNDS * N, stats["wall"], stats["cpu"], stats["lat"], capsys)


RSS_SCRIPT = r"""
import asyncio, resource, sys, time, uvloop
from meterpoll.engine.config import MeterConfig
from meterpoll.engine.drivers import driver
from meterpoll.engine.engine import Engine
def hwm():   # peak RSS of THIS process image (ru_maxrss on Linux carries the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
async def main(n):
    base = hwm()
    async with Engine(drivers={"modbus": driver("modbus")}) as eng:
        t = time.perf_counter()
        for i in range(n):   # every meter on its own TCP endpoint: n links too
            eng.add_meter(MeterConfig(name="m%d" % i, protocol="modbus", port=502, connection_address="1",
                                      ip_address="10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255)))
        add = (time.perf_counter() - t) / n
        print(base, hwm(), add * 1e6)
uvloop.run(main(int(sys.argv[1])))
"""


def test_engine_registry_rss(benchmark, capsys):
    """Peak RSS of an engine process with 100,000 registered meters (scaled), each on its own
    TCP endpoint, scheduled but not polled (target <= 300 MiB)."""
    n = scaled(100_000, 1_000)
    out = {}

    def run_once():
        res = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(n)], capture_output=True, text=True,
                             timeout=600, check=True)
        out["base"], out["peak"], out["add_us"] = map(float, res.stdout.split())

    benchmark.pedantic(run_once, rounds=1, iterations=1)
    info = {"meters": n, "peak_rss_mib": out["peak"], "baseline_rss_mib": out["base"],
            "add_meter_us": out["add_us"]}
    benchmark.extra_info.update(info)
    with capsys.disabled():
        print("\n  %s" % " ".join("%s=%.1f" % kv for kv in info.items()))


# ---- DLMS/COSEM over the TCP wrapper: 2,000 meters, one poll each (energy registers) ----------

N_DLMS = scaled(2_000, 20)
DLMS_BASE = 11000      # below the ephemeral port range (32768-60999)

DLMS_SIM = r"""
import asyncio, os, sys, uvloop
from meterpoll.engine.sim.dlms import DlmsSim
from meterpoll.engine.sim.server import SimServer
async def main(first, count):
    if hasattr(os, "sched_setaffinity") and os.cpu_count() > 1:
        os.sched_setaffinity(0, {0})
    servers = [await SimServer(DlmsSim(addresses=(1,), seed=i), port=first + i).start() for i in range(count)]
    print("ready", flush=True)
    await asyncio.sleep(3600)
uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""

ENERGY = ("1.0.1.8.0.255", "1.0.2.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255", "1.0.1.8.3.255", "1.0.1.8.4.255")


@pytest.fixture(scope="module")
def dlms_sims():
    yield from _simulators(DLMS_SIM, DLMS_BASE, N_DLMS)


def test_engine_dlms_wrapper_polls(benchmark, dlms_sims, capsys, tmp_path):
    """The engine's DLMS sessions (AARQ, GETs of the six energy registers, RLRQ per poll)."""
    from meterpoll.engine.config import MeterConfig
    from meterpoll.engine.drivers import driver
    from meterpoll.engine.engine import Engine
    from meterpoll.engine.store import open_store

    stats = {}

    async def main():
        store = await open_store("sqlite:///" + str(tmp_path / "dlms.db"))
        eng = Engine(store=store, drivers={"dlms": driver("dlms")}, schedule=False, max_concurrency=CONCURRENCY)
        async with eng:
            ids = [eng.add_meter(MeterConfig(name="d%d" % i, protocol="dlms", ip_address="127.0.0.1",
                                             port=DLMS_BASE + i, connection_address="1", reads=("energy",),
                                             pause_time=0, waiting_time=5000)) for i in range(N_DLMS)]
            await eng.poll_many(ids)              # connect, read the scalers once
            c0, t0 = _cpu(), time.perf_counter()
            for _ in range(ROUNDS):
                rs = await eng.poll_many(ids)
            stats["wall"], stats["cpu"] = time.perf_counter() - t0, _cpu() - c0
            assert len(rs) == len(ENERGY) * N_DLMS and (rs["status"] == 0).all()
            stats["lat"] = [p.duration for p in eng.polls[-ROUNDS * N_DLMS:]]
        await store.close()

    benchmark.pedantic(lambda: uvloop.run(main()), rounds=1, iterations=1)
    _report(benchmark, ROUNDS * N_DLMS, stats["wall"], stats["cpu"], stats["lat"], capsys)


def test_gurux_dlms_wrapper_polls(benchmark, dlms_sims, capsys):
    """gurux_dlms's GXDLMSClient as its examples use it (AARQ, read(obj, 2) per register with
    the scalers read once, release), one client and connection per meter on asyncio streams."""
    from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
    from gurux_dlms.enums import Authentication, InterfaceType
    from gurux_dlms.objects import GXDLMSRegister

    stats = {}

    class Meter:
        def __init__(self, port):
            self.port = port
            self.client = GXDLMSClient(True, 16, 1, Authentication.NONE, None, InterfaceType.WRAPPER)
            self.regs = [GXDLMSRegister(code) for code in ENERGY]

        async def connect(self):
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def exchange(self, data):
            reply = GXReplyData()
            for msg in data if isinstance(data, list) else [data]:
                self.writer.write(bytes(msg))
                buf, notify = GXByteBuffer(), GXReplyData()
                while not self.client.getData(buf, reply, notify):
                    buf.set(await self.reader.read(4096))
            return reply

        async def poll(self, scalers=False):
            for msg in self.client.aarqRequest():
                r = await self.exchange(msg)
            self.client.parseAareResponse(r.data)
            for reg in self.regs:
                for attr in ((3, 2) if scalers else (2,)):
                    self.client.updateValue(reg, attr, (await self.exchange(self.client.read(reg, attr))).value)
            await self.exchange(self.client.releaseRequest())
            return [reg.value for reg in self.regs]

    async def main():
        meters = [Meter(DLMS_BASE + i) for i in range(N_DLMS)]
        sem = asyncio.Semaphore(CONCURRENCY)
        lat = []

        async def one(m, scalers=False):
            async with sem:
                t = time.perf_counter()
                v = await m.poll(scalers)
                lat.append(time.perf_counter() - t)
                return v

        async def connect(m):
            async with sem:
                await m.connect()

        await asyncio.gather(*(connect(m) for m in meters))
        await asyncio.gather(*(one(m, True) for m in meters))
        lat.clear()
        c0, t0 = _cpu(), time.perf_counter()
        for _ in range(ROUNDS):
            out = await asyncio.gather(*(one(m) for m in meters))
        stats["wall"], stats["cpu"] = time.perf_counter() - t0, _cpu() - c0
        assert all(len(v) == len(ENERGY) and all(x is not None for x in v) for v in out)
        stats["lat"] = lat
        for m in meters:
            m.writer.close()

    benchmark.pedantic(lambda: uvloop.run(main()), rounds=1, iterations=1)
    _report(benchmark, ROUNDS * N_DLMS, stats["wall"], stats["cpu"], stats["lat"], capsys)
