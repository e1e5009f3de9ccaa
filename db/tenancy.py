"""Transactions scoped to one tenant: row-level security reads `app.tenant_id`,
set with `set_config(..., true)` so it ends with the transaction (safe behind
PgBouncer in transaction mode and on pooled connections)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"


@asynccontextmanager
async def tenant_transaction(
    pool: asyncpg.Pool, tenant_id: UUID, *, acquire_timeout: float = 5.0
) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire(timeout=acquire_timeout) as conn, conn.transaction():
        await conn.execute(SET_TENANT, str(tenant_id))
        yield conn
