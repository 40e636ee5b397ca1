"""Shared by the bench files (``from benchutil import scaled``)."""
from __future__ import annotations

import os

SCALE = float(os.environ.get("METERPOLL_BENCH_SCALE", "1.0"))


def scaled(n: int, minimum: int = 1) -> int:
    """``n`` times $METERPOLL_BENCH_SCALE (default 1), at least ``minimum``."""
    return max(minimum, int(n * SCALE))
