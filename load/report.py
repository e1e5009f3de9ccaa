"""What a run produced, judged and shown: its metrics (read from k6's output by
load/k6_summary.py) against the old system's success table and our targets, the
Markdown table and the chart.

Files in a run directory (load/results/<timestamp>-<scenario>/):

    summary.json   everything below, plus the run's settings and reconciliation
    summary.md     the success table (Markdown)
    chart.png      throughput and p50/p95/p99 latency per second
    series.csv     the chart's numbers
    donations.jsonl  the donation events k6 recorded (reconciliation's input)
    k6-summary.json  k6's own end-of-test summary
    k6.log         k6's stderr (JSON lines)
    targets.json   the data k6 used (tenants, keys: git-ignored, like the directory)
    k6-console.jsonl  k6's console lines (deleted after processing unless --keep-raw)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from load.k6_summary import Series

# The targets. "old": the success table of the system we replace; "ours": this
# project's (ARCHITECTURE.md, issue 6).
MB = 1024 * 1024


@dataclass
class Target:
    group: str  # old | ours
    name: str
    op: str  # >= | <= | ==
    limit: float
    unit: str
    value: float | None = None  # None: not measured in this run (n/a)

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        if self.op == ">=":
            return self.value >= self.limit
        if self.op == "<=":
            return self.value <= self.limit
        return self.value == self.limit


def evaluate(
    metrics: dict[str, Any], memory: int | None, reconciliation: dict[str, Any] | None
) -> list[Target]:
    lat = metrics["latency_ms"]
    pct = 100.0
    hit = metrics["cache_hit_ratio"]
    success = metrics["success_ratio"]
    tratio = metrics["timeout_ratio"]
    problems = None
    if reconciliation is not None:
        problems = sum(reconciliation.get("problem_counts", {}).values())
    return [
        Target("old", "throughput", ">=", 500, "req/s", metrics["rps"]),
        Target("old", "mean latency", "<=", 50, "ms", lat["mean"]),
        Target("old", "cache hit (combined)", ">=", 80, "%", None if hit is None else hit * pct),
        Target("old", "success", ">=", 95, "%", None if success is None else success * pct),
        Target("old", "timeouts", "<=", 5, "%", None if tratio is None else tratio * pct),
        Target("ours", "failed requests", "==", 0, "", float(metrics["failed"])),
        Target("ours", "timeouts", "==", 0, "", float(metrics["timeouts"])),
        Target("ours", "p95 latency", "<=", 25, "ms", lat["p95"]),
        Target("ours", "mean latency", "<=", 10, "ms", lat["mean"]),
        Target("ours", "cache hit (combined)", ">=", 90, "%", None if hit is None else hit * pct),
        Target(
            "ours",
            "stack memory (peak PSS + edge cache in memory)",
            "<=",
            1024,
            "MB",
            None if memory is None else memory / MB,
        ),
        Target(
            "ours",
            "donations not reconciled",
            "==",
            0,
            "",
            None if problems is None else float(problems),
        ),
    ]


def failing(targets: list[Target], which: str) -> list[Target]:
    """Targets of the chosen set (old | ours | all | none) that failed."""
    groups = {"old": {"old"}, "ours": {"ours"}, "all": {"old", "ours"}, "none": set()}[which]
    return [t for t in targets if t.group in groups and t.passed is False]


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("", "req/s") and value == int(value) and abs(value) < 1e12:
        text = f"{int(value)}" if unit == "" else f"{value:.0f}"
    else:
        text = f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return f"{text} {unit}".strip()


def _mark(passed: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "n/a"}[passed]


def table_rows(targets: list[Target]) -> list[tuple[str, str, str, str, str]]:
    """(group, metric, target, measured, pass/FAIL) for printing."""
    group_name = {"old": "old system", "ours": "Conectades"}
    return [
        (
            group_name[t.group],
            t.name,
            f"{t.op} {_fmt(t.limit, t.unit)}",
            _fmt(t.value, t.unit),
            _mark(t.passed),
        )
        for t in targets
    ]


def _by_name_table(counts: dict[str, int], latency: dict[str, dict[str, float]]) -> list[str]:
    """Requests and their latency (ms) per name, most requests first."""
    lines = ["| name | requests | mean | p50 | p95 | p99 |", "|---|---:|---:|---:|---:|---:|"]
    for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lat = latency.get(name, {})
        cells = [f"{lat[k]:.1f}" if k in lat else "" for k in ("mean", "p50", "p95", "p99")]
        lines.append(f"| {name} | {count} | {' | '.join(cells)} |")
    return lines


def _cpu_headline(cpu: dict[str, Any] | None) -> list[str]:
    """`- server CPU per request: 1.21 core-ms (api 0.58, ...); k6 0.40`."""
    per = (cpu or {}).get("per_request_ms") or {}
    if "total" not in per:
        return []
    parts = ", ".join(
        f"{name} {per[name]:.2f}" for name in ("api", "postgres", "redis", "nginx") if name in per
    )
    k6 = cpu.get("k6_per_request_ms") if cpu else None
    # k6 does the same work per request for the same mix, so its CPU per request
    # follows the machine's speed in that minute; the server's figure divided by it
    # compares runs of the same mix across minutes (BENCHMARKS.md, session 32).
    gauge = f" (server ÷ k6 {per['total'] / k6:.2f})" if k6 else ""
    lines = [
        f"- server CPU per request: {per['total']:.2f} core-ms ({parts})"
        + (f"; the load generator (k6) {k6:.2f}{gauge}" if k6 is not None else "")
    ]
    beside = (cpu or {}).get("beside_per_request_ms") or {}
    named = {"worker": "the job worker", "mail": "the SMTP sink"}
    shown = [f"{named[k]} {beside[k]:.2f}" for k in named if k in beside]
    if shown:
        lines.append(f"- beside the server, not in its figure: {', '.join(shown)} core-ms")
    return lines


def cache_lines(m: dict[str, Any]) -> list[str]:
    """The report's cache figures: the clients' hit ratios, and (from the edge's log,
    when it was read) how often the edge asked the API."""
    lines = []
    for label, key, n in (
        ("combined (edge or Redis) / all GETs", "cache_hit_ratio", "cache_gets"),
        ("edge microcache / public GETs", "edge_hit_ratio", "edge_gets"),
        ("Redis / GETs that reached the API", "api_cache_hit_ratio", "api_gets"),
    ):
        value = m[key]
        shown = "n/a" if value is None else f"{value * 100:.1f} %"
        lines.append(f"- {label}: {shown} of {m[n]}")
    edge_log = m.get("edge_log")
    if edge_log and edge_log["upstream_ratio"] is not None:
        lines.append(
            f"- the edge asked the API (misses, expired, and the background refresh behind "
            f"each stale answer; access log): {edge_log['upstream_ratio'] * 100:.1f} % of "
            f"{edge_log['cacheable']}"
        )
    return lines


def markdown(summary: dict[str, Any]) -> str:
    targets = [Target(**{k: v for k, v in t.items() if k != "passed"}) for t in summary["targets"]]
    m = summary["metrics"]
    lat = m["latency_ms"]
    cfg = summary["config"]
    lines = [
        f"# Load run {summary['run_id']}: {cfg['scenario']} ({cfg['model']} model)",
        "",
        f"- command: `{summary['command']}`",
        f"- {cfg['vus']} VUs, duration {cfg['duration']}"
        + (f" after a ramp of {cfg['ramp']}" if cfg.get("ramp", "0s") not in ("0s", "0") else "")
        + f", think {cfg['think']} s"
        + (f", rate {cfg['rate']}/s" if cfg["model"] == "open" else "")
        + f", {cfg['ips']} client IPs ({cfg['local_ips']})",
        f"- started {summary['started']}, k6 {summary.get('k6_version', '?')}",
        f"- {m['requests']} requests, {m['failed']} failed, {m['timeouts']} timeouts, "
        f"{m['rps']:.0f} req/s"
        + (
            f", {m.get('dropped_iterations', 0)} dropped iterations"
            if cfg["model"] == "open"
            else ""
        ),
        "- latency ms: "
        + ", ".join(
            f"{k} {lat[k]:.2f}" for k in ("mean", "p50", "p95", "p99", "max") if lat[k] is not None
        ),
        *_cpu_headline(summary.get("cpu")),
        "",
        "| | metric | target | measured | |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in table_rows(targets)]
    if m.get("failures"):
        lines += ["", "## Failed requests (name, status; 0 = no response)", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(m["failures"].items())]
    if m.get("requests_by_name"):
        lines += ["", "## Requests by name", ""]
        lines += _by_name_table(m["requests_by_name"], m.get("latency_by_name", {}))
    lines += ["", "## Cache", "", *cache_lines(m)]
    mem = summary.get("memory")
    if mem:
        lines += [
            "",
            "## Memory",
            "",
            f"- peak PSS {mem['peak_pss'] / MB:.0f} MB (RSS sum {mem['peak_rss'] / MB:.0f} MB) "
            f"over {mem['processes']} processes: {', '.join(mem['roots'])}",
            f"- the edge's microcache in memory (tmpfs) at that peak: "
            f"{mem.get('peak_in_memory_files', 0) / MB:.1f} MB",
        ]
    rec = summary.get("reconciliation")
    lines += ["", "## Reconciliation", ""]
    if rec is None:
        lines.append("- not run (no writes, or --no-reconcile)")
    else:
        lines.append(
            f"- {'clean' if rec['ok'] else 'FAILED'}: {rec['sent']} keys sent, "
            f"{rec['acknowledged']} acknowledged, {rec['stored']} stored "
            f"({rec['unacknowledged_stored']} stored without acknowledgement), "
            f"{rec['items_checked']} items' totals checked"
        )
        for p in rec["problems"][:50]:
            lines.append(f"  - {p['kind']}: {p['detail']}")
    lines += ["", "![throughput and latency](chart.png)", ""]
    return "\n".join(lines)


def chart(series: Series, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    per_s = [n / series.step for n in series.requests]
    top.plot(series.second, per_s, color="tab:blue", label="requests/s")
    if any(series.failed):
        failed_per_s = [n / series.step for n in series.failed]
        top.plot(series.second, failed_per_s, color="tab:red", label="failed/s")
    top.set_ylabel("requests per second")
    top.legend(loc="lower right")
    top.grid(alpha=0.3)
    for values, label, color in (
        (series.p50, "p50", "tab:green"),
        (series.p95, "p95", "tab:orange"),
        (series.p99, "p99", "tab:red"),
    ):
        bottom.plot(series.second, values, label=label, color=color)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel(
        "seconds since the scenario started"
        + (f" ({series.step} s buckets)" if series.step > 1 else "")
    )
    bottom.legend(loc="upper right")
    bottom.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(run_dir: Path, summary: dict[str, Any]) -> None:
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    (run_dir / "summary.md").write_text(markdown(summary))


def targets_dicts(targets: list[Target]) -> list[dict[str, Any]]:
    return [{**asdict(t), "passed": t.passed} for t in targets]
