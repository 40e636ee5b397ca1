"""DLMS load-profile decoding against gurux_dlms and dlms-cosem, on identical bytes.

Input: HDLC GET.response-normal answers (client 16 <- server 1/17), each carrying a class 7
profile buffer of 96 rows {date-time octet-string (deviation -60), 4 x double-long-unsigned},
i.e. one day of 15-minute energy registers = 384 values.  The 3.5 kB APDU is sent in segmented
HDLC I-frames with a 512-byte maximum information field (7 frames per answer, S bit on all but
the last; CRCs computed per frame) - the way a meter that negotiated max-info 512 answers.

Cases (sizes scale with $METERPOLL_BENCH_SCALE):
  profile96        1,000 answers: ours (one decode_batch call) vs each peer as its users call it
                     gurux:      GXDLMSClient.getData() per HDLC frame into one GXReplyData, then
                                 client.updateValue(profile_generic, 2, reply.value)
                     dlms_cosem: InformationFrame.from_bytes() per frame, LLC stripped and
                                 segments joined, GetResponseNormal.from_bytes(), then
                                 ProfileGenericBufferParser(capture_objects, 15).parse_bytes()
  profile96_10k    10,000 answers, ours only (the peers need ~50 ms per answer): values/s
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import meterpoll
from benchutil import scaled
from meterpoll import FrameBatch
from meterpoll.bindings import dlms

ROWS = 96
VALUES = 4
ROW_LEN = 2 + 2 + 12 + VALUES * 5
MAX_INFO = 512
N_CMP = scaled(1_000, 10)
N_BIG = scaled(10_000, 20)
T0 = np.datetime64("2024-02-01T00:00", "ms")
COLS = [dlms.Column.clock()] + [("1.0.%d.8.0.255" % k, 0, 30) for k in (1, 2, 3, 4)]


def build_items(n: int, seed: int = 1) -> tuple[list[bytes], np.ndarray]:
    """n answers (bytes) and their values (n, 96, 4); rows laid out with numpy, frames in Python."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, ROWS, ROW_LEN), dtype=np.uint8)
    rows[:, :, 0:4] = (0x02, 1 + VALUES, 0x09, 12)
    r = np.arange(ROWS)
    rows[:, :, 4:7] = (0x07, 0xE8, 1)                                  # 2024-01
    rows[:, :, 7] = ((np.arange(n) % 28) + 1)[:, None]                 # day
    rows[:, :, 8] = 0xFF                                               # weekday not given
    rows[:, :, 9] = (r // 4)[None, :]
    rows[:, :, 10] = (15 * (r % 4))[None, :]
    rows[:, :, 11:16] = (0, 0, 0xFF, 0xC4, 0)                          # s, hs, deviation -60, status
    vals = rng.integers(0, 2 ** 32, size=(n, ROWS, VALUES), dtype=np.uint64).astype(">u4")
    for k in range(VALUES):
        rows[:, :, 16 + 5 * k] = 0x06
        rows[:, :, 17 + 5 * k:21 + 5 * k] = np.ascontiguousarray(vals[:, :, k]).view(np.uint8).reshape(n, ROWS, 4)
    head = bytes([0xC4, 0x01, 0xC1, 0x00, 0x01, ROWS])
    crc = meterpoll.crc16_x25
    items = []
    for i in range(n):
        info = b"\xE6\xE7\x00" + head + rows[i].tobytes()
        parts = [info[j:j + MAX_INFO] for j in range(0, len(info), MAX_INFO)]
        out = []
        for k, part in enumerate(parts):
            ctrl = (((k + 1) % 8) << 5) | 0x10 | ((k % 8) << 1)          # I-frame N(R)=k+1 N(S)=k
            fmt = 0xA000 | (0x0800 if k < len(parts) - 1 else 0) | (10 + len(part))
            hdr = fmt.to_bytes(2, "big") + b"\x21\x02\x23" + bytes([ctrl])
            body = hdr + crc(hdr).to_bytes(2, "little") + part
            out.append(b"\x7e" + body + crc(body).to_bytes(2, "little") + b"\x7e")
        items.append(b"".join(out))
    return items, vals


_CACHE: dict[int, tuple[list[bytes], np.ndarray]] = {}


def items_of(n: int):
    if n not in _CACHE:
        _CACHE[n] = build_items(n)
    return _CACHE[n]


def _ours(batch):
    return dlms.decode_batch(batch, columns=COLS, capture_period=900, received_at=T0)


def _check_ours(out, fs, vals):
    n = len(fs)
    assert (fs["status"] == 0).all()
    np.testing.assert_array_equal(out["value"].reshape(n, ROWS, VALUES), vals.astype(np.float64))
    first = np.datetime64("2024-01-01T00:00", "ms") - np.timedelta64(60, "m")      # deviation -60
    assert out["ts"][0] == first and out["ts"][4] == first + np.timedelta64(15, "m")


def test_profile96__ours(benchmark):
    items, vals = items_of(N_CMP)
    batch = FrameBatch.from_frames(items)
    out, fs = benchmark(_ours, batch)
    _check_ours(out, fs, vals)
    benchmark.extra_info["values_per_s_min"] = len(out) / benchmark.stats.stats.min


def test_profile96_10k__ours(benchmark):
    items, vals = items_of(N_BIG)
    batch = FrameBatch.from_frames(items)
    out, fs = benchmark.pedantic(_ours, args=(batch,), rounds=5, iterations=1, warmup_rounds=1)
    _check_ours(out, fs, vals)
    rate = len(out) / benchmark.stats.stats.min
    benchmark.extra_info["values_per_s_min"] = rate
    print("\nprofile96_10k: %d values, %.1f M values/s (best of 5)" % (len(out), rate / 1e6))


def test_profile96__gurux(benchmark):
    from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
    from gurux_dlms.objects import GXDLMSCaptureObject, GXDLMSClock, GXDLMSProfileGeneric, GXDLMSRegister
    items, vals = items_of(N_CMP)
    client = GXDLMSClient(True)
    client.serverAddress = GXDLMSClient.getServerAddress(1, 17)
    pg = GXDLMSProfileGeneric("1.0.99.1.0.255")
    pg.captureObjects.append((GXDLMSClock(), GXDLMSCaptureObject(2, 0)))
    for k in (1, 2, 3, 4):
        pg.captureObjects.append((GXDLMSRegister("1.0.%d.8.0.255" % k), GXDLMSCaptureObject(2, 0)))
    frames = [[it[s:e] for s, e in dlms.split_frames(it)[0]] for it in items]   # as read from the port

    def run():
        rows = []
        for fr in frames:
            client.settings.resetFrameSequence()
            reply = GXReplyData()
            for f in fr:
                client.getData(GXByteBuffer(f), reply, None)
            pg.buffer = []                       # updateValue appends to the profile's buffer
            client.updateValue(pg, 2, reply.value)
            rows.append(pg.buffer)
        return rows

    rows = benchmark.pedantic(run, rounds=1, iterations=1)
    assert [list(r[1:]) for r in rows[-1]] == vals[-1].astype(int).tolist()


def test_profile96__dlms_cosem(benchmark):
    from dlms_cosem import cosem, enumerations as E
    from dlms_cosem.hdlc import frames as HF
    from dlms_cosem.parsers import ProfileGenericBufferParser
    from dlms_cosem.protocol.xdlms.get import GetResponseNormal
    items, vals = items_of(N_CMP)
    co = [cosem.CosemAttribute(E.CosemInterface.CLOCK, cosem.Obis(0, 0, 1, 0, 0, 255), 2)] + [
        cosem.CosemAttribute(E.CosemInterface.REGISTER, cosem.Obis(1, 0, k, 8, 0, 255), 2) for k in (1, 2, 3, 4)]
    parser = ProfileGenericBufferParser(co, 15)
    frames = [[it[s:e] for s, e in dlms.split_frames(it)[0]] for it in items]

    def run():
        out = []
        for fr in frames:
            apdu = b"".join(HF.InformationFrame.from_bytes(f).payload for f in fr)[3:]
            out.append(parser.parse_bytes(GetResponseNormal.from_bytes(apdu).data))
        return out

    out = benchmark.pedantic(run, rounds=1, iterations=1)
    assert [c.value for c in out[-1][-1][1:]] == vals[-1][-1].astype(int).tolist()
    t = out[0][0][0].value
    assert t.astimezone(dt.timezone.utc).replace(tzinfo=None) == dt.datetime(2023, 12, 31, 23, 0)
