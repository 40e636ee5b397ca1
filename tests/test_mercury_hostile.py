"""Hostile input for the Mercury decoder: truncations, bit flips, over-long and random frames,
offsets edited after a batch was built.  The single API raises only FrameError subclasses; the
batch API reports a precise status per frame and keeps the good frames' readings."""
from __future__ import annotations

import random
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterpoll.bindings import mercury as m
from meterpoll.bindings.errors import FrameError
from meterpoll.bindings.frames import FrameBatch
from meterpoll.bindings.readings import FrameStatus
from reference import mercury_ref as ref
from vectors import load_vectors

T0 = np.datetime64("2026-01-01T00:00:00", "ms")
VECTORS = load_vectors("mercury")

GOOD = [  # (frame, request) pairs built from the vectors
    (bytes.fromhex(VECTORS[4]["hex"]), m.read_energy(0)),
    (bytes.fromhex(VECTORS[30]["hex"]), m.read_aux(0x80, "power", param=0x14, power="S")),
    (bytes.fromhex(VECTORS[40]["hex"]), m.read_time(0x38)),
    (bytes.fromhex(VECTORS[27]["hex"]), m.read_journal(0x80, 1, 2)),
    (bytes.fromhex(VECTORS[44]["hex"]), m.read_aux(0x80, "power_factor", param=0x14)),
    (bytes.fromhex(VECTORS[7]["hex"]), m.read_aux(0, "voltage", 1)),
    (bytes.fromhex(VECTORS[47]["hex"]), m.read_aux(0x80, "temperature")),
    (bytes.fromhex(VECTORS[41]["hex"]), m.read_serial(0x38)),
    (bytes.fromhex(VECTORS[34]["hex"]), m.read_profile_record(0x80, 0x10, constant=1000)),
]
ALL_REQUESTS = [r for _, r in GOOD] + [m.open_channel(0), m.read_version(3), m.read_fixed_energy(0x80),
                                       m.read_memory(1, 3, 0, 15), m.read_energy(0, 6),
                                       m.read_profile_record(0x80, 0x10, constant=1000)]


def _single(frame, req):
    """decode() either returns readings or raises a FrameError subclass whose status matches
    the batch status; nothing else may escape."""
    readings, fs = m.decode_batch([frame], requests=req, received_at=T0)
    st_ = int(fs["status"][0])
    assert st_ in set(FrameStatus)
    assert int(fs["count"][0]) == len(readings)
    try:
        out = m.decode(frame, request=req, received_at=T0)
    except FrameError as e:
        assert e.status == st_ and st_ not in (FrameStatus.OK, FrameStatus.NO_DATA)
        return
    assert st_ in (FrameStatus.OK, FrameStatus.NO_DATA)
    assert np.array_equal(out["value"], readings["value"])


@pytest.mark.parametrize("k", range(len(GOOD)))
def test_truncation_at_every_length(k):
    frame, req = GOOD[k]
    for n in range(len(frame)):
        _single(frame[:n], req)
        # a truncation whose CRC is recomputed (a short answer that passes the CRC)
        if n >= 2:
            fixed = ref.with_crc(frame[: n - 1])
            _single(fixed, req)
            assert ref.decode(fixed, req.row)[0] != ref.OK or len(fixed) == len(frame)


@pytest.mark.parametrize("k", range(len(GOOD)))
def test_every_bit_flip(k):
    frame, req = GOOD[k]
    for i in range(len(frame)):
        for b in range(8):
            x = bytearray(frame)
            x[i] ^= 1 << b
            _single(bytes(x), req)
            _, fs = m.decode_batch([bytes(x)], requests=req)
            assert fs["status"][0] == FrameStatus.CHECKSUM  # CRC-16 catches every single-bit error


@pytest.mark.parametrize("k", range(len(GOOD)))
def test_over_long(k):
    frame, req = GOOD[k]
    for extra in (b"\x00", b"\xff" * 7, bytes(300)):
        _single(frame + extra, req)
        longer = ref.with_crc(frame[:-2] + extra)
        _, fs = m.decode_batch([longer], requests=req)
        assert fs["status"][0] == FrameStatus.BAD_LENGTH


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64), st.sampled_from(ALL_REQUESTS), st.booleans())
def test_random_bytes(data, req, fix_crc):
    frame = ref.with_crc(data) if fix_crc else data
    _single(frame, req)
    readings, fs = m.decode_batch([frame], requests=req, received_at=T0)
    status, code, off, _ = ref.decode(frame, req.row)
    assert (int(fs["status"][0]), int(fs["code"][0]), int(fs["offset"][0])) == (status, code, off)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=18).map(ref.with_crc), st.integers(0, 255),
       st.sampled_from([0, 1, 2, 4, 5, 6, 8, 0x15, 0x77]), st.integers(0, 255), st.integers(0, 255),
       st.sampled_from([0, 1, 1000, 65535]))
def test_arbitrary_request_rows(frame, a, code, p1, p2, aux):
    """Any request row (including ones no encoder builds) is handled like the reference."""
    rows = np.array([(a, code, p1, p2, aux)], dtype=m.REQUEST_DTYPE)
    readings, fs = m.decode_batch([frame], requests=rows, received_at=T0)
    status, c, off, want = ref.decode(frame, (a, code, p1, p2, aux))
    assert (int(fs["status"][0]), int(fs["code"][0]), int(fs["offset"][0])) == (status, c, off)
    assert len(readings) == len(want)


def test_batch_keeps_good_frames_among_bad():
    rng = random.Random(1)
    frames, reqs, good = [], [], []
    for i in range(300):
        f, r = GOOD[i % len(GOOD)]
        kind = rng.randrange(4)
        if kind == 1:
            f = f[: rng.randrange(len(f))]
        elif kind == 2:
            x = bytearray(f)
            x[rng.randrange(len(x))] ^= 1 << rng.randrange(8)
            f = bytes(x)
        elif kind == 3:
            f = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        frames.append(f)
        reqs.append(r)
        good.append(kind == 0)
    readings, fs = m.decode_batch(frames, requests=reqs, received_at=T0)
    for i, f in enumerate(frames):
        status, code, off, want = ref.decode(f, reqs[i].row)
        assert int(fs["status"][i]) == status
        if good[i]:
            assert status in (ref.OK, ref.NO_DATA)
            assert int(fs["count"][i]) == len(want)
            sl = readings[int(fs["first"][i]):int(fs["first"][i]) + int(fs["count"][i])]
            assert (sl["meter"] == i).all()
    assert int(fs["count"].sum()) == len(readings)


def test_offsets_edited_after_batch_construction():
    frames = [GOOD[0][0]] * 4
    data = np.frombuffer(b"".join(frames), dtype=np.uint8)
    offsets = np.array([0, 19, 38, 57, 76], dtype=np.int64)
    batch = FrameBatch.from_buffer(data, offsets)
    offsets[2] = 10_000        # frame 1 ends past the buffer, frame 2 starts past it
    offsets[4] = -5            # frame 3 ends before its start
    readings, fs = m.decode_batch(batch, requests=GOOD[0][1], received_at=T0)
    assert list(fs["status"]) == [FrameStatus.OK, FrameStatus.BAD_LENGTH, FrameStatus.BAD_LENGTH,
                                  FrameStatus.BAD_LENGTH]
    assert len(readings) == 2 and (readings["meter"] == 0).all()
    offsets[1] = 3             # frame 0 now 3 bytes: truncated, read inside the buffer only
    offsets[2] = 40
    _, fs = m.decode_batch(batch, requests=GOOD[0][1], received_at=T0)
    assert fs["status"][0] == FrameStatus.TRUNCATED and fs["status"][1] == FrameStatus.CHECKSUM


def test_empty_batch_and_bad_arguments():
    readings, fs = m.decode_batch([], requests=None)
    assert len(readings) == 0 and len(fs) == 0
    with pytest.raises(TypeError):
        m.decode("00", request=m.read_energy(0))
    with pytest.raises(TypeError):
        m.decode_batch([GOOD[0][0]], requests=np.zeros(1, dtype=np.int32))
    with pytest.raises(ValueError):
        m.decode_batch([GOOD[0][0]], requests=GOOD[0][1], meter_ids=[1, 2])
    with pytest.raises(TypeError):
        m.decode_batch([GOOD[0][0]], requests=GOOD[0][1], received_at=[1.5])  # floats: not a time


def test_big_random_batch_bounded_time():
    rng = np.random.default_rng(5)
    lens = rng.integers(0, 40, 20000)
    data = rng.integers(0, 256, int(lens.sum()), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    batch = FrameBatch.from_buffer(data, offsets)
    rows = np.zeros(20000, dtype=m.REQUEST_DTYPE)
    rows["code"] = rng.choice([0, 4, 5, 6, 8, 0x15], 20000)
    rows["aux"] = rng.choice([0, 1000], 20000)
    rows["p1"] = rng.integers(0, 256, 20000)
    rows["p2"] = rng.integers(0, 256, 20000)
    t = time.perf_counter()
    readings, fs = m.decode_batch(batch, requests=rows, received_at=T0)
    assert time.perf_counter() - t < 2.0
    assert int(fs["count"].sum()) == len(readings)
    assert (fs["status"] != FrameStatus.OK).sum() > 19000  # random bytes almost never pass the CRC
