"""Mercury 230/234 end to end: engine + MercuryDriver + MercurySim on real sockets (TCP on
loopback, a pty for the serial path).  Readings must equal the MeterModel at the time the
simulator built each answer (within 1 Wh / 0.01 V / 0.001 A / 0.01 W / 0.01 Hz / 1 s)."""
import calendar
import math
import time

import numpy as np
import pytest
import uvloop

from meterpoll.bindings import mercury as merc
from meterpoll.bindings.checksums import crc16_modbus
from meterpoll.bindings.readings import FrameStatus, Quality, Unit, obis
from meterpoll.engine.config import MeterConfig, SerialSettings
from meterpoll.engine.drivers import driver as make_driver, simulator as make_sim
from meterpoll.engine.drivers.mercury import MercuryDriver, complete_for, plan
from meterpoll.engine.engine import Engine
from meterpoll.engine.link import Link
from meterpoll.engine.sim.mercury import (MercurySim, energy_bytes, power_journal, request_length, stamp_bytes,
                                         time_bytes, u24_bytes)
from meterpoll.engine.sim.server import Faults, SimSerial, SimServer
from meterpoll.engine.transport import Deadlines, TcpTransport

READS = ("energy", "instant", "clock")


def run(coro):
    return uvloop.run(coro)


def cfg(port, addr=1, password="111111", **kw):
    kw.setdefault("reads", READS)
    return MeterConfig(name="merc%d" % addr, protocol="mercury", ip_address="127.0.0.1", port=port,
                       connection_address=str(addr), password=password, waiting_time=300,
                       interval_time=50, pause_time=0, **kw)


def O(text):
    return obis(text) if not isinstance(text, int) else text


def expected(sim, addr, reads=READS):
    """{obis: (value, tolerance, unit)} from the model at each request's answer time."""
    model = sim.model(addr)
    out = {}
    for req in plan(addr, reads):
        t = sim.answered_at[(addr, req.encode()[:-2])]
        if req.kind == "energy":
            T = req.params["tariff"]
            e = model.energy_by_tariff(t)[T]
            tan = math.tan(math.acos(model.power_factor))
            out[O("1.0.1.8.%d.255" % T)] = (e, 0.5 + 1e-6, Unit.WATT_HOUR)
            out[O("1.0.2.8.%d.255" % T)] = (0.0, 0.0, Unit.WATT_HOUR)
            out[O("1.0.3.8.%d.255" % T)] = (e * tan, 0.5 + 1e-6, Unit.VAR_HOUR)
            out[O("1.0.4.8.%d.255" % T)] = (0.0, 0.0, Unit.VAR_HOUR)
        elif req.kind == "aux":
            inst = model.instant(t)
            q = req.params["quantity"]
            if q == merc.AuxQuantity.POWER:
                key, cs, unit = {"P": ("active_power", (1, 21, 41, 61), Unit.WATT),
                                 "Q": ("reactive_power", (3, 23, 43, 63), Unit.VAR),
                                 "S": ("apparent_power", (9, 29, 49, 69), Unit.VOLT_AMPERE)}[req.params["power"]]
                vals = [inst[key]] + [p[key] for p in inst["phases"]]
                for c, v in zip(cs, vals):
                    out[O("1.0.%d.7.0.255" % c)] = (v, 0.005 + 1e-6, unit)
            elif q == merc.AuxQuantity.VOLTAGE:
                for c, p in zip((32, 52, 72), inst["phases"]):
                    out[O("1.0.%d.7.0.255" % c)] = (p["voltage"], 0.005 + 1e-6, Unit.VOLT)
            elif q == merc.AuxQuantity.CURRENT:
                for c, p in zip((31, 51, 71), inst["phases"]):
                    out[O("1.0.%d.7.0.255" % c)] = (p["current"], 0.0005 + 1e-6, Unit.AMPERE)
            elif q == merc.AuxQuantity.FREQUENCY:
                out[O("1.0.14.7.0.255")] = (inst["frequency"], 0.005 + 1e-6, Unit.HERTZ)
            elif q == merc.AuxQuantity.POWER_FACTOR:
                for c in (13, 33, 53, 73):
                    out[O("1.0.%d.7.0.255" % c)] = (model.power_factor, 0.0005 + 1e-6, Unit.COUNT)
        elif req.kind == "time":
            out[O("0.0.1.0.0.255")] = (math.floor(model.clock(t)), 0.0, Unit.SECOND)
            out[O("0.0.96.50.0.255")] = (1.0, 0.0, Unit.COUNT)
    return out


def check_readings(r, sim, addr, mid):
    exp = expected(sim, addr)
    if mid is not None:
        assert (r["meter"] == mid).all()
    assert (r["status"] == Quality.OK).all(), r
    got = {int(x["obis"]): x for x in r}
    assert set(got) == set(exp)
    for o, (v, tol, unit) in exp.items():
        x = got[o]
        assert abs(float(x["value"]) - v) <= tol, (hex(o), float(x["value"]), v)
        assert int(x["unit"]) == unit, hex(o)
    assert got[O("1.0.1.8.0.255")]["value"] > 1e6  # a real register, not a zero


# ---------------------------------------------------------------- answer builders vs the codec

def test_byte_orders_reproduce_the_protocol_vectors():
    assert energy_bytes(0x0030C528) == bytes.fromhex("300028C5")       # README 2.8 #5
    assert u24_bytes(240.43, 0.01) == bytes.fromhex("00EB5D")           # README 2.8 #7
    assert u24_bytes(49.99, 0.01) == bytes.fromhex("008713")            # manual 08 11 40
    # 2026-11-22 01:02:03 is a Sunday (weekday 7), winter
    assert time_bytes(1795309323) == bytes.fromhex("03020107221126") + b"\x01"
    assert stamp_bytes(calendar.timegm((2008, 2, 1, 7, 53, 1))) == bytes.fromhex("015307010208")  # README 2.8 #13


def test_every_built_answer_decodes_to_the_model_with_the_codec():
    sim = MercurySim(addresses=(7,), seed=3)
    now = time.time()
    for kind, req in (("test", merc.test_channel(7)), ("open", merc.open_channel(7, 1, "111111"))):
        assert sim.answer(req.encode(), now) == bytes.fromhex("0700") + crc16_modbus(b"\x07\x00").to_bytes(2, "little")
    frames, reqs = [], plan(7, READS)
    for req in reqs:
        raw = req.encode()
        assert request_length(bytearray(raw + b"\x07\x00")) == len(raw)
        ans = sim.answer(raw, now)
        assert complete_for(req)(bytearray(ans)) == len(ans)
        frames.append(ans)
    readings, st = merc.decode_batch(frames, requests=reqs)
    assert (st["status"] == FrameStatus.OK).all()
    check_readings(readings, sim, 7, None)
    # also through the per-frame decoder, which raises on any problem
    for f, q in zip(frames, reqs):
        assert len(merc.decode(f, request=q))


def test_simulator_enforces_password_channel_and_addresses():
    sim = MercurySim(addresses=(1, 2), password="123456")
    now = time.time()
    st = lambda a, code: crc16_modbus(bytes((a, code))).to_bytes(2, "little")
    read = merc.read_energy(1).encode()
    assert sim.answer(read, now) == b"\x01\x05" + st(1, 5)                      # channel not open
    assert sim.answer(merc.open_channel(1, 1, "111111").encode(), now)[1] == 3  # wrong password
    assert sim.answer(merc.open_channel(1, 1, "123456").encode(), now)[1] == 0
    assert len(sim.answer(read, now)) == 19
    assert sim.answer(merc.read_energy(2).encode(), now)[1] == 5  # meter 2's channel is its own
    assert sim.answer(merc.read_energy(3).encode(), now) is None  # nobody at 3
    assert sim.answer(merc.read_energy(1, merc.EnergyArray.TODAY).encode(), now)[1] == 1  # not served
    assert sim.answer(merc.close_channel(1).encode(), now)[1] == 0
    assert sim.answer(read, now)[1] == 5
    bad = bytearray(read)
    bad[-1] ^= 1
    assert sim.answer(bytes(bad), now) is None  # bad CRC: ignored
    assert make_sim("mercury", addresses=[5]).addresses == (5,)
    assert isinstance(make_driver("mercury"), MercuryDriver)


def test_d_meters_take_the_password_in_ascii():
    sim = MercurySim(addresses=(1,), password="123456", ascii=True)
    now = time.time()
    assert sim.answer(merc.open_channel(1, 1, "123456").encode(), now)[1] == 3            # binary: refused
    assert sim.answer(merc.open_channel(1, 1, "123456", ascii=True).encode(), now)[1] == 0
    assert MercuryDriver(ascii_password=True).ascii_password


def test_complete_frames_status_and_data_answers():
    req = merc.read_energy(1)
    c = complete_for(req)
    status = b"\x01\x05" + crc16_modbus(b"\x01\x05").to_bytes(2, "little")
    assert c(bytearray(status)) == 4
    assert c(bytearray(status[:3])) == 0
    sim = MercurySim()
    sim.answer(merc.open_channel(1).encode(), time.time())
    ans = sim.answer(req.encode(), time.time())
    assert len(ans) == 19
    for k in (1, 3, 10, 18):
        assert c(bytearray(ans[:k])) == 0
    assert c(bytearray(ans + b"\x01")) == 19
    assert c(bytearray(b"\x02\x00\x00\x00")) == -1   # another meter's address


# ---------------------------------------------------------------- end to end

def test_poll_now_three_meters_behind_one_gateway():
    async def main():
        sim = MercurySim(addresses=(1, 2, 3), seed=10)
        async with SimServer(sim) as gw, Engine(drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
            ids = {a: eng.add_meter(cfg(gw.port, a)) for a in (1, 2, 3)}
            assert len(eng.links) == 1
            for a, mid in ids.items():
                r = await eng.poll_now(mid)
                check_readings(r, sim, a, mid)
                assert eng.polls[-1].ok
            assert gw.stats["connections"] == 1
            # every session was test, open, reads, close
            kinds = [k for a, k, _ in sim.log if a == 2]
            assert kinds[:2] == ["test", "open"] and kinds[-1] == "close"
            # a raw command on the bus, framed by the driver's best-effort complete
            raw = await eng.raw_exchange(ids[2], merc.test_channel(2).encode())
            assert raw == b"\x02\x00" + crc16_modbus(b"\x02\x00").to_bytes(2, "little")
    run(main())


@pytest.mark.parametrize("fault, quality", [("silence", Quality.TIMEOUT), ("bad_checksum", Quality.CHECKSUM),
                                            ("truncate", Quality.TIMEOUT), ("disconnect", Quality.TIMEOUT),
                                            ("garbage", Quality.PROTOCOL_EXCEPTION)])
def test_faults_give_non_ok_readings_never_zeros_and_the_next_poll_succeeds(fault, quality):
    async def main():
        sim = MercurySim(addresses=(1,), seed=1)
        faults = Faults(**{fault: 1.0})
        async with SimServer(sim, faults) as srv, Engine(drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(srv.port))
            r = await eng.poll_now(mid)
            drv = eng.drivers["mercury"]
            assert len(r) == len(drv.expected_obis(eng.meters[mid].cfg)) == 45
            assert np.isnan(r["value"]).all() and (r["status"] == quality).all(), (fault, eng.polls[-1].error)
            assert not eng.polls[-1].ok
            setattr(faults, fault, 0.0)
            r = await eng.poll_now(mid)
            check_readings(r, sim, 1, mid)
    run(main())


def test_a_bad_crc_on_a_data_answer_costs_that_frame_as_checksum():
    async def main():
        sim = MercurySim(addresses=(1,), seed=1)
        # only the answer to the tariff-2 energy read gets a bad CRC
        async with SimServer(sim) as srv, Engine(drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(srv.port, reads=("energy",)))
            orig = sim.answer

            def corrupt_first_energy(request, now):
                ans = orig(request, now)
                if ans is not None and request[1] == 5 and request[3] == 2:
                    ans = sim.corrupt_checksum(ans)
                return ans

            sim.answer = corrupt_first_energy
            r = await eng.poll_now(mid)
            assert not eng.polls[-1].ok and "CHECKSUM" in eng.polls[-1].error
            assert eng.polls[-1].quality == Quality.CHECKSUM
            good = r[r["status"] == Quality.OK]
            assert len(good) == 16 and not np.isnan(good["value"]).any()  # tariff 2 lost, others kept
    run(main())


def test_wrong_password_fails_the_poll_clearly():
    async def main():
        sim = MercurySim(addresses=(4,), password="654321")
        async with SimServer(sim) as srv, Engine(drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
            bad = eng.add_meter(cfg(srv.port, 4, password="111111"))
            r = await eng.poll_now(bad)
            assert np.isnan(r["value"]).all() and (r["status"] == Quality.PROTOCOL_EXCEPTION).all()
            err = eng.polls[-1].error
            assert "wrong password" in err and "status 3" in err, err
            good = eng.add_meter(cfg(srv.port, 4, password="654321"))
            check_readings(await eng.poll_now(good), sim, 4, good)
    run(main())


def test_clock_drift_is_reported_as_an_event():
    async def main():
        sim = MercurySim(addresses=(9,), clock_drift_ppm=5.0)  # ~8 min fast after 3 years
        async with SimServer(sim) as srv:
            link = Link(TcpTransport("127.0.0.1", srv.port))
            async with link.lease("m") as lease:
                res = await MercuryDriver().poll(lease, cfg(srv.port, 9, reads=("clock",)), Deadlines(0.3, 0.05))
            await link.close()
        assert len(res.frames) == 1 and res.events and "clock off by +" in res.events[0].text
    run(main())


def test_events_read_the_power_journal_of_the_model():
    async def main():
        sim = MercurySim(addresses=(6,), seed=4)
        async with SimServer(sim) as srv, Engine(drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(srv.port, 6, reads=("clock", "events")))
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok and eng.polls[-1].frames == 11 and (r["status"] == Quality.OK).all()
            ev = r[r["obis"] == obis("0.0.96.11.1.255")]
            t = sim.answered_at[(6, merc.read_journal(6, 1, 0).encode()[:-2])]
            model = sim.model(6)
            want = set()
            for off, on in power_journal(model, t):
                want.add((math.floor(model.clock(off)), 1))
                if on is not None:
                    want.add((math.floor(model.clock(on)), 2))
            got = {(int(x["ts"].astype("datetime64[s]").astype(np.int64)), int(x["value"])) for x in ev}
            assert got == want and len(want) >= 10
            assert obis("0.0.96.11.1.255") not in eng.drivers["mercury"].expected_obis(eng.meters[mid].cfg)
    run(main())


def test_serial_path_through_a_pty():
    async def main():
        sim = MercurySim(addresses=(1,), seed=5)
        async with SimSerial(sim) as ser, Engine(drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
            mid = eng.add_meter(MeterConfig(name="ser", protocol="mercury", link="serial",
                                            serial=SerialSettings(port=ser.path), connection_address="1",
                                            waiting_time=500, interval_time=50, pause_time=0, reads=READS))
            check_readings(await eng.poll_now(mid), sim, 1, mid)
    run(main())
