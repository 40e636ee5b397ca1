"""Checksum kernels: check values, the shared real-world vectors, every code path against a
bit-at-a-time reference, buffer types and bad arguments."""
import array
import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import meterpoll
from meterpoll.ext import _crc
from reference import checksums_ref as ref
from vectors import load_vectors

SINGLE = {
    "crc16_modbus": (meterpoll.crc16_modbus, ref.crc16_modbus),
    "crc16_x25": (meterpoll.crc16_x25, ref.crc16_x25),
    "crc16_arc": (meterpoll.crc16_arc, ref.crc16_arc),
    "mbus_checksum": (meterpoll.mbus_checksum, ref.mbus_checksum),
    "bcc": (meterpoll.bcc, ref.bcc),
    "bcc_sum7": (meterpoll.bcc_sum7, ref.bcc_sum7),
}
MANY = {
    "crc16_modbus": meterpoll.crc16_modbus_many,
    "crc16_x25": meterpoll.crc16_x25_many,
    "crc16_arc": meterpoll.crc16_arc_many,
    "mbus_checksum": meterpoll.mbus_checksum_many,
    "bcc": meterpoll.bcc_many,
    "bcc_sum7": meterpoll.bcc_sum7_many,
}
PATHS = ["auto", "pclmulqdq", "slicing-by-8"]


@pytest.fixture(params=PATHS)
def crc_path(request):
    """Runs a test once per CRC implementation path this CPU supports (restored afterwards)."""
    if request.param == "pclmulqdq" and _crc._force_path("auto") == "slicing-by-8":
        pytest.skip("CPU has no PCLMULQDQ")
    used = _crc._force_path(request.param)
    try:
        yield used
    finally:
        _crc._force_path("auto")


@pytest.mark.parametrize(("name", "want"), [
    ("crc16_modbus", 0x4B37), ("crc16_x25", 0x906E), ("crc16_arc", 0xBB3D),
    ("mbus_checksum", 0xDD), ("bcc", 0x31), ("bcc_sum7", 0x5D),
])
def test_check_values(name, want, crc_path):
    assert SINGLE[name][0](b"123456789") == want
    assert MANY[name]([b"123456789"]).tolist() == [want]


def test_accelerator_is_reported():
    assert meterpoll.crc_accelerator() in ("vpclmulqdq-512", "pclmulqdq", "slicing-by-8")


def test_residues():
    """A frame followed by its own CRC (low byte first) checks to the standard residues."""
    frame = b"\x01\x04\x00\x00\x00\x02"
    c = meterpoll.crc16_modbus(frame)
    assert meterpoll.crc16_modbus(frame + bytes([c & 0xFF, c >> 8])) == 0
    c = meterpoll.crc16_x25(frame)
    assert meterpoll.crc16_x25(frame + bytes([c & 0xFF, c >> 8])) == 0xF0B8 ^ 0xFFFF


# ---- the real frames under ../shared/protocols/vectors ----

def _hdlc_check(f: bytes):
    """(HCS ok, FCS ok) of an HDLC frame, addresses walked by their extension bits."""
    pos = 3
    for _ in range(2):
        while not f[pos] & 1:
            pos += 1
        pos += 1
    ctrl_end = pos + 1
    fcs_ok = meterpoll.crc16_x25(f[1:-3]) == (f[-3] | f[-2] << 8)
    hcs_ok = True
    if len(f) - 1 > ctrl_end + 2:
        hcs_ok = meterpoll.crc16_x25(f[1:ctrl_end]) == (f[ctrl_end] | f[ctrl_end + 1] << 8)
    return hcs_ok, fcs_ok


def _iec_block(f: bytes):
    s = next(i for i, b in enumerate(f) if b in (1, 2))
    return f[s + 1:-1], f[-1]


def _has_checksum(v) -> bool:
    f = bytes.fromhex(v["hex"])
    framing = v.get("framing")
    if framing in ("wrapper", "apdu", "modbus-tcp", "single"):
        return False  # length-delimited or bare: nothing to check
    if framing in ("iec62056-21", "iec62056-21-sum7"):
        # sign-on, identification, ACK and bare data lines carry no BCC
        return any(b in (1, 2) for b in f) and f[-2] in (3, 4)
    return True


ALL = [v for name in ("dlms", "mercury", "modbus", "mbus", "iec62056_21") for v in load_vectors(name)]
CHECKED = [pytest.param(v, id=v["_id"]) for v in ALL if _has_checksum(v)]


@pytest.mark.parametrize("vec", CHECKED)
def test_shared_vector_checksums(vec, crc_path):
    f = bytes.fromhex(vec["hex"])
    framing = vec.get("framing")
    if framing == "hdlc":
        assert _hdlc_check(f) == (True, True)
        assert meterpoll.crc16_x25_many([f[1:-1]]).tolist() == [0xF0B8 ^ 0xFFFF]
    elif framing in ("mercury", "modbus-rtu"):
        assert meterpoll.crc16_modbus(f[:-2]) == f[-2] | f[-1] << 8
        assert meterpoll.crc16_modbus(f) == 0
    elif framing in ("long", "mbus") and f[0] == 0x68:
        assert meterpoll.mbus_checksum(f[4:-2]) == f[-2]
    elif framing == "short":
        assert meterpoll.mbus_checksum(f[1:3]) == f[3]
    elif framing == "iec62056-21":
        body, rx = _iec_block(f)
        assert meterpoll.bcc(body) & 0x7F == rx & 0x7F
    elif framing == "iec62056-21-sum7":
        body, rx = _iec_block(f)
        assert meterpoll.bcc_sum7(body) == rx & 0x7F
    elif framing == "dsmr-p1":
        i = f.rindex(b"!")
        assert meterpoll.crc16_arc(f[f.index(b"/"):i + 1]) == int(f[i + 1:i + 5], 16)
    else:
        pytest.fail("vector %s has an unknown framing %r" % (vec["_id"], framing))


def test_vector_selection_is_not_empty_or_one_sided():
    """Most vectors carry a checksum; every checksum family occurs."""
    framings = [p.values[0].get("framing") for p in CHECKED]
    assert len(CHECKED) >= 100
    assert {"hdlc", "mercury", "modbus-rtu", "iec62056-21", "iec62056-21-sum7", "dsmr-p1"} <= set(framings)
    assert any(f in ("long", "mbus") for f in framings) and "short" in framings


# ---- properties against the reference ----

@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2100))
def test_single_matches_reference(data):
    for path in PATHS:
        _crc._force_path(path)
        for name, (fast, slow) in SINGLE.items():
            assert fast(data) == slow(data), (name, path, len(data))
    _crc._force_path("auto")


@pytest.mark.parametrize("length", [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 127, 128,
                                    255, 256, 257, 1023, 1024, 1025, 4095, 4097, 70001])
def test_lengths_around_path_boundaries(length, crc_path):
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    for name, (fast, slow) in SINGLE.items():
        assert fast(data) == slow(data), name


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=12))
def test_batch_matches_single_for_any_split(data, cuts):
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    frames = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    offsets = np.array(bounds if len(bounds) > 1 else [0, 0], dtype=np.int64)
    if len(bounds) == 1:
        frames = [b""]
    batch = meterpoll.FrameBatch.from_buffer(data, offsets)
    for path in PATHS:
        _crc._force_path(path)
        for name, many in MANY.items():
            got = many(batch).tolist()
            assert got == [SINGLE[name][1](f) for f in frames], (name, path)
    _crc._force_path("auto")


def test_batch_of_mixed_lengths(crc_path):
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in rng.integers(0, 3000, 400)]
    batch = meterpoll.FrameBatch.from_frames(frames)
    for name, many in MANY.items():
        out = many(batch)
        assert out.dtype == (np.uint16 if name.startswith("crc") else np.uint8)
        assert out.tolist() == [SINGLE[name][0](f) for f in frames]


def test_batch_accepts_a_list_and_empty_input():
    assert meterpoll.crc16_modbus_many([]).shape == (0,)
    assert meterpoll.crc16_modbus_many([b"123456789", b""]).tolist() == [0x4B37, 0xFFFF]


# ---- buffer types, no copies, bad arguments ----

@pytest.mark.parametrize("make", [
    bytes, bytearray, memoryview,
    lambda b: np.frombuffer(b, dtype=np.uint8),
    lambda b: array.array("B", b),
    lambda b: memoryview(b"xx" + b)[2:],
])
def test_buffer_types(make):
    assert meterpoll.crc16_modbus(make(b"123456789")) == 0x4B37
    assert meterpoll.crc16_x25(make(b"123456789")) == 0x906E


def test_numpy_other_dtype_is_its_raw_bytes():
    a = np.arange(10, dtype=np.uint16)
    assert meterpoll.crc16_modbus(a) == meterpoll.crc16_modbus(a.tobytes())


@pytest.mark.parametrize("bad", ["123456789", 12345, None, [1, 2, 3], 1.5, object()])
@pytest.mark.parametrize("name", sorted(SINGLE))
def test_non_buffer_raises_type_error(name, bad):
    with pytest.raises(TypeError, match=name + r"\(\) argument must be a bytes-like object"):
        SINGLE[name][0](bad)


def test_non_contiguous_raises_type_error():
    a = np.arange(20, dtype=np.uint8)[::2]
    with pytest.raises(TypeError, match="C-contiguous"):
        meterpoll.crc16_modbus(a)


def test_many_rejects_non_frames():
    with pytest.raises(TypeError, match="FrameBatch or an iterable"):
        meterpoll.crc16_x25_many([b"ok", "not bytes"])
    with pytest.raises(TypeError):
        meterpoll.crc16_x25_many(42)


def test_keyword_arguments_are_refused():
    with pytest.raises(TypeError):
        meterpoll.crc16_modbus(data=b"1")  # positional only, like zlib.crc32


def test_large_buffers_release_the_gil():
    """Two threads checksumming 64 MiB each finish without one waiting for the other's GIL
    (both complete, results equal); a hang or crash here would mean the nogil block is wrong."""
    big = np.random.default_rng(1).integers(0, 256, 16 << 20, dtype=np.uint8)
    want = meterpoll.crc16_x25(big)
    results = []
    threads = [threading.Thread(target=lambda: results.append(meterpoll.crc16_x25(big))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [want, want]
