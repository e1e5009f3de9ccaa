"""Operator commands in the audit log: every state-changing `conectades` command writes
its row (actor `cli` and the OS user; one row per tenant it changed, or a tenant-less
row for an act on the whole database, which the API never sees), never a key or a
password; `conectades audit` reads them; `db prune` drops rows past the retention."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from admin.runtime import os_user
from tests.admin.conftest import OwnDatabase
from tests.factories import Factory, TenantCtx
from tests.services import Database, run_cli

PASSWORD = "senha-do-operador-77"


def cli(db: Database, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    done = run_cli(db, *args, **kw)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "was not written" not in done.stderr
    return done


def rows(db: Database, action: str, tenant_id: uuid.UUID | None = None) -> list[asyncpg.Record]:
    found: list[asyncpg.Record] = db.fetch(
        "SELECT * FROM audit_log WHERE action = $1 AND tenant_id IS NOT DISTINCT FROM $2 "
        "ORDER BY occurred_at",
        action,
        tenant_id,
    )
    return found


def one(db: Database, action: str, tenant_id: uuid.UUID | None = None, **expect: Any) -> Any:
    found = [r for r in rows(db, action, tenant_id) if all(r[k] == v for k, v in expect.items())]
    assert len(found) == 1, (action, found)
    row = found[0]
    assert row["actor_kind"] == "cli" and row["actor_id"] is None
    assert row["actor_display"] == os_user()
    assert row["success"] is True and row["status"] is None and row["method"] is None
    return row


@pytest.fixture
def slug(db: Database) -> str:
    value = f"aud-{uuid.uuid4().hex[:10]}"
    cli(db, "tenant", "create", value, "--name", "Auditada")
    return value


def tenant_id(db: Database, slug: str) -> uuid.UUID:
    value: uuid.UUID = db.fetchval("SELECT id FROM tenant WHERE slug = $1", slug)
    return value


def test_tenant_commands_write_a_row_in_the_tenant(db: Database, slug: str) -> None:
    tid = tenant_id(db, slug)
    row = one(db, "tenant.create", tid, resource_id=tid)
    assert row["resource_type"] == "tenant" and json.loads(row["detail"]) == {"slug": slug}
    cli(db, "tenant", "suspend", slug)
    cli(db, "tenant", "resume", slug)
    one(db, "tenant.suspend", tid, resource_id=tid)
    one(db, "tenant.resume", tid, resource_id=tid)


def test_key_commands_write_rows_without_the_key(db: Database, slug: str) -> None:
    tid = tenant_id(db, slug)
    issued = json.loads(cli(db, "key", "issue", "--tenant", slug, "--json").stdout)
    row = one(db, "key.issue", tid, resource_id=uuid.UUID(issued["id"]))
    assert json.loads(row["detail"])["prefix"] == issued["prefix"]
    rotated = json.loads(cli(db, "key", "rotate", "--tenant", slug, issued["id"], "--json").stdout)
    one(db, "key.rotate", tid, resource_id=uuid.UUID(rotated["id"]))
    cli(db, "key", "revoke", "--tenant", slug, rotated["id"])
    one(db, "key.revoke", tid, resource_id=uuid.UUID(rotated["id"]))
    dump = " ".join(
        r[0] for r in db.fetch("SELECT a::text FROM audit_log a WHERE tenant_id = $1", tid)
    )
    for key in (issued["key"], rotated["key"]):
        assert key not in dump and key.split("_", 3)[3] not in dump


def test_user_commands_write_rows_without_the_password(db: Database, slug: str) -> None:
    tid = tenant_id(db, slug)
    made = json.loads(
        cli(db, "user", "create", "--tenant", slug, "rita", "--role", "editor",
            "--password", PASSWORD, "--json").stdout
    )  # fmt: skip
    uid = uuid.UUID(made["id"])
    assert json.loads(one(db, "staff_user.create", tid, resource_id=uid)["detail"]) == {
        "username": "rita",
        "role": "editor",
    }
    generated = cli(db, "user", "passwd", "--tenant", slug, "rita").stdout.strip()
    cli(db, "user", "role", "--tenant", slug, "rita", "owner")
    cli(db, "user", "disable", "--tenant", slug, "rita")
    cli(db, "user", "enable", "--tenant", slug, "rita")
    for action in ("passwd", "role", "disable", "enable"):
        one(db, f"staff_user.{action}", tid, resource_id=uid)
    dump = " ".join(
        r[0] for r in db.fetch("SELECT a::text FROM audit_log a WHERE tenant_id = $1", tid)
    )
    assert PASSWORD not in dump and generated not in dump and len(generated) >= 16


def test_tenant_delete_leaves_one_operator_row_the_api_never_sees(
    db: Database, factory: Factory, client: httpx.Client
) -> None:
    tenant = factory.tenant()
    factory.campaign(tenant)  # an API row of the tenant
    assert rows(db, "campaign.create", tenant.id)
    cli(db, "tenant", "delete", tenant.slug, "--yes")
    assert db.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id = $1", tenant.id) == 0
    row = one(db, "tenant.delete", None, resource_id=tenant.id)
    assert json.loads(row["detail"])["tenant"] == tenant.slug

    other = factory.tenant()

    async def api_view() -> tuple[int, str]:
        conn = await asyncpg.connect(db.api_dsn)
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(other.id))
                seen = await conn.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id IS NULL")
            try:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT set_config('app.tenant_id', $1, true)", str(other.id)
                    )
                    await conn.execute(
                        "INSERT INTO audit_log (actor_kind, action, resource_type, success) "
                        "VALUES ('cli', 'x.y', 'x', true)"
                    )
            except asyncpg.PostgresError as exc:
                return seen, type(exc).__name__
            return seen, "inserted"
        finally:
            await conn.close()

    seen, insert = db.run(api_view())
    assert seen == 0 and insert == "InsufficientPrivilegeError"  # row-level security


def test_api_role_may_only_insert_and_select(db: Database, factory: Factory) -> None:
    tenant = factory.tenant()
    factory.campaign(tenant)

    async def attempt(sql: str) -> str:
        conn = await asyncpg.connect(db.api_dsn)
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant.id))
                await conn.execute(sql)
            return "done"
        except asyncpg.PostgresError as exc:
            return type(exc).__name__
        finally:
            await conn.close()

    assert db.run(attempt("UPDATE audit_log SET status = 200")) == "InsufficientPrivilegeError"
    assert db.run(attempt("DELETE FROM audit_log")) == "InsufficientPrivilegeError"
    assert db.run(attempt("TRUNCATE audit_log")) == "InsufficientPrivilegeError"
    assert db.run(attempt("SELECT count(*) FROM audit_log")) == "done"


def test_donor_erase_writes_one_row_per_tenant_it_changed(db: Database, factory: Factory) -> None:
    a, b, untouched = factory.tenant(), factory.tenant(), factory.tenant()
    contact = f"erase-{uuid.uuid4().hex[:8]}@example.org"
    for tenant in (a, b):
        factory.donation(tenant, factory.campaign(tenant), donor_contact=contact)
    cli(db, "donor", "erase", "--contact", contact, "--yes")
    for tenant in (a, b):
        assert json.loads(one(db, "donor.erase", tenant.id)["detail"])["donations"] == 2
    assert rows(db, "donor.erase", untouched.id) == []
    dump = " ".join(
        r[0] for r in db.fetch("SELECT a::text FROM audit_log a WHERE action LIKE 'donor.%'")
    )
    assert contact not in dump


def test_cache_purge_writes_a_row(db: Database, slug: str, redis_server: Any) -> None:
    cli(db, "cache", "purge", "--tenant", slug, redis_url=redis_server.url)
    one(db, "cache.purge", tenant_id(db, slug))


def test_audit_command_lists_api_and_cli_rows_with_filters(
    db: Database, factory: Factory, client: httpx.Client
) -> None:
    tenant: TenantCtx = factory.tenant()
    campaign = factory.campaign(tenant)
    cli(db, "key", "issue", "--tenant", tenant.slug)

    listed = json.loads(cli(db, "audit", "--tenant", tenant.slug, "--json").stdout)
    assert [r["action"] for r in listed] == ["key.issue", "campaign.create"]
    assert {r["tenant"] for r in listed} == {tenant.slug}
    api_row = listed[1]
    assert api_row["actor_kind"] == "api_key" and api_row["resource_id"] == campaign["id"]
    assert api_row["status"] == 201 and api_row["request_id"] and api_row["client_ip"]

    def ids(*args: str) -> list[str]:
        return [r["id"] for r in json.loads(cli(db, "audit", *args, "--json").stdout)]

    assert ids("--tenant", tenant.slug, "--action", "key.issue") == [listed[0]["id"]]
    assert ids("--resource", campaign["id"]) == [api_row["id"]]
    assert ids("--tenant", tenant.slug, "--actor", os_user(), "--limit", "5") == [listed[0]["id"]]
    assert ids("--tenant", tenant.slug, "--limit", "1") == [listed[0]["id"]]
    assert len(ids("--limit", "3")) == 3  # every tenant's, newest first

    table = cli(db, "audit", "--tenant", tenant.slug).stdout
    assert "campaign.create" in table and "key.issue" in table

    bad = run_cli(db, "audit", "--action", "not an action")
    assert bad.returncode == 2 and "--action" in bad.stderr
    unknown = run_cli(db, "audit", "--tenant", "no-such-tenant")
    assert unknown.returncode == 1 and "no tenant" in unknown.stderr


def test_prune_drops_audit_rows_past_the_retention(db: Database, slug: str) -> None:
    tid = tenant_id(db, slug)
    old = db.fetchval(
        "INSERT INTO audit_log (tenant_id, occurred_at, actor_kind, action, resource_type, "
        "success) VALUES ($1, now() - interval '400 days', 'cli', 'tenant.create', 'tenant', "
        "true) RETURNING id",
        tid,
    )
    recent = db.fetchval(
        "INSERT INTO audit_log (tenant_id, occurred_at, actor_kind, action, resource_type, "
        "success) VALUES ($1, now() - interval '300 days', 'cli', 'tenant.create', 'tenant', "
        "true) RETURNING id",
        tid,
    )
    done = json.loads(cli(db, "db", "prune", "--json").stdout)
    assert done["audit_rows"] >= 1
    left = {r["id"] for r in db.fetch("SELECT id FROM audit_log WHERE tenant_id = $1", tid)}
    assert old not in left and recent in left
    last = rows(db, "db.prune")[-1]  # other tests prune too: the newest is this one
    assert last["actor_kind"] == "cli" and json.loads(last["detail"])["audit_rows"] >= 1

    shorter = cli(db, "db", "prune", "--json", extra_env={"CONECTADES_AUDIT_RETENTION_DAYS": "200"})
    assert json.loads(shorter.stdout)["audit_rows"] >= 1
    assert recent not in {r["id"] for r in db.fetch("SELECT id FROM audit_log")}
    bad = run_cli(db, "db", "prune", extra_env={"CONECTADES_AUDIT_RETENTION_DAYS": "0"})
    assert bad.returncode == 2 and "AUDIT_RETENTION_DAYS" in bad.stderr


def test_whole_database_commands_write_tenant_less_rows(
    db: Database, own_database: Callable[..., OwnDatabase], tmp_path: Path
) -> None:
    own = own_database()

    def run(*args: str) -> None:
        cli(db, *args, extra_env=own.env)

    def actions() -> list[str]:
        return [
            r["action"]
            for r in own.fetch(
                db, "SELECT action FROM audit_log WHERE tenant_id IS NULL ORDER BY occurred_at"
            )
        ]

    run("seed", "--tenants", "1", "--campaigns-per-tenant", "1", "--donations", "2", "--json")
    assert actions() == ["seed.run"]
    dump = tmp_path / "audit.dump"
    run("db", "backup", str(dump))
    assert actions() == ["seed.run", "db.backup"]
    run("db", "restore", str(dump), "--yes")
    # The restored data is the backup's (taken before its own row), then the restore's.
    assert actions() == ["seed.run", "db.restore"]
    run("seed", "--purge", "--json")
    assert actions()[-1] == "seed.purge"
