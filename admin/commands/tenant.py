"""`conectades tenant`: create, list, show, suspend, resume, delete."""

from __future__ import annotations

import re
from typing import Annotated, Any

import asyncpg
import typer
from rich.table import Table

from admin.common import (
    JsonOpt,
    purge_after_admin_write,
    tenant_by_slug,
)
from admin.runtime import (
    CliError,
    Target,
    admin_connection,
    audit,
    emit_json,
    out,
    raise_cli,
    run,
    tenant_scope,
)
from db.queries import tenants as tq

tenant_app = typer.Typer(help="Tenants (partner organizations).", no_args_is_help=True)

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def _tenant_dict(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "slug": row["slug"],
        "name": row["name"],
        "status": row["status"],
        "rate_plan": row["rate_plan"],
        "listed": row["listed"],
        "seeded": row["seeded"],
        "created_at": row["created_at"].isoformat(),
    }


@tenant_app.command("create")
def tenant_create(
    slug: Annotated[str, typer.Argument(help="URL-safe id: a-z, 0-9 and '-', up to 63.")],
    name: Annotated[str, typer.Option("--name", help="Display name (1-200 characters).")],
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant."""
    if not SLUG_RE.match(slug):
        raise_cli(f"bad slug {slug!r}: use a-z, 0-9 and '-' (not at the ends), up to 63")
    if not 1 <= len(name.strip()) <= 200:
        raise_cli("--name must have 1 to 200 characters")

    async def go() -> asyncpg.Record:
        async with admin_connection() as conn:
            if await tq.select_tenant_by_slug(conn, slug) is not None:
                raise CliError(f"a tenant with slug {slug!r} already exists")
            return await tq.insert_tenant(conn, slug=slug, name=name.strip())

    row = run(go())
    audit("tenant.create", Target([row["id"]], resource_id=row["id"]), slug=slug)
    if as_json:
        emit_json(_tenant_dict(row))
    else:
        out.print(f"created tenant {row['slug']} ({row['id']})")


@tenant_app.command("list")
def tenant_list(as_json: JsonOpt = False) -> None:
    """List tenants with their live keys and campaigns."""

    async def go() -> list[asyncpg.Record]:
        async with admin_connection() as conn:
            return await tq.select_tenants(conn)

    rows = run(go())
    data = [
        {**_tenant_dict(r), "campaigns": r["campaigns"], "live_keys": r["live_keys"]} for r in rows
    ]
    if as_json:
        emit_json(data)
        return
    table = Table("slug", "name", "status", "campaigns", "live keys", "created")
    for t in data:
        table.add_row(
            t["slug"], t["name"], t["status"], str(t["campaigns"]), str(t["live_keys"]),
            t["created_at"][:19],
        )  # fmt: skip
    out.print(table)


@tenant_app.command("show")
def tenant_show(slug: str, as_json: JsonOpt = False) -> None:
    """Show one tenant."""

    async def go() -> asyncpg.Record:
        async with admin_connection() as conn:
            await tenant_by_slug(conn, slug)
            return next(r for r in await tq.select_tenants(conn) if r["slug"] == slug)

    row = run(go())
    data = {**_tenant_dict(row), "campaigns": row["campaigns"], "live_keys": row["live_keys"]}
    if as_json:
        emit_json(data)
        return
    table = Table(show_header=False)
    for k, v in data.items():
        table.add_row(k, str(v))
    out.print(table)


def _set_status(slug: str, status: str) -> None:
    async def go() -> asyncpg.Record:
        async with admin_connection() as conn:
            row = await tq.update_tenant_status(conn, slug=slug, status=status)
            if row is None:
                raise CliError(f"no tenant with slug {slug!r} (see `conectades tenant list`)")
            return row

    row = run(go())
    action = "tenant.suspend" if status == "suspended" else "tenant.resume"
    audit(action, Target([row["id"]], resource_id=row["id"]), slug=slug)
    out.print(f"tenant {row['slug']} is {row['status']}")
    purge_after_admin_write(row["id"])


@tenant_app.command("suspend")
def tenant_suspend(slug: str) -> None:
    """Suspend a tenant: its keys and logins are refused until resumed."""
    _set_status(slug, "suspended")


@tenant_app.command("resume")
def tenant_resume(slug: str) -> None:
    """Resume a suspended tenant."""
    _set_status(slug, "active")


@tenant_app.command("delete")
def tenant_delete(
    slug: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for the slug again.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a tenant and every row of it (keys, users, sessions, campaigns, items,
    totals, donations, idempotency records) in one transaction, then its cached
    responses; its public pages leave the edge within 2 s. Asks for the slug again
    unless --yes. Writes an audit line (JSON) to stderr."""

    async def find() -> asyncpg.Record:
        async with admin_connection() as conn:
            return await tenant_by_slug(conn, slug)

    row = run(find())
    if not yes:
        again = typer.prompt(f"This deletes tenant {slug} and all its data. Type its slug")
        if again.strip() != slug:
            raise_cli("the slug did not match; nothing was deleted")

    async def delete() -> dict[str, int]:
        async with admin_connection() as conn, tenant_scope(conn, row["id"]):
            return await tq.delete_tenant(conn, tenant_id=row["id"])

    counts = run(delete())
    audit(
        "tenant.delete",
        Target(resource_id=row["id"]),
        tenant=slug,
        tenant_id=row["id"],
        rows=counts,
    )
    purge_after_admin_write(row["id"])
    if as_json:
        emit_json({"tenant": slug, "id": str(row["id"]), "rows": counts})
    else:
        out.print(f"deleted tenant {slug} ({sum(counts.values())} rows)")
