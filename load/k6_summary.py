"""k6's output of a run turned into figures (load/run.py): its end-of-test summary
into the metrics, the per-name counts and latencies and the per-second series; its
console lines into the failed requests and the donation events.

k6 writes nothing per request (a per-request output cost as much CPU as the
stack it measures on 2 cores): per-bucket and per-name figures are submetrics in
its summary (lib.js declares them), and the few lines the runner needs one by one
(donation events, failed requests) are console lines."""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
        # Open model: arrivals k6 could not start (no free VU); absent when none.
        "dropped_iterations": int(_values(summary, "dropped_iterations").get("count", 0)),
        "vus_max": int(_values(summary, "vus_max").get("value", 0) or 0),
    }
