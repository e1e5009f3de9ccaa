"""The benchmark harness: our paths against their ceilings, in one run, one client.

`conectades bench` / `python -m load.bench` starts a throwaway stack under
var/bench/harness/ (PostgreSQL, Redis, the API, the Nginx edge rendered by
edge/render.py) and loads it with wrk (the same binary, threads and connections
for every row). Each row is measured once per round, rounds are interleaved and
medians reported, because the machine is shared and noisy: what holds from run to
run is a path's ratio to its ceiling, not its absolute rate. After the warm-up and
after every row that writes, the database is analyzed (outside the measurement), as
autovacuum keeps a database in steady state: otherwise the first automatic analyze
lands in some row's measurement, and until then the planner guesses (see
`bench_stack.analyze`).

Ceilings
  static-file       Nginx serving a static file with the public page's bytes
  static-html       the same with the donor page's (HTML) bytes
  json-build        the public JSON page on an API without Redis, no edge (built each time)
  bare-route        a bare Sanic route (load/ceiling.py's `create_bare_app`) returning the
                    partner read's bytes, through the edge
  pg-insert         the same bare app doing one INSERT into a plain table through
                    asyncpg per POST (autocommit, synchronous_commit on), through the
                    edge: the write rate PostgreSQL allows this HTTP client
Our paths
  public-page       GET /api/public/{tenant}/campaigns/{slug} from the edge microcache
  donor-page        GET /o/{tenant}/{slug} (pt-BR HTML) from the edge microcache
  page-build        the same page on an API without Redis, no edge (built each time)
  partner-redis     GET /api/v1/campaigns/{id} with an API key, X-Cache: HIT (Redis)
  partner-pg        the same read from an API without Redis (built from PostgreSQL)
  donations-spread  POST /api/v1/campaigns/{id}/donations, random item of 200
  donations-one     the same, every donation on one item (hot item)
  cold-start        seconds from process start to the first 200 on /health/ready
                    (load/coldstart.py)

Targets (issue 6): public-page >= 0.85 x static-file; partner-redis >= 0.5 x
bare-route; donations-one >= 0.8 x donations-spread; cold start <= 1.5 s.
Issue 17: donor-page >= 0.85 x static-html (a file with the page's bytes);
page-build's CPU per request <= 2 x json-build's (both built on every request).

The API's per-key rate limiter is off (CONECTADES_RATE_LIMIT_RATE=0) and the
edge's per-IP limits are off (EdgeConfig(per_ip_limits=False)): one client at
thousands of requests/s would otherwise get 429s; the limits have their own tests.

The parts: the rows, their ceilings and goals (load/bench_rows.py); the throwaway
stack and what wrk sends to each row (load/bench_stack.py); medians, ratios and the
table (load/bench_report.py); this module runs the rounds and is the command.

Usage (from the repository root):

    .venv/bin/python -m load.bench
    .venv/bin/python -m load.bench --duration 10 --rounds 3 --connections 32 --workers 2
    .venv/bin/python -m load.bench --only static-file,public-page --json out.json
    .venv/bin/conectades bench --markdown table.md
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from load.bench_report import ColdStart, Sample, render_table, report_markdown, summarize
from load.bench_rows import COLD_START, NAMES, ROW_BY_NAME, select
from load.bench_stack import analyze, run_wrk, stack

ROOT = Path(__file__).resolve().parent.parent
# Each run gets its own directory below this one (runs may overlap: a test while a
# full run goes on); it is removed after a clean run and kept, with the logs, after a
# failed one.
BASE = ROOT / "var" / "bench" / "harness"


@dataclass(frozen=True)
class Options:
    duration: int = 10
    rounds: int = 3
    connections: int = 32
    workers: int = os.cpu_count() or 1
    threads: int = 2
    warmup: int = 2
    cold_runs: int = 5
    only: tuple[str, ...] = ()

    @property
    def command(self) -> str:
        cmd = (
            f"conectades bench --duration {self.duration:g} --rounds {self.rounds} "
            f"--connections {self.connections} --workers {self.workers} "
            f"--threads {self.threads} --warmup {self.warmup:g}"
        )
        if self.only:
            cmd += f" --only {','.join(self.only)}"
        return cmd


def _truncate_logs(edges: Sequence[Any]) -> None:
    """Keep the access logs to one run (nginx appends, so truncation is safe)."""
    for server in edges:
        with contextlib.suppress(FileNotFoundError):
            os.truncate(server.access_log, 0)


def _cold_start(env: dict[str, str], runs: int) -> ColdStart:
    from load.coldstart import measure_cold_start

    return ColdStart(runs=measure_cold_start(env, runs=runs))


def _machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1) if found else ""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0],
    }


@contextlib.contextmanager
def _kept_on_failure(run_dir: Path) -> Iterator[None]:
    try:
        yield
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n(the run's logs are kept in {run_dir})") from exc


def bench(opts: Options, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the stack, measure the selected rows (interleaved rounds), stop the stack."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    names = select(opts.only)
    rows = [n for n in names if n in ROW_BY_NAME]
    samples: dict[str, list[Sample]] = {n: [] for n in rows}
    loads: list[float] = [os.getloadavg()[0]]
    cold: ColdStart | None = None
    started = dt.datetime.now(dt.UTC)
    run_dir = BASE / f"{started:%Y%m%d-%H%M%S}-{os.getpid()}"
    with _kept_on_failure(run_dir), stack(run_dir, rows, opts.workers) as st:
        log(
            f"stack up: {opts.workers} API worker(s) per server, page {st.page_bytes} bytes; "
            "API rate limiter off (CONECTADES_RATE_LIMIT_RATE=0), edge per-IP limits off "
            "(EdgeConfig(per_ip_limits=False))"
        )
        if opts.warmup > 0:
            for name in rows:
                run_wrk(st.targets[name], opts.warmup, opts.threads, opts.connections)
        analyze(st.admin_dsn)
        for rnd in range(1, opts.rounds + 1):
            for name in rows:  # interleaved: every row once per round
                _truncate_logs(st.edges)
                target = st.targets[name]
                st.cpu.start()
                sample = run_wrk(target, opts.duration, opts.threads, opts.connections)
                cpu_ms = st.cpu.stop().per_request_ms(sample.requests)
                extra = target.check() if target.check is not None else {}
                sample = Sample(**{**asdict(sample), "extra": extra, "cpu_ms": cpu_ms})
                samples[name].append(sample)
                if ROW_BY_NAME[name].writes:  # not measured: what autovacuum would do
                    analyze(st.admin_dsn)
                loads.append(os.getloadavg()[0])
                log(
                    f"round {rnd} {name:17s} {sample.rps:9.0f} req/s  p50 {sample.p50_ms:6.2f} ms"
                    f"  p99 {sample.p99_ms:7.2f} ms  errors {sample.errors}"
                    f"  server {sample.cpu_ms.get('total', 0):.2f} core-ms/req"
                    + (f"  {sample.extra}" if sample.extra else "")
                )
        _truncate_logs(st.edges)
        if COLD_START in names:
            cold = _cold_start(st.api_env, opts.cold_runs)
            loads.append(os.getloadavg()[0])
    summaries = summarize(samples)
    return {
        "date": started.isoformat(timespec="seconds"),
        "command": opts.command,
        "options": asdict(opts),
        "machine": _machine(),
        "load_average_1min": {"min": min(loads), "max": max(loads), "samples": loads},
        "page_bytes": st.page_bytes,
        "notes": [
            "API per-key rate limiter off (CONECTADES_RATE_LIMIT_RATE=0)",
            "edge per-IP limits off (EdgeConfig(per_ip_limits=False))",
        ],
        "summary": [
            {
                "name": s.row.name,
                "rps": s.rps,
                "p50_ms": s.p50_ms,
                "p99_ms": s.p99_ms,
                "errors": s.errors,
                "ceiling": s.row.ceiling,
                "ratio": s.ratio,
                "rps_min": s.rps_min,
                "rps_max": s.rps_max,
                "goal": s.row.goal,
                "met": s.met,
                "cpu_ms_per_request": s.cpu_ms,
                "cost_ratio": s.cost_ratio,
                "cost_goal": s.row.cost_goal,
            }
            for s in summaries
        ],
        "cold_start": None
        if cold is None
        else {"runs": cold.runs, "median": cold.median, "goal": cold.goal, "met": cold.met},
        "rounds": {name: [asdict(s) for s in runs] for name, runs in samples.items()},
        "table": render_table(summaries, cold),
    }


# --------------------------------------------------------------------------- CLI


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def bench_command(
    duration: Annotated[int, typer.Option(help="Seconds per measurement (wrk -d).")] = 10,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds (medians reported).")] = 3,
    connections: Annotated[int, typer.Option(help="wrk connections.")] = 32,
    workers: Annotated[
        int, typer.Option(help="Sanic workers per server (API and bare app).")
    ] = os.cpu_count() or 1,
    threads: Annotated[int, typer.Option(help="wrk threads.")] = 2,
    warmup: Annotated[int, typer.Option(help="Seconds of warm-up per row (0: none).")] = 2,
    cold_runs: Annotated[int, typer.Option(help="Cold starts measured.")] = 5,
    only: Annotated[
        list[str] | None,
        typer.Option(help=f"Rows to measure (repeat or comma-separate): {', '.join(NAMES)}."),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every figure as JSON here.")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the table as Markdown here.")] = None,
    strict: Annotated[
        bool, typer.Option(help="Exit 1 when a goal is missed or a request failed.")
    ] = False,
) -> None:
    """Benchmark our paths against their ceilings (static file, bare route, INSERT)."""
    try:
        names = tuple(select(only))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--only") from None
    opts = Options(
        duration=duration,
        rounds=rounds,
        connections=connections,
        workers=workers,
        threads=threads,
        warmup=warmup,
        cold_runs=cold_runs,
        only=names if only else (),
    )
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (e.g. a timeout killing the run) unwinds like Ctrl-C: the stack stops.
        signal.signal(signal.SIGTERM, _terminate)
    try:
        result = bench(opts, log=lambda line: print(line, flush=True))
    except RuntimeError as exc:  # a server or wrk failed: say which, without a traceback
        typer.echo(f"bench failed: {exc}", err=True)
        raise typer.Exit(1) from None
    print()
    print(report_markdown(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    if markdown is not None:
        markdown.write_text(report_markdown(result))
    failed = any(s["met"] is False or s["errors"] for s in result["summary"]) or (
        result["cold_start"] is not None and not result["cold_start"]["met"]
    )
    if strict and failed:
        raise typer.Exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m load.bench ...`: the same options as `conectades bench`; the exit code."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(bench_command)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # Standalone mode prints usage errors as the CLI does, and always exits.
        typer.main.get_command(app).main(args=args, prog_name="python -m load.bench")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
