"""Worker supervision and a liveness that means something.

Sanic's worker manager starts `--workers N` processes and restarts them on request
(auto-reload, the inspector), but not when one dies: a worker killed by the OOM
killer or a segfault was never replaced, the survivors served everything, and
`/health` (answered by a survivor) said all was well. So:

* The main process runs a watchdog thread (`main_process_ready`). Every 0.2 s it
  looks at each server worker; one that is gone, and was not told to stop, is
  logged with its exit status and restarted through the manager's own monitor
  message (the one auto-reload uses), at most once a second per worker.
* A worker whose main process dies (SIGKILL, OOM) gets SIGTERM (PR_SET_PDEATHSIG)
  and drains as for a whole-instance stop: left running, it held the port and the
  main process its supervisor started next could not listen.
* The main process cannot outlive the manager's helper process (the
  multiprocessing Manager that holds the workers' shared state): every state change
  goes through it. When the helper dies, Sanic's monitor fails on its next poll, the
  main process stops its workers and exits non-zero at once (measured: within
  0.1 s), so the supervisor above it (the local stack's supervisord, systemd,
  Kubernetes) starts it again. The watchdog does not try to do better than that.
* Vitals in shared memory (no round trip through the helper): the configured and
  live worker counts, restarts so far, and a heartbeat per worker written by its
  event loop every 0.5 s. `/health` (any worker) reports them: fewer live workers
  than configured, or a worker whose loop has not beaten for `LIVENESS_BLOCKED`
  seconds, makes it `503 degraded`. A slow request does not: it does not block the
  loop. Orchestrators restart only after several failed probes in a row (the
  Kubernetes manifests: 3 x 10 s), and the watchdog replaces a dead worker in
  well under a second, so a replacement does not get the pod killed.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sanic import Sanic
from sanic.exceptions import SanicException
from sanic.worker.constants import ProcessState

if TYPE_CHECKING:
    from api.types import App

log = logging.getLogger("conectades.supervision")

MAX_WORKERS = 256
WATCH_INTERVAL = 0.2
BEAT_INTERVAL = 0.5
MIN_RESTART_GAP = 1.0
# Index of each value in the shared array; beats follow.
_CONFIGURED, _ALIVE, _RESTARTS, _BEATS = 0, 1, 2, 3


@dataclass(frozen=True)
class Vitals:
    configured: int
    alive: int
    restarts: int
    blocked: list[int]  # worker indexes whose loop has not beaten for too long

    @property
    def healthy(self) -> bool:
        return self.alive >= self.configured and not self.blocked


def _shared(app: App) -> Any:
    return getattr(app.shared_ctx, "vitals", None)


def worker_index(name: str) -> int | None:
    """A server worker's number (`Sanic-Server-<worker>-<server>`: `Sanic-Server-1-0`
    is 1); None for other processes."""
    parts = name.split("-")
    if len(parts) != 4 or parts[:2] != ["Sanic", "Server"]:
        return None
    try:
        return int(parts[2]) % MAX_WORKERS
    except ValueError:
        return None


def read_vitals(app: Sanic[Any, Any], blocked_after: float) -> Vitals | None:
    """The instance's vitals (None in single-process mode: nothing to supervise)."""
    shared = _shared(app)
    if shared is None:
        return None
    now = time.monotonic()
    configured = int(shared[_CONFIGURED])
    blocked = [
        i
        for i in range(min(configured, MAX_WORKERS))
        if shared[_BEATS + i] > 0 and now - shared[_BEATS + i] > blocked_after
    ]
    return Vitals(configured, int(shared[_ALIVE]), int(shared[_RESTARTS]), blocked)


# -- main process -------------------------------------------------------------------


def _create_shared(app: App, _loop: object) -> None:
    shared = multiprocessing.Array("d", _BEATS + MAX_WORKERS)
    shared[_CONFIGURED] = shared[_ALIVE] = float(app.state.workers)
    app.shared_ctx.vitals = shared


def _exit_status(code: int | None) -> str:
    if code is None:
        return "unknown status"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class Watchdog(threading.Thread):
    def __init__(self, app: App) -> None:
        super().__init__(name="conectades-watchdog", daemon=True)
        self.manager = app.manager
        self.shared = _shared(app)
        self.stopping = threading.Event()
        self.last_restart: dict[str, float] = {}

    def run(self) -> None:
        while not self.stopping.wait(WATCH_INTERVAL):
            try:
                self.check()
            except Exception:  # the watchdog must outlive any one bad poll
                log.exception("watchdog: check failed")

    def check(self) -> None:
        servers = [p for p in self.manager.transient_processes if worker_index(p.name) is not None]
        alive = 0
        for process in servers:
            if process.is_alive() or process.state in (
                ProcessState.RESTARTING,
                ProcessState.STARTING,
                ProcessState.IDLE,
            ):
                alive += process.is_alive()
                continue
            if process.state is ProcessState.TERMINATED or self.stopping.is_set():
                continue  # told to stop: the instance is shutting down
            index = worker_index(process.name)
            if index is not None and self.shared is not None:
                self.shared[_BEATS + index] = 0.0  # dead, not blocked
            now = time.monotonic()
            if now - self.last_restart.get(process.name, -1e9) < MIN_RESTART_GAP:
                continue
            self.last_restart[process.name] = now
            log.error(
                "API worker %s (pid %s) ended (%s); starting a new one",
                process.name,
                process.pid,
                _exit_status(process.exitcode),
            )
            # The manager's own restart message (as auto-reload sends), handled by
            # its monitor loop in the main thread.
            self.manager.monitor_publisher.send(f"{process.name}:")
            if self.shared is not None:
                self.shared[_RESTARTS] += 1
        if self.shared is not None:
            self.shared[_ALIVE] = float(alive)


def _start_watchdog(app: App, _loop: object) -> None:
    try:
        app.manager  # noqa: B018 (raises in single-process mode)
    except SanicException:
        return
    watchdog = Watchdog(app)
    app.ctx.watchdog = watchdog
    watchdog.start()


def _stop_watchdog(app: App, _loop: object) -> None:
    watchdog = app.ctx.watchdog
    if watchdog is not None:
        watchdog.stopping.set()


def stop_restarting(app: Sanic[Any, Any]) -> None:
    """The instance is stopping (SIGTERM to the main process): replace no worker."""
    _stop_watchdog(app, None)


# -- workers ------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_parent_at_start: int | None = None


def _die_with_parent() -> None:
    """SIGTERM this worker when the main process dies (a drain, then exit): an
    orphaned worker otherwise went on holding the port, and the main process that
    its supervisor started next could not bind it ("Address already in use")."""
    global _parent_at_start
    _parent_at_start = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: orphans are left as before
        return
    if os.getppid() != _parent_at_start:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def orphaned() -> bool:
    """Whether this worker's main process is gone."""
    return _parent_at_start is not None and os.getppid() != _parent_at_start


async def _beat(shared: Any, index: int) -> None:
    while True:
        shared[_BEATS + index] = time.monotonic()
        await asyncio.sleep(BEAT_INTERVAL)


async def _start_heartbeat(app: App) -> None:
    if worker_index(os.environ.get("SANIC_WORKER_NAME", "")) is not None:
        _die_with_parent()
    shared, index = _shared(app), worker_index(os.environ.get("SANIC_WORKER_NAME", ""))
    if shared is not None and index is not None:
        app.ctx.heartbeat = asyncio.get_running_loop().create_task(_beat(shared, index))


async def _stop_heartbeat(app: App) -> None:
    task = app.ctx.heartbeat
    if task is not None:
        task.cancel()


def setup_supervision(app: App) -> None:
    app.register_listener(_create_shared, "main_process_start")
    app.register_listener(_start_watchdog, "main_process_ready")
    app.register_listener(_stop_watchdog, "main_process_stop")
    app.register_listener(_start_heartbeat, "after_server_start")
    app.register_listener(_stop_heartbeat, "before_server_stop")
