"""Staff users of one tenant (logins, roles)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

USER_COLUMNS = "id, tenant_id, username, role, active, created_at"

INSERT_STAFF_USER = f"""
INSERT INTO staff_user (tenant_id, username, password_hash, role)
VALUES ($1, $2, $3, $4)
RETURNING {USER_COLUMNS}
"""
UPDATE_STAFF_PASSWORD = f"""
UPDATE staff_user SET password_hash = $3
WHERE tenant_id = $1 AND username = $2
RETURNING {USER_COLUMNS}
"""

REHASH_STAFF_USER = """
UPDATE staff_user SET password_hash = $3
WHERE id = $1 AND password_hash = $2
"""


async def insert_staff_user(
    conn: asyncpg.Connection, *, tenant_id: UUID, username: str, password_hash: str, role: str
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        INSERT_STAFF_USER, tenant_id, username, password_hash, role
    )
    return row


async def update_staff_password(
    conn: asyncpg.Connection, *, tenant_id: UUID, username: str, password_hash: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        UPDATE_STAFF_PASSWORD, tenant_id, username, password_hash
    )
    return row


async def rehash_staff_password(
    conn: asyncpg.Connection, *, user_id: UUID, old_hash: str, new_hash: str
) -> None:
    """Replace a hash made with older parameters, unless the password changed meanwhile."""
    await conn.execute(REHASH_STAFF_USER, user_id, old_hash, new_hash)
