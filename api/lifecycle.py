"""What each API worker opens before it serves and closes after it stops, in one
place and in order: the PostgreSQL pool (db/pool.py), the response cache's Redis
(cache/), and the per-key rate limiter on that same Redis connection
(tenants/ratelimit.py). Listeners of one event run in registration order; the
after-stop ones here run in reverse order of what they close."""

from __future__ import annotations

import logging
from typing import Any

from sanic import Sanic

from cache import open_response_cache
from db.pool import close_pool, open_pool
from tenants.ratelimit import open_limiter

log = logging.getLogger("conectades.cache")


async def open_cache(app: Sanic[Any, Any]) -> None:
    """This worker's cache client; an empty REDIS_URL disables the cache (BYPASS)."""
    cfg = app.config
    cache = open_response_cache(
        str(cfg.REDIS_URL or ""),
        connect_timeout=float(cfg.CACHE_CONNECT_TIMEOUT),
        timeout=float(cfg.CACHE_TIMEOUT),
        breaker_threshold=int(cfg.CACHE_BREAKER_THRESHOLD),
        breaker_cooldown=float(cfg.CACHE_BREAKER_COOLDOWN),
    )
    app.ctx.cache = cache
    app.ctx.redis = cache.redis if cache is not None else None
    if cache is not None and not await cache.ping():
        # Fail open: serve from PostgreSQL; the breaker brings the cache back.
        log.warning("cache: Redis not reachable at startup; serving without it")


async def close_cache(app: Sanic[Any, Any]) -> None:
    cache = getattr(app.ctx, "cache", None)
    if cache is not None:
        await cache.close()
    app.ctx.cache = None
    app.ctx.redis = None


def setup_lifecycle(app: Sanic[Any, Any]) -> None:
    app.register_listener(open_pool, "before_server_start")
    app.register_listener(open_cache, "before_server_start")
    app.register_listener(open_limiter, "before_server_start")  # needs the cache's Redis
    app.register_listener(close_cache, "after_server_stop")
    app.register_listener(close_pool, "after_server_stop")
