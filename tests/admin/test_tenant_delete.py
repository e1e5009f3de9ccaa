"""`conectades tenant delete`: every row of the tenant goes, nobody else's, with an audit
line; its cached public pages go with it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

from db.queries import tenants as tq
from infra.redis import LocalRedis
from tests.factories import Factory, TenantCtx
from tests.services import Database, run_cli

PASSWORD = "uma-senha-longa-1"

TENANT_TABLES = """
SELECT c.table_name FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
"""


def populated(factory: Factory, client: httpx.Client) -> tuple[TenantCtx, dict[str, Any]]:
    """A tenant with a row in every tenant table: key, staff user, refresh token,
    campaign, items, totals, donations, an idempotency record, events, a webhook
    endpoint and its deliveries, email jobs and audit rows."""
    tenant = factory.tenant()
    # Straight into the table: the API refuses a loopback destination by default.
    factory.db.execute(
        "INSERT INTO webhook_endpoint (tenant_id, url, event_types, secret)"
        " VALUES ($1, 'https://receiver.example.org/hook', ARRAY['donation.created'],"
        " decode(repeat('ab', 32), 'hex'))",
        tenant.id,
    )
    campaign = factory.campaign(tenant)
    factory.donation(tenant, campaign)
    pledge = client.post(
        f"/api/public/{tenant.slug}/campaigns/{campaign['slug']}/donations",
        json={
            "item_id": campaign["items"][1]["id"],
            "quantity": 3,
            "donor_name": "Ana",
            "donor_contact": "ana@example.org",
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert pledge.status_code == 201, pledge.text
    factory.staff_user(tenant, "maria", "editor", PASSWORD)
    login = client.post(
        "/api/token/", json={"username": "maria", "password": PASSWORD, "tenant": tenant.slug}
    )
    assert login.status_code == 200, login.text
    return tenant, campaign


def rows_of(db: Database, tenant_id: uuid.UUID) -> dict[str, int]:
    counts = {
        r["table_name"]: db.fetchval(
            f"SELECT count(*) FROM {r['table_name']} WHERE tenant_id = $1",
            tenant_id,
        )
        for r in db.fetch(TENANT_TABLES)
    }
    counts["tenant"] = db.fetchval("SELECT count(*) FROM tenant WHERE id = $1", tenant_id)
    return counts


def audit_line(stderr: str) -> dict[str, Any]:
    lines = [json.loads(x) for x in stderr.splitlines() if x.startswith('{"audit"')]
    assert len(lines) == 1, stderr
    line: dict[str, Any] = lines[0]
    return line


def test_delete_statements_cover_every_table_with_a_tenant_id(db: Database) -> None:
    # A migration that adds a tenant table must add it to DELETE_TENANT_ROWS too.
    covered = {table for table, _ in tq.DELETE_TENANT_ROWS}
    assert {r["table_name"] for r in db.fetch(TENANT_TABLES)} | {"tenant"} == covered


def test_tenant_delete_removes_every_row_and_only_its_own(
    db: Database, factory: Factory, client: httpx.Client
) -> None:
    tenant, _ = populated(factory, client)
    other, _ = populated(factory, client)
    # Folded as the worker does (migration 0028): each item keeps slot 0 only, so
    # the totals trigger that the donations' deletes run inserts slot rows again
    # (15 times in 16); they must not be counted as the tenant's rows.
    db.fetchval("SELECT compact_item_totals(100000)")
    before = rows_of(db, tenant.id)
    assert all(before.values()), before  # a row in every table, so each delete is tested
    others = rows_of(db, other.id)

    done = run_cli(db, "tenant", "delete", tenant.slug, "--yes", "--json")

    assert done.returncode == 0, done.stderr
    assert set(rows_of(db, tenant.id).values()) == {0}
    assert rows_of(db, other.id) == others
    removed = json.loads(done.stdout)["rows"]
    assert removed == before
    audit = audit_line(done.stderr)
    assert audit["audit"] == "tenant.delete"
    assert audit["tenant"] == tenant.slug and audit["tenant_id"] == str(tenant.id)
    assert audit["rows"] == before
    assert audit["os_user"] and audit["at"]
    # Its key no longer authenticates (the workers' key memo lasts up to 5 s).
    deadline = time.monotonic() + 10
    while client.get("/api/v1/campaigns", headers=tenant.headers).status_code != 401:
        assert time.monotonic() < deadline
        time.sleep(0.25)


def test_tenant_delete_asks_for_the_slug_again(
    db: Database, factory: Factory, client: httpx.Client
) -> None:
    tenant = factory.tenant()
    factory.campaign(tenant)

    wrong = run_cli(db, "tenant", "delete", tenant.slug, input="other-slug\n")
    assert wrong.returncode != 0
    assert "nothing was deleted" in wrong.stderr
    assert "audit" not in wrong.stderr
    assert db.fetchval("SELECT count(*) FROM campaign WHERE tenant_id = $1", tenant.id) == 1

    no_input = run_cli(db, "tenant", "delete", tenant.slug, input="")
    assert no_input.returncode != 0
    assert db.fetchval("SELECT count(*) FROM tenant WHERE id = $1", tenant.id) == 1

    right = run_cli(db, "tenant", "delete", tenant.slug, input=f"{tenant.slug}\n")
    assert right.returncode == 0, right.stderr
    assert db.fetchval("SELECT count(*) FROM tenant WHERE id = $1", tenant.id) == 0
    assert audit_line(right.stderr)["rows"]["campaign"] == 1


def test_tenant_delete_of_unknown_slug_fails_cleanly(db: Database) -> None:
    done = run_cli(db, "tenant", "delete", "no-such-tenant", "--yes")
    assert done.returncode == 1
    assert "no tenant with slug" in done.stderr and "Traceback" not in done.stderr


def test_deleted_tenants_cached_pages_are_gone_from_the_api(
    db: Database, factory: Factory, client: httpx.Client, redis_server: LocalRedis
) -> None:
    tenant, campaign = populated(factory, client)
    pages = [
        f"/api/public/{tenant.slug}/campaigns",
        f"/api/public/{tenant.slug}/campaigns/{campaign['slug']}",
    ]
    for path in pages:
        assert client.get(path).status_code == 200
        assert client.get(path).headers.get("X-Cache") == "HIT"  # cached in Redis
    directory = client.get("/api/public/campaigns", params={"q": campaign["title"]})
    assert directory.status_code == 200

    done = run_cli(db, "tenant", "delete", tenant.slug, "--yes", redis_url=redis_server.url)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr

    # The workers remember active tenants by slug for 1 s; the Redis entries are purged.
    time.sleep(1.2)
    for path in pages:
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code, r.headers.get("X-Cache"))
    listed = client.get("/api/public/campaigns", params={"status": "all", "limit": 100}).json()
    assert all(c["tenant"]["slug"] != tenant.slug for c in listed["data"])
