"""Staff login lookups (before the tenant is known: SECURITY DEFINER functions)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

SELECT_LOGIN_CANDIDATES = "SELECT * FROM auth_staff_login($1, $2)"
SELECT_STAFF_STATE = "SELECT * FROM auth_staff($1)"


async def find_login_candidates(
    conn: asyncpg.Connection, *, username: str, tenant_slug: str | None
) -> list[asyncpg.Record]:
    """The user of that tenant, or (no tenant) up to four active users of active tenants,
    each with its password hash and session_version."""
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_LOGIN_CANDIDATES, username, tenant_slug)
    return rows


async def find_staff_state(conn: asyncpg.Connection, user_id: UUID) -> asyncpg.Record | None:
    """tenant_id, role, active, tenant_status and session_version of a staff user, or None."""
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_STAFF_STATE, user_id)
    return row
