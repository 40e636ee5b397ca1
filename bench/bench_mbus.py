"""M-Bus RSP_UD decoding against pyMeterBus, on identical telegrams.

Input: the heat and water meter telegrams of the shared vectors (Kamstrup Multical 601, Elster,
OMS/Hydrometer, Engelmann WaterStar, Itron CYBLE) replicated with varied values (every integer
and BCD data field re-drawn, checksum recomputed); sizes scale with $METERPOLL_BENCH_SCALE.

Cases:
  rsp_ud_batch   N_FRAMES (100,000) telegrams.  ours: one decode_batch call on a FrameBatch (as the
                 engine hands it over); ours_list: the same from a list of bytes (batch built in
                 the timing); pymeterbus: ``meterbus.load(frame)`` and reading every record's
                 ``value`` and ``unit``, as its users do (one round: ~1.3 ms per telegram).
  rsp_ud_1k      1,000 telegrams, both sides (a quicker ratio for busy machines).
Decoded values per second are printed at the end of the run.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from benchutil import scaled
from meterpoll.bindings import mbus
from meterpoll.bindings.frames import FrameBatch

N_FRAMES = scaled(100_000, 200)
N_SMALL = scaled(1_000, 100)

_REPORT: list[str] = []


def _templates():
    from vectors import load_vectors  # tests/ helper (added to sys.path below)
    keep = ("06855817", "70112345", "92752244", "04990254", "09011523")
    out = []
    for v in load_vectors("mbus"):
        fr = bytes.fromhex(v["hex"])
        if fr[:1] == b"\x68" and len(fr) > 20 and fr[7:11][::-1].hex() in keep:
            out.append(fr)
    return out


def _fields(frame):
    f = mbus.parse_frame(frame)
    spans = []
    for r in f.records:
        dt = r.data_field
        if dt in (1, 2, 3, 4, 6, 7, 9, 10, 11, 12, 14) and r.vif not in (0x6C, 0x6D):
            start = r.offset + 1 + len(r.difes) + 1 + len(r.vifes)
            if r.vif is not None and r.vif & 0x7F == 0x7C:
                continue
            spans.append((start, len(r.data), dt >= 9))
    return spans


def _make_frames(n, seed=1):
    rng = np.random.default_rng(seed)
    temps = _templates()
    spans = [_fields(t) for t in temps]
    out = []
    for i in range(n):
        k = i % len(temps)
        fr = bytearray(temps[k])
        for start, ln, bcd in spans[k]:
            if bcd:
                digits = rng.integers(0, 10, 2 * ln)
                fr[start:start + ln] = bytes(int(digits[2 * j] * 16 + digits[2 * j + 1]) for j in range(ln))
            else:
                fr[start:start + ln] = rng.integers(0, 256, ln, dtype=np.uint8).tobytes()
        fr[-2] = sum(fr[4:-2]) & 0xFF
        out.append(bytes(fr))
    return out


@pytest.fixture(scope="module", autouse=True)
def _tests_path(request):
    import pathlib
    tests = str(pathlib.Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    yield


@pytest.fixture(scope="module")
def frames(_tests_path):
    fr = _make_frames(N_FRAMES)
    return fr, FrameBatch.from_frames(fr)


def _ours(batch):
    r, fs = mbus.decode_batch(batch)
    assert (fs["status"] == 0).all()
    return len(r)


def _peer(frames):
    import meterbus
    n = 0
    for fr in frames:
        for rec in meterbus.load(fr).records:
            rec.value
            rec.unit
            n += 1
    return n


def _note(capsys, name, values, seconds):
    line = "bench_mbus %-28s %10d values in %8.4f s = %14.0f values/s" % (name, values, seconds, values / seconds)
    _REPORT.append(line)
    with capsys.disabled():
        print("\n" + line)


def test_rsp_ud_batch__ours(benchmark, frames, capsys):
    _, batch = frames
    n = benchmark(_ours, batch)
    _note(capsys, "rsp_ud_batch ours (min)", n, benchmark.stats.stats.min)


def test_rsp_ud_batch__ours_list(benchmark, frames, capsys):
    fr, _ = frames
    n = benchmark(_ours, fr)
    _note(capsys, "rsp_ud_batch ours_list (min)", n, benchmark.stats.stats.min)


def test_rsp_ud_batch__pymeterbus(benchmark, frames, capsys):
    pytest.importorskip("meterbus")
    fr, _ = frames
    t = time.perf_counter()
    n = benchmark.pedantic(_peer, args=(fr,), rounds=1, iterations=1)
    _note(capsys, "rsp_ud_batch pymeterbus", n, time.perf_counter() - t)


def test_rsp_ud_1k__ours(benchmark, frames, capsys):
    fr, _ = frames
    small = FrameBatch.from_frames(fr[:N_SMALL])
    n = benchmark(_ours, small)
    _note(capsys, "rsp_ud_1k ours (min)", n, benchmark.stats.stats.min)


def test_rsp_ud_1k__pymeterbus(benchmark, frames, capsys):
    pytest.importorskip("meterbus")
    fr, _ = frames
    n = benchmark.pedantic(_peer, args=(fr[:N_SMALL],), rounds=3, iterations=1)
    _note(capsys, "rsp_ud_1k pymeterbus (min)", n, benchmark.stats.stats.min)
