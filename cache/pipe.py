"""The pipelined Redis client of the request path (`RedisPipe`) and its fallback.

redis-py's asyncio client costs more per call
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
the next call. TLS (`rediss://`) or credential providers fall back to redis-py
(`RedisPyExecutor`, same hard bound).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Protocol, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int


class Executor(Protocol):
    """Runs one Redis command within its hard bound, or raises (RedisError, OSError)."""

    async def execute(self, *args: Arg) -> Any: ...

    async def close(self) -> None: ...


# hiredis.pack_command grows its buffer slowly past ~64 KB: 118 µs for a 100 KB value
# and 1.6 ms for the old listing's 1.1 MB answer, against 4 µs and 73 µs framed here
# (docs/decisions.md, section 3). Smaller commands, nearly all, stay with hiredis.
LARGE_ARGUMENT = 65_536


def _pack(args: tuple[Arg, ...]) -> bytes:
    if not any(isinstance(a, bytes) and len(a) > LARGE_ARGUMENT for a in args):
        packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # (stub too narrow)
        return packed
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(parts)


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
