"""M-Bus decoder on hostile input: truncation at every length, bit flips (with and without the
checksum repaired), over-long frames, random bytes, DIFE/VIFE chains past the limit, offsets
edited after the batch was built.  The single API raises only FrameError subclasses; the batch
API gives every frame a precise status (the reference decoder's) and keeps the good frames."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterpoll.bindings import mbus
from meterpoll.bindings.errors import FrameError
from meterpoll.bindings.frames import FrameBatch
from meterpoll.bindings.readings import FrameStatus, obis
from reference import mbus_ref
from vectors import load_vectors

RX = np.datetime64("2026-01-02T03:04:05", "ms")
RX_MS = int(RX.astype(np.int64))
LONG = [bytes.fromhex(v["hex"]) for v in load_vectors("mbus")
        if v["direction"] == "response" and v["hex"].startswith("68")]
GOOD = LONG[-1]


def _fix_cs(frame: bytearray) -> bytes:
    if len(frame) >= 6 and frame[0] == 0x68 and frame[1] + 6 == len(frame):
        frame[-2] = sum(frame[4:-2]) & 0xFF
    return bytes(frame)


def _compare(frames):
    """Batch status/offset/code/readings equal the reference for every frame."""
    r, fs = mbus.decode_batch(frames, received_at=RX)
    rows = r.tolist()
    for i, fr in enumerate(frames):
        s, off, code, ref = mbus_ref.decode(fr, i, RX_MS)
        got = fs[i]
        assert (int(got["status"]), int(got["offset"]), int(got["code"])) == (s, off, code), (i, fr.hex())
        mine = rows[int(got["first"]):int(got["first"]) + int(got["count"])]
        assert len(mine) == len(ref), (i, fr.hex())
        for a, b in zip(mine, ref):
            assert (a[0], a[1], a[4], a[5]) == (b[0], obis(b[1]), b[4], b[5])
            assert int(np.datetime64(a[2], "ms").astype(np.int64)) == b[2]
            assert (a[3] == b[3]) or (a[3] != a[3] and b[3] != b[3]) or a[3] == pytest.approx(b[3], rel=1e-12)
    return r, fs


def _single_is_safe(fr):
    try:
        mbus.decode(fr, received_at=RX)
    except FrameError:
        pass
    try:
        mbus.parse_frame(fr)
    except FrameError:
        pass


def test_truncation_at_every_length():
    frames = [fr[:k] for fr in LONG for k in range(len(fr))]
    r, fs = _compare(frames + [GOOD])
    assert fs["status"][-1] == FrameStatus.OK and fs["count"][-1] > 0
    for fr in frames:
        with pytest.raises(FrameError) as ei:
            mbus.decode(fr)
        assert ei.value.status in (FrameStatus.TRUNCATED, FrameStatus.BAD_LENGTH, FrameStatus.CHECKSUM,
                                   FrameStatus.BAD_FRAMING)


def test_truncated_records_with_repaired_length_and_checksum():
    """Cut the user data anywhere and rebuild L and CS: the record parser must find the cut."""
    frames = []
    for fr in LONG:
        body = fr[4:-2]
        for k in range(3, len(body)):
            frames.append(mbus.encode_long_frame(body[0], body[1], body[2], body[3:k]))
    _, fs = _compare(frames)
    assert (fs["status"] == FrameStatus.TRUNCATED).any()
    for fr in frames:
        _single_is_safe(fr)


@pytest.mark.parametrize("repair", [False, True])
def test_every_bit_flip(repair):
    frames = []
    for fr in LONG:
        for i in range(len(fr)):
            for b in range(8):
                m = bytearray(fr)
                m[i] ^= 1 << b
                frames.append(_fix_cs(m) if repair else bytes(m))
    _, fs = _compare(frames + [GOOD])
    assert fs["status"][-1] == FrameStatus.OK
    if not repair:
        # a flip anywhere in C..data without repair is always a checksum error
        assert (fs["status"] == FrameStatus.CHECKSUM).sum() > len(frames) // 2


def test_over_long_and_garbage_around():
    frames = [fr + b"\x16" for fr in LONG] + [fr + bytes(300) for fr in LONG] + [b"\xE5\xE5", b"\x10\x5B\x00\x5B\x16\x00"]
    _, fs = _compare(frames)
    assert set(fs["status"].tolist()) == {FrameStatus.BAD_LENGTH}


def test_chains_past_the_limit():
    ten = mbus.encode_record(0x84, 0x13, b"\x01\x00\x00\x00", b"\x80" * 9 + b"\x00")
    eleven = mbus.encode_record(0x84, 0x13, b"\x01\x00\x00\x00", b"\x80" * 10 + b"\x00")
    vif10 = mbus.encode_record(0x04, b"\x93" + b"\xFD" * 9 + b"\x3B", b"\x01\x00\x00\x00")
    vif11 = mbus.encode_record(0x04, b"\x93" + b"\xFD" * 10 + b"\x3B", b"\x01\x00\x00\x00")
    endless_dife = bytes([0x84]) + b"\x80" * 200
    frames = [mbus.encode_rsp_ud(x, medium=7) for x in (ten, eleven, vif10, vif11, endless_dife)]
    _, fs = _compare(frames)
    assert fs["status"].tolist() == [FrameStatus.OK, FrameStatus.TOO_DEEP, FrameStatus.OK,
                                     FrameStatus.TOO_DEEP, FrameStatus.TOO_DEEP]
    with pytest.raises(FrameError) as ei:
        mbus.decode(frames[1])
    assert ei.value.status == FrameStatus.TOO_DEEP


def test_reserved_dif_and_lvar():
    frames = [mbus.encode_rsp_ud(b"\x3F\x00", medium=7),
              mbus.encode_rsp_ud(b"\x0D\x13\xFB\x00", medium=7),
              mbus.encode_long_frame(0x08, 1, 0x71, b"\x00"),
              mbus.encode_long_frame(0x53, 1, 0x72, bytes(12))]
    _, fs = _compare(frames)
    assert fs["status"].tolist() == [FrameStatus.UNSUPPORTED] * 4
    for fr in frames:
        with pytest.raises(mbus.UnsupportedFrameError):
            mbus.decode(fr)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_random_bytes(data):
    _compare([data, GOOD])
    _single_is_safe(data)


@st.composite
def random_long_frames(draw):
    """Random user data behind a valid link layer, so the records parser sees it."""
    ci = draw(st.sampled_from([0x72, 0x7A, 0x78]))
    body = draw(st.binary(max_size=240))
    return mbus.encode_long_frame(draw(st.sampled_from([0x08, 0x18])), 1, ci, body)


@given(st.lists(random_long_frames(), min_size=1, max_size=8))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_records(frames):
    _compare(frames + [GOOD])
    for fr in frames:
        _single_is_safe(fr)


def test_offsets_edited_after_batch_construction():
    frames = [GOOD, LONG[0], GOOD]
    data = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
    offsets = np.cumsum([0] + [len(f) for f in frames]).astype(np.int64)
    batch = FrameBatch.from_buffer(data, offsets)
    offsets[2] = 10 ** 9          # frame 1 and 2 now point outside the buffer
    r, fs = mbus.decode_batch(batch, received_at=RX)
    assert fs["status"].tolist() == [FrameStatus.OK, FrameStatus.BAD_LENGTH, FrameStatus.BAD_LENGTH]
    assert fs["count"][0] > 0 and len(r) == fs["count"][0]
    offsets[2] = offsets[1] - 5   # decreasing
    r, fs = mbus.decode_batch(batch, received_at=RX)
    shifted = data[offsets[2]:offsets[3]].tobytes()      # frame 2 now starts 5 bytes early
    assert fs["status"].tolist() == [FrameStatus.OK, FrameStatus.BAD_LENGTH,
                                     mbus_ref.decode(shifted)[0]]
    assert fs["status"][2] == FrameStatus.BAD_FRAMING


def test_bounded_time():
    rng = np.random.default_rng(7)
    frames = [mbus.encode_long_frame(0x08, 1, 0x72, rng.integers(0, 256, 240, dtype=np.uint8).tobytes())
              for _ in range(5000)]
    frames += [bytes([0x68, 0xFF, 0xFF, 0x68, 0x08, 0x01, 0x72]) + b"\x80" * 248 + b"\x00\x16"] * 5000
    batch = FrameBatch.from_frames(frames)
    t = time.perf_counter()
    _, fs = mbus.decode_batch(batch, received_at=RX)
    assert time.perf_counter() - t < 2.0
    assert len(fs) == 10000
