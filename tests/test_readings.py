"""The shared reading format: dtype layouts, OBIS packing, native buffer hand-over."""
import gc

import numpy as np
import pytest
from hypothesis import given, strategies as st

import meterpoll
from meterpoll.ext import _readings


def test_reading_dtype_matches_the_c_struct():
    size, fields = _readings.c_layouts()["reading"]
    dt = meterpoll.READING_DTYPE
    assert dt.itemsize == size
    assert {k: v[1] for k, v in dt.fields.items()} == fields
    assert dt["ts"] == np.dtype("datetime64[ms]")
    assert dt["obis"] == np.uint64 and dt["value"] == np.float64


def test_frame_status_dtype_matches_the_c_struct():
    size, fields = _readings.c_layouts()["frame_status"]
    dt = meterpoll.FRAME_STATUS_DTYPE
    assert dt.itemsize == size
    assert {k: v[1] for k, v in dt.fields.items()} == fields


@pytest.mark.parametrize(("text", "packed"), [
    ("1.0.1.8.0.255", 0x0100010800FF),
    ("1-0:1.8.0*255", 0x0100010800FF),
    ("1-0:32.7.0", 0x0100200700FF),
    ("0.0.1.0.0.255", 0x0000010000FF),
    ("8.0.1.0.0.255", 0x0800010000FF),
])
def test_obis_forms(text, packed):
    assert meterpoll.obis(text) == packed
    assert meterpoll.obis(meterpoll.obis_str(packed)) == packed


def test_obis_from_bytes_and_tuple():
    assert meterpoll.obis(bytes([1, 0, 1, 8, 0, 255])) == meterpoll.obis((1, 0, 1, 8, 0, 255))


@pytest.mark.parametrize("bad", ["1.0.1.8.0", "1.0.1.8.0.256", "a.b.c.d.e.f", "", (1, 2, 3),
                                 b"\x01\x02", (1, 0, 1, 8, 0, -1)])
def test_obis_rejects(bad):
    with pytest.raises(ValueError):
        meterpoll.obis(bad)


def test_obis_str_rejects_out_of_range():
    with pytest.raises(ValueError):
        meterpoll.obis_str(1 << 48)
    with pytest.raises(ValueError):
        meterpoll.obis_str(-1)


@given(st.tuples(*[st.integers(0, 255)] * 6))
def test_obis_round_trip(groups):
    packed = meterpoll.obis(groups)
    assert 0 <= packed < 1 << 48
    assert meterpoll.obis_str(packed) == ".".join(map(str, groups))


def test_native_buffer_hand_over_grows_and_frees():
    a = _readings._synthetic(100_000, 1)
    assert a.dtype == meterpoll.READING_DTYPE and len(a) == 100_000
    assert a["meter"][-1] == 99_999 and a["value"][-1] == 99_999 / 2
    assert a.flags.owndata is False and a.base is not None  # owned by the capsule
    assert a.flags.writeable
    del a
    gc.collect()
    assert len(_readings._synthetic(0)) == 0


def test_enums_are_stable():
    assert meterpoll.FrameStatus.OK == 0 and meterpoll.FrameStatus.CHECKSUM == 1
    assert meterpoll.Quality.OK == 0 and meterpoll.Quality.TIMEOUT == 1
    assert meterpoll.Unit.WATT_HOUR == 30 and meterpoll.Unit.VOLT == 35 and meterpoll.Unit.COUNT == 255


def test_error_hierarchy():
    e = meterpoll.ChecksumError("crc", 5)
    assert isinstance(e, meterpoll.FrameError) and isinstance(e, ValueError)
    assert isinstance(e, meterpoll.MeterpollError)
    assert e.offset == 5 and e.status == meterpoll.FrameStatus.CHECKSUM
    p = meterpoll.ProtocolExceptionError("illegal data address", 2, code=2)
    assert p.code == 2 and p.status == meterpoll.FrameStatus.PROTOCOL_EXCEPTION


def test_received_ms_is_one_contract_for_every_decoder():
    import datetime as dt

    from meterpoll.bindings.readings import received_ms

    t = np.datetime64("2026-11-22T01:02:03.456", "ms")
    want = int(t.astype(np.int64))
    assert received_ms(t, 3).tolist() == [want]
    assert received_ms(want, 3).tolist() == [want]
    assert received_ms(dt.datetime(2026, 11, 22, 1, 2, 3, 456000), 3).tolist() == [want]
    aware = dt.datetime(2026, 11, 22, 2, 2, 3, 456000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert received_ms(aware, 3).tolist() == [want]
    per = received_ms(np.array([t, t + 1, t + 2]), 3)
    assert per.dtype == np.int64 and per.tolist() == [want, want + 1, want + 2]
    now = received_ms(None, 5)
    assert now.shape == (1,) and abs(int(now[0]) - int(np.datetime64("now", "ms").astype(np.int64))) < 5000
    with pytest.raises(ValueError, match="one per frame"):
        received_ms(np.array([t, t]), 3)
    with pytest.raises(TypeError, match="received_at"):
        received_ms([1.5], 1)
    with pytest.raises(TypeError):
        received_ms("yesterday", 1)
