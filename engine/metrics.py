"""Poll counters and latency histograms, per link and global, for the HTTP layer's /metrics."""
from __future__ import annotations

import bisect

__all__ = ["LinkMetrics", "LATENCY_BUCKETS"]

#: upper bounds in seconds (Prometheus ``le`` labels); the last bucket is +Inf
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LinkMetrics:
    """Counters of one link (or, summed, of the engine).  Plain ints: updated on the loop thread."""

    FIELDS = ("exchanges", "ok", "timeouts", "closed", "errors", "overflows", "checksum_errors",
              "bytes_out", "bytes_in", "flushed_bytes", "reconnects")
    __slots__ = FIELDS + ("latency_counts", "latency_sum")

    def __init__(self) -> None:
        for f in self.FIELDS:
            setattr(self, f, 0)
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def observe_latency(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def add(self, other: "LinkMetrics") -> None:
        for f in self.FIELDS:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        for i, c in enumerate(other.latency_counts):
            self.latency_counts[i] += c
        self.latency_sum += other.latency_sum

    def as_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.FIELDS}
        d["latency_buckets"] = list(zip([*LATENCY_BUCKETS, float("inf")], self.latency_counts))
        d["latency_sum"] = self.latency_sum
        return d
