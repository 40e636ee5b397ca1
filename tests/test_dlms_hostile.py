"""DLMS decoder under hostile input: truncations, bit flips, over-long lengths, random bytes,
deep nesting, offsets edited after the batch was built.  The single API raises only FrameError
subclasses; the batch API reports a status per frame and keeps the good frames' readings."""
from __future__ import annotations

import os
import random
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from meterpoll import FrameBatch, FrameStatus
from meterpoll.bindings import dlms
from meterpoll.bindings.errors import FrameError
from reference import dlms_ref as R

FAST = settings(max_examples=int(os.environ.get("METERPOLL_DLMS_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
T0 = 1_700_000_000_000
COLS = [dlms.Column.clock(), ("1.0.1.8.0.255", 0, 30), ("1.0.2.8.0.255", -1, 30)]
RCOLS = [(c.obis, c.scaler, c.unit, c.kind) for c in map(dlms._column, COLS)]


def _profile(n):
    return R.enc(1, [R.enc(2, [R.enc(9, R.datetime_bytes(2024, 5, 1 + i // 96, (i // 4) % 24, 15 * (i % 4), dev=-60)),
                               R.enc(6, 1000 + i), R.enc(0x12, i)]) for i in range(n)])


GOOD = [
    R.hdlc_response(R.get_response(_profile(6))),
    R.hdlc_response(R.get_response(_profile(20)), max_info=90),
    b"".join(R.wrapper(b) for b in R.block_responses(_profile(10), 64)),
    b"".join(R.hdlc_response(b, max_info=40, first=k) for k, b in enumerate(R.block_responses(_profile(8), 50))),
    R.get_response(_profile(3)),
]


def _single(data, **kw):
    try:
        return dlms.decode(data, columns=COLS, capture_period=900, received_at=T0, **kw)
    except FrameError as e:
        assert isinstance(e.status, int) and e.status != 0
        return e


def _check_batch_vs_reference(frames):
    out, fs = dlms.decode_batch(frames, columns=COLS, capture_period=900, received_at=T0)
    rows = list(zip(out["meter"].tolist(), out["obis"].tolist(), out["ts"].astype(np.int64).tolist(),
                    out["value"].tolist(), out["unit"].tolist(), out["status"].tolist()))
    for i, f in enumerate(frames):
        status, code, readings = R.decode_item(f, {"now_ms": T0, "columns": RCOLS, "period_ms": 900_000, "meter": i})
        assert int(fs["status"][i]) == status, (i, f.hex())
        a, n = int(fs["first"][i]), int(fs["count"][i])
        assert rows[a:a + n] == readings
        if status != 0:
            assert n == 0
    return out, fs


def test_truncation_at_every_length():
    t = time.perf_counter()
    for g in GOOD:
        frames = [g[:k] for k in range(len(g))]
        for f in frames[:: max(1, len(frames) // 200)]:
            r = _single(f)
            assert isinstance(r, FrameError)
        out, fs = _check_batch_vs_reference(frames)
        assert (fs["status"] != 0).all()
    assert time.perf_counter() - t < 30


def test_every_single_bit_flip():
    for g in GOOD[:3]:
        frames = []
        for pos in range(len(g)):
            for bit in range(8):
                b = bytearray(g)
                b[pos] ^= 1 << bit
                frames.append(bytes(b))
        out, fs = _check_batch_vs_reference(frames)
        if g[0] == 0x7E:
            # HDLC: every flip in a checked area is caught (flags, format, checksums, CRC)
            assert (fs["status"] != 0).all()


@FAST
@given(st.binary(max_size=400))
def test_random_bytes(data):
    r = _single(data)
    assert isinstance(r, (FrameError, np.ndarray))
    _check_batch_vs_reference([data, GOOD[0]])
    for prefix in (b"\x7e\xa0", b"\x00\x01\x00\x01\x00\x10", b"\xc4\x01\xc1\x00", b"\xc4\x02\xc1\x00\x00\x00\x00\x01\x00"):
        _check_batch_vs_reference([prefix + data])
    try:
        dlms.decode_data(data)
    except FrameError:
        pass
    spans, consumed = dlms.split_frames(data)
    assert 0 <= consumed <= len(data)
    for s, e in spans:
        assert 0 <= s < e <= len(data)
        dlms.parse_frame(data[s:e])


@FAST
@given(st.sampled_from(GOOD), st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=6))
def test_random_byte_edits(g, edits):
    b = bytearray(g)
    for pos, val in edits:
        b[pos % len(b)] = val
    _check_batch_vs_reference([bytes(b), g])


def test_over_long_lengths():
    cases = [
        R.get_response(b"\x01\x84\xff\xff\xff\xff\x02\x03"),           # 4-byte array count
        R.get_response(b"\x01\x82\xff\xff" + b"\x02\x03" * 4),
        R.get_response(b"\x09\x84\xff\xff\xff\xff\x00"),
        R.get_response(b"\x01\x85\x00\x00\x00\x00\x01"),                  # 5 length bytes
        R.get_response(b"\x01\x80"),
        bytes([0xC4, 0x02, 0xC1, 0x01, 0, 0, 0, 1, 0, 0x84, 0xFF, 0xFF, 0xFF, 0xF0]),
        R.wrapper(R.get_response(R.enc(6, 1)))[:7] + b"\xff" + R.get_response(R.enc(6, 1)),
        b"\x7e\xa7\xff" + bytes(30) + b"\x7e",                            # HDLC length 2047
    ]
    out, fs = _check_batch_vs_reference(cases)
    assert (fs["status"] != 0).all()
    for c in cases:
        assert isinstance(_single(c), FrameError)
    for c in cases[:5]:
        with pytest.raises(FrameError):
            dlms.decode_data(c[4:])


def test_deep_nesting():
    deep = b"\x02\x01" * 10_000 + b"\x06\x00\x00\x00\x01"
    with pytest.raises(FrameError) as e:
        dlms.decode_data(deep)
    assert e.value.status == FrameStatus.TOO_DEEP
    ok = b"\x02\x01" * 15 + b"\x11\x05"
    assert dlms.decode_data(ok) is not None
    # inside a skipped profile column: the skipper has the same limit
    cols = [dlms.Column.clock(), None]
    row = R.enc(2, [R.enc(9, R.datetime_bytes(2024, 1, 1, 0, 0)), deep])
    data = R.get_response(R.enc(1, [row]))
    with pytest.raises(FrameError) as e:
        dlms.decode(data, columns=cols)
    assert e.value.status == FrameStatus.TOO_DEEP
    out, fs = dlms.decode_batch([data, GOOD[0]], columns=[cols, COLS])
    assert fs["status"].tolist() == [FrameStatus.TOO_DEEP, 0] and fs["count"][1] == 12


def test_offsets_edited_after_batch_construction():
    data = b"".join(GOOD)
    offsets = np.cumsum([0] + [len(g) for g in GOOD]).astype(np.int64)
    batch = FrameBatch.from_buffer(np.frombuffer(data, dtype=np.uint8), offsets)
    out, fs = dlms.decode_batch(batch, columns=COLS)
    assert (fs["status"] == 0).all()
    offsets[1] = 10 ** 9                         # the caller's array is the batch's array
    offsets[3] = -5
    out, fs = dlms.decode_batch(batch, columns=COLS)
    assert fs["status"][0] == FrameStatus.BAD_LENGTH and fs["status"][1] == FrameStatus.BAD_LENGTH
    assert fs["status"][2] == FrameStatus.BAD_LENGTH and fs["status"][3] == FrameStatus.BAD_LENGTH
    assert fs["status"][4] == 0 and fs["count"][4] == 6


def test_random_garbage_batch_is_bounded_in_time():
    rnd = random.Random(7)
    frames = []
    for k in range(3000):
        g = GOOD[k % len(GOOD)]
        b = bytearray(g)
        for _ in range(rnd.randrange(0, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        if rnd.random() < 0.3:
            del b[rnd.randrange(len(b)):]
        frames.append(bytes(b))
    t = time.perf_counter()
    out, fs = dlms.decode_batch(frames, columns=COLS, capture_period=900)
    assert time.perf_counter() - t < 2.0
    assert len(fs) == 3000 and (fs["count"][fs["status"] != 0] == 0).all()
    good = fs["status"] == 0
    assert good.any() and (~good).any()
    assert fs["count"][good].sum() == len(out)
