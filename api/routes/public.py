"""Public donor API: the directory (its parsing and pages: api/directory.py),
campaign pages, recent donations, pledges.

No credentials. GETs are cacheable for a second at the edge and come from the
response cache (the organization's scope, or the cross-tenant directory's);
pledges need an `Idempotency-Key`. Reads across tenants go through the owner-owned public views;
one tenant's items and donations are read in that tenant's transaction (RLS).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import asyncpg
from sanic import Blueprint, HTTPResponse, Request

from api.body import parse_body
from api.cache import cached_json, invalidate_after_write, slug_part
from api.context import app_context
from api.database import connection, keyring
from api.directory import (
    DEADLINE_BOUND_TTL,
    PARAMS,
    RESOURCE,
    campaign_fields,
    directory_filter,
    directory_response,
)
from api.errors import Conflict, NotFound, field_error
from api.idempotency import (
    PUBLIC_SCOPE,
    Created,
    Outcome,
    fingerprint,
    key_transaction,
    read_key,
    run_once,
)
from api.models.events import donation_event
from api.models.public import (
    CampaignPublicDetail,
    CampaignPublicList,
    DonationPublicList,
    Pledge,
    PledgeCreate,
)
from api.openapi import doc
from api.pagination import Page, page_of
from api.params import recency_after
from api.responses import JSON, dumps, raw_json_response
from db.crypto import MESSAGE
from db.queries import donations as dq
from db.queries import public as pq
from db.queries.events import PendingEvent
from db.queries.idempotency import KeyLookup, StoredAnswer

bp = Blueprint("public")

NO_STORE = {"Cache-Control": "private, no-store"}
ANONYMOUS = "Anonymous"
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")


async def public_tenant(request: Request, slug: str) -> asyncpg.Record:
    """An active tenant by slug; unknown and suspended ones are 404.

    From this worker's 1-second memo (one query fewer on every public page and
    pledge); a pledge's own statement checks again that the tenant is active
    (db/queries/donations.py: INSERT_PLEDGE), so a suspension stops pledges at once."""
    if not _SLUG.match(slug) or len(slug) > 63:
        raise NotFound("No such organization.")

    async def load() -> asyncpg.Record | None:
        async with connection(request) as conn:
            found: asyncpg.Record | None = await pq.select_public_tenant(conn, slug)
            return found

    memo = app_context(request).public_tenants
    row = await memo.get_or_load(slug, load)
    if row is None:
        raise NotFound("No such organization.")
    return row


def check_slug(slug: str) -> None:
    if not _SLUG.match(slug):
        raise NotFound("No such campaign.")


def _item(row: Mapping[str, Any]) -> dict[str, Any]:
    contributed = int(row["confirmed_quantity"]) + int(row["delivered_quantity"])
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "unit": row["unit"],
        "quantity_requested": row["quantity_requested"],
        "pending_quantity": int(row["pending_quantity"]),
        "pending_count": int(row["pending_count"]),
        "confirmed_quantity": int(row["confirmed_quantity"]),
        "delivered_quantity": int(row["delivered_quantity"]),
        "contributed_quantity": contributed,
        "contributed_count": int(row["confirmed_count"]) + int(row["delivered_count"]),
        "progress": contributed / row["quantity_requested"],
    }


@bp.get("/api/public/campaigns")
@doc(
    tag="public", response=CampaignPublicList, errors=(400, 422), secured=False, query=PARAMS.model
)
async def list_public_campaigns(request: Request, page: Page) -> HTTPResponse:
    """Directory of published campaigns of all active organizations."""
    return await directory_response(request, page, directory_filter(request))


@bp.get("/api/public/<tenant>/campaigns")
@doc(
    tag="public",
    response=CampaignPublicList,
    errors=(400, 404, 422),
    secured=False,
    query=PARAMS.model,
)
async def list_tenant_public_campaigns(request: Request, tenant: str, page: Page) -> HTTPResponse:
    """Directory of one organization's published campaigns."""
    f = directory_filter(request)
    org = await public_tenant(request, tenant)
    return await directory_response(request, page, replace(f, tenant_id=org["id"]))


async def campaign_detail(request: Request, org: Mapping[str, Any], slug: str) -> dict[str, Any]:
    """A published or closed campaign of `org` with its items and totals; else 404."""
    # One statement (migration 0008), not a transaction of four: RLS still applies.
    async with connection(request) as conn:
        row, item_rows = await pq.select_campaign_page(conn, tenant_id=org["id"], slug=slug)
    return _campaign_body(org, row, item_rows)


def _campaign_body(
    org: Mapping[str, Any], row: Mapping[str, Any] | None, item_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    if row is None or row["status"] == "draft":
        raise NotFound("No such campaign.")
    items = [_item(i) for i in item_rows]
    progress = (
        sum(min(1.0, cast(float, i["progress"])) for i in items) / len(items) if items else 0.0
    )
    return {
        **campaign_fields(row, tenant=org),
        "progress": progress,
        "status": row["status"],
        "accepting_pledges": row["accepting"],
        "items": items,
    }


async def recent_donations(
    request: Request,
    org: Mapping[str, Any],
    slug: str,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
    anonymous: str = ANONYMOUS,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of a campaign's donations as donors see them (no contact data, the
    `anonymous` label for donors who asked); 404 when the campaign is not public."""
    # One statement (migration 0008), not a transaction of four: RLS still applies.
    async with connection(request) as conn:
        status, rows = await pq.select_campaign_donations(
            conn, tenant_id=org["id"], slug=slug, after=after, limit=limit + 1
        )
    if status is None or status == "draft":
        raise NotFound("No such campaign.")
    rows, next_cursor = page_of(rows, limit, lambda r: [r["created_at"].isoformat(), str(r["id"])])
    return _donations_body(request, org, rows, anonymous), next_cursor


def _donations_body(
    request: Request, org: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], anonymous: str
) -> list[dict[str, Any]]:
    ring = keyring(request)
    return [
        {
            "id": str(r["id"]),
            "display_name": r["donor_name"] or anonymous,
            "item_id": str(r["item_id"]),
            "item_name": r["item_name"],
            "unit": r["unit"],
            "quantity": r["quantity"],
            "status": r["status"],
            # A message that cannot be opened is left out, not the page (logged).
            "message": ring.readable({**r, "tenant_id": org["id"]}, MESSAGE) or "",
            "created_at": r["created_at"],
        }
        for r in rows
    ]


async def campaign_with_recent(
    request: Request, org: Mapping[str, Any], slug: str, *, limit: int, anonymous: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """campaign_detail and the first `limit` of recent_donations in one statement
    (the donor page shows both; 404 when the campaign is not public)."""
    async with connection(request) as conn:
        view = await pq.select_campaign_view(conn, tenant_id=org["id"], slug=slug, limit=limit)
    return _campaign_body(org, view.campaign, view.items), _donations_body(
        request, org, view.donations, anonymous
    )


async def pledge_once(
    request: Request,
    org: Mapping[str, Any],
    slug: str,
    body: PledgeCreate,
    *,
    key: str,
    ttl: float,
) -> Outcome[UUID]:
    """Record `body` as a pending pledge once per (public scope, `key`) within `ttl`
    seconds, then invalidate what it changed. A replay returns the first answer."""
    tenant_id: UUID = org["id"]
    ring = keyring(request)

    async with key_transaction(request, tenant_id, PUBLIC_SCOPE, key) as conn:

        async def create(lookup: KeyLookup | None) -> Created[UUID] | StoredAnswer:
            """The pledge's answer and the campaign it went to, or the key's first
            answer (nothing written now)."""
            assert lookup is not None, "a pledge always has a key"
            donation = dq.NewDonation(
                item_id=body.item_id,
                quantity=body.quantity,
                donor_name=body.donor_name,
                donor_contact=body.donor_contact,
                anonymous=body.anonymous or not body.show_name,
                message=body.message,
            )
            row, stored = await dq.insert_pledge(
                conn, keyring=ring, tenant_id=tenant_id, slug=slug, donation=donation, lookup=lookup
            )
            if stored is not None:
                return stored
            if row is None:
                raise await pledge_refusal(conn, tenant_id, slug)
            pledge = {
                "id": str(row["id"]),
                "status": row["status"],
                "item_id": str(row["item_id"]),
                "quantity": row["quantity"],
                "created_at": row["created_at"],
            }
            # The JSON API and the no-JS form both come here; a replay does not.
            event = PendingEvent("donation.created", "donation", row["id"], donation_event(row))
            return Created(201, dumps(pledge), row["campaign_id"], event)

        outcome = await run_once(
            conn,
            tenant_id=tenant_id,
            scope=PUBLIC_SCOPE,
            key=key,
            fingerprint=fingerprint("POST", request.path, body),
            ttl=ttl,
            create=create,
            keyring=ring,
        )
    if outcome.value is not None:  # written now, not a replay
        await invalidate_after_write(
            request, tenant_id, "donation.pledged", campaign_id=outcome.value, slug=slug
        )
    return outcome


async def pledge_refusal(conn: asyncpg.Connection, tenant_id: UUID, slug: str) -> Exception:
    """Why a pledge wrote nothing (db/queries/donations.py: INSERT_PLEDGE): the
    organization is no longer active (404), the campaign is not public (404: a
    draft is answered like a slug that does not exist) or not accepting (409), or
    the item is not one of its own (422)."""
    if not await pq.tenant_is_public(conn, tenant_id):
        return NotFound("No such organization.")
    campaign = await pq.select_campaign(conn, tenant_id=tenant_id, slug=slug)
    if campaign is None or campaign["status"] == "draft":
        return NotFound("No such campaign.")
    if not campaign["accepting"]:
        return Conflict(
            "This campaign is not accepting pledges "
            "(closed, not started yet, or past its deadline)."
        )
    return field_error("item_id", "not an item of this campaign", "not_found")


@bp.get("/api/public/<tenant>/campaigns/<slug>")
@doc(tag="public", response=CampaignPublicDetail, errors=(404,), secured=False)
async def get_public_campaign(request: Request, tenant: str, slug: str) -> HTTPResponse:
    """A campaign page: items with requested, contributed and pending quantities."""
    org = await public_tenant(request, tenant)
    check_slug(slug)

    async def build() -> bytes:
        return dumps(await campaign_detail(request, org, slug))

    return await cached_campaign(request, org, slug, build)


async def cached_campaign(
    request: Request,
    org: asyncpg.Record,
    slug: str,
    build: Callable[[], Awaitable[bytes]],
    *,
    resource: str = RESOURCE,
    content_type: str = JSON,
) -> HTTPResponse:
    """One campaign's answer (JSON, or a donor page) from the response cache, under
    its slug's part: a write to the campaign drops it; time alone within a minute."""
    return await cached_json(
        request,
        tenant_id=org["id"],
        resource=resource,
        build=build,
        private=False,
        ttl=DEADLINE_BOUND_TTL,
        part=slug_part(slug),
        content_type=content_type,
    )


@bp.get("/api/public/<tenant>/campaigns/<slug>/donations")
@doc(tag="public", response=DonationPublicList, errors=(400, 404, 422), secured=False)
async def list_public_donations(
    request: Request, tenant: str, slug: str, page: Page
) -> HTTPResponse:
    """Recent donations of a campaign: display name, item, quantity, date; no contact data."""
    after = recency_after(page.cursor)
    org = await public_tenant(request, tenant)
    check_slug(slug)

    async def build() -> bytes:
        data, next_cursor = await recent_donations(
            request, org, slug, after=after, limit=page.limit
        )
        return dumps({"data": data, "next_cursor": next_cursor})

    return await cached_json(
        request,
        tenant_id=org["id"],
        resource="donations",
        build=build,
        private=False,
        part=slug_part(slug),
    )


@bp.post("/api/public/<tenant>/campaigns/<slug>/donations")
@doc(
    tag="public",
    body=PledgeCreate,
    response=Pledge,
    status=201,
    errors=(400, 404, 409, 413, 422),
    secured=False,
    idempotency="required",
)
async def create_public_pledge(request: Request, tenant: str, slug: str) -> HTTPResponse:
    """Pledge a quantity of an item (status pending); `Idempotency-Key` required."""
    org = await public_tenant(request, tenant)
    check_slug(slug)
    key = cast(str, read_key(request, required=True))
    body = parse_body(request, PledgeCreate)
    outcome = await pledge_once(
        request, org, slug, body, key=key, ttl=float(request.app.config.IDEMPOTENCY_TTL)
    )
    headers = dict(NO_STORE)
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return raw_json_response(outcome.body, outcome.status, headers=headers)
