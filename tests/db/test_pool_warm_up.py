"""A new API pool connection runs the public reads' statements once before it is
handed out (db/pool.py: warmed); a failing warm-up keeps the connection."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import asyncpg
import pytest

from db.pool import RoleGuard, close_pool, create_pool, warmed
from db.queries.public import SELECT_CAMPAIGN_VIEW, warm_public_reads
from tests.services import Database

PREPARED = "SELECT statement FROM pg_prepared_statements"
CURRENT_TENANT = "SELECT current_setting('app.tenant_id', true)"


async def test_a_new_connection_is_warmed_before_it_is_handed_out(db: Database) -> None:
    pool = await create_pool(
        db.api_dsn, min_size=1, max_size=1, command_timeout=5, statement_cache_size=100,
        init=warmed(RoleGuard(), warm_public_reads),
    )  # fmt: skip
    try:
        async with pool.acquire() as conn:
            prepared = [r["statement"] for r in await conn.fetch(PREPARED)]
            assert SELECT_CAMPAIGN_VIEW in prepared
            assert any("FROM public_campaign" in s and "ORDER BY" in s for s in prepared)
            # It left nothing behind: no transaction, no tenant.
            assert not conn.is_in_transaction()
            assert await conn.fetchval(CURRENT_TENANT) in (None, "")
    finally:
        await pool.close()


async def test_a_failing_warm_up_keeps_the_connection(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(conn: asyncpg.Connection) -> None:
        await conn.fetchval("SELECT 1 / 0")

    pool = await create_pool(
        db.api_dsn, min_size=1, max_size=1, command_timeout=5, statement_cache_size=100,
        init=warmed(RoleGuard(), broken),
    )  # fmt: skip
    try:
        with caplog.at_level(logging.WARNING, logger="conectades.db"):
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT 41 + 1") == 42
        assert "warming a new connection failed" in caplog.text
    finally:
        await pool.close()


async def test_a_connection_never_released_does_not_keep_the_worker_from_stopping(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """`Pool.close()` waits for every connection to be released, forever: a stopping
    worker bounds the wait (db/pool.py: close_pool) and closes the pool anyway."""
    pool = await create_pool(
        db.api_dsn, min_size=1, max_size=2, command_timeout=5, statement_cache_size=100
    )
    app = SimpleNamespace(ctx=SimpleNamespace(pool=pool))
    held = await pool.acquire()  # never released, as a leaked connection
    with caplog.at_level(logging.WARNING, logger="conectades.db"):
        await asyncio.wait_for(close_pool(app, grace=0.5), timeout=10)  # type: ignore[arg-type]
    assert app.ctx.pool is None
    assert "still in use after" in caplog.text
    assert pool.is_closing()  # closed: the held connection went with it
    del held
