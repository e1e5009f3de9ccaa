"""`conectades`: the operator CLI (migrations, tenants, keys, staff users, seed, cache,
serve).

Configuration comes from the environment: CONECTADES_ADMIN_DATABASE_URL (the owner
role: migrations and admin work) and CONECTADES_DATABASE_URL (the API's role);
the `cache` commands also CONECTADES_REDIS_URL and CONECTADES_API_URL.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn
from uuid import UUID

import asyncpg
import typer
from redis.exceptions import RedisError
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from admin import backup as bk
from admin.devtools import add_dev_commands
from admin.runtime import (
    ADMIN_URL_ENV,
    API_URL_ENV,
    CliError,
    Target,
    admin_connection,
    audit,
    echo,
    emit_json,
    env_url,
    err,
    fail,
    out,
    run,
    tenant_scope,
    url_user,
)
from api.config import AppConfig
from cache import CircuitBreaker, ResponseCache, create_client
from db import migrate as migrations
from db.contact_keys import ResealResult, reseal
from db.crypto import KeyConfigError, Keyring, UnreadableValue, new_key
from db.queries import audit as aq
from db.queries import donors as dq
from db.queries import email as emq
from db.queries import events as eq
from db.queries import idempotency as iq
from db.queries import keys as kq
from db.queries import refresh_tokens as rq
from db.queries import staff as sq
from db.queries import tenants as tq
from db.seed import SeedError, SeedPlan, purge_seeded, run_seed
from notify.settings import EmailSettings
from tenants import keys
from tenants.passwords import hash_password

app = typer.Typer(
    name="conectades",
    help="Operate Conectades: migrations, tenants, API keys, staff users, demo data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Schema migrations and maintenance.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants (partner organizations).", no_args_is_help=True)
key_app = typer.Typer(help="API keys of a tenant.", no_args_is_help=True)
user_app = typer.Typer(help="Staff users (logins) of a tenant.", no_args_is_help=True)
cache_app = typer.Typer(help="The API's response cache in Redis.", no_args_is_help=True)
edge_app = typer.Typer(help="The Nginx edge of the local stack (var/edge).", no_args_is_help=True)
donor_app = typer.Typer(
    help="A donor's personal data across every tenant (LGPD/GDPR requests).",
    no_args_is_help=True,
)
chaos_app = typer.Typer(
    help="Faults under load: the local stack's parts killed in turn (load/chaos.py).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(key_app, name="key")
app.add_typer(user_app, name="user")
app.add_typer(cache_app, name="cache")
app.add_typer(edge_app, name="edge")
app.add_typer(chaos_app, name="chaos")
app.add_typer(donor_app, name="donor")
add_dev_commands(app)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug.")]

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,150}$")
MIN_PASSWORD = 8
MIN_EVENT_RETENTION = 30  # days: the events feed's promise (issue 16)


class Role(StrEnum):
    owner = "owner"
    editor = "editor"
    viewer = "viewer"


def _ts(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


async def _tenant(conn: asyncpg.Connection, slug: str) -> asyncpg.Record:
    row = await tq.select_tenant_by_slug(conn, slug)
    if row is None:
        raise CliError(f"no tenant with slug {slug!r} (see `conectades tenant list`)")
    return row


def _key_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise_cli(f"{raw!r} is not a key id (a UUID from `conectades key list`)")


# ---------------------------------------------------------------- db


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (under an advisory lock) and set up the API role."""

    async def go() -> tuple[list[migrations.Migration], str | None]:
        api_user, api_password = None, None
        if os.environ.get(API_URL_ENV):
            api_user, api_password = url_user(env_url(API_URL_ENV))
        admin_user, _ = url_user(env_url(ADMIN_URL_ENV))
        async with admin_connection() as conn:
            try:
                applied = await migrations.migrate(conn)
            except migrations.MigrationError as exc:
                raise CliError(str(exc)) from None
            if api_user and api_user != admin_user:
                if not api_password:
                    raise CliError(f"{API_URL_ENV} has no password for role {api_user!r}")
                await migrations.ensure_api_role(conn, api_user, api_password)
                return applied, api_user
        return applied, None

    applied, role = run(go())
    if applied:
        audit("db.migrate", applied=[f"{m.version:04d}_{m.name}" for m in applied])
    for m in applied:
        out.print(f"applied {m.version:04d}_{m.name}")
    if not applied:
        out.print("schema is up to date")
    if role:
        out.print(f"API role {role!r} ready (member of conectades_app)")

    async def plaintext() -> int:
        async with admin_connection() as conn:
            return await dq.count_plaintext(conn)

    if remaining := run(plaintext()):
        out.print(
            f"{remaining} donations still hold a plaintext contact or message (from before "
            "migration 0018): run `conectades donor rotate-keys` with the API's keys"
        )


@db_app.command("status")
def db_status(as_json: JsonOpt = False) -> None:
    """List applied and pending migrations."""

    async def go() -> list[migrations.MigrationState]:
        async with admin_connection() as conn:
            try:
                return await migrations.status(conn)
            except migrations.MigrationError as exc:
                raise CliError(str(exc)) from None

    states = run(go())
    rows: list[dict[str, Any]] = [
        {
            "version": s.migration.version,
            "name": s.migration.name,
            "state": "pending"
            if s.applied_at is None
            else ("applied" if s.checksum_ok else "changed"),
            "applied_at": s.applied_at.isoformat() if s.applied_at else None,
        }
        for s in states
    ]
    if as_json:
        emit_json(rows)
    else:
        table = Table("version", "name", "state", "applied at")
        for r in rows:
            table.add_row(f"{r['version']:04d}", r["name"], r["state"], r["applied_at"] or "-")
        out.print(table)
        pending = sum(r["state"] == "pending" for r in rows)
        out.print(f"{len(rows) - pending} applied, {pending} pending")
    if any(r["state"] == "changed" for r in rows):
        err.print("error: an applied migration file changed since it was applied")
        raise typer.Exit(1)


@db_app.command("prune")
def db_prune(
    batch: Annotated[
        int, typer.Option(min=1, max=100_000, help="Rows deleted per statement.")
    ] = 5_000,
    as_json: JsonOpt = False,
) -> None:
    """Delete expired idempotency records (older than CONECTADES_IDEMPOTENCY_TTL
    seconds, default one day) and refresh tokens expired over an hour ago, and erase
    donor contacts older than CONECTADES_CONTACT_RETENTION_DAYS (default 365). Events
    older than CONECTADES_EVENT_RETENTION_DAYS (default 90, at least 30) are deleted too,
    and audit rows older than CONECTADES_AUDIT_RETENTION_DAYS (default 365). Email jobs
    settled as long ago as events are kept go too (never before
    CONECTADES_CONFIRM_LINK_TTL: a notice's row is its link's single-use record).

    Nothing else removes them. Safe while the API serves: each batch is its own
    short statement. Run it daily (cron, or infra/k8s/prune-cronjob.yaml)."""
    ttl = float(AppConfig().IDEMPOTENCY_TTL)
    if ttl <= 0:
        raise_cli("CONECTADES_IDEMPOTENCY_TTL must be a positive number of seconds")

    async def drain(delete: Callable[[], Awaitable[int]]) -> int:
        total = 0
        while (done := await delete()) > 0:
            total += done
            if done < batch:
                break
        return total

    async def go() -> dict[str, int]:
        async with admin_connection() as conn:
            records = await drain(lambda: iq.delete_expired(conn, ttl=ttl, limit=batch))
            tokens = await drain(lambda: rq.delete_expired(conn, limit=batch))
            events = await drain(
                lambda: eq.delete_older_than(conn, days=event_retention, limit=batch)
            )
            contacts = await drain(
                lambda: dq.erase_expired_contacts(conn, days=retention, limit=batch)
            )
            audit_rows = await drain(
                lambda: aq.delete_expired(conn, days=audit_retention, limit=batch)
            )
            email_jobs = await drain(
                lambda: emq.delete_settled(conn, older_than=email_age, limit=batch)
            )
        return {
            "idempotency_records": records,
            "refresh_tokens": tokens,
            "contacts": contacts,
            "events": events,
            "audit_rows": audit_rows,
            "email_jobs": email_jobs,
        }

    try:
        event_retention = int(AppConfig().EVENT_RETENTION_DAYS)
    except ValueError:
        event_retention = 0
    if event_retention < MIN_EVENT_RETENTION:
        raise_cli(
            f"CONECTADES_EVENT_RETENTION_DAYS must be at least {MIN_EVENT_RETENTION} days "
            "(partners may catch up on the events feed for that long)"
        )
    retention = int(AppConfig().CONTACT_RETENTION_DAYS)
    if retention <= 0:
        raise_cli("CONECTADES_CONTACT_RETENTION_DAYS must be a positive number of days")
    audit_retention = int(AppConfig().AUDIT_RETENTION_DAYS)
    if audit_retention <= 0:
        raise_cli("CONECTADES_AUDIT_RETENTION_DAYS must be a positive number of days")
    email_age = max(event_retention * 86400.0, float(link_ttl()))
    deleted = run(go())
    audit(
        "db.prune",
        **deleted,
        contacts_older_than_days=retention,
        events_older_than_days=event_retention,
        audit_older_than_days=audit_retention,
    )
    if as_json:
        emit_json(deleted)
    else:
        out.print(
            f"deleted {deleted['idempotency_records']} expired idempotency records "
            f"(older than {ttl:g} s) and {deleted['refresh_tokens']} expired refresh tokens; "
            f"erased {deleted['contacts']} donor contacts older than {retention} days; "
            f"deleted {deleted['events']} events older than {event_retention} days; "
            f"deleted {deleted['audit_rows']} audit rows older than {audit_retention} days; "
            f"deleted {deleted['email_jobs']} settled email jobs older than "
            f"{email_age / 86400:g} days"
        )


def link_ttl() -> int:
    """CONECTADES_CONFIRM_LINK_TTL as the worker reads it (notify/settings.py)."""
    raw = os.environ.get("CONECTADES_CONFIRM_LINK_TTL", "")
    try:
        return int(raw) if raw else EmailSettings.CONFIRM_LINK_TTL
    except ValueError:
        raise_cli("CONECTADES_CONFIRM_LINK_TTL must be a number of seconds")


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="The file to write (replaced if it exists).")],
) -> None:
    """Dump the whole database to PATH: pg_dump custom format (-Fc) as the owner role
    (CONECTADES_ADMIN_DATABASE_URL), with grants and row-level security policies.
    Roles are cluster-wide and not in the dump (`db restore` recreates the API's)."""

    async def major() -> int:
        async with admin_connection() as conn:
            return await bk.server_major(conn)

    version = run(major())
    try:
        bk.dump(env_url(ADMIN_URL_ENV), path, major=version)
    except (bk.BackupError, CliError) as exc:
        raise_cli(str(exc))
    audit("db.backup", path=str(path.resolve()))
    out.print(f"backed up to {path} ({path.stat().st_size:,} bytes)")


@db_app.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="A file written by `conectades db backup`.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask to confirm replacing the data.")
    ] = False,
) -> None:
    """Restore PATH into the database of CONECTADES_ADMIN_DATABASE_URL, in one transaction:
    into an empty database, or over one that has the schema (its objects are dropped
    first). Creates the role conectades_app if missing, and the API's login role from
    CONECTADES_DATABASE_URL as `db migrate` does. Stop the API first: open
    connections make the restore wait. Then drops every cached response."""
    if not path.is_file():
        raise_cli(f"no backup at {path}")

    async def check() -> tuple[int, bool]:
        async with admin_connection() as conn:
            return await bk.server_major(conn), await bk.has_schema(conn)

    version, clean = run(check())
    if clean and not yes:
        typer.confirm("The database has data: replace all of it with the backup?", abort=True)

    async def roles() -> str | None:
        admin_user, _ = url_user(env_url(ADMIN_URL_ENV))
        async with admin_connection() as conn:
            await bk.ensure_app_role(conn)
            if os.environ.get(API_URL_ENV):
                api_user, api_password = url_user(env_url(API_URL_ENV))
                if api_user and api_user != admin_user and api_password:
                    await migrations.ensure_api_role(conn, api_user, api_password)
                    return api_user
        return None

    role = run(roles())
    try:
        bk.restore(env_url(ADMIN_URL_ENV), path, major=version, clean=clean)
    except bk.BackupError as exc:
        raise_cli(f"{exc}\nnothing was changed (the restore runs in one transaction)")
    audit("db.restore", path=str(path.resolve()), over_existing=clean)
    _purge_after_admin_write(None)
    out.print(f"restored {path}" + (f"; API role {role!r} ready" if role else ""))


# ---------------------------------------------------------------- tenant


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
            await _tenant(conn, slug)
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
    _purge_after_admin_write(row["id"])


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
            return await _tenant(conn, slug)

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
    _purge_after_admin_write(row["id"])
    if as_json:
        emit_json({"tenant": slug, "id": str(row["id"]), "rows": counts})
    else:
        out.print(f"deleted tenant {slug} ({sum(counts.values())} rows)")


# ---------------------------------------------------------------- donor

ContactArg = Annotated[
    str,
    typer.Option(
        "--contact",
        help="The donor's contact as given (e-mail or phone; trimmed, case-insensitive).",
    ),
]


_SEALED_COLUMNS = ("tenant_id", "donor_contact_enc", "message_enc")


def _keyring() -> Keyring:
    """The donor-contact keys from the environment, or a clear usage error."""
    try:
        return Keyring.from_env()
    except KeyConfigError as exc:
        raise_cli(f"{exc} (the API's keys; `conectades donor new-keys` makes a first set)")


def _donation_dict(row: asyncpg.Record, ring: Keyring) -> dict[str, Any]:
    out = {
        k: (str(v) if isinstance(v, UUID) else v)
        for k, v in dict(row).items()
        if k not in _SEALED_COLUMNS
    }
    out["donor_contact"] = ring.donor_contact_of(row)
    out["message"] = ring.message_of(row)
    return out


@donor_app.command("export")
def donor_export(contact: ContactArg) -> None:
    """Every donation of the person with this contact, in every tenant, as JSON."""
    if not contact.strip():
        raise_cli("--contact must not be empty")
    ring = _keyring()

    async def go() -> list[dict[str, Any]]:
        async with admin_connection() as conn:
            rows = await dq.select_by_contact(
                conn, contact=contact, contact_hash=ring.contact_hash(contact)
            )
        try:
            return [_donation_dict(r, ring) for r in rows]
        except UnreadableValue as exc:
            raise CliError(str(exc)) from None

    found = run(go())
    audit("donor.export", donations=len(found))  # never the contact itself
    emit_json({"donations": found})


@donor_app.command("erase")
def donor_erase(
    contact: ContactArg,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Erase the name, contact and message of every donation of the person with this
    contact, in every tenant; quantities and totals stay. Audit-logged (counts only)."""
    if not contact.strip():
        raise_cli("--contact must not be empty")
    if not yes and not typer.confirm("Erase this person's name, contact and messages?"):
        raise_cli("nothing was erased")

    contact_hash = _keyring().contact_hash(contact)

    async def go() -> dict[UUID, int]:
        async with admin_connection() as conn, conn.transaction():
            return await dq.erase_by_contact(conn, contact=contact, contact_hash=contact_hash)

    erased = run(go())
    audit(
        "donor.erase",
        Target(list(erased) or [None]),
        donations=sum(erased.values()),
        tenant_ids=[str(t) for t in erased],
    )
    for tenant_id in erased:  # cached partner reads and public pages showed them
        _purge_after_admin_write(tenant_id)
    if as_json:
        emit_json({"donations": sum(erased.values()), "tenants": len(erased)})
    else:
        out.print(f"erased {sum(erased.values())} donations in {len(erased)} tenants")


@donor_app.command("rotate-keys")
def donor_rotate_keys(
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Rows per transaction.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Seal every donation's contact and message under the newest key of
    CONECTADES_CONTACT_KEYS (the first listed): rows sealed under an older key, and
    rows still in plaintext from before migration 0018. Safe while the API serves.
    Afterwards the older keys can be removed. Exit status 1 if a row cannot be opened
    with the listed keys (it is named, and left as it is)."""
    ring = _keyring()

    async def go() -> ResealResult:
        async with admin_connection() as conn:
            return await reseal(conn, ring, batch=batch)

    result = run(go())
    audit("donor.rotate_keys", key=ring.newest, **result.as_dict())
    if as_json:
        emit_json({**result.as_dict(), "key": ring.newest})
    else:
        out.print(
            f"scanned {result.scanned} donations: {result.encrypted} encrypted (were "
            f"plaintext), {result.rotated} re-encrypted under key {ring.newest}, "
            f"{result.skipped} changed meanwhile (left as written)"
        )
    for line in result.unreadable[:20]:
        err.print(f"[bold red]unreadable:[/] {line}", markup=True)
    if result.unreadable:
        fail(f"{len(result.unreadable)} donations could not be opened with the listed keys")


@donor_app.command("new-keys")
def donor_new_keys() -> None:
    """Print a fresh CONECTADES_CONTACT_KEYS (key id 1) and CONECTADES_CONTACT_HMAC_KEY
    for a new deployment (to add a key to an existing list, see docs/privacy.md)."""
    echo(f"CONECTADES_CONTACT_KEYS=1:{new_key()}")
    echo(f"CONECTADES_CONTACT_HMAC_KEY={new_key()}")


# ---------------------------------------------------------------- key


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
            t = await _tenant(conn, tenant)
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
            t = await _tenant(conn, tenant)
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
            t = await _tenant(conn, tenant)
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
            t = await _tenant(conn, tenant)
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


# ---------------------------------------------------------------- user


def _password(given: str | None) -> tuple[str, bool]:
    if given is None:
        return secrets.token_urlsafe(18), True
    if len(given) < MIN_PASSWORD:
        raise_cli(f"--password must have at least {MIN_PASSWORD} characters")
    return given, False


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
            t = await _tenant(conn, tenant)
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
    if as_json:
        data = {"id": str(row["id"]), "username": row["username"], "role": row["role"]}
        emit_json({**data, "password": secret} if generated else data)
        return
    err.print(f"created {row['role']} {row['username']} in {tenant}")
    if generated:
        err.print("generated password (shown once):")
        echo(secret)


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
            t = await _tenant(conn, tenant)
            async with tenant_scope(conn, t["id"]):
                row = await sq.update_staff_password(
                    conn, tenant_id=t["id"], username=username, password_hash=pw_hash
                )
            if row is None:
                raise CliError(f"tenant {tenant!r} has no user {username!r}")
            return row

    row = run(go())
    _audit_user("staff_user.passwd", row)  # never the password
    if as_json:
        data = {"id": str(row["id"]), "username": row["username"]}
        emit_json({**data, "password": secret} if generated else data)
        return
    err.print(f"password of {row['username']} in {tenant} changed; its sessions ended")
    if generated:
        err.print("generated password (shown once):")
        echo(secret)


@user_app.command("list")
def user_list(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """List a tenant's staff users (never their password hashes)."""

    async def go() -> list[asyncpg.Record]:
        async with admin_connection() as conn:
            t = await _tenant(conn, tenant)
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
            t = await _tenant(conn, tenant)
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


# ---------------------------------------------------------------- seed


@app.command("seed")
def seed(
    tenants: Annotated[int, typer.Option(min=0, max=10_000, help="New tenants to create.")] = 1,
    campaigns_per_tenant: Annotated[int, typer.Option(min=0, max=1_000_000)] = 20,
    donations: Annotated[
        int, typer.Option(min=0, max=100_000_000, help="Donations in total, over all tenants.")
    ] = 2_000,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Seed this existing tenant instead.")
    ] = None,
    seed_random: Annotated[
        int | None, typer.Option(help="Random seed: the same number makes the same data.")
    ] = None,
    per_row_totals: Annotated[
        bool,
        typer.Option(help="Let the totals trigger run per donation (slower; for comparison)."),
    ] = False,
    listed: Annotated[
        bool,
        typer.Option(
            "--listed",
            help="Show the new tenants in the cross-tenant public directory (default: "
            "only at /api/public/{tenant}/...). An existing --tenant keeps its listing.",
        ),
    ] = False,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="Remove what seeds created instead: their tenants and their campaigns "
            "in other tenants (with donations). Creates nothing.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load realistic demo data: campaigns, items and donations in every status.
    New tenants are left out of the cross-tenant directory unless --listed."""
    if purge:
        _seed_purge(as_json)
        return
    if tenant is None and tenants == 0 and (campaigns_per_tenant or donations):
        raise_cli("nothing to seed into: give --tenants N (N ≥ 1) or --tenant SLUG")
    plan = SeedPlan(
        tenants=tenants,
        campaigns_per_tenant=campaigns_per_tenant,
        donations=donations,
        tenant_slug=tenant,
        seed=seed_random,
        per_row_totals=per_row_totals,
        listed=listed,
    )
    ring = _keyring()
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with RichProgress(*columns, console=err, transient=as_json) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)

        async def go() -> dict[str, Any]:
            async with admin_connection() as conn:
                try:
                    result = await run_seed(conn, plan, ring, progress)
                except SeedError as exc:
                    raise CliError(str(exc)) from None
                return result.as_dict()

        summary = run(go())
    audit(
        "seed.run",
        tenants=[t["slug"] for t in summary["tenants"]],
        campaigns=summary["campaigns"],
        donations=summary["donations"],
        seed=summary["seed"],
    )
    _purge_after_admin_write(None)
    if as_json:
        emit_json(summary)
        return
    table = Table("created", "count", title=f"seed {summary['seed']}")
    table.add_row("tenants", ", ".join(t["slug"] for t in summary["tenants"]))
    table.add_row("campaigns", f"{summary['campaigns']} {summary['campaign_statuses']}")
    table.add_row("items", str(summary["items"]))
    table.add_row("donations", f"{summary['donations']} {summary['donation_statuses']}")
    table.add_row("time", f"{summary['seconds']} s ({summary['donations_per_second']}/s)")
    out.print(table)


def _seed_purge(as_json: bool) -> None:
    async def go() -> dict[str, Any]:
        async with admin_connection() as conn:
            return await purge_seeded(conn)

    removed = run(go())
    audit("seed.purge", tenants=removed["tenants"], rows=removed["rows"])
    _purge_after_admin_write(None)
    if as_json:
        emit_json(removed)
        return
    rows = removed["rows"]
    out.print(
        f"removed {len(removed['tenants'])} seeded tenants, {rows.get('campaign', 0)} "
        f"campaigns and {rows.get('donation', 0)} donations"
    )


# ---------------------------------------------------------------- cache

REDIS_URL_ENV = "CONECTADES_REDIS_URL"
API_BASE_ENV = "CONECTADES_API_URL"
DEFAULT_API_URL = "http://127.0.0.1:8000"


def _response_cache() -> ResponseCache:
    """A client for one command: patient timeouts, no retries, the breaker off."""
    url = os.environ.get(REDIS_URL_ENV, "").strip()
    if not url:
        raise CliError(f"set {REDIS_URL_ENV} (a redis:// URL)")
    client = create_client(url, connect_timeout=2.0, timeout=2.0)
    return ResponseCache(client, timeout=4.0, breaker=CircuitBreaker(threshold=1_000_000))


def _purge_after_admin_write(tenant_id: UUID | None) -> None:
    """Cached API responses must not outlive an admin change (a suspended tenant would
    stay in the cached directory): drop the tenant's (None: every) cached response.
    Without CONECTADES_REDIS_URL there is nothing to drop."""
    if not os.environ.get(REDIS_URL_ENV, "").strip():
        return

    async def go() -> bool:
        cache = _response_cache()
        try:
            if tenant_id is None:
                return await cache.purge_all()
            return await cache.purge_tenant(tenant_id)
        finally:
            await cache.close()

    if not run(go()):
        err.print(
            f"warning: cannot reach Redis at {REDIS_URL_ENV}; cached responses may lag "
            "until their TTL (run `conectades cache purge` when Redis is back)"
        )


@cache_app.command("purge")
def cache_purge(tenant: TenantOpt) -> None:
    """Drop every cached response of a tenant (and of the public directory), in O(1)."""

    async def go() -> asyncpg.Record:
        async with admin_connection() as conn:
            row = await _tenant(conn, tenant)
        cache = _response_cache()
        try:
            purged = await cache.purge_tenant(row["id"])
        finally:
            await cache.close()
        if not purged:
            raise CliError(f"cannot reach Redis at {REDIS_URL_ENV}; nothing was purged")
        return row

    row = run(go())
    audit("cache.purge", Target([row["id"]], resource_id=row["id"]), slug=row["slug"])
    out.print(f"cached responses of tenant {row['slug']} dropped (and the public directory's)")


def _lookups(api_url: str) -> list[dict[str, Any]]:
    """conectades_cache_lookups_total of every API worker, from the API's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    url = api_url.rstrip("/") + "/metrics"
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{API_BASE_ENV} must be an http(s):// URL, not {api_url!r}")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (checked above)
            text = response.read().decode()
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {url} (set {API_BASE_ENV} or --api): {exc}") from None
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "conectades_cache_lookups":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            row = counts.setdefault(
                (labels["tenant"], labels["resource"]),
                {"tenant": labels["tenant"], "resource": labels["resource"]},
            )
            row[labels["result"]] = row.get(labels["result"], 0) + int(sample.value)
    rows = sorted(counts.values(), key=lambda r: (r["tenant"], r["resource"]))
    for row in rows:
        for result in ("hit", "miss", "bypass", "error"):
            row.setdefault(result, 0)
        total = row["hit"] + row["miss"] + row["bypass"] + row["error"]
        row["hit_ratio"] = round(row["hit"] / total, 4) if total else None
    return rows


async def _slugs() -> dict[str, str]:
    """Tenant slugs by id, when the database is configured (labels are ids)."""
    if not os.environ.get(ADMIN_URL_ENV):
        return {}
    async with admin_connection() as conn:
        rows = await tq.select_tenants(conn)
    return {str(r["id"]): r["slug"] for r in rows}


@cache_app.command("stats")
def cache_stats(
    api_url: Annotated[
        str | None,
        typer.Option("--api", help=f"The API's base URL (default ${API_BASE_ENV} or localhost)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hits and misses per tenant and resource (from /metrics) and Redis' own figures."""
    base = api_url or os.environ.get(API_BASE_ENV) or DEFAULT_API_URL

    async def go() -> dict[str, Any]:
        rows = _lookups(base)
        slugs = await _slugs() if rows else {}
        for row in rows:
            row["slug"] = slugs.get(row["tenant"], "")
        server: dict[str, Any] | None = None
        if os.environ.get(REDIS_URL_ENV):
            cache = _response_cache()
            try:
                server = await cache.server_stats()
            except RedisError as exc:
                raise CliError(f"cannot reach Redis at {REDIS_URL_ENV}: {exc}") from None
            finally:
                await cache.close()
        return {"lookups": rows, "redis": server}

    stats = run(go())
    if as_json:
        emit_json(stats)
        return
    table = Table("tenant", "resource", "hit", "miss", "bypass", "error", "hit ratio")
    for row in stats["lookups"]:
        ratio = row["hit_ratio"]
        table.add_row(
            row["slug"] or row["tenant"],
            row["resource"],
            *(str(row[k]) for k in ("hit", "miss", "bypass", "error")),
            f"{ratio:.1%}" if ratio is not None else "-",
        )
    out.print(table)
    if stats["redis"] is not None:
        redis_table = Table("redis", "value")
        for key, value in stats["redis"].items():
            redis_table.add_row(key, str(value))
        out.print(redis_table)


# ---------------------------------------------------------------- audit


def _audit_dict(row: asyncpg.Record) -> dict[str, Any]:
    out = {k: (str(v) if isinstance(v, UUID) else v) for k, v in dict(row).items()}
    out["occurred_at"] = row["occurred_at"].isoformat()
    out["detail"] = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
    return out


@app.command("audit")
def audit_list(
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only this tenant's rows (slug).")
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="An actor id, or a key prefix, username or OS user.")
    ] = None,
    resource: Annotated[
        str | None, typer.Option(help="A resource id, or a resource type (campaign, key...).")
    ] = None,
    action: Annotated[str | None, typer.Option(help="One action, e.g. key.revoke.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Rows, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The audit log, newest first: every write through the partner API and every
    operator command, of every tenant (and the operators' whole-database acts) or of
    one with --tenant."""
    try:
        filters = aq.Filters.parse(actor=actor, resource=resource, action=action)
    except aq.FilterError as exc:
        raise_cli(f"--{exc}")

    async def go() -> list[asyncpg.Record]:
        async with admin_connection() as conn:
            tenant_id = (await _tenant(conn, tenant))["id"] if tenant else None
            return await aq.select_operator_entries(
                conn, tenant_id=tenant_id, filters=filters, limit=limit
            )

    rows = [_audit_dict(r) for r in run(go())]
    if as_json:
        emit_json(rows)
        return
    table = Table("when", "tenant", "actor", "action", "resource", "outcome", "from", box=None)
    for r in rows:
        outcome = str(r["status"] or "") + (" ok" if r["success"] else " failed")
        table.add_row(
            r["occurred_at"][:19], r["tenant"] or "-", f"{r['actor_kind']}:{r['actor_display']}",
            r["action"], f"{r['resource_type']} {r['resource_id'] or ''}".strip(),
            outcome.strip(), r["client_ip"] or "-",
        )  # fmt: skip
    out.print(table)


# ---------------------------------------------------------------- serve


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[
        int | None, typer.Option(min=1, max=512, help="Worker processes (default: one per core).")
    ] = None,
) -> None:
    """Run the API: `sanic api.server:create_app --factory` (replaces this process)."""
    count = workers or os.cpu_count() or 1
    argv = [
        sys.executable, "-m", "sanic", "api.server:create_app", "--factory",
        "--host", host, "--port", str(port), "--workers", str(count), "--no-motd",
    ]  # fmt: skip
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - serve becomes the API process


@app.command("worker")
def worker() -> None:
    """Run the background worker: webhook deliveries (and the other jobs of worker/).

    Settings from CONECTADES_* (CONECTADES_DATABASE_URL, the API's role;
    CONECTADES_WEBHOOK_ALLOWED_HOSTS, ...: docs/webhooks.md). Stops on SIGTERM."""
    from worker.main import main as worker_main

    worker_main()


# ---------------------------------------------------------------- edge


def _edge() -> Any:
    from infra.nginx import stack_edge
    from infra.stack import VAR, load_env

    env = load_env()
    api = f"http://127.0.0.1:{env['API_PORT']}"
    return stack_edge(VAR, int(env["EDGE_PORT"]), api, daemon=False)  # as the stack runs it


@edge_app.command("render")
def edge_render() -> None:
    """Render var/edge/nginx.conf from edge/ and the environment, and check it (nginx -t)."""
    from infra.nginx import NginxError

    edge = _edge()
    try:
        out.print(str(edge.render()))
        out.print(edge.check())
    except NginxError as exc:
        raise CliError(str(exc)) from None


@edge_app.command("reload")
def edge_reload() -> None:
    """Re-render, check and gracefully reload the running edge."""
    from infra.nginx import NginxError

    try:
        _edge().reload()
    except NginxError as exc:
        raise CliError(str(exc)) from None
    out.print("edge reloaded")


@edge_app.command("stats")
def edge_stats(
    log: Annotated[Path | None, typer.Option(help="Access log (default: the stack's).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Edge cache hit ratio and status counts from the JSON access log."""
    from edge.stats import format_text, read_log

    path = log or _edge().access_log
    if not path.exists():
        raise CliError(f"no access log at {path} (is the edge running?)")
    stats = read_log(path)
    if as_json:
        emit_json(stats.as_dict())
    else:
        out.print(format_text(stats))


# ---------------------------------------------------------------- chaos


@chaos_app.command("run")
def chaos_run(
    fault: Annotated[
        list[str] | None,
        typer.Option(help="A fault to inject (repeat; default: every fault, in turn)."),
    ] = None,
    short: Annotated[
        bool, typer.Option("--short", help="Redis kill, worker kill, PostgreSQL restart.")
    ] = False,
    vus: Annotated[int, typer.Option(min=1, help="Careful clients (k6 VUs).")] = 40,
    think: Annotated[float, typer.Option(min=0, help="Mean think time (s).")] = 0.5,
    retries: Annotated[
        int, typer.Option(min=0, help="Careful clients: retries after no answer or a 5xx.")
    ] = 4,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds of load before a fault.")] = 5.0,
    after: Annotated[
        float, typer.Option(min=1, help="Seconds of load after a fault has ended.")
    ] = 15.0,
    seed: Annotated[bool, typer.Option("--seed", help="Create the load fixture first.")] = False,
    fixture: Annotated[
        Path | None, typer.Option(help="Load fixture (default: <stack var>/load/fixture.json).")
    ] = None,
    results: Annotated[Path | None, typer.Option(help="Where run directories go.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the mixed load with careful clients while the stack's parts fail in turn;
    reconcile donations and time the recovery after each fault."""
    from infra import stack as infra_stack
    from load import chaos
    from load import fixture as fx
    from load.run import RESULTS
    from load.stack import StackError

    names = tuple(fault) if fault else (chaos.SHORT if short else tuple(chaos.FAULTS))
    unknown = [n for n in names if n not in chaos.FAULTS]
    if unknown:
        raise_cli(f"unknown fault {unknown[0]!r}: one of {', '.join(chaos.FAULTS)}")
    path = fixture or infra_stack.VAR / "load" / "fixture.json"
    try:
        stack = chaos.local()
    except (chaos.ChaosError, StackError) as exc:
        raise CliError(str(exc)) from None
    if seed:
        made = fx.seed(
            stack.target.admin_dsn, path, redis_url=stack.target.redis_url,
            keyring=stack.target.contact_keys(),
            tenants=5, campaigns_per_tenant=20, donations=2000, keys_per_tenant=3,
        )  # fmt: skip
    elif path.exists():
        made = fx.Fixture.load(path)
    else:
        raise_cli(f"no load fixture at {path}: add --seed (once)")
    cfg = chaos.ChaosConfig(
        faults=names, vus=vus, think=think, retries=retries, warmup=warmup, after=after,
        results=results or RESULTS, command=" ".join(["conectades", *sys.argv[1:]]),
    )  # fmt: skip

    def show(r: chaos.FaultResult) -> None:
        verdict = "pass" if r.passed else "[bold red]FAIL[/]"
        recovery = f"{r.recovery_s:.1f} s" if r.recovery_s is not None else "not whole"
        err.print(
            f"{r.title}: {r.errors_seen} errors seen, recovery {recovery}, "
            f"{r.acknowledged} acknowledged, {verdict}" + (f" ({r.error})" if r.error else ""),
            markup=True,
        )

    report = chaos.run_suite(cfg, made, stack, on_result=show)
    if as_json:
        emit_json(report.as_dict())
    else:
        table = Table(*chaos.HEADERS, title=f"chaos run {report.started}")
        for row in chaos.table_rows(report):
            table.add_row(*row)
        out.print(table)
        out.print(f"report: {report.dir}/chaos.md, chaos.json")
    if not report.passed:
        raise typer.Exit(1)


def raise_cli(message: str) -> NoReturn:
    """A usage error found before any work: clear message, exit status 2."""
    err.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(2)


def main() -> None:
    try:
        app()
    except CliError as exc:  # raised outside `run`: still one clear line, no traceback
        err.print(f"[bold red]error:[/] {exc}", markup=True)
        sys.exit(1)
