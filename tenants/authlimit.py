"""Failed authentications per client IP: a per-worker GCRA in memory.

A credential that is not ours (a random, well-formed key; a forged token) costs a
database lookup each, and nothing limited how many a client could send (60 random
keys through the edge: 60 answers of 401 at ~330 req/s). Each failure spends from
the client's allowance (`burst` at once, then `rate` per second); a client past it
gets 429 with `Retry-After` before any lookup, for valid credentials too, until its
allowance refills.

In memory, not in Redis: the check runs before every authenticated request, and a
Redis round trip there would tax every partner request to stop a few bad ones. The
price is that each API worker keeps its own allowance (W workers let W x burst
failures through at first). The table is bounded: past `max_clients` entries, the
ones that refilled are dropped, then the oldest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class FailureLimiter:
    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1, burst)
        self.interval = 1.0 / rate
        self.tolerance = self.interval * self.burst
        self.max_clients = max(1, max_clients)
        self.clock = clock
        # Theoretical arrival time of each client's next failure.
        self._tat: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._tat)

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again (0: it may now)."""
        tat = self._tat.get(client)
        if tat is None:
            return 0.0
        now = self.clock()
        wait = max(tat, now) + self.interval - self.tolerance - now
        return wait if wait > 0 else 0.0

    def failed(self, client: str) -> None:
        now = self.clock()
        tat = self._tat.pop(client, None)
        if tat is None and len(self._tat) >= self.max_clients:
            self._make_room(now)
        self._tat[client] = max(tat or now, now) + self.interval

    def retry_after_header(self, client: str) -> str:
        return str(max(1, math.ceil(self.retry_after(client))))

    def _make_room(self, now: float) -> None:
        for client in [c for c, tat in self._tat.items() if tat <= now]:
            del self._tat[client]
        while len(self._tat) >= self.max_clients:
            del self._tat[next(iter(self._tat))]  # insertion order: the oldest first


def setup_failure_limiter(app: object) -> None:
    """`app.ctx.auth_failures` from AUTH_FAILURE_RATE/_BURST (None when the rate is 0)."""
    cfg = app.config  # type: ignore[attr-defined]
    rate = float(cfg.AUTH_FAILURE_RATE)
    app.ctx.auth_failures = (  # type: ignore[attr-defined]
        FailureLimiter(rate=rate, burst=int(cfg.AUTH_FAILURE_BURST)) if rate > 0 else None
    )
