"""DLMS driver + simulated DLMS meters end to end on real sockets (wrapper and HDLC), the pty
serial path, faults, the LLS password, and a gurux_dlms client reading our simulator."""
import asyncio
import math
import socket
import time

import numpy as np
import pytest
import uvloop

from meterpoll.bindings import dlms as D
from meterpoll.bindings import dlms_apdu as A
from meterpoll.bindings.readings import Quality, obis, obis_str
from meterpoll.engine.config import MeterConfig, SerialSettings
from meterpoll.engine.drivers import driver as make_driver, simulator as make_sim
from meterpoll.engine.drivers.dlms import JOURNAL_CODE_BASE, STANDARD_EVENT_LOG, DlmsDriver, ENERGY_OBIS, INSTANT_OBIS
from meterpoll.engine.engine import Engine
from meterpoll.engine.sim.dlms import (EVENT_CODE_OBIS, EVENT_LOG_OBIS, PROFILE_OBIS, PROFILE_PERIOD, REGISTERS,
                                      DlmsSim)
from meterpoll.engine.sim.server import Faults, SimServer, SimSerial

READS = ("energy", "instant", "clock")


def run(coro):
    return uvloop.run(coro)


def cfg(port, addr="1", *, reads=READS, **kw):
    base = dict(name="m%s" % addr, protocol="dlms", ip_address="127.0.0.1", port=port,
                connection_address=addr, reads=reads, waiting_time=300, interval_time=100, pause_time=0)
    base.update(kw)
    return MeterConfig(**base)


def check_registers(r, model, t0, t1):
    """Every register reading equals the model's value at some instant of the poll, within the
    register's resolution (10**scaler)."""
    by = {obis_str(int(x["obis"])): x for x in r}
    for code in ENERGY_OBIS + INSTANT_OBIS:
        get, scaler, unit, _t = REGISTERS[code]
        x = by[code]
        assert x["status"] == Quality.OK and x["unit"] == unit, code
        res = 10.0 ** scaler
        lo, hi = sorted((get(model, t0), get(model, t1)))
        assert lo - res <= x["value"] <= hi + res, (code, x["value"], lo, hi)
    assert not np.isnan(r["value"]).any()


def test_registry_names_the_driver_and_simulator():
    assert isinstance(make_driver("dlms"), DlmsDriver)
    assert isinstance(make_sim("dlms", addresses=[1, 2]), DlmsSim)
    with pytest.raises(ValueError, match="framing"):
        DlmsDriver(framing="udp")


@pytest.mark.parametrize("framing,addrs", [("wrapper", ("1", "2", "3")), ("hdlc", ("1/17", "1/18", "1/19"))])
def test_meters_behind_one_gateway_read_like_the_model(framing, addrs):
    async def main():
        sim = DlmsSim(addresses=[int(a.split("/")[-1]) for a in addrs], seed=5)
        drv = DlmsDriver(framing=framing)
        async with SimServer(sim) as s, Engine(drivers={"dlms": drv}, schedule=False) as eng:
            ids = [eng.add_meter(cfg(s.port, a)) for a in addrs]
            assert len(eng.links) == 1
            for a, mid in zip(addrs, ids):
                t0 = time.time()
                r = await eng.poll_now(mid)
                t1 = time.time()
                assert eng.polls[-1].ok, eng.polls[-1]
                assert len(r) == len(ENERGY_OBIS) + len(INSTANT_OBIS) and (r["meter"] == mid).all()
                check_registers(r, sim.models[int(a.split("/")[-1])], t0, t1)
            # scaler_unit is read once per meter: the second poll only GETs attribute 2
            n = s.stats["requests"]
            r = await eng.poll_now(ids[0])
            per_poll = s.stats["requests"] - n
            extra = 2 if framing == "hdlc" else 0  # SNRM, DISC
            assert per_poll == 1 + len(ENERGY_OBIS) + len(INSTANT_OBIS) + 1 + 1 + extra  # AARQ GETs clock RLRQ
            assert s.stats["connections"] == 1
            got = [e for e in sim.log if e[0] == int(addrs[0].split("/")[-1])]
            if framing == "hdlc":
                assert got[0] == (int(addrs[0].split("/")[-1]), "SNRM") and got[-1][1] == "DISC"
            assert ("RLRQ" in [e[1] for e in got])
    run(main())


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
def test_profile_by_range_with_block_transfer_and_segments(framing):
    async def main():
        sim = DlmsSim(addresses=(7,), seed=1, max_pdu=256, max_info=64)
        drv = DlmsDriver(framing=framing)
        async with SimServer(sim) as s, Engine(drivers={"dlms": drv}, schedule=False) as eng:
            mid = eng.add_meter(cfg(s.port, "7" if framing == "wrapper" else "1/7", reads=("profile",),
                                    data_polling_length=1))
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok, eng.polls[-1]
            m = sim.models[7]
            newest = math.floor(time.time() / PROFILE_PERIOD) * PROFILE_PERIOD
            a = r[r["obis"] == obis("1.0.1.29.0.255")]
            q = r[r["obis"] == obis("1.0.3.29.0.255")]
            assert len(a) == len(q) == 96
            ts = a["ts"].astype("datetime64[ms]").astype(np.int64) / 1000.0
            assert ts[-1] == newest and (np.diff(ts) == PROFILE_PERIOD).all()
            want = [round(m.active_energy(t) - m.active_energy(t - PROFILE_PERIOD)) for t in ts]
            assert a["value"].tolist() == want and (a["unit"] == 30).all() and (q["unit"] == 32).all()
            assert (r["status"] == Quality.OK).all()
            # the answer needed several datablocks (and HDLC segments)
            kinds = [e[1] for e in sim.log]
            assert kinds.count("NEXT") >= 5
            if framing == "hdlc":  # long answers in segments; the range GET itself is segmented
                assert kinds.count("RR") >= 10 and kinds.count("segment in") >= 1
            # the next poll asks only for what closed since (nothing new now)
            r2 = await eng.poll_now(mid)
            assert len(r2) == 0 and eng.polls[-1].ok
    run(main())


def test_clock_drift_becomes_an_event_and_is_set_by_the_management_client():
    async def main():
        from meterpoll.engine.link import Link
        from meterpoll.engine.transport import Deadlines, TcpTransport

        sim = DlmsSim(addresses=(1,), password="pw")
        sim.models[1].clock_drift_ppm = 100.0  # ~3 years since the origin: about 2.7 h fast
        async with SimServer(sim) as s:
            link = Link(TcpTransport("127.0.0.1", s.port))

            async def poll(drv, **kw):
                async with link.lease(1) as lease:
                    return await drv.poll(lease, cfg(s.port, reads=("clock",), **kw), Deadlines(0.5, 0.1))

            res = await poll(DlmsDriver())
            assert res.frames == [] and len(res.events) == 1 and "clock drift +" in res.events[0].text
            res = await poll(DlmsDriver(), set_clock=True)  # the public client may not write
            assert [e.code for e in res.events] == [1, 4] and "data-access-result 3" in res.events[1].text
            res = await poll(DlmsDriver(client_sap=1), set_clock=True, password="pw")
            assert [e.code for e in res.events] == [1, 3] and res.events[1].text == "clock set"
            res = await poll(DlmsDriver(client_sap=1), password="pw")
            assert res.events == []  # within time_difference now
            await link.close()
    run(main())


def test_lls_password_for_the_management_client():
    async def main():
        sim = DlmsSim(addresses=(1,), password="secret12")
        async with SimServer(sim) as s:
            for pw, ok in (("secret12", True), ("wrong", False), ("", False)):
                async with Engine(drivers={"dlms": DlmsDriver(client_sap=1)}, schedule=False) as eng:
                    mid = eng.add_meter(cfg(s.port, password=pw, reads=("energy",)))
                    r = await eng.poll_now(mid)
                    out = eng.polls[-1]
                    if ok:
                        assert out.ok and (r["status"] == 0).all() and len(r) == len(ENERGY_OBIS)
                    else:
                        assert not out.ok and out.quality == Quality.PROTOCOL_EXCEPTION
                        assert ("authentication-failure" if pw else "authentication-required") in out.error
                        assert "association rejected" in out.error
                        assert np.isnan(r["value"]).all() and (r["status"] == Quality.PROTOCOL_EXCEPTION).all()
            assert ("AARQ rejected: wrong password") in [e[1] for e in sim.log]
    run(main())


@pytest.mark.parametrize("framing,fault,quality", [
    ("wrapper", "silence", Quality.TIMEOUT), ("wrapper", "truncate", Quality.TIMEOUT),
    ("wrapper", "disconnect", Quality.TIMEOUT), ("wrapper", "bad_checksum", Quality.PROTOCOL_EXCEPTION),
    ("hdlc", "bad_checksum", Quality.CHECKSUM), ("hdlc", "truncate", Quality.TIMEOUT),
])
def test_faults_give_non_ok_readings_and_the_next_poll_succeeds(framing, fault, quality):
    async def main():
        sim = DlmsSim(addresses=(3,))
        async with SimServer(sim, Faults(**{fault: 1.0})) as s, \
                Engine(drivers={"dlms": DlmsDriver(framing=framing)}, schedule=False) as eng:
            mid = eng.add_meter(cfg(s.port, "3" if framing == "wrapper" else "1/3", reads=("energy",)))
            r = await eng.poll_now(mid)
            assert not eng.polls[-1].ok and eng.polls[-1].quality == quality, eng.polls[-1]
            assert len(r) and np.isnan(r["value"]).all() and (r["status"] == quality).all()
            assert not (r["value"] == 0).any()
            setattr(s.faults, fault, 0.0)  # the live connection shares this Faults object
            t0 = time.time()
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok, eng.polls[-1]
            check_energy = {obis_str(int(x["obis"])): x["value"] for x in r}
            assert abs(check_energy["1.0.1.8.0.255"] - sim.models[3].active_energy(t0)) < 5
    run(main())


def test_checksum_error_mid_session_reports_checksum_quality():
    """An FCS error on a data answer: that item goes to the decoder (CHECKSUM), no value."""
    async def main():
        sim = DlmsSim(addresses=(3,))
        async with SimServer(sim) as s, Engine(drivers={"dlms": DlmsDriver(framing="hdlc")}, schedule=False) as eng:
            mid = eng.add_meter(cfg(s.port, "1/3", reads=("energy",)))
            assert (await eng.poll_now(mid))["status"].tolist() == [0] * len(ENERGY_OBIS)
            calls = {"n": 0}
            orig = sim.answer

            def answer(req, now):  # corrupt the third GET answer (after SNRM, AARQ)
                calls["n"] += 1
                a = orig(req, now)
                return sim.corrupt_checksum(a) if calls["n"] == 5 else a
            sim.answer = answer
            r = await eng.poll_now(mid)
            out = eng.polls[-1]
            assert not out.ok and out.quality == Quality.CHECKSUM and out.frame_status[-1] == 1
            good = r[r["status"] == 0]
            lost = r[r["status"] != 0]
            assert len(good) == 2  # the two answers before the bad frame are good
            # the channels the bad frame carried come back as NaN with CHECKSUM quality, never zeros
            assert len(lost) == 4 and np.isnan(lost["value"]).all() and (lost["status"] == Quality.CHECKSUM).all()
            sim.answer = orig
            assert eng.polls[-1].frames == 3 and (await eng.poll_now(mid))["status"].tolist() == [0] * 6
    run(main())


def test_unknown_objects_get_data_access_results():
    sim = DlmsSim(addresses=(1,))
    st = sim._assoc.setdefault((16, 1, "w"), __import__("meterpoll.engine.sim.dlms", fromlist=["_Assoc"])._Assoc())
    aare = A.parse_wrapper(sim.answer(A.wrapper_frame(A.aarq(), 16, 1), time.time()))[3]
    assert A.parse_aare(aare).accepted and st.associated
    for req, code in ((A.get_request(3, "1.0.99.99.0.255", 2), 4), (A.get_request(7, "1.0.1.8.0.255", 2), 9),
                      (A.get_request(3, "1.0.1.8.0.255", 9), 13)):
        ans = sim.answer(A.wrapper_frame(req, 16, 1), time.time())
        with pytest.raises(Exception) as e:
            D.decode(ans, request=req)
        assert getattr(e.value, "code", None) == code
    assert sim.answer(A.wrapper_frame(A.get_request(3, "1.0.1.8.0.255", 2), 16, 2), time.time()) is None  # other meter


def test_an_object_the_meter_lacks_is_left_out_after_its_scaler_unit_read_fails():
    class NoT4(DlmsSim):
        def _value(self, m, class_id, ln, attr, selector, params, now):
            if ln == A.logical_name("1.0.1.8.4.255"):
                return A.DataAccessResult.OBJECT_UNDEFINED
            return super()._value(m, class_id, ln, attr, selector, params, now)

    async def main():
        sim = NoT4(addresses=(1,))
        async with SimServer(sim) as s, Engine(drivers={"dlms": DlmsDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(s.port, reads=("energy",)))
            for _ in range(2):
                r = await eng.poll_now(mid)
                assert eng.polls[-1].ok and len(r) == len(ENERGY_OBIS) - 1
                assert obis("1.0.1.8.4.255") not in r["obis"].tolist() and (r["status"] == 0).all()
            gets = [e for e in sim.log if e[1] == "GET" and e[3] == A.logical_name("1.0.1.8.4.255")]
            assert len(gets) == 1  # attribute 3 once, never attribute 2
    run(main())


def test_serial_line_through_a_pty():
    async def main():
        sim = DlmsSim(addresses=(17,))
        async with SimSerial(sim) as ser, Engine(drivers={"dlms": DlmsDriver(framing="hdlc")}, schedule=False) as eng:
            mid = eng.add_meter(MeterConfig(name="s", protocol="dlms", link="serial", serial=SerialSettings(port=ser.path),
                                            connection_address="1/17", reads=("energy",), waiting_time=500,
                                            interval_time=100, pause_time=0))
            t0 = time.time()
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok, eng.polls[-1]
            e = {obis_str(int(x["obis"])): x["value"] for x in r}
            assert abs(e["1.0.1.8.0.255"] - sim.models[17].active_energy(t0)) < 5
    run(main())


# ---- peer cross-check: a gurux_dlms client reads our simulator -----------------------------------

class _Gurux:
    """A gurux_dlms GXDLMSClient whose own frames (SNRM, AARQ, GET, GET-next / RR, RLRQ, DISC)
    go over a blocking socket to the simulator."""

    def __init__(self, port, interface, server_address, client_address=16, password=None):
        from gurux_dlms import GXDLMSClient
        from gurux_dlms.enums import Authentication, InterfaceType

        self.hdlc = interface == "hdlc"
        itf = InterfaceType.HDLC if self.hdlc else InterfaceType.WRAPPER
        auth = Authentication.LOW if password else Authentication.NONE
        self.c = GXDLMSClient(True, client_address, server_address, auth, password, itf)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)

    def _one(self, msg, reply):
        from gurux_dlms import GXByteBuffer, GXReplyData

        self.sock.sendall(bytes(msg))
        buf, notify = GXByteBuffer(), GXReplyData()
        while not self.c.getData(buf, reply, notify):
            chunk = self.sock.recv(4096)
            assert chunk, "simulator closed the connection"
            buf.set(chunk)

    def exchange(self, data):
        from gurux_dlms import GXReplyData

        reply = GXReplyData()
        for msg in data if isinstance(data, list) else [data]:
            self._one(msg, reply)
        while reply.isMoreData():  # datablocks / HDLC segments: gurux builds GET-next or RR
            self._one(self.c.receiverReady(reply), reply)
        return reply

    def open(self):
        try:
            if self.hdlc:
                self.c.parseUAResponse(self.exchange(self.c.snrmRequest()).data)
            for msg in self.c.aarqRequest():
                r = self.exchange(msg)
            self.c.parseAareResponse(r.data)
        except Exception:
            self.sock.close()
            raise

    def read(self, obj, attr):
        r = self.exchange(self.c.read(obj, attr))
        self.c.updateValue(obj, attr, r.value)

    def close(self):
        try:
            self.exchange(self.c.releaseRequest())
            if self.hdlc:
                self.exchange(self.c.disconnectRequest())
        finally:
            self.sock.close()


def _gurux_registers(port, interface, server_address, client_address=16, password=None):
    from gurux_dlms.objects import GXDLMSClock, GXDLMSRegister

    g = _Gurux(port, interface, server_address, client_address, password)
    g.open()
    try:
        values = {}
        for code in ("1.0.1.8.0.255", "1.0.32.7.0.255", "1.0.31.7.0.255", "1.0.14.7.0.255"):
            reg = GXDLMSRegister(code)
            g.read(reg, 3)
            g.read(reg, 2)
            values[code] = (reg.value, reg.scaler, int(reg.unit))
        clk = GXDLMSClock()
        g.read(clk, 2)
        values["clock"] = clk.time.value
    finally:
        g.close()
    return values


def _gurux_profile(port, start, end):
    from gurux_dlms.objects import GXDLMSProfileGeneric

    g = _Gurux(port, "wrapper", 1)
    g.open()
    try:
        pg = GXDLMSProfileGeneric(PROFILE_OBIS)
        g.read(pg, 3)
        r = g.exchange(g.c.readRowsByRange(pg, start, end))
        g.c.updateValue(pg, 2, r.value)
        return [(row[0].value.timestamp(), row[1], row[2]) for row in pg.buffer]
    finally:
        g.close()


@pytest.mark.parametrize("interface,client,password", [("wrapper", 16, None), ("hdlc", 16, None), ("hdlc", 1, "pw123456")])
def test_gurux_client_reads_our_simulator(interface, client, password):
    pytest.importorskip("gurux_dlms")

    async def main():
        sim = DlmsSim(addresses=(1, 17), seed=9, password="pw123456")
        async with SimServer(sim) as s:
            loop = asyncio.get_running_loop()
            if interface == "wrapper":
                server, mid = 1, 1
            else:
                from gurux_dlms import GXDLMSClient
                server, mid = GXDLMSClient.getServerAddress(1, 17), 17
            t0 = time.time()
            v = await loop.run_in_executor(None, _gurux_registers, s.port, interface, server, client, password)
            t1 = time.time()
            m = sim.models[mid]
            for code, val in v.items():
                if code == "clock":
                    continue
                value, scaler, unit = val
                get, sc, un, _t = REGISTERS[code]
                assert unit == un and scaler == 10.0 ** sc, code
                lo, hi = sorted((get(m, t0), get(m, t1)))
                assert lo - 10.0 ** sc <= float(value) <= hi + 10.0 ** sc, (code, value, lo, hi)
            assert abs(v["clock"].timestamp() - t0) < 5
            if password:  # and a wrong password is refused
                from gurux_dlms import GXDLMSException

                with pytest.raises(GXDLMSException, match="(?i)authentication failure"):
                    await loop.run_in_executor(None, _gurux_registers, s.port, interface, server, client, "nope")
    run(main())


def test_gurux_reads_the_profile_by_range_through_datablocks():
    pytest.importorskip("gurux_dlms")
    import datetime as dt

    async def main():
        sim = DlmsSim(addresses=(1,), seed=3, max_pdu=128)
        async with SimServer(sim) as s:
            end = dt.datetime.fromtimestamp(time.time() // 900 * 900, dt.timezone.utc)
            start = end - dt.timedelta(hours=6)
            rows = await asyncio.get_running_loop().run_in_executor(None, _gurux_profile, s.port, start, end)
            m = sim.models[1]
            tan = math.tan(math.acos(m.power_factor))
            assert len(rows) == 25 and rows[0][0] == start.timestamp() and rows[-1][0] == end.timestamp()
            for t, a, r in rows:
                e = m.active_energy(t) - m.active_energy(t - 900)
                assert (a, r) == (round(e), round(e * tan))
            assert [e[1] for e in sim.log].count("NEXT") >= 3
    run(main())


# ---- event journals ---------------------------------------------------------------------------


class RangeLog(DlmsSim):
    """Records the (from, to) of every range selection on the event log."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.ranges = []

    def _event_buffer(self, entries, selector, params):
        if selector == 1:
            p = D.decode_data(params)
            self.ranges.append((D.datetime_to_utc_ms(p[1]) / 1000.0, D.datetime_to_utc_ms(p[2]) / 1000.0))
        return super()._event_buffer(entries, selector, params)


def journal(events):
    return [(int(t), code - JOURNAL_CODE_BASE) for _m, t, code, _text in events if code >= JOURNAL_CODE_BASE]


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
def test_the_standard_event_log_is_read_by_range_into_events(framing):
    async def main():
        sim = RangeLog(addresses=(7,), seed=1, max_pdu=128)   # the log comes in datablocks
        async with SimServer(sim) as s, Engine(drivers={"dlms": DlmsDriver(framing=framing)}, schedule=False) as eng:
            mid = eng.add_meter(cfg(s.port, "7" if framing == "wrapper" else "1/7", reads=("events",),
                                    data_polling_length=100))
            t0 = time.time()
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok and len(r) == 0     # events, not readings
            start, stop = sim.ranges[0]
            assert abs(start - (t0 - 100 * 86400)) <= 1 and stop >= t0 + 86399   # depth back, a day ahead
            want = [(int(t), code) for t, code in sim.event_entries(7, t0) if int(t) >= start]
            assert len(want) >= 4 and journal(eng.events) == want
            texts = {code: text for _m, _t, code, text in eng.events}
            assert texts[JOURNAL_CODE_BASE + 1] == "event log 0.0.99.98.0.255: power down (event 1)"
            assert "power up" in texts[JOURNAL_CODE_BASE + 2]
            # the next poll asks from the newest entry read, and repeats nothing
            await eng.poll_now(mid)
            assert sim.ranges[1][0] == want[-1][0] and journal(eng.events) == want
            gets = [e for e in sim.log if e[1] == "GET" and e[3] == A.logical_name(EVENT_LOG_OBIS)]
            assert [g[4] for g in gets] == [3, 2, 2]     # capture objects once
            assert [e[1] for e in sim.log].count("NEXT") >= 1
    run(main())


def test_a_clock_set_shows_up_in_the_event_log_with_the_old_and_new_time():
    async def main():
        sim = DlmsSim(addresses=(1,), seed=2, password="pw")
        sim.models[1].clock_drift_ppm = 100.0    # about 2.7 h fast
        drv = DlmsDriver(client_sap=1)
        async with SimServer(sim) as s, Engine(drivers={"dlms": drv}, schedule=False) as eng:
            mid = eng.add_meter(cfg(s.port, reads=("clock", "events"), password="pw", set_clock=True,
                                    data_polling_length=0))
            await eng.poll_now(mid)
            (old, c4), (new, c5) = sim.clock_events[1]
            assert old - new > 3600 and (c4, c5) == (4, 5)
            # drift, set, then the log's entries in time order: the new time is hours before the old
            assert [e[2] for e in eng.events] == [1, 3, JOURNAL_CODE_BASE + 5, JOURNAL_CODE_BASE + 4]
            assert journal(eng.events) == [(int(new), 5), (int(old), 4)]
            assert "clock adjusted (old time)" in eng.events[3][3] and "(new time)" in eng.events[2][3]
            await eng.poll_now(mid)
            assert len(eng.events) == 4          # in time now, and no entry twice
    run(main())


def test_an_event_log_the_meter_lacks_is_reported_once_and_the_poll_is_ok():
    async def main():
        sim = DlmsSim(addresses=(1,), seed=2)
        drv = DlmsDriver(event_logs=("0.0.99.98.5.255", STANDARD_EVENT_LOG))
        async with SimServer(sim) as s, Engine(drivers={"dlms": drv}, schedule=False) as eng:
            mid = eng.add_meter(cfg(s.port, reads=("energy", "events"), data_polling_length=400))
            for _ in range(2):
                r = await eng.poll_now(mid)
                assert eng.polls[-1].ok and len(r) == len(ENERGY_OBIS)
            missing = [e for e in eng.events if e[2] == 6]
            assert len(missing) == 1 and "0.0.99.98.5.255 not read: data-access-result 4" in missing[0][3]
            assert len(journal(eng.events)) == len(sim.event_entries(1, time.time()))
    with pytest.raises(ValueError):
        DlmsDriver(event_logs=("not an obis",))
    run(main())


def test_a_poll_that_fails_part_way_does_not_move_the_catch_up_points():
    async def main():
        sim = DlmsSim(addresses=(7,), seed=1)
        silent = {"clock": True}
        orig_answer = sim.answer

        def answer(req, now):   # no answer to the clock GET: the poll times out after the profile
            if silent["clock"] and b"\x00\x08" + A.logical_name("0.0.1.0.0.255") + b"\x02\x00" in req:
                return None
            return orig_answer(req, now)

        sim.answer = answer
        async with SimServer(sim) as s, Engine(drivers={"dlms": DlmsDriver()}, schedule=False) as eng:
            mid = eng.add_meter(cfg(s.port, "7", reads=("profile", "clock", "events"), data_polling_length=100))
            r = await eng.poll_now(mid)
            assert not eng.polls[-1].ok and eng.polls[-1].quality == Quality.TIMEOUT
            assert not journal(eng.events)
            assert ("GET", 7, A.logical_name("1.0.99.1.0.255"), 2) in [e[1:] for e in sim.log]   # profile was read
            silent["clock"] = False
            r = await eng.poll_now(mid)
            assert eng.polls[-1].ok
            a = r[r["obis"] == obis("1.0.1.29.0.255")]
            newest = math.floor(time.time() / PROFILE_PERIOD) * PROFILE_PERIOD
            first = int(a["ts"][0].astype("datetime64[s]").astype(np.int64))
            assert len(a) == 8 * 96 and first in (newest - 100 * 86400 + PROFILE_PERIOD, newest - 100 * 86400)
            # (the same rows again, from the start of the depth; newest may have moved by one)
            assert len(journal(eng.events)) >= 4
    run(main())


def _gurux_event_log(port, start, end):
    from gurux_dlms.objects import GXDLMSProfileGeneric

    g = _Gurux(port, "wrapper", 1)
    g.open()
    try:
        pg = GXDLMSProfileGeneric(EVENT_LOG_OBIS)
        g.read(pg, 3)
        columns = [(type(obj).__name__, obj.logicalName) for obj, _co in pg.captureObjects]
        g.read(pg, 7)
        r = g.exchange(g.c.readRowsByRange(pg, start, end))
        g.c.updateValue(pg, 2, r.value)
        return columns, pg.entriesInUse, [(row[0].value.timestamp(), row[1]) for row in pg.buffer]
    finally:
        g.close()


def test_gurux_reads_the_event_log_by_range():
    pytest.importorskip("gurux_dlms")
    import datetime as dt

    async def main():
        sim = DlmsSim(addresses=(1,), seed=5, max_pdu=128)
        now = time.time()
        async with SimServer(sim) as s:
            start = dt.datetime.fromtimestamp(math.floor(now - 200 * 86400), dt.timezone.utc)
            end = dt.datetime.fromtimestamp(math.floor(now), dt.timezone.utc)
            columns, in_use, rows = await asyncio.get_running_loop().run_in_executor(
                None, _gurux_event_log, s.port, start, end)
        assert columns == [("GXDLMSClock", "0.0.1.0.0.255"), ("GXDLMSData", EVENT_CODE_OBIS)]
        entries = sim.event_entries(1, now)
        assert in_use == len(entries)
        want = [(float(int(t)), code) for t, code in entries if start.timestamp() <= int(t) <= end.timestamp()]
        assert len(want) >= 4 and rows == want
    run(main())


def test_event_log_over_a_serial_line():
    async def main():
        sim = DlmsSim(addresses=(17,), seed=4, max_info=64)
        async with SimSerial(sim) as ser, Engine(drivers={"dlms": DlmsDriver(framing="hdlc")}, schedule=False) as eng:
            mid = eng.add_meter(MeterConfig(name="s", protocol="dlms", link="serial", serial=SerialSettings(port=ser.path),
                                            connection_address="1/17", reads=("events",), data_polling_length=400,
                                            waiting_time=500, interval_time=100, pause_time=0))
            await eng.poll_now(mid)
            assert eng.polls[-1].ok, eng.polls[-1]
            assert journal(eng.events) == [(int(t), c) for t, c in sim.event_entries(17, time.time())]
            assert "RR" in [e[1] for e in sim.log]   # the log came in HDLC segments
    run(main())
