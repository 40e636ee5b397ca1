"""IEC 62056-21 mode C end to end: engine + IecDriver + IecSim on real sockets (TCP on loopback,
a pty for the serial path).  Readout values must equal the MeterModel at the time the simulator
built the readout (within 1 Wh / 0.01 V / 0.001 A / 0.01 Hz / 1 s)."""
import time

import numpy as np
import pytest
import uvloop

from meterpoll.bindings import iec62056_21 as iec
from meterpoll.bindings.errors import ChecksumError
from meterpoll.bindings.readings import Quality, Unit, obis
from meterpoll.engine.config import MeterConfig, SerialSettings
from meterpoll.engine.drivers import driver as make_driver, simulator as make_sim
from meterpoll.engine.drivers.iec62056_21 import READOUT_OBIS, IecDriver, complete
from meterpoll.engine.engine import Engine
from meterpoll.engine.link import Link
from meterpoll.engine.sim.iec62056_21 import IecSim, request_length
from meterpoll.engine.sim.server import Faults, SimSerial, SimServer
from meterpoll.engine.transport import Deadlines, TcpTransport


def run(coro):
    return uvloop.run(coro)


def cfg(port, addr="1", **kw):
    kw.setdefault("reads", ("energy", "instant", "clock"))
    return MeterConfig(name="iec%s" % addr, protocol="iec62056-21", ip_address="127.0.0.1", port=port,
                       connection_address=str(addr), waiting_time=300, interval_time=50, pause_time=0, **kw)


def expected(sim, addr):
    model = sim.model(addr)
    t = sim.answered_at[str(addr)]
    e = model.energy_by_tariff(t)
    inst = model.instant(t)
    clk = time.gmtime(int(model.clock(t)))
    out = {obis("1.0.1.8.%d.255" % k): (e[k], 0.5 + 1e-6, Unit.WATT_HOUR) for k in range(5)}
    for c, p in zip((32, 52, 72), inst["phases"]):
        out[obis("1.0.%d.7.0.255" % c)] = (p["voltage"], 0.005 + 1e-6, Unit.VOLT)
    for c, p in zip((31, 51, 71), inst["phases"]):
        out[obis("1.0.%d.7.0.255" % c)] = (p["current"], 0.0005 + 1e-6, Unit.AMPERE)
    out[obis("1.0.14.7.0.255")] = (inst["frequency"], 0.005 + 1e-6, Unit.HERTZ)
    out[obis("1.0.0.9.1.255")] = (clk.tm_hour * 10000 + clk.tm_min * 100 + clk.tm_sec, 0, Unit.COUNT)
    out[obis("1.0.0.9.2.255")] = ((clk.tm_year % 100) * 10000 + clk.tm_mon * 100 + clk.tm_mday, 0, Unit.COUNT)
    out[obis("1.0.97.97.0.255")] = (0.0, 0, Unit.COUNT)
    return out


def check_readings(r, sim, addr, mid):
    exp = expected(sim, addr)
    if mid is not None:
        assert (r["meter"] == mid).all()
    assert (r["status"] == Quality.OK).all(), r
    got = {int(x["obis"]): x for x in r}
    assert set(got) == set(exp) == set(READOUT_OBIS)
    for o, (v, tol, unit) in exp.items():
        x = got[o]
        assert abs(float(x["value"]) - v) <= tol, (hex(o), float(x["value"]), v)
        assert int(x["unit"]) == unit, hex(o)
    assert got[obis("1.0.1.8.0.255")]["value"] > 1e6


# ---------------------------------------------------------------- simulator and framing

def test_session_messages_frame_and_decode_with_the_codec():
    sim = IecSim(addresses=("00000201",), seed=2)
    now = time.time()
    so = iec.sign_on("00000201")
    assert request_length(bytearray(so + b"\x06")) == len(so)
    ident = sim.answer(so, now)
    assert ident == b"/MPL5meterpoll-sim\r\n" and complete(bytearray(ident + b"\x02")) == len(ident)
    assert iec.parse_identification(ident).baud == 9600
    ack = iec.option_select(mode="readout", baud_char="5")
    assert request_length(bytearray(ack)) == 6
    block = sim.answer(ack, now)
    assert complete(bytearray(block[:-1])) == 0 and complete(bytearray(block + b"\x00")) == len(block)
    f = iec.parse_frame(block)
    assert f.kind == "data" and b"1.8.0(" in bytes(f.payload)
    r = iec.decode(block)
    check_readings(r, sim, "00000201", None)
    assert sim.answer(ack, now) is None               # the session ended with the readout
    assert complete(bytearray(b"\x15")) == 1 and complete(bytearray(b"xyz")) == -1
    bad = sim.corrupt_checksum(block)
    assert bad[:-1] == block[:-1] and bad[-1] != block[-1]
    with pytest.raises(ChecksumError):
        iec.decode(bad)


def test_peer_library_reads_the_simulated_readout_and_the_driver_messages():
    """pwitab/iec62056-21 (``iec62056_21``) parses our readout (BCC, data sets, units) to the model's
    values, and builds the same sign-on and option select bytes the driver sends."""
    peer = pytest.importorskip("iec62056_21.messages")
    sim = IecSim(addresses=(4,), seed=8)
    now = time.time()
    assert sim.answer(peer.RequestMessage("4").to_bytes(), now).startswith(b"/MPL5")
    ack = peer.AckOptionSelectMessage("5", "0").to_bytes()
    assert ack == iec.option_select(mode="readout", baud_char="5")
    block = sim.answer(ack, now)
    msg = peer.ReadoutDataMessage.from_bytes(block)
    sets = {ds.address: ds for line in msg.data_block.data_lines for ds in line.data_sets}
    model = sim.model(4)
    t = sim.answered_at["4"]
    assert sets["1.8.0"].unit == "kWh" and abs(float(sets["1.8.0"].value) * 1000 - model.active_energy(t)) <= 0.5 + 1e-6
    assert sets["32.7"].unit == "V" and abs(float(sets["32.7"].value) - model.instant(t)["phases"][0]["voltage"]) <= 0.005 + 1e-6
    assert sets["14.7"].unit == "Hz" and sets["F.F"].value == "00000000"


def test_addressing_and_programming_mode_password():
    sim = IecSim(addresses=(1, 2), password="12345678")
    now = time.time()
    assert sim.answer(iec.sign_on("3"), now) is None          # nobody: silence
    assert sim.answer(iec.sign_on(""), now) is None           # two meters: nobody answers /?!
    assert sim.answer(iec.option_select(), now) is None       # nobody awake
    assert sim.answer(iec.sign_on("0002"), now).startswith(b"/MPL")
    prompt = sim.answer(iec.option_select(mode="programming", baud_char="5"), now)
    assert iec.parse_frame(prompt).command == "P0"
    assert sim.answer(iec.read("1.8.0"), now) == b"\x15"      # no password yet
    assert sim.answer(iec.password("00000000"), now) == b"\x15"
    assert sim.answer(iec.password("12345678"), now) == b"\x06"
    ans = sim.answer(iec.read("32.7"), now)
    v = iec.decode(ans)
    assert v["obis"][0] == obis("1.0.32.7.0.255") and abs(v["value"][0] - sim.model(2).instant(now)["phases"][0]["voltage"]) < 0.006
    assert sim.answer(iec.break_session(), now) is None
    assert sim.answer(iec.read("32.7"), now) is None          # session over
    assert isinstance(make_driver("iec62056-21"), IecDriver)
    assert set(make_sim("iec62056-21", addresses=["7"]).meters) == {"7"}


# ---------------------------------------------------------------- end to end

def test_poll_now_three_meters_behind_one_gateway():
    async def main():
        sim = IecSim(addresses=(1, 2, 3), seed=20)
        async with SimServer(sim) as gw, Engine(drivers={"iec62056-21": IecDriver()}, schedule=False) as eng:
            ids = {a: eng.add_meter(cfg(gw.port, a)) for a in (1, 2, 3)}
            assert len(eng.links) == 1
            for a, mid in ids.items():
                check_readings(await eng.poll_now(mid), sim, a, mid)
                assert eng.polls[-1].ok
            assert gw.stats["connections"] == 1
            assert (await eng.raw_exchange(ids[2], iec.sign_on("2"))).startswith(b"/MPL5")  # raw, framed by complete
            assert set(sim.option_selects) == {b"\x06050\r\n"}  # stay at 9600 Bd, data readout
    run(main())


def test_wrong_device_address_gets_no_answer():
    async def main():
        sim = IecSim(addresses=(1,))
        async with SimServer(sim) as srv, Engine(drivers={"iec62056-21": IecDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(srv.port, "99"))
            r = await eng.poll_now(mid)
            assert len(r) == len(READOUT_OBIS) and np.isnan(r["value"]).all()
            assert (r["status"] == Quality.TIMEOUT).all() and "no answer" in eng.polls[-1].error
            assert srv.stats["requests"] == 1 and srv.stats["answers"] == 0
    run(main())


@pytest.mark.parametrize("fault, quality", [("silence", Quality.TIMEOUT), ("bad_checksum", Quality.CHECKSUM),
                                            ("truncate", Quality.TIMEOUT), ("disconnect", Quality.TIMEOUT),
                                            ("garbage", Quality.PROTOCOL_EXCEPTION)])
def test_faults_give_non_ok_readings_never_zeros_and_the_next_poll_succeeds(fault, quality):
    async def main():
        sim = IecSim(addresses=(1,), seed=1)
        faults = Faults(**{fault: 1.0}, seed=3)
        async with SimServer(sim, faults) as srv, Engine(drivers={"iec62056-21": IecDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(srv.port))
            r = await eng.poll_now(mid)
            assert not eng.polls[-1].ok
            if fault == "bad_checksum":
                # the identification has no checksum; the readout's BCC is wrong: the frame is lost
                assert len(r) == 0 or (np.isnan(r["value"]).all() and (r["status"] != Quality.OK).all())
                assert "CHECKSUM" in eng.polls[-1].error and eng.polls[-1].quality == Quality.CHECKSUM
            else:
                assert len(r) == len(READOUT_OBIS), eng.polls[-1].error
                assert np.isnan(r["value"]).all() and (r["status"] == quality).all(), eng.polls[-1].error
            setattr(faults, fault, 0.0)
            check_readings(await eng.poll_now(mid), sim, 1, mid)
    run(main())


def test_clock_drift_is_reported_as_an_event():
    async def main():
        sim = IecSim(addresses=(5,), clock_drift_ppm=5.0)
        async with SimServer(sim) as srv:
            link = Link(TcpTransport("127.0.0.1", srv.port))
            async with link.lease("m") as lease:
                res = await IecDriver().poll(lease, cfg(srv.port, 5), Deadlines(0.3, 0.05))
            await link.close()
        assert len(res.frames) == 1 and res.events and "clock off by +" in res.events[0].text
    run(main())


def test_serial_path_through_a_pty():
    async def main():
        sim = IecSim(addresses=("1",), seed=5)
        async with SimSerial(sim) as ser, Engine(drivers={"iec62056-21": IecDriver()}, schedule=False) as eng:
            mid = eng.add_meter(MeterConfig(name="ser", protocol="iec62056-21", link="serial",
                                            serial=SerialSettings(port=ser.path, baudrate=19200, bytesize=7, parity="E"),
                                            connection_address="1", waiting_time=500, interval_time=50, pause_time=0))
            check_readings(await eng.poll_now(mid), sim, "1", mid)
            assert sim.option_selects[-1] == b"\x06060\r\n"   # stays at the port's 19200 Bd
    run(main())
