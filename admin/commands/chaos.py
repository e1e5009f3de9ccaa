"""`conectades chaos run`: the fault suite against the local stack."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from admin.common import (
    JsonOpt,
)
from admin.runtime import (
    CliError,
    emit_json,
    err,
    out,
    raise_cli,
)

chaos_app = typer.Typer(
    help="Faults under load: the local stack's parts killed in turn (load/chaos.py).",
    no_args_is_help=True,
)


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
    from infra import stack_settings
    from load import chaos, chaos_faults, chaos_report
    from load import fixture as fx
    from load.run import RESULTS
    from load.stack import StackError

    names = tuple(fault) if fault else (chaos_faults.SHORT if short else tuple(chaos_faults.FAULTS))
    unknown = [n for n in names if n not in chaos_faults.FAULTS]
    if unknown:
        raise_cli(f"unknown fault {unknown[0]!r}: one of {', '.join(chaos_faults.FAULTS)}")
    path = fixture or stack_settings.VAR / "load" / "fixture.json"
    try:
        stack = chaos_faults.local()
    except (chaos_faults.ChaosError, StackError) as exc:
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

    def show(r: chaos_report.FaultResult) -> None:
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
        table = Table(*chaos_report.HEADERS, title=f"chaos run {report.started}")
        for row in chaos_report.table_rows(report):
            table.add_row(*row)
        out.print(table)
        out.print(f"report: {report.dir}/chaos.md, chaos.json")
    if not report.passed:
        raise typer.Exit(1)
