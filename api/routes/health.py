"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from sanic import Blueprint, HTTPResponse, Request

from api.responses import json_response

bp = Blueprint("health")


@bp.get("/health")
async def get_health(request: Request) -> HTTPResponse:
    """Liveness: the worker answers."""
    return json_response({"status": "ok"})


@bp.get("/health/ready")
async def get_readiness(request: Request) -> HTTPResponse:
    """Readiness: PostgreSQL answers within a second (Redis is reported, not required)."""
    checks: dict[str, str] = {}
    pool = request.app.ctx.pool
    try:
        async with asyncio.timeout(1.0), pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:  # any failure means not ready
        checks["postgres"] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    # The cache fails open: without Redis the API answers from PostgreSQL, so
    # Redis never makes a worker unready.
    cache = request.app.ctx.cache
    if cache is None:
        checks["redis"] = "disabled"
    else:
        checks["redis"] = "ok" if await cache.ping() else "unavailable"
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
