"""Campaigns routes (partner API v1): list, create with items, read, update, delete."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sanic import Blueprint, HTTPResponse, Request
from slugify import slugify

from api.auth import require
from api.body import parse_body
from api.cache import LISTS, WriteKind, cached_json, campaign_part, invalidate_after_write
from api.database import tenant_tx
from api.errors import Conflict, NotFound, ServiceUnavailable, field_error
from api.models.campaigns import (
    Campaign,
    CampaignCreate,
    CampaignFilters,
    CampaignList,
    CampaignUpdate,
    campaign_out,
)
from api.openapi import doc
from api.pagination import Page, page_of
from api.params import path_id, recency_after
from api.query import parse_query
from api.responses import dumps, json_response, no_content
from db.queries import campaigns as q
from db.queries import events
from db.queries import items as iq
from tenants.principal import Principal

bp = Blueprint("campaigns", url_prefix="/api/v1")

TAG = "campaigns"
RESOURCE = "campaigns"  # the response cache's resource (TTL 1 h)
HAS_DONATIONS = (
    "This campaign has donations and cannot be deleted; close it instead with "
    'PATCH /api/v1/campaigns/{id} {{"status": "closed"}}.'
)
BAD_CURSOR = "cursor: not a cursor returned by this API"
# A derived slug's base leaves room for a `-<n>` suffix within the 100 characters.
SLUG_BASE_LENGTH = 90
SLUG_ATTEMPTS = 5


def check_period(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise field_error("ends_at", "must be after starts_at", "period")


@contextmanager
def constraint_errors() -> Iterator[None]:
    """Constraint violations that name a field the client sent."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != q.SLUG_UNIQUE:
            raise
        message = "another campaign of this organization has this slug"
        raise Conflict(
            f"slug: {message}", errors=[{"field": "slug", "message": message, "type": "unique"}]
        ) from None
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name != q.PERIOD_CHECK:
            raise
        raise field_error("ends_at", "must be after starts_at", "period") from None


def derived_slug(title: str) -> str:
    """`Cestas Básicas` → `cestas-basicas`: lowercase ASCII, accents dropped, words
    joined by `-`, short enough for a `-<n>` suffix; `campanha` if nothing is left."""
    return slugify(title, max_length=SLUG_BASE_LENGTH, word_boundary=True) or "campanha"


def first_free(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


async def insert_campaign(
    conn: asyncpg.Connection, tenant_id: UUID, fields: dict[str, Any]
) -> asyncpg.Record:
    """Insert the campaign; without a slug, the title's with the first free suffix.

    Creates deriving the same base take turns on a transaction-scoped advisory lock,
    so each sees the slug the one before committed (without it, 12 concurrent creates
    needed up to 12 tries each). A create given that slug explicitly can still take
    it meanwhile: the insert then fails on the unique key inside a savepoint, the
    transaction goes on and the next try sees the committed slug."""
    if fields["slug"] is not None:
        return await q.insert_campaign(conn, tenant_id=tenant_id, fields=fields)
    base = derived_slug(fields["title"])
    await q.lock_slug_base(conn, tenant_id=tenant_id, base=base)
    for _ in range(SLUG_ATTEMPTS):
        taken = await q.taken_slugs(conn, tenant_id=tenant_id, base=base)
        slug = first_free(base, taken)
        row = await q.insert_campaign_unless_slug_taken(
            conn, tenant_id=tenant_id, fields={**fields, "slug": slug}
        )
        if row is not None:
            return row
    raise ServiceUnavailable("Could not pick a free slug under concurrent creates; retry.")


def with_items(rows: Sequence[asyncpg.Record], items: Sequence[asyncpg.Record]) -> list[Any]:
    by_campaign: dict[UUID, list[asyncpg.Record]] = {r["id"]: [] for r in rows}
    for item in items:
        by_campaign[item["campaign_id"]].append(item)
    return [campaign_out(r, by_campaign[r["id"]]) for r in rows]


async def campaign_with_items(
    conn: asyncpg.Connection, tenant_id: UUID, row: asyncpg.Record | None
) -> dict[str, Any]:
    if row is None:
        raise NotFound()
    items = await iq.select_items(conn, tenant_id=tenant_id, campaign_ids=[row["id"]])
    return campaign_out(row, items)


@bp.get("/campaigns")
@doc(tag=TAG, response=CampaignList, query=CampaignFilters)
async def list_campaigns(request: Request, principal: Principal, page: Page) -> HTTPResponse:
    """List campaigns, newest first (filters: status, q, category, location)."""
    require(principal, "read")
    filters = parse_query(request, CampaignFilters)
    after = recency_after(page.cursor)
    tenant_id = principal.tenant_id

    async def build() -> bytes:
        async with tenant_tx(request, tenant_id) as conn:
            rows = await q.select_campaigns(
                conn,
                tenant_id=tenant_id,
                after=after,
                limit=page.limit + 1,
                **filters.model_dump(),
            )
            rows, next_cursor = page_of(
                rows, page.limit, lambda r: [r["created_at"].isoformat(), str(r["id"])]
            )
            ids = [r["id"] for r in rows]
            items = await iq.select_items(conn, tenant_id=tenant_id, campaign_ids=ids)
        return dumps({"data": with_items(rows, items), "next_cursor": next_cursor})

    return await cached_json(
        request, tenant_id=tenant_id, resource=RESOURCE, build=build, private=True, part=LISTS
    )


@bp.post("/campaigns")
@doc(
    tag=TAG,
    body=CampaignCreate,
    response=Campaign,
    status=201,
    errors=(400, 401, 403, 409, 413, 415, 422),
)
async def create_campaign(request: Request, principal: Principal) -> HTTPResponse:
    """Create a campaign with its items, in one transaction."""
    require(principal, "write")
    body = parse_body(request, CampaignCreate)
    check_period(body.starts_at, body.ends_at)
    tenant_id = principal.tenant_id
    with constraint_errors():
        async with tenant_tx(request, tenant_id) as conn:
            row = await insert_campaign(conn, tenant_id, body.model_dump(exclude={"items"}))
            items = await iq.insert_items(
                conn,
                tenant_id=tenant_id,
                campaign_id=row["id"],
                items=[i.model_dump() for i in body.items],
            )
            data = campaign_out(row, items)
            await events.record(conn, "campaign.created", "campaign", row["id"], data)
    await invalidate_after_write(request, tenant_id, "campaign.created")
    location = f"/api/v1/campaigns/{row['id']}"
    return json_response(data, 201, headers={"Location": location})


@bp.get("/campaigns/<campaign_id>")
@doc(tag=TAG, response=Campaign, errors=(401, 403, 404))
async def get_campaign(request: Request, campaign_id: str, principal: Principal) -> HTTPResponse:
    """Read a campaign with its items and progress."""
    require(principal, "read")
    cid = path_id(campaign_id, "campaign")
    tenant_id = principal.tenant_id

    async def build() -> bytes:
        async with tenant_tx(request, tenant_id) as conn:
            row = await q.select_campaign(conn, tenant_id=tenant_id, campaign_id=cid)
            return dumps(await campaign_with_items(conn, tenant_id, row))

    return await cached_json(
        request,
        tenant_id=tenant_id,
        resource=RESOURCE,
        build=build,
        private=True,
        part=campaign_part(cid),
    )


@bp.patch("/campaigns/<campaign_id>")
@doc(
    tag=TAG,
    body=CampaignUpdate,
    response=Campaign,
    errors=(400, 401, 403, 404, 409, 413, 415, 422),
)
async def update_campaign(request: Request, campaign_id: str, principal: Principal) -> HTTPResponse:
    """Update some fields of a campaign (null clears image_url, starts_at, ends_at)."""
    require(principal, "write")
    cid = path_id(campaign_id, "campaign")
    changes = parse_body(request, CampaignUpdate).changes()
    check_period(changes.get("starts_at"), changes.get("ends_at"))
    tenant_id = principal.tenant_id
    with constraint_errors():
        async with tenant_tx(request, tenant_id) as conn:
            row = await q.update_campaign(
                conn, tenant_id=tenant_id, campaign_id=cid, changes=changes
            )
            data = await campaign_with_items(conn, tenant_id, row)
            await events.record(conn, "campaign.updated", "campaign", cid, data)
    kind: WriteKind = "campaign.renamed" if "slug" in changes else "campaign.updated"
    await invalidate_after_write(request, tenant_id, kind, campaign_id=cid, slug=data["slug"])
    return json_response(data)


@bp.delete("/campaigns/<campaign_id>")
@doc(tag=TAG, status=204, errors=(401, 403, 404, 409))
async def delete_campaign(request: Request, campaign_id: str, principal: Principal) -> HTTPResponse:
    """Delete a campaign that has no donations (otherwise close it)."""
    require(principal, "write")
    cid = path_id(campaign_id, "campaign")
    try:
        async with tenant_tx(request, principal.tenant_id) as conn:
            deleted = await q.delete_campaign(conn, tenant_id=principal.tenant_id, campaign_id=cid)
            if deleted:
                await events.record(conn, "campaign.deleted", "campaign", cid, {"id": cid})
    except asyncpg.ForeignKeyViolationError:
        raise Conflict(HAS_DONATIONS.format(id=cid)) from None
    if not deleted:
        raise NotFound()
    await invalidate_after_write(request, principal.tenant_id, "campaign.deleted")
    return no_content()
