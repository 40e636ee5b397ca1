"""Hostile input for the IEC 62056-21 / DSMR decoder: truncation at every length, bit flips,
over-long frames, random bytes, huge data sets, offsets edited after the batch was built.
The single API raises only FrameError subclasses; the batch API gives a status per frame,
agrees with the reference and keeps the good frames' readings."""
from __future__ import annotations

import random
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterpoll.bindings import iec62056_21 as iec
from meterpoll.bindings.errors import FrameError
from meterpoll.bindings.frames import FrameBatch
from meterpoll.bindings.readings import FrameStatus
from reference import iec62056_21_ref as ref
from vectors import load_vectors

VECTORS = load_vectors("iec62056_21")
RX = np.datetime64(1_700_000_000_000, "ms")
RX_MS = 1_700_000_000_000


def raw(v):
    return bytes.fromhex(v["hex"].replace(" ", ""))


def kind(v):
    return "sum7" if v["framing"] == "iec62056-21-sum7" else "xor"


def rows(arr):
    return [(int(r["meter"]), int(r["obis"]), int(r["ts"].astype(np.int64)), float(r["value"]),
             int(r["unit"]), int(r["status"])) for r in arr]


def single(b: bytes, bcc: str):
    """decode() either returns readings or raises a FrameError subclass (never anything else)."""
    try:
        return iec.decode(b, bcc=bcc, received_at=RX)
    except FrameError as e:
        assert e.status not in (0, 12)
        return e


GOOD = iec.data_block(["1.8.0(1*kWh)", "2.8.0(2*kWh)"])
BIG = iec.data_block(["1-0:%d.8.%d(%d.%03d*kWh)" % (c, e, c, e) for c in range(1, 40) for e in range(5)]
                     + ["P.01(0210114223000)(00)(15)(2)(1.5)(kW)(2.5)(kvar)"] + ["(1.0)(2.0)"] * 20)


def _batch_vs_ref(frames, bcc):
    out, fs = iec.decode_batch(frames, bcc=bcc, received_at=RX)
    want = []
    for i, b in enumerate(frames):
        rr, st_, code, off = ref.decode(b, bcc, RX_MS, i, 0)
        assert (int(fs[i]["status"]), int(fs[i]["code"]), int(fs[i]["offset"])) == (st_, code, off), (i, b)
        want += rr
    assert rows(out) == want
    return out, fs


@pytest.mark.parametrize("v", [v for v in VECTORS if len(raw(v)) > 1], ids=lambda v: v["_id"])
def test_truncation_at_every_length(v):
    b = raw(v)
    cuts = [b[:i] for i in range(len(b))]
    results = [single(c, kind(v)) for c in cuts]
    if b[:1] in (b"\x01", b"\x02") or b.startswith(b"/?"):
        # a proper prefix of a block or sign-on is never a complete message
        assert all(isinstance(r, FrameError) for r in results)
    _batch_vs_ref(cuts + [GOOD], kind(v))


def test_truncation_of_a_big_readout():
    cuts = [BIG[:i] for i in range(0, len(BIG), 7)]
    out, fs = _batch_vs_ref(cuts + [BIG], "xor")
    assert fs[-1]["status"] == FrameStatus.OK and fs[-1]["count"] > 200
    assert all(s in (FrameStatus.TRUNCATED, FrameStatus.CHECKSUM, FrameStatus.BAD_LENGTH)
               for s in fs["status"][:-1])


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["_id"])
def test_every_single_bit_flip(v):
    b = raw(v)
    flips = [b[:i] + bytes([b[i] ^ (1 << k)]) + b[i + 1:] for i in range(len(b)) for k in range(8)]
    for f in flips[:: max(1, len(flips) // 300)]:
        single(f, kind(v))
    out, fs = _batch_vs_ref(flips, kind(v))
    # a flip inside a BCC/CRC-protected message is always caught; the only flip that passes is
    # bit 7 of the BCC itself (the line carries 7 data bits, the BCC is compared on 7 bits)
    if b[:1] in (b"\x01", b"\x02") or v["framing"] == "dsmr-p1":
        orig = rows(iec.decode_batch([b], bcc=kind(v), received_at=RX)[0])
        for i in np.nonzero(fs["status"] == FrameStatus.OK)[0]:
            got = rows(out[int(fs[i]["first"]):int(fs[i]["first"]) + int(fs[i]["count"])])
            pos, bit = int(i) // 8, int(i) % 8
            if v["framing"] == "dsmr-p1":   # a hex digit of the CRC changing case only
                assert pos > b.rfind(b"!") and bit == 5
                assert int(flips[i][pos:pos + 1], 16) == int(b[pos:pos + 1], 16)
            else:
                assert (pos, bit) == (len(b) - 1, 7)
            assert [r[1:] for r in got] == [r[1:] for r in orig]


def test_over_long_and_trailing_garbage():
    for extra in (b"\x00", b"X" * 10, GOOD):
        with pytest.raises(FrameError) as e:
            iec.decode(GOOD + extra)
        assert e.value.status == FrameStatus.BAD_LENGTH
    huge = iec.data_block(["1.8.0(" + "1" * 5000 + ")", "A" * 40 + "(1)"])
    with pytest.raises(FrameError):
        iec.decode(huge)
    many = iec.data_block(["1.8.0" + "(1)" * 300, "(2)" * 5000])
    out = iec.decode(many)   # E + k runs past 255: those items are skipped, not wrapped
    assert len(out) == 256 and int(out["obis"].max() & 0xFF00) == 0xFF00
    _batch_vs_ref([GOOD + b"\x00", huge, many], "xor")


def test_random_bytes_bounded_time():
    rnd = random.Random(1234)
    alphabet = b"\x01\x02\x03\x04\x06\x15/!?()*.,;:-0123456789ABCFLPSW \r\n"
    frames = []
    for _ in range(3000):
        n = rnd.randint(0, 80)
        if rnd.random() < 0.5:
            frames.append(bytes(rnd.randrange(256) for _ in range(n)))
        else:
            frames.append(bytes(rnd.choice(alphabet) for _ in range(n)))
    t0 = time.perf_counter()
    for f in frames[:500]:
        single(f, "xor")
        single(f, "sum7")
    _batch_vs_ref(frames, "xor")
    _batch_vs_ref(frames, "none")
    assert time.perf_counter() - t0 < 30


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.sampled_from(["xor", "sum7", "none"]))
def test_hypothesis_binary(b, bcc):
    single(b, bcc)
    _batch_vs_ref([b, GOOD, b], bcc)


def test_offsets_edited_after_batch_construction():
    frames = [GOOD, GOOD, GOOD]
    data = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
    offsets = np.array([0, len(GOOD), 2 * len(GOOD), 3 * len(GOOD)], dtype=np.int64)
    batch = FrameBatch.from_buffer(data, offsets)
    offsets[1] = 10**12          # now frame 0 ends and frame 1 starts past the buffer
    out, fs = iec.decode_batch(batch, received_at=RX)
    assert list(fs["status"]) == [FrameStatus.BAD_LENGTH, FrameStatus.BAD_LENGTH, FrameStatus.OK]
    assert list(fs["count"]) == [0, 0, 2] and list(out["meter"]) == [2, 2]
    offsets[1] = -5
    offsets[3] = 1                # frame 2 now ends before it starts
    out, fs = iec.decode_batch(batch, received_at=RX)
    assert (fs["status"] == FrameStatus.BAD_LENGTH).all() and len(out) == 0


def test_bad_frames_keep_good_ones():
    bad = [GOOD[:-1], GOOD[:-1] + b"\x00", b"\x02" + b"(" * 1000 + b"\x03\x00", b"\x15", b"/", b"\x06\x30"]
    frames = [GOOD] + bad + [GOOD]
    out, fs = iec.decode_batch(frames, received_at=RX)
    assert fs[0]["status"] == FrameStatus.OK and fs[-1]["status"] == FrameStatus.OK
    assert (fs["status"][1:-1] != FrameStatus.OK).all()
    assert list(out["meter"]) == [0, 0, len(frames) - 1, len(frames) - 1]


def test_argument_errors_are_clean():
    with pytest.raises(TypeError):
        iec.decode(12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        iec.decode_batch([GOOD], meter_ids=[1, 2])
    with pytest.raises(ValueError):
        iec.decode_batch([GOOD], received_at=np.zeros(3, dtype="datetime64[ms]"))
    with pytest.raises(ValueError):
        iec.decode_batch([GOOD], meter_ids=[-1])
    out, fs = iec.decode_batch([])
    assert len(out) == 0 and len(fs) == 0
