"""API keys of one tenant."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

KEY_COLUMNS = "id, prefix, scopes, label, created_at, last_used_at, expires_at, revoked_at"

INSERT_KEY = f"""
INSERT INTO api_key (tenant_id, prefix, secret_hash, scopes, label, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {KEY_COLUMNS}
"""
SELECT_KEYS = f"""
SELECT {KEY_COLUMNS} FROM api_key
WHERE tenant_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $4
"""
SELECT_KEY = f"SELECT {KEY_COLUMNS} FROM api_key WHERE tenant_id = $1 AND id = $2"
REVOKE_KEY = f"""
UPDATE api_key SET revoked_at = coalesce(revoked_at, now())
WHERE tenant_id = $1 AND id = $2
RETURNING {KEY_COLUMNS}
"""
EXPIRE_KEY = f"""
UPDATE api_key SET expires_at = least(coalesce(expires_at, $3), $3)
WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL
RETURNING {KEY_COLUMNS}
"""


async def insert_key(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    prefix: str,
    secret_hash: bytes,
    scopes: list[str],
    label: str,
    expires_at: datetime | None,
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        INSERT_KEY, tenant_id, prefix, secret_hash, scopes, label, expires_at
    )
    return row


async def select_keys(
    conn: asyncpg.Connection,
    *,
    tenant_id: UUID,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    created, key_id = after if after else (None, None)
    rows: list[asyncpg.Record] = await conn.fetch(SELECT_KEYS, tenant_id, created, key_id, limit)
    return rows


async def select_key(
    conn: asyncpg.Connection, *, tenant_id: UUID, key_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_KEY, tenant_id, key_id)
    return row


async def revoke_key(
    conn: asyncpg.Connection, *, tenant_id: UUID, key_id: UUID
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(REVOKE_KEY, tenant_id, key_id)
    return row


async def expire_key(
    conn: asyncpg.Connection, *, tenant_id: UUID, key_id: UUID, at: datetime
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(EXPIRE_KEY, tenant_id, key_id, at)
    return row
