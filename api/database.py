"""A pooled connection for a request, with the configured acquire timeout (when the
pool is exhausted for that long the request gets a 503, see api/errors.py)."""

from __future__ import annotations

from typing import Any

from sanic import Request


def connection(request: Request) -> Any:
    """`async with connection(request) as conn:` (asyncpg's PoolAcquireContext)."""
    return request.app.ctx.pool.acquire(timeout=request.app.config.DB_ACQUIRE_TIMEOUT)
