"""The Redis I/O layer of the request path: a pipelined client, a circuit breaker and
the hard bound every call runs under (`BoundedRedis`).

Fail-open. Every call has a hard bound (`timeout`: connect + reply), no retries.
Failures are counted; after `threshold` consecutive ones the circuit breaker
opens and Redis is not called at all for `cooldown` seconds (responses are
BYPASS, built from PostgreSQL); then one probe call is let through (half-open),
and its success closes the breaker.

The hot-path client (`RedisPipe`). redis-py's asyncio client costs more per call
than a whole bare Sanic request (pool checkout and release, an asyncio.timeout,
retry wrappers, a StreamReader read per reply: ~160-200 µs of CPU per call, see
docs/decisions.md section 3). So every call of this class goes through ONE
connection per worker on which concurrent callers' commands are buffered and written
once per event-loop pass (pipelined) and replies, parsed by `hiredis.Reader`, are
handed to the callers in order (Redis answers a connection's commands in order).
Each command carries its deadline; ONE timer per connection (not one per call)
checks the earliest: when a reply is late the connection is closed and every pending
caller fails at once with a timeout (a later command cannot be answered before an
earlier one anyway). A closed connection (Redis restarted, timeout) is reopened by
the next call. `EVALSHA` answered `NOSCRIPT` (Redis restarted) is repeated once as
`EVAL`. TLS (`rediss://`) or credential providers fall back to redis-py
(`_RedisPyExecutor`, same hard bound). The redis-py client (`.redis`) stays for
tests and the operator commands (`server_stats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, Protocol, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    InvalidResponse,
    NoScriptError,
    RedisError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from cache.metrics import failure_counter

log = logging.getLogger("conectades.cache")


class CircuitBreaker:
    """closed → (threshold consecutive failures) → open → (cooldown) → half-open:
    one probe; its success closes, its failure reopens. Single event loop: no locks."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at < self.cooldown:
            return "open"
        return "half-open"

    def allow(self) -> bool:
        if self.opened_at is None:  # closed: the hot path, no clock read
            return True
        if self.state == "open" or self.probing:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failure(self) -> bool:
        """Record a failure; True when it opened (or reopened) the breaker."""
        was_probe = self.probing
        self.probing = False
        self.failures += 1
        if was_probe or (self.opened_at is None and self.failures >= self.threshold):
            self.opened_at = self.clock()
            return True
        return False

    def release(self) -> None:
        """A call was cancelled: neither success nor failure, free the probe slot."""
        self.probing = False


class Unavailable(Exception):
    """Redis was not called (open breaker) or failed within the timeout."""

    def __init__(self, reason: Literal["open", "error"]) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- client

Arg = str | bytes | int


class Executor(Protocol):
    """Runs one Redis command within its hard bound, or raises (RedisError, OSError)."""

    async def execute(self, *args: Arg) -> Any: ...

    async def close(self) -> None: ...


def _pack(args: tuple[Arg, ...]) -> bytes:
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # (stub too narrow)
    return packed


class _PipeConnection(asyncio.Protocol):
    """One TCP/Unix connection: commands written in order, replies matched in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        self.pending: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self.error: RedisError | None = None  # set once closed: never used again
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.outgoing: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        pending = self.pending
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except InvalidResponse as exc:
                self.abort(RedisConnectionError(f"protocol error from Redis: {exc}"))
                return
            if reply is False:
                return
            if not pending:
                self.abort(RedisConnectionError("reply from Redis without a command"))
                return
            future = pending.popleft()[1]
            if future.done():  # its caller was cancelled (or timed out): drop the reply
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    # ours
    def send(self, data: bytes, deadline: float) -> asyncio.Future[Any]:
        if self.error is not None or self.transport is None:
            raise RedisConnectionError("connection to Redis closed")
        future = self.loop.create_future()
        self.pending.append((deadline, future))
        # Commands sent during one event-loop pass leave in one write (one syscall).
        if not self.outgoing:
            self.loop.call_soon(self._flush)
        self.outgoing.append(data)
        if self.timer is None or deadline < self.timer_at:
            self._arm(deadline)
        return future

    def _flush(self) -> None:
        outgoing, self.outgoing = self.outgoing, []
        if self.error is None and self.transport is not None:
            self.transport.write(b"".join(outgoing))

    def _arm(self, at: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = at
        self.timer = self.loop.call_at(at, self._check_deadlines)

    def _check_deadlines(self) -> None:
        self.timer = None
        now = self.loop.time()
        earliest: float | None = None
        for deadline, future in self.pending:
            if future.done():
                continue
            if deadline <= now + 0.001:  # timers may fire a hair early
                self.abort(RedisTimeoutError("timeout waiting for Redis"))
                return
            if earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._arm(earliest)

    def abort(self, exc: RedisError) -> None:
        """Close for good and fail every pending caller with (a copy of) `exc`."""
        if self.error is None:
            self.error = exc
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()
        while self.pending:
            future = self.pending.popleft()[1]
            if not future.done():
                future.set_exception(type(exc)(*exc.args))


class RedisPipe:
    """A multiplexed Redis client: one connection, any number of concurrent callers,
    their commands pipelined; `execute()` returns within `timeout` or raises.

    RESP2 only, no pub/sub, no blocking commands, no MULTI (a caller's commands
    must not depend on holding the connection)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        client_name: str | None = None,
        connect_timeout: float = 0.1,
        timeout: float = 0.2,
    ) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.db = db
        self.username = username
        self.password = password
        self.client_name = client_name
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._conn: _PipeConnection | None = None
        self._connecting: asyncio.Task[_PipeConnection] | None = None

    @classmethod
    def for_client(cls, redis: Redis, timeout: float) -> RedisPipe | None:
        """A pipe to the server `redis` (redis-py) talks to, with the same database,
        credentials and client name; None when it cannot (TLS, credential provider,
        a custom connection class), so the caller falls back to redis-py. The pipe
        speaks RESP2 whatever protocol redis-py uses."""
        pool = redis.connection_pool
        kwargs = pool.connection_kwargs
        if kwargs.get("credential_provider") is not None:
            return None
        common: dict[str, Any] = {
            "db": int(kwargs.get("db") or 0),
            "username": kwargs.get("username"),
            "password": kwargs.get("password"),
            "client_name": kwargs.get("client_name"),
            "connect_timeout": min(float(kwargs.get("socket_connect_timeout") or timeout), timeout),
            "timeout": timeout,
        }
        if pool.connection_class is Connection:
            return cls(
                host=kwargs.get("host", "localhost"), port=int(kwargs.get("port", 6379)), **common
            )
        if pool.connection_class is UnixDomainSocketConnection:
            return cls(path=kwargs["path"], **common)
        return None

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.error is None

    async def execute(self, *args: Arg) -> Any:
        """Send one command; its reply (bytes, int, list, None), or raise RedisError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        conn = self._conn
        if conn is None or conn.error is not None:
            conn = await self._connect(deadline)
        return await conn.send(_pack(args), deadline)

    async def close(self) -> None:
        task, self._connecting = self._connecting, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort(RedisConnectionError("client closed"))

    async def _connect(self, deadline: float) -> _PipeConnection:
        task = self._connecting
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open())
            self._connecting = task
            task.add_done_callback(self._opened)
        try:
            async with asyncio.timeout_at(deadline):
                # Shared by every caller meanwhile; one caller timing out does not stop it.
                return await asyncio.shield(task)
        except TimeoutError as exc:
            raise RedisTimeoutError("timeout connecting to Redis") from exc

    def _opened(self, task: asyncio.Task[_PipeConnection]) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._conn = task.result()

    async def _open(self) -> _PipeConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            if self.path is not None:
                _, conn = await loop.create_unix_connection(
                    lambda: _PipeConnection(loop), self.path
                )
            else:
                _, conn = await loop.create_connection(
                    lambda: _PipeConnection(loop), self.host, self.port
                )
        setup: list[tuple[Arg, ...]] = []
        if self.password is not None:
            auth: tuple[Arg, ...] = ("AUTH", self.password)
            setup.append(auth if self.username is None else ("AUTH", self.username, self.password))
        if self.db:
            setup.append(("SELECT", self.db))
        if self.client_name:
            setup.append(("CLIENT", "SETNAME", self.client_name))
        deadline = loop.time() + self.timeout
        replies = [conn.send(_pack(cmd), deadline) for cmd in setup]
        try:
            for reply in replies:
                await reply
        except BaseException:
            conn.abort(RedisConnectionError("connection setup failed"))
            for reply in replies:  # the ones after the failure: nobody awaits them
                if reply.done() and not reply.cancelled():
                    reply.exception()
            raise
        return conn


class RedisPyExecutor:
    """The fallback (TLS, credential providers): redis-py's pool under a hard bound."""

    def __init__(self, redis: Redis, timeout: float) -> None:
        self.redis = redis
        self.timeout = timeout

    async def execute(self, *args: Arg) -> Any:
        async with asyncio.timeout(self.timeout):
            return await self.redis.execute_command(*args)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        return None  # the redis-py client is closed by its owner


def _sha(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()  # Redis' id


# Every script sent by its SHA, so a NOSCRIPT (Redis restarted) can be repeated as EVAL.
_SCRIPTS: dict[Arg, str] = {}


def register_script(source: str) -> str:
    """The SHA to `EVALSHA` a Lua script by; `BoundedRedis` knows its source."""
    sha = _sha(source)
    _SCRIPTS.setdefault(sha, source)
    return sha


def _no_script(exc: BaseException) -> bool:
    return isinstance(exc, NoScriptError) or (
        isinstance(exc, ResponseError) and str(exc).startswith("NOSCRIPT")
    )


def create_client(url: str, *, connect_timeout: float, timeout: float) -> Redis:
    """A client that fails fast: short timeouts, lazy connections, no retry after a
    timeout; one immediate retry after a connection error, so a pooled connection
    left stale by a Redis restart reconnects instead of failing the call."""
    return Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=0,
        client_name="conectades-api",
    )


class BoundedRedis:
    """Redis for the request path: every call within a hard bound (`timeout`:
    connect + reply, no retries), through the circuit breaker, over the pipelined
    client (`RedisPipe`) or, where it cannot be used, redis-py. A call that cannot be
    answered raises `Unavailable`; callers fail open. The response cache and the
    per-key rate limiter share one per worker (one connection, one breaker)."""

    def __init__(
        self,
        redis: Redis,
        *,
        timeout: float = 0.1,
        breaker: CircuitBreaker | None = None,
        pipelined: bool = True,
    ) -> None:
        # redis-py: for tests and operator commands; the calls below use `executor`.
        self.redis = redis
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        pipe = RedisPipe.for_client(redis, timeout) if pipelined else None
        self.executor: Executor = pipe if pipe is not None else RedisPyExecutor(redis, timeout)

    async def call(self, op: str, *args: Arg) -> Any:
        """One command through the breaker; the executor bounds it by `timeout`."""
        breaker = self.breaker
        if not breaker.allow():
            failure_counter(op, "open").inc()
            raise Unavailable("open")
        try:
            value = await self._execute(args)
        except (RedisError, OSError, TimeoutError) as exc:
            failure_counter(op, "error").inc()
            if breaker.failure():
                log.warning(
                    "cache: Redis failing (%s: %s); breaker open for %.1f s",
                    op,
                    type(exc).__name__,
                    breaker.cooldown,
                )
            raise Unavailable("error") from exc
        except BaseException:
            breaker.release()
            raise
        breaker.success()
        return value

    async def _execute(self, args: tuple[Arg, ...]) -> Any:
        try:
            return await self.executor.execute(*args)
        except ResponseError as exc:
            # EVALSHA of a script Redis forgot (it restarted): once more as EVAL.
            source = _SCRIPTS.get(args[1]) if args[0] == "EVALSHA" else None
            if source is None or not _no_script(exc):
                raise
        return await self.executor.execute("EVAL", source, *args[2:])

    async def run_script(self, op: str, source: str, keys: list[str], *args: Arg) -> Any:
        """A Lua script by its SHA (EVAL once if Redis forgot it); raises `Unavailable`
        when Redis cannot answer (the rate limiter's GCRA, the cache's lookups)."""
        sha = register_script(source)
        return await self.call(op, "EVALSHA", sha, len(keys), *keys, *args)

    async def close(self) -> None:
        await self.executor.close()
        await self.redis.aclose()
