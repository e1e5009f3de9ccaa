"""Bulk loading of demo data (owner role): COPY, then exact per-item totals.

The per-row totals trigger would run one upsert for every copied donation. The
fast path disables it inside the loading transaction (ALTER TABLE takes an
ACCESS EXCLUSIVE lock on `donation` until commit, so no other writer can slip
past the trigger), copies the rows, and writes each seeded item's totals with
one GROUP BY over the copied donations before re-enabling it. The loaded items
are new, so their totals are exactly the sums over their donation rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import asyncpg

CAMPAIGN_COLUMNS = (
    "id",
    "tenant_id",
    "slug",
    "title",
    "subtitle",
    "description",
    "image_url",
    "categories",
    "location",
    "contact",
    "starts_at",
    "ends_at",
    "status",
    "created_at",
    "updated_at",
    "seeded",
)
ITEM_COLUMNS = (
    "id",
    "tenant_id",
    "campaign_id",
    "name",
    "unit",
    "quantity_requested",
    "created_at",
)
DONATION_COLUMNS = (
    "id",
    "tenant_id",
    "campaign_id",
    "item_id",
    "quantity",
    "donor_name",
    "donor_contact_enc",
    "donor_contact_hmac",
    "anonymous",
    "message_enc",
    "status",
    "source",
    "created_at",
    "confirmed_at",
    "delivered_at",
    "cancelled_at",
)

DISABLE_TOTALS_TRIGGER = "ALTER TABLE donation DISABLE TRIGGER donation_totals"
ENABLE_TOTALS_TRIGGER = "ALTER TABLE donation ENABLE TRIGGER donation_totals"

# Slot 0 takes the whole bulk total; later API writes spread over the 16 slots.
INSERT_ITEM_TOTALS = """
INSERT INTO item_total_slot AS t (
    tenant_id, item_id, slot,
    pending_quantity, pending_count, confirmed_quantity, confirmed_count,
    delivered_quantity, delivered_count, cancelled_quantity, cancelled_count)
SELECT d.tenant_id, d.item_id, 0,
       coalesce(sum(d.quantity) FILTER (WHERE d.status = 'pending'), 0),
       count(*) FILTER (WHERE d.status = 'pending'),
       coalesce(sum(d.quantity) FILTER (WHERE d.status = 'confirmed'), 0),
       count(*) FILTER (WHERE d.status = 'confirmed'),
       coalesce(sum(d.quantity) FILTER (WHERE d.status = 'delivered'), 0),
       count(*) FILTER (WHERE d.status = 'delivered'),
       coalesce(sum(d.quantity) FILTER (WHERE d.status = 'cancelled'), 0),
       count(*) FILTER (WHERE d.status = 'cancelled')
FROM donation d
WHERE d.item_id = ANY($1::uuid[])
GROUP BY d.tenant_id, d.item_id
ON CONFLICT (item_id, slot) DO UPDATE SET
    pending_quantity = t.pending_quantity + EXCLUDED.pending_quantity,
    pending_count = t.pending_count + EXCLUDED.pending_count,
    confirmed_quantity = t.confirmed_quantity + EXCLUDED.confirmed_quantity,
    confirmed_count = t.confirmed_count + EXCLUDED.confirmed_count,
    delivered_quantity = t.delivered_quantity + EXCLUDED.delivered_quantity,
    delivered_count = t.delivered_count + EXCLUDED.delivered_count,
    cancelled_quantity = t.cancelled_quantity + EXCLUDED.cancelled_quantity,
    cancelled_count = t.cancelled_count + EXCLUDED.cancelled_count
"""

# tenant too: with a handful of rows it never reaches autovacuum's analyze threshold
# (50 changed rows); without statistics the planner estimated 1 row for the
# directory's join of published campaigns with active tenants (there were 314).
ANALYZE = "ANALYZE tenant, campaign, campaign_item, donation, item_total_slot"
COUNT_CAMPAIGNS = "SELECT count(*) FROM campaign WHERE tenant_id = $1"


SELECT_SEEDED_TENANTS = "SELECT id, slug FROM tenant WHERE seeded ORDER BY created_at, id"
# Seeded campaigns of tenants a seed did not create (`seed --tenant demo`): locked
# first, so a pledge in flight waits and then fails instead of failing the purge;
# donations before campaigns (no cascade), then items (their totals by cascade).
LOCK_SEEDED_CAMPAIGNS = """
SELECT count(*) FROM (SELECT 1 FROM campaign WHERE seeded FOR UPDATE) c
"""
DELETE_SEEDED_DONATIONS = """
WITH d AS (
    DELETE FROM donation WHERE campaign_id IN (SELECT id FROM campaign WHERE seeded)
    RETURNING 1)
SELECT count(*) FROM d
"""
DELETE_SEEDED_ITEMS = """
WITH d AS (
    DELETE FROM campaign_item WHERE campaign_id IN (SELECT id FROM campaign WHERE seeded)
    RETURNING 1)
SELECT count(*) FROM d
"""
DELETE_SEEDED_CAMPAIGNS = """
WITH c AS (DELETE FROM campaign WHERE seeded RETURNING 1) SELECT count(*) FROM c
"""


async def select_seeded_tenants(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_SEEDED_TENANTS)
    return rows


async def delete_seeded_campaigns(conn: asyncpg.Connection) -> dict[str, int]:
    """Rows removed per table (item totals go by cascade, uncounted)."""
    await conn.fetchval(LOCK_SEEDED_CAMPAIGNS)
    donations: int = await conn.fetchval(DELETE_SEEDED_DONATIONS)
    items: int = await conn.fetchval(DELETE_SEEDED_ITEMS)
    campaigns: int = await conn.fetchval(DELETE_SEEDED_CAMPAIGNS)
    return {"donation": donations, "campaign_item": items, "campaign": campaigns}


async def copy_campaigns(conn: asyncpg.Connection, records: Iterable[Sequence[Any]]) -> None:
    await conn.copy_records_to_table("campaign", records=records, columns=CAMPAIGN_COLUMNS)


async def copy_items(conn: asyncpg.Connection, records: Iterable[Sequence[Any]]) -> None:
    await conn.copy_records_to_table("campaign_item", records=records, columns=ITEM_COLUMNS)


async def copy_donations(conn: asyncpg.Connection, records: Iterable[Sequence[Any]]) -> None:
    await conn.copy_records_to_table("donation", records=records, columns=DONATION_COLUMNS)


async def disable_totals_trigger(conn: asyncpg.Connection) -> None:
    await conn.execute(DISABLE_TOTALS_TRIGGER)


async def enable_totals_trigger(conn: asyncpg.Connection) -> None:
    await conn.execute(ENABLE_TOTALS_TRIGGER)


async def insert_item_totals(conn: asyncpg.Connection, item_ids: list[UUID]) -> None:
    await conn.execute(INSERT_ITEM_TOTALS, item_ids)


async def analyze(conn: asyncpg.Connection) -> None:
    await conn.execute(ANALYZE)


async def count_campaigns(conn: asyncpg.Connection, *, tenant_id: UUID) -> int:
    value: int = await conn.fetchval(COUNT_CAMPAIGNS, tenant_id)
    return value
