"""Checksum kernels against the fastest Python peers, on identical inputs.

Cases (sizes scale with $METERPOLL_BENCH_SCALE):
  per_call_<crc>   1,000,000 distinct 32-byte frames, one call per frame (the peers' only way)
  batch_<crc>      the same frames as one FrameBatch: ours in one nogil call, peers per frame
  bulk_<crc>       one 64 MiB buffer
  bulk_sum8/xor8   M-Bus sum and IEC BCC over 16 MiB, against numpy reductions
Peers: fastcrc (Rust), anycrc (C, carry-less multiply), crcmod (C extension), a pure-Python
table.  The pure-Python table is left out of the bulk case (it would take ~25 s per round).
"""
from __future__ import annotations

import crcmod.predefined
import fastcrc
import numpy as np
import pytest
from anycrc import Model

import meterpoll
from benchutil import scaled

N_FRAMES = scaled(1_000_000, 1000)
FRAME = 32
BULK = scaled(64 << 20, 1 << 16)
BULK8 = scaled(16 << 20, 1 << 16)


def _py_table(poly_reflected):
    table = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ poly_reflected if c & 1 else c >> 1
        table.append(c)
    return table


_T_MODBUS = _py_table(0xA001)
_T_X25 = _py_table(0x8408)


def py_modbus(data, t=_T_MODBUS):
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc


def py_x25(data, t=_T_X25):
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


import crcmod._crcfunext  # noqa: E402,F401  (fails if crcmod runs without its C extension)

IMPLS = {
    "modbus": {
        "ours": (meterpoll.crc16_modbus, meterpoll.crc16_modbus_many),
        "fastcrc": (fastcrc.crc16.modbus, None),
        "anycrc": (Model("CRC16-MODBUS").calc, None),
        "crcmod": (crcmod.predefined.mkCrcFun("modbus"), None),
        "purepython": (py_modbus, None),
    },
    "x25": {
        "ours": (meterpoll.crc16_x25, meterpoll.crc16_x25_many),
        "fastcrc": (fastcrc.crc16.ibm_sdlc, None),
        "anycrc": (Model("CRC16-IBM-SDLC").calc, None),
        "crcmod": (crcmod.predefined.mkCrcFun("x-25"), None),
        "purepython": (py_x25, None),
    },
}


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(12345)
    arr = rng.integers(0, 256, (N_FRAMES, FRAME), dtype=np.uint8)
    return arr, [row.tobytes() for row in arr]


@pytest.fixture(scope="module")
def bulk():
    return np.random.default_rng(6789).integers(0, 256, BULK, dtype=np.uint8).tobytes()


def _run_calls(benchmark, fn, items, rounds=5):
    out = benchmark.pedantic(lambda: [fn(f) for f in items], rounds=rounds, iterations=1, warmup_rounds=1)
    benchmark.extra_info["ns_per_frame"] = benchmark.stats.stats.median / len(items) * 1e9 if benchmark.stats else None
    return out


def _per_call(crc, impl):
    def bench(benchmark, frames):
        fn = IMPLS[crc][impl][0]
        out = _run_calls(benchmark, fn, frames[1], rounds=3 if impl == "purepython" else 5)
        assert out[:100] == [IMPLS[crc]["fastcrc"][0](f) for f in frames[1][:100]]
    return bench


def _batch(crc, impl):
    def bench(benchmark, frames):
        arr, items = frames
        if impl == "ours":
            batch = meterpoll.FrameBatch.from_buffer(arr.reshape(-1), np.arange(0, arr.size + 1, FRAME))
            many = IMPLS[crc]["ours"][1]
            out = benchmark.pedantic(many, args=(batch,), rounds=20, iterations=1, warmup_rounds=2)
            benchmark.extra_info["M_frames_per_s"] = len(items) / benchmark.stats.stats.median / 1e6
            assert out[:100].tolist() == [IMPLS[crc]["fastcrc"][0](f) for f in items[:100]]
        else:
            _run_calls(benchmark, IMPLS[crc][impl][0], items, rounds=3 if impl == "purepython" else 5)
    return bench


def _bulk(crc, impl):
    def bench(benchmark, bulk):
        fn = IMPLS[crc][impl][0]
        out = benchmark.pedantic(fn, args=(bulk,), rounds=10, iterations=1, warmup_rounds=1)
        benchmark.extra_info["GB_per_s"] = len(bulk) / benchmark.stats.stats.median / 1e9
        assert out == IMPLS[crc]["fastcrc"][0](bulk)
    return bench


for _crc in IMPLS:
    for _impl in IMPLS[_crc]:
        globals()["test_per_call_%s__%s" % (_crc, _impl)] = _per_call(_crc, _impl)
        globals()["test_batch_%s__%s" % (_crc, _impl)] = _batch(_crc, _impl)
        if _impl != "purepython":
            globals()["test_bulk_%s__%s" % (_crc, _impl)] = _bulk(_crc, _impl)


@pytest.fixture(scope="module")
def bulk8():
    return np.random.default_rng(11).integers(0, 256, BULK8, dtype=np.uint8)


def test_bulk_sum8__ours(benchmark, bulk8):
    out = benchmark(meterpoll.mbus_checksum, bulk8)
    assert out == int(bulk8.sum(dtype=np.uint64)) & 0xFF


def test_bulk_sum8__numpy(benchmark, bulk8):
    benchmark(lambda a: int(a.sum(dtype=np.uint64)) & 0xFF, bulk8)


def test_bulk_xor8__ours(benchmark, bulk8):
    out = benchmark(meterpoll.bcc, bulk8)
    assert out == int(np.bitwise_xor.reduce(bulk8))


def test_bulk_xor8__numpy(benchmark, bulk8):
    benchmark(lambda a: int(np.bitwise_xor.reduce(a)), bulk8)
