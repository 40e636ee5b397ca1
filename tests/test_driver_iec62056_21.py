"""IEC 62056-21 mode C end to end: engine + IecDriver + IecSim on real sockets (TCP on loopback,
a pty for the serial path).  Readout values must equal the MeterModel at the time the simulator
built the readout (within 1 Wh / 0.01 V / 0.001 A / 0.01 Hz / 1 s)."""
import asyncio
import calendar
import datetime as dt
import math
import re
import time

import numpy as np
import pytest
import uvloop

from meterpoll.bindings import iec62056_21 as iec
from meterpoll.bindings.errors import ChecksumError
from meterpoll.bindings.readings import Quality, Unit, obis
from meterpoll.engine.config import MeterConfig, SerialSettings
from meterpoll.engine.drivers import driver as make_driver, simulator as make_sim
from meterpoll.engine.drivers.iec62056_21 import (JOURNAL_CODE_BASE, PROFILE_OBIS, READOUT_OBIS, IecDriver, complete,
                                                  parse_logbook)
from meterpoll.engine.engine import Engine
from meterpoll.engine.link import Link
from meterpoll.engine.sim.iec62056_21 import IecSim, logbook_lines, profile_lines, request_length
from meterpoll.engine.sim.server import Faults, SimSerial, SimServer
from meterpoll.engine.store import open_store
from meterpoll.engine.transport import Deadlines, TcpTransport
from vectors import load_vectors


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


# ---------------------------------------------------------------- programming mode: P.01 and P.98

P01 = [obis("1.0.%d.5.0.255" % c) for c in (1, 2, 3)]


def pcfg(port, addr="1", **kw):
    kw.setdefault("reads", ("energy", "profile", "events"))
    kw.setdefault("password", "00000000")
    return cfg(port, addr, **kw)


def ts_of(r):
    return r["ts"].astype("datetime64[s]").astype(np.int64)


def check_p01(r, model, ends, period=900):
    """Average P+ / P- / Q+ of each interval = its energy * 3600 / period (W, var), at the
    interval's end time, within the 1 W resolution of the 3-decimal kW values."""
    by = {o: r[r["obis"] == o] for o in P01}
    for o in P01:
        assert ts_of(by[o]).tolist() == ends, (hex(o), ts_of(by[o])[:3], ends[:3])
        assert (by[o]["status"] == Quality.OK).all()
    for i, t in enumerate(ends):
        active, reactive = model.interval_energy(t, period)
        for o, v, unit in ((P01[0], active * 3600 / period, Unit.WATT), (P01[1], 0.0, Unit.WATT),
                           (P01[2], reactive * 3600 / period, Unit.VAR)):
            x = by[o][i]
            assert abs(float(x["value"]) - v) <= 0.5 + 1e-6 and int(x["unit"]) == unit, (t, hex(o), x, v)


def model_events(model, start, end):
    return sorted((math.floor(model.clock(t)), code) for t, code, _ in model.events(start - 3600, end + 3600)
                  if start <= model.clock(t) <= end and code in (1, 2))


def sim_with_outages(days, **kw):
    """A simulator whose meter had at least two power cuts in the last ``days`` days."""
    now = time.time()
    for seed in range(200):
        sim = IecSim(addresses=("1",), seed=seed, **kw)
        if len(model_events(sim.model("1"), now - days * 86400, now)) >= 4:
            return sim
    raise AssertionError("no seed with outages")


def test_logbook_and_profile_requests_and_answers_match_the_vectors():
    vec = {bytes.fromhex(v["hex"]): v for v in load_vectors("iec62056_21")}
    req = iec.load_profile_request(dt.datetime(2018, 8, 13, 0, 1), dt.datetime(2018, 8, 19, 16, 0), profile=98)
    assert req in vec                                              # the Metcom R5 P.98 request
    answer = next(b for b in vec if b.startswith(b"\x02P.98("))
    entries, bad = parse_logbook(answer)
    assert bad == 0 and entries == [(calendar.timegm((2018, 8, 13, 15, 23, 10)), 1, "00"),
                                    (calendar.timegm((2018, 8, 13, 16, 12, 5)), 2, "00")]
    assert parse_logbook(answer, utc_offset_min=60)[0][0][0] == entries[0][0] - 3600
    # our simulator's lines have the vector's shape
    model = IecSim(addresses=("1",), seed=1).model("1")
    line = logbook_lines(model, time.time() - 400 * 86400, time.time())[0]
    assert re.fullmatch(r"P\.98\(0\d{12}\)\(00\)\(\)\(2\)\(91\.11\.0\)\(\)\(91\.11\.10\)\(\)\([12]\)\(0\)", line)
    end = math.floor(time.time() / 900) * 900
    lines = profile_lines(model, end - 3600, end)
    assert re.fullmatch(r"P\.01\(0\d{12}\)\(00000000\)\(15\)\(3\)\(1\.5\)\(kW\)\(2\.5\)\(kW\)\(3\.5\)\(kvar\)", lines[0])
    r = iec.decode(iec.data_block(lines, end=False))
    check_p01(r, model, [end - 3600 + 900 * k for k in range(5)])   # [from, to] inclusive
    assert not parse_logbook(b"\x02P.98(0180813152310)(00)()(2)(91.11.0)()\r\n\x03\x00")[0]   # values missing


@pytest.mark.parametrize("block_lines", [0, 7])
def test_profile_and_logbook_are_caught_up_in_programming_mode(block_lines):
    async def main():
        sim = sim_with_outages(30, block_lines=block_lines)
        model = sim.model("1")
        drv = IecDriver()
        async with SimServer(sim) as srv, Engine(drivers={"iec62056-21": drv}, schedule=False) as eng:
            mid = eng.add_meter(pcfg(srv.port, data_polling_length=30))
            newest = math.floor(time.time() / 900) * 900
            rows = []
            for _ in range(4):        # 2880 intervals: 768 per poll
                r = await eng.poll_now(mid)
                assert eng.polls[-1].ok, eng.polls[-1].error
                assert (r["status"] == Quality.OK).all() and len(r[np.isin(r["obis"], READOUT_OBIS)]) == len(READOUT_OBIS)
                rows.append(r[np.isin(r["obis"], P01)])
            r = np.concatenate(rows)
            if math.floor(time.time() / 900) * 900 != newest:
                return await main()   # an interval closed during the test: redo
            ends = [newest - 900 * k for k in range(30 * 96 - 1, -1, -1)]
            check_p01(r, model, ends)
            # the windows asked for follow each other, 96 intervals each, one minute after the last
            windows = [(a, b) for m, p, a, b in sim.profile_requests if p == 1]
            assert windows[0] == (newest - 30 * 86400 + 60, newest - 30 * 86400 + 96 * 900)
            assert all(b2 == a2 - 60 + 96 * 900 and a2 == b1 + 60 for (a1, b1), (a2, b2) in zip(windows, windows[1:]))
            # the logbook entries became events, once each, with the meter's event numbers
            got = sorted((int(t), code - JOURNAL_CODE_BASE) for _m, t, code, _text in eng.events)
            since = next(a for _m, p, a, b in sim.profile_requests if p == 98)   # a minute boundary
            window = model_events(model, since, time.time())
            assert len(got) == len(set(got)) and set(got) <= set(window)
            assert {e for e in window if e[0] >= since + 60} <= set(got) and since <= time.time() - 30 * 86400
            assert all(("power down" if c == JOURNAL_CODE_BASE + 1 else "power up") in text
                       for _m, _t, c, text in eng.events)
            # two sessions per poll: the readout, then programming mode
            assert sim.option_selects[:2] == [b"\x06050\r\n", b"\x06051\r\n"]
            assert drv.profile_obis(eng.meters[mid].cfg) == PROFILE_OBIS
            assert drv.expected_obis(eng.meters[mid].cfg) == READOUT_OBIS
            assert drv.expected_obis(pcfg(srv.port, reads=("profile",))) == []
    run(main())


def test_logbook_resumes_after_the_newest_entry_read():
    class More(IecSim):
        extra: list = []

        def _profile(self, m, payload, now):
            block = super()._profile(m, payload, now)
            if payload.startswith("P.98") and self.extra:
                f = iec.parse_frame(block)
                lines = [x for x in bytes(f.payload).decode().split("\r\n") if x] + self.extra
                block = iec.data_block(lines, end=False)
            return block

    async def main():
        sim = More(addresses=("1",), seed=3)
        async with SimServer(sim) as srv, Engine(drivers={"iec62056-21": IecDriver()}, schedule=False) as eng:
            mid = eng.add_meter(pcfg(srv.port, reads=("events",), data_polling_length=60))
            await eng.poll_now(mid)
            first = list(eng.events)
            assert eng.polls[-1].ok and len(eng.drivers["iec62056-21"].expected_obis(eng.meters[mid].cfg)) == 0
            # two new entries: a clock set (old / new time) in the same second, after the newest read
            t = time.gmtime(int(time.time()) - 5)
            stamp = time.strftime("%y%m%d%H%M%S", t)
            sim.extra = ["P.98(0%s)(00)()(2)(91.11.0)()(91.11.10)()(%d)(0)" % (stamp, c) for c in (4, 5)]
            await eng.poll_now(mid)
            new = eng.events[len(first):]
            assert [(c - JOURNAL_CODE_BASE, "clock set" in text) for _m, _t, c, text in new] == [(4, True), (5, True)]
            await eng.poll_now(mid)
            assert len(eng.events) == len(first) + 2        # nothing repeated
            # each R5 P.98 starts at the newest entry read (minute resolution): overlap, no gap
            froms = [a for _m, p, a, b in sim.profile_requests if p == 98]
            assert froms[-1] == calendar.timegm(t) - t.tm_sec and all(b is None for *_x, b in sim.profile_requests)
    run(main())


def test_peer_library_builds_the_same_r5_and_reads_our_partial_block_answer():
    """pwitab/iec62056-21 builds the same R5 P.01 command and its TCP transport reads our
    simulator's partial-block answer (ACK per block, BCC of each checked) into the data the
    model says."""
    messages = pytest.importorskip("iec62056_21.messages")
    transports = pytest.importorskip("iec62056_21.transports")
    end = math.floor(time.time() / 900) * 900
    start = dt.datetime.fromtimestamp(end - 6 * 3600 + 60, dt.timezone.utc).replace(tzinfo=None)
    stop = dt.datetime.fromtimestamp(end, dt.timezone.utc).replace(tzinfo=None)
    ours = iec.load_profile_request(start, stop)
    peer_cmd = messages.CommandMessage("R", 5, messages.DataSet(
        "P.01", "0%s;0%s" % (start.strftime("%y%m%d%H%M"), stop.strftime("%y%m%d%H%M")))).to_bytes()
    assert peer_cmd == ours

    def peer_session(port):
        t = transports.TcpTransport(("127.0.0.1", port), timeout=3)
        t.connect()
        try:
            t.send(iec.sign_on("1"))
            t.simple_read(start_char="/", end_char="\x0a")
            t.send(iec.option_select(mode="programming", baud_char="5"))
            t.read()                                   # P0 prompt
            t.send(iec.password("00000000"))
            assert t.recv(1) == b"\x06"
            t.send(peer_cmd)
            data = t.read()                            # partial blocks, joined by the peer
            t.send(iec.break_session())
            return data
        finally:
            t.disconnect()

    async def main():
        sim = IecSim(addresses=("1",), seed=6, block_lines=5)
        async with SimServer(sim) as srv:
            data = await asyncio.get_running_loop().run_in_executor(None, peer_session, srv.port)
        msg = messages.AnswerDataMessage.from_bytes(data)
        values = [ds.value for line in msg.data_block.data_lines for ds in line.data_sets]
        first_end = time.strftime("0%y%m%d%H%M%S", time.gmtime(end - 6 * 3600 + 900))
        assert values[:2] == [first_end, "00000000"]   # header: the end of the first interval
        rows = [ln for ln in msg.data_block.data_lines if ln.data_sets and ln.data_sets[0].address is None]
        assert len(rows) == 24 and all(len(ln.data_sets) == 3 for ln in rows)
        model = sim.model("1")
        for k, ln in enumerate(rows):
            active, reactive = model.interval_energy(end - 6 * 3600 + 900 * (k + 1), 900)
            assert abs(float(ln.data_sets[0].value) * 1000 - active * 4) <= 0.5 + 1e-6
            assert abs(float(ln.data_sets[2].value) * 1000 - reactive * 4) <= 0.5 + 1e-6
        assert len(sim.profile_requests) == 1
    run(main())


def test_a_damaged_partial_block_is_reported_and_read_again():
    async def main():
        sim = IecSim(addresses=("1",), seed=4, block_lines=10)
        orig = sim.answer
        state = {"acks": 0, "corrupt": True}

        def answer(request, now):
            ans = orig(request, now)
            if request == b"\x06":
                state["acks"] += 1
                if state["corrupt"] and state["acks"] == 2:
                    ans = sim.corrupt_checksum(ans)
            return ans

        sim.answer = answer
        async with SimServer(sim) as srv, Engine(drivers={"iec62056-21": IecDriver()}, schedule=False) as eng:
            mid = eng.add_meter(pcfg(srv.port, reads=("profile",), data_polling_length=1))
            r = await eng.poll_now(mid)
            out = eng.polls[-1]
            assert not out.ok and out.quality == Quality.CHECKSUM and out.frame_status == [1]
            assert len(r) == 0 or not (r["status"] == Quality.OK).any()
            state["corrupt"] = False
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok and len(r[r["obis"] == P01[0]]) == 96   # nothing was skipped
    run(main())


def test_wrong_password_fails_the_programming_session():
    async def main():
        sim = IecSim(addresses=("1",), password="12345678")
        async with SimServer(sim) as srv, Engine(drivers={"iec62056-21": IecDriver()}, schedule=False) as eng:
            mid = eng.add_meter(pcfg(srv.port, password="87654321"))
            r = await eng.poll_now(mid)
            out = eng.polls[-1]
            assert not out.ok and out.quality == Quality.PROTOCOL_EXCEPTION and "P1 password refused" in out.error
            assert len(r) == len(READOUT_OBIS) and np.isnan(r["value"]).all()
            assert sim._active is None or sim._active.state == "idle"   # B0 was sent
    run(main())


def test_profile_resumes_from_the_store_after_a_restart(tmp_path):
    async def main():
        sim = IecSim(addresses=("1",), seed=9)
        store = await open_store("sqlite:///" + str(tmp_path / "i.db"))
        try:
            async with SimServer(sim) as srv:
                conf = pcfg(srv.port, reads=("profile",), data_polling_length=1)
                for _ in range(2):   # two engines: the second knows only the store
                    async with Engine(store=store, drivers={"iec62056-21": IecDriver()}, schedule=False) as eng:
                        eng.add_meter(conf, meter_id=1)
                        await eng.poll_now(1)
                        assert eng.polls[-1].ok
                stored = ts_of(await store.read_readings(1, PROFILE_OBIS))
                assert len(stored) == len(set(stored.tolist())) >= 96 and (np.diff(stored) == 900).all()
                windows = [(a, b) for _m, p, a, b in sim.profile_requests]
                assert windows[-1][0] > windows[0][0] + 86000 or len(windows) == 1   # no re-read of the day
        finally:
            await store.close()
    run(main())


def test_profile_and_logbook_over_a_serial_line():
    async def main():
        sim = IecSim(addresses=("1",), seed=5, block_lines=20)
        async with SimSerial(sim) as ser, Engine(drivers={"iec62056-21": IecDriver()}, schedule=False) as eng:
            mid = eng.add_meter(MeterConfig(name="ser", protocol="iec62056-21", link="serial",
                                            serial=SerialSettings(port=ser.path, baudrate=19200, bytesize=7, parity="E"),
                                            connection_address="1", password="00000000", data_polling_length=1,
                                            reads=("profile", "events"), waiting_time=500, interval_time=50,
                                            pause_time=0))
            newest = math.floor(time.time() / 900) * 900
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok, eng.polls[-1].error
            if math.floor(time.time() / 900) * 900 == newest:
                check_p01(r, sim.model("1"), [newest - 900 * k for k in range(95, -1, -1)])
            assert sim.option_selects == [b"\x06061\r\n"]   # programming mode only, at the port's 19200 Bd
            got = set((int(t), code - JOURNAL_CODE_BASE) for _m, t, code, _text in eng.events)
            since = sim.profile_requests[-1][2]        # the P.98 window's start (a minute boundary)
            window = model_events(sim.model("1"), since, time.time())
            assert got <= set(window) and {e for e in window if e[0] >= since + 60} <= got
    run(main())
