"""`conectades db backup` / `db restore` on a database of its own: after a backup, the
data is dropped and restored (over the schema, and into an empty database), and every
row, every total, the grants, the policies and tenant isolation are as before."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from tests.admin.conftest import OwnDatabase
from tests.services import Database, run_cli

SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"
TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
# Everything that makes tenant isolation: RLS flags, policies, grants (ACLs), owners'
# functions, views. Owners are the restoring role, so they are not compared.
CATALOG = {
    "rls": """SELECT relname, relkind, relrowsecurity, relforcerowsecurity, relacl::text
              FROM pg_class WHERE relnamespace = 'public'::regnamespace
              AND relkind IN ('r', 'v') ORDER BY 1""",
    "policies": """SELECT tablename, policyname, roles::text, cmd, qual, with_check
                   FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2""",
    "functions": """SELECT proname, prosecdef, proacl::text FROM pg_proc
                    WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 3""",
    "triggers": """SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal
                   ORDER BY 1""",
}


def snapshot(db: Database, own: OwnDatabase) -> dict[str, Any]:
    """Every table's rows (as a digest), the totals view, the public directory and the
    catalog of isolation."""
    snap: dict[str, Any] = {}
    for r in own.fetch(db, TABLES):
        table = r["tablename"]
        if table == "audit_log":  # every command adds its row (the backup, the restore)
            continue
        snap[table] = own.fetch(
            db,
            f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t",
        )[0][:]
    snap["item_totals"] = [tuple(r) for r in own.fetch(db, "SELECT * FROM item_totals ORDER BY 1")]
    snap["public_campaign"] = [
        tuple(r) for r in own.fetch(db, "SELECT * FROM public_campaign ORDER BY id")
    ]
    for name, sql in CATALOG.items():
        snap[name] = [tuple(r) for r in own.fetch(db, sql)]
    return snap


def isolation(db: Database, own: OwnDatabase, tenants: list[Any]) -> dict[str, Any]:
    """What the API role sees: per tenant its own rows only; without a tenant nothing."""

    async def go() -> dict[str, Any]:
        conn = await asyncpg.connect(own.api_dsn)
        try:
            seen: dict[str, Any] = {
                "none": [
                    await conn.fetchval(f"SELECT count(*) FROM {t}")
                    for t in ("tenant", "campaign", "donation", "api_key", "item_total_slot")
                ]
            }
            for tenant_id in tenants:
                async with conn.transaction():
                    await conn.execute(SET_TENANT, str(tenant_id))
                    mine: list[Any] = [await conn.fetchval("SELECT count(*) FROM tenant")]
                    for t in ("campaign", "donation", "api_key", "staff_user"):
                        owners = await conn.fetch(f"SELECT DISTINCT tenant_id FROM {t}")
                        mine.append(
                            (
                                [r[0] for r in owners],
                                await conn.fetchval(f"SELECT count(*) FROM {t}"),
                            )
                        )
                    seen[str(tenant_id)] = mine
            return seen
        finally:
            await conn.close()

    return db.run(go())


def test_backup_then_restore_over_the_schema_and_into_an_empty_database(
    db: Database, own_database: Callable[..., OwnDatabase], tmp_path: Path
) -> None:
    own = own_database()

    def cli(target: OwnDatabase, *args: str) -> Any:
        done = run_cli(db, *args, extra_env=target.env)
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    summary = json.loads(
        cli(own, "seed", "--tenants", "2", "--campaigns-per-tenant", "5", "--donations",
            "500", "--json").stdout
    )  # fmt: skip
    slugs = [t["slug"] for t in summary["tenants"]]
    for slug in slugs:
        cli(own, "key", "issue", "--tenant", slug)
        cli(own, "user", "create", "--tenant", slug, "maria", "--password", "senha-longa-1")
    tenants = [r["id"] for r in own.fetch(db, "SELECT id FROM tenant ORDER BY slug")]
    before = snapshot(db, own)
    seen_before = isolation(db, own, tenants)
    assert before["donation"][0] == 500 and seen_before["none"] == [0] * 5
    for tenant_id in tenants:  # each tenant sees itself and its own rows only
        own_tenant, *tables = seen_before[str(tenant_id)]
        assert own_tenant == 1 and all(owners == [tenant_id] for owners, _ in tables)
    assert all(before[t][0] for t in ("tenant", "api_key", "staff_user", "item_total_slot"))

    dump = tmp_path / "conectades.dump"
    cli(own, "db", "backup", str(dump))
    assert dump.read_bytes()[:5] == b"PGDMP"  # custom format

    # 1. The data dropped, the schema kept: restore replaces what is there.
    own.fetch(db, "TRUNCATE tenant, legacy_category, legacy_location CASCADE")
    assert own.fetchval(db, "SELECT count(*) FROM donation") == 0
    refused = run_cli(db, "db", "restore", str(dump), extra_env=own.env, input="n\n")
    assert refused.returncode != 0 and own.fetchval(db, "SELECT count(*) FROM tenant") == 0
    done = cli(own, "db", "restore", str(dump), "--yes")
    assert '"audit": "db.restore"' in done.stderr
    assert snapshot(db, own) == before
    assert own.fetchval(db, "SELECT count(*) FROM audit_log WHERE action = 'db.restore'") == 1
    assert isolation(db, own, tenants) == seen_before

    # 2. Into an empty database (no schema, no extensions).
    empty = own_database(migrated=False)
    cli(empty, "db", "restore", str(dump))
    assert snapshot(db, empty) == before
    assert isolation(db, empty, tenants) == seen_before
    status = json.loads(cli(empty, "db", "status", "--json").stdout)
    assert status and all(m["state"] == "applied" for m in status)


def test_restore_of_a_missing_file_fails_cleanly(
    db: Database, own_database: Callable[..., OwnDatabase], tmp_path: Path
) -> None:
    own = own_database()
    done = run_cli(db, "db", "restore", str(tmp_path / "nope.dump"), extra_env=own.env)
    assert done.returncode == 2 and "no backup at" in done.stderr


def test_restore_of_a_bad_file_changes_nothing(
    db: Database, own_database: Callable[..., OwnDatabase], tmp_path: Path
) -> None:
    own = own_database()
    run_cli(db, "tenant", "create", "ong-fica", "--name", "Fica", extra_env=own.env)
    bad = tmp_path / "bad.dump"
    bad.write_bytes(b"not a dump")
    done = run_cli(db, "db", "restore", str(bad), "--yes", extra_env=own.env)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "nothing was changed" in done.stderr
    assert own.fetchval(db, "SELECT slug FROM tenant") == "ong-fica"
