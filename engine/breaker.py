"""Circuit breaker per meter: after ``threshold`` consecutive failed polls the meter is demoted
and only probed every ``probe_interval`` seconds instead of taxing every cycle; one success
promotes it back."""
from __future__ import annotations

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    __slots__ = ("threshold", "probe_interval", "failures", "demoted_at", "last_probe")

    def __init__(self, threshold: int = 3, probe_interval: float = 600.0) -> None:
        if threshold < 1 or probe_interval <= 0:
            raise ValueError("threshold must be >= 1 and probe_interval > 0")
        self.threshold = threshold
        self.probe_interval = probe_interval
        self.failures = 0
        self.demoted_at: float | None = None
        self.last_probe = 0.0

    @property
    def demoted(self) -> bool:
        return self.demoted_at is not None

    def allow(self, now: float) -> bool:
        """May the meter be polled at ``now`` (monotonic seconds)?  A demoted meter is allowed
        one probe per probe_interval."""
        if self.demoted_at is None:
            return True
        if now - self.last_probe >= self.probe_interval:
            self.last_probe = now
            return True
        return False

    def record(self, ok: bool, now: float) -> None:
        if ok:
            self.failures = 0
            self.demoted_at = None
            return
        self.failures += 1
        if self.demoted_at is None and self.failures >= self.threshold:
            self.demoted_at = now
            self.last_probe = now
