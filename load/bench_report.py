"""The benchmark's figures: one wrk run of a row (`Sample`), medians over rounds and
ratios to the ceilings (`summarize`), and the Markdown table the terminal and
BENCHMARKS.md show (`render_table`, `report_markdown`)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from load.bench_rows import COLD_START, COLD_START_GOAL, ROWS, Row


@dataclass(frozen=True)
class Sample:
    """One wrk run of one row."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    extra: dict[str, Any] = field(default_factory=dict)
    # Server CPU per request (core-ms) by part and `total` (load/cpu.py).
    cpu_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    row: Row
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    runs: int
    ratio: float | None
    rps_min: float = 0.0
    # This row's CPU per request over its ceiling's (rows with a cost goal).
    cost_ratio: float | None = None
    rps_max: float = 0.0
    # Median server CPU per request (core-ms), in all and by part.
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        """Whether the goal holds (None: no goal, or its ceiling was not measured)."""
        if self.row.cost_goal is not None:
            return None if self.cost_ratio is None else self.cost_ratio <= self.row.cost_goal
        if self.row.goal is None or self.ratio is None:
            return None
        return self.ratio >= self.row.goal


@dataclass(frozen=True)
class ColdStart:
    runs: list[float]
    goal: float = COLD_START_GOAL

    @property
    def median(self) -> float:
        return median(self.runs)

    @property
    def met(self) -> bool:
        return self.median <= self.goal


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ratio(value: float, ceiling: float) -> float | None:
    return value / ceiling if ceiling > 0 else None


def summarize(samples: dict[str, list[Sample]]) -> list[Summary]:
    """Medians per row (in table order), and each row's ratio to its ceiling's median."""
    rps = {name: median([s.rps for s in runs]) for name, runs in samples.items() if runs}
    cost = {name: _median_cpu(runs).get("total") for name, runs in samples.items() if runs}
    out = []
    for row in ROWS:
        runs = samples.get(row.name)
        if not runs:
            continue
        ceiling = rps.get(row.ceiling) if row.ceiling else None
        out.append(
            Summary(
                row=row,
                rps=rps[row.name],
                p50_ms=median([s.p50_ms for s in runs]),
                p99_ms=median([s.p99_ms for s in runs]),
                errors=sum(s.errors for s in runs),
                runs=len(runs),
                ratio=ratio(rps[row.name], ceiling) if ceiling is not None else None,
                rps_min=min(s.rps for s in runs),
                rps_max=max(s.rps for s in runs),
                cpu_ms=_median_cpu(runs),
                cost_ratio=_cost_ratio(cost.get(row.name), cost.get(row.ceiling or "")),
            )
        )
    return out


def _cost_ratio(cost: float | None, ceiling: float | None) -> float | None:
    return cost / ceiling if cost is not None and ceiling else None


def _median_cpu(runs: Sequence[Sample]) -> dict[str, float]:
    parts = {part for s in runs for part in s.cpu_ms}
    return {
        part: median([s.cpu_ms[part] for s in runs if part in s.cpu_ms]) for part in sorted(parts)
    }


def _cpu_cell(cpu_ms: dict[str, float]) -> str:
    """`0.52 (api 0.31, pg 0.15, redis 0.01, nginx 0.05)`: core-ms per request."""
    if "total" not in cpu_ms:
        return ""
    short = {"postgres": "pg"}
    parts = ", ".join(
        f"{short.get(part, part)} {cpu_ms[part]:.2f}"
        for part in ("api", "postgres", "redis", "nginx")
        if part in cpu_ms
    )
    return f"{cpu_ms['total']:.2f} ({parts})"


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("**yes**" if met else "**NO**")


def render_table(summaries: Sequence[Summary], cold: ColdStart | None = None) -> str:
    """The results as a Markdown table (also what the terminal shows)."""
    lines = [
        "| row | what | req/s | (min-max) | p50 ms | p99 ms | errors | ratio to ceiling | goal "
        "| met | server core-ms/req |",
        "|---|---|---:|---|---:|---:|---:|---|---|---|---|",
    ]
    for s in summaries:
        if s.row.ceiling is None:
            against = "(ceiling)"
        elif s.ratio is None:
            against = f"— ({s.row.ceiling} not measured)"
        elif s.row.cost_goal is not None and s.cost_ratio is not None:
            against = f"{s.ratio:.2f} x {s.row.ceiling}; CPU {s.cost_ratio:.2f} x"
        else:
            against = f"{s.ratio:.2f} x {s.row.ceiling}"
        if s.row.cost_goal is not None:
            goal = f"CPU ≤ {s.row.cost_goal:g} x"
        else:
            goal = f"≥ {s.row.goal:g}" if s.row.goal is not None else ""
        lines.append(
            f"| {s.row.name} | {s.row.label} | {s.rps:,.0f} | {s.rps_min:,.0f}-{s.rps_max:,.0f} "
            f"| {s.p50_ms:.2f} | "
            f"{s.p99_ms:.2f} | {s.errors} | {against} | {goal} | {_verdict(s.met)} "
            f"| {_cpu_cell(s.cpu_ms)} |"
        )
    if cold is not None:
        lines.append(
            f"| {COLD_START} | one API worker: start → first 200 on /health/ready "
            f"(median of {len(cold.runs)}) | | {min(cold.runs):.2f}-{max(cold.runs):.2f} s "
            f"| {cold.median:.2f} s | "
            f"| | | ≤ {cold.goal:g} s | {_verdict(cold.met)} | |"
        )
    return "\n".join(lines) + "\n"


def report_markdown(result: dict[str, Any]) -> str:
    opts = result["options"]
    machine = result["machine"]
    la = result["load_average_1min"]
    return (
        f"Run {result['date']} with `{result['command']}`: wrk -t{opts['threads']} "
        f"-c{opts['connections']} -d{opts['duration']:g}s per measurement, "
        f"{opts['rounds']} interleaved round(s), medians; {opts['workers']} API worker(s) "
        f"per server; page {result['page_bytes']} bytes.\n"
        f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"{machine['wrk']}; 1-min load average {la['min']:.2f} to {la['max']:.2f} during the run.\n"
        f"{'; '.join(result['notes'])}.\n\n" + str(result["table"])
    )
