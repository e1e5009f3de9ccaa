"""`python -m load` (and `conectades load`): run k6 scenarios, seed their data,
reconcile and re-print a run.

    python -m load seed                          # tenants, keys, logins, campaigns
    python -m load run mixed --vus 1000 --duration 60s
    python -m load run public --model open --rate 800 --duration 30s
    python -m load reconcile load/results/<run>  # again, against the database
    python -m load show load/results/<run>       # the success table again
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.stack_demo import run_cache_warm
from load import fixture as fx
from load import report
from load.k6 import K6Live
from load.reconcile import read_events, reconcile
from load.run import RESULTS, SCENARIOS, RunConfig, run
from load.stack import MemoryMonitor, StackError, StackTarget, env_keyring, local_stack

load_app = typer.Typer(
    name="load",
    help="Load tests: k6 scenarios against the stack, reports, reconciliation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Model(StrEnum):
    closed = "closed"
    open = "open"


class TargetSet(StrEnum):
    old = "old"
    ours = "ours"
    all = "all"
    none = "none"


class PagesKind(StrEnum):
    json = "json"
    html = "html"


BaseUrl = Annotated[
    str | None, typer.Option(help="The edge URL (default: the ./start.sh stack's edge).")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="CONECTADES_ADMIN_DATABASE_URL",
        help="Owner-role DSN for seeding and reconciliation (default: the stack's).",
    ),
]
RedisUrl = Annotated[
    str | None, typer.Option(help="Redis of the stack (purged after seeding; memory sampling).")
]
FixtureOpt = Annotated[
    Path, typer.Option("--fixture", help="Tenants, keys and logins of the load tests.")
]


def _target(base_url: str | None, database_url: str | None, redis_url: str | None) -> StackTarget:
    try:
        return local_stack(base_url, database_url, redis_url)
    except StackError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None


def _warm(target: StackTarget) -> None:
    """`conectades cache warm` on the stack's API: the seed purged the cache, and a
    thousand first visitors would otherwise build every public read at once."""
    if target.api_url is None:
        err.print("cache not warmed: the API's own URL is not known (not a ./start.sh stack)")
        return
    for line in run_cache_warm(target.api_url):
        err.print(line)


def _seed(target: StackTarget, path: Path, plan: dict[str, Any]) -> fx.Fixture:
    with Progress(TextColumn("{task.description:<10}"), BarColumn(), console=err) as bar:
        tasks: dict[str, Any] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)

        made = fx.seed(
            target.admin_dsn,
            path,
            keyring=target.contact_keys(),
            redis_url=target.redis_url,
            progress=progress,
            **plan,
        )
    err.print(
        f"seeded {len(made.tenants)} tenants ({', '.join(t.slug for t in made.tenants[:3])}…) "
        f"with {plan['keys_per_tenant']} keys each; fixture in {path}"
    )
    return made


SeedTenants = Annotated[int, typer.Option(min=1, max=1000, help="Tenants to create.")]
SeedCampaigns = Annotated[int, typer.Option(min=1, max=100_000, help="Campaigns per tenant.")]
SeedDonations = Annotated[int, typer.Option(min=0, max=10_000_000, help="Donations in total.")]
SeedKeys = Annotated[
    int, typer.Option(min=1, max=50, help="API keys per tenant (the per-key limit is 50 r/s).")
]


def _invocation() -> str:
    """The command line as typed: `conectades load run ...` or `python -m load run ...`."""
    if Path(sys.argv[0]).name == "conectades":
        return shlex.join(["conectades", *sys.argv[1:]])
    return shlex.join(["python", "-m", "load", *sys.argv[1:]])


@load_app.command("seed")
def seed_command(
    base_url: BaseUrl = None,
    database_url: DatabaseUrl = None,
    redis_url: RedisUrl = None,
    fixture: FixtureOpt = fx.DEFAULT_FIXTURE,
    tenants: SeedTenants = 10,
    campaigns_per_tenant: SeedCampaigns = 60,
    donations: SeedDonations = 20_000,
    keys_per_tenant: SeedKeys = 3,
    warm: Annotated[
        bool,
        typer.Option(
            help="Warm the purged cache after seeding (`conectades cache warm`), "
            "as ./start.sh does after a start."
        ),
    ] = True,
) -> None:
    """Create the load tests' tenants, keys, staff logins, campaigns and donations."""
    target = _target(base_url, database_url, redis_url)
    plan = {
        "tenants": tenants,
        "campaigns_per_tenant": campaigns_per_tenant,
        "donations": donations,
        "keys_per_tenant": keys_per_tenant,
    }
    _seed(target, fixture, plan)
    if warm:
        _warm(target)


def _live(bar: Progress, task: Any) -> Any:
    def update(elapsed: float, total: float, live: K6Live, monitor: MemoryMonitor) -> None:
        mem = monitor.last.pss / report.MB
        bar.update(
            task,
            completed=min(elapsed, total),
            requests=live.requests,
            failed=live.failed,
            rps=live.requests / elapsed if elapsed else 0.0,
            mem=mem,
        )

    return update


def print_table(summary: dict[str, Any]) -> None:
    targets = [
        report.Target(**{k: v for k, v in t.items() if k != "passed"}) for t in summary["targets"]
    ]
    table = Table("", "metric", "target", "measured", "", title=f"load run {summary['run_id']}")
    for row in report.table_rows(targets):
        style = {"pass": "green", "FAIL": "bold red"}.get(row[4], "dim")
        table.add_row(*row[:4], f"[{style}]{row[4]}[/]")
    out.print(table)
    m = summary["metrics"]
    lat = m["latency_ms"]
    out.print(
        f"{m['requests']} requests, {m['rps']:.0f} req/s, {m['failed']} failed, "
        f"{m['timeouts']} timeouts; latency ms mean {lat['mean'] or 0:.2f} "
        f"p95 {lat['p95'] or 0:.2f} p99 {lat['p99'] or 0:.2f}"
    )
    rec = summary.get("reconciliation")
    if rec is not None:
        verdict = "clean" if rec["ok"] else f"[bold red]FAILED[/] {rec['problem_counts']}"
        out.print(
            f"reconciliation {verdict}: {rec['acknowledged']} acknowledged, "
            f"{rec['stored']} stored, {rec['items_checked']} items checked"
        )
        for p in rec["problems"][:20]:
            out.print(f"  {p['kind']}: {p['detail']}")


@load_app.command("run")
def run_command(
    scenario: Annotated[str, typer.Argument(help=f"One of: {', '.join(SCENARIOS)}.")],
    vus: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Virtual users (default per scenario; open model: at least one per client IP).",
        ),
    ] = None,
    duration: Annotated[str, typer.Option(help="k6 duration: 30s, 2m, 1m30s.")] = "30s",
    ramp: Annotated[
        str, typer.Option(help="Closed model: reach --vus over this before --duration.")
    ] = "0s",
    rate: Annotated[
        int | None, typer.Option(min=1, help="Open model: iterations per second.")
    ] = None,
    model: Annotated[
        Model, typer.Option(help="closed: constant VUs; open: constant arrival rate.")
    ] = Model.closed,
    max_vus: Annotated[int | None, typer.Option(min=1, help="Open model: VU ceiling.")] = None,
    think: Annotated[float, typer.Option(min=0, help="Mean think time (s), closed model.")] = 1.0,
    ips: Annotated[
        int | None,
        typer.Option(min=0, help="Client IPs on loopback (default: ≤ 4 VUs or 2.5 r/s each)."),
    ] = None,
    mix: Annotated[
        str | None, typer.Option(help="mixed: role weights, e.g. public=85,partner=8,pledge=5")
    ] = None,
    pages: Annotated[
        PagesKind,
        typer.Option(help="What public browsers read: the JSON API or the pt-BR donor pages."),
    ] = PagesKind.json,
    skew: Annotated[
        float, typer.Option(min=1, help="Campaign popularity skew (1: uniform).")
    ] = 3.0,
    retry: Annotated[
        float, typer.Option(min=0, max=1, help="Share of pledges re-sent with the same key.")
    ] = 0.1,
    timeout: Annotated[str, typer.Option(help="k6 request timeout.")] = "10s",
    targets: Annotated[
        TargetSet, typer.Option(help="Exit 1 when a target of this set fails.")
    ] = TargetSet.ours,
    seed: Annotated[bool, typer.Option("--seed", help="Create the fixture first.")] = False,
    seed_tenants: SeedTenants = 10,
    seed_campaigns: SeedCampaigns = 60,
    seed_donations: SeedDonations = 20_000,
    keys_per_tenant: SeedKeys = 3,
    base_url: BaseUrl = None,
    database_url: DatabaseUrl = None,
    redis_url: RedisUrl = None,
    fixture: FixtureOpt = fx.DEFAULT_FIXTURE,
    results: Annotated[Path, typer.Option(help="Where run directories go.")] = RESULTS,
    keep_raw: Annotated[
        bool,
        typer.Option(help="Keep k6's console lines (donation events, failed requests)."),
    ] = False,
    no_reconcile: Annotated[bool, typer.Option("--no-reconcile")] = False,
    all_items: Annotated[
        bool, typer.Option(help="Check every item's totals, not only those the run touched.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json.")] = False,
) -> None:
    """Run a scenario; print the old system's success table beside ours."""
    if scenario not in SCENARIOS:
        err.print(f"[bold red]error:[/] unknown scenario {scenario!r}: {', '.join(SCENARIOS)}")
        raise typer.Exit(2)
    target = _target(base_url, database_url, redis_url)
    if seed:
        plan = {
            "tenants": seed_tenants,
            "campaigns_per_tenant": seed_campaigns,
            "donations": seed_donations,
            "keys_per_tenant": keys_per_tenant,
        }
        made = _seed(target, fixture, plan)
        _warm(target)
    elif fixture.exists():
        made = fx.Fixture.load(fixture)
    else:
        err.print(f"[bold red]error:[/] no fixture at {fixture}: add --seed (once)")
        raise typer.Exit(2)
    cfg = RunConfig(
        scenario=scenario,
        model=model.value,
        vus=vus,
        duration=duration,
        ramp=ramp,
        rate=rate,
        max_vus=max_vus,
        think=think if model == Model.closed else 0.0,
        ips=ips,
        mix=mix,
        pages=pages.value,
        skew=skew,
        retry=retry,
        timeout=timeout,
        keep_raw=keep_raw,
        reconcile=not no_reconcile,
        all_items=all_items,
        results=results,
        command=_invocation(),
    )
    columns = (
        TextColumn(f"{scenario} ({cfg.resolved_vus()} VUs)"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn(
            "{task.fields[requests]} req, {task.fields[rps]:.0f}/s, "
            "{task.fields[failed]} failed, stack {task.fields[mem]:.0f} MB"
        ),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(
            "k6",
            total=max(1.0, _seconds(duration) + _seconds(ramp)),
            requests=0,
            failed=0,
            rps=0.0,
            mem=0.0,
        )
        try:
            result = run(cfg, target, made, progress=_live(bar, task))
        except (StackError, ValueError) as exc:
            bar.stop()
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
    if as_json:
        out.print_json(json.dumps(result.summary, default=str))
    else:
        print_table(result.summary)
        out.print(f"report: {result.run_dir}/summary.md, chart.png")
    failed = report.failing(result.targets, targets.value)
    if failed:
        err.print(f"targets failed ({targets.value}): " + ", ".join(t.name for t in failed))
        raise typer.Exit(1)


def _seconds(duration: str) -> float:
    from load.k6 import seconds

    return seconds(duration)


@load_app.command("reconcile")
def reconcile_command(
    run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    database_url: DatabaseUrl = None,
    all_items: Annotated[bool, typer.Option(help="Check every item's totals.")] = False,
) -> None:
    """Reconcile a run's acknowledged donations against the database again."""
    summary = json.loads((run_dir / "summary.json").read_text())
    if database_url is None:
        target = _target(None, None, None)
        dsn, ring = target.admin_dsn, target.keyring
    else:
        dsn, ring = database_url, env_keyring()
    if ring is None:
        err.print("[bold red]error:[/] set CONECTADES_CONTACT_KEYS and CONECTADES_CONTACT_HMAC_KEY")
        raise typer.Exit(2)
    rec = asyncio.run(
        reconcile(
            dsn,
            summary["run_id"],
            read_events(run_dir / "donations.jsonl"),
            keyring=ring,
            all_items=all_items,
        )
    )
    out.print(
        f"{rec.sent} keys sent, {rec.acknowledged} acknowledged, {rec.stored} stored "
        f"({rec.unacknowledged_stored} without acknowledgement), {rec.items_checked} items checked"
    )
    for p in rec.problems:
        out.print(f"  {p.kind}: {p.detail}")
    if not rec.ok:
        err.print(f"[bold red]reconciliation failed:[/] {rec.counts()}")
        raise typer.Exit(1)
    out.print("reconciliation clean")


@load_app.command("show")
def show_command(run_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False)]) -> None:
    """Print a run's success table again."""
    print_table(json.loads((run_dir / "summary.json").read_text()))


def main() -> None:
    load_app()
