"""Mercury 230/234 batch decode against a straightforward pure-Python decoder.

There is no packaged Python peer for the Mercury protocol (the public Python Mercury pollers are
scripts, not installable libraries), so the peer here is written the way those scripts decode:
check the CRC, then ``int.from_bytes`` / ``struct`` per value, building one result per value.
Two variants: CRC with crcmod's C extension (``pyscript_crcmod``, the fastest such a script
gets) and CRC with a pure-Python table (``pyscript``, what most scripts carry).

Cases (sizes scale with $METERPOLL_BENCH_SCALE):
  mixed    100,000 answers, one request per frame: energy since reset for the total and
           tariffs 1-4 (A+, A-, R+, R- each) and auxiliary answers (U L1-L3 16h, I L1-L3 16h,
           P sum+L1-L3 14h, cos phi 14h, frequency 11h)
  energy   100,000 energy answers to one request (A+, A-, R+, R- of tariff 1)
Each ours-benchmark prints decoded values per second.
"""
from __future__ import annotations

import random
import struct

import crcmod
import numpy as np
import pytest

from benchutil import scaled
from meterpoll.bindings import mercury as m
from meterpoll.bindings.frames import FrameBatch

N = scaled(100_000, 500)
T0 = np.datetime64("2026-01-01T00:00:00", "ms")

_crc_c = crcmod.mkCrcFun(0x18005, rev=True, initCrc=0xFFFF, xorOut=0)


def _table():
    t = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _table()


def crc_py(data, t=_T):
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc


def _frame(addr, data):
    body = bytes([addr]) + data
    return body + _crc_c(body).to_bytes(2, "little")


def _e32(v):
    b = v.to_bytes(4, "big")
    return bytes([b[1], b[0], b[3], b[2]])


def _u24(v, dirs=0):
    b = v.to_bytes(3, "big")
    return bytes([b[0] | dirs, b[2], b[1]])


def _p32(v, dirs=0):
    b = v.to_bytes(4, "big")
    return bytes([b[1], b[0] | dirs, b[3], b[2]])


REQS = [m.read_energy(1, tariff=t) for t in range(5)] + [
    m.read_aux(1, "voltage", param=0x16), m.read_aux(1, "current", param=0x16),
    m.read_aux(1, "power", param=0x14), m.read_aux(1, "power_factor", param=0x14),
    m.read_aux(1, "frequency")]


def _answer(req, rng):
    if req.code == 5:
        return _frame(1, b"".join(_e32(rng.randrange(1 << 31)) for _ in range(4)))
    if req.p1 == 0x16:
        return _frame(1, b"".join(_u24(rng.randrange(1 << 16)) for _ in range(3)))
    if req.p1 == 0x14 and req.p2 >> 4 == 0:
        return _frame(1, b"".join(_p32(rng.randrange(1 << 20), rng.choice((0, 0x40, 0x80))) for _ in range(4)))
    if req.p1 == 0x14:
        return _frame(1, b"".join(_u24(rng.randrange(1000), rng.choice((0, 0x80))) for _ in range(4)))
    return _frame(1, _u24(5000))


def _mixed():
    rng = random.Random(7)
    reqs = [REQS[i % len(REQS)] for i in range(N)]
    return [_answer(r, rng) for r in reqs], reqs


MIXED_FRAMES, MIXED_REQS = _mixed()
_rng = random.Random(3)
ENERGY_REQ = m.read_energy(1, tariff=1)
ENERGY_FRAMES = [_answer(ENERGY_REQ, _rng) for _ in range(N)]


# ---------------------------------------------------------------- the pure-Python peer

_EN_NAMES = ("A+", "A-", "R+", "R-")


def py_decode(frames, reqs, crc):
    """Decode like the public Mercury scripts: per frame, per value, Python ints and floats."""
    out = []
    for i, (f, r) in enumerate(zip(frames, reqs)):
        if len(f) < 4 or crc(f[:-2]) != struct.unpack("<H", f[-2:])[0]:
            continue
        d = f[1:-2]
        if r.code == 5:
            for k in range(4):
                b = d[4 * k:4 * k + 4]
                if b == b"\xff\xff\xff\xff":
                    continue
                v = int.from_bytes(bytes((b[1], b[0], b[3], b[2])), "big")
                out.append((i, "%s T%d" % (_EN_NAMES[k], r.p2), float(v)))
        elif r.p1 == 0x14 and r.p2 >> 4 == 0:
            for k in range(4):
                b = d[4 * k:4 * k + 4]
                v = int.from_bytes(bytes((b[1] & 0x3F, b[0], b[3], b[2])), "big") / 100.0
                if b[1] & 0x80:
                    v = -v
                out.append((i, "P%d" % k, v))
        else:
            q = r.p2 >> 4
            scale = 1000.0 if q in (2, 3) else 100.0
            for k in range(len(d) // 3):
                b = d[3 * k:3 * k + 3]
                v = int.from_bytes(bytes((b[0] & 0x3F, b[2], b[1])), "big") / scale
                if q == 3 and b[0] & 0x80:
                    v = -v
                out.append((i, "Q%d.%d" % (q, k), v))
    return out


# ---------------------------------------------------------------- benchmarks

def _report(benchmark, capsys, nvalues, label):
    best = benchmark.stats.stats.min
    with capsys.disabled():
        print("\n%s: %d values, %.2f M values/s (best round %.1f ms)" % (label, nvalues, nvalues / best / 1e6, best * 1e3))


@pytest.fixture(scope="module")
def mixed_batch():
    return FrameBatch.from_frames(MIXED_FRAMES), m.requests_array(MIXED_REQS)


def test_mixed__ours(benchmark, mixed_batch, capsys):
    batch, rows = mixed_batch
    meters = np.arange(len(batch), dtype=np.uint32)
    readings, fs = benchmark(m.decode_batch, batch, requests=rows, meter_ids=meters, received_at=T0)
    assert (fs["status"] == 0).all()
    k = min(2000, len(batch))
    assert int(fs["count"][:k].sum()) == len(py_decode(MIXED_FRAMES[:k], MIXED_REQS[:k], _crc_c))
    _report(benchmark, capsys, len(readings), "mercury mixed (ours)")


def test_mixed__pyscript_crcmod(benchmark):
    out = benchmark(py_decode, MIXED_FRAMES, MIXED_REQS, _crc_c)
    assert out


def test_mixed__pyscript(benchmark):
    out = benchmark.pedantic(py_decode, args=(MIXED_FRAMES, MIXED_REQS, crc_py), rounds=3, iterations=1)
    assert out


def test_energy__ours(benchmark, capsys):
    batch = FrameBatch.from_frames(ENERGY_FRAMES)
    rows = m.requests_array(ENERGY_REQ)
    meters = np.arange(len(batch), dtype=np.uint32)
    readings, fs = benchmark(m.decode_batch, batch, requests=rows, meter_ids=meters, received_at=T0)
    assert len(readings) == 4 * len(batch)
    ref = py_decode(ENERGY_FRAMES[:100], [ENERGY_REQ] * 100, _crc_c)
    assert [v for _, _, v in ref] == list(readings["value"][:400])
    _report(benchmark, capsys, len(readings), "mercury energy (ours)")


def test_energy__pyscript_crcmod(benchmark):
    out = benchmark(py_decode, ENERGY_FRAMES, [ENERGY_REQ] * len(ENERGY_FRAMES), _crc_c)
    assert len(out) == 4 * len(ENERGY_FRAMES)


def test_energy__pyscript(benchmark):
    out = benchmark.pedantic(py_decode, args=(ENERGY_FRAMES, [ENERGY_REQ] * len(ENERGY_FRAMES), crc_py),
                             rounds=3, iterations=1)
    assert len(out) == 4 * len(ENERGY_FRAMES)
