"""What a run produced, turned into figures: k6's end-of-test summary into the
metrics and the per-second series, k6's console lines into the failed requests
and the donation events, the metrics into the old system's success table beside
our targets, and the chart.

k6 writes nothing per request (a per-request output cost as much CPU as the
stack it measures on 2 cores): per-bucket and per-name figures are submetrics in
its summary (lib.js declares them), and the few lines the runner needs one by one
(donation events, failed requests) are console lines.

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

import csv
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class Series:
    """Per bucket of `step` seconds since the scenario started (1 s unless the run
    is long): requests and failed requests started in it, their latency percentiles
    (NaN for a bucket without requests)."""

    second: list[int]
    requests: list[int]
    failed: list[int]
    p50: list[float]
    p95: list[float]
    p99: list[float]
    step: int = 1


# A submetric's name in k6's summary: `http_req_duration{sec:12}`.
_SUBMETRIC = re.compile(r"^(\w+)\{(\w+):(.*)\}$")


def _submetrics(summary: dict[str, Any], metric: str, tag: str) -> dict[str, dict[str, Any]]:
    """{tag value: values} of `metric`'s submetrics on one tag."""
    out = {}
    for name, data in summary.get("metrics", {}).items():
        m = _SUBMETRIC.match(name)
        if m and m.group(1) == metric and m.group(2) == tag:
            out[m.group(3)] = data.get("values", {})
    return out


def series_from_summary(summary: dict[str, Any], step: int = 1) -> Series:
    """The series from the `sec` submetrics lib.js declares: `http_req_duration{sec:N}`
    (count and percentiles) and `http_req_failed{sec:N}` (passes: failed). Buckets
    run from 0 to the last with a request; the empty ones count 0."""
    durations = {int(k): v for k, v in _submetrics(summary, "http_req_duration", "sec").items()}
    failed = {int(k): v for k, v in _submetrics(summary, "http_req_failed", "sec").items()}
    used = [sec for sec, v in durations.items() if v.get("count", 0)]
    series = Series([], [], [], [], [], [], step)
    if not used:
        return series
    for sec in range(0, max(used) + 1, step):
        values = durations.get(sec, {})
        count = int(values.get("count", 0))
        series.second.append(sec)
        series.requests.append(count)
        series.failed.append(int(failed.get(sec, {}).get("passes", 0)))
        for out, stat in ((series.p50, "med"), (series.p95, "p(95)"), (series.p99, "p(99)")):
            out.append(float(values[stat]) if count else math.nan)
    return series


def write_series(series: Series, path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["second", "requests", "failed", "p50_ms", "p95_ms", "p99_ms"])
        for n in range(len(series.second)):
            w.writerow(
                [
                    series.second[n],
                    series.requests[n],
                    series.failed[n],
                    *(round(v, 3) for v in (series.p50[n], series.p95[n], series.p99[n])),
                ]
            )


def requests_by_name(summary: dict[str, Any]) -> dict[str, int]:
    """Requests per `name` tag (the `http_reqs{name:X}` submetrics), the names
    without requests left out; requests under no listed name as `(unlisted)`."""
    by_name = {
        name: int(v.get("count", 0))
        for name, v in _submetrics(summary, "http_reqs", "name").items()
        if v.get("count", 0)
    }
    unlisted = int(_values(summary, "http_reqs").get("count", 0)) - sum(by_name.values())
    if unlisted > 0:
        by_name["(unlisted)"] = unlisted
    return by_name


def latency_by_name(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Latency in ms per `name` tag (the `http_req_duration{name:X}` submetrics):
    mean, p50, p95, p99; the names without requests left out."""
    stats = {"mean": "avg", "p50": "med", "p95": "p(95)", "p99": "p(99)"}
    return {
        name: {key: round(float(v[stat]), 3) for key, stat in stats.items()}
        for name, v in _submetrics(summary, "http_req_duration", "name").items()
        if v.get("count", 0)
    }


@dataclass
class ConsoleLines:
    """What k6's console lines (`--console-output`, `--log-format json`) held."""

    # "<request name> <status>" -> count, for failed requests (status 0: no response)
    failures: dict[str, int] = field(default_factory=dict)
    events: int = 0  # donation events written to donations.jsonl
    other: list[str] = field(default_factory=list)  # anything else logged (first 20)


def _json(text: str) -> dict[str, Any]:
    """`text` as a JSON object, or {} (a blank line, a script's own message)."""
    try:
        value = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def read_console(console_path: Path, events_path: Path) -> ConsoleLines:
    """One pass over k6's console lines: failed requests counted, donation events
    written to `events_path` (one JSON object a line, as reconciliation reads them)."""
    failures: Counter[str] = Counter()
    out = ConsoleLines()
    with events_path.open("w") as events:
        if not console_path.exists():
            return out
        with console_path.open() as lines:
            for line in lines:
                msg = _json(line).get("msg", "")
                record = _json(msg) if isinstance(msg, str) else {}
                if "donation" in record:
                    events.write(json.dumps(record["donation"]) + "\n")
                    out.events += 1
                elif "failed" in record:
                    failed = record["failed"]
                    failures[f"{failed['name']} {failed['status']}"] += 1
                elif msg and len(out.other) < 20:
                    out.other.append(str(msg))
    out.failures = dict(failures)
    return out


def _values(summary: dict[str, Any], metric: str) -> dict[str, Any]:
    values: dict[str, Any] = summary.get("metrics", {}).get(metric, {}).get("values", {})
    return values


def metrics_from_k6(summary: dict[str, Any]) -> dict[str, Any]:
    """The run's figures from k6's end-of-test summary (handleSummary's data)."""
    reqs = _values(summary, "http_reqs")
    dur = _values(summary, "http_req_duration")
    failed = _values(summary, "http_req_failed")
    count = int(reqs.get("count", 0))
    timeouts = int(_values(summary, "timeouts").get("count", 0))

    def rate(metric: str) -> float | None:
        v = _values(summary, metric)
        return float(v["rate"]) if v.get("passes", 0) + v.get("fails", 0) else None

    def ratio_count(metric: str) -> int:
        v = _values(summary, metric)
        return int(v.get("passes", 0) + v.get("fails", 0))

    return {
        "requests": count,
        "rps": float(reqs.get("rate", 0.0)),
        "failed": int(failed.get("passes", 0)),
        "success_ratio": 1.0 - float(failed.get("rate", 0.0)) if count else None,
        "timeouts": timeouts,
        "timeout_ratio": timeouts / count if count else None,
        "latency_ms": {
            "mean": dur.get("avg"),
            "p50": dur.get("med"),
            "p90": dur.get("p(90)"),
            "p95": dur.get("p(95)"),
            "p99": dur.get("p(99)"),
            "max": dur.get("max"),
        },
        "cache_hit_ratio": rate("cache_hit"),
        "cache_gets": ratio_count("cache_hit"),
        "edge_hit_ratio": rate("edge_cache_hit"),
        "edge_gets": ratio_count("edge_cache_hit"),
        "api_cache_hit_ratio": rate("api_cache_hit"),
        "api_gets": ratio_count("api_cache_hit"),
        "replay_mismatches": int(_values(summary, "replay_mismatch").get("count", 0)),
        "iterations": int(_values(summary, "iterations").get("count", 0)),
        "vus_max": int(_values(summary, "vus_max").get("value", 0) or 0),
    }


def evaluate(
    metrics: dict[str, Any], memory_pss: int | None, reconciliation: dict[str, Any] | None
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
            "stack memory (peak PSS)",
            "<=",
            1024,
            "MB",
            None if memory_pss is None else memory_pss / MB,
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
    return [
        f"- server CPU per request: {per['total']:.2f} core-ms ({parts})"
        + (f"; the load generator (k6) {k6:.2f}" if k6 is not None else "")
    ]


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
        f"{m['rps']:.0f} req/s",
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
    lines += ["", "## Cache", ""]
    for label, key, n in (
        ("combined (edge or Redis) / all GETs", "cache_hit_ratio", "cache_gets"),
        ("edge microcache / public GETs", "edge_hit_ratio", "edge_gets"),
        ("Redis / GETs that reached the API", "api_cache_hit_ratio", "api_gets"),
    ):
        value = m[key]
        shown = "n/a" if value is None else f"{value * 100:.1f} %"
        lines.append(f"- {label}: {shown} of {m[n]}")
    mem = summary.get("memory")
    if mem:
        lines += [
            "",
            "## Memory",
            "",
            f"- peak PSS {mem['peak_pss'] / MB:.0f} MB (RSS sum {mem['peak_rss'] / MB:.0f} MB) "
            f"over {mem['processes']} processes: {', '.join(mem['roots'])}",
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
