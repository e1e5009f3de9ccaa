"""Donations routes (partner API v1): record, list, read, confirm, deliver, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from sanic import Blueprint, HTTPResponse, Request

from api import idempotency
from api.auth import require
from api.body import parse_body
from api.cache import LISTS, WriteKind, cached_json, campaign_part, invalidate_after_write
from api.database import keyring, tenant_tx
from api.errors import IllegalTransition, NotFound, field_error
from api.models.donations import (
    CampaignDonationFilters,
    Donation,
    DonationCreate,
    DonationFilters,
    DonationList,
)
from api.models.events import STATUS_EVENTS, donation_event
from api.openapi import doc
from api.pagination import Page, page_of
from api.params import path_id, recency_after
from api.query import parse_query
from api.responses import PRIVATE, dumps, json_response, raw_json_response
from db.crypto import CONTACT, MESSAGE, Keyring
from db.queries import donations as q
from db.queries import events
from db.queries.events import PendingEvent
from db.queries.idempotency import KeyLookup, StoredAnswer
from tenants.principal import Principal

bp = Blueprint("donations", url_prefix="/api/v1")

TAG = "donations"
RESOURCE = "donations"  # the response cache's resource (TTL 15 min)
STATUSES = ("pending", "confirmed", "delivered", "cancelled")
# new status → the statuses it may be reached from
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "confirmed": ("pending",),
    "delivered": ("confirmed",),
    "cancelled": ("pending", "confirmed"),
}
# new status → the kind of write it is (api/cache.py: WRITES says what it makes stale)
TRANSITION_WRITES: dict[str, WriteKind] = {
    "confirmed": "donation.confirmed",
    "delivered": "donation.delivered",
    "cancelled": "donation.cancelled",
}


@dataclass(frozen=True)
class Written:
    """What a donation's create leaves for the invalidation and the Location header."""

    donation_id: uuid.UUID
    slug: str | None


def donation_out(row: asyncpg.Record, ring: Keyring) -> dict[str, Any]:
    """The partner's view of a row (api/models/donations.py: Donation), the contact
    and message decrypted (db/crypto.py). A value that cannot be opened is null and
    named in `unreadable`; the rest of the row (and of its list) is answered."""
    contact = ring.readable(row, CONTACT)
    message = ring.readable(row, MESSAGE)
    out = {
        # asyncpg's UUID subclass is not one orjson serialises natively.
        "id": str(row["id"]),
        "campaign_id": str(row["campaign_id"]),
        "item_id": str(row["item_id"]),
        "quantity": row["quantity"],
        "donor_name": row["donor_name"],
        "donor_contact": contact,
        "anonymous": row["anonymous"],
        "message": message,
        "status": row["status"],
        "source": row["source"],
        "created_at": row["created_at"],
        "confirmed_at": row["confirmed_at"],
        "delivered_at": row["delivered_at"],
        "cancelled_at": row["cancelled_at"],
    }
    if contact is None or message is None:
        out["unreadable"] = [c for c, v in ((CONTACT, contact), (MESSAGE, message)) if v is None]
    return out


def _page_body(rows: list[asyncpg.Record], page: Page, ring: Keyring) -> bytes:
    rows, cursor = page_of(rows, page.limit, lambda r: [r["created_at"].isoformat(), str(r["id"])])
    return dumps({"data": [donation_out(r, ring) for r in rows], "next_cursor": cursor})


async def _cached(
    request: Request, tenant_id: uuid.UUID, part: str, build: Callable[[], Awaitable[bytes]]
) -> HTTPResponse:
    """A read from the tenant's response cache (built after auth and input checks)."""
    return await cached_json(
        request, tenant_id=tenant_id, resource=RESOURCE, build=build, private=True, part=part
    )


async def _list(
    request: Request,
    principal: Principal,
    page: Page,
    filters: CampaignDonationFilters,
    cid: uuid.UUID | None,
    *,
    scoped: bool,
) -> HTTPResponse:
    """A page of donations, newest first; `scoped`: under /campaigns/{id} (404 if unknown)."""
    after = recency_after(page.cursor)
    tid = principal.tenant_id

    async def build() -> bytes:
        async with tenant_tx(request, tid) as conn:
            rows = await q.select_donations(
                conn,
                tenant_id=tid,
                campaign_id=cid,
                status=filters.status,
                since=filters.since,
                after=after,
                limit=page.limit + 1,
            )
            # Rows prove the campaign is this tenant's; only an empty page needs the check.
            if scoped and not rows:
                assert cid is not None
                if not await q.campaign_exists(conn, tenant_id=tid, campaign_id=cid):
                    raise NotFound("No such campaign.")
        return _page_body(rows, page, keyring(request))

    part = campaign_part(cid) if scoped and cid is not None else LISTS
    return await _cached(request, tid, part, build)


@bp.get("/campaigns/<campaign_id:str>/donations")
@doc(tag=TAG, response=DonationList, errors=(404,), query=CampaignDonationFilters)
async def list_campaign_donations(
    request: Request, principal: Principal, page: Page, campaign_id: str
) -> HTTPResponse:
    """List a campaign's donations, newest first (filters: status, since)."""
    require(principal, "read")
    cid = path_id(campaign_id, "campaign")
    filters = parse_query(request, CampaignDonationFilters)
    return await _list(request, principal, page, filters, cid, scoped=True)


@bp.post("/campaigns/<campaign_id:str>/donations")
@doc(
    tag=TAG,
    body=DonationCreate,
    response=Donation,
    status=201,
    errors=(400, 401, 403, 404, 409, 413, 415, 422),
    idempotency="optional",
)
async def create_donation(request: Request, principal: Principal, campaign_id: str) -> HTTPResponse:
    """Record a donation to one of the campaign's items (optional Idempotency-Key)."""
    require(principal, "write")
    cid = path_id(campaign_id, "campaign")
    key = idempotency.read_key(request, required=False)
    body = parse_body(request, DonationCreate)
    tid = principal.tenant_id
    ring = keyring(request)

    scope = idempotency.scope_of(principal)
    async with idempotency.key_transaction(request, tid, scope, key) as conn:

        async def create(
            lookup: KeyLookup | None,
        ) -> idempotency.Created[Written] | StoredAnswer:
            donation = q.NewDonation(
                item_id=body.item_id,
                quantity=body.quantity,
                donor_name=body.donor_name,
                donor_contact=body.donor_contact,
                anonymous=body.anonymous,
                message=body.message,
            )
            row, stored = await q.insert_donation(
                conn,
                keyring=ring,
                tenant_id=tid,
                campaign_id=cid,
                donation=donation,
                status=body.status,
                source="partner",
                lookup=lookup,
            )
            if stored is not None:  # the key's first answer: nothing written now
                return stored
            if row is None:
                if not await q.campaign_exists(conn, tenant_id=tid, campaign_id=cid):
                    raise NotFound("No such campaign.")
                raise field_error("item_id", "is not an item of this campaign", "not_found")
            # For the invalidation: the public pages address the campaign by slug.
            slug: str = row["campaign_slug"]
            return idempotency.Created(
                201,
                dumps(donation_out(row, ring)),
                Written(row["id"], slug),
                PendingEvent("donation.created", "donation", row["id"], donation_event(row)),
            )

        outcome = await idempotency.run_once(
            conn,
            tenant_id=tid,
            scope=scope,
            key=key,
            fingerprint=idempotency.fingerprint(request.method, request.path, body),
            ttl=request.app.config.IDEMPOTENCY_TTL,
            create=create,
            keyring=ring,
        )
    headers = dict(PRIVATE)
    if outcome.value is not None:  # written now, not a replay
        # The directory's progress changes only when the donation counts as
        # contributed (not while pending).
        kind: WriteKind = "donation.pledged" if body.status == "pending" else "donation.recorded"
        await invalidate_after_write(request, tid, kind, campaign_id=cid, slug=outcome.value.slug)
        headers["Location"] = f"/api/v1/donations/{outcome.value.donation_id}"
    else:
        headers["Idempotent-Replayed"] = "true"
        if outcome.status == 201:  # the stored answer is all a replay has of the donation
            headers["Location"] = f"/api/v1/donations/{orjson.loads(outcome.body)['id']}"
    return raw_json_response(outcome.body, outcome.status, headers=headers)


@bp.get("/donations")
@doc(tag=TAG, response=DonationList, query=DonationFilters)
async def list_donations(request: Request, principal: Principal, page: Page) -> HTTPResponse:
    """List donations across campaigns, newest first (filters: campaign_id, status, since)."""
    require(principal, "read")
    filters = parse_query(request, DonationFilters)
    return await _list(request, principal, page, filters, filters.campaign_id, scoped=False)


@bp.get("/donations/<donation_id:str>")
@doc(tag=TAG, response=Donation, errors=(401, 403, 404))
async def get_donation(request: Request, principal: Principal, donation_id: str) -> HTTPResponse:
    """Read one donation."""
    require(principal, "read")
    did = path_id(donation_id, "donation")
    tid = principal.tenant_id

    async def build() -> bytes:
        async with tenant_tx(request, tid) as conn:
            row = await q.select_donation(conn, tenant_id=tid, donation_id=did)
        if row is None:
            raise NotFound("No such donation.")
        return dumps(donation_out(row, keyring(request)))

    return await _cached(request, tid, LISTS, build)


async def apply_transition(
    conn: asyncpg.Connection, *, tenant_id: uuid.UUID, donation_id: uuid.UUID, to_status: str
) -> tuple[asyncpg.Record, str | None]:
    """The one way a donation changes status (the partner API and the emailed confirm
    link, api/routes/confirm.py), inside the caller's tenant transaction: the
    conditional update (totals by trigger) and its event. The row and its campaign's
    slug; NotFound or IllegalTransition."""
    allowed: Sequence[str] = TRANSITIONS[to_status]
    row = await q.transition_donation(
        conn, tenant_id=tenant_id, donation_id=donation_id, to_status=to_status,
        from_statuses=allowed,
    )  # fmt: skip
    if row is None:
        current = await q.select_donation_status(conn, tenant_id=tenant_id, donation_id=donation_id)
        if current is None:
            raise NotFound("No such donation.")
        raise IllegalTransition(
            f"The donation is {current}; it can become {to_status} only from "
            f"{' or '.join(allowed)}."
        )
    await events.record(conn, STATUS_EVENTS[to_status], "donation", row["id"], donation_event(row))
    slug: str = row["campaign_slug"]
    return row, slug


async def invalidate_transition(
    request: Request, tenant_id: uuid.UUID, row: asyncpg.Record, slug: str | None, to_status: str
) -> None:
    """After the commit of `apply_transition`: what its change made stale."""
    await invalidate_after_write(
        request, tenant_id, TRANSITION_WRITES[to_status], campaign_id=row["campaign_id"], slug=slug
    )


async def _transition(
    request: Request, principal: Principal, donation_id: str, to_status: str
) -> HTTPResponse:
    require(principal, "write")
    did = path_id(donation_id, "donation")
    tid = principal.tenant_id
    async with tenant_tx(request, tid) as conn:
        row, slug = await apply_transition(
            conn, tenant_id=tid, donation_id=did, to_status=to_status
        )
    await invalidate_transition(request, tid, row, slug, to_status)
    return json_response(donation_out(row, keyring(request)))


@bp.post("/donations/<donation_id:str>/confirm")
@doc(tag=TAG, response=Donation, errors=(401, 403, 404, 409))
async def confirm_donation(
    request: Request, principal: Principal, donation_id: str
) -> HTTPResponse:
    """Confirm a pending donation (pending → confirmed)."""
    return await _transition(request, principal, donation_id, "confirmed")


@bp.post("/donations/<donation_id:str>/deliver")
@doc(tag=TAG, response=Donation, errors=(401, 403, 404, 409))
async def deliver_donation(
    request: Request, principal: Principal, donation_id: str
) -> HTTPResponse:
    """Mark a confirmed donation as delivered (confirmed → delivered)."""
    return await _transition(request, principal, donation_id, "delivered")


@bp.post("/donations/<donation_id:str>/cancel")
@doc(tag=TAG, response=Donation, errors=(401, 403, 404, 409))
async def cancel_donation(request: Request, principal: Principal, donation_id: str) -> HTTPResponse:
    """Cancel a pending or confirmed donation."""
    return await _transition(request, principal, donation_id, "cancelled")


@bp.post("/donations/<donation_id:str>/anonymize")
@doc(tag=TAG, response=Donation, errors=(401, 403, 404))
async def anonymize_donation(
    request: Request, principal: Principal, donation_id: str
) -> HTTPResponse:
    """Erase the donor's name, contact and message (LGPD); quantities and totals stay."""
    require(principal, "write")
    did = path_id(donation_id, "donation")
    tid = principal.tenant_id
    async with tenant_tx(request, tid) as conn:
        row = await q.anonymize_donation(conn, tenant_id=tid, donation_id=did)
        if row is None:
            raise NotFound("No such donation.")
        cid = row["campaign_id"]
        slug = await q.campaign_slug(conn, tenant_id=tid, campaign_id=cid)
    await invalidate_after_write(request, tid, "donation.anonymized", campaign_id=cid, slug=slug)
    return json_response(donation_out(row, keyring(request)))
