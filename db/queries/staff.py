"""Staff users of one tenant (logins, roles).

Changing a user's password, role or active flag adds one to their
`session_version`, which ends every session they have (tenants/tokens.py)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

USER_COLUMNS = "id, tenant_id, username, role, active, created_at"

INSERT_STAFF_USER = f"""
INSERT INTO staff_user (tenant_id, username, password_hash, role)
VALUES ($1, $2, $3, $4)
RETURNING {USER_COLUMNS}
"""
SELECT_STAFF_USERS = f"""
SELECT {USER_COLUMNS} FROM staff_user
WHERE tenant_id = $1
ORDER BY username
"""
UPDATE_STAFF_PASSWORD = f"""
UPDATE staff_user SET password_hash = $3, session_version = session_version + 1
WHERE tenant_id = $1 AND username = $2
RETURNING {USER_COLUMNS}
"""
# On the right of SET, `active` and `role` are the values before the update: only
# a real change ends the sessions (enabling an enabled user logs nobody out).
UPDATE_STAFF_ACTIVE = f"""
UPDATE staff_user
SET active = $3, session_version = session_version + (active IS DISTINCT FROM $3)::int
WHERE tenant_id = $1 AND username = $2
RETURNING {USER_COLUMNS}
"""
UPDATE_STAFF_ROLE = f"""
UPDATE staff_user
SET role = $3, session_version = session_version + (role IS DISTINCT FROM $3)::int
WHERE tenant_id = $1 AND username = $2
RETURNING {USER_COLUMNS}
"""
END_STAFF_SESSIONS = """
UPDATE staff_user SET session_version = session_version + 1
WHERE tenant_id = $1 AND id = $2
"""
# Not a password change: the same password, so the sessions stay.
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


async def select_staff_users(conn: asyncpg.Connection, *, tenant_id: UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_STAFF_USERS, tenant_id)
    return rows


async def update_staff_password(
    conn: asyncpg.Connection, *, tenant_id: UUID, username: str, password_hash: str
) -> asyncpg.Record | None:
    """Set the password and end the user's sessions; None if there is no such user."""
    row: asyncpg.Record | None = await conn.fetchrow(
        UPDATE_STAFF_PASSWORD, tenant_id, username, password_hash
    )
    return row


async def update_staff_active(
    conn: asyncpg.Connection, *, tenant_id: UUID, username: str, active: bool
) -> asyncpg.Record | None:
    """Enable or disable a user, ending their sessions if that changed anything."""
    row: asyncpg.Record | None = await conn.fetchrow(
        UPDATE_STAFF_ACTIVE, tenant_id, username, active
    )
    return row


async def update_staff_role(
    conn: asyncpg.Connection, *, tenant_id: UUID, username: str, role: str
) -> asyncpg.Record | None:
    """Change a user's role, ending their sessions if that changed anything."""
    row: asyncpg.Record | None = await conn.fetchrow(UPDATE_STAFF_ROLE, tenant_id, username, role)
    return row


async def end_staff_sessions(conn: asyncpg.Connection, *, tenant_id: UUID, user_id: UUID) -> None:
    """Refuse every token issued to the user so far (a reused refresh token)."""
    await conn.execute(END_STAFF_SESSIONS, tenant_id, user_id)


async def rehash_staff_password(
    conn: asyncpg.Connection, *, user_id: UUID, old_hash: str, new_hash: str
) -> None:
    """Replace a hash made with older parameters, unless the password changed meanwhile."""
    await conn.execute(REHASH_STAFF_USER, user_id, old_hash, new_hash)
