"""The faults of the chaos suite (load/chaos.py) and the stack they act on: each
fault injects one failure into the local stack of `infra.stack` and says when it
started and ended (`Injected`); `whole` is what "fully recovered" means. The stack
is found as load/stack.py finds it (`local`), its programs' pids through its
supervisord (`infra/supervisor.py`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from infra.supervisor import Supervisor
from load.stack import StackTarget

# A probe answered later than this counts as not recovered. 1 s (Kubernetes' default
# probe timeout) failed readiness for seconds on a whole but saturated 2-core machine
# (load average 11 with another test run beside the 150-user load).
PROBE_TIMEOUT_S = 2.0
REDIS_STALL_S = 3.0
API_ROLE = "conectades_api"
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


def local() -> Stack:
    """The `infra.stack` stack (CONECTADES_VAR), as load/stack.py finds it."""
    from infra import stack_settings
    from load.stack import local_stack

    target = local_stack()
    sup = Supervisor(stack_settings.VAR / "supervisor", [])
    if not sup.running():
        raise ChaosError(f"no supervisord under {sup.dir}: start the stack (./start.sh)")
    status, _, body = _get(str(target.api_url) + "/health", timeout=5)
    try:
        workers = int(json.loads(body)["workers"]["configured"])
    except (ValueError, KeyError) as exc:
        raise ChaosError(f"{target.api_url}/health answered {status}: {body[:200]!r}") from exc
    return Stack(sup=sup, target=target, api_url=str(target.api_url), workers=workers)


def edge_log_path() -> Path:
    from infra import stack_settings

    return stack_settings.VAR / "edge" / "logs" / "access.log"
