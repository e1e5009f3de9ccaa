"""Transactions scoped to one tenant: row-level security reads `app.tenant_id`,
set with `set_config(..., true)` so it ends with the transaction (safe behind
PgBouncer in transaction mode and on pooled connections)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"
# BEGIN and the tenant in one simple-query message: one round trip instead of two.
# Every API request that touches tenant data pays this, and a statement costs
# more in asyncpg's protocol code than the short queries themselves (a third of a
# worker's CPU in the 1000-user load run was statement plumbing). The value is a
# literal here because the simple protocol has no parameters: it is the canonical
# text of a UUID object (hex digits and dashes), never caller text.
BEGIN_AS_TENANT = "BEGIN; SELECT set_config('app.tenant_id', '{}', true)"
# An idempotency key's transaction-scoped lock in the same message (migration 0025:
# raises 55P03 lock_not_available when another transaction holds it).
AND_LOCK = "; SELECT idempotency_lock({})"


def begin_as_tenant(tenant_id: UUID, lock: int | None = None) -> str:
    if not isinstance(tenant_id, UUID):  # a str would be spliced into SQL
        raise TypeError(f"tenant_id must be a UUID, not {type(tenant_id).__name__}")
    begin = BEGIN_AS_TENANT.format(tenant_id)
    if lock is None:
        return begin
    if type(lock) is not int:  # likewise: only an int's own digits are spliced
        raise TypeError(f"lock must be an int, not {type(lock).__name__}")
    return begin + AND_LOCK.format(lock)


@asynccontextmanager
async def tenant_transaction(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    acquire_timeout: float = 5.0,
    lock: int | None = None,
) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction as `tenant_id`; committed when the block
    ends, rolled back when it raises. With `lock`, the transaction also holds that
    advisory lock from its first round trip, or the block is not entered: BEGIN
    raises `asyncpg.LockNotAvailableError` (api/idempotency.py: `key_transaction`).

    Not asyncpg's `conn.transaction()` (its BEGIN is a round trip of its own); the
    code inside must not open one either (it would issue a second BEGIN and commit
    this transaction early). If the rollback itself fails, the pool's release rolls
    back a transaction still open (asyncpg checks the server's transaction status).

    BEGIN is inside the `try`: a request cancelled while BEGIN runs (its client went
    away) is rolled back here, not by the pool's release, which logs "Resetting
    connection with an active transaction" for it (hundreds a minute under load).
    The ROLLBACK, a simple query, also ends an extended-query sequence that a
    cancellation cut short (see db/pool.py: `resync`)."""
    begin = begin_as_tenant(tenant_id, lock)
    async with pool.acquire(timeout=acquire_timeout) as conn:
        try:
            await conn.execute(begin)
            yield conn
        except BaseException:
            # Nothing to roll back on a connection the server closed; asyncpg has
            # already detached it from this proxy (even `is_closed()` raises then),
            # and the original error is the one to report.
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
