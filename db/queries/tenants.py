"""Tenant registry (admin work runs as the owner role; the API reads its own row)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

INSERT_TENANT = """
INSERT INTO tenant (slug, name) VALUES ($1, $2)
RETURNING id, slug, name, status, rate_plan, created_at
"""
SELECT_TENANTS = """
SELECT t.id, t.slug, t.name, t.status, t.rate_plan, t.created_at,
       (SELECT count(*) FROM campaign c WHERE c.tenant_id = t.id) AS campaigns,
       (SELECT count(*) FROM api_key k WHERE k.tenant_id = t.id
          AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())) AS live_keys
FROM tenant t ORDER BY t.created_at, t.id
"""
SELECT_TENANT_BY_SLUG = """
SELECT id, slug, name, status, rate_plan, created_at FROM tenant WHERE slug = $1
"""
UPDATE_TENANT_STATUS = """
UPDATE tenant SET status = $2 WHERE slug = $1
RETURNING id, slug, name, status, rate_plan, created_at
"""


async def insert_tenant(conn: asyncpg.Connection, *, slug: str, name: str) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(INSERT_TENANT, slug, name)
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


def tenant_id_of(row: asyncpg.Record) -> UUID:
    value: UUID = row["id"]
    return value
