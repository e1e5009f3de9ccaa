"""What a run produced, turned into figures: k6's per-request CSV into per-second
series and the donation events, k6's summary into the metrics, the metrics into
the old system's success table beside our targets, and the chart.

Files in a run directory (load/results/<timestamp>-<scenario>/):

    summary.json   everything below, plus the run's settings and reconciliation
    summary.md     the success table (Markdown)
    chart.png      throughput and p50/p95/p99 latency per second
    series.csv     the chart's numbers
    donations.jsonl  the donation events k6 recorded (reconciliation's input)
    k6-summary.json  k6's own end-of-test summary
    k6.log         k6's stderr
    targets.json   the data k6 used (tenants, keys: git-ignored, like the directory)
    k6.csv         k6's per-request output (deleted after processing unless --keep-raw)
"""

from __future__ import annotations

import csv
import json
import math
from array import array
from collections import Counter
from collections.abc import Iterator
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
    second: list[int]
    requests: list[int]
    failed: list[int]
    p50: list[float]
    p95: list[float]
    p99: list[float]
    # "<request name> <status>" -> count, for failed requests (status 0: no response)
    failures: dict[str, int] = field(default_factory=dict)
    requests_by_name: dict[str, int] = field(default_factory=dict)


def _percentile(sorted_values: array[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * q
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _metadata(raw: str) -> dict[str, str]:
    """k6's CSV metadata column: `k=v&k=v` (our values hold neither & nor =)."""
    out = {}
    for part in raw.split("&"):
        name, sep, value = part.partition("=")
        if sep:
            out[name] = value
    return out


def _rows(path: Path) -> Iterator[list[str]]:
    with path.open(newline="") as f:
        yield from csv.reader(f)


def process_csv(csv_path: Path, run_dir: Path) -> Series:
    """One pass over k6's CSV: per-second latency/throughput, donation events to
    donations.jsonl."""
    rows = _rows(csv_path)
    header = next(rows, None)
    durations: dict[int, array[float]] = {}
    failed: dict[int, int] = {}
    failures: Counter[str] = Counter()
    by_name: Counter[str] = Counter()
    with (run_dir / "donations.jsonl").open("w") as events:
        if header is None:
            return Series([], [], [], [], [], [])
        col = {name: n for n, name in enumerate(header)}
        i_name, i_ts, i_val = col["metric_name"], col["timestamp"], col["metric_value"]
        i_extra, i_meta = col["extra_tags"], col.get("metadata")
        i_req, i_status = col["name"], col["status"]
        for row in rows:
            metric = row[i_name]
            if metric == "http_req_duration":
                ts = int(row[i_ts])
                durations.setdefault(ts, array("d")).append(float(row[i_val]))
                by_name[row[i_req]] += 1
            elif metric == "http_req_failed":
                if row[i_val].startswith("1"):
                    ts = int(row[i_ts])
                    failed[ts] = failed.get(ts, 0) + 1
                    failures[f"{row[i_req]} {row[i_status] or 0}"] += 1
            elif metric == "donation_events" and i_meta is not None:
                event = _metadata(row[i_extra])  # the tag: ev=sent|ack|status
                event.update(_metadata(row[i_meta]))
                events.write(json.dumps(event) + "\n")
    if not durations:
        return Series([], [], [], [], [], [])
    start, end = min(durations), max(durations)
    series = Series([], [], [], [], [], [], dict(failures), dict(by_name))
    for ts in range(start, end + 1):
        values = array("d", sorted(durations.get(ts, ())))
        series.second.append(ts - start)
        series.requests.append(len(values))
        series.failed.append(failed.get(ts, 0))
        series.p50.append(_percentile(values, 0.50))
        series.p95.append(_percentile(values, 0.95))
        series.p99.append(_percentile(values, 0.99))
    with (run_dir / "series.csv").open("w", newline="") as f:
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
    return series


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
        lines += [f"- {k}: {v}" for k, v in sorted(m["requests_by_name"].items())]
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
    top.plot(series.second, series.requests, color="tab:blue", label="requests/s")
    if any(series.failed):
        top.plot(series.second, series.failed, color="tab:red", label="failed/s")
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
    bottom.set_xlabel("seconds since the first request")
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
