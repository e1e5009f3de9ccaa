"""Webhooks routes (partner API v1): endpoints, their secrets and their deliveries.

Managing webhooks is administrative (it sends the tenant's data to a URL of the
caller's choosing), so every route needs the `keys` permission: an API key with the
`keys` scope or a staff owner, like managing API keys. Deliveries are made by the
worker process (worker/webhooks.py); see docs/webhooks.md."""

from __future__ import annotations

from typing import Any

import asyncpg
from sanic import Blueprint, HTTPResponse, Request

from api.auth import require
from api.body import parse_body
from api.database import tenant_tx
from api.errors import BadRequest, Conflict, NotFound, field_error
from api.models.webhooks import (
    DeliveryFilters,
    Webhook,
    WebhookCreate,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookPage,
    WebhookRotate,
    WebhookUpdate,
    WebhookWithSecret,
)
from api.openapi import doc
from api.pagination import Page, page_of
from api.params import BAD_CURSOR, path_id, recency_after
from api.query import parse_query
from api.responses import json_response, no_content
from db.queries import webhooks as q
from tenants.principal import Principal
from worker.destinations import check_url, parse_allowed
from worker.signing import format_secret, new_secret

bp = Blueprint("webhooks", url_prefix="/api/v1")

TAG = "webhooks"


def _check_url(request: Request, url: str) -> str:
    allowed = parse_allowed(str(request.app.config.WEBHOOK_ALLOWED_HOSTS))
    problem = check_url(url, allowed)
    if problem is not None:
        raise field_error("url", problem, "url")
    return url


def delivery_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "endpoint_id": str(row["endpoint_id"]),
        "event_id": str(row["event_id"]),
        "event_type": row["event_type"],
        "message_id": row["message_id"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"] if row["status"] == "pending" else None,
        "created_at": row["created_at"],
        "last_attempt_at": row["last_attempt_at"],
        "delivered_at": row["delivered_at"],
        "response_status": row["response_status"],
        "latency_ms": row["latency_ms"],
        "last_error": row["last_error"],
    }


@bp.get("/webhooks")
@doc(tag=TAG, response=WebhookPage, errors=(400, 401, 403, 422))
async def list_webhooks(request: Request, principal: Principal, page: Page) -> HTTPResponse:
    """List this organization's webhook endpoints, newest first (never their secrets)."""
    require(principal, "keys")
    after = recency_after(page.cursor)
    async with tenant_tx(request, principal.tenant_id) as conn:
        rows = await q.select_endpoints(
            conn, tenant_id=principal.tenant_id, after=after, limit=page.limit + 1
        )
    rows, cursor = page_of(rows, page.limit, lambda r: [r["created_at"].isoformat(), str(r["id"])])
    return json_response({"data": [q.endpoint_json(r) for r in rows], "next_cursor": cursor})


@bp.post("/webhooks")
@doc(
    tag=TAG,
    body=WebhookCreate,
    response=WebhookWithSecret,
    status=201,
    errors=(400, 401, 403, 413, 415, 422),
)
async def create_webhook(request: Request, principal: Principal) -> HTTPResponse:
    """Add a webhook endpoint; its signing secret is in the response, shown only this once."""
    require(principal, "keys")
    body = parse_body(request, WebhookCreate)
    url = _check_url(request, body.url)
    key = new_secret()
    async with tenant_tx(request, principal.tenant_id) as conn:
        row = await q.insert_endpoint(
            conn,
            tenant_id=principal.tenant_id,
            url=url,
            description=body.description,
            event_types=list(body.event_types),
            enabled=body.enabled,
            secret=key,
        )
    out = q.endpoint_json(row)
    out["secret"] = format_secret(key)
    return json_response(out, 201, headers={"Location": f"/api/v1/webhooks/{row['id']}"})


@bp.get("/webhooks/<webhook_id:str>")
@doc(tag=TAG, response=Webhook, errors=(401, 403, 404))
async def get_webhook(request: Request, principal: Principal, webhook_id: str) -> HTTPResponse:
    """Read one webhook endpoint, with its failure state (never its secret)."""
    require(principal, "keys")
    wid = path_id(webhook_id, "webhook")
    async with tenant_tx(request, principal.tenant_id) as conn:
        row = await q.select_endpoint(conn, tenant_id=principal.tenant_id, endpoint_id=wid)
    if row is None:
        raise NotFound("No such webhook.")
    return json_response(q.endpoint_json(row))


@bp.patch("/webhooks/<webhook_id:str>")
@doc(tag=TAG, body=WebhookUpdate, response=Webhook, errors=(400, 401, 403, 404, 413, 415, 422))
async def update_webhook(request: Request, principal: Principal, webhook_id: str) -> HTTPResponse:
    """Change an endpoint's url, event types, description or enabled (enabling clears
    its failure state)."""
    require(principal, "keys")
    wid = path_id(webhook_id, "webhook")
    body = parse_body(request, WebhookUpdate)
    if not body.model_fields_set:
        raise BadRequest("Send at least one of url, event_types, description, enabled.")
    url = _check_url(request, body.url) if body.url is not None else None
    async with tenant_tx(request, principal.tenant_id) as conn:
        row = await q.update_endpoint(
            conn,
            tenant_id=principal.tenant_id,
            endpoint_id=wid,
            url=url,
            description=body.description,
            event_types=list(body.event_types) if body.event_types is not None else None,
            enabled=body.enabled,
        )
    if row is None:
        raise NotFound("No such webhook.")
    return json_response(q.endpoint_json(row))


@bp.delete("/webhooks/<webhook_id:str>")
@doc(tag=TAG, status=204, errors=(401, 403, 404))
async def delete_webhook(request: Request, principal: Principal, webhook_id: str) -> HTTPResponse:
    """Delete an endpoint and its deliveries (pending ones are not sent)."""
    require(principal, "keys")
    wid = path_id(webhook_id, "webhook")
    async with tenant_tx(request, principal.tenant_id) as conn:
        deleted = await q.delete_endpoint(conn, tenant_id=principal.tenant_id, endpoint_id=wid)
    if not deleted:
        raise NotFound("No such webhook.")
    return no_content()


@bp.post("/webhooks/<webhook_id:str>/rotate")
@doc(
    tag=TAG,
    body=WebhookRotate,
    body_required=False,
    response=WebhookWithSecret,
    errors=(400, 401, 403, 404, 413, 415, 422),
)
async def rotate_webhook(request: Request, principal: Principal, webhook_id: str) -> HTTPResponse:
    """New signing secret (shown this once); the old one keeps signing beside it for
    `overlap_hours` (default 24; the body may be empty)."""
    require(principal, "keys")
    wid = path_id(webhook_id, "webhook")
    raw = request.body or b""
    body = parse_body(request, WebhookRotate) if raw.strip() else WebhookRotate()
    key = new_secret()
    async with tenant_tx(request, principal.tenant_id) as conn:
        row = await q.rotate_secret(
            conn,
            tenant_id=principal.tenant_id,
            endpoint_id=wid,
            secret=key,
            overlap_seconds=body.overlap_hours * 3600,
        )
    if row is None:
        raise NotFound("No such webhook.")
    out = q.endpoint_json(row)
    out["secret"] = format_secret(key)
    return json_response(out)


def _seq_after(cursor: list[Any] | None) -> int | None:
    if cursor is None:
        return None
    if len(cursor) != 1 or not isinstance(cursor[0], int) or isinstance(cursor[0], bool):
        raise BadRequest(BAD_CURSOR)
    return cursor[0]


@bp.get("/webhooks/<webhook_id:str>/deliveries")
@doc(tag=TAG, response=WebhookDeliveryPage, errors=(404,), query=DeliveryFilters)
async def list_webhook_deliveries(
    request: Request, principal: Principal, page: Page, webhook_id: str
) -> HTTPResponse:
    """List an endpoint's deliveries, newest first: status, attempts, response code, latency."""
    require(principal, "keys")
    wid = path_id(webhook_id, "webhook")
    status = parse_query(request, DeliveryFilters).status
    before = _seq_after(page.cursor)
    async with tenant_tx(request, principal.tenant_id) as conn:
        if await q.select_endpoint(conn, tenant_id=principal.tenant_id, endpoint_id=wid) is None:
            raise NotFound("No such webhook.")
        rows = await q.select_deliveries(
            conn,
            tenant_id=principal.tenant_id,
            endpoint_id=wid,
            status=status,
            before_seq=before,
            limit=page.limit + 1,
        )
    rows, cursor = page_of(rows, page.limit, lambda r: [r["seq"]])
    return json_response({"data": [delivery_out(r) for r in rows], "next_cursor": cursor})


@bp.post("/webhooks/<webhook_id:str>/deliveries/<delivery_id:str>/retry")
@doc(tag=TAG, response=WebhookDelivery, status=202, errors=(401, 403, 404, 409))
async def retry_webhook_delivery(
    request: Request, principal: Principal, webhook_id: str, delivery_id: str
) -> HTTPResponse:
    """Send a delivery again now, with the same webhook-id (also a succeeded or dead one)."""
    require(principal, "keys")
    wid = path_id(webhook_id, "webhook")
    did = path_id(delivery_id, "delivery")
    async with tenant_tx(request, principal.tenant_id) as conn:
        row = await q.retry_delivery(
            conn, tenant_id=principal.tenant_id, endpoint_id=wid, delivery_id=did
        )
        if row is None:
            current = await q.select_delivery(
                conn, tenant_id=principal.tenant_id, endpoint_id=wid, delivery_id=did
            )
            if current is None:
                raise NotFound("No such delivery.")
            raise Conflict("This delivery is being sent right now; retry it when it has ended.")
    return json_response(delivery_out(row), 202)
