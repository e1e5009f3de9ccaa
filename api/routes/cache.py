"""Cache routes (partner API v1): drop this tenant's cached responses."""

from __future__ import annotations

from pydantic import BaseModel
from sanic import Blueprint, HTTPResponse, Request

from api.auth import require
from api.cache import response_cache
from api.openapi import doc
from api.responses import json_response
from tenants.principal import Principal

bp = Blueprint("cache", url_prefix="/api/v1")

TAG = "cache"


class CachePurged(BaseModel):
    """`purged` is false when Redis could not be reached: the purge is then owed
    and replayed by the worker before it reads from the cache again."""

    purged: bool


@bp.post("/cache/purge")
@doc(tag=TAG, response=CachePurged, status=202, errors=(401, 403))
async def purge_cache(request: Request, principal: Principal) -> HTTPResponse:
    """Drop every cached response of this tenant (O(1))."""
    require(principal, "write")
    cache = response_cache(request)
    # Only the tenant's own entries: the cross-tenant directory is shared by every
    # tenant (a purge there let any tenant keep its costliest pages cold). It follows
    # changes to campaigns, or within DIRECTORY_TTL, or an operator's purge.
    purged = await cache.invalidate_tenant(principal.tenant_id) if cache is not None else True
    return json_response({"purged": purged}, status=202)
