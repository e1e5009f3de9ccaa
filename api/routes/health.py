"""Liveness, readiness, and the graceful drain that turns readiness off first.

On SIGTERM (Kubernetes, `docker stop`) or SIGINT (what Sanic's worker manager sends
its workers) a worker does not stop at once, because Sanic's own stop closes idle
keep-alive connections immediately: an edge that picks such a connection for a
POST at that moment gets a reset after sending, and Nginx will not (and must not)
retry a POST that may have been processed, so the client would see a 502.
Instead the worker:

1. answers `/health/ready` with 503 (orchestrators and load balancers stop
   routing to it) and every further response with `Connection: close`, so each
   client connection is closed by us only right after a response that says so;
2. keeps listening until no client connection has been open for `DRAIN_QUIET`
   seconds, or `DRAIN_TIMEOUT` seconds have passed (idle keep-alive connections
   are left for the client to close: the edge's upstream keepalive_timeout must
   be shorter than DRAIN_TIMEOUT);
3. then runs Sanic's stop: the listener closes (new connects are refused, which
   Nginx retries on another upstream safely) and requests still in flight get
   `GRACEFUL_SHUTDOWN_TIMEOUT` seconds to finish.

A second signal during the drain is ignored (a process-group kill delivers two);
the worker manager escalates to SIGKILL on its own second signal.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field

from sanic import Blueprint, HTTPResponse, Request, Sanic
from sanic.http import Http
from sanic.response import BaseHTTPResponse

from api.responses import json_response
from db.pool import role_guard

log = logging.getLogger("conectades.drain")

bp = Blueprint("health")


@dataclass
class DrainState:
    active: bool = False
    open_connections: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def drain_state(app: Sanic) -> DrainState:  # type: ignore[type-arg]
    state = getattr(app.ctx, "drain", None)
    if not isinstance(state, DrainState):
        state = DrainState()
        app.ctx.drain = state
    return state


@bp.get("/health")
async def get_health(request: Request) -> HTTPResponse:
    """Liveness: the worker answers."""
    return json_response({"status": "ok"})


@bp.get("/health/ready")
async def get_readiness(request: Request) -> HTTPResponse:
    """Readiness: not draining and PostgreSQL answers within a second (Redis is reported)."""
    if drain_state(request.app).active:
        return json_response({"status": "draining", "checks": {}}, status=503)
    checks: dict[str, str] = {}
    guard = role_guard(request.app)
    pool = request.app.ctx.pool
    if guard is not None and guard.refused:
        checks["postgres"] = "refused: unsafe database role"
    elif pool is None:
        checks["postgres"] = "unavailable: no pool"
    else:
        try:
            async with asyncio.timeout(1.0), pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
            checks["postgres"] = "ok"
        except Exception as exc:  # any failure means not ready
            checks["postgres"] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    # The cache fails open: without Redis the API answers from PostgreSQL, so
    # Redis never makes a worker unready.
    cache = request.app.ctx.cache
    if cache is None:
        checks["redis"] = "disabled"
    else:
        checks["redis"] = "ok" if await cache.ping() else "unavailable"
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


async def _drain(app: Sanic) -> None:  # type: ignore[type-arg]
    state = drain_state(app)
    cfg = app.config
    loop = asyncio.get_running_loop()
    deadline = loop.time() + float(cfg.DRAIN_TIMEOUT)
    quiet_since: float | None = None
    while loop.time() < deadline:
        if state.open_connections > 0:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= float(cfg.DRAIN_QUIET):
            break
        await asyncio.sleep(0.05)
    log.info("drain: stopping (%d connections still open)", state.open_connections)
    # terminate=False: stop this worker only, as Sanic's own signal handler does.
    app.stop(terminate=False)


async def _install_signal_handlers(app: Sanic) -> None:  # type: ignore[type-arg]
    state = drain_state(app)
    loop = asyncio.get_running_loop()

    def begin(signum: int) -> None:
        if state.active:
            return
        log.info("drain: %s received; readiness off", signal.Signals(signum).name)
        state.active = True
        state.task = loop.create_task(_drain(app))

    # after_server_start runs after Sanic installed its handlers: these replace them.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, begin, signum)


async def _close_after_response(request: Request, response: BaseHTTPResponse) -> None:
    # Setting keep_alive before the headers go out makes Sanic send
    # `Connection: close` and close the connection after this response.
    stream = request.stream
    if drain_state(request.app).active and isinstance(stream, Http):
        stream.keep_alive = False


def setup_drain(app: Sanic) -> None:  # type: ignore[type-arg]
    state = drain_state(app)

    async def opened(conn_info: object) -> None:
        state.open_connections += 1

    async def closed(conn_info: object) -> None:
        state.open_connections -= 1

    app.add_signal(opened, "http.lifecycle.begin")
    app.add_signal(closed, "http.lifecycle.complete")
    app.register_listener(_install_signal_handlers, "after_server_start")
    app.register_middleware(_close_after_response, "response")
