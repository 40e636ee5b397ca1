"""The ``meterpoll`` command line.

``meterpoll demo`` is the main job a newcomer runs.  Until the polling engine lands it is the
native-core self-check: the checksum table (check values of every kernel against the standard
catalogue), the real protocol frames under ``shared/protocols/vectors`` verified if present, and
one batch throughput figure.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

import meterpoll

# (name, function, batch function, catalogue check value of b"123456789")
KERNELS = [
    ("CRC-16/MODBUS", meterpoll.crc16_modbus, meterpoll.crc16_modbus_many, 0x4B37),
    ("CRC-16/X-25", meterpoll.crc16_x25, meterpoll.crc16_x25_many, 0x906E),
    ("CRC-16/ARC", meterpoll.crc16_arc, meterpoll.crc16_arc_many, 0xBB3D),
    ("M-Bus sum mod 256", meterpoll.mbus_checksum, meterpoll.mbus_checksum_many, 0xDD),
    ("IEC 62056-21 BCC (XOR)", meterpoll.bcc, meterpoll.bcc_many, 0x31),
    ("Energomera BCC (sum mod 128)", meterpoll.bcc_sum7, meterpoll.bcc_sum7_many, 0x5D),
]


def _vector_dir() -> pathlib.Path | None:
    env = os.environ.get("METERPOLL_SHARED")
    candidates = [pathlib.Path(env)] if env else []
    candidates += [pathlib.Path.cwd().parent / "shared", pathlib.Path.cwd() / "shared"]
    for c in candidates:
        d = c / "protocols" / "vectors"
        if d.is_dir():
            return d
    return None


def _verify_vectors(out) -> bool:
    d = _vector_dir()
    if d is None:
        print("protocol vectors: not found (set METERPOLL_SHARED to the shared/ folder)", file=out)
        return True
    ok = bad = 0
    for path in sorted(d.glob("*.json")):
        for v in json.loads(path.read_text(encoding="utf-8")):
            f = bytes.fromhex(v["hex"])
            framing = v.get("framing")
            if framing in ("mercury", "modbus-rtu"):
                good = meterpoll.crc16_modbus(f) == 0
            elif framing == "hdlc":
                good = meterpoll.crc16_x25(f[1:-1]) == 0x0F47
            elif framing in ("long", "mbus") and f[:1] == b"\x68":
                good = meterpoll.mbus_checksum(f[4:-2]) == f[-2]
            elif framing == "short":
                good = meterpoll.mbus_checksum(f[1:3]) == f[3]
            else:
                continue
            ok += good
            bad += not good
    print("protocol vectors: %d frames with CRC/sum checked, %d failed (%s)" % (ok + bad, bad, d), file=out)
    return bad == 0


def selfcheck(frames: int = 1_000_000, size: int = 32, out=sys.stdout) -> int:
    print("meterpoll %s native core self-check" % meterpoll.__version__, file=out)
    print("CRC path for long buffers: %s" % meterpoll.crc_accelerator(), file=out)
    print("%-30s %-8s %-8s %s" % ("check", "got", "want", ""), file=out)
    failures = 0
    for name, fn, _many, want in KERNELS:
        got = fn(b"123456789")
        failures += got != want
        print("%-30s 0x%04X   0x%04X   %s" % (name, got, want, "ok" if got == want else "WRONG"), file=out)
    if not _verify_vectors(out):
        failures += 1
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, frames * size, dtype=np.uint8)
    batch = meterpoll.FrameBatch.from_buffer(data, np.arange(0, frames * size + 1, size, dtype=np.int64))
    for name, _fn, many, _want in KERNELS[:2]:
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            many(batch)
            best = min(best, time.perf_counter() - t)
        print("%s batch: %d frames of %d bytes in %.2f ms (%.0f M frames/s, %.2f GB/s)"
              % (name, frames, size, best * 1e3, frames / best / 1e6, frames * size / best / 1e9), file=out)
    print("self-check %s" % ("passed" if failures == 0 else "FAILED"), file=out)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meterpoll", description="meter head-end engine")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the main job: for now, the native-core self-check")
    demo.add_argument("--frames", type=int, default=1_000_000, help="frames in the throughput batch")
    sc = sub.add_parser("selfcheck", help="checksum table, shared vectors, batch throughput")
    sc.add_argument("--frames", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    if args.frames <= 0:
        parser.error("--frames must be positive")
    return selfcheck(frames=args.frames)


if __name__ == "__main__":
    sys.exit(main())
