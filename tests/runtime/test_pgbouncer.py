"""The real API behind PgBouncer in transaction mode (a managed-PostgreSQL setup):
tenant isolation and idempotency still hold when every transaction may run on
another server connection and two tenants share the same two server connections."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from infra.pgbouncer import LocalPgBouncer, free_port
from tests.factories import Factory, TenantCtx
from tests.services import API_ROLE, ApiServer, Database, api_env

POOL_SIZE = 2  # server connections per (database, role): tenants must share them


@pytest.fixture(scope="module")
def bouncer(db: Database, workdir: Path) -> Iterator[LocalPgBouncer]:
    server = LocalPgBouncer(
        dir=workdir / "pgbouncer",
        port=free_port(),
        server_port=db.pg.port,
        users={API_ROLE: db.api_password},
        default_pool_size=POOL_SIZE,
    )
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def bounced_api(db: Database, bouncer: LocalPgBouncer, workdir: Path) -> Iterator[ApiServer]:
    env = api_env(
        db,
        CONECTADES_DATABASE_URL=bouncer.dsn(API_ROLE),
        CONECTADES_DB_STATEMENT_CACHE_SIZE="0",
        CONECTADES_DB_POOL_MIN="4",
        CONECTADES_DB_POOL_MAX="16",
    )
    env.pop("CONECTADES_REDIS_URL", None)  # no response cache: every read goes through
    server = ApiServer(env, workers=1, log=workdir / "api-pgbouncer.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bclient(bounced_api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bounced_api.url, timeout=30) as c:
        yield c


def server_connections(bouncer: LocalPgBouncer) -> int:
    """PgBouncer's connections to PostgreSQL for the API role (whatever their state)."""
    return sum(row["user"] == API_ROLE for row in bouncer.show("SERVERS", API_ROLE))


def test_tenants_sharing_server_connections_only_see_their_own_rows(
    db: Database, bclient: httpx.Client, bounced_api: ApiServer, bouncer: LocalPgBouncer
) -> None:
    factory = Factory(db, bclient)
    tenants = [factory.tenant(), factory.tenant()]
    own: dict[uuid.UUID, dict[str, set[str]]] = {}
    for t in tenants:
        campaigns = [factory.campaign(t) for _ in range(3)]
        donations = [factory.donation(t, c)["id"] for c in campaigns for _ in range(2)]
        own[t.id] = {"campaigns": {c["id"] for c in campaigns}, "donations": set(donations)}

    def work(i: int) -> tuple[TenantCtx, str, httpx.Response]:
        t, other = tenants[i % 2], tenants[(i + 1) % 2]
        kind = ("campaigns", "donations", "foreign-campaign", "foreign-donation")[(i // 2) % 4]
        if kind in ("campaigns", "donations"):
            return t, kind, bclient.get(f"/api/v1/{kind}?limit=100", headers=t.headers)
        plural = kind.removeprefix("foreign-") + "s"
        foreign = sorted(own[other.id][plural])[i % 3]
        return t, kind, bclient.get(f"/api/v1/{plural}/{foreign}", headers=t.headers)

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(work, range(240)))

    for tenant, kind, r in results:
        if kind.startswith("foreign"):
            assert r.status_code == 404, (kind, r.text)
            continue
        assert r.status_code == 200, r.text
        ids = {row["id"] for row in r.json()["data"]}
        # Exactly this tenant's rows: none of the other's, and all of its own.
        assert ids == own[tenant.id][kind], (kind, ids ^ own[tenant.id][kind])
    # All of that ran over PgBouncer's few server connections, not one per request.
    assert 0 < server_connections(bouncer) <= POOL_SIZE


async def _leak_probe(dsn: str) -> tuple[int, int, int]:
    """(same-backend reads after a set_config(.., true) that saw it, same-backend reads
    in total, same-backend reads after a session set_config(.., false) that saw it)."""
    tenant = str(uuid.uuid4())
    conns = [await asyncpg.connect(dsn, statement_cache_size=0) for _ in range(6)]
    try:
        leaked = same = 0
        for writer in conns:
            async with writer.transaction():
                await writer.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
                pid = await writer.fetchval("SELECT pg_backend_pid()")
            for reader in conns:
                row = await reader.fetchrow(
                    "SELECT pg_backend_pid() AS pid, current_setting('app.tenant_id', true) AS t"
                )
                if row["pid"] == pid:
                    same += 1
                    leaked += row["t"] == tenant
        # The control: a session-level set_config is exactly what would leak.
        await conns[0].execute("SELECT set_config('app.tenant_id', $1, false)", tenant)
        session_pid = await conns[0].fetchval("SELECT pg_backend_pid()")
        session_leaks = 0
        for reader in conns[1:]:
            row = await reader.fetchrow(
                "SELECT pg_backend_pid() AS pid, current_setting('app.tenant_id', true) AS t"
            )
            session_leaks += row["pid"] == session_pid and row["t"] == tenant
        await conns[0].execute("RESET app.tenant_id")
        return leaked, same, session_leaks
    finally:
        for conn in conns:
            await conn.close()


def test_set_config_local_does_not_leak_to_the_next_transaction_on_that_connection(
    db: Database, bouncer: LocalPgBouncer
) -> None:
    leaked, same, session_leaks = asyncio.run(_leak_probe(bouncer.dsn(API_ROLE)))
    assert same > 0, "no read ran on the writer's server connection: the probe proves nothing"
    assert leaked == 0
    # The probe can see a leak: a session-level setting does cross to other clients.
    assert session_leaks > 0


def test_concurrent_duplicate_donations_through_pgbouncer_create_each_once(
    db: Database, bclient: httpx.Client, bounced_api: ApiServer
) -> None:
    factory = Factory(db, bclient)
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    item = campaign["items"][0]["id"]
    keys = [f"pgb-{secrets.token_hex(6)}" for _ in range(8)]
    quantity = {key: i + 1 for i, key in enumerate(keys)}

    def post(key: str) -> httpx.Response:
        headers = {**tenant.headers, "Idempotency-Key": key}
        body: dict[str, Any] = {"item_id": item, "quantity": quantity[key], "donor_name": "Ana"}
        for _ in range(100):
            r = bclient.post(f"/api/v1/campaigns/{campaign['id']}/donations", json=body,
                             headers=headers)  # fmt: skip
            if r.status_code != 409:  # 409: the same key is in flight; retry
                return r
        return r

    with ThreadPoolExecutor(24) as pool:
        responses = list(pool.map(post, [k for k in keys for _ in range(6)]))

    by_key: dict[str, set[str]] = {}
    for key, r in zip([k for k in keys for _ in range(6)], responses, strict=True):
        assert r.status_code == 201, r.text
        by_key.setdefault(key, set()).add(r.json()["id"])
    assert all(len(ids) == 1 for ids in by_key.values()), by_key
    rows = db.fetch("SELECT id::text, quantity FROM donation WHERE campaign_id = $1",
                    uuid.UUID(campaign["id"]))  # fmt: skip
    assert {r["id"] for r in rows} == {next(iter(ids)) for ids in by_key.values()}
    pending = db.fetchval(
        "SELECT pending_quantity FROM item_totals WHERE item_id = $1", uuid.UUID(item)
    )
    assert pending == sum(quantity.values()) == sum(r["quantity"] for r in rows)
