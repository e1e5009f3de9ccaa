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
from api.errors import field_error
from api.models.audit import AuditPage
from api.openapi import UUID_SCHEMA, doc, query_params
from api.pagination import Page, page_of
from api.params import recency_after
from api.responses import json_response
from db.queries import audit as q
from tenants.principal import Principal

bp = Blueprint("audit", url_prefix="/api/v1")

TAG = "audit"


def filters_of(request: Request) -> q.Filters:
    try:
        return q.Filters.parse(
            actor=request.args.get("actor"),
            resource=request.args.get("resource"),
            action=request.args.get("action"),
        )
    except q.FilterError as exc:
        raise field_error(exc.field, exc.message) from None


def entry_out(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out.pop("tenant_id", None)
    out.pop("detail", None)  # operators' counts; the CLI shows them
    for name in ("id", "actor_id", "resource_id"):
        out[name] = str(out[name]) if out[name] is not None else None
    return out


@bp.get("/audit")
@doc(tag=TAG, response=AuditPage, errors=(400, 401, 403, 422))
@query_params(
    {
        "name": "actor",
        "in": "query",
        "description": "An actor id (API key or staff user) or name (key prefix or username).",
        "schema": {"anyOf": [UUID_SCHEMA, {"type": "string", "pattern": q.ACTOR_NAME.pattern}]},
    },
    {
        "name": "resource",
        "in": "query",
        "description": "A resource id, or a resource type such as `campaign`.",
        "schema": {"anyOf": [UUID_SCHEMA, {"type": "string", "pattern": q.RESOURCE_TYPE.pattern}]},
    },
    {
        "name": "action",
        "in": "query",
        "description": "One action, e.g. `campaign.create`.",
        "schema": {"type": "string", "pattern": q.ACTION.pattern},
    },
)
async def list_audit(request: Request, principal: Principal, page: Page) -> HTTPResponse:
    """List this organization's audit log, newest first (owners and `keys` keys only)."""
    require(principal, "keys")
    filters = filters_of(request)
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
