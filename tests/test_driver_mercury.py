"""Mercury 230/234 end to end: engine + MercuryDriver + MercurySim on real sockets (TCP on
loopback, a pty for the serial path).  Readings must equal the MeterModel at the time the
simulator built each answer (within 1 Wh / 0.01 V / 0.001 A / 0.01 W / 0.01 Hz / 1 s); load
profile records must equal the model's interval energies (within half a count); the clock is
set at level 2 and the meter's journal 02 shows it."""
import calendar
import math
import time

import numpy as np
import pytest
import uvloop

from meterpoll.bindings import mercury as merc
from meterpoll.bindings.checksums import crc16_modbus
from meterpoll.bindings.errors import ProtocolExceptionError
from meterpoll.bindings.readings import FrameStatus, Quality, Unit, obis
from meterpoll.engine.config import MeterConfig, SerialSettings
from meterpoll.engine.drivers import driver as make_driver, simulator as make_sim
from meterpoll.engine.drivers.mercury import (MAX_PROFILE_RECORDS, METER_CONSTANTS, PROFILE_OBIS, MercuryDriver,
                                              _parse_pointer, _record_request, _record_time, complete_for, plan,
                                              set_time_request)
from meterpoll.engine.engine import Engine
from meterpoll.engine.link import Link
from meterpoll.engine.sim.mercury import (CONSTANT_CODES, MercurySim, energy_bytes, power_journal, profile_record_bytes,
                                         request_length, stamp_bytes, time_bytes, u24_bytes)
from meterpoll.engine.sim.server import Faults, SimSerial, SimServer
from meterpoll.engine.store import open_store
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


# ---------------------------------------------------------------- load profile

PROFILE_CHANNELS = [obis("1.0.%d.5.0.255" % c) for c in (1, 2, 3, 4)]


def vector(hexstr):
    return bytes.fromhex(hexstr.replace(" ", ""))


def check_profile(r, sim, addr, ends):
    """Every record read is the model's interval: average P+ = E * 60 / T (W), Q+ likewise
    (var), P- = Q- = 0, at the interval's end time; incomplete slices (a power cut in the
    interval) carry METER_ERROR, the others OK."""
    model = sim.model(addr)
    T = sim.profile_period_min
    tol = 0.5 * 30000.0 / (T * sim.constant) + 1e-6     # half a count
    by_obis = {o: r[r["obis"] == o] for o in PROFILE_CHANNELS}
    for o in PROFILE_CHANNELS:
        ts = by_obis[o]["ts"].astype("datetime64[s]").astype(np.int64)
        assert ts.tolist() == ends, (obis_hex(o), ts[:3], ends[:3])
    for i, t in enumerate(ends):
        active, reactive = model.interval_energy(t, T * 60)
        want = {PROFILE_CHANNELS[0]: (active * 60 / T, Unit.WATT), PROFILE_CHANNELS[1]: (0.0, Unit.WATT),
                PROFILE_CHANNELS[2]: (reactive * 60 / T, Unit.VAR), PROFILE_CHANNELS[3]: (0.0, Unit.VAR)}
        q = Quality.METER_ERROR if model.power_cut_in(t - T * 60, t) else Quality.OK
        for o, (v, unit) in want.items():
            x = by_obis[o][i]
            assert abs(float(x["value"]) - v) <= tol and int(x["unit"]) == unit and int(x["status"]) == q, (t, o, x, v)
    assert by_obis[PROFILE_CHANNELS[0]]["value"].min() > 100   # real consumption, not zeros


def obis_hex(o):
    return hex(int(o))


def pcfg(port, addr=1, **kw):
    kw.setdefault("reads", ("profile",))
    kw.setdefault("data_polling_length", 1)
    return cfg(port, addr, **kw)


def newest_end(sim, addr, t=None):
    """End time of the newest closed profile interval on the meter's clock at true time t."""
    period = sim.profile_period_min * 60
    return int(math.floor(sim.meter_clock(addr, time.time() if t is None else t) / period) * period)


def test_profile_requests_and_records_agree_with_the_manual_vectors():
    # README 2.8 #14 / #15 and the 08 13 request of mercury.json
    assert _record_request(0x80, 0x0010, 1000).encode() == vector("80 06 03 00 10 0F DA 5B")
    assert merc.read_profile_pointer(0x80).encode() == vector("80 08 13 36 25")
    rec = vector("80 0A 10 00 05 03 08 1E 04 29 FF FF 00 00 00 00 FE AF")
    assert _record_time(rec) == calendar.timegm((2008, 3, 5, 10, 0, 0))
    r = merc.decode(rec, request=_record_request(0x80, 0x0010, 1000))
    assert r["obis"][0] == PROFILE_CHANNELS[0] and r["value"][0] == pytest.approx(10500.0)  # 10.5 kW, A = 1000
    assert METER_CONSTANTS == {v: k for k, v in CONSTANT_CODES.items()}
    # the clock set request: 8 BCD bytes, 2026-11-22 01:02:03 is a Sunday (weekday 7)
    assert set_time_request(0x80, 1795309323)[:11] == vector("80 03 0C 03 02 01 07 22 11 26 01")
    assert request_length(bytearray(set_time_request(0x80, 1795309323))) == 13


def test_simulated_profile_memory_decodes_with_the_codec():
    sim = MercurySim(addresses=(5,), seed=7)
    now = time.time()
    assert sim.answer(merc.open_channel(5, 1, "111111").encode(), now)[1] == 0
    variant = sim.answer(bytes((5, 8, 0x12)) + crc16_modbus(bytes((5, 8, 0x12))).to_bytes(2, "little"), now)
    assert len(variant) == 9 and METER_CONSTANTS[variant[2] & 0x0F] == 1000
    ptr = _parse_pointer(sim.answer(merc.read_profile_pointer(5).encode(), now), 5)
    end = newest_end(sim, 5, now)
    assert ptr.time == end and ptr.period_min == 30 and ptr.status & 0x0C == 0x0C   # winter, initialised
    assert ptr.value == (end // 1800) % 4096                                          # a record number
    # the newest record, and two records read as raw bytes across a record boundary
    req = _record_request(5, ptr.value * 16, 1000)
    ans = sim.answer(req.encode(), now)
    assert len(ans) == 18 and _record_time(ans) == end
    r = merc.decode(ans, request=req)
    active, reactive = sim.model(5).interval_energy(end, 1800)
    assert r["value"][0] == pytest.approx(active * 2, abs=0.5 * 30000 / (30 * 1000))
    raw = sim.answer(merc.read_memory(5, 3, ptr.value * 16 - 8, 24).encode(), now)
    assert raw[9:25] == ans[1:16] + b"\x00"     # 8 bytes of the previous record, then this one
    assert sim.answer(merc.read_memory(5, 3, 0xFFF8, 16).encode(), now)[1] == 1   # beyond the ring
    # a record whose interval holds a power cut is an incomplete slice: METER_ERROR
    model = sim.model(5)
    cut = next(t for t, code, _ in model.events(now - 80 * 86400, now - 86400) if code == 1)
    t_end = math.ceil(cut / 1800) * 1800
    data = profile_record_bytes(model, t_end, 30, 1000)
    assert data[0] & 0x02
    frame = b"\x05" + data + crc16_modbus(b"\x05" + data).to_bytes(2, "little")
    bad = merc.decode(frame, request=_record_request(5, 0, 1000))
    assert (bad["status"] == Quality.METER_ERROR).all() and len(bad) == 4


@pytest.mark.parametrize("pointer, records, newest_slot", [
    ("record", 4096, None),
    ("byte", 4096, None),
    ("byte", 4096, 0),             # pointer 0: both address readings agree, nothing is settled
    ("record", 8192, 4096 + 3),    # newest record above 64 KiB: the b17 address bit
    ("record", 4096, 20),          # catch-up wraps from slot 0 to the end of the ring
])
def test_profile_catch_up_reads_the_configured_depth(pointer, records, newest_slot):
    async def main():
        sim = MercurySim(addresses=(3,), seed=11, profile_pointer=pointer, profile_records=records)
        end = newest_end(sim, 3)
        if newest_slot is not None:   # put the newest record in the slot the case asks for
            sim.profile_slot_offset = (newest_slot - end // 1800) % records
        drv = MercuryDriver(profile_records=records)
        async with SimServer(sim) as srv, Engine(drivers={"mercury": drv}, schedule=False) as eng:
            mid = eng.add_meter(pcfg(srv.port, 3))
            r = await eng.poll_now(mid)
            out = eng.polls[-1]
            assert out.ok, out.error
            ends = [end - 1800 * k for k in range(47, -1, -1)]
            if newest_end(sim, 3) != end:      # an interval closed during the poll: redo
                return await main()
            check_profile(r, sim, 3, ends)
            assert not eng.events
            reads = [k for a, k, s in sim.log if k in ("memory", "profile_record")]
            assert len(reads) in (49, 50)      # the pointer check (one or two reads) and 48 records
            assert drv._meter_state(eng.meters[mid].cfg).unit == (None if newest_slot == 0 else pointer)
            if records == 8192:
                assert any(req[2] == 0x83 for (a, req) in sim.answered_at if len(req) == 6 and req[1] == 6)
            # the next poll reads only what closed since
            r2 = await eng.poll_now(mid)
            assert eng.polls[-1].ok
            assert all(int(t) > end for t in r2["ts"].astype("datetime64[s]").astype(np.int64))
            assert drv.profile_obis(eng.meters[mid].cfg) == PROFILE_OBIS
            assert not set(PROFILE_CHANNELS) & set(drv.expected_obis(eng.meters[mid].cfg))
    run(main())


def test_profile_catch_up_is_spread_over_polls_and_resumes_from_the_store(tmp_path):
    async def main():
        sim = MercurySim(addresses=(2,), seed=4)
        store = await open_store("sqlite:///" + str(tmp_path / "m.db"))
        try:
            async with SimServer(sim) as srv:
                conf = pcfg(srv.port, 2, data_polling_length=6)   # 288 intervals: two polls
                async with Engine(store=store, drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
                    mid = eng.add_meter(conf, meter_id=1)
                    end = newest_end(sim, 2)
                    first = await eng.poll_now(mid)
                    a1 = first[first["obis"] == PROFILE_CHANNELS[0]]
                    assert len(a1) == MAX_PROFILE_RECORDS and eng.polls[-1].ok
                    ts1 = a1["ts"].astype("datetime64[s]").astype(np.int64)
                    assert ts1[0] == end - 1800 * 287 and (np.diff(ts1) == 1800).all()   # oldest first
                # a restart: a new engine and driver learn the resume point from the store
                async with Engine(store=store, drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
                    mid = eng.add_meter(conf, meter_id=1)
                    second = await eng.poll_now(mid)
                    assert eng.polls[-1].ok
                stored = await store.read_readings(1, PROFILE_CHANNELS[0])
                st = stored["ts"].astype("datetime64[s]").astype(np.int64)
                assert len(st) == len(set(st.tolist())) >= 288 and (np.diff(st) == 1800).all()  # no gap, no duplicate
                assert st[0] == end - 1800 * 287
                check_profile(second, sim, 2, st[MAX_PROFILE_RECORDS:].tolist())
        finally:
            await store.close()
    run(main())


def test_a_poll_that_fails_after_the_profile_reads_does_not_move_the_catch_up_point():
    async def main():
        sim = MercurySim(addresses=(1,), seed=8)
        orig = sim.answer
        silent = {"close": True}

        def answer(request, now):   # no answer to the close request: the session fails
            if silent["close"] and request[1] == 2:
                return None
            return orig(request, now)

        sim.answer = answer
        async with SimServer(sim) as srv, Engine(drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
            mid = eng.add_meter(pcfg(srv.port))
            r = await eng.poll_now(mid)
            assert not eng.polls[-1].ok and eng.polls[-1].quality == Quality.TIMEOUT
            assert len(r) == 0 or np.isnan(r["value"]).all()
            silent["close"] = False
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok
            assert len(r[r["obis"] == PROFILE_CHANNELS[0]]) == 48   # read again, nothing lost
    run(main())


def test_a_pointer_whose_record_does_not_match_is_reported_and_no_profile_is_read():
    class WrongPointer(MercurySim):
        def _profile_answer(self, meter, a, req, now):
            ans = super()._profile_answer(meter, a, req, now)
            if req.kind == "profile_pointer":   # point one record too far back
                value = ((ans[1] << 8 | ans[2]) - 1) % self.profile_records
                body = bytes((a, value >> 8, value & 0xFF)) + ans[3:-2]
                ans = body + crc16_modbus(body).to_bytes(2, "little")
            return ans

    async def main():
        sim = WrongPointer(addresses=(1,), seed=8)
        async with SimServer(sim) as srv, Engine(drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
            mid = eng.add_meter(pcfg(srv.port, reads=("energy", "profile")))
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok and len(r) == 20 and not (np.isin(r["obis"], PROFILE_CHANNELS)).any()
            assert [e[2] for e in eng.events] == [5] and "no record at the 08 13 pointer" in eng.events[0][3]
    run(main())


# ---------------------------------------------------------------- clock set

def test_clock_drift_is_set_at_level_2_and_logged_by_the_meter():
    async def main():
        sim = MercurySim(addresses=(9,), clock_drift_ppm=5.0, admin_password="246810")
        async with SimServer(sim) as srv:
            link = Link(TcpTransport("127.0.0.1", srv.port))

            async def poll(**kw):
                async with link.lease("m") as lease:
                    return await MercuryDriver().poll(lease, cfg(srv.port, 9, reads=("clock",), **kw),
                                                      Deadlines(0.3, 0.05))

            res = await poll(password="246810", set_clock=True)
            assert [e.code for e in res.events] == [2, 3] and res.events[1].text == "clock set"
            assert (9, "open", 0) in sim.log and (9, "set_time", 0) in sim.log
            assert abs(sim.meter_clock(9, time.time()) - time.time()) < 2
            (old, new), = sim.clock_sets[9]
            assert old - new > 60                                   # it was minutes fast
            res = await poll(password="246810", set_clock=True)
            assert res.events == []                                 # within time_difference now
            with pytest.raises(ProtocolExceptionError):             # the level-1 password is not the admin's
                await poll(password="111111", set_clock=True)
            await link.close()
        # the meter logs the correction in journal 02 (old time, new time)
        journal = sim.answer(merc.read_journal(9, 2, 0).encode(), time.time())
        assert journal[1] == 5   # channel closed again
        sim.answer(merc.open_channel(9, 1, "111111").encode(), time.time())
        rec = merc.decode(sim.answer(merc.read_journal(9, 2, 0).encode(), time.time()), request=merc.read_journal(9, 2, 0))
        stamps = rec["ts"].astype("datetime64[s]").astype(np.int64).tolist()
        assert stamps == [int(old), int(new)]
        # a level-1 channel may not set the clock
        assert sim.answer(set_time_request(9, time.time()), time.time())[1] == 3
    run(main())


def test_a_refused_clock_set_is_an_event_not_a_failure():
    class Corrected(MercurySim):   # "clock already corrected today"
        def _set_time(self, meter, a, bcd, now):
            return self._status(a, 4, "set_time")

    async def main():
        sim = Corrected(addresses=(9,), clock_drift_ppm=5.0)
        async with SimServer(sim) as srv, Engine(drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(srv.port, 9, password="222222", set_clock=True, reads=("energy", "clock")))
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok and (r["status"] == Quality.OK).all()
            assert [e[2] for e in eng.events] == [2, 4]
            assert "status 4 (clock already corrected today)" in eng.events[1][3]
    run(main())


def test_profile_and_clock_set_over_a_serial_line():
    async def main():
        sim = MercurySim(addresses=(1,), seed=5, clock_drift_ppm=5.0)
        async with SimSerial(sim) as ser, Engine(drivers={"mercury": MercuryDriver()}, schedule=False) as eng:
            mid = eng.add_meter(MeterConfig(name="ser", protocol="mercury", link="serial",
                                            serial=SerialSettings(port=ser.path), connection_address="1",
                                            password="222222", set_clock=True, reads=("profile", "clock"),
                                            waiting_time=500, interval_time=50, pause_time=0))
            end = newest_end(sim, 1)
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok, eng.polls[-1].error
            if newest_end(sim, 1) == end:   # no interval closed meanwhile
                check_profile(r[np.isin(r["obis"], PROFILE_CHANNELS)], sim, 1, [end])   # depth 0: the newest
            assert [e[2] for e in eng.events] == [2, 3]
    run(main())
