"""Audit routes (partner API v1): who did what in this organization, newest first.

Owners only: a staff owner or an API key with the `keys` scope, the same gate as
key management (whoever may mint and revoke credentials may see who used them)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg
from sanic import Blueprint, HTTPResponse, Request

from api.auth import require
from api.database import tenant_tx
from api.models.audit import AuditFilters, AuditPage
from api.openapi import doc
from api.pagination import Page, page_of
from api.params import recency_after
from api.query import parse_query
from api.responses import json_response
from db.queries import audit as q
from tenants.principal import Principal

bp = Blueprint("audit", url_prefix="/api/v1")

TAG = "audit"


def entry_out(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out.pop("tenant_id", None)
    out.pop("detail", None)  # operators' counts; the CLI shows them
    for name in ("id", "actor_id", "resource_id"):
        out[name] = str(out[name]) if out[name] is not None else None
    return out


@bp.get("/audit")
@doc(tag=TAG, response=AuditPage, errors=(400, 401, 403, 422), query=AuditFilters)
async def list_audit(request: Request, principal: Principal, page: Page) -> HTTPResponse:
    """List this organization's audit log, newest first (owners and `keys` keys only)."""
    require(principal, "keys")
    filters = parse_query(request, AuditFilters).filters()
    after = recency_after(page.cursor)
    tid = principal.tenant_id
    async with tenant_tx(request, tid) as conn:
        rows = await q.select_entries(
            conn,
            tenant_id=tid,
            filters=replace(filters, after=after),
            limit=page.limit + 1,
        )
    rows, cursor = page_of(rows, page.limit, lambda r: [r["occurred_at"].isoformat(), str(r["id"])])
    return json_response({"data": [entry_out(r) for r in rows], "next_cursor": cursor})
