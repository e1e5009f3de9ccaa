"""What every CLI command shares: configuration, connections, output, errors."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import sys
from collections.abc import AsyncIterator, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit
from uuid import UUID

import asyncpg
import typer
from rich.console import Console

from db.queries import audit as aq
from db.queries import tenants as tq
from db.tenancy import SET_TENANT

T = TypeVar("T")

ADMIN_URL_ENV = "CONECTADES_ADMIN_DATABASE_URL"
API_URL_ENV = "CONECTADES_DATABASE_URL"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
if not out.is_terminal:
    out.width = 200  # piped or captured: tables keep ids whole instead of fitting 80 columns


class CliError(Exception):
    """An expected failure: printed as one clear line, exit status 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code)


def env_url(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise CliError(f"set {name} (a postgresql:// URL)")
    return value


def url_user(url: str) -> tuple[str, str]:
    """User and password of a postgresql:// URL (percent-decoded)."""
    parts = urlsplit(url)
    return unquote(parts.username or ""), unquote(parts.password or "")


@asynccontextmanager
async def admin_connection() -> AsyncIterator[asyncpg.Connection]:
    """A connection as the owner role (migrations and admin work)."""
    conn = await asyncpg.connect(env_url(ADMIN_URL_ENV), timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def tenant_scope(conn: asyncpg.Connection, tenant_id: UUID) -> AsyncIterator[None]:
    """A transaction with the tenant set, so the work also passes row-level security."""
    async with conn.transaction():
        await conn.execute(SET_TENANT, str(tenant_id))
        yield


_PG_MESSAGES: list[tuple[type[Exception], str]] = [
    (asyncpg.UniqueViolationError, "already exists"),
    (asyncpg.CheckViolationError, "a value is outside its allowed form or range"),
    (asyncpg.ForeignKeyViolationError, "it is referenced by other rows"),
    (asyncpg.InvalidPasswordError, "the database refused the password"),
    (asyncpg.InvalidAuthorizationSpecificationError, "the database refused the login"),
    (asyncpg.InvalidCatalogNameError, "the database does not exist"),
    (asyncpg.UndefinedTableError, "the schema is missing; run `conectades db migrate`"),
    (asyncpg.InsufficientPrivilegeError, "the role lacks the privilege"),
]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine; expected failures exit non-zero without a traceback."""
    try:
        return asyncio.run(coro)
    except CliError as exc:
        fail(str(exc))
    except asyncpg.PostgresError as exc:
        for kind, message in _PG_MESSAGES:
            if isinstance(exc, kind):
                detail = getattr(exc, "detail", None) or getattr(exc, "constraint_name", None)
                fail(f"{message} ({detail or exc})")
        fail(f"database error: {exc}")
    except (TimeoutError, OSError, asyncpg.InterfaceError) as exc:
        fail(f"cannot reach the database: {exc}")


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout, one document, nothing else."""
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def echo(text: str) -> None:
    """Plain text that must never be wrapped or styled (keys, passwords)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def os_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (some containers)
        return str(os.geteuid())


def operator() -> str:
    """Who runs this command: the OS user, and the sudo caller if any."""
    user = os_user()
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (sudo {user})" if sudo and sudo != user else user


@dataclass(frozen=True)
class Target:
    """What an operator's act touched: its tenants (None: a tenant-less row, for an
    act on the whole database), or one tenant by slug; and the resource's id."""

    tenants: Iterable[UUID | None] = (None,)
    tenant_slug: str | None = None
    resource_id: UUID | None = None


def audit(action: str, target: Target | None = None, /, **fields: Any) -> None:
    """Record an operator's act: one `audit_log` row per tenant it changed (None: one
    tenant-less row, which only operators see), actor `cli` and the OS user, the
    `fields` as its detail (counts and names, never a secret or a donor's contact);
    then one JSON line on stderr with the same facts. A row that cannot be written
    (no database, a schema before migration 0017) is a warning: the act is done."""
    target = target or Target()
    who = operator()
    resource_type = action.split(".", 1)[0]
    detail = json.loads(json.dumps(fields, default=str, ensure_ascii=False))

    async def write() -> None:
        async with admin_connection() as conn:
            targets = list(target.tenants)
            if target.tenant_slug is not None:
                row = await tq.select_tenant_by_slug(conn, target.tenant_slug)
                targets = [row["id"] if row else None]
            for tenant_id in targets:
                scope = tenant_scope(conn, tenant_id) if tenant_id else conn.transaction()
                async with scope:
                    await aq.insert_operator_entry(
                        conn,
                        tenant_id=tenant_id,
                        actor_display=who,
                        action=action,
                        resource_type=resource_type,
                        resource_id=target.resource_id,
                        detail=detail,
                    )

    try:
        asyncio.run(write())
    except Exception as exc:  # the act itself succeeded: a warning only
        err.print(f"warning: the audit row of {action} was not written: {exc}", markup=False)
    record: dict[str, Any] = {
        "audit": action,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "os_user": os_user(),
    }
    if os.environ.get("SUDO_USER"):
        record["sudo_user"] = os.environ["SUDO_USER"]
    record.update(fields)
    sys.stderr.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
    sys.stderr.flush()


def raise_cli(message: str) -> NoReturn:
    """A usage error found before any work: clear message, exit status 2."""
    err.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(2)
