"""Run one k6 scenario against the stack and turn its output into a report.

    python -m load run mixed --vus 1000 --duration 60s
    python -m load run public --model open --rate 800 --duration 30s

The runner checks the stack answers, writes the data k6 uses (targets.json),
spreads the virtual users over many loopback addresses (`--local-ips`), samples
the stack's memory while k6 runs, then writes summary.json, summary.md and
chart.png under load/results/<run id>/ and reconciles the donations.

k6 writes no per-request output: on 2 cores the load generator and the stack
share the CPU, and a CSV of ~11 lines per request cost k6 about 10 % more CPU
per request (and the runner a tail of ~10k lines/s). The runner reads k6's
summary (with per-second and per-name submetrics, see lib.js), k6's console
lines (donation events and failed requests, rare) and, while k6 runs, two
counters from k6's REST API once a second.

The k6 process itself (binary, durations, client addresses, live figures) is
load/k6.py; reading its output, load/k6_summary.py; judging and showing the
figures, load/report.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from load import report
from load.cpu import CpuMeter, children_seconds
from load.fixture import Fixture, build_targets
from load.k6 import (
    K6Live,
    Progress,
    ip_range,
    k6_binary,
    k6_memory_limit,
    k6_version,
    run_k6,
    seconds,
)
from load.k6_summary import (
    latency_by_name,
    metrics_from_k6,
    read_console,
    requests_by_name,
    series_from_summary,
    write_series,
)
from load.reconcile import read_events, reconcile
from load.stack import MemoryMonitor, StackTarget, check_up

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = {"mixed": 1000, "public": 100, "partner": 20, "pledges": 20}  # default VUs
WRITES = {"mixed", "partner", "pledges"}
# The edge allows 10 r/s per address (burst 20). A user thinking T s between
# requests sends about 1/T r/s, so 4*T users share an address (4 r/s each at
# T = 1 s); open-model arrivals aim at 2.5 r/s per address: k6 does not spread
# iterations evenly over its VUs (at 5 r/s per address, 1,500/s for 20 s, the
# busiest address sent 10.6 r/s and met the limit).
VUS_PER_IP_PER_THINK_SECOND = 4
OPEN_RATE_PER_IP = 2.5
SYSTEM_TAGS = "status,method,name,scenario,expected_response,error_code"
# The series' buckets are submetrics, and k6 matches every sample against each
# submetric of its metric: at most this many buckets (1 s each up to ~2 minutes).
SERIES_MAX_BUCKETS = 120
# After the duration, running iterations get k6's gracefulStop (5 s in lib.js) and
# may still start requests; one more second for the last bucket.
SERIES_TAIL_S = 6.0
CONSOLE = "k6-console.jsonl"
# The stack's memory is sampled every this many seconds while k6 runs, and once
# more when it has stopped. A sample costs 0.17-0.22 s, most of it the kernel
# computing PSS over the page tables of the stack's 36 processes (the ./start.sh
# stack; each PostgreSQL backend maps the shared buffers), and the stack answered
# worse right then: at 5 s, the 1000-user runs' median p50 was 77 ms in the second
# of each sample against 13-18 ms in the others (six runs), flat with no sampling
# during the run. So the sampler runs at idle priority (load/stack.py) and seldom;
# the stack's memory moves slowly (pools, caches), and the last sample, taken
# after the run, sees what they grew to.
MEMORY_INTERVAL_S = 15.0


@dataclass
class RunConfig:
    scenario: str
    model: str = "closed"  # closed: constant VUs with think time; open: arrival rate
    vus: int | None = None
    duration: str = "30s"
    ramp: str = "0s"  # closed model: users arrive over this, then stay `duration`
    rate: int | None = None  # open model: iterations per second
    max_vus: int | None = None
    think: float = 1.0
    ips: int | None = None  # client addresses; None: enough for the edge's per-IP limit
    mix: str | None = None  # mixed scenario role weights, e.g. public=85,partner=8,...
    # What public browsers read: the JSON API or the donor pages (pt-BR HTML).
    pages: str = "json"
    skew: float = 3.0
    retry: float = 0.1
    timeout: str = "10s"
    keep_raw: bool = False
    reconcile: bool = True
    all_items: bool = False
    results: Path = RESULTS
    command: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def resolved_vus(self) -> int:
        if self.vus is not None:
            return self.vus
        if self.model == "open":
            # k6 gives each VU one of --local-ips, in VU order: with fewer VUs than
            # addresses, the addresses past the last VU sent nothing and the others
            # carried the whole rate (1,500/s from 150 of 300 addresses: 10 r/s each,
            # the edge's limit, and 429s in its bursts).
            return max(10, (self.rate or 100) // 10, self.resolved_ips())
        return SCENARIOS[self.scenario]

    def resolved_ips(self) -> int:
        if self.ips is not None:
            return self.ips
        if self.model == "open":
            return max(1, int(-(-(self.rate or 100) // OPEN_RATE_PER_IP)))
        per_ip = max(1, int(VUS_PER_IP_PER_THINK_SECOND * self.think))
        return max(1, -(-self.resolved_vus() // per_ip))


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    targets: list[report.Target]
    k6_returncode: int


def new_run_id(scenario: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{scenario}-{secrets.token_hex(2)}"


def series_plan(cfg: RunConfig) -> tuple[int, int]:
    """(step, buckets) of the per-second series: buckets of `step` seconds covering
    the scenario and its graceful stop, at most SERIES_MAX_BUCKETS of them."""
    span = seconds(cfg.duration) + (seconds(cfg.ramp) if cfg.model == "closed" else 0.0)
    span += SERIES_TAIL_S
    step = max(1, math.ceil(span / SERIES_MAX_BUCKETS))
    return step, math.ceil(span / step)


def k6_command(cfg: RunConfig, run_dir: Path, api_port: int) -> list[str]:
    cmd = [
        k6_binary(),
        "run",
        "--quiet",
        "--no-usage-report",
        "--system-tags",
        SYSTEM_TAGS,
        # The REST API on a free port: the live figures, and no clash with another
        # k6 on the default 6565.
        "--address",
        f"127.0.0.1:{api_port}",
        # console.log lines (donation events, failed requests) as JSON lines in a
        # file; k6's own log (stderr, k6.log) is JSON lines too.
        "--console-output",
        str(run_dir / CONSOLE),
        "--log-format",
        "json",
    ]
    ips = cfg.resolved_ips()
    if ips > 0:
        cmd += ["--local-ips", ip_range(ips)]
    cmd.append(str(SCENARIO_DIR / f"{cfg.scenario}.js"))
    return cmd


def k6_env(cfg: RunConfig, target: StackTarget, run_id: str, run_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("K6_", "CONECTADES_"))}
    step, buckets = series_plan(cfg)
    env.update(
        {
            "BASE_URL": target.base_url.rstrip("/"),
            "TARGETS": str(run_dir / "targets.json"),
            "RUN_ID": run_id,
            "MODEL": cfg.model,
            "VUS": str(cfg.resolved_vus()),
            "DURATION": cfg.duration,
            "RAMP": cfg.ramp,
            "THINK": str(cfg.think),
            "SKEW": str(cfg.skew),
            "RETRY": str(cfg.retry),
            "TIMEOUT": cfg.timeout,
            "SUMMARY": str(run_dir / "k6-summary.json"),
            "SERIES_STEP": str(step),
            "SERIES_BUCKETS": str(buckets),
        }
    )
    # k6's own garbage collector, off until its heap reaches GOMEMLIMIT
    # (its memory is not the stack's). With 1000 VUs the heap holds ~320 MB
    # live; each collection then took ~1.9 s on the shared cores, and the
    # VUs, made to help mark, stopped sending: p50 jumped to 0.6-1 s for a
    # second or two, two or three times a minute, while nginx still answered
    # in 0 ms (its log). 5 interleaved pairs of 60-s runs: p99 492-621 ms
    # against 776-1155 ms, p95 289-342 against 348-571 ms; peak k6 RSS 2.4 GB
    # against 1.3-1.5 GB (GOGC=400 before).
    # The environment's GOGC and GOMEMLIMIT (already in `env`) win.
    env.setdefault("GOGC", "off")
    if "GOMEMLIMIT" not in env:
        env["GOMEMLIMIT"] = k6_memory_limit()
    if cfg.rate is not None:
        env["RATE"] = str(cfg.rate)
    if cfg.max_vus is not None:
        env["MAX_VUS"] = str(cfg.max_vus)
    if cfg.mix:
        env["MIX"] = cfg.mix
    if cfg.pages not in ("json", "html"):
        raise ValueError("pages: json or html")
    env["PAGES"] = cfg.pages
    env.update(cfg.extra_env)
    return env


EDGE_LOG_FLUSH_S = 1.5


def edge_log_size(path: Path | None) -> int | None:
    """The edge log's size before a run (None: no log to read on this machine)."""
    try:
        return path.stat().st_size if path is not None else None
    except OSError:
        return None


def edge_log_stats(path: Path | None, offset: int | None) -> dict[str, Any] | None:
    """What the run's lines of the edge log say (edge/stats.py), or None."""
    if path is None or offset is None:
        return None
    from edge import stats

    try:
        found = stats.read_log(path, offset)
    except OSError:
        return None
    return {
        "lines": found.requests,
        "cacheable": found.cacheable,
        "asked_upstream": found.asked_upstream,
        "upstream_ratio": found.upstream_ratio if found.cacheable else None,
        "cache": dict(sorted(found.cache.items())),
    }


def run(
    cfg: RunConfig,
    target: StackTarget,
    fixture: Fixture,
    *,
    progress: Progress | None = None,
) -> RunResult:
    if cfg.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {cfg.scenario!r}: one of {', '.join(SCENARIOS)}")
    if cfg.model not in ("closed", "open"):
        raise ValueError("model: closed or open")
    duration = seconds(cfg.duration) + (seconds(cfg.ramp) if cfg.model == "closed" else 0.0)
    check_up(target)
    run_id = new_run_id(cfg.scenario)
    run_dir = cfg.results / run_id
    run_dir.mkdir(parents=True)

    targets_data = asyncio.run(build_targets(target.admin_dsn, fixture))
    targets_path = run_dir / "targets.json"
    targets_path.write_text(json.dumps(targets_data))
    targets_path.chmod(0o600)  # holds API keys and the staff password

    from infra.postgres import free_port

    live = K6Live(free_port())
    cmd = k6_command(cfg, run_dir, live.port)
    env = k6_env(cfg, target, run_id, run_dir)
    started = datetime.now(UTC)
    # k6's run lasts the duration, plus the first iteration's stagger and the
    # graceful stop; the bar fills over the duration.
    cpu_meter = CpuMeter.for_ports(target.ports())
    beside_meter = CpuMeter.beside(ROOT)
    log_offset = edge_log_size(target.edge_log)
    k6_before = children_seconds()
    cpu_meter.start()
    beside_meter.start()
    memory_dirs = [target.edge_cache] if target.edge_cache is not None else []
    with MemoryMonitor(target.ports(), MEMORY_INTERVAL_S, memory_dirs) as monitor:
        rc = run_k6(cmd, env, run_dir, live, duration, monitor, progress)
    cpu_use = cpu_meter.stop()
    beside_use = beside_meter.stop()
    k6_ended = time.monotonic()
    k6_seconds = children_seconds() - k6_before
    k6_summary_path = run_dir / "k6-summary.json"
    if not k6_summary_path.exists():
        log = (run_dir / "k6.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"k6 exited with {rc} and wrote no summary:\n{log}")
    k6_summary = json.loads(k6_summary_path.read_text())
    series = series_from_summary(k6_summary, series_plan(cfg)[0])
    console = read_console(run_dir / CONSOLE, run_dir / "donations.jsonl")
    metrics = metrics_from_k6(k6_summary)
    metrics["failures"] = console.failures
    unlogged = metrics["failed"] - sum(console.failures.values())
    if unlogged:
        # lib.js logs every request k6 counts as failed; show it if the two disagree.
        metrics["failures"]["(not logged)"] = unlogged
    metrics["requests_by_name"] = requests_by_name(k6_summary)
    metrics["latency_by_name"] = latency_by_name(k6_summary)
    if console.other:
        metrics["console"] = console.other  # a script's other console lines, if any

    events = read_events(run_dir / "donations.jsonl")
    rec = None
    if cfg.reconcile and (cfg.scenario in WRITES or events):
        rec = asyncio.run(
            reconcile(
                target.admin_dsn,
                run_id,
                events,
                keyring=target.contact_keys(),
                all_items=cfg.all_items,
            )
        ).as_dict()
    # nginx writes its buffered log once a second (edge/render.py: flush=1s).
    time.sleep(max(0.0, EDGE_LOG_FLUSH_S - (time.monotonic() - k6_ended)))
    metrics["edge_log"] = edge_log_stats(target.edge_log, log_offset)
    memory = {
        "peak_pss": monitor.peak.pss,
        "peak_rss": monitor.peak.rss,
        "peak_in_memory_files": monitor.peak.in_memory_files,
        "processes": monitor.peak.processes,
        "samples": monitor.samples,
        "roots": monitor.describe(),
    }
    requests = int(metrics["requests"])
    cpu = {
        "seconds": cpu_use.seconds,
        "per_request_ms": cpu_use.per_request_ms(requests),
        "k6_seconds": k6_seconds,
        "k6_per_request_ms": k6_seconds * 1000 / requests if requests else None,
        # Not in the server's figure: the job worker and the SMTP sink of this
        # checkout's ./start.sh stack, when it is the one loaded.
        "beside_per_request_ms": beside_use.per_request_ms(requests) if beside_use.seconds else {},
        "roots": [f"{p.name()}[{p.pid}]" for p in cpu_meter.roots if p.is_running()],
    }
    targets = report.evaluate(metrics, monitor.peak.total or None, rec)
    summary = {
        "run_id": run_id,
        "started": started.isoformat(),
        "command": cfg.command or " ".join(cmd),
        "k6_command": " ".join(cmd),
        "k6_returncode": rc,
        "k6_version": k6_version(),
        "config": {
            **{k: v for k, v in asdict(cfg).items() if k not in ("results", "extra_env")},
            "vus": cfg.resolved_vus(),
            "ips": cfg.resolved_ips(),
            "local_ips": ip_range(cfg.resolved_ips()) if cfg.resolved_ips() else "-",
            "base_url": target.base_url,
            "tenants": len(targets_data["tenants"]),
            "keys": sum(len(t["keys"]) for t in targets_data["tenants"]),
            "campaigns": len(targets_data["campaigns"]),
        },
        "metrics": metrics,
        "memory": memory,
        "cpu": cpu,
        "reconciliation": rec,
        "targets": report.targets_dicts(targets),
        "definitions": DEFINITIONS,
    }
    if series.second:
        write_series(series, run_dir / "series.csv")
        report.chart(series, run_dir / "chart.png", f"{cfg.scenario}: {run_id}")
    report.write(run_dir, summary)
    if not cfg.keep_raw:
        (run_dir / CONSOLE).unlink(missing_ok=True)
    return RunResult(run_dir=run_dir, summary=summary, targets=targets, k6_returncode=rc)


DEFINITIONS = {
    "throughput": "http_reqs / the k6 run's wall time (stagger and graceful stop included)",
    "latency": "http_req_duration: from sending the request to the last response byte",
    "failed": "responses other than 2xx/3xx, and requests without a response",
    "timeouts": "requests without an answer within the request timeout (k6 error 1050)",
    "cache_hit_ratio": (
        "combined: GETs answered by the edge microcache (X-Cache-Status HIT, STALE, "
        "UPDATING, REVALIDATED) or, having reached the API, from Redis (X-Cache: HIT), "
        "over all GETs"
    ),
    "edge_hit_ratio": "edge hits over GETs to the edge-cacheable public routes",
    "api_cache_hit_ratio": "X-Cache: HIT over GETs the API answered (not edge hits)",
    "edge_log": (
        "from the run's lines of the edge's access log (edge/stats.py): the requests "
        "that made the edge ask the API (MISS, EXPIRED, REVALIDATED, and each STALE "
        "answer, behind which nginx refreshes the page in the background) over those "
        "its microcache looked at; what the API was asked for, where the hit ratios "
        "say what the clients got"
    ),
    "memory": (
        f"peak over {MEMORY_INTERVAL_S:.0f} s samples of the summed PSS (RSS: upper bound) "
        "of every process of PostgreSQL, Redis, Nginx and the API workers (found by "
        "their listening ports); k6 not included"
    ),
    "cpu": (
        "CPU time (user + system, reaped children included) of the same processes over "
        "the k6 run, by part, divided by the requests: core-ms per request "
        "(load/cpu.py); k6's own, the load generator's, beside it, and the job "
        "worker's and the SMTP sink's (`beside_per_request_ms`: this checkout's "
        "./start.sh processes, outside the server's figure)"
    ),
}
