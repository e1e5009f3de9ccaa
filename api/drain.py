"""The graceful drain: a worker told to stop first turns its readiness off (api/routes/
health.py answers 503), then finishes what it was sent, then stops.

On SIGTERM (Kubernetes, `docker stop`) or SIGINT (what Sanic's worker manager sends
its workers) a worker does not stop at once. Sanic's own stop closes the listener
and every idle connection at once, which fails requests the edge has already sent:
a POST on a keep-alive connection closed under it, a POST on a connection the
kernel accepted but the worker had not yet read, and a POST on a connection still
in the listener's accept queue (reset when the listener closes). Nginx will not
(and must not) retry a POST that may have been processed, so each is a 502.
Nginx does retry, on another upstream, a request whose *connect* failed: nothing
was sent. So the drain makes every late request fail at connect time, never after:

1. Readiness answers 503 and every response carries `Connection: close`, so each
   client connection is closed by us only right after a response that says so.
2. Accepting: for `DRAIN_ACCEPT` seconds the worker still accepts and serves new
   connections (Kubernetes endpoints and load balancers take a moment to stop
   sending), unless no client connection has been open for `DRAIN_QUIET` seconds.
3. Freeze (only when the whole instance stops, see below): a socket filter on the
   listening socket drops new SYNs, so no new connection can complete; handshakes
   already under way still complete and the workers accept the queue empty. The
   edge's connect to a frozen worker times out (`proxy_connect_timeout`) or, once
   the listener closes, is refused, and Nginx retries it on another upstream.
   Closing the listener instead would reset the connections in its accept queue,
   whose requests the edge has already sent.
4. Finishing: the worker waits until no client connection has been open for
   `DRAIN_QUIET` seconds: in-flight requests end with `Connection: close`, and the
   edge closes its idle keep-alive connections after its upstream
   `keepalive_timeout`, which must be shorter than `DRAIN_TIMEOUT` (edge/render.py).
   `DRAIN_TIMEOUT` after the signal the worker stops waiting.
5. Sanic's stop: the listener closes (its queue is empty and nothing new can
   enter it) and requests still in flight get `GRACEFUL_SHUTDOWN_TIMEOUT` seconds.

Sanic's workers share one listening socket, opened by the main process, so the
freeze stops new connections for every worker. It is applied only when every
server worker of the instance is terminating (the main process got SIGTERM or
SIGINT and marked them all, `app.m.workers`). A single worker that is restarted or
scaled down only drains its own connections and closes its copy of the socket:
the kernel keeps listening for its siblings, which accept the queue.

A second signal during the drain is ignored (a process-group kill delivers two);
the worker manager escalates to SIGKILL on its own second signal.

The main process's own handler is replaced too (`main_process_ready`). Sanic's
handler marks the workers terminated through the multiprocessing Manager that holds
their state, from inside the signal handler. The main process polls that state
through the same connection every 0.1 s, so a signal during a poll mixed the two
replies up: the main process failed and, on its way out, shut the shared listening
socket down while the workers were still draining, and new connections were
refused. Our handler only posts Sanic's own `__TERMINATE__` message to the monitor;
the main process's loop then runs the same shutdown outside the handler.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import socket
import struct
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.http import Http
from sanic.response import BaseHTTPResponse

from api.supervision import orphaned, stop_restarting

log = logging.getLogger("conectades.drain")

# The Sanic releases this module's use of Sanic's internals was verified with (the
# shared listening socket in `app.state.server_info`, `app.m.workers`, the worker
# manager's `monitor_publisher` and `__TERMINATE__`, `Http.keep_alive`, the
# `http.lifecycle.*` signals): tests/runtime/test_drain.py runs the drain end to end
# and pins this range; widen it only after that test passed on the new release.
VERIFIED_SANIC = ((25, 3), (26, 0))


@dataclass
class DrainState:
    active: bool = False
    open_connections: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def drain_state(app: Sanic[Any, Any]) -> DrainState:
    state = getattr(app.ctx, "drain", None)
    if not isinstance(state, DrainState):
        state = DrainState()
        app.ctx.drain = state
    return state


# A classic BPF socket filter, run on each packet for the listening socket with
# the TCP header at offset 0: drop a SYN without ACK (a new connection), keep
# everything else (the ACKs that complete handshakes already under way).
_DROP_NEW_SYNS = (
    (0x30, 0, 0, 13),  # ldb [13]        TCP flags
    (0x54, 0, 0, 0x12),  # and #SYN|ACK
    (0x15, 1, 0, 0x02),  # jeq #SYN, drop
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1     keep the whole packet
    (0x06, 0, 0, 0),  # drop: ret #0
)
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)  # Linux asm-generic value


def freeze_listener(sock: socket.socket) -> None:
    """Make the kernel drop new connection attempts to `sock` (all processes that
    share it): the client retries its SYN until the listener closes, then is refused."""
    code = b"".join(struct.pack("HBBI", *insn) for insn in _DROP_NEW_SYNS)
    buf = ctypes.create_string_buffer(code)
    prog = struct.pack("HL", len(_DROP_NEW_SYNS), ctypes.addressof(buf))
    # The kernel copies the program; `buf` only has to live through this call.
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, prog)


def accept_queue_length(sock: socket.socket) -> int:
    """Connections the kernel completed that no worker has accepted yet (for a
    listening socket, tcp_info.tcpi_unacked holds the accept queue length)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    return int(struct.unpack_from("I", info, 24)[0])


def _listeners(app: Sanic[Any, Any]) -> list[socket.socket]:
    # In a worker, Sanic hands over the main process's listening socket in the
    # server info (a duplicate descriptor of the same kernel socket).
    socks = (info.settings.get("sock") for info in app.state.server_info)
    return [s for s in socks if isinstance(s, socket.socket) and s.type == socket.SOCK_STREAM]


def _instance_stopping(app: Sanic[Any, Any]) -> bool:
    """True when every server worker of this instance is terminating (the main
    process's shutdown, or its death), False when only this one is restarted or
    scaled down."""
    if orphaned():
        return True
    try:
        workers = app.m.workers
    except AttributeError:  # single process: this worker is the instance
        return True
    except (OSError, EOFError):
        # The state lives in the main process's manager; gone, it means the whole
        # process group was signalled (e.g. `kill -- -PGID`).
        return True
    servers = [info for info in workers.values() if info.get("server")]
    return bool(servers) and all(info.get("state") == "TERMINATED" for info in servers)


async def _wait_quiet(app: Sanic[Any, Any], until: float) -> None:
    """Until no client connection has been open for DRAIN_QUIET seconds, or `until`."""
    state = drain_state(app)
    loop = asyncio.get_running_loop()
    quiet = float(app.config.DRAIN_QUIET)
    quiet_since: float | None = None
    while loop.time() < until:
        if state.open_connections > 0:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= quiet:
            return
        await asyncio.sleep(0.05)


async def _freeze(app: Sanic[Any, Any], until: float) -> None:
    loop = asyncio.get_running_loop()
    listeners = _listeners(app)
    if not listeners:
        log.warning("drain: no listening socket found; stopping without a freeze")
        return
    for sock in listeners:
        freeze_listener(sock)
    # Handshakes whose SYN came before the filter still complete (one round trip);
    # then every worker still listening accepts what is queued.
    await asyncio.sleep(0.05)
    # A kernel counter, polled: there is no event to wait on.
    while any(accept_queue_length(s) for s in listeners) and loop.time() < until:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    log.info("drain: listener frozen, accept queue empty")


async def _drain(app: Sanic[Any, Any]) -> None:
    state = drain_state(app)
    cfg = app.config
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + float(cfg.DRAIN_TIMEOUT)
    try:
        await _wait_quiet(app, min(deadline, started + float(cfg.DRAIN_ACCEPT)))
        if _instance_stopping(app):
            try:
                await _freeze(app, deadline)
            except OSError as exc:  # e.g. no BPF: still stop, as Sanic would
                log.warning("drain: could not freeze the listener (%s)", exc)
        await _wait_quiet(app, deadline)
        log.info("drain: stopping (%d connections still open)", state.open_connections)
    finally:
        # Whatever failed above, the worker stops (the signal was meant to stop it).
        # terminate=False: stop this worker only, as Sanic's own signal handler does.
        app.stop(terminate=False)


async def _install_signal_handlers(app: Sanic[Any, Any]) -> None:
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


def _install_main_signal_handlers(app: Sanic[Any, Any], _loop: object) -> None:
    try:
        manager = app.manager
    except SanicException:  # --single-process: no worker manager
        return
    requested = False

    def deferred(signum: int, frame: FrameType | None) -> None:
        nonlocal requested
        if requested:  # a second signal: Sanic's handler escalates to SIGKILL
            manager.shutdown_signal(signum, frame)  # type: ignore[no-untyped-call]
            return
        requested = True
        log.info("drain: %s received by the main process", signal.Signals(signum).name)
        stop_restarting(app)  # workers that end from now on are not replaced
        manager.monitor_publisher.send("__TERMINATE__")

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, deferred)


def setup_drain(app: Sanic[Any, Any]) -> None:
    state = drain_state(app)

    async def opened(conn_info: object) -> None:
        state.open_connections += 1

    async def closed(conn_info: object) -> None:
        state.open_connections -= 1

    app.add_signal(opened, "http.lifecycle.begin")
    app.add_signal(closed, "http.lifecycle.complete")
    app.register_listener(_install_signal_handlers, "after_server_start")
    app.register_listener(_install_main_signal_handlers, "main_process_ready")
    app.register_middleware(_close_after_response, "response")
