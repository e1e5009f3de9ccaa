"""Credential lookups (before the tenant is known: SECURITY DEFINER functions)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

SELECT_API_KEY = "SELECT * FROM auth_api_key($1)"
TOUCH_API_KEY = "SELECT touch_api_key($1)"


async def find_api_key(conn: asyncpg.Connection, prefix: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_API_KEY, prefix)
    return row


async def touch_api_key(conn: asyncpg.Connection, key_id: UUID) -> None:
    await conn.execute(TOUCH_API_KEY, key_id)
