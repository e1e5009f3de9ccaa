"""The old API's listing: integer ids of categories and locations (migration 0013)
and the items of a page of public campaigns."""

from __future__ import annotations

from uuid import UUID

import asyncpg

SELECT_CATEGORY_SLUG = "SELECT slug FROM legacy_category WHERE id = $1"
SELECT_LOCATION_NAME = "SELECT name FROM legacy_location WHERE id = $1"
SELECT_CATEGORY_IDS = "SELECT slug, id FROM legacy_category WHERE slug = ANY($1::text[])"
SELECT_LOCATION_IDS = "SELECT name, id FROM legacy_location WHERE name = ANY($1::text[])"
SELECT_ITEMS = """
SELECT id, campaign_id, name, unit, quantity_requested, contributed, created_at
FROM public_campaign_item
WHERE campaign_id = ANY($1::uuid[])
ORDER BY campaign_id, created_at, id
"""


async def category_slug(conn: asyncpg.Connection, *, category_id: int) -> str | None:
    slug: str | None = await conn.fetchval(SELECT_CATEGORY_SLUG, category_id)
    return slug


async def location_name(conn: asyncpg.Connection, *, location_id: int) -> str | None:
    name: str | None = await conn.fetchval(SELECT_LOCATION_NAME, location_id)
    return name


async def category_ids(conn: asyncpg.Connection, *, slugs: list[str]) -> dict[str, int]:
    return {r["slug"]: r["id"] for r in await conn.fetch(SELECT_CATEGORY_IDS, slugs)}


async def location_ids(conn: asyncpg.Connection, *, names: list[str]) -> dict[str, int]:
    return {r["name"]: r["id"] for r in await conn.fetch(SELECT_LOCATION_IDS, names)}


async def select_items(
    conn: asyncpg.Connection, *, campaign_ids: list[UUID]
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_ITEMS, campaign_ids)
    return rows
