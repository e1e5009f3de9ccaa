"""Keys routes (partner API v1): list, issue (the secret shown once), revoke."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sanic import Blueprint, HTTPResponse, Request

from api.auth import forget_api_key, require
from api.body import parse_body
from api.database import tenant_tx
from api.errors import Forbidden, NotFound
from api.models.keys import KeyCreate, KeyIssued, KeyPage, KeyStatus
from api.openapi import doc
from api.pagination import Page, page_of
from api.params import path_id, recency_after
from api.responses import json_response, no_content
from db.queries import keys as q
from tenants import keys
from tenants.principal import Principal

bp = Blueprint("keys", url_prefix="/api/v1")

TAG = "keys"


def key_status(row: asyncpg.Record, now: datetime) -> KeyStatus:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    return "live"


def key_out(row: asyncpg.Record, now: datetime) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "prefix": row["prefix"],
        "scopes": list(row["scopes"]),
        "label": row["label"],
        "created_at": row["created_at"],
        "last_used_at": row["last_used_at"],
        "expires_at": row["expires_at"],
        "revoked_at": row["revoked_at"],
        "status": key_status(row, now),
    }


@bp.get("/keys")
@doc(tag=TAG, response=KeyPage, errors=(400, 401, 403, 422))
async def list_keys(request: Request, principal: Principal, page: Page) -> HTTPResponse:
    """List this organization's API keys (never their secrets)."""
    require(principal, "keys")
    after = recency_after(page.cursor)
    async with tenant_tx(request, principal.tenant_id) as conn:
        rows = await q.select_keys(
            conn, tenant_id=principal.tenant_id, after=after, limit=page.limit + 1
        )
    rows, cursor = page_of(rows, page.limit, lambda r: [r["created_at"].isoformat(), str(r["id"])])
    now = datetime.now(UTC)
    return json_response({"data": [key_out(r, now) for r in rows], "next_cursor": cursor})


@bp.post("/keys")
@doc(tag=TAG, body=KeyCreate, response=KeyIssued, status=201, errors=(400, 401, 403, 413, 422))
async def create_key(request: Request, principal: Principal) -> HTTPResponse:
    """Issue a new API key; the full key is in the response, shown only this once."""
    require(principal, "keys")
    body = parse_body(request, KeyCreate)
    _grantable(principal, body.scopes)
    async with tenant_tx(request, principal.tenant_id) as conn:
        row, full_key = await keys.issue(
            conn,
            tenant_id=principal.tenant_id,
            scopes=list(body.scopes),
            label=body.label,
            expires_at=body.expires_at,
        )
    out = key_out(row, datetime.now(UTC))
    out["key"] = full_key
    return json_response(out, 201, headers={"Location": f"/api/v1/keys/{row['id']}"})


def _grantable(principal: Principal, scopes: Iterable[str]) -> None:
    """A credential grants only scopes it holds itself (a staff owner holds them all):
    else a key with just `keys` could mint itself a `write` key."""
    missing = sorted(set(scopes) - principal.scopes)
    if missing:
        names = ", ".join(missing)
        raise Forbidden(
            f"{principal.describe()} cannot grant scopes it does not hold: {names}",
            errors=[
                {
                    "field": "scopes",
                    "message": f"not held by this credential: {names}",
                    "type": "forbidden",
                }
            ],
        )


@bp.delete("/keys/<key_id:str>")
@doc(tag=TAG, status=204, errors=(401, 403, 404))
async def delete_key(request: Request, principal: Principal, key_id: str) -> HTTPResponse:
    """Revoke an API key (refused by every API worker within 5 seconds)."""
    require(principal, "keys")
    kid = path_id(key_id, "key")
    async with tenant_tx(request, principal.tenant_id) as conn:
        row = await q.revoke_key(conn, tenant_id=principal.tenant_id, key_id=kid)
    if row is None:
        raise NotFound("No such key.")
    # Refused by this worker from the next request on; other workers within the memo's TTL.
    forget_api_key(request, row["prefix"])
    return no_content()
