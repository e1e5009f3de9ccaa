"""A pooled connection for a request, with the configured acquire timeout (when the
pool is exhausted for that long the request gets a 503, see api/errors.py)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from sanic import Request

from db.pool import acquire


def connection(request: Request) -> AbstractAsyncContextManager[Any]:
    """`async with connection(request) as conn:`; a request cancelled inside the block
    (its client went away) leaves the connection resynced (db/pool.py: `resync`)."""
    return acquire(request.app.ctx.pool, acquire_timeout=request.app.config.DB_ACQUIRE_TIMEOUT)
