"""Modbus end to end on real sockets: the engine with ModbusDriver polls ModbusSim (Eastron
SDM630 / SDM120 register maps from the MeterModel) over Modbus TCP, RTU over a TCP gateway and
RTU on a pty; faults become non-OK NaN readings; pymodbus's client reads our simulator."""
import asyncio
import math
import struct
import time

import numpy as np
import pytest
import uvloop

from meterpoll.bindings import modbus as codec
from meterpoll.bindings.readings import Quality, Unit, obis
from meterpoll.engine.config import MeterConfig, SerialSettings
from meterpoll.engine.drivers import driver as make_driver, simulator
from meterpoll.engine.drivers.modbus import ModbusDriver, _Req, complete_auto, complete_rtu, complete_tcp
from meterpoll.engine.engine import Engine
from meterpoll.engine.sim.modbus import ModbusSim
from meterpoll.engine.sim.server import Faults, SimServer, SimSerial

E_IMPORT = obis("1.0.1.8.0.255")
P_TOTAL = obis("1.0.1.7.0.255")
U_L1 = obis("1.0.32.7.0.255")
FREQ = obis("1.0.14.7.0.255")
Q_ENERGY = obis("1.0.3.8.0.255")


def run(coro):
    return uvloop.run(coro)


def cfg(port, addr=1, link="tcp", **kw):
    kw.setdefault("waiting_time", 300)
    kw.setdefault("interval_time", 50)
    return MeterConfig(name="m%d" % addr, protocol="modbus", ip_address="127.0.0.1", port=port, link=link,
                       connection_address=str(addr), pause_time=0, **kw)


def f32(x):
    return float(np.float32(x))


def check_against_model(r, model):
    """Readings equal the model at the reading time within float32 resolution."""
    assert len(r) and (r["status"] == Quality.OK).all(), r
    by = {int(o): (float(v), int(u), t) for o, v, u, t in zip(r["obis"], r["value"], r["unit"],
                                                             r["ts"].astype("datetime64[ms]").astype(np.int64))}
    t = by[E_IMPORT][2] / 1000.0
    e, p = model.active_energy(t), model.active_power(t)
    # the answer was built a few ms before the reading's time: allow 2 s of energy growth
    slack_wh = 2.0 * p / 3600.0
    res_wh = 1000.0 * abs(f32(e / 1000.0) - e / 1000.0) + 1000.0 * np.spacing(np.float32(e / 1000.0))
    assert abs(by[E_IMPORT][0] - e) <= res_wh + slack_wh
    assert by[E_IMPORT][1] == Unit.WATT_HOUR
    assert by[P_TOTAL][0] == pytest.approx(p, rel=1e-4) and by[P_TOTAL][1] == Unit.WATT
    ins = model.instant(t)
    assert by[U_L1][0] == pytest.approx(ins["phases"][0]["voltage"], abs=0.01) and by[U_L1][1] == Unit.VOLT
    assert by[FREQ][0] == pytest.approx(ins["frequency"], abs=1e-3) and by[FREQ][1] == Unit.HERTZ
    assert by[Q_ENERGY][0] == pytest.approx(model.reactive_energy(t), rel=1e-5) and by[Q_ENERGY][1] == Unit.VAR_HOUR


def test_registry_and_framing_functions():
    assert isinstance(make_driver("modbus"), ModbusDriver)
    assert isinstance(simulator("modbus", addresses=[1, 2]), ModbusSim)
    rtu = codec.encode_read_response(1, 4, [1, 2])
    tcp = codec.encode_read_response(1, 4, [1, 2], tcp=True, transaction=7)
    exc = codec.encode_exception(1, 4, 2)
    assert complete_rtu(bytearray(rtu[:4])) == 0 and complete_rtu(bytearray(rtu + b"x")) == len(rtu)
    assert complete_rtu(bytearray(exc)) == 5 and complete_rtu(bytearray(b"\x01\x07")) == -1
    assert complete_tcp(bytearray(tcp[:7])) == 0 and complete_tcp(bytearray(tcp)) == len(tcp)
    assert complete_tcp(bytearray(b"\x00\x01\x00\x01\x00\x03")) == -1
    assert complete_auto(bytearray(rtu)) == len(rtu) and complete_auto(bytearray(tcp)) == len(tcp)
    assert complete_auto(bytearray(tcp[:8])) == 0


def test_tcp_poll_of_three_meters_behind_one_port_matches_the_model():
    sim = ModbusSim(addresses=(1, 2, 3), seed=10)

    async def main():
        async with SimServer(sim) as srv, Engine(drivers={"modbus": ModbusDriver()}, schedule=False) as eng:
            ids = {a: eng.add_meter(cfg(srv.port, a)) for a in (1, 2, 3)}
            results = await asyncio.gather(*(eng.poll_now(i) for i in ids.values()))
            assert len(eng.links) == 1 and srv.stats["connections"] == 1
            for a, r in zip(ids, results):
                assert len(r) == len(codec.SDM630)
                assert (r["meter"] == ids[a]).all()
                check_against_model(r, sim.models[a])
            assert all(p.ok for p in eng.polls)
            # the plan: at most the map's 80 registers per read, every request answered
            assert all(c <= 80 for *_, c in sim.served) and not sim.exceptions
            assert len(sim.served) == 3 * len(codec.SDM630.plan(125))
    run(main())


def test_rtu_over_gateway_package_size_sdm120_and_energy_only():
    sim = ModbusSim(addresses=(5, 6), seed=3, register_map={5: "sdm120", 6: "sdm630"})

    async def main():
        async with SimServer(sim) as srv, Engine(drivers={"modbus": ModbusDriver()}, schedule=False) as eng:
            a = eng.add_meter(cfg(srv.port, 5, link="gateway", register_map="sdm120", package_size=4))
            b = eng.add_meter(cfg(srv.port, 6, link="gateway", reads=("energy",)))
            ra, rb = await eng.poll_now(a), await eng.poll_now(b)
            assert len(ra) == len(codec.SDM120)
            check_against_model(ra, sim.models[5])
            served_a = [s for s in sim.served if s[0] == 5]
            assert served_a and all(c <= 4 for *_, c in served_a)
            energy = [e for e in codec.SDM630 if (e.obis >> 16) & 0xFF == 8]
            assert sorted(rb["obis"].tolist()) == sorted(e.obis for e in energy)
            assert (rb["status"] == Quality.OK).all()
            t = int(rb["ts"][0].astype(np.int64)) / 1000.0
            v = float(rb["value"][rb["obis"] == E_IMPORT][0])
            assert v == pytest.approx(sim.models[6].active_energy(t), abs=50)
            # both meters' answers decoded together in one tick when polled concurrently
            r2 = await asyncio.gather(eng.poll_now(a), eng.poll_now(b))
            assert [len(x) for x in r2] == [len(codec.SDM120), len(energy)]
            assert all((x["status"] == 0).all() for x in r2)
    run(main())


@pytest.mark.parametrize("kind,link", [("silence", "tcp"), ("bad_checksum", "gateway"),
                                       ("bad_checksum", "tcp"), ("truncate", "tcp"), ("disconnect", "gateway")])
def test_faults_give_non_ok_nan_readings_and_the_next_poll_succeeds(kind, link):
    sim = ModbusSim(addresses=(1,), seed=1)

    async def main():
        async with SimServer(sim, Faults(**{kind: 1.0})) as srv, \
                Engine(drivers={"modbus": ModbusDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(srv.port, 1, link=link, waiting_time=150, interval_time=30))
            r = await eng.poll_now(mid)
            assert len(r) == len(codec.SDM630)
            assert (r["status"] != Quality.OK).all() and np.isnan(r["value"]).all()
            expected = {"silence": Quality.TIMEOUT, "truncate": Quality.TIMEOUT, "disconnect": Quality.TIMEOUT,
                        "bad_checksum": Quality.CHECKSUM if link == "gateway" else Quality.PROTOCOL_EXCEPTION}[kind]
            assert (r["status"] == expected).all(), (kind, set(r["status"].tolist()))
            assert not eng.polls[-1].ok
            setattr(srv.faults, kind, 0.0)  # the connection's session holds this object
            r = await eng.poll_now(mid)
            check_against_model(r, sim.models[1])
            assert eng.polls[-1].ok
    run(main())


def test_exception_answers_become_protocol_exception_readings(tmp_path):
    """The driver's map asks for a register the meter does not have: exception 02 for that read,
    NaN PROTOCOL_EXCEPTION readings for its channels, the other reads decode normally."""
    toml = tmp_path / "custom.toml"
    toml.write_text('name = "custom"\n[defaults]\ntype = "float32"\n'
                    '[[register]]\nname = "e"\naddress = 0x48\nobis = "1.0.1.8.0.255"\nunit = "Wh"\nscale = 1000\n'
                    '[[register]]\nname = "bogus"\naddress = 0x200\nobis = "1.0.99.7.0.255"\nunit = "W"\n')
    sim = ModbusSim(addresses=(1,), seed=2)

    async def main():
        async with SimServer(sim) as srv, Engine(drivers={"modbus": ModbusDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(srv.port, 1, register_map=str(toml)))
            r = await eng.poll_now(mid)
            by = dict(zip(r["obis"].tolist(), zip(r["value"].tolist(), r["status"].tolist())))
            assert by[E_IMPORT][1] == Quality.OK and by[E_IMPORT][0] > 0
            bogus = obis("1.0.99.7.0.255")
            assert math.isnan(by[bogus][0]) and by[bogus][1] == Quality.PROTOCOL_EXCEPTION
            assert list(sim.exceptions) == [(1, 4, 2)]
            assert eng.polls[-1].quality == Quality.PROTOCOL_EXCEPTION
    run(main())


def test_simulator_exceptions_and_unknown_units():
    sim = ModbusSim(addresses=(1,))
    ex = lambda code, fn=4: codec.encode_exception(1, fn, code)  # noqa: E731
    assert sim.answer(codec.encode_read_input(1, 0x48, 2), 0.0)[:2] == b"\x01\x04"
    assert sim.answer(codec.encode_read_input(1, 0x01, 2), 0.0) == ex(2)          # cuts a float
    assert sim.answer(codec.encode_read_input(1, 0x40, 2), 0.0) == ex(2)          # unmapped
    assert sim.answer(codec.encode_read_input(1, 0x00, 82), 0.0) == ex(2)         # over 80
    assert sim.answer(codec.encode_read_holding(1, 0x00, 2), 0.0) == ex(2, 3)     # no holding map
    assert sim.answer(codec.encode_write_single(1, 0x00, 2), 0.0) == ex(1, 6)     # illegal function
    assert sim.answer(codec.encode_diagnostic(1, 0, 0xAA55), 0.0) == codec.encode_write_ack(1, 8, 0, 0xAA55)
    assert sim.answer(codec.encode_read_input(2, 0x48, 2), 0.0) is None           # nobody at unit 2
    tcp = codec.encode_read_input(1, 0x48, 2, tcp=True, transaction=0x1234)
    assert sim.request_length(bytearray(tcp)) == len(tcp)
    ans = sim.answer(tcp, 0.0)
    assert ans[:2] == b"\x12\x34" and complete_tcp(bytearray(ans)) == len(ans)
    rtu = codec.encode_read_input(1, 0x48, 2)
    assert sim.request_length(bytearray(rtu + rtu)) == len(rtu)
    assert complete_rtu(bytearray(sim.corrupt_checksum(sim.answer(rtu, 0.0)))) == 9


def test_serial_rtu_through_a_pty():
    sim = ModbusSim(addresses=(7,), seed=4)

    async def main():
        async with SimSerial(sim) as line, Engine(drivers={"modbus": ModbusDriver()}, schedule=False) as eng:
            mid = eng.add_meter(MeterConfig(name="s", protocol="modbus", link="serial",
                                            serial=SerialSettings(port=line.path, baudrate=115200),
                                            connection_address="7", waiting_time=500, interval_time=50,
                                            pause_time=0))
            r = await eng.poll_now(mid)
            check_against_model(r, sim.models[7])
            assert len(r) == len(codec.SDM630)
    run(main())


@pytest.mark.parametrize("rtu", [False, True])
def test_pymodbus_client_reads_our_simulator(rtu):
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.framer import FramerType

    sim = ModbusSim(addresses=(1, 2), seed=20)

    async def main():
        async with SimServer(sim) as srv:
            client = AsyncModbusTcpClient("127.0.0.1", port=srv.port, timeout=2, retries=0,
                                          framer=FramerType.RTU if rtu else FramerType.SOCKET)
            await client.connect()
            try:
                for unit in (1, 2):
                    rr = await client.read_input_registers(0x48, count=2, device_id=unit)
                    assert not rr.isError()
                    kwh = struct.unpack(">f", struct.pack(">HH", *rr.registers))[0]
                    e = sim.models[unit].active_energy(time.time()) / 1000.0
                    assert kwh == pytest.approx(e, abs=0.05)
                    rr = await client.read_input_registers(0x00, count=6, device_id=unit)
                    volts = [struct.unpack(">f", struct.pack(">HH", *rr.registers[i:i + 2]))[0] for i in (0, 2, 4)]
                    ph = sim.models[unit].instant(time.time())["phases"]
                    assert volts == pytest.approx([p["voltage"] for p in ph], abs=0.01)
                rr = await client.read_input_registers(0x40, count=2, device_id=1)
                assert rr.isError() and rr.exception_code == 2
                rr = await client.read_holding_registers(0x00, count=2, device_id=1)
                assert rr.isError() and rr.exception_code == 2
            finally:
                client.close()
    run(main())


def test_decode_batch_groups_frames_of_different_maps():
    """Answers of SDM120 and SDM630 meters interleaved in one tick: one native call per map,
    readings and per-frame statuses where they belong; a corrupt frame gives CHECKSUM NaNs."""
    sim = ModbusSim(addresses=(1, 2), register_map={1: "sdm120", 2: "sdm630"})
    drv = ModbusDriver()
    m120 = MeterConfig(name="a", protocol="modbus", link="gateway", ip_address="127.0.0.1", port=1,
                       connection_address="1", register_map="sdm120")
    m630 = MeterConfig(name="b", protocol="modbus", link="tcp", ip_address="127.0.0.1", port=1,
                       connection_address="2")
    frames, requests, ids = [], [], []
    now = time.time()
    for mid, m in ((10, m120), (20, m630)):
        p = drv.plan(m)
        tcp = drv.is_tcp(m)
        reqs, recs = codec.encode_plan(int(m.connection_address), p.reads, tcp=tcp, first_transaction=5)
        for i, rq in enumerate(reqs):
            frames.append(sim.answer(rq, now))
            requests.append(_Req(p.map, recs[i:i + 1], tcp))
            ids.append(mid)
    order = sorted(range(len(frames)), key=lambda i: (i % 3, i))   # the two meters' frames interleaved
    frames, requests, ids = [frames[i] for i in order], [requests[i] for i in order], [ids[i] for i in order]
    bad = next(i for i, r in enumerate(requests) if not r.tcp)
    frames[bad] = sim.corrupt_checksum(frames[bad])
    rx = np.full(len(frames), np.datetime64(int(now * 1000), "ms"))
    readings, st = drv.decode_batch(frames, requests, np.asarray(ids, dtype=np.uint32), rx)
    assert len(st) == len(frames)
    assert [int(s) for s in st["status"]] == [1 if i == bad else 0 for i in range(len(frames))]
    ok = readings[readings["status"] == Quality.OK]
    failed = readings[readings["status"] == Quality.CHECKSUM]
    assert len(failed) and np.isnan(failed["value"]).all() and (failed["meter"] == 10).all()
    assert len(ok[ok["meter"] == 20]) == len(codec.SDM630)
    assert len(ok[ok["meter"] == 10]) + len(failed) == len(codec.SDM120)
    # each frame's own readings sit at its status record's first..first+count
    for i in range(len(frames)):
        if st["status"][i] == 0:
            sl = readings[int(st["first"][i]):int(st["first"][i]) + int(st["count"][i])]
            assert (sl["meter"] == ids[i]).all() and (sl["status"] == 0).all()


def test_simulator_frames_requests_whose_mbap_bytes_also_pass_a_crc():
    """Transaction id 0x0560 makes a 12-byte Modbus TCP read also end in a valid CRC-16; the
    simulator once took it for RTU and stayed silent (found by bench_engine: one poll in a
    thousand waited out its deadline)."""
    import time as _time

    from meterpoll import crc16_modbus, modbus as mb
    from meterpoll.engine.sim.modbus import ModbusSim

    sim = ModbusSim(addresses=(1,), seed=1)
    req = mb.encode_read(1, 4, 0, 40, tcp=True, transaction=0x0560)
    assert crc16_modbus(req) == 0  # the coincidence itself
    ans = sim.answer(req, _time.time())
    assert ans is not None and ans[:2] == b"\x05\x60" and ans[7] == 4
    rtu = mb.encode_read(1, 4, 0, 2)  # 8 bytes, also MBAP-consistent: stays RTU
    assert sim.answer(rtu, _time.time())[:2] == b"\x01\x04"
    for tid in range(0, 65536, 97):
        assert sim.answer(mb.encode_read(1, 4, 0, 40, tcp=True, transaction=tid), _time.time()) is not None


def test_a_late_answer_is_skipped_by_transaction_id():
    """The meter answers one request late (after the deadline); the next poll receives that
    stale answer first, skips it by its transaction id and gets its own: no failed poll."""
    import asyncio as _asyncio

    import uvloop as _uvloop

    from meterpoll.engine.config import MeterConfig as _Cfg
    from meterpoll.engine.drivers import driver as _driver, simulator as _simulator
    from meterpoll.engine.engine import Engine as _Engine
    from meterpoll.engine.sim.server import Faults as _Faults, SimServer as _SimServer

    async def main():
        faults = _Faults(late=1.0, late_delay=0.35)
        async with _SimServer(_simulator("modbus", addresses=(1,), seed=3), faults) as sim, \
                _Engine(drivers={"modbus": _driver("modbus")}, schedule=False) as eng:
            mid = eng.add_meter(_Cfg(name="m", protocol="modbus", ip_address="127.0.0.1", port=sim.port,
                                     connection_address="1", reads=("energy",), waiting_time=300,
                                     interval_time=50, pause_time=0))
            first = await eng.poll_now(mid)
            assert not eng.polls[-1].ok  # answered after the 0.3 s deadline
            faults.late = 0.0
            await _asyncio.sleep(0.01)   # the late answer is still on its way when we ask again
            second = await eng.poll_now(mid)
            assert eng.polls[-1].ok, eng.polls[-1]
            assert (second["status"] == 0).all() and len(second) == len(first)

    _uvloop.run(main())
