"""Modbus RTU/TCP codec: vectors, encoders, register maps, round trips, pymodbus cross-checks,
native-vs-reference differential tests and the no-object-per-value promise."""
from __future__ import annotations

import math
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterpoll import FrameBatch, FrameStatus, ProtocolExceptionError, Quality, Unit, obis
from meterpoll.bindings import modbus as mb
from meterpoll.bindings.readings import READING_DTYPE
from meterpoll.ext import _modbus
from reference import modbus_ref as ref
from vectors import load_vectors

from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu import register_message as pm_reg
from pymodbus.pdu.bit_message import WriteSingleCoilRequest
from pymodbus.pdu.diag_message import ReturnQueryDataRequest

VECTORS = load_vectors("modbus")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tcp(v):
    return v["framing"] == "modbus-tcp"


def _int(x):
    return int(x, 16) if isinstance(x, str) else int(x)


def _d(v, *names):
    for n in names:
        if n in v["decoded"]:
            return v["decoded"][n]
    return None


# ---------------------------------------------------------------------------- layouts

def test_native_layouts_match_the_dtypes():
    lay = _modbus.c_layouts()
    for key, dt in (("entry", _modbus.MAP_DTYPE), ("request", _modbus.REQUEST_DTYPE)):
        size, offs = lay[key]
        assert size == dt.itemsize
        assert offs == {name: dt.fields[name][1] for name in dt.names}


# ---------------------------------------------------------------------------- vectors

REQ_VECTORS = [v for v in VECTORS if v["direction"] == "request"]
RESP_VECTORS = [v for v in VECTORS if v["direction"] == "response"]


def test_vector_file_has_both_framings():
    assert len(VECTORS) >= 15
    assert {v["framing"] for v in VECTORS} == {"modbus-rtu", "modbus-tcp"}


def _encode_request(f, tcp):
    kw = {"tcp": tcp, "transaction": f.transaction or 0}
    if f.function in (3, 4):
        return mb.encode_read(f.unit, f.function, f.start, f.count, **kw)
    if f.function == 6:
        return mb.encode_write_single(f.unit, f.start, f.value, **kw)
    if f.function == 5:
        return mb.encode_write_coil(f.unit, f.start, f.value == 0xFF00, **kw)
    if f.function == 8:
        return mb.encode_diagnostic(f.unit, f.sub_function, f.data, **kw)
    if f.function == 16:
        return mb.encode_write_multiple(f.unit, f.start, list(f.registers), **kw)
    raise AssertionError(f.function)


@pytest.mark.parametrize("v", REQ_VECTORS, ids=lambda v: v["_id"])
def test_request_vectors_parse_and_reencode_byte_for_byte(v):
    raw = bytes.fromhex(v["hex"])
    f = mb.parse_frame(raw, direction="request", tcp=_tcp(v))
    d = v["decoded"]
    assert f.tcp == _tcp(v)
    if _d(v, "slave", "unit") is not None:
        assert f.unit == _d(v, "slave", "unit")
    assert f.function == _int(_d(v, "function", "fc"))
    if _d(v, "start") is not None:
        assert f.start == _d(v, "start")
    if _d(v, "count") is not None:
        assert f.count == _d(v, "count")
    if "coil" in d:
        assert f.start == d["coil"] and f.value == _int(d["value"])
    if "sub" in d:
        assert f.sub_function == d["sub"] and f.data == int(d["data"], 16)
    if "transaction_id" in d or "tid" in d:
        assert f.transaction == _d(v, "transaction_id", "tid")
        assert len(raw) - 6 == _d(v, "length", "len")
    if "float32_be" in d:
        assert struct.unpack(">f", struct.pack(">2H", *f.registers))[0] == pytest.approx(d["float32_be"], rel=1e-7)
    if "crc" in d:  # "0xCB71 sent low byte first"
        assert f.crc == int(d["crc"].split()[0], 16)
    assert _encode_request(f, _tcp(v)) == raw


def _float_map(function, start):
    return mb.RegisterMap([{"name": "x", "address": start, "function": function, "type": "float32",
                            "obis": "1.0.32.7.0.255", "unit": "V"}])


@pytest.mark.parametrize("v", RESP_VECTORS, ids=lambda v: v["_id"])
def test_response_vectors(v):
    raw = bytes.fromhex(v["hex"])
    d = v["decoded"]
    tcp = _tcp(v)
    f = mb.parse_frame(raw, tcp=tcp)
    unit = _d(v, "slave", "unit")
    if unit is not None:
        assert f.unit == unit
    if "transaction_id" in d:
        assert f.transaction == d["transaction_id"] and len(raw) - 6 == d["length"]
    if "exception" in d:
        fc = _int(_d(v, "function", "fc"))
        assert f.function == fc and f.exception_code == d["exception"]
        with pytest.raises(ProtocolExceptionError) as ei:
            mb.decode(raw, request=(f.unit, fc & 0x7F, 0, 1), tcp=tcp)
        assert ei.value.code == d["exception"]
        _, fs = mb.decode_batch([raw], requests=(f.unit, fc & 0x7F, 0, 1), tcp=tcp)
        assert fs["status"][0] == FrameStatus.PROTOCOL_EXCEPTION and fs["code"][0] == d["exception"]
        return
    if "byte_count" in d:
        assert f.byte_count == d["byte_count"]
    regs = [_int(r) for r in d["registers"]] if "registers" in d else None
    if "reg4" in d:
        regs = [d["reg4"]]
    if regs is not None:
        assert list(f.registers) == regs
        # the same registers as uint16 readings through the native decoder
        m = mb.RegisterMap([{"name": "r%d" % i, "address": 100 + i, "function": f.function,
                             "type": "uint16", "obis": (1, 0, 96, 0, i, 255), "unit": ""}
                            for i in range(len(regs))])
        out = mb.decode(raw, request=(f.unit, f.function, 100, len(regs)), map=m, tcp=tcp)
        assert out["value"].tolist() == regs
    if "float32_be" in d:
        expected = d["float32_be"]
        if d.get("unit") == "V" and f.function == 4:  # SDM630 Volts 1 through the built-in map
            out = mb.decode(raw, request=(f.unit, 4, 0, 2), map=mb.SDM630)
            assert len(out) == 1 and out["obis"][0] == obis("1.0.32.7.0.255") and out["unit"][0] == Unit.VOLT
        else:
            out = mb.decode(raw, request=(f.unit, f.function, 0, 2), map=_float_map(f.function, 0))
        assert out["value"][0] == pytest.approx(expected, rel=1e-7)
        assert out["status"][0] == Quality.OK
    if f.function == 16 and "start" in d:  # write acknowledgement: checked against the request vector
        assert (f.start, f.count) == (d["start"], d["count"])
        req = next(bytes.fromhex(r["hex"]) for r in REQ_VECTORS if mb.parse_frame(
            bytes.fromhex(r["hex"]), direction="request").function == 16)
        assert len(mb.decode(raw, request=req)) == 0
        _, fs = mb.decode_batch([raw], requests=req)
        assert fs["status"][0] == FrameStatus.NO_DATA
        with pytest.raises(mb.FrameError) as ei:
            mb.decode(raw, request=(1, 16, d["start"], d["count"] + 1))
        assert ei.value.status == FrameStatus.MISMATCH


def test_diagnostic_echo_vector():
    v = next(v for v in REQ_VECTORS if _d(v, "function", "fc") == 8)
    raw = bytes.fromhex(v["hex"])   # "reply is identical"
    assert len(mb.decode(raw, request=raw)) == 0
    _, fs = mb.decode_batch([raw], requests=raw)
    assert fs["status"][0] == FrameStatus.NO_DATA


def test_tcp_vector_pair_checks_transaction():
    req = next(bytes.fromhex(v["hex"]) for v in REQ_VECTORS if _tcp(v) and v["decoded"].get("transaction_id"))
    resp = next(bytes.fromhex(v["hex"]) for v in RESP_VECTORS if _tcp(v) and "registers" in v["decoded"])
    m = mb.RegisterMap([{"name": "a", "address": 0x7C, "function": 3, "type": "uint32", "obis": "1.0.1.8.0.255",
                         "unit": "Wh"}])
    out = mb.decode(resp, request=req, map=m, tcp=True)
    regs = mb.parse_frame(resp, tcp=True).registers
    assert out["value"].tolist() == [int(regs[0]) * 65536 + int(regs[1])]
    other = bytearray(req)
    other[1] ^= 1
    with pytest.raises(mb.FrameError) as ei:
        mb.decode(resp, request=bytes(other), map=m, tcp=True)
    assert ei.value.status == FrameStatus.MISMATCH
    # auto framing finds MBAP for the TCP vectors and RTU for the RTU ones
    for v in RESP_VECTORS:
        assert mb.parse_frame(bytes.fromhex(v["hex"]), tcp="auto").tcp == _tcp(v)


# ---------------------------------------------------------------------------- peer: pymodbus

RTU = FramerRTU(DecodePDU(False))
SOCK = FramerSocket(DecodePDU(False))
u16 = st.integers(0, 0xFFFF)
units = st.integers(1, 247)


@FAST
@given(units, st.sampled_from([3, 4]), st.integers(0, 0xFF00), st.integers(1, 125), u16, st.booleans())
def test_read_requests_match_pymodbus(unit, fn, start, count, tid, tcp):
    cls = pm_reg.ReadHoldingRegistersRequest if fn == 3 else pm_reg.ReadInputRegistersRequest
    pdu = cls(address=start, count=count, dev_id=unit, transaction_id=tid)
    peer = (SOCK if tcp else RTU).buildFrame(pdu)
    assert mb.encode_read(unit, fn, start, count, tcp=tcp, transaction=tid) == peer


@FAST
@given(units, u16, st.lists(u16, min_size=1, max_size=123), u16, st.booleans())
def test_write_requests_match_pymodbus(unit, addr, values, tid, tcp):
    fr = SOCK if tcp else RTU
    addr = min(addr, 0x10000 - len(values))
    assert mb.encode_write_multiple(unit, addr, values, tcp=tcp, transaction=tid) == fr.buildFrame(
        pm_reg.WriteMultipleRegistersRequest(address=addr, registers=values, dev_id=unit, transaction_id=tid))
    assert mb.encode_write_single(unit, addr, values[0], tcp=tcp, transaction=tid) == fr.buildFrame(
        pm_reg.WriteSingleRegisterRequest(address=addr, registers=[values[0]], dev_id=unit, transaction_id=tid))
    assert mb.encode_diagnostic(unit, 0, values[0], tcp=tcp, transaction=tid) == fr.buildFrame(
        ReturnQueryDataRequest(message=values[0], dev_id=unit, transaction_id=tid))
    assert mb.encode_write_coil(unit, addr, bool(values[0] & 1), tcp=tcp, transaction=tid) == fr.buildFrame(
        WriteSingleCoilRequest(address=addr, bits=[bool(values[0] & 1)], dev_id=unit, transaction_id=tid))


TYPE_PEER = {"int16": "INT16", "uint16": "UINT16", "int32": "INT32", "uint32": "UINT32",
             "float32": "FLOAT32", "int64": "INT64", "uint64": "UINT64", "float64": "FLOAT64"}


@FAST
@given(units, st.sampled_from([3, 4]), st.sampled_from(sorted(TYPE_PEER)), st.sampled_from(["big", "little"]),
       st.data(), u16, st.booleans())
def test_pymodbus_built_frames_decode_to_pymodbus_values(unit, fn, typ, order, data, tid, tcp):
    width = mb.TYPES[typ][1]
    nvals = data.draw(st.integers(1, 125 // width))
    regs = data.draw(st.lists(u16, min_size=nvals * width, max_size=nvals * width))
    start = data.draw(st.integers(0, 0x10000 - len(regs)))
    cls = pm_reg.ReadHoldingRegistersResponse if fn == 3 else pm_reg.ReadInputRegistersResponse
    fr = SOCK if tcp else RTU
    frame = fr.buildFrame(cls(registers=regs, dev_id=unit, transaction_id=tid))
    # the peer's decode, as its users call it
    _, pdu = fr.handleFrame(frame, unit, tid)
    dt = ModbusClientMixin.DATATYPE[TYPE_PEER[typ]]
    peer = ModbusClientMixin.convert_from_registers(pdu.registers, dt, word_order=order)
    peer = peer if isinstance(peer, list) else [peer]
    m = mb.RegisterMap([{"name": "v%d" % i, "address": start + i * width, "function": fn, "type": typ,
                         "word_order": order, "obis": (1, 0, 96, 1, i % 256, i // 256), "unit": 255}
                        for i in range(nvals)])
    ours = mb.decode(frame, request=(unit, fn, start, len(regs), tid if tcp else None), map=m, tcp=tcp)
    assert list(mb.parse_frame(frame, tcp=tcp).registers) == list(pdu.registers)
    assert len(ours) == len(peer)
    for got, want, q in zip(ours["value"].tolist(), peer, ours["status"].tolist()):
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(got) and q == Quality.METER_ERROR
        else:
            assert got == float(want)
            assert q == (Quality.METER_ERROR if math.isinf(got) else Quality.OK)


@FAST
@given(units, st.sampled_from([3, 4]), st.lists(u16, min_size=1, max_size=125), u16, st.booleans())
def test_frames_we_build_decode_in_pymodbus(unit, fn, regs, tid, tcp):
    frame = mb.encode_read_response(unit, fn, regs, tcp=tcp, transaction=tid)
    fr = SOCK if tcp else RTU
    used, pdu = fr.handleFrame(frame, unit, tid)
    assert used == len(frame) and pdu.function_code == fn and list(pdu.registers) == regs


@FAST
@given(units, st.sampled_from([3, 4, 6, 16]), st.integers(1, 11), st.booleans())
def test_exceptions_we_build_decode_in_pymodbus_and_back(unit, fn, code, tcp):
    frame = mb.encode_exception(unit, fn, code, tcp=tcp)
    fr = SOCK if tcp else RTU
    _, pdu = fr.handleFrame(frame, unit, 0)
    assert pdu.isError() and pdu.exception_code == code
    peer = fr.buildFrame(ExceptionResponse(fn, code, device_id=unit))
    with pytest.raises(ProtocolExceptionError) as ei:
        mb.decode(peer, request=(unit, fn, 0, 1), tcp=tcp)
    assert ei.value.code == code


# ---------------------------------------------------------------------------- round trips

@FAST
@given(units, st.sampled_from([3, 4]), st.integers(0, 0xFF00), st.integers(1, 125), u16, st.booleans())
def test_read_request_round_trip(unit, fn, start, count, tid, tcp):
    f = mb.parse_frame(mb.encode_read(unit, fn, start, count, tcp=tcp, transaction=tid), direction="request", tcp=tcp)
    assert (f.unit, f.function, f.start, f.count) == (unit, fn, start, count)
    assert f.transaction == (tid if tcp else None)


@FAST
@given(units, u16, st.lists(u16, min_size=1, max_size=123), st.booleans())
def test_write_round_trips(unit, addr, values, tcp):
    addr = min(addr, 0x10000 - len(values))
    f = mb.parse_frame(mb.encode_write_multiple(unit, addr, values, tcp=tcp), direction="request", tcp=tcp)
    assert (f.unit, f.function, f.start, f.count, list(f.registers)) == (unit, 16, addr, len(values), values)
    f = mb.parse_frame(mb.encode_write_single(unit, addr, values[0], tcp=tcp), direction="request", tcp=tcp)
    assert (f.function, f.start, f.value) == (6, addr, values[0])
    f = mb.parse_frame(mb.encode_diagnostic(unit, 0, values[0], tcp=tcp), direction="request", tcp=tcp)
    assert (f.function, f.sub_function, f.data) == (8, 0, values[0])
    # acknowledgements of those requests are accepted against them, rejected against others
    req16 = mb.encode_write_multiple(unit, addr, values, tcp=tcp)
    ack16 = mb.encode_write_ack(unit, 16, addr, len(values), tcp=tcp)
    assert len(mb.decode(ack16, request=req16, tcp=tcp)) == 0
    req6 = mb.encode_write_single(unit, addr, values[0], tcp=tcp)
    assert len(mb.decode(mb.encode_write_ack(unit, 6, addr, values[0], tcp=tcp), request=req6, tcp=tcp)) == 0
    with pytest.raises(mb.FrameError) as ei:
        mb.decode(mb.encode_write_ack(unit, 6, addr, values[0] ^ 1, tcp=tcp), request=req6, tcp=tcp)
    assert ei.value.status == FrameStatus.MISMATCH


@FAST
@given(units, st.sampled_from([3, 4]), st.lists(u16, min_size=1, max_size=125), st.integers(0, 0xFF00),
       st.booleans())
def test_read_response_round_trip(unit, fn, regs, start, tcp):
    frame = mb.encode_read_response(unit, fn, regs, tcp=tcp)
    assert list(mb.parse_frame(frame, tcp=tcp).registers) == regs
    m = mb.RegisterMap([{"name": "r%d" % i, "address": start + i, "function": fn, "type": "uint16",
                         "obis": (1, 0, 96, 0, i, 255), "unit": 255} for i in range(len(regs))])
    out = mb.decode(frame, request=(unit, fn, start, len(regs)), map=m, tcp=tcp)
    assert out["value"].tolist() == regs
    assert out["obis"].tolist() == m.obis.tolist()


# ---------------------------------------------------------------------------- register maps

def test_builtin_maps():
    assert mb.MAPS == {"sdm630": mb.SDM630, "sdm120": mb.SDM120}
    names = {e.name for e in mb.SDM630}
    for q in ("voltage_l1", "current_l3", "active_power_l2", "power_factor_l1", "phase_angle_l3", "frequency",
              "import_active_energy", "export_active_energy", "import_reactive_energy", "export_reactive_energy",
              "total_active_energy", "voltage_l1_l2", "current_neutral", "total_active_energy_l3"):
        assert q in names
    # the SDM630 facts of README 5.3
    assert mb.SDM630["total_active_energy"].address == 0x0156
    assert mb.SDM630["frequency"].address == 0x0046
    assert mb.SDM630["voltage_l1_l2"].address == 0x00C8
    assert mb.SDM630["total_active_energy_l1"].address == 0x0166
    for m in (mb.SDM630, mb.SDM120):
        assert len({e.obis for e in m}) == len(m)     # one OBIS per quantity
        for e in m:
            assert e.function == 4 and e.type == "float32" and e.address % 2 == 0
            assert e.scale == (1000.0 if e.unit in (Unit.WATT_HOUR, Unit.VAR_HOUR, Unit.VOLT_AMPERE_HOUR) else 1.0)
            assert obis_ok(e.obis)


def obis_ok(code):
    return 0 < code < (1 << 48) and (code >> 40) == 1 and (code & 0xFF) == 255


@pytest.mark.parametrize("m", [mb.SDM630, mb.SDM120], ids=["sdm630", "sdm120"])
@pytest.mark.parametrize("gap", [0, 4, 50])
def test_plan_covers_every_entry_within_limits(m, gap):
    plan = m.plan(max_gap=gap)
    for e in m:
        assert sum(1 for r in plan if r.function == e.function and r.start <= e.address
                   and e.address + e.width <= r.start + r.count) == 1
    for r in plan:
        assert 1 <= r.count <= m.max_registers and r.start % 2 == 0 and r.count % 2 == 0
    assert m.plan(max_gap=gap) == sorted(plan)
    if gap == 0 and m is mb.SDM630:
        # the README's (b) read 0x0000..0x0029, merged with the adjacent average voltage 0x002A
        assert mb.ReadRequest(4, 0, 0x2C) in plan


def test_plan_merges_adjacent_and_respects_limit():
    m = mb.RegisterMap([{"name": "a%d" % i, "address": 2 * i, "type": "float32", "obis": (1, 0, 96, 0, i, 255),
                         "unit": "V"} for i in range(100)])
    assert m.plan() == [mb.ReadRequest(4, 0, 124), mb.ReadRequest(4, 124, 76)]
    assert m.plan(max_registers=10)[0] == mb.ReadRequest(4, 0, 10)


SDM120_TOML = """
name = "Eastron SDM120"
max_registers = 80
[defaults]
function = 4
type = "float32"
"""


def test_toml_map_equals_builtin(tmp_path):
    text = SDM120_TOML
    for e in mb.SDM120.entries:
        text += ('\n[[register]]\nname = "%s"\naddress = 0x%04X\nobis = "%s"\nunit = %d\nscale = %r\n'
                 % (e.name, e.address, ".".join(str((e.obis >> s) & 255) for s in (40, 32, 24, 16, 8, 0)),
                    e.unit, e.scale))
    m = mb.RegisterMap.from_toml(text)
    assert m.native.tobytes() == mb.SDM120.native.tobytes() and m.entries == mb.SDM120.entries
    p = tmp_path / "sdm120.toml"
    p.write_text(text)
    assert mb.RegisterMap.from_toml(p).entries == m.entries
    assert mb.RegisterMap.from_toml(str(p)).entries == m.entries


@pytest.mark.parametrize("entry,field", [
    ('name = "v"\naddress = 70000\ntype = "float32"\nobis = "1.0.32.7.0.255"\nunit = "V"', "address"),
    ('name = "v"\naddress = 1\ntype = "flaot32"\nobis = "1.0.32.7.0.255"\nunit = "V"', "type"),
    ('name = "v"\naddress = 1\ntype = "int16"\nword_order = "middle"\nobis = "1.0.32.7.0.255"\nunit = "V"',
     "word_order"),
    ('name = "v"\naddress = 1\ntype = "int16"\nobis = "1.0.32.7"\nunit = "V"', "obis"),
    ('name = "v"\naddress = 1\ntype = "int16"\nobis = "1.0.32.7.0.255"\nunit = "parsec"', "unit"),
    ('name = "v"\naddress = 1\ntype = "int16"\nobis = "1.0.32.7.0.255"\nunit = "V"\nfunction = 6', "function"),
    ('name = "v"\naddress = 1\ntype = "int16"\nobis = "1.0.32.7.0.255"\nunit = "V"\nscale = "x"', "scale"),
    ('name = "v"\naddress = 1\ntype = "int16"\nobis = "1.0.32.7.0.255"\nunit = "V"\nsclae = 2', "sclae"),
    ('name = "v"\naddress = 1\ntype = "int16"\nunit = "V"', "obis"),
    ('name = "v"\naddress = 65535\ntype = "float32"\nobis = "1.0.32.7.0.255"\nunit = "V"', "address"),
])
def test_toml_validation_names_entry_and_field(entry, field):
    good = 'name = "ok"\naddress = 0\ntype = "int16"\nobis = "1.0.31.7.0.255"\nunit = "A"'
    text = "[[register]]\n%s\n\n[[register]]\n%s\n" % (good, entry)
    with pytest.raises(mb.RegisterMapError) as ei:
        mb.RegisterMap.from_toml(text)
    msg = str(ei.value)
    assert "register #1" in msg and "'v'" in msg and repr(field) in msg


def test_toml_duplicate_names_and_syntax():
    e = '[[register]]\nname = "v"\naddress = 0\ntype = "int16"\nobis = "1.0.31.7.0.255"\nunit = "A"\n'
    with pytest.raises(mb.RegisterMapError, match="duplicate"):
        mb.RegisterMap.from_toml(e + e)
    with pytest.raises(mb.RegisterMapError, match="TOML"):
        mb.RegisterMap.from_toml("[[register]\nname=")


# ---------------------------------------------------------------------------- differential

TYPES = sorted(mb.TYPES)


@st.composite
def maps(draw):
    n = draw(st.integers(0, 12))
    entries = []
    for i in range(n):
        typ = draw(st.sampled_from(TYPES))
        entries.append({"name": "e%d" % i, "address": draw(st.integers(0, 40)), "function": draw(st.sampled_from([3, 4])),
                        "type": typ, "word_order": draw(st.sampled_from(["big", "little"])),
                        "scale": draw(st.sampled_from([1.0, 1000.0, 0.1, -2.0])),
                        "obis": obis((1, 0, 96, 9, i, 255)), "unit": draw(st.sampled_from([27, 30, 35, 255]))})
    return entries


@st.composite
def exchanges(draw, entries=None):
    """(frame, req dict, mode) for valid, exception and mutated answers."""
    tcp = draw(st.booleans())
    unit = draw(st.integers(0, 255))
    fn = draw(st.sampled_from([3, 4, 3, 4, 6, 8, 16]))
    tid = draw(u16)
    if fn in (3, 4):
        start = draw(st.integers(0, 40))
        count = draw(st.integers(1, 30))
        kind = draw(st.sampled_from(["ok", "ok", "ok", "exc", "nan"]))
        if kind == "exc":
            frame = mb.encode_exception(unit, fn, draw(st.integers(0, 255)), tcp=tcp, transaction=tid)
        else:
            regs = draw(st.lists(u16, min_size=count, max_size=count))
            if kind == "nan":
                regs = [0x7FC0 if i % 2 == 0 else r for i, r in enumerate(regs)]
            frame = mb.encode_read_response(unit, fn, regs, tcp=tcp, transaction=tid)
    else:
        start, count = draw(u16), draw(u16)
        frame = mb.encode_write_ack(unit, fn, start, count, tcp=tcp, transaction=tid)
    req = {"transaction": draw(st.sampled_from([-1, tid, tid ^ 1])) if tcp else -1,
           "unit": draw(st.sampled_from([None, unit, unit ^ 1])),
           "function": draw(st.sampled_from([fn, fn, 3, 16])), "start": start, "count": count}
    if req["function"] in (3, 4):  # keep the request itself valid (the answer may be anything)
        req["count"] = min(max(req["count"], 1), 125)
        req["start"] = min(req["start"], 0x10000 - req["count"])
    # mutations
    b = bytearray(frame)
    mut = draw(st.sampled_from(["none", "none", "flip", "cut", "extend", "byte"]))
    if mut == "flip":
        i = draw(st.integers(0, len(b) - 1))
        b[i] ^= 1 << draw(st.integers(0, 7))
    elif mut == "cut":
        b = b[:draw(st.integers(0, len(b) - 1))]
    elif mut == "extend":
        b += bytes(draw(st.lists(st.integers(0, 255), min_size=1, max_size=4)))
    elif mut == "byte":
        i = draw(st.integers(0, len(b) - 1))
        b[i] = draw(st.integers(0, 255))
    mode = draw(st.sampled_from(["tcp" if tcp else "rtu", "auto"]))
    return bytes(b), req, mode


def _req_tuple(req):
    return (req["unit"], req["function"], req["start"], req["count"],
            None if req["transaction"] < 0 else req["transaction"])


def _req_array(reqs):
    return mb.make_requests([_req_tuple(r) for r in reqs])


MODES = {"rtu": False, "tcp": True, "auto": "auto"}


def _check_against_ref(frames, reqs, modes, entries, readings, fs):
    assert len(fs) == len(frames)
    for i, (frame, req, mode) in enumerate(zip(frames, reqs, modes)):
        status, code, offset, vals = ref.decode(frame, req, entries, mode)
        assert (fs["status"][i], fs["code"][i], fs["offset"][i]) == (status, code, offset), (frame.hex(), req, mode)
        got = readings[fs["first"][i]:fs["first"][i] + fs["count"][i]]
        assert len(got) == len(vals)
        for r, (o, v, u, q) in zip(got, vals):
            assert (int(r["obis"]), int(r["unit"]), int(r["status"]), int(r["meter"])) == (o, u, q, 1000 + i)
            assert (math.isnan(v) and math.isnan(r["value"])) or r["value"] == v


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maps(), st.lists(exchanges(), min_size=1, max_size=12), st.data())
def test_native_batch_matches_reference(entries, items, data):
    frames = [f for f, _, _ in items]
    reqs = [r for _, r, _ in items]
    modes = [m for _, _, m in items]
    m = mb.RegisterMap(entries)
    # any split into batches gives the same per-frame result
    cut = data.draw(st.integers(0, len(frames)))
    for lo, hi in ((0, cut), (cut, len(frames))):
        if lo == hi:
            continue
        for mode_name in set(modes[lo:hi]):
            idx = [i for i in range(lo, hi) if modes[i] == mode_name]
            readings, fs = mb.decode_batch([frames[i] for i in idx], requests=_req_array([reqs[i] for i in idx]),
                                           map=m, tcp=MODES[mode_name], meter_ids=[1000 + i for i in idx])
            sub_ref = [(frames[i], reqs[i], modes[i]) for i in idx]
            for j, (frame, req, mode) in enumerate(sub_ref):
                status, code, offset, vals = ref.decode(frame, req, entries, mode)
                assert (fs["status"][j], fs["code"][j], fs["offset"][j]) == (status, code, offset), \
                    (frame.hex(), req, mode)
                got = readings[fs["first"][j]:fs["first"][j] + fs["count"][j]]
                assert [(int(r["obis"]), int(r["unit"]), int(r["status"]), int(r["meter"])) for r in got] == \
                    [(o, u, q, 1000 + idx[j]) for o, _, u, q in vals]
                for r, (_, v, _, _) in zip(got, vals):
                    assert (math.isnan(v) and math.isnan(r["value"])) or r["value"] == v
    # per-frame tcp flags in one batch (auto frames excluded: they have no flag)
    idx = [i for i in range(len(frames)) if modes[i] != "auto"]
    if idx:
        readings, fs = mb.decode_batch([frames[i] for i in idx], requests=_req_array([reqs[i] for i in idx]), map=m,
                                       tcp=[modes[i] == "tcp" for i in idx], meter_ids=[1000 + j for j in range(len(idx))])
        _check_against_ref([frames[i] for i in idx], [reqs[i] for i in idx], [modes[i] for i in idx], entries,
                           readings, fs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maps(), exchanges())
def test_native_single_matches_reference(entries, item):
    frame, req, mode = item
    status, code, offset, vals = ref.decode(frame, req, entries, mode)
    m = mb.RegisterMap(entries)
    if status in (FrameStatus.OK, FrameStatus.NO_DATA):
        out = mb.decode(frame, request=_req_tuple(req), map=m, tcp=MODES[mode])
        assert [(int(r["obis"]), int(r["unit"]), int(r["status"])) for r in out] == [(o, u, q) for o, _, u, q in vals]
        for r, (_, v, _, _) in zip(out, vals):
            assert (math.isnan(v) and math.isnan(r["value"])) or r["value"] == v
    else:
        with pytest.raises(mb.FrameError) as ei:
            mb.decode(frame, request=_req_tuple(req), map=m, tcp=MODES[mode])
        assert ei.value.status == status and ei.value.offset == offset
        if status == FrameStatus.PROTOCOL_EXCEPTION:
            assert ei.value.code == code


# ---------------------------------------------------------------------------- batch API

def _sdm_frame(unit, values, tcp=False, tid=0):
    regs = list(struct.unpack(">%dH" % (2 * len(values)), struct.pack(">%df" % len(values), *values)))
    return mb.encode_read_response(unit, 4, regs, tcp=tcp, transaction=tid)


def test_batch_meter_ids_timestamps_and_bad_frames():
    good = _sdm_frame(1, [230.0, 231.0, 232.0])
    bad = bytearray(good)
    bad[5] ^= 0xFF
    exc = mb.encode_exception(1, 4, 2)
    ts = np.array(["2026-01-01T00:00:00", "2026-01-01T00:00:01", "2026-01-01T00:00:02", "2026-01-01T00:00:03"],
                  dtype="datetime64[ms]")
    readings, fs = mb.decode_batch([good, bytes(bad), exc, good], requests=(1, 4, 0, 6), map="sdm630",
                                   meter_ids=[7, 8, 9, 10], received_at=ts)
    assert fs["status"].tolist() == [FrameStatus.OK, FrameStatus.CHECKSUM, FrameStatus.PROTOCOL_EXCEPTION,
                                     FrameStatus.OK]
    assert fs["code"][2] == 2 and fs["count"].tolist() == [3, 0, 0, 3] and fs["first"].tolist() == [0, 3, 3, 3]
    assert readings["meter"].tolist() == [7, 7, 7, 10, 10, 10]
    assert readings["ts"].tolist() == [ts[0].tolist()] * 3 + [ts[3].tolist()] * 3
    assert readings["value"].tolist() == [230.0, 231.0, 232.0] * 2
    assert readings["obis"].tolist() == [obis("1.0.32.7.0.255"), obis("1.0.52.7.0.255"), obis("1.0.72.7.0.255")] * 2


def test_batch_requests_per_frame_and_scaling():
    energy = _sdm_frame(3, [12.5, 0.25])       # import/export kWh
    volts = _sdm_frame(4, [229.5])
    readings, fs = mb.decode_batch([energy, volts], requests=[(3, 4, 0x48, 4), (4, 4, 0, 2)], map=mb.SDM630)
    assert fs["status"].tolist() == [0, 0]
    assert readings["value"].tolist() == [12500.0, 250.0, 229.5]
    assert readings["unit"].tolist() == [Unit.WATT_HOUR, Unit.WATT_HOUR, Unit.VOLT]
    # the wrong unit / count / function
    readings, fs = mb.decode_batch([energy, energy, energy], requests=[(4, 4, 0x48, 4), (3, 4, 0x48, 6),
                                                                       (3, 3, 0x48, 4)], map=mb.SDM630)
    assert fs["status"].tolist() == [FrameStatus.BAD_ADDRESS, FrameStatus.MISMATCH, FrameStatus.MISMATCH]
    assert len(readings) == 0


def test_nan_register_is_a_meter_error_reading():
    frame = _sdm_frame(1, [float("nan"), 1.0, float("inf")])
    out = mb.decode(frame, request=(1, 4, 0, 6), map=mb.SDM630)
    assert len(out) == 3 and math.isnan(out["value"][0])
    assert out["status"].tolist() == [Quality.METER_ERROR, Quality.OK, Quality.METER_ERROR]


def test_tcp_batch_and_rtu_over_tcp():
    f_tcp = _sdm_frame(1, [1.0, 2.0], tcp=True, tid=5)
    f_rtu = _sdm_frame(1, [1.0, 2.0])
    for frames, tcp in (([f_tcp, f_tcp], True), ([f_rtu, f_rtu], False), ([f_tcp, f_rtu], "auto"),
                        ([f_tcp, f_rtu], [True, False])):
        readings, fs = mb.decode_batch(frames, requests=(1, 4, 0, 4), map=mb.SDM630, tcp=tcp)
        assert fs["status"].tolist() == [0, 0] and readings["value"].tolist() == [1.0, 2.0] * 2
    _, fs = mb.decode_batch([f_tcp], requests=(1, 4, 0, 4, 6), map=mb.SDM630, tcp=True)
    assert fs["status"].tolist() == [FrameStatus.MISMATCH]


def test_request_validation():
    with pytest.raises(ValueError):
        mb.decode(b"\x01\x04", request=None)
    with pytest.raises(ValueError):
        mb.encode_read(1, 4, 0, 126)
    with pytest.raises(ValueError):
        mb.request(1, 5, 0, 1)
    with pytest.raises(ValueError):
        mb.decode_batch([b"\x01"] * 2, requests=[(1, 4, 0, 2)] * 3)


def test_no_python_object_per_value():
    n = 20_000
    frame = _sdm_frame(1, [float(i) for i in range(20)])
    batch = FrameBatch.from_frames([frame] * n)
    mb.decode_batch(batch, requests=(1, 4, 0, 40), map=mb.SDM630)  # warm up
    tracemalloc.start()
    try:
        readings, fs = mb.decode_batch(batch, requests=(1, 4, 0, 40), map=mb.SDM630)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    values = n * 20
    assert len(readings) == values and (fs["status"] == 0).all()
    out_bytes = readings.nbytes + fs.nbytes
    # the readings buffer is malloc'ed natively; what Python traced stays far below 50 B per value
    assert peak < out_bytes + (1 << 20)
    assert peak < values * 50 / 4


def test_caller_owned_output_is_reused():
    frames = [_sdm_frame(1, [1.0, 2.0, 3.0]), mb.encode_exception(1, 4, 6), _sdm_frame(1, [4.0, 5.0, 6.0])]
    t0 = np.datetime64("2026-11-22T00:00:00", "ms")
    fresh, fs_fresh = mb.decode_batch(frames, requests=(1, 4, 0, 6), map=mb.SDM630, received_at=t0)
    need = mb.capacity_needed(frames, requests=(1, 4, 0, 6), map=mb.SDM630)
    assert need == 9 and need >= len(fresh)
    buf = np.zeros(need, dtype=READING_DTYPE)
    got, fs = mb.decode_batch(frames, requests=(1, 4, 0, 6), map=mb.SDM630, out=buf, received_at=t0)
    for name in READING_DTYPE.names:
        assert got[name].tolist() == fresh[name].tolist()
    assert fs.tobytes() == fs_fresh.tobytes()
    assert np.shares_memory(got, buf)
    per_frame = [(1, 4, 0, 6)] * 3
    assert mb.capacity_needed(frames, requests=per_frame, map=mb.SDM630) == need
    with pytest.raises(ValueError, match="may produce 9"):
        mb.decode_batch(frames, requests=(1, 4, 0, 6), map=mb.SDM630, out=buf[:8])
    with pytest.raises(TypeError):
        mb.decode_batch(frames, requests=(1, 4, 0, 6), map=mb.SDM630, out=np.zeros(9, dtype=np.float64))
    ro = np.zeros(need, dtype=READING_DTYPE)
    ro.flags.writeable = False
    with pytest.raises(TypeError):
        mb.decode_batch(frames, requests=(1, 4, 0, 6), map=mb.SDM630, out=ro)


def test_native_entry_points_refuse_wrong_arrays():
    batch = FrameBatch.from_frames([_sdm_frame(1, [1.0])])
    reqs = mb.make_requests([(1, 4, 0, 2)])
    ids = np.zeros(1, np.uint32)
    ts = np.zeros(1, np.int64)
    modes = np.zeros(1, np.uint8)
    with pytest.raises(TypeError):
        _modbus.decode_many(batch, np.zeros(1, np.uint8), 0, mb.SDM630.native, modes, 0, ids, ts, 0)
    with pytest.raises(TypeError):
        _modbus.decode_many(batch, reqs, 0, np.zeros(3, np.uint8), modes, 0, ids, ts, 0)
    unsorted = mb.SDM630.native[::-1].copy()
    with pytest.raises(ValueError, match="sorted"):
        _modbus.decode_many(batch, reqs, 0, unsorted, modes, 0, ids, ts, 0)
    with pytest.raises(ValueError):
        _modbus.decode_many(batch, reqs[:0], 1, mb.SDM630.native, modes, 0, ids, ts, 0)
    with pytest.raises(TypeError):
        _modbus.decode_one(b"\x01\x04", np.zeros(12, np.uint8), mb.SDM630.native, 0, 0, 0)


@pytest.mark.parametrize("tcp", [False, True], ids=["rtu", "tcp"])
def test_a_whole_poll_of_the_sdm630_map(tcp):
    """plan -> request frames -> simulated answers -> one batch: every map entry read once."""
    plan = mb.SDM630.plan(max_gap=0)
    frames, reqs = mb.encode_plan(7, plan, tcp=tcp, first_transaction=65530)
    answers = []
    expected = {}
    for k, (frame, r) in enumerate(zip(frames, plan)):
        f = mb.parse_frame(frame, direction="request", tcp=tcp)
        assert (f.unit, f.function, f.start, f.count) == (7, r.function, r.start, r.count)
        assert f.transaction == ((65530 + k) & 0xFFFF if tcp else None)
        values = [float(r.start + 2 * i) + 0.25 for i in range(r.count // 2)]
        regs = struct.unpack(">%dH" % r.count, struct.pack(">%df" % len(values), *values))
        answers.append(mb.encode_read_response(7, r.function, regs, tcp=tcp, transaction=f.transaction or 0))
        for e in mb.SDM630:
            if r.start <= e.address < r.start + r.count:
                expected[e.obis] = (e.address + 0.25) * e.scale
    readings, fs = mb.decode_batch(answers, requests=reqs, map=mb.SDM630, tcp=tcp)
    assert (fs["status"] == FrameStatus.OK).all()
    assert len(readings) == len(mb.SDM630) == len(expected)
    assert {int(o): v for o, v in zip(readings["obis"], readings["value"])} == expected
