"""What the chaos suite (load/chaos.py) found: each fault's result with its targets
(`FaultResult`), the whole run (`ChaosReport`), and the table of both the terminal
and chaos.md show."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECOVERY_TARGET_S = 10.0


@dataclass
class FaultResult:
    fault: str
    title: str
    run_id: str = ""
    notes: list[str] = field(default_factory=list)
    fault_s: float = 0.0  # how long the fault step took
    down_s: float | None = None  # PostgreSQL not answering
    requests: int = 0
    failed_attempts: int = 0  # every failed attempt, retried or not
    attempts_by_status: dict[str, int] = field(default_factory=dict)
    errors_seen: int = 0  # failed after the careful client's retries
    errors_by_status: dict[str, int] = field(default_factory=dict)
    error_window: tuple[float, float] | None = None  # first, last failed attempt (s from start)
    outside_down: int = 0  # failed attempts after PostgreSQL answered again (+ slack)
    without_retry_after: int = 0  # failed attempts that were not 503 with Retry-After
    edge_5xx: dict[str, int] = field(default_factory=dict)  # edge log, status/upstream
    acknowledged: int = 0
    stored: int = 0
    unacknowledged_stored: int = 0
    reconciliation_problems: dict[str, int] = field(default_factory=dict)
    unreplayable: int = 0
    recovery_s: float | None = None  # fault end to whole; None: not within the limit
    recovery_parts: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None  # the fault could not be run
    targets: dict[str, bool] = field(default_factory=dict)

    @property
    def reconciled(self) -> bool:
        return self.error is None and not self.reconciliation_problems and not self.unreplayable

    @property
    def recovered(self) -> bool:
        return self.recovery_s is not None and self.recovery_s <= RECOVERY_TARGET_S

    def evaluate(self, errors: str) -> None:
        self.targets = {"reconciled": self.reconciled, "recovery ≤ 10 s": self.recovered}
        if errors == "none":
            self.targets["0 errors seen"] = self.error is None and self.errors_seen == 0
        elif errors == "pg-down":
            self.targets["errors only while down"] = self.error is None and not self.outside_down
            self.targets["503 + Retry-After"] = self.error is None and not self.without_retry_after

    @property
    def passed(self) -> bool:
        return all(self.targets.values())


@dataclass
class ChaosReport:
    started: str
    command: str
    config: dict[str, Any]
    results: list[FaultResult]
    dir: Path

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "command": self.command,
            "config": self.config,
            "passed": self.passed,
            "results": [{**asdict(r), "passed": r.passed} for r in self.results],
        }


def _window(r: FaultResult) -> str:
    if r.error_window is None:
        return "-"
    first, last = r.error_window
    return f"+{first:.1f} … +{last:.1f} s"


def table_rows(report: ChaosReport) -> list[list[str]]:
    rows = []
    for r in report.results:
        if r.error is not None:
            rows.append([r.title, "-", "-", "-", "-", f"ERROR: {r.error}", "FAIL"])
            continue
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.attempts_by_status.items()))
        recovery = f"{r.recovery_s:.1f} s" if r.recovery_s is not None else "not whole"
        problems = sum(r.reconciliation_problems.values()) + r.unreplayable
        donations = (
            f"{r.acknowledged} ack, {r.stored} stored ({r.unacknowledged_stored} unacked), "
            + ("clean" if problems == 0 else f"{problems} PROBLEMS {r.reconciliation_problems}")
        )
        rows.append([
            r.title,
            f"{r.errors_seen} / {r.requests}",
            f"{r.failed_attempts}" + (f" ({statuses})" if statuses else ""),
            _window(r),
            recovery,
            donations,
            "pass" if r.passed else "FAIL: " + ", ".join(k for k, v in r.targets.items() if not v),
        ])  # fmt: skip
    return rows


HEADERS = [
    "fault",
    "errors seen / requests",
    "failed attempts (status)",
    "error window (from fault start)",
    "recovery (after fault end)",
    "donations",
    "targets",
]


def markdown(report: ChaosReport) -> str:
    lines = [
        f"# Chaos run {report.started}",
        "",
        f"`{report.command}`" if report.command else "",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines.append("")
    for r in report.results:
        extra = [f"fault step {r.fault_s:.2f} s"]
        if r.down_s is not None:
            extra.append(f"PostgreSQL down {r.down_s:.2f} s")
        if r.recovery_parts:
            parts = ", ".join(
                f"{k} {v:.1f} s" if v is not None else f"{k} never"
                for k, v in r.recovery_parts.items()
            )
            extra.append(f"whole by part: {parts}")
        if r.errors_by_status:
            extra.append(f"errors seen: {r.errors_by_status}")
        if r.down_s is not None and (r.outside_down or r.without_retry_after):
            extra.append(
                f"{r.outside_down} failed attempts after PostgreSQL was back, "
                f"{r.without_retry_after} not 503 with Retry-After"
            )
        if r.edge_5xx:
            extra.append(f"edge log 5xx (status/upstream): {r.edge_5xx}")
        extra += r.notes
        lines.append(f"- **{r.title}** (run {r.run_id}): " + "; ".join(extra))
    return "\n".join(lines) + "\n"
