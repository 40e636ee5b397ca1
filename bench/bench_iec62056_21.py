"""IEC 62056-21 mode C data readouts (and DSMR P1 telegrams): batch decode vs the pure-Python ways.

Case ``readout``: N readouts of 20 data lines each (ids and units as in the E350 / NEVA /
Energomera / DSMR vectors, values varied), default N = 100,000.
Peers:
* ``iec62056_21``: the PyPI package (pwitab/iec62056-21) as its users call it:
  ``ReadoutDataMessage.from_bytes(frame)`` (checks the BCC), then ``float(value)`` and a unit
  scale per data set.
* ``regex``: the fastest pure-Python way a user would write: one compiled regular expression
  over the frame, ``float()`` and a unit scale per match (no BCC check: favours the peer).
Ours: ``decode_batch`` on a prebuilt FrameBatch (the engine gathers answers into one), and
``ours_list`` from a list of bytes (includes building the batch).

Run: pytest bench/bench_iec62056_21.py -o python_files='bench_*.py' --benchmark-only -q -s
(values/s are printed with -s).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from benchutil import scaled
from meterpoll.bindings import iec62056_21 as iec
from meterpoll.bindings.checksums import crc16_arc
from meterpoll.bindings.frames import FrameBatch

N = scaled(100_000, minimum=50)
N_DSMR = scaled(20_000, minimum=20)

IDS = [("1.8.0", "kWh"), ("1.8.1", "kWh"), ("1.8.2", "kWh"), ("2.8.0", "kWh"), ("3.8.0", "kvarh"),
       ("4.8.0", "kvarh"), ("1-0:1.7.0", "kW"), ("1-0:2.7.0", "kW"), ("32.7.0", "V"), ("52.7.0", "V"),
       ("72.7.0", "V"), ("31.7.0", "A"), ("51.7.0", "A"), ("71.7.0", "A"), ("14.7.0", "Hz"),
       ("13.7.0", ""), ("C.1.0", ""), ("F.F", ""), ("0.9.1", ""), ("1-0:21.7.0*255", "kW")]
SCALE = {"kWh": 1e3, "kvarh": 1e3, "kW": 1e3, "V": 1.0, "A": 1.0, "Hz": 1.0, "m3": 1.0, None: 1.0, "": 1.0}


def _frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(62056)
    vals = rng.integers(0, 10**9, size=(n, len(IDS)))
    out = []
    for row in vals:
        lines = ["%s(%d.%03d%s)" % (ident, v // 1000, v % 1000, "*" + u if u else "")
                 for (ident, u), v in zip(IDS, row.tolist())]
        out.append(iec.data_block(lines))
    return out


def _dsmr(n: int) -> list[bytes]:
    base = ("/XMX5LGBBFG1012530239\r\n\r\n1-3:0.2.8(42)\r\n0-0:1.0.0(161116201035W)\r\n"
            "0-0:96.1.1(4530303331303033323737383938383136)\r\n1-0:1.8.1(%010.3f*kWh)\r\n"
            "1-0:1.8.2(%010.3f*kWh)\r\n1-0:2.8.1(%010.3f*kWh)\r\n1-0:2.8.2(%010.3f*kWh)\r\n"
            "0-0:96.14.0(0002)\r\n1-0:1.7.0(%06.3f*kW)\r\n1-0:2.7.0(00.000*kW)\r\n1-0:32.7.0(%05.1f*V)\r\n"
            "1-0:31.7.0(%03d*A)\r\n1-0:21.7.0(%06.3f*kW)\r\n0-1:24.1.0(003)\r\n"
            "0-1:24.2.1(161116200000W)(%09.3f*m3)\r\n!")
    rng = np.random.default_rng(5)
    out = []
    for _ in range(n):
        r = rng.random(9)
        head = (base % (r[0] * 1e5, r[1] * 1e5, r[2] * 1e3, r[3] * 1e3, r[4] * 10, 220 + r[5] * 20,
                        int(r[6] * 100), r[7] * 10, r[8] * 1e4)).encode()
        out.append(head + b"%04X\r\n" % crc16_arc(head))
    return out


@pytest.fixture(scope="module")
def frames():
    return _frames(N)


@pytest.fixture(scope="module")
def batch(frames):
    return FrameBatch.from_frames(frames)


@pytest.fixture(scope="module")
def dsmr_frames():
    return _dsmr(N_DSMR)


_RX = np.datetime64("2026-01-01T00:00:00", "ms")


def _report(name, nvalues, benchmark):
    t = benchmark.stats.stats.min if benchmark.stats else float("nan")
    print("\n%-28s %10d values  %8.1f ms  %12.0f values/s" % (name, nvalues, t * 1e3, nvalues / t))


def test_readout__ours(benchmark, batch):
    out, fs = benchmark.pedantic(iec.decode_batch, args=(batch,), kwargs={"received_at": _RX},
                                 rounds=5, iterations=1, warmup_rounds=1)
    assert len(out) == N * len(IDS) and (fs["status"] == 0).all()
    _report("readout ours", len(out), benchmark)


def test_readout__ours_list(benchmark, frames):
    out, fs = benchmark.pedantic(iec.decode_batch, args=(frames,), kwargs={"received_at": _RX},
                                 rounds=3, iterations=1)
    assert len(out) == N * len(IDS)
    _report("readout ours (from list)", len(out), benchmark)


def _peer_pkg(frames):
    from iec62056_21 import messages
    out = []
    for f in frames:
        msg = messages.ReadoutDataMessage.from_bytes(f)
        for line in msg.data_block.data_lines:
            for ds in line.data_sets:
                out.append((ds.address, float(ds.value) * SCALE[ds.unit], ds.unit))
    return out


def test_readout__iec62056_21(benchmark, frames):
    out = benchmark.pedantic(_peer_pkg, args=(frames,), rounds=1, iterations=1)
    assert len(out) == N * len(IDS)
    _report("readout iec62056-21 pkg", len(out), benchmark)


_RE = re.compile(rb"([0-9A-Z][0-9A-Z:\-.*&]*)\(([-+]?[0-9.]+)(?:\*([A-Za-z0-9/%]+))?\)")
_BSCALE = {k.encode() if isinstance(k, str) else k: v for k, v in SCALE.items()}


def _peer_regex(frames):
    out = []
    app = out.append
    for f in frames:
        for ident, value, unit in _RE.findall(f):
            app((ident, float(value) * _BSCALE[unit or None], unit))
    return out


def test_readout__regex(benchmark, frames):
    out = benchmark.pedantic(_peer_regex, args=(frames,), rounds=2, iterations=1)
    assert len(out) == N * len(IDS)
    _report("readout regex", len(out), benchmark)


def test_dsmr__ours(benchmark, dsmr_frames):
    b = FrameBatch.from_frames(dsmr_frames)
    out, fs = benchmark.pedantic(iec.decode_batch, args=(b,), rounds=5, iterations=1, warmup_rounds=1)
    assert (fs["status"] == 0).all()
    _report("dsmr ours", len(out), benchmark)


def _dsmr_regex(frames):
    out = []
    for f in frames:
        bang = f.rfind(b"!")
        if crc16_arc(f[:bang + 1]) != int(f[bang + 1:bang + 5], 16):
            raise ValueError("crc")
        for ident, value, unit in _RE.findall(f, 0, bang):
            out.append((ident, float(value) * _BSCALE[unit or None], unit))
    return out


def test_dsmr__regex(benchmark, dsmr_frames):
    out = benchmark.pedantic(_dsmr_regex, args=(dsmr_frames,), rounds=2, iterations=1)
    assert out
    _report("dsmr regex (+native CRC)", len(out), benchmark)
