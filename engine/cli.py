"""The ``meterpoll`` command line.

``meterpoll demo``        the main job: simulated meters of every protocol on loopback, polled by
                          the engine into an embedded SQLite store, a live table, stops by itself
``meterpoll selfcheck``   the native core's checksum table, the shared vectors, batch throughput
``meterpoll sim``         simulated meters on 127.0.0.1 ports BASE..BASE+N-1 (faults on demand)
``meterpoll poll``        one ad-hoc read of one meter, as a table or JSON lines
``meterpoll serve``       the engine from a TOML settings file
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import pathlib
import signal
import sys
import tempfile
import time

import msgspec
import numpy as np

import meterpoll
from meterpoll.bindings.readings import FrameStatus, Quality, Unit, obis, obis_str

# (name, function, batch function, catalogue check value of b"123456789")
KERNELS = [
    ("CRC-16/MODBUS", meterpoll.crc16_modbus, meterpoll.crc16_modbus_many, 0x4B37),
    ("CRC-16/X-25", meterpoll.crc16_x25, meterpoll.crc16_x25_many, 0x906E),
    ("CRC-16/ARC", meterpoll.crc16_arc, meterpoll.crc16_arc_many, 0xBB3D),
    ("M-Bus sum mod 256", meterpoll.mbus_checksum, meterpoll.mbus_checksum_many, 0xDD),
    ("IEC 62056-21 BCC (XOR)", meterpoll.bcc, meterpoll.bcc_many, 0x31),
    ("Energomera BCC (sum mod 128)", meterpoll.bcc_sum7, meterpoll.bcc_sum7_many, 0x5D),
]

# ---------------------------------------------------------------- selfcheck


def _vector_dir() -> pathlib.Path | None:
    env = os.environ.get("METERPOLL_SHARED")
    candidates = [pathlib.Path(env)] if env else []
    candidates += [pathlib.Path.cwd().parent / "shared", pathlib.Path.cwd() / "shared"]
    for c in candidates:
        d = c / "protocols" / "vectors"
        if d.is_dir():
            return d
    return None


def _verify_vectors(out) -> bool:
    d = _vector_dir()
    if d is None:
        print("protocol vectors: not found (set METERPOLL_SHARED to the shared/ folder)", file=out)
        return True
    ok = bad = 0
    for path in sorted(d.glob("*.json")):
        for v in json.loads(path.read_text(encoding="utf-8")):
            f = bytes.fromhex(v["hex"])
            framing = v.get("framing")
            if framing in ("mercury", "modbus-rtu"):
                good = meterpoll.crc16_modbus(f) == 0
            elif framing == "hdlc":
                good = meterpoll.crc16_x25(f[1:-1]) == 0x0F47
            elif framing in ("long", "mbus") and f[:1] == b"\x68":
                good = meterpoll.mbus_checksum(f[4:-2]) == f[-2]
            elif framing == "short":
                good = meterpoll.mbus_checksum(f[1:3]) == f[3]
            else:
                continue
            ok += good
            bad += not good
    print("protocol vectors: %d frames with CRC/sum checked, %d failed (%s)" % (ok + bad, bad, d), file=out)
    return bad == 0


def selfcheck(frames: int = 1_000_000, size: int = 32, out=sys.stdout) -> int:
    print("meterpoll %s native core self-check" % meterpoll.__version__, file=out)
    print("CRC path for long buffers: %s" % meterpoll.crc_accelerator(), file=out)
    print("%-30s %-8s %-8s %s" % ("check", "got", "want", ""), file=out)
    failures = 0
    for name, fn, _many, want in KERNELS:
        got = fn(b"123456789")
        failures += got != want
        print("%-30s 0x%04X   0x%04X   %s" % (name, got, want, "ok" if got == want else "WRONG"), file=out)
    if not _verify_vectors(out):
        failures += 1
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, frames * size, dtype=np.uint8)
    batch = meterpoll.FrameBatch.from_buffer(data, np.arange(0, frames * size + 1, size, dtype=np.int64))
    for name, _fn, many, _want in KERNELS[:2]:
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            many(batch)
            best = min(best, time.perf_counter() - t)
        print("%s batch: %d frames of %d bytes in %.2f ms (%.0f M frames/s, %.2f GB/s)"
              % (name, frames, size, best * 1e3, frames / best / 1e6, frames * size / best / 1e9), file=out)
    print("self-check %s" % ("passed" if failures == 0 else "FAILED"), file=out)
    return 1 if failures else 0


# ---------------------------------------------------------------- shared helpers

_PROTO_ARG = ["dlms", "mercury", "iec62056-21", "modbus", "mbus"]


def _unit_name(u: int) -> str:
    try:
        return {30: "Wh", 32: "varh", 27: "W", 29: "var", 28: "VA", 35: "V", 33: "A", 44: "Hz", 8: "deg",
                9: "degC", 13: "m3", 15: "m3/h", 25: "J", 255: ""}.get(u, Unit(u).name.lower())
    except ValueError:
        return str(u)


def _reading_rows(readings: np.ndarray):
    for r in readings:
        yield {
            "meter": int(r["meter"]),
            "obis": obis_str(int(r["obis"])),
            "ts": np.datetime_as_string(r["ts"], unit="ms") + "Z",
            "value": None if math.isnan(r["value"]) else float(r["value"]),
            "unit": _unit_name(int(r["unit"])),
            "status": Quality(int(r["status"])).name if int(r["status"]) in Quality._value2member_map_ else int(r["status"]),
        }


def _print_table(readings: np.ndarray, out=sys.stdout) -> None:
    print("%-6s %-18s %-24s %16s %-6s %s" % ("meter", "obis", "ts (UTC)", "value", "unit", "status"), file=out)
    for row in _reading_rows(readings):
        v = "" if row["value"] is None else "%.3f" % row["value"]
        print("%-6d %-18s %-24s %16s %-6s %s" % (row["meter"], row["obis"], row["ts"], v, row["unit"], row["status"]),
              file=out)


# ---------------------------------------------------------------- sim


async def _run_sims(protocol: str, count: int, base: int, faults: str, addresses: list[int], seed: int,
                    password: str, duration: float | None, serial: bool) -> int:
    from meterpoll.engine.drivers import simulator
    from meterpoll.engine.sim.server import Faults, SimSerial, SimServer

    f = Faults.parse(faults)
    servers = []
    opts = {"addresses": tuple(addresses), "seed": seed}
    if password:
        opts["password"] = password
    for i in range(count):
        sim = simulator(protocol, **dict(opts, seed=seed + i * 1000))
        if serial:
            srv = await SimSerial(sim, f).start()
            print("%s meter %d on %s (bus addresses %s)" % (protocol, i, srv.path, addresses), flush=True)
        else:
            srv = await SimServer(sim, f, port=base + i).start()
        servers.append(srv)
    if not serial:
        print("%d simulated %s meter%s on 127.0.0.1:%d-%d (bus addresses %s)%s" % (
            count, protocol, "s" if count != 1 else "", base, base + count - 1,
            ",".join(map(str, addresses)), ", faults " + faults if faults else ""), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=duration)
    except asyncio.TimeoutError:
        pass
    for s in servers:
        await s.stop()
    return 0


# ---------------------------------------------------------------- poll


def _meter_from_args(a) -> "MeterConfig":
    from meterpoll.engine.config import MeterConfig

    address = a.address
    if a.protocol == "dlms" and a.server is not None:
        address = str(a.server)
    return MeterConfig(name="cli", protocol=a.protocol, ip_address=a.host, port=a.port,
                       connection_address=address or "", password=a.password or "",
                       waiting_time=int(a.timeout * 1000), interval_time=max(5, int(a.interval * 1000)),
                       register_map=a.map or "", reads=tuple(a.read) if a.read else ("energy", "instant"))


async def _poll_once(a) -> int:
    from meterpoll.engine.drivers import driver
    from meterpoll.engine.engine import Engine

    opts = {}
    if a.protocol == "dlms":
        opts["client_sap"] = a.client
        opts["framing"] = a.framing
    drv = driver(a.protocol, **opts)
    cfg = _meter_from_args(a)
    async with Engine(drivers={a.protocol: drv}, schedule=False, breaker_threshold=10**9) as eng:
        mid = eng.add_meter(cfg)
        readings = await eng.poll_now(mid)
        outcome = eng.polls[-1]
    if a.obis:
        wanted = [obis(o) for o in a.obis]
        readings = readings[np.isin(readings["obis"], wanted)]
    if a.json:
        for row in _reading_rows(readings):
            print(json.dumps(row))
    else:
        _print_table(readings)
    if not outcome.ok:
        print("meterpoll poll: %s:%d %s" % (a.host, a.port, outcome.error or Quality(outcome.quality).name),
              file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------- demo


async def _demo(per_protocol: int, rounds: int, db: str | None, out=sys.stdout) -> int:
    from meterpoll.engine.config import MeterConfig
    from meterpoll.engine.drivers import available, driver, simulator
    from meterpoll.engine.engine import Engine
    from meterpoll.engine.sim.server import SimServer
    from meterpoll.engine.store import open_store

    protocols = available()
    if not protocols:
        print("no protocol drivers installed: running the native-core self-check instead", file=out)
        return selfcheck(frames=100_000, out=out)
    tmp = None
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="meterpoll-demo-")
        db = os.path.join(tmp.name, "demo.db")
    store = await open_store("sqlite:///" + os.path.abspath(db))
    sims = []
    try:
        engine = Engine(store=store, drivers={p: driver(p) for p in protocols}, schedule=False)
        ids: dict[str, list[int]] = {}
        async with engine:
            for p in protocols:
                for i in range(per_protocol):
                    seed = 1000 * protocols.index(p) + i + 1  # every simulated meter differs
                    srv = await SimServer(simulator(p, addresses=(1,), seed=seed)).start()
                    sims.append(srv)
                    ids.setdefault(p, []).append(engine.add_meter(MeterConfig(
                        name="%s-%d" % (p, i), protocol=p, ip_address="127.0.0.1", port=srv.port,
                        connection_address=_demo_address(p), password=_demo_password(p),
                        waiting_time=2000, interval_time=200, pause_time=0)))
            print("meterpoll %s live demo: %d simulated meters (%s) on 127.0.0.1, store %s"
                  % (meterpoll.__version__, sum(map(len, ids.values())), ", ".join(protocols), db), file=out)
            for rnd in range(1, rounds + 1):
                t = time.perf_counter()
                results = await asyncio.gather(*(engine.poll_now(m) for ms in ids.values() for m in ms))
                elapsed = time.perf_counter() - t
                allr = np.concatenate(results) if results else np.empty(0, meterpoll.READING_DTYPE)
                good = int(np.count_nonzero(allr["status"] == 0))
                print("\nround %d: %d polls in %.2f s, %d readings (%d ok), %d committed so far"
                      % (rnd, len(results), elapsed, len(allr), good, engine.readings_committed), file=out)
                for p in protocols:
                    first = results[sum(len(ids[q]) for q in protocols[:protocols.index(p)])]
                    print("  %s, meter %d: %d readings, e.g." % (p, ids[p][0], len(first)), file=out)
                    shown = first[np.argsort(first["obis"])][:4]
                    for row in _reading_rows(shown):
                        v = "NaN" if row["value"] is None else "%.3f" % row["value"]
                        print("    %-18s %14s %-5s %s" % (row["obis"], v, row["unit"], row["status"]), file=out)
                if rnd < rounds:
                    await asyncio.sleep(1.0)
            m = engine.metrics()["global"]
            print("\nlinks: %d exchanges, %d ok, %d timeouts, %d bytes out, %d bytes in"
                  % (m["exchanges"], m["ok"], m["timeouts"], m["bytes_out"], m["bytes_in"]), file=out)
        stored = await store.count_readings()
        print("store: %d readings in %s" % (stored, db), file=out)
        return 0 if stored > 0 else 1
    finally:
        for s in sims:
            await s.stop()
        await store.close()
        if tmp is not None:
            tmp.cleanup()


def _demo_address(p: str) -> str:
    return {"modbus": "1", "mbus": "1", "mercury": "1", "dlms": "1", "iec62056-21": ""}[p]


def _demo_password(p: str) -> str:
    return {"mercury": "111111"}.get(p, "")


# ---------------------------------------------------------------- serve


async def _serve(path: str, duration: float | None) -> int:
    from meterpoll.engine.drivers import driver
    from meterpoll.engine.engine import Engine
    from meterpoll.engine.settings import load_settings
    from meterpoll.engine.store import open_store

    s = load_settings(pathlib.Path(path))
    store = await open_store(s.store.url)
    protocols = sorted({m.protocol for m in s.meters})
    engine = Engine(store=store, drivers={p: driver(p) for p in protocols},
                    max_concurrency=s.engine.max_concurrency, tick=s.engine.tick,
                    breaker_threshold=s.engine.breaker_threshold, probe_interval=s.engine.probe_interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with engine:
            # meter ids come from the store's registry (matched by name), so readings keep their
            # meter across restarts and config reorderings
            known = {m.name: m.id for m in await store.list_meters()}
            for m in s.meters:
                mid = known.get(m.name)
                if mid is None:
                    mid = await store.add_meter(m.name, m.protocol, address=m.connection_address or None,
                                                serial_number=m.number_meter or None,
                                                params=msgspec.to_builtins(m))
                engine.add_meter(m, meter_id=mid)
            print("meterpoll serve: %d meters, store %s" % (len(s.meters), s.store.url), flush=True)
            deadline = None if duration is None else time.monotonic() + duration
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=10 if deadline is None else max(0.0, min(10, deadline - time.monotonic())))
                except asyncio.TimeoutError:
                    pass
                m = engine.metrics()
                print("%s polls=%d readings=%d timeouts=%d demoted=%d" % (
                    dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S"), len(engine.polls),
                    m["readings_committed"], m["global"]["timeouts"], m["demoted"]), flush=True)
                if deadline is not None and time.monotonic() >= deadline:
                    break
    finally:
        await store.close()
    return 0


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meterpoll", description="meter head-end engine")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="live demo: simulated meters of every protocol, polled into SQLite")
    demo.add_argument("--meters", type=int, default=5, help="simulated meters per protocol (default 5)")
    demo.add_argument("--rounds", type=int, default=3, help="poll rounds before stopping (default 3)")
    demo.add_argument("--db", help="SQLite file to keep (default: a temporary file)")

    sc = sub.add_parser("selfcheck", help="checksum table, shared vectors, batch throughput")
    sc.add_argument("--frames", type=int, default=1_000_000)

    sim = sub.add_parser("sim", help="simulated meters on 127.0.0.1")
    sim.add_argument("--protocol", required=True, choices=_PROTO_ARG)
    sim.add_argument("--count", type=int, default=1)
    sim.add_argument("--port", type=int, default=15000, help="first TCP port")
    sim.add_argument("--faults", default="", help="e.g. silence=0.05,late=0.01,late_delay=3,seed=1")
    sim.add_argument("--addresses", default="1", help="bus addresses behind each port, e.g. 1,2,3")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--password", default="")
    sim.add_argument("--serial", action="store_true", help="serve on pty pairs instead of TCP")
    sim.add_argument("--duration", type=float, help="stop after this many seconds")

    poll = sub.add_parser("poll", help="read one meter now")
    poll.add_argument("--protocol", required=True, choices=_PROTO_ARG)
    poll.add_argument("--host", required=True)
    poll.add_argument("--port", type=int, required=True)
    poll.add_argument("--address", "--unit", dest="address", default="", help="bus address / unit id")
    poll.add_argument("--password", default="")
    poll.add_argument("--map", help="Modbus register map (sdm630, sdm120 or a TOML file)")
    poll.add_argument("--client", type=int, default=16, help="DLMS client SAP")
    poll.add_argument("--server", type=int, help="DLMS server logical address")
    poll.add_argument("--framing", choices=["wrapper", "hdlc"], default="wrapper",
                      help="DLMS: TCP wrapper (IEC 62056-47) or HDLC through a gateway")
    poll.add_argument("--obis", action="append", help="only these OBIS codes (repeatable)")
    poll.add_argument("--read", action="append", choices=["energy", "instant", "profile", "events", "clock"])
    poll.add_argument("--timeout", type=float, default=2.0, help="first-byte deadline in seconds")
    poll.add_argument("--interval", type=float, default=0.2, help="inter-byte deadline in seconds")
    poll.add_argument("--json", action="store_true", help="one JSON object per reading")

    serve = sub.add_parser("serve", help="run the engine from a TOML settings file")
    serve.add_argument("--config", required=True)
    serve.add_argument("--duration", type=float, help="stop after this many seconds")

    a = parser.parse_args(argv)
    from meterpoll.engine.loop import run

    if a.command == "selfcheck":
        if a.frames <= 0:
            parser.error("--frames must be positive")
        return selfcheck(frames=a.frames)
    if a.command == "demo":
        if a.meters <= 0 or a.rounds <= 0:
            parser.error("--meters and --rounds must be positive")
        return run(_demo(a.meters, a.rounds, a.db))
    if a.command == "sim":
        if not 1 <= a.count <= 20000 or not 1 <= a.port <= 65535 - a.count:
            parser.error("--count 1..20000 and ports within 1..65535")
        try:
            addresses = [int(x) for x in a.addresses.split(",") if x.strip()]
        except ValueError:
            parser.error("--addresses is a comma-separated list of numbers")
        try:
            return run(_run_sims(a.protocol, a.count, a.port, a.faults, addresses, a.seed, a.password,
                                 a.duration, a.serial))
        except ValueError as e:
            parser.error(str(e))
    if a.command == "poll":
        try:
            return run(_poll_once(a))
        except (ValueError, OSError) as e:
            print("meterpoll poll: %s" % e, file=sys.stderr)
            return 2
    if a.command == "serve":
        from meterpoll.engine.config import ConfigError

        try:
            return run(_serve(a.config, a.duration))
        except ConfigError as e:
            print("meterpoll serve: %s" % e, file=sys.stderr)
            return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
