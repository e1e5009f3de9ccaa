"""Liveness and readiness. Readiness answers 503 while the worker drains before a
stop (api/drain.py) and while PostgreSQL does not answer; liveness is 503 when a
worker of the instance is down or its event loop is blocked (api/supervision.py).
"""

from __future__ import annotations

import asyncio

from sanic import Blueprint, HTTPResponse, Request

from api.cache import response_cache
from api.database import pool as pool_of
from api.drain import drain_state
from api.models.health import Health, Readiness
from api.openapi import doc, json_content
from api.responses import json_response
from api.supervision import read_vitals
from db.pool import role_guard

bp = Blueprint("health")


@bp.get("/health")
@doc(
    tag="health",
    response=Health,
    secured=False,
    overrides={
        503: {"description": "A worker is down or blocked", "content": json_content(Health)}
    },
)
async def get_health(request: Request) -> HTTPResponse:
    """Liveness: every configured worker runs and its event loop turns (503 if not)."""
    vitals = read_vitals(request.app, float(request.app.config.LIVENESS_BLOCKED))
    if vitals is None:  # a single process: answering is all there is to say
        return json_response({"status": "ok"})
    body = {
        "status": "ok" if vitals.healthy else "degraded",
        "workers": {
            "configured": vitals.configured,
            "alive": vitals.alive,
            "restarts": vitals.restarts,
            "blocked": vitals.blocked,
        },
    }
    return json_response(body, status=200 if vitals.healthy else 503)


@bp.get("/health/ready")
@doc(
    tag="health",
    response=Readiness,
    secured=False,
    overrides={503: {"description": "Not ready (see checks)", "content": json_content(Readiness)}},
)
async def get_readiness(request: Request) -> HTTPResponse:
    """Readiness: not draining and PostgreSQL answers within a second (Redis is reported)."""
    if drain_state(request.app).active:
        return json_response({"status": "draining", "checks": {}}, status=503)
    checks: dict[str, str] = {}
    guard = role_guard(request.app)
    pool = pool_of(request)
    if guard is not None and guard.refused:
        checks["postgres"] = "refused: unsafe database role"
    elif pool is None:
        checks["postgres"] = "unavailable: no pool"
    else:
        try:
            async with asyncio.timeout(1.0), pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
            checks["postgres"] = "ok"
        except Exception as exc:  # any failure means not ready
            checks["postgres"] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    # The cache fails open: without Redis the API answers from PostgreSQL, so
    # Redis never makes a worker unready.
    cache = response_cache(request)
    if cache is None:
        checks["redis"] = "disabled"
    else:
        checks["redis"] = "ok" if await cache.ping() else "unavailable"
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
