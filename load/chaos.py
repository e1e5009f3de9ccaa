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
supervisord (`infra/supervisor.py`) knows the programs' pids.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from db.crypto import Keyring
from infra.supervisor import Supervisor
from load.fixture import Fixture
from load.reconcile import key_of, run_rows
from load.run import CONSOLE, RESULTS, K6Live, RunConfig, run
from load.stack import MemoryMonitor, StackTarget

# A write-heavy mix, so that every fault's window sees pledges, partner donations
# and confirmations (the smoke test's).
MIX = "public=50,partner=25,pledge=20,legacy=5"
RECOVERY_TARGET_S = 10.0
RECOVERY_GIVE_UP_S = 30.0
PROBE_STEP_S = 0.1
# A probe answered later than this counts as not recovered. 1 s (Kubernetes' default
# probe timeout) failed readiness for seconds on a whole but saturated 2-core machine
# (load average 11 with another test run beside the 150-user load).
PROBE_TIMEOUT_S = 2.0
# A request that started while PostgreSQL was down can end (and fail) a little
# after it is back; errors later than this after PostgreSQL answers again miss the
# "errors only while PostgreSQL is down" target.
DOWN_SLACK_S = 1.0
REDIS_STALL_S = 3.0
API_ROLE = "conectades_api"

# Every stored donation of the run has its idempotency record: a client that never
# got its answer replays the same row with its key instead of writing a second one.
# The run's rows and their keys come from load/reconcile.py (the messages are
# encrypted at rest); these are the (tenant, key) pairs that have a record.
SELECT_RECORDED_KEYS = """
SELECT tenant_id, key FROM idempotency_record WHERE key = ANY($1::text[])
"""
TERMINATE_API_BACKENDS = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()
"""


class ChaosError(RuntimeError):
    pass


@dataclass
class Stack:
    """The parts of the local stack a fault acts on, and the probes of `whole`."""

    sup: Supervisor
    target: StackTarget
    api_url: str
    workers: int  # configured API workers

    def program_pid(self, name: str) -> int:
        pid = self.sup.pid(name)
        if pid is None:
            raise ChaosError(f"{name} is not running under {self.sup.dir}")
        return pid

    def spawned(self) -> list[psutil.Process]:
        """The API main process's live multiprocessing children, oldest first: the
        worker manager's helper, then the workers (as tests/runtime/test_supervision.py)."""
        found = []
        for child in psutil.Process(self.program_pid("api")).children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(
                    child.cmdline()
                ):
                    found.append(child)
            except psutil.Error:
                continue
        return sorted(found, key=lambda p: p.create_time())

    def nginx_workers(self) -> list[psutil.Process]:
        """The edge master's serving workers (not those shutting down after a reload)."""
        found = []
        for child in psutil.Process(self.program_pid("edge")).children():
            try:
                line = " ".join(child.cmdline())
                if "worker process" in line and "shutting down" not in line:
                    found.append(child)
            except psutil.Error:
                continue
        return found


def _get(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback)
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except (OSError, ValueError):
        return 0, {}, b""


def whole(stack: Stack) -> dict[str, bool]:
    """What "fully recovered" means: every API worker up (/health), readiness 200
    through the edge (PostgreSQL answers the API), and the response cache hitting
    again (a public page read twice from the API is a Redis HIT the second time)."""
    status, _, body = _get(stack.api_url + "/health")
    try:
        workers = json.loads(body)["workers"] if status == 200 else {}
    except (ValueError, KeyError):
        workers = {}
    ready, _, _ = _get(stack.target.base_url.rstrip("/") + "/health/ready")
    probe = stack.api_url + "/api/public/campaigns?order=deadline"
    _get(probe)
    _, headers, _ = _get(probe)
    return {
        "workers": workers.get("alive") == stack.workers and not workers.get("blocked"),
        "ready": ready == 200,
        "cache": headers.get("X-Cache") == "HIT",
    }


# ------------------------------------------------------------------ the faults


@dataclass
class Injected:
    """What a fault did: when it started and ended (epoch seconds), when PostgreSQL
    was down (if it was), what the fault step noticed, and a check that the fault's
    own target is whole again (a new pid, ...)."""

    start: float
    end: float
    down: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)
    settled: Callable[[], bool] = lambda: True


def _pg_answers(stack: Stack, timeout: float = 30.0) -> float:
    """Wait until PostgreSQL runs a query; the time it did."""

    async def once() -> None:
        conn = await asyncpg.connect(stack.target.admin_dsn, timeout=1)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            asyncio.run(once())
            return time.time()
        except (OSError, asyncpg.PostgresError, TimeoutError):
            time.sleep(0.05)
    raise ChaosError(f"PostgreSQL not answering {timeout:g} s after the fault")


def _running_again(stack: Stack, name: str, old: int) -> Callable[[], bool]:
    def check() -> bool:
        info = stack.sup.info().get(name, {})
        return bool(info.get("statename") == "RUNNING" and info.get("pid") not in (0, old))

    return check


def redis_kill(stack: Stack) -> Injected:
    """SIGKILL to redis-server; supervisord starts it again."""
    pid = stack.program_pid("redis")
    t = time.time()
    os.kill(pid, signal.SIGKILL)
    return Injected(t, t, settled=_running_again(stack, "redis", pid))


def redis_stall(stack: Stack) -> Injected:
    """redis-server stopped (SIGSTOP) for 3 s, then continued: a network stall."""
    pid = stack.program_pid("redis")
    t = time.time()
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(REDIS_STALL_S)
    finally:
        os.kill(pid, signal.SIGCONT)
    return Injected(t, time.time())


def postgres_restart(stack: Stack) -> Injected:
    """A fast restart: supervisord stops PostgreSQL (SIGINT: fast shutdown) and
    starts it again (`supervisorctl restart postgres`)."""
    pid = stack.program_pid("postgres")
    t = time.time()
    with stack.sup.rpc() as rpc:
        rpc.stopProcess("postgres", True)
    stack.sup.start("postgres")
    up = _pg_answers(stack)
    return Injected(t, up, down=(t, up), settled=_running_again(stack, "postgres", pid))


def postgres_immediate(stack: Stack) -> Injected:
    """An immediate shutdown (SIGQUIT to the postmaster, `pg_ctl stop -m immediate`),
    then started again: by supervisord if it sees a crash, else by this step."""
    pid = stack.program_pid("postgres")
    t = time.time()
    os.kill(pid, signal.SIGQUIT)
    notes = []
    deadline = time.time() + 10
    state: dict[str, Any] = {}
    while time.time() < deadline:
        state = stack.sup.info().get("postgres", {})
        if state.get("pid") != pid:
            break
        time.sleep(0.05)
    # supervisord sees the postmaster's exit status: a restart only if it is not 0.
    time.sleep(0.3)
    state = stack.sup.info().get("postgres", {})
    if state.get("statename") in ("EXITED", "STOPPED"):
        notes.append(
            f"the postmaster exited with {state.get('exitstatus')} after the immediate "
            "shutdown; supervisord (autorestart=unexpected, exitcodes=0) did not restart "
            "it: the fault step started it"
        )
        stack.sup.start("postgres")
    else:
        notes.append(f"supervisord restarted it ({state.get('statename')})")
    up = _pg_answers(stack)
    return Injected(
        t, up, down=(t, up), notes=notes, settled=_running_again(stack, "postgres", pid)
    )


def postgres_terminate(stack: Stack) -> Injected:
    """Every backend of the API's role terminated from the server side, as the owner."""

    async def terminate() -> int:
        conn = await asyncpg.connect(stack.target.admin_dsn, timeout=5)
        try:
            return int(await conn.fetchval(TERMINATE_API_BACKENDS, API_ROLE))
        finally:
            await conn.close()

    t = time.time()
    count = asyncio.run(terminate())
    return Injected(t, time.time(), notes=[f"{count} backends of {API_ROLE} terminated"])


def worker_kill(stack: Stack) -> Injected:
    """SIGKILL to one API worker; the main process's watchdog starts another."""
    spawned = stack.spawned()
    if len(spawned) < 2:
        raise ChaosError("no API worker to kill")
    victim = spawned[-1]
    t = time.time()
    victim.kill()

    def replaced() -> bool:
        workers = stack.spawned()[1:]
        return len(workers) == stack.workers and victim.pid not in {w.pid for w in workers}

    return Injected(t, t, settled=replaced)


def helper_kill(stack: Stack) -> Injected:
    """SIGKILL to the worker manager's helper (the API main process's first
    multiprocessing child): the main process exits, supervisord starts the API again."""
    main = stack.program_pid("api")
    helper = stack.spawned()[0]
    t = time.time()
    helper.kill()
    return Injected(t, t, settled=_running_again(stack, "api", main))


def edge_reload_kill(stack: Stack) -> Injected:
    """The edge reloaded (SIGHUP to the nginx master: `nginx -s reload`), then one
    of its new workers SIGKILLed once they serve; the master starts another."""
    master = stack.program_pid("edge")
    before = {w.pid for w in stack.nginx_workers()}
    count = len(before)
    t = time.time()
    os.kill(master, signal.SIGHUP)
    deadline = time.time() + 5
    fresh: list[psutil.Process] = []
    while time.time() < deadline:
        fresh = [w for w in stack.nginx_workers() if w.pid not in before]
        if len(fresh) >= count:
            break
        time.sleep(0.05)
    if not fresh:
        raise ChaosError("the edge started no new workers after SIGHUP")
    time.sleep(0.5)
    victim = fresh[0]
    victim.kill()
    killed = time.time()

    def respawned() -> bool:
        workers = {w.pid for w in stack.nginx_workers()}
        return len(workers) >= count and victim.pid not in workers

    notes = [f"reload at +0 s, worker {victim.pid} killed at +{killed - t:.1f} s"]
    return Injected(t, killed, notes=notes, settled=respawned)


@dataclass(frozen=True)
class Fault:
    name: str
    title: str
    inject: Callable[[Stack], Injected]
    # The error target: "none" (careful clients see no error), "pg-down"
    # (only while PostgreSQL is down, and 503 with Retry-After), "" (none set).
    errors: str


FAULTS = {
    f.name: f
    for f in (
        Fault("redis-kill", "Redis SIGKILL (supervisord restarts it)", redis_kill, "none"),
        Fault("postgres-restart", "PostgreSQL fast restart", postgres_restart, "pg-down"),
        Fault("postgres-immediate", "PostgreSQL immediate shutdown", postgres_immediate, "pg-down"),
        Fault("worker-kill", "one API worker SIGKILL", worker_kill, "none"),
        Fault("helper-kill", "worker manager's helper SIGKILL", helper_kill, ""),
        Fault("edge-reload-kill", "edge reload + one nginx worker SIGKILL", edge_reload_kill, ""),
        Fault("postgres-terminate", "pg_terminate_backend of the API's backends",
              postgres_terminate, ""),
        Fault("redis-stall", "Redis stalled 3 s (SIGSTOP, SIGCONT)", redis_stall, "none"),
    )
}  # fmt: skip
SHORT = ("redis-kill", "worker-kill", "postgres-restart")


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


def local() -> Stack:
    """The `infra.stack` stack (CONECTADES_VAR), as load/stack.py finds it."""
    from infra import stack as infra_stack
    from load.stack import local_stack

    target = local_stack()
    sup = Supervisor(infra_stack.VAR / "supervisor", [])
    if not sup.running():
        raise ChaosError(f"no supervisord under {sup.dir}: start the stack (./start.sh)")
    status, _, body = _get(str(target.api_url) + "/health", timeout=5)
    try:
        workers = int(json.loads(body)["workers"]["configured"])
    except (ValueError, KeyError) as exc:
        raise ChaosError(f"{target.api_url}/health answered {status}: {body[:200]!r}") from exc
    return Stack(sup=sup, target=target, api_url=str(target.api_url), workers=workers)


def edge_log_path() -> Path:
    from infra import stack as infra_stack

    return infra_stack.VAR / "edge" / "logs" / "access.log"


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


# ------------------------------------------------------------------ the report


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
