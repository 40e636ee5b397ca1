"""Hostile input for the Modbus decoder: truncation at every length, bit flips, over-long frames,
random bytes, offsets edited after batch construction.  The single API raises only FrameError
subclasses; the batch API gives each frame a precise status and keeps the good frames' readings."""
from __future__ import annotations

import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterpoll import FrameBatch, FrameError, FrameStatus
from meterpoll.bindings import modbus as mb
from reference import modbus_ref as ref

REQ = (1, 4, 0, 40)
REF_REQ = {"transaction": -1, "unit": 1, "function": 4, "start": 0, "count": 40}


def _frame(tcp=False):
    values = [float(i) + 0.5 for i in range(20)]
    regs = list(struct.unpack(">40H", struct.pack(">20f", *values)))
    return mb.encode_read_response(1, 4, regs, tcp=tcp, transaction=0)


GOOD = {False: _frame(False), True: _frame(True)}
REF_ENTRIES = [dict(e._asdict()) for e in mb.SDM630]


def _single(frame, tcp):
    try:
        out = mb.decode(frame, request=REQ, map=mb.SDM630, tcp=tcp)
    except FrameError as exc:
        return exc.status, exc.offset
    return (FrameStatus.OK if len(out) else FrameStatus.NO_DATA), -1


def _expect(frame, tcp):
    status, _, offset, vals = ref.decode(frame, REF_REQ, REF_ENTRIES, "tcp" if tcp else "rtu")
    return status, offset, vals


@pytest.mark.parametrize("tcp", [False, True], ids=["rtu", "tcp"])
def test_truncation_at_every_length(tcp):
    good = GOOD[tcp]
    cuts = [good[:n] for n in range(len(good))]
    for c in cuts:
        status, offset = _single(c, tcp)
        assert status == _expect(c, tcp)[0]
        assert status in (FrameStatus.TRUNCATED, FrameStatus.CHECKSUM, FrameStatus.BAD_LENGTH)
    # the batch: every cut frame between good ones; good frames keep their readings
    frames = [x for c in cuts for x in (good, c)] + [good]
    readings, fs = mb.decode_batch(frames, requests=REQ, map=mb.SDM630, tcp=tcp)
    assert (fs["status"][0::2] == FrameStatus.OK).all()
    assert (fs["count"][0::2] == 20).all() and (fs["count"][1::2] == 0).all()
    assert len(readings) == 20 * (len(cuts) + 1)
    for i, c in enumerate(cuts):
        assert fs["status"][2 * i + 1] == _expect(c, tcp)[0]


@pytest.mark.parametrize("tcp", [False, True], ids=["rtu", "tcp"])
def test_every_single_bit_flip(tcp):
    good = GOOD[tcp]
    frames = []
    for i in range(len(good)):
        for bit in range(8):
            b = bytearray(good)
            b[i] ^= 1 << bit
            frames.append(bytes(b))
    readings, fs = mb.decode_batch(frames, requests=REQ, map=mb.SDM630, tcp=tcp)
    for j, f in enumerate(frames):
        status, offset, vals = _expect(f, tcp)
        assert (fs["status"][j], fs["offset"][j], fs["count"][j]) == (status, offset, len(vals))
        assert _single(f, tcp) == (status, offset)
    if not tcp:  # the CRC catches every single-bit error
        assert not (fs["status"] == FrameStatus.OK).any()


@pytest.mark.parametrize("tcp", [False, True], ids=["rtu", "tcp"])
def test_over_long_frames(tcp):
    good = GOOD[tcp]
    for extra in (b"\x00", b"\xff\xff", good, bytes(300)):
        f = good + extra
        status, offset = _single(f, tcp)
        assert status == FrameStatus.BAD_LENGTH and (status, offset) == _expect(f, tcp)[:2]
        # trailing zero bytes leave the CRC "good" (CRC(frame[:-1]) is the CRC's high byte, and a
        # zero register stays zero over zeros): then the byte count is blamed, at offset 2
        assert offset == (2 if (not tcp and not any(extra)) else len(good))
    huge = good + bytes(1 << 20)
    assert _single(huge, tcp)[0] == FrameStatus.BAD_LENGTH


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=20),
       st.sampled_from([False, True, "auto"]))
def test_random_bytes(frames, tcp):
    readings, fs = mb.decode_batch(frames, requests=REQ, map=mb.SDM630, tcp=tcp)
    assert len(fs) == len(frames)
    assert int(fs["count"].sum()) == len(readings)
    mode = {False: "rtu", True: "tcp", "auto": "auto"}[tcp]
    for j, f in enumerate(frames):
        status, _, offset, vals = ref.decode(f, REF_REQ, REF_ENTRIES, mode)
        assert (fs["status"][j], fs["offset"][j]) == (status, offset)
        try:
            mb.decode(f, request=REQ, map=mb.SDM630, tcp=tcp)
        except FrameError as exc:
            assert exc.status == status


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=40))
def test_random_bytes_with_valid_crc(body):
    """Random PDUs with a correct CRC reach the PDU checks."""
    f = body + mb.crc16_modbus(body).to_bytes(2, "little") if body else body
    status, offset = _single(f, False)
    assert (status, offset) == _expect(f, False)[:2]


def test_random_requests_parse_raises_only_frame_errors():
    rng = np.random.default_rng(7)
    for _ in range(3000):
        f = rng.integers(0, 256, rng.integers(0, 30), dtype=np.uint8).tobytes()
        for direction in ("request", "response"):
            for tcp in (False, True, "auto"):
                try:
                    mb.parse_frame(f, direction=direction, tcp=tcp)
                except FrameError:
                    pass


def test_offsets_edited_after_batch_construction():
    good = GOOD[False]
    data = np.frombuffer(good * 4, dtype=np.uint8)
    offsets = np.arange(0, len(data) + 1, len(good), dtype=np.int64)
    batch = FrameBatch.from_buffer(data, offsets)       # int64 offsets are used without a copy
    offsets[1] = 10 ** 9        # frame 0 ends past the buffer, frame 1 starts past it
    offsets[3] = -5             # frame 2 ends before it starts, frame 3 starts negative
    readings, fs = mb.decode_batch(batch, requests=REQ, map=mb.SDM630)
    assert fs["status"].tolist() == [FrameStatus.BAD_LENGTH] * 4
    assert len(readings) == 0
    offsets[:] = np.arange(0, len(data) + 1, len(good))
    offsets[2] = offsets[2] - 3  # frame 1 three bytes short, frame 2 three bytes long
    readings, fs = mb.decode_batch(batch, requests=REQ, map=mb.SDM630)
    assert fs["status"].tolist() == [FrameStatus.OK, FrameStatus.TRUNCATED, FrameStatus.CHECKSUM, FrameStatus.OK]
    assert len(readings) == 40


def test_hostile_requests_arrays():
    """Out-of-range request records built by hand do not read past the frame."""
    good = GOOD[False]
    reqs = np.zeros(3, dtype=mb.REQUEST_DTYPE)
    reqs["transaction"] = -1
    reqs["unit"] = 1
    reqs["function"] = 4
    reqs["start"] = [0xFFFF, 0xFFF0, 0]
    reqs["count"] = [40, 40, 40]
    readings, fs = mb.decode_batch([good] * 3, requests=reqs, map=mb.SDM630)
    assert fs["status"].tolist() == [FrameStatus.NO_DATA, FrameStatus.NO_DATA, FrameStatus.OK]
    # a holding-register read at the top of the address space must not pick input-register entries
    holding = mb.encode_read_response(1, 3, list(range(40)))
    reqs["function"] = 3
    readings, fs = mb.decode_batch([holding] * 3, requests=reqs, map=mb.SDM630)
    assert fs["status"].tolist() == [FrameStatus.NO_DATA] * 3 and len(readings) == 0


def test_big_hostile_batch_is_fast():
    rng = np.random.default_rng(3)
    good = GOOD[False]
    frames = []
    for i in range(20000):
        b = bytearray(good)
        k = rng.integers(0, 4)
        if k == 1:
            b = b[:rng.integers(0, len(b))]
        elif k == 2:
            b[rng.integers(0, len(b))] ^= 0xFF
        elif k == 3:
            b = rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes()
        frames.append(bytes(b))
    t = time.perf_counter()
    readings, fs = mb.decode_batch(frames, requests=REQ, map=mb.SDM630)
    assert time.perf_counter() - t < 5
    ok = fs["status"] == FrameStatus.OK
    assert int(fs["count"][ok].sum()) == len(readings) == 20 * int(ok.sum())
