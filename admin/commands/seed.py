"""`conectades seed`: realistic demo data, and `--purge` of what a seed made."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from admin.common import (
    JsonOpt,
    keyring_from_env,
    purge_after_admin_write,
)
from admin.runtime import (
    CliError,
    admin_connection,
    audit,
    emit_json,
    err,
    out,
    raise_cli,
    run,
)
from db.seed import SeedError, SeedPlan, purge_seeded, run_seed


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
    ring = keyring_from_env()
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
    purge_after_admin_write(None)
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
    purge_after_admin_write(None)
    if as_json:
        emit_json(removed)
        return
    rows = removed["rows"]
    out.print(
        f"removed {len(removed['tenants'])} seeded tenants, {rows.get('campaign', 0)} "
        f"campaigns and {rows.get('donation', 0)} donations"
    )
