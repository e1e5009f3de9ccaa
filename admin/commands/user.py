"""`conectades user`: a tenant's staff logins (create, passwd, list, disable, enable, role)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any

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
from db.queries import staff as sq
from tenants.passwords import hash_password

user_app = typer.Typer(help="Staff users (logins) of a tenant.", no_args_is_help=True)

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,150}$")
MIN_PASSWORD = 8


class Role(StrEnum):
    owner = "owner"
    editor = "editor"
    viewer = "viewer"


def _password(given: str | None) -> tuple[str, bool]:
    if given is None:
        return secrets.token_urlsafe(18), True
    if len(given) < MIN_PASSWORD:
        raise_cli(f"--password must have at least {MIN_PASSWORD} characters")
    return given, False


def _report(data: dict[str, str], message: str, generated: str | None, as_json: bool) -> None:
    """A created or changed login: JSON, or `message`; a generated password is shown
    this once, in both."""
    if as_json:
        emit_json(data if generated is None else {**data, "password": generated})
        return
    err.print(message)
    if generated is not None:
        err.print("generated password (shown once):")
        echo(generated)


PasswordOpt = Annotated[
    str | None,
    typer.Option(help="The password; without it one is generated and printed once."),
]


@user_app.command("create")
def user_create(
    tenant: TenantOpt,
    username: Annotated[str, typer.Argument(help="Login name: letters, digits, _.@+- (≤ 150).")],
    role: Annotated[Role, typer.Option(help="owner, editor or viewer.")] = Role.editor,
    password: PasswordOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a staff user with an argon2id-hashed password."""
    if not USERNAME_RE.match(username):
        raise_cli(f"bad username {username!r}: letters, digits and _.@+- only, up to 150")
    secret, generated = _password(password)
    pw_hash = hash_password(secret)

    async def go() -> asyncpg.Record:
        async with admin_connection() as conn:
            t = await tenant_by_slug(conn, tenant)
            async with tenant_scope(conn, t["id"]):
                try:
                    return await sq.insert_staff_user(
                        conn,
                        tenant_id=t["id"],
                        username=username,
                        password_hash=pw_hash,
                        role=role.value,
                    )
                except asyncpg.UniqueViolationError:
                    raise CliError(f"tenant {tenant!r} already has a user {username!r}") from None

    row = run(go())
    _audit_user("staff_user.create", row, role=row["role"])
    _report(
        {"id": str(row["id"]), "username": row["username"], "role": row["role"]},
        f"created {row['role']} {row['username']} in {tenant}",
        secret if generated else None,
        as_json,
    )


@user_app.command("passwd")
def user_passwd(
    tenant: TenantOpt,
    username: Annotated[str, typer.Argument(help="The staff user's login name.")],
    password: PasswordOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a staff user's password; every session they have ends at once."""
    secret, generated = _password(password)
    pw_hash = hash_password(secret)

    async def go() -> asyncpg.Record:
        async with admin_connection() as conn:
            t = await tenant_by_slug(conn, tenant)
            async with tenant_scope(conn, t["id"]):
                row = await sq.update_staff_password(
                    conn, tenant_id=t["id"], username=username, password_hash=pw_hash
                )
            if row is None:
                raise CliError(f"tenant {tenant!r} has no user {username!r}")
            return row

    row = run(go())
    _audit_user("staff_user.passwd", row)  # never the password
    _report(
        {"id": str(row["id"]), "username": row["username"]},
        f"password of {row['username']} in {tenant} changed; its sessions ended",
        secret if generated else None,
        as_json,
    )


@user_app.command("list")
def user_list(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """List a tenant's staff users (never their password hashes)."""

    async def go() -> list[asyncpg.Record]:
        async with admin_connection() as conn:
            t = await tenant_by_slug(conn, tenant)
            async with tenant_scope(conn, t["id"]):
                return await sq.select_staff_users(conn, tenant_id=t["id"])

    data = [
        {
            "id": str(r["id"]),
            "username": r["username"],
            "role": r["role"],
            "active": r["active"],
            "created_at": r["created_at"].isoformat(),
        }
        for r in run(go())
    ]
    if as_json:
        emit_json(data)
        return
    table = Table("username", "role", "active", "created", box=None)
    for u in data:
        table.add_row(
            u["username"], u["role"], "yes" if u["active"] else "no", u["created_at"][:19]
        )
    out.print(table)


def _update_user(
    tenant: str, username: str, change: Callable[..., Awaitable[asyncpg.Record | None]], **kw: Any
) -> asyncpg.Record:
    """Apply one staff_user change (db/queries/staff.py) inside the tenant's scope."""

    async def go() -> asyncpg.Record:
        async with admin_connection() as conn:
            t = await tenant_by_slug(conn, tenant)
            async with tenant_scope(conn, t["id"]):
                row = await change(conn, tenant_id=t["id"], username=username, **kw)
            if row is None:
                raise CliError(f"tenant {tenant!r} has no user {username!r}")
            return row

    return run(go())


UsernameArg = Annotated[str, typer.Argument(help="The staff user's login name.")]


def _audit_user(action: str, row: asyncpg.Record, **fields: Any) -> None:
    audit(
        action, Target([row["tenant_id"]], resource_id=row["id"]), username=row["username"],
        **fields,
    )  # fmt: skip


@user_app.command("disable")
def user_disable(tenant: TenantOpt, username: UsernameArg) -> None:
    """Disable a staff user: logins are refused and every session ends at once."""
    row = _update_user(tenant, username, sq.update_staff_active, active=False)
    _audit_user("staff_user.disable", row)
    out.print(f"user {row['username']} in {tenant} is disabled; its sessions ended")


@user_app.command("enable")
def user_enable(tenant: TenantOpt, username: UsernameArg) -> None:
    """Enable a disabled staff user (sessions from before stay ended: log in again)."""
    row = _update_user(tenant, username, sq.update_staff_active, active=True)
    _audit_user("staff_user.enable", row)
    out.print(f"user {row['username']} in {tenant} is enabled")


@user_app.command("role")
def user_role(
    tenant: TenantOpt,
    username: UsernameArg,
    role: Annotated[Role, typer.Argument(help="owner, editor or viewer.")],
) -> None:
    """Change a staff user's role; if it changed, every session ends at once."""
    row = _update_user(tenant, username, sq.update_staff_role, role=role.value)
    _audit_user("staff_user.role", row, role=row["role"])
    out.print(f"user {row['username']} in {tenant} is {row['role']}")
