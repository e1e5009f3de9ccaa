"""Faults under load (issue 15): the mixed scenario with careful clients while one
part of the local stack fails, then reconciliation, the errors clients saw and the
time the stack took to be whole again.

    conectades chaos run                      # every fault, in turn
    conectades chaos run --short              # Redis kill, worker kill, PostgreSQL restart
    conectades chaos run --fault redis-stall --fault worker-kill

One k6 run (load/run.py, reconciled by load/reconcile.py) per fault. The clients
are careful (lib.js, CAREFUL): a request with no answer or a 5xx is sent again,
a write with the same Idempotency-Key, up to `retries` times after a back-off
(Retry-After when the answer has one). `warmup` seconds after k6's first request
the fault is injected; when it has ended, the stack is probed every 0.1 s until
it is whole again (see `whole`). Each failed attempt is a k6 console line with
its time: errors are counted against the fault's window from those lines.

Acts on the stack of `infra.stack` (`CONECTADES_VAR` selects another var/): its
supervisord (`infra/supervisor.py`) knows the programs' pids. The faults and the
stack they act on are in load/chaos_faults.py, the results and their table in
load/chaos_report.py; this module runs one fault under load and the suite.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from db.crypto import Keyring
from load.chaos_faults import (
    FAULTS,
    ChaosError,
    Fault,
    Injected,
    Stack,
    edge_log_path,
    local,
    whole,
)
from load.chaos_report import ChaosReport, FaultResult, markdown
from load.fixture import Fixture
from load.k6 import K6Live
from load.reconcile import key_of, run_rows
from load.run import CONSOLE, RESULTS, RunConfig, run
from load.stack import MemoryMonitor

# A write-heavy mix, so that every fault's window sees pledges, partner donations
# and confirmations (the smoke test's).
MIX = "public=50,partner=25,pledge=20,legacy=5"
RECOVERY_GIVE_UP_S = 30.0
PROBE_STEP_S = 0.1
# A request that started while PostgreSQL was down can end (and fail) a little
# after it is back; errors later than this after PostgreSQL answers again miss the
# "errors only while PostgreSQL is down" target.
DOWN_SLACK_S = 1.0

# Every stored donation of the run has its idempotency record: a client that never
# got its answer replays the same row with its key instead of writing a second one.
# The run's rows and their keys come from load/reconcile.py (the messages are
# encrypted at rest); these are the (tenant, key) pairs that have a record.
SELECT_RECORDED_KEYS = """
SELECT tenant_id, key FROM idempotency_record WHERE key = ANY($1::text[])
"""


# ------------------------------------------------------------------ one fault under load


@dataclass
class ChaosConfig:
    faults: tuple[str, ...] = tuple(FAULTS)
    vus: int = 40
    think: float = 0.5
    mix: str = MIX
    retries: int = 4  # careful clients: attempts after the first
    warmup: float = 5.0  # load before the fault
    after: float = 15.0  # load after the fault has ended
    results: Path = RESULTS
    command: str = ""


class _FaultThread(threading.Thread):
    """Injects the fault `warmup` s after k6's first request, then probes the stack
    until it is whole."""

    def __init__(self, fault: Fault, stack: Stack, warmup: float) -> None:
        super().__init__(name=f"chaos-{fault.name}", daemon=True)
        self.fault, self.stack, self.warmup = fault, stack, warmup
        self.loaded = threading.Event()
        self.injected: Injected | None = None
        self.whole_at: float | None = None
        self.parts: dict[str, float | None] = {}
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            if not self.loaded.wait(60):
                raise ChaosError("k6 sent no request within 60 s")
            time.sleep(self.warmup)
            self.injected = self.fault.inject(self.stack)
            self._probe(self.injected)
        except BaseException as exc:  # reported with the fault's result
            self.failure = exc

    def _probe(self, injected: Injected) -> None:
        deadline = injected.end + RECOVERY_GIVE_UP_S
        self.parts = {"settled": None, "workers": None, "ready": None, "cache": None}
        while time.time() < deadline:
            now = time.time()
            checks = {"settled": injected.settled(), **whole(self.stack)}
            for part, ok in checks.items():
                if ok and self.parts[part] is None:
                    self.parts[part] = now - injected.end
                elif not ok:
                    self.parts[part] = None
            if all(checks.values()):
                self.whole_at = now
                return
            time.sleep(PROBE_STEP_S)


def _failed_attempts(console: Path) -> Iterator[dict[str, Any]]:
    """The careful clients' failed attempts (lib.js logFailure), with their time."""
    if not console.exists():
        return
    with console.open() as lines:
        for line in lines:
            try:
                msg = json.loads(line).get("msg", "")
                record = json.loads(msg) if isinstance(msg, str) and msg.startswith("{") else {}
            except ValueError:
                continue
            if "failed" in record and "t" in record["failed"]:
                yield record["failed"]


def _edge_5xx(log: Path, offset: int) -> dict[str, int]:
    """5xx (and 499) in the edge's JSON access log since `offset`: by status and the
    upstream's status (empty when the edge answered without the API)."""
    found: Counter[str] = Counter()
    try:
        with log.open("rb") as f:
            f.seek(offset)
            for raw in f:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if entry.get("status", "").startswith("5") or entry.get("status") == "499":
                    found[f"{entry['status']}/{entry.get('upstream_status') or '-'}"] += 1
    except OSError:
        pass
    return dict(found)


async def _unreplayable(admin_dsn: str, keyring: Keyring, run_id: str) -> int:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        rows = await run_rows(conn, keyring, run_id, [])
        keyed = [(r["tenant_id"], key) for r in rows if (key := key_of(r["message"], run_id))]
        recorded = {
            (r["tenant_id"], r["key"])
            for r in await conn.fetch(SELECT_RECORDED_KEYS, [k for _, k in keyed])
        }
        return sum(1 for pair in keyed if pair not in recorded)
    finally:
        await conn.close()


def run_fault(
    fault: Fault, stack: Stack, fixture: Fixture, cfg: ChaosConfig, edge_log: Path
) -> FaultResult:
    result = FaultResult(fault.name, fault.title)
    worker = _FaultThread(fault, stack, cfg.warmup)

    def progress(elapsed: float, total: float, live: K6Live, monitor: MemoryMonitor) -> None:
        if live.requests > 0:
            worker.loaded.set()

    # Long enough for the warmup, the fault (PostgreSQL and the stall take seconds)
    # and `after` seconds of load once it has ended.
    duration = f"{round(cfg.warmup + 5 + cfg.after)}s"
    run_cfg = RunConfig(
        scenario="mixed", vus=cfg.vus, duration=duration, think=cfg.think, mix=cfg.mix,
        retry=0.1, keep_raw=True, results=cfg.results, command=cfg.command,
        extra_env={"CAREFUL": str(cfg.retries)},
    )  # fmt: skip
    offset = edge_log.stat().st_size if edge_log.exists() else 0
    worker.start()
    try:
        ran = run(run_cfg, stack.target, fixture, progress=progress)
    except Exception as exc:  # reported; the next fault still runs
        worker.loaded.set()
        worker.join(RECOVERY_GIVE_UP_S + 60)
        result.error = f"load run failed: {exc}"
        result.evaluate(fault.errors)
        return result
    worker.join(RECOVERY_GIVE_UP_S + 60)
    summary = ran.summary
    result.run_id = summary["run_id"]
    result.requests = summary["metrics"]["requests"]
    result.edge_5xx = _edge_5xx(edge_log, offset)
    rec = summary["reconciliation"] or {}
    result.acknowledged = rec.get("acknowledged", 0)
    result.stored = rec.get("stored", 0)
    result.unacknowledged_stored = rec.get("unacknowledged_stored", 0)
    result.reconciliation_problems = rec.get("problem_counts", {})
    result.unreplayable = asyncio.run(
        _unreplayable(stack.target.admin_dsn, stack.target.contact_keys(), result.run_id)
    )
    injected = worker.injected
    if worker.failure is not None or injected is None:
        result.error = f"fault step failed: {worker.failure!r}"
        result.evaluate(fault.errors)
        return result
    result.notes = injected.notes
    result.fault_s = injected.end - injected.start
    if injected.down:
        result.down_s = injected.down[1] - injected.down[0]
    result.recovery_parts = worker.parts
    if worker.whole_at is not None:
        result.recovery_s = worker.whole_at - injected.end
    _count_errors(result, _failed_attempts(ran.run_dir / CONSOLE), injected)
    result.evaluate(fault.errors)
    return result


def _count_errors(result: FaultResult, attempts: Iterator[dict[str, Any]], inj: Injected) -> None:
    by_status: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    times = []
    for a in attempts:
        t = float(a["t"]) / 1000
        times.append(t - inj.start)
        status = str(a["status"])
        by_status[status] += 1
        if a.get("final"):
            seen[f"{a['name']} {status}"] += 1
        if status != "503" or not a.get("ra"):
            result.without_retry_after += 1
        if inj.down is not None and not inj.down[0] <= t <= inj.down[1] + DOWN_SLACK_S:
            result.outside_down += 1
    result.failed_attempts = sum(by_status.values())
    result.attempts_by_status = dict(by_status)
    result.errors_seen = sum(seen.values())
    result.errors_by_status = dict(seen)
    if times:
        result.error_window = (min(times), max(times))


# ------------------------------------------------------------------ the suite


def run_suite(
    cfg: ChaosConfig,
    fixture: Fixture,
    stack: Stack | None = None,
    on_result: Callable[[FaultResult], None] | None = None,
) -> ChaosReport:
    unknown = [f for f in cfg.faults if f not in FAULTS]
    if unknown:
        raise ValueError(f"unknown faults {unknown}: one of {', '.join(FAULTS)}")
    stack = stack or local()
    started = datetime.now(UTC)
    out_dir = cfg.results / f"{started.strftime('%Y%m%dT%H%M%SZ')}-chaos"
    out_dir.mkdir(parents=True)
    results = []
    for name in cfg.faults:
        _wait_whole(stack)
        result = run_fault(FAULTS[name], stack, fixture, cfg, edge_log_path())
        results.append(result)
        if on_result is not None:
            on_result(result)
    config = {k: v for k, v in asdict(cfg).items() if k not in ("results", "command")}
    config["workers"] = stack.workers
    report = ChaosReport(started.isoformat(), cfg.command, config, results, out_dir)
    (out_dir / "chaos.json").write_text(json.dumps(report.as_dict(), indent=1, default=str))
    (out_dir / "chaos.md").write_text(markdown(report))
    return report


def _wait_whole(stack: Stack, timeout: float = RECOVERY_GIVE_UP_S) -> None:
    """Each fault starts on a whole stack (the last one may still be recovering)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(whole(stack).values()):
            return
        time.sleep(0.2)
    raise ChaosError(f"the stack is not whole: {whole(stack)}")
