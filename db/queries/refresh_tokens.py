"""Refresh tokens of staff users: one row per token, rotated within a family."""

# The statement names contain "TOKEN"; they are SQL, not secrets.
# ruff: noqa: S105

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

INSERT_REFRESH_TOKEN = """
INSERT INTO refresh_token (id, tenant_id, user_id, family_id, expires_at)
VALUES ($2, $1, $3, $4, $5)
"""
# Atomic: of two concurrent uses of one token, exactly one gets the row back.
USE_REFRESH_TOKEN = """
UPDATE refresh_token SET used_at = now()
WHERE tenant_id = $1 AND id = $2 AND user_id = $3 AND family_id = $4
  AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
RETURNING id
"""
SELECT_REFRESH_TOKEN = """
SELECT id, user_id, family_id, expires_at, used_at, revoked_at
FROM refresh_token WHERE tenant_id = $1 AND id = $2
"""
# An expired token is refused before its row is read (the JWT's exp, checked with
# a few seconds' leeway), so once it is an hour past expiry its row is no longer
# needed, used or not: reuse detection only matters while the token could pass.
DELETE_EXPIRED = """
DELETE FROM refresh_token
WHERE id IN (
    SELECT id FROM refresh_token WHERE expires_at <= now() - interval '1 hour' LIMIT $1
) AND expires_at <= now() - interval '1 hour'
"""
REVOKE_FAMILY = """
UPDATE refresh_token SET revoked_at = now()
WHERE tenant_id = $1 AND family_id = $2 AND revoked_at IS NULL
"""


async def insert_refresh_token(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    token_id: UUID,
    user_id: UUID,
    family_id: UUID,
    expires_at: datetime,
) -> None:
    await conn.execute(INSERT_REFRESH_TOKEN, tenant_id, token_id, user_id, family_id, expires_at)


async def use_refresh_token(
    conn: asyncpg.Connection, *, tenant_id: UUID, token_id: UUID, user_id: UUID, family_id: UUID
) -> bool:
    """Mark a live token used; False if it was not live (used, revoked, expired, unknown)."""
    used = await conn.fetchval(USE_REFRESH_TOKEN, tenant_id, token_id, user_id, family_id)
    return used is not None


async def select_refresh_token(
    conn: asyncpg.Connection, *, tenant_id: UUID, token_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_REFRESH_TOKEN, tenant_id, token_id)
    return row


async def revoke_family(conn: asyncpg.Connection, *, tenant_id: UUID, family_id: UUID) -> int:
    """Revoke every live token of a family; how many were revoked."""
    status: str = await conn.execute(REVOKE_FAMILY, tenant_id, family_id)
    return int(status.split()[-1])


async def delete_expired(conn: asyncpg.Connection, *, limit: int) -> int:
    """Owner-role maintenance (all tenants): at most `limit` tokens expired over an hour
    ago; how many went."""
    status: str = await conn.execute(DELETE_EXPIRED, limit)
    return int(status.split()[-1])
