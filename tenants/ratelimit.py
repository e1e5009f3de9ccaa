"""Per-credential rate limits for the partner API: GCRA in one Lua script in Redis.

GCRA keeps one timestamp per credential (the "theoretical arrival time"), so a
check is one round trip and O(1) memory, and bursts up to `burst` requests are
allowed on top of the steady `rate`. Redis' own clock is used, so every worker
agrees. When Redis cannot answer, the limiter fails open (the request passes) and
says so in the log at most once a minute: limits protect the service, they must
not take it down.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from uuid import UUID

from cache.breaker import Unavailable
from cache.redisio import BoundedRedis

log = logging.getLogger("conectades.ratelimit")

# KEYS[1] the credential's key; ARGV[1] emission interval (ms per request),
# ARGV[2] burst tolerance (ms). Returns {allowed, retry_after_ms, reset_ms}.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - tolerance > now then
  return {0, new_tat - tolerance - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return {1, 0, new_tat - now}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until the full burst is available again
    retry_after: float  # seconds; 0 when allowed

    def headers(self) -> dict[str, str]:
        """IETF draft `RateLimit-*` fields (and `Retry-After` when refused)."""
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset)),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out


class RateLimiter:
    def __init__(self, redis: BoundedRedis, *, rate: float, burst: int) -> None:
        self.redis = redis
        self.rate = rate
        self.burst = max(1, burst)
        self.interval_ms = 1000.0 / rate
        self.tolerance_ms = self.interval_ms * self.burst
        self._warned_at = -math.inf

    async def check(self, subject: UUID) -> Decision | None:
        """The decision for one request of `subject`; None when Redis is unavailable."""
        try:
            allowed, retry_ms, reset_ms = await self.redis.run_script(
                "ratelimit",
                GCRA_LUA,
                [f"cx:rl:{subject}"],
                repr(self.interval_ms),
                repr(self.tolerance_ms),
            )
        except Unavailable:
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                log.warning("rate limiter: Redis unavailable, failing open")
            return None
        used = math.ceil(float(reset_ms) / self.interval_ms)
        return Decision(
            allowed=bool(allowed),
            limit=self.burst,
            remaining=max(0, self.burst - used),
            reset=float(reset_ms) / 1000.0,
            retry_after=float(retry_ms) / 1000.0,
        )


async def open_limiter(app: object) -> None:
    """After the cache opened: a limiter on its Redis I/O (same connection and
    breaker), unless disabled (rate 0)."""
    ctx = app.ctx  # type: ignore[attr-defined]
    cfg = app.config  # type: ignore[attr-defined]
    rate = float(cfg.RATE_LIMIT_RATE or 0)
    cache = getattr(ctx, "cache", None)
    ctx.ratelimit = (
        RateLimiter(cache.io, rate=rate, burst=int(cfg.RATE_LIMIT_BURST))
        if cache is not None and rate > 0
        else None
    )
