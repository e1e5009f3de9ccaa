"""Row-level security checked directly in SQL as the API role (no API in between)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from db.pool import UnsafeRoleError, check_api_role, create_pool
from db.tenancy import tenant_transaction
from tests.factories import Factory, TenantCtx
from tests.services import ApiServer, Database, api_env

SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"
TENANT_TABLES = [
    "tenant", "api_key", "staff_user", "refresh_token", "campaign", "campaign_item",
    "donation", "item_total_slot", "idempotency_record", "audit_log",
]  # fmt: skip


CURRENT_TENANT = "SELECT current_setting('app.tenant_id', true)"


def insert_campaign(db: Database, tenant: TenantCtx) -> uuid.UUID:
    campaign_id: uuid.UUID = db.fetchval(
        "INSERT INTO campaign (tenant_id, slug, title, status) "
        "VALUES ($1, $2, 'RLS probe', 'published') RETURNING id",
        tenant.id,
        f"rls-{uuid.uuid4().hex[:8]}",
    )
    return campaign_id


@pytest.fixture
async def api_conn(db: Database) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db.api_dsn)
    yield conn
    await conn.close()


def test_every_tenant_table_has_forced_rls(db: Database) -> None:
    rows = db.fetch(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relname = ANY($1::text[]) AND relkind = 'r'",
        TENANT_TABLES,
    )
    assert {r["relname"] for r in rows} == set(TENANT_TABLES)
    for r in rows:
        assert r["relrowsecurity"] and r["relforcerowsecurity"], r["relname"]


async def test_no_tenant_set_sees_no_rows(
    db: Database, factory: Factory, api_conn: asyncpg.Connection
) -> None:
    tenant = factory.tenant()
    insert_campaign(db, tenant)
    assert await api_conn.fetchval("SELECT count(*) FROM campaign") == 0
    assert await api_conn.fetchval("SELECT count(*) FROM api_key") == 0
    assert await api_conn.fetchval("SELECT count(*) FROM tenant") == 0


async def test_tenant_sees_only_its_own_rows(
    db: Database, factory: Factory, api_conn: asyncpg.Connection
) -> None:
    a, b = factory.tenant(), factory.tenant()
    a_campaign, b_campaign = insert_campaign(db, a), insert_campaign(db, b)
    async with api_conn.transaction():
        await api_conn.execute(SET_TENANT, str(a.id))
        ids = {r["id"] for r in await api_conn.fetch("SELECT id FROM campaign")}
        tenants = {r["id"] for r in await api_conn.fetch("SELECT id FROM tenant")}
    assert a_campaign in ids
    assert b_campaign not in ids
    assert tenants == {a.id}


async def test_tenant_setting_ends_with_the_transaction(
    db: Database, factory: Factory, api_conn: asyncpg.Connection
) -> None:
    a = factory.tenant()
    insert_campaign(db, a)
    async with api_conn.transaction():
        await api_conn.execute(SET_TENANT, str(a.id))
        assert await api_conn.fetchval("SELECT count(*) FROM campaign") == 1
    assert await api_conn.fetchval("SELECT count(*) FROM campaign") == 0


async def test_insert_with_other_tenant_id_is_rejected(
    factory: Factory, api_conn: asyncpg.Connection
) -> None:
    a, b = factory.tenant(), factory.tenant()
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with api_conn.transaction():
            await api_conn.execute(SET_TENANT, str(a.id))
            await api_conn.execute(
                "INSERT INTO campaign (tenant_id, slug, title) VALUES ($1, 'sneaky', 'x')", b.id
            )


async def test_update_and_delete_of_other_tenant_rows_touch_nothing(
    db: Database, factory: Factory, api_conn: asyncpg.Connection
) -> None:
    a, b = factory.tenant(), factory.tenant()
    b_campaign = insert_campaign(db, b)
    async with api_conn.transaction():
        await api_conn.execute(SET_TENANT, str(a.id))
        updated = await api_conn.execute(
            "UPDATE campaign SET title = 'hijacked' WHERE id = $1", b_campaign
        )
        deleted = await api_conn.execute("DELETE FROM campaign WHERE id = $1", b_campaign)
    assert updated == "UPDATE 0"
    assert deleted == "DELETE 0"
    assert db.fetchval("SELECT title FROM campaign WHERE id = $1", b_campaign) == "RLS probe"


async def test_moving_own_row_to_other_tenant_is_rejected(
    db: Database, factory: Factory, api_conn: asyncpg.Connection
) -> None:
    a, b = factory.tenant(), factory.tenant()
    a_campaign = insert_campaign(db, a)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with api_conn.transaction():
            await api_conn.execute(SET_TENANT, str(a.id))
            await api_conn.execute(
                "UPDATE campaign SET tenant_id = $1 WHERE id = $2", b.id, a_campaign
            )


async def test_api_role_cannot_disable_rls(api_conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await api_conn.execute("ALTER TABLE campaign DISABLE ROW LEVEL SECURITY")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await api_conn.execute("SET row_security = off; SELECT count(*) FROM campaign")


async def test_api_role_passes_the_startup_check(api_conn: asyncpg.Connection) -> None:
    await check_api_role(api_conn)


async def test_owner_role_fails_the_startup_check(db: Database) -> None:
    conn = await asyncpg.connect(db.admin_dsn)
    try:
        with pytest.raises(UnsafeRoleError, match="SUPERUSER"):
            await check_api_role(conn)
    finally:
        await conn.close()


def test_api_refuses_to_start_as_superuser(db: Database, workdir) -> None:
    log = workdir / "api-superuser.log"
    server = ApiServer(api_env(db, CONECTADES_DATABASE_URL=db.admin_dsn), log=log)
    with pytest.raises(RuntimeError, match="exited"):
        server.start(timeout=30)
    server.stop()
    assert "refusing to start" in log.read_text()


def test_api_refuses_to_start_without_secrets(db: Database, workdir) -> None:
    log = workdir / "api-nosecret.log"
    env = api_env(db)
    del env["CONECTADES_JWT_SECRET"]
    server = ApiServer(env, log=log)
    with pytest.raises(RuntimeError, match="exited"):
        server.start(timeout=30)
    server.stop()
    assert "CONECTADES_JWT_SECRET" in log.read_text()


async def test_pooled_connection_carries_no_tenant_into_the_next_request(db: Database) -> None:
    """The pool skips asyncpg's session reset on release (db/pool.py): safe only because
    the tenant setting ends with its transaction, even on an error."""
    pool = await create_pool(
        db.api_dsn, min_size=1, max_size=1, command_timeout=5, statement_cache_size=100
    )
    try:
        tenant = uuid.uuid4()
        async with tenant_transaction(pool, tenant) as conn:
            assert await conn.fetchval(CURRENT_TENANT) == str(tenant)
        with pytest.raises(ZeroDivisionError):
            async with tenant_transaction(pool, tenant) as conn:
                raise ZeroDivisionError
        async with pool.acquire() as conn:  # max_size=1: the same connection
            assert await conn.fetchval(CURRENT_TENANT) in (None, "")
            assert not conn.is_in_transaction()
    finally:
        await pool.close()


async def test_tenant_transaction_commits_on_success_and_rolls_back_on_error(
    db: Database, factory: Factory
) -> None:
    """db/tenancy.py sends BEGIN itself (with the tenant, one round trip), so it also
    ends the transaction itself: a block that raises, from Python or from SQL, leaves
    nothing behind; a block that ends commits."""
    tenant = factory.tenant()
    pool = await create_pool(
        db.api_dsn, min_size=1, max_size=1, command_timeout=5, statement_cache_size=100
    )
    title = f"tx-{uuid.uuid4().hex[:8]}"
    insert = "INSERT INTO campaign (tenant_id, slug, title) VALUES ($1, $2, $3)"
    try:
        with pytest.raises(ZeroDivisionError):
            async with tenant_transaction(pool, tenant.id) as conn:
                await conn.execute(insert, tenant.id, f"{title}-a", title)
                raise ZeroDivisionError
        with pytest.raises(asyncpg.UniqueViolationError):
            async with tenant_transaction(pool, tenant.id) as conn:
                await conn.execute(insert, tenant.id, f"{title}-b", title)
                await conn.execute(insert, tenant.id, f"{title}-b", title)
        async with tenant_transaction(pool, tenant.id) as conn:
            await conn.execute(insert, tenant.id, f"{title}-c", title)
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
        slugs = db.fetch("SELECT slug FROM campaign WHERE title = $1", title)
        assert [r["slug"] for r in slugs] == [f"{title}-c"]
        with pytest.raises(TypeError):
            async with tenant_transaction(pool, str(tenant.id)):  # type: ignore[arg-type]
                pass
    finally:
        await pool.close()


async def test_public_page_functions_set_the_tenant_for_their_statement_only(
    db: Database, factory: Factory, api_conn: asyncpg.Connection
) -> None:
    """Migration 0008's functions set app.tenant_id inside the statement that calls
    them: RLS limits what they read to that tenant, and nothing is left on the
    connection afterwards."""
    a, b = factory.tenant(), factory.tenant()
    insert_campaign(db, a)
    slug_b = db.fetchval("SELECT slug FROM campaign WHERE id = $1", insert_campaign(db, b))
    # B's slug asked as A: nothing (the filter says A, and RLS says A too).
    assert await api_conn.fetch("SELECT * FROM public_campaign_page($1, $2)", a.id, slug_b) == []
    rows = await api_conn.fetch("SELECT * FROM public_campaign_page($1, $2)", b.id, slug_b)
    assert [r["slug"] for r in rows] == [slug_b]
    assert await api_conn.fetchval(CURRENT_TENANT) in (None, "")
    # Without a tenant the API role sees no campaign at all.
    assert await api_conn.fetchval("SELECT count(*) FROM campaign") == 0
    donations = await api_conn.fetch(
        "SELECT * FROM public_campaign_donations($1, $2, NULL, NULL, 5)", b.id, slug_b
    )
    assert [(r["campaign_status"], r["id"]) for r in donations] == [("published", None)]
    assert await api_conn.fetchval(CURRENT_TENANT) in (None, "")
