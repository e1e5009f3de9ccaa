"""`conectades key`: a tenant's API keys (issue, list, revoke, rotate)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import typer
from rich.table import Table

from admin.common import (
    JsonOpt,
    TenantOpt,
    tenant_by_slug,
)
from admin.runtime import (
    CliError,
    Target,
    admin_connection,
    audit,
    echo,
    emit_json,
    err,
    out,
    raise_cli,
    run,
    tenant_scope,
)
from db.queries import keys as kq
from tenants import keys

key_app = typer.Typer(help="API keys of a tenant.", no_args_is_help=True)


def _ts(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _key_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise_cli(f"{raw!r} is not a key id (a UUID from `conectades key list`)")


def _scopes(raw: str) -> list[str]:
    scopes = [s.strip() for s in raw.split(",") if s.strip()]
    bad = [s for s in scopes if s not in keys.SCOPES]
    if not scopes or bad or len(set(scopes)) != len(scopes):
        raise_cli(f"--scopes must be distinct values from {', '.join(keys.SCOPES)} (got {raw!r})")
    return scopes


def _key_dict(row: asyncpg.Record) -> dict[str, Any]:
    now = datetime.now(UTC)
    status = (
        "revoked"
        if row["revoked_at"]
        else "expired"
        if row["expires_at"] and row["expires_at"] <= now
        else "live"
    )
    return {
        "id": str(row["id"]),
        "prefix": row["prefix"],
        "scopes": list(row["scopes"]),
        "label": row["label"],
        "created_at": row["created_at"].isoformat(),
        "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
        "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
        "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
        "status": status,
    }


def _print_new_key(row: asyncpg.Record, full_key: str, as_json: bool, **extra: Any) -> None:
    if as_json:
        emit_json({"key": full_key, "id": str(row["id"]), "prefix": row["prefix"], **extra})
        return
    err.print(f"key {row['id']} ({', '.join(row['scopes'])}); shown once, store it now:")
    echo(full_key)


@key_app.command("issue")
def key_issue(
    tenant: TenantOpt,
    scopes: Annotated[str, typer.Option(help="Comma-separated: read,write,keys.")] = "read,write",
    label: Annotated[str, typer.Option(help="A note for humans (≤ 100 characters).")] = "",
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, max=36500, help="Expire after N days.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue an API key; the full key is printed once and never stored."""
    scope_list = _scopes(scopes)
    if len(label) > 100:
        raise_cli("--label must have at most 100 characters")
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None

    async def go() -> tuple[asyncpg.Record, str]:
        async with admin_connection() as conn:
            t = await tenant_by_slug(conn, tenant)
            async with tenant_scope(conn, t["id"]):
                return await keys.issue(
                    conn, tenant_id=t["id"], scopes=scope_list, label=label, expires_at=expires_at
                )

    row, full_key = run(go())
    audit(
        "key.issue", Target(tenant_slug=tenant, resource_id=row["id"]), prefix=row["prefix"],
        scopes=list(row["scopes"]),
    )  # fmt: skip
    _print_new_key(row, full_key, as_json)


@key_app.command("list")
def key_list(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """List a tenant's keys (prefixes only; secrets are never stored)."""

    async def go() -> list[asyncpg.Record]:
        async with admin_connection() as conn:
            t = await tenant_by_slug(conn, tenant)
            rows: list[asyncpg.Record] = []
            async with tenant_scope(conn, t["id"]):
                while True:
                    after = (rows[-1]["created_at"], rows[-1]["id"]) if rows else None
                    batch = await kq.select_keys(conn, tenant_id=t["id"], after=after, limit=500)
                    rows.extend(batch)
                    if len(batch) < 500:
                        return rows

    data = [_key_dict(r) for r in run(go())]
    if as_json:
        emit_json(data)
        return
    # Ids and prefixes are what operators copy: never truncated.
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("prefix", no_wrap=True, min_width=21)
    for name in ("scopes", "status", "expires", "label"):
        table.add_column(name)
    for k in data:
        table.add_row(
            k["id"], k["prefix"], ",".join(k["scopes"]), k["status"],
            (k["expires_at"] or "-")[:16], k["label"],
        )  # fmt: skip
    out.print(table)


@key_app.command("revoke")
def key_revoke(
    tenant: TenantOpt, key_id: Annotated[str, typer.Argument(help="The key's id.")]
) -> None:
    """Revoke a key; it is refused from the next request on."""
    kid = _key_id(key_id)

    async def go() -> asyncpg.Record:
        async with admin_connection() as conn:
            t = await tenant_by_slug(conn, tenant)
            async with tenant_scope(conn, t["id"]):
                row = await kq.revoke_key(conn, tenant_id=t["id"], key_id=kid)
            if row is None:
                raise CliError(f"tenant {tenant!r} has no key {key_id}")
            return row

    row = run(go())
    audit("key.revoke", Target(tenant_slug=tenant, resource_id=row["id"]), prefix=row["prefix"])
    out.print(f"revoked key {row['id']} ({row['prefix']}) at {_ts(row['revoked_at'])}")


@key_app.command("rotate")
def key_rotate(
    tenant: TenantOpt,
    key_id: Annotated[str, typer.Argument(help="The id of the key to replace.")],
    grace_hours: Annotated[
        float, typer.Option(min=0, max=24 * 365, help="Hours the old key keeps working.")
    ] = 24,
    as_json: JsonOpt = False,
) -> None:
    """Issue a key with the same scopes and label; the old one expires after the grace."""
    kid = _key_id(key_id)

    async def go() -> tuple[asyncpg.Record, str, asyncpg.Record]:
        async with admin_connection() as conn:
            t = await tenant_by_slug(conn, tenant)
            async with tenant_scope(conn, t["id"]):
                old = await kq.select_key(conn, tenant_id=t["id"], key_id=kid)
                if old is None:
                    raise CliError(f"tenant {tenant!r} has no key {key_id}")
                if old["revoked_at"] is not None:
                    raise CliError(f"key {key_id} is revoked; issue a new one instead")
                at = datetime.now(UTC) + timedelta(hours=grace_hours)
                expired = await kq.expire_key(conn, tenant_id=t["id"], key_id=kid, at=at)
                assert expired is not None
                row, full_key = await keys.issue(
                    conn,
                    tenant_id=t["id"],
                    scopes=list(old["scopes"]),
                    label=old["label"],
                )
                return row, full_key, expired

    row, full_key, old = run(go())
    audit(
        "key.rotate", Target(tenant_slug=tenant, resource_id=row["id"]), prefix=row["prefix"],
        old_id=str(old["id"]), old_expires_at=old["expires_at"],
    )  # fmt: skip
    old_expiry = _ts(old["expires_at"])
    if not as_json:
        err.print(f"old key {old['id']} keeps working until {old_expiry}")
    _print_new_key(
        row, full_key, as_json, old_id=str(old["id"]), old_expires_at=old["expires_at"].isoformat()
    )
