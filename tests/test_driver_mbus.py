"""M-Bus end to end on real sockets: the engine with MbusDriver polls MbusSim heat meters (SND_NKE,
REQ_UD2 with FCB toggling, two-telegram readouts) over TCP and a pty; readings equal the
MeterModel's; faults become non-OK NaN readings; pyMeterBus parses our simulator's telegrams."""
import asyncio

import numpy as np
import pytest
import uvloop

from meterpoll.bindings import mbus as codec
from meterpoll.bindings.errors import FrameError
from meterpoll.bindings.readings import Quality, Unit, obis
from meterpoll.engine.config import MeterConfig, SerialSettings
from meterpoll.engine.drivers import driver as make_driver, simulator
from meterpoll.engine.drivers.mbus import POLL_STATUS_OBIS, MbusDriver, complete
from meterpoll.engine.engine import Engine
from meterpoll.engine.sim.mbus import MbusSim, heat_values
from meterpoll.engine.sim.server import Faults, SimServer, SimSerial

ENERGY, VOLUME, POWER, FLOW = (obis("6.0.%d.0.0.255" % c) for c in (1, 2, 8, 9))
T_FLOW, T_RETURN, T_DIFF = (obis("6.0.%d.0.0.255" % c) for c in (10, 11, 12))
ENERGY_MONTH = obis("6.0.1.0.0.1")
UNITS = {ENERGY: Unit.WATT_HOUR, VOLUME: Unit.CUBIC_METRE, POWER: Unit.WATT, FLOW: Unit.CUBIC_METRE_PER_HOUR,
         T_FLOW: Unit.CELSIUS, T_RETURN: Unit.CELSIUS, T_DIFF: Unit.KELVIN, ENERGY_MONTH: Unit.WATT_HOUR}


def run(coro):
    return uvloop.run(coro)


def cfg(port, addr=1, link="tcp", **kw):
    kw.setdefault("waiting_time", 300)
    kw.setdefault("interval_time", 50)
    return MeterConfig(name="h%s" % addr, protocol="mbus", ip_address="127.0.0.1", port=port, link=link,
                       connection_address=str(addr), pause_time=0, **kw)


def check_against_model(r, sim, addr):
    """Each telegram's readings equal the model at the moment that telegram was built, within
    the register resolution (1 Wh, 1 l, 1 W, 0.1 l/h, 0.01 degC)."""
    assert (r["status"] == Quality.OK).all(), r
    by = {int(o): (float(v), int(u), int(t)) for o, v, u, t in
          zip(r["obis"], r["value"], r["unit"], r["ts"].astype("datetime64[ms]").astype(np.int64))}
    assert set(by) == set(UNITS)
    assert all(by[o][1] == u for o, u in UNITS.items())
    built = {i: t for a, i, t in sim.log if a == addr}   # the latest build time per telegram
    v0, v1 = heat_values(sim.models[addr], built[0]), heat_values(sim.models[addr], built[1])
    assert by[ENERGY][0] == pytest.approx(v0["energy"], abs=0.51)
    assert by[VOLUME][0] == pytest.approx(v0["volume"], abs=0.0006)
    assert by[POWER][0] == pytest.approx(v0["power"], abs=0.51)
    assert by[FLOW][0] == pytest.approx(v0["flow"], abs=0.00006)
    assert by[T_FLOW][0] == pytest.approx(v1["flow_temperature"], abs=0.006)
    assert by[T_RETURN][0] == pytest.approx(v1["return_temperature"], abs=0.006)
    assert by[T_DIFF][0] == pytest.approx(20.0)
    assert by[ENERGY_MONTH][0] == pytest.approx(v1["month_energy"], abs=0.51)
    # storage 0 readings carry the meter clock (type F: minutes), storage 1 its due date
    clock = v0["clock"].replace(second=0, microsecond=0).timestamp() * 1000
    assert by[ENERGY][2] == clock
    assert by[ENERGY_MONTH][2] == v1["month_start"].timestamp() * 1000


def test_registry_and_framing():
    assert isinstance(make_driver("mbus"), MbusDriver)
    assert isinstance(simulator("mbus", addresses=[1, 2]), MbusSim)
    t = MbusSim(addresses=(1,)).telegram(1, 0, 1.8e9)
    assert complete(bytearray(b"\xE5")) == 1 and complete(bytearray(codec.snd_nke(1))) == 5
    assert complete(bytearray(t[:10])) == 0 and complete(bytearray(t + b"\xE5")) == len(t)
    assert complete(bytearray(b"\x68\x05\x06")) == -1 and complete(bytearray(b"\x00")) == -1


def test_three_heat_meters_behind_one_gateway_two_telegrams_each():
    sim = MbusSim(addresses=(1, 2, 250), seed=7)

    async def main():
        async with SimServer(sim) as srv, Engine(drivers={"mbus": MbusDriver()}, schedule=False) as eng:
            ids = {a: eng.add_meter(cfg(srv.port, a)) for a in (1, 2, 250)}
            results = await asyncio.gather(*(eng.poll_now(i) for i in ids.values()))
            assert len(eng.links) == 1 and srv.stats["connections"] == 1
            for a, r in zip(ids, results):
                assert (r["meter"] == ids[a]).all()
                check_against_model(r, sim, a)
            assert all(p.ok and p.frames == 2 for p in eng.polls)
            # per meter: SND_NKE + 2 x REQ_UD2
            assert srv.stats["requests"] == 9
    run(main())


def test_fcb_repeat_and_toggle_in_the_simulator():
    sim = MbusSim(addresses=(5,), seed=1)
    assert sim.answer(codec.snd_nke(5), 0.0) == codec.ACK
    first = sim.answer(codec.req_ud2(5, True), 1.8e9)
    assert codec.parse_frame(first).more_records_follow
    assert sim.answer(codec.req_ud2(5, True), 1.8e9 + 60) == first          # same FCB: repeated
    second = sim.answer(codec.req_ud2(5, False), 1.8e9 + 60)
    assert not codec.parse_frame(second).more_records_follow
    again = sim.answer(codec.req_ud2(5, True), 1.8e9 + 120)                  # wraps to telegram 0
    assert codec.parse_frame(again).more_records_follow and again != first
    assert sim.answer(codec.req_ud2(6, True), 0.0) is None                   # nobody at 6
    assert sim.answer(codec.req_ud1(5), 0.0) == codec.ACK
    err = sim.answer(codec.encode_long_frame(0x53, 5, 0x51, b"\x00"), 0.0)   # unknown SND_UD CI
    with pytest.raises(FrameError) as e:
        codec.decode(err)
    assert e.value.status == 5
    assert sim.answer(codec.snd_nke(5)[:-1] + b"\x00", 0.0) is None           # damaged: silence


def test_single_telegram_readout_and_secondary_address():
    sim = MbusSim(addresses=(3, 4), seed=2, telegrams=1)

    async def main():
        async with SimServer(sim) as srv, Engine(drivers={"mbus": MbusDriver()}, schedule=False) as eng:
            a = eng.add_meter(cfg(srv.port, 3))
            ident = sim.models[4].serial[-8:]
            b = eng.add_meter(cfg(srv.port, ident + "%04X" % codec.manufacturer_id("MPL") + "FF04"))
            ra, rb = await eng.poll_now(a), await eng.poll_now(b)
            assert eng.polls[-2].frames == 1 and eng.polls[-1].frames == 1
            for r, addr in ((ra, 3), (rb, 4)):
                assert set(r["obis"].tolist()) == set(UNITS) and (r["status"] == 0).all()
                t = [x[2] for x in sim.log if x[0] == addr][-1]
                e = heat_values(sim.models[addr], t)["energy"]
                assert float(r["value"][r["obis"] == ENERGY][0]) == pytest.approx(e, abs=0.51)
            wild = eng.add_meter(cfg(srv.port, "FFFFFFFFFFFFFFFF"))   # both match: a collision
            r = await eng.poll_now(wild)
            assert not eng.polls[-1].ok and np.isnan(r["value"]).all()
    run(main())


@pytest.mark.parametrize("kind", ["silence", "bad_checksum", "truncate", "disconnect", "garbage"])
def test_faults_give_non_ok_nan_readings_and_the_next_poll_succeeds(kind):
    sim = MbusSim(addresses=(1,), seed=3)

    async def main():
        async with SimServer(sim, Faults(**{kind: 1.0})) as srv, \
                Engine(drivers={"mbus": MbusDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(srv.port, 1, waiting_time=150, interval_time=30))
            r = await eng.poll_now(mid)
            assert len(r) >= 1 and np.isnan(r["value"]).all() and (r["status"] != Quality.OK).all()
            assert (r["obis"] == POLL_STATUS_OBIS).all()
            if kind in ("silence", "truncate", "disconnect"):
                assert (r["status"] == Quality.TIMEOUT).all()
            assert not eng.polls[-1].ok
            setattr(srv.faults, kind, 0.0)   # the connection's session holds this object
            r = await eng.poll_now(mid)
            check_against_model(r, sim, 1)
            assert eng.polls[-1].ok
    run(main())


def test_bad_checksum_on_the_data_telegram_is_a_checksum_reading():
    """E5 intact, the RSP_UD corrupted: the telegram reaches the decoder, which flags CHECKSUM."""

    class OnlyData(MbusSim):
        def corrupt_checksum(self, frame):
            return frame if frame == codec.ACK else super().corrupt_checksum(frame)

    sim = OnlyData(addresses=(1,), seed=3, telegrams=1)

    async def main():
        async with SimServer(sim, Faults(bad_checksum=1.0)) as srv, \
                Engine(drivers={"mbus": MbusDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(srv.port, 1))
            r = await eng.poll_now(mid)
            assert len(r) == 1 and r["status"][0] == Quality.CHECKSUM and np.isnan(r["value"][0])
            assert eng.polls[-1].quality == Quality.CHECKSUM
    run(main())


def test_serial_through_a_pty():
    sim = MbusSim(addresses=(9,), seed=5)

    async def main():
        async with SimSerial(sim) as line, Engine(drivers={"mbus": MbusDriver()}, schedule=False) as eng:
            mid = eng.add_meter(MeterConfig(name="s", protocol="mbus", link="serial", connection_address="9",
                                            serial=SerialSettings(port=line.path, baudrate=2400, parity="E"),
                                            waiting_time=500, interval_time=50, pause_time=0))
            r = await eng.poll_now(mid)
            check_against_model(r, sim, 9)
    run(main())


def test_pymeterbus_parses_our_telegrams():
    meterbus = pytest.importorskip("meterbus")
    sim = MbusSim(addresses=(1,), seed=8)
    t = 1.8e9
    frame = meterbus.load(sim.telegram(1, 0, t))
    v = heat_values(sim.models[1], t)
    recs = frame.body.bodyPayload.records
    assert float(recs[0].parsed_value) == pytest.approx(round(v["energy"]))
    assert float(recs[2].parsed_value) == pytest.approx(round(v["power"]))
    frame2 = meterbus.load(sim.telegram(1, 1, t))
    assert float(frame2.body.bodyPayload.records[0].parsed_value) == pytest.approx(v["flow_temperature"], abs=0.006)
