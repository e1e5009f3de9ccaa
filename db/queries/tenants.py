"""Tenant registry (admin work runs as the owner role; the API reads its own row)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

INSERT_TENANT = """
INSERT INTO tenant (slug, name, listed, seeded) VALUES ($1, $2, $3, $4)
RETURNING id, slug, name, status, rate_plan, listed, seeded, created_at
"""
SELECT_TENANTS = """
SELECT t.id, t.slug, t.name, t.status, t.rate_plan, t.listed, t.seeded, t.created_at,
       (SELECT count(*) FROM campaign c WHERE c.tenant_id = t.id) AS campaigns,
       (SELECT count(*) FROM api_key k WHERE k.tenant_id = t.id
          AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())) AS live_keys
FROM tenant t ORDER BY t.created_at, t.id
"""
SELECT_TENANT_BY_SLUG = """
SELECT id, slug, name, status, rate_plan, listed, seeded, created_at FROM tenant
WHERE slug = $1
"""
UPDATE_TENANT_STATUS = """
UPDATE tenant SET status = $2 WHERE slug = $1
RETURNING id, slug, name, status, rate_plan, listed, seeded, created_at
"""


async def insert_tenant(
    conn: asyncpg.Connection, *, slug: str, name: str, listed: bool = True, seeded: bool = False
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(INSERT_TENANT, slug, name, listed, seeded)
    return row


async def select_tenants(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_TENANTS)
    return rows


async def select_tenant_by_slug(conn: asyncpg.Connection, slug: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_TENANT_BY_SLUG, slug)
    return row


async def update_tenant_status(
    conn: asyncpg.Connection, *, slug: str, status: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(UPDATE_TENANT_STATUS, slug, status)
    return row


# Deleting a tenant: its rows table by table, children first, each counted. Every
# table with a tenant_id is here (tests/admin/test_tenant_delete.py checks the
# catalog), so nothing is left to a cascade that a later migration might not add.
# Donations go first (no cascade from campaigns); their totals trigger runs per row.
LOCK_TENANT = "SELECT id FROM tenant WHERE id = $1 FOR UPDATE"
# New donations and items of the tenant check these rows (FOR KEY SHARE): holding
# them makes a pledge in flight wait, then fail, instead of failing this delete.
LOCK_CAMPAIGNS = "SELECT count(*) FROM (SELECT 1 FROM campaign WHERE tenant_id = $1 FOR UPDATE) c"
DELETE_TENANT_ROWS: tuple[tuple[str, str], ...] = (
    # Rows that reference donations, events and endpoints go first.
    (
        "email_job",
        "WITH d AS (DELETE FROM email_job WHERE tenant_id = $1 RETURNING 1) SELECT count(*) FROM d",
    ),
    (
        "webhook_delivery",
        "WITH d AS (DELETE FROM webhook_delivery WHERE tenant_id = $1 RETURNING 1)"
        " SELECT count(*) FROM d",
    ),
    (
        "webhook_endpoint",
        "WITH d AS (DELETE FROM webhook_endpoint WHERE tenant_id = $1 RETURNING 1)"
        " SELECT count(*) FROM d",
    ),
    # The totals before the donations: each donation's delete still runs the totals
    # trigger, which adds its negative change to a random slot of its item, and
    # since migration 0028 an item has only the slots written since the last fold,
    # so that can insert a row. Counted first, the rows are the ones the tenant had;
    # the trigger's go with their items below (campaign_item's ON DELETE CASCADE).
    (
        "item_total_slot",
        "WITH d AS (DELETE FROM item_total_slot WHERE tenant_id = $1 RETURNING 1)"
        " SELECT count(*) FROM d",
    ),
    (
        "donation",
        "WITH d AS (DELETE FROM donation WHERE tenant_id = $1 RETURNING 1) SELECT count(*) FROM d",
    ),
    (
        "event",
        "WITH d AS (DELETE FROM event WHERE tenant_id = $1 RETURNING 1) SELECT count(*) FROM d",
    ),
    (
        "audit_log",
        "WITH d AS (DELETE FROM audit_log WHERE tenant_id = $1 RETURNING 1) SELECT count(*) FROM d",
    ),
    (
        "idempotency_record",
        "WITH d AS (DELETE FROM idempotency_record WHERE tenant_id = $1 RETURNING 1)"
        " SELECT count(*) FROM d",
    ),
    (
        "refresh_token",
        "WITH d AS (DELETE FROM refresh_token WHERE tenant_id = $1 RETURNING 1)"
        " SELECT count(*) FROM d",
    ),
    (
        "staff_user",
        "WITH d AS (DELETE FROM staff_user WHERE tenant_id = $1 RETURNING 1)"
        " SELECT count(*) FROM d",
    ),
    (
        "api_key",
        "WITH d AS (DELETE FROM api_key WHERE tenant_id = $1 RETURNING 1) SELECT count(*) FROM d",
    ),
    (
        "campaign_item",
        "WITH d AS (DELETE FROM campaign_item WHERE tenant_id = $1 RETURNING 1)"
        " SELECT count(*) FROM d",
    ),
    (
        "campaign",
        "WITH d AS (DELETE FROM campaign WHERE tenant_id = $1 RETURNING 1) SELECT count(*) FROM d",
    ),
    ("tenant", "WITH d AS (DELETE FROM tenant WHERE id = $1 RETURNING 1) SELECT count(*) FROM d"),
)


async def delete_tenant(conn: asyncpg.Connection, *, tenant_id: UUID) -> dict[str, int]:
    """Every row of the tenant, in one transaction the caller holds: rows per table."""
    await conn.fetchval(LOCK_TENANT, tenant_id)
    await conn.fetchval(LOCK_CAMPAIGNS, tenant_id)
    counts: dict[str, int] = {}
    for table, sql in DELETE_TENANT_ROWS:
        counts[table] = await conn.fetchval(sql, tenant_id)
    return counts


def tenant_id_of(row: asyncpg.Record) -> UUID:
    value: UUID = row["id"]
    return value
