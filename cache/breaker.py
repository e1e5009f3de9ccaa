"""The circuit breaker in front of Redis (cache/redisio.py's `BoundedRedis`): after
`threshold` consecutive failures Redis is not called for `cooldown` seconds
(callers fail open: `Unavailable`), then one probe call is let through (half-open)
and its success closes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal


class CircuitBreaker:
    """closed → (threshold consecutive failures) → open → (cooldown) → half-open:
    one probe; its success closes, its failure reopens. Single event loop: no locks."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at < self.cooldown:
            return "open"
        return "half-open"

    def allow(self) -> bool:
        if self.opened_at is None:  # closed: the hot path, no clock read
            return True
        if self.state == "open" or self.probing:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failure(self) -> bool:
        """Record a failure; True when it opened (or reopened) the breaker."""
        was_probe = self.probing
        self.probing = False
        self.failures += 1
        if was_probe or (self.opened_at is None and self.failures >= self.threshold):
            self.opened_at = self.clock()
            return True
        return False

    def release(self) -> None:
        """A call was cancelled: neither success nor failure, free the probe slot."""
        self.probing = False


class Unavailable(Exception):
    """Redis was not called (open breaker) or failed within the timeout."""

    def __init__(self, reason: Literal["open", "error"]) -> None:
        super().__init__(reason)
        self.reason = reason
