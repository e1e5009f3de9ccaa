"""`conectades audit`: the audit log, for operators."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import typer
from rich.table import Table

from admin.common import (
    JsonOpt,
    tenant_by_slug,
)
from admin.runtime import (
    admin_connection,
    emit_json,
    out,
    raise_cli,
    run,
)
from db.queries import audit as aq


def _audit_dict(row: asyncpg.Record) -> dict[str, Any]:
    out = {k: (str(v) if isinstance(v, UUID) else v) for k, v in dict(row).items()}
    out["occurred_at"] = row["occurred_at"].isoformat()
    out["detail"] = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
    return out


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
            tenant_id = (await tenant_by_slug(conn, tenant))["id"] if tenant else None
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
