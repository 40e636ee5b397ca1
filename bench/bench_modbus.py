"""Modbus batch decode against pymodbus 3.16 decoding the same frames as its users do.

Cases (sizes scale with $METERPOLL_BENCH_SCALE):
  rtu_sdm630_40regs   100,000 Modbus RTU answers to FC 04 @0x0000 count 40 (20 float32 values of
                      the SDM630 map: voltages, currents, powers, PF, angles L1/L2), slave ids
                      1..247 with one request record per frame.
                      ours: one decode_batch call (CRC, slave, function, byte count checked;
                      readings with OBIS, unit, scale, meter id, timestamp).
                      ours_out: the same into a reused caller-owned readings array (out=):
                      a fresh 80 MB output costs ~20k page faults per call on this VM.
                      pymodbus: per frame FramerRTU.handleFrame(frame, slave, 0) (CRC, slave
                      and PDU decode) + ModbusClientMixin.convert_from_registers(registers,
                      DATATYPE.FLOAT32) - the 3.16 client's own decode path - giving a list of
                      20 floats per frame (no OBIS, no scaling: less work than ours).
  tcp_sdm630_40regs   the same answers behind an MBAP header (FramerSocket on the peer side).
Every run checks both sides decode the same values.  Values/s are in extra_info and printed.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from benchutil import scaled
from meterpoll import FrameBatch
from meterpoll.bindings import modbus as mb
from meterpoll.bindings.readings import READING_DTYPE
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU

N_FRAMES = scaled(100_000, 200)
N_REGS = 40
N_VALUES = 20


def _make(tcp: bool):
    rng = np.random.default_rng(2026)
    vals = rng.uniform(-500, 500, (N_FRAMES, N_VALUES)).astype(np.float32)
    units = (np.arange(N_FRAMES) % 247 + 1).astype(np.int64)
    frames = []
    for i in range(N_FRAMES):
        regs = struct.unpack(">40H", vals[i].astype(">f4").tobytes())
        frames.append(mb.encode_read_response(int(units[i]), 4, regs, tcp=tcp, transaction=i & 0xFFFF))
    reqs = mb.make_requests([(int(units[i]), 4, 0, N_REGS, (i & 0xFFFF) if tcp else None)
                             for i in range(N_FRAMES)])
    return frames, FrameBatch.from_frames(frames), reqs, units, vals


def _report(benchmark, capsys, label):
    med = benchmark.stats.stats.median
    vps = N_FRAMES * N_VALUES / med
    benchmark.extra_info["values_per_s"] = vps
    benchmark.extra_info["frames_per_s"] = N_FRAMES / med
    with capsys.disabled():
        print("\n  %s: %.2f M values/s, %.2f M frames/s (median %.3f ms for %d frames)"
              % (label, vps / 1e6, N_FRAMES / med / 1e6, med * 1e3, N_FRAMES))


def _ours(tcp, benchmark, capsys, d):
    frames, batch, reqs, units, vals = d
    readings, fs = benchmark.pedantic(mb.decode_batch, args=(batch,),
                                      kwargs={"requests": reqs, "map": mb.SDM630, "tcp": tcp},
                                      rounds=20, iterations=1, warmup_rounds=2)
    assert (fs["status"] == 0).all() and len(readings) == N_FRAMES * N_VALUES
    assert np.array_equal(readings["value"].reshape(N_FRAMES, N_VALUES), vals.astype(np.float64))
    _report(benchmark, capsys, "ours (%s)" % ("tcp" if tcp else "rtu"))


def _ours_out(tcp, benchmark, capsys, d):
    """The engine's steady state: one caller-owned readings array reused poll after poll."""
    frames, batch, reqs, units, vals = d
    out = np.empty(mb.capacity_needed(batch, requests=reqs, map=mb.SDM630), dtype=READING_DTYPE)
    out["value"] = 0.0                       # touch the pages once, as a long-running engine has
    readings, fs = benchmark.pedantic(mb.decode_batch, args=(batch,),
                                      kwargs={"requests": reqs, "map": mb.SDM630, "tcp": tcp, "out": out},
                                      rounds=20, iterations=1, warmup_rounds=2)
    assert (fs["status"] == 0).all() and len(readings) == N_FRAMES * N_VALUES
    assert np.array_equal(readings["value"].reshape(N_FRAMES, N_VALUES), vals.astype(np.float64))
    _report(benchmark, capsys, "ours, reused out= (%s)" % ("tcp" if tcp else "rtu"))


def _peer(tcp, benchmark, capsys, d):
    frames, batch, reqs, units, vals = d
    framer = (FramerSocket if tcp else FramerRTU)(DecodePDU(is_server=False))
    convert = ModbusClientMixin.convert_from_registers
    f32 = ModbusClientMixin.DATATYPE.FLOAT32
    ulist = units.tolist()

    def run():
        out = []
        for i, frame in enumerate(frames):
            _, pdu = framer.handleFrame(frame, ulist[i], 0)
            out.append(convert(pdu.registers, f32))
        return out

    out = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    assert np.array_equal(np.array(out[:100]), vals[:100].astype(np.float64))
    _report(benchmark, capsys, "pymodbus (%s)" % ("tcp" if tcp else "rtu"))


@pytest.fixture(scope="module")
def rtu():
    return _make(False)


@pytest.fixture(scope="module")
def tcp():
    return _make(True)


def test_rtu_sdm630_40regs__ours(benchmark, capsys, rtu):
    _ours(False, benchmark, capsys, rtu)


def test_rtu_sdm630_40regs__ours_out(benchmark, capsys, rtu):
    _ours_out(False, benchmark, capsys, rtu)


def test_rtu_sdm630_40regs__pymodbus(benchmark, capsys, rtu):
    _peer(False, benchmark, capsys, rtu)


def test_tcp_sdm630_40regs__ours(benchmark, capsys, tcp):
    _ours(True, benchmark, capsys, tcp)


def test_tcp_sdm630_40regs__ours_out(benchmark, capsys, tcp):
    _ours_out(True, benchmark, capsys, tcp)


def test_tcp_sdm630_40regs__pymodbus(benchmark, capsys, tcp):
    _peer(True, benchmark, capsys, tcp)
