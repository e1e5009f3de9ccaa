"""Items routes (partner API v1): the needs of a campaign.

Every change first locks the campaign row (and bumps its updated_at), then the item:
one lock order for all item writes, and the per-campaign item cap holds."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from sanic import Blueprint, HTTPResponse, Request

from api.auth import require
from api.body import parse_body
from api.cache import invalidate_after_write
from api.database import tenant_tx
from api.errors import Conflict, NotFound
from api.models.campaigns import MAX_ITEMS, Item, ItemCreate, ItemUpdate, campaign_out, item_out
from api.openapi import doc
from api.params import path_id
from api.responses import json_response, no_content
from db.queries import campaigns as cq
from db.queries import events
from db.queries import items as q
from tenants.principal import Principal

bp = Blueprint("items", url_prefix="/api/v1")

TAG = "items"
ITEM_HAS_DONATIONS = "This item has donations and cannot be deleted."
UNIT_LOCKED = "cannot change once the item has donations"


async def campaign_changed(conn: asyncpg.Connection, tenant_id: UUID, cid: UUID) -> None:
    """An item added or deleted changes the campaign's item list: `campaign.updated`
    with the campaign as it now is (api/models/events.py)."""
    row = await cq.select_campaign(conn, tenant_id=tenant_id, campaign_id=cid)
    assert row is not None  # locked by touch_campaign in this transaction
    items = await q.select_items(conn, tenant_id=tenant_id, campaign_ids=[cid])
    await events.record(conn, "campaign.updated", "campaign", cid, campaign_out(row, items))


@bp.post("/campaigns/<campaign_id>/items")
@doc(tag=TAG, body=ItemCreate, response=Item, status=201, errors=(400, 401, 403, 404, 409, 422))
async def create_item(request: Request, campaign_id: str, principal: Principal) -> HTTPResponse:
    """Add an item (a need) to a campaign."""
    require(principal, "write")
    cid = path_id(campaign_id, "campaign")
    body = parse_body(request, ItemCreate)
    tenant_id = principal.tenant_id
    async with tenant_tx(request, tenant_id) as conn:
        if not await cq.touch_campaign(conn, tenant_id=tenant_id, campaign_id=cid):
            raise NotFound()
        if await q.count_items(conn, tenant_id=tenant_id, campaign_id=cid) >= MAX_ITEMS:
            raise Conflict(f"A campaign has at most {MAX_ITEMS} items.")
        rows = await q.insert_items(
            conn, tenant_id=tenant_id, campaign_id=cid, items=[body.model_dump()]
        )
        await campaign_changed(conn, tenant_id, cid)
    await invalidate_after_write(request, tenant_id, "item.created")
    item = item_out(rows[0])
    location = f"/api/v1/campaigns/{cid}/items/{item['id']}"
    return json_response(item, 201, headers={"Location": location})


@bp.patch("/campaigns/<campaign_id>/items/<item_id>")
@doc(tag=TAG, body=ItemUpdate, response=Item, errors=(400, 401, 403, 404, 409, 422))
async def update_item(
    request: Request, campaign_id: str, item_id: str, principal: Principal
) -> HTTPResponse:
    """Update an item's name, unit (only without donations) or requested quantity."""
    require(principal, "write")
    cid, iid = path_id(campaign_id, "campaign"), path_id(item_id, "item")
    changes = parse_body(request, ItemUpdate).changes()
    tenant_id = principal.tenant_id
    async with tenant_tx(request, tenant_id) as conn:
        if not await cq.touch_campaign(conn, tenant_id=tenant_id, campaign_id=cid):
            raise NotFound()
        item = await q.lock_item(conn, tenant_id=tenant_id, campaign_id=cid, item_id=iid)
        if item is None:
            raise NotFound()
        if changes.get("unit", item["unit"]) != item["unit"] and await q.item_has_donations(
            conn, tenant_id=tenant_id, item_id=iid
        ):
            raise Conflict(
                f"unit: {UNIT_LOCKED}",
                errors=[{"field": "unit", "message": UNIT_LOCKED, "type": "has_donations"}],
            )
        await q.update_item(
            conn, tenant_id=tenant_id, campaign_id=cid, item_id=iid, changes=changes
        )
        rows = await q.select_items(conn, tenant_id=tenant_id, campaign_ids=[cid], item_id=iid)
        item = {**item_out(rows[0]), "campaign_id": str(cid)}
        await events.record(conn, "item.updated", "item", iid, item)
    await invalidate_after_write(request, tenant_id, "item.updated")
    return json_response(item_out(rows[0]))


@bp.delete("/campaigns/<campaign_id>/items/<item_id>")
@doc(tag=TAG, status=204, errors=(401, 403, 404, 409))
async def delete_item(
    request: Request, campaign_id: str, item_id: str, principal: Principal
) -> HTTPResponse:
    """Delete an item that has no donations."""
    require(principal, "write")
    cid, iid = path_id(campaign_id, "campaign"), path_id(item_id, "item")
    tenant_id = principal.tenant_id
    try:
        async with tenant_tx(request, tenant_id) as conn:
            if not await cq.touch_campaign(conn, tenant_id=tenant_id, campaign_id=cid):
                raise NotFound()
            if not await q.delete_item(conn, tenant_id=tenant_id, campaign_id=cid, item_id=iid):
                raise NotFound()
            await campaign_changed(conn, tenant_id, cid)
    except asyncpg.ForeignKeyViolationError:
        raise Conflict(ITEM_HAS_DONATIONS) from None
    await invalidate_after_write(request, tenant_id, "item.deleted")
    return no_content()
