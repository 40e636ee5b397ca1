"""FrameBatch: construction, zero-copy wrapping, validation, growth, views and slicing."""
import pickle
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import meterpoll
from meterpoll import FrameBatch


def test_from_frames_layout():
    b = FrameBatch.from_frames([b"ab", b"", b"cde"])
    assert len(b) == 3
    assert b.offsets.tolist() == [0, 2, 2, 5]
    assert b.data.tobytes() == b"abcde"
    assert b.lengths.tolist() == [2, 0, 3]
    assert b.nbytes == 5
    assert list(b) == [b"ab", b"", b"cde"]
    assert b[0] == b"ab" and b[-1] == b"cde" and b[1] == b""
    assert b.data.dtype == np.uint8 and b.offsets.dtype == np.int64


def test_from_frames_accepts_any_buffer_and_generators():
    frames = [bytearray(b"x"), memoryview(b"yz"), np.frombuffer(b"w", dtype=np.uint8), b"v"]
    b = FrameBatch.from_frames(f for f in frames)
    assert list(b) == [b"x", b"yz", b"w", b"v"]


def test_from_frames_rejects_non_buffers_naming_the_frame():
    with pytest.raises(TypeError, match=r"frame 1"):
        FrameBatch.from_frames([b"ok", "text"])


def test_from_buffer_does_not_copy():
    data = np.frombuffer(bytearray(b"helloworld"), dtype=np.uint8)
    b = FrameBatch.from_buffer(data, [0, 5, 10])
    assert np.shares_memory(b.data, data)
    data_w = data.base  # the bytearray: edits show through the batch
    data_w[0] = ord("j")
    assert b[0] == b"jello"


def test_from_buffer_with_bytes_and_arrow_style_offset_base():
    b = FrameBatch.from_buffer(b"xxabcdef", np.array([2, 4, 8]))
    assert list(b) == [b"ab", b"cdef"]
    assert b.nbytes == 6


@pytest.mark.parametrize(("offsets", "msg"), [
    ([0, 3, 2], r"offsets\[2\] = 2 is smaller than offsets\[1\] = 3"),
    ([-1, 2], r"offsets\[0\] = -1 is negative"),
    ([0, 11], r"offsets\[1\] = 11 is past the end of the 10-byte buffer"),
    ([11], r"offsets\[0\] = 11 is past the end"),
    ([], r"at least one entry"),
    ([[0, 1], [1, 2]], r"1-D"),
])
def test_from_buffer_validates_offsets(offsets, msg):
    with pytest.raises(ValueError, match=msg):
        FrameBatch.from_buffer(b"0123456789", offsets)


def test_from_buffer_rejects_bad_data():
    with pytest.raises(TypeError, match="bytes-like"):
        FrameBatch.from_buffer("text", [0, 1])
    with pytest.raises(TypeError, match="uint8"):
        FrameBatch.from_buffer(np.zeros(4, dtype=np.float32), [0, 1])


def test_offsets_changed_after_validation_never_read_outside():
    """The caller keeps its own offsets array: edits after construction are caught per frame."""
    offsets = np.array([0, 2, 4], dtype=np.int64)
    b = FrameBatch.from_buffer(b"abcd", offsets)
    offsets[2] = 1 << 40
    with pytest.raises(ValueError, match="frame 1 point outside the buffer"):
        meterpoll.crc16_modbus_many(b)
    with pytest.raises(ValueError, match="outside the buffer"):
        b[1]
    offsets[2] = 4
    assert meterpoll.crc16_modbus_many(b).tolist() == [meterpoll.crc16_modbus(b"ab"),
                                                      meterpoll.crc16_modbus(b"cd")]


def test_append_grows_and_keeps_old_views():
    b = FrameBatch(capacity_frames=1, capacity_bytes=1)
    views = []
    for i in range(100):
        b.append(bytes([i]) * (i % 7))
        views.append(b.data)
    assert len(b) == 100
    assert [len(f) for f in b] == [i % 7 for i in range(100)]
    assert views[10].tobytes() == b"".join(bytes([i]) * (i % 7) for i in range(11))


def test_append_to_wrapped_buffer_copies_first():
    src = bytearray(b"abcdef")
    b = FrameBatch.from_buffer(src, [1, 3, 6])
    b.append(b"XY")
    assert list(b) == [b"bc", b"def", b"XY"]
    assert b.offsets.tolist() == [0, 2, 5, 7]
    src[1] = ord("z")  # the batch owns its bytes now
    assert b[0] == b"bc"


def test_data_and_offsets_are_read_only():
    b = FrameBatch.from_frames([b"ab"])
    with pytest.raises(ValueError):
        b.data[0] = 1
    with pytest.raises(ValueError):
        b.offsets[0] = 1


def test_view_is_zero_copy_and_read_only():
    b = FrameBatch.from_frames([b"abc", b"de"])
    v = b.view(1)
    assert bytes(v) == b"de" and v.readonly
    with pytest.raises(IndexError):
        b.view(2)


def test_slicing_shares_the_buffer():
    b = FrameBatch.from_frames([b"a", b"bb", b"ccc", b"dddd"])
    s = b[1:3]
    assert list(s) == [b"bb", b"ccc"] and np.shares_memory(s.data, b.data)
    assert list(b[3:1]) == []
    with pytest.raises(ValueError):
        b[::2]


def test_index_errors():
    b = FrameBatch.from_frames([b"a"])
    with pytest.raises(IndexError):
        b[1]
    with pytest.raises(IndexError):
        b[-2]
    with pytest.raises(TypeError):
        b["x"]


def test_pickle_round_trip():
    b = FrameBatch.from_buffer(b"..abcdef", [2, 5, 8])
    c = pickle.loads(pickle.dumps(b))
    assert list(c) == list(b) and c.offsets.tolist() == [0, 3, 6]


def test_bad_capacities():
    with pytest.raises(ValueError):
        FrameBatch(capacity_frames=-1)


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(st.binary(max_size=40), max_size=60))
def test_any_frames_round_trip(frames):
    a = FrameBatch.from_frames(frames)
    b = FrameBatch()
    b.extend(frames)
    c = FrameBatch.from_buffer(a.data.copy(), a.offsets.copy())
    for batch in (a, b, c):
        assert list(batch) == frames
        assert batch.lengths.tolist() == [len(f) for f in frames]


def test_from_frames_memory_is_one_buffer():
    """1,000 frames make one data buffer and one offsets array, not 1,000 objects."""
    frames = [b"x" * 32] * 1000
    before = sys.getallocatedblocks()
    b = FrameBatch.from_frames(frames)
    assert sys.getallocatedblocks() - before < 50
    assert b.nbytes == 32000
