"""`conectades db`: migrations, status, prune, backup and restore."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from admin import backup as bk
from admin.common import (
    JsonOpt,
    purge_after_admin_write,
)
from admin.runtime import (
    ADMIN_URL_ENV,
    API_URL_ENV,
    CliError,
    admin_connection,
    audit,
    emit_json,
    env_url,
    err,
    out,
    raise_cli,
    run,
    url_user,
)
from api.config import AppConfig
from db import migrate as migrations
from db.queries import audit as aq
from db.queries import donors as dq
from db.queries import email as emq
from db.queries import events as eq
from db.queries import idempotency as iq
from db.queries import refresh_tokens as rq
from notify.settings import EmailSettings

db_app = typer.Typer(help="Schema migrations and maintenance.", no_args_is_help=True)

MIN_EVENT_RETENTION = 30  # days: the events feed's promise (issue 16)


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
    purge_after_admin_write(None)
    out.print(f"restored {path}" + (f"; API role {role!r} ready" if role else ""))
