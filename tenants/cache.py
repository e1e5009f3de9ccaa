"""The per-tenant response cache in Redis: generations, fail-open, metrics.

Keys. Every entry key carries its scope (one tenant, or the cross-tenant public
directory), the resource, a global *epoch*, the scope's *generation* and a digest
of the request::

    cx:t:<tenant uuid>:<resource>:<epoch>:<generation>:<blake2b-128 of method+path+query>
    cx:dir:<resource>:<epoch>:<generation>:<digest>

A lookup reads the epoch, the generation and the entry in ONE round trip (a Lua
script), so tenant A's lookup can only ever address keys under `cx:t:<A>:`.
Invalidating a tenant (after any write, or a purge) increments its generation:
O(1), no KEYS/SCAN; entries of older generations are unreachable and leave by TTL
or LRU. `invalidate_directory()` does the same for the public directory and
`purge_all()` for the epoch. Generations never repeat, even if LRU evicts a
generation key: a missing generation restarts from the Redis clock in µs, and a
bump sets max(current + 1, clock), so an old entry's generation is never current
again (barring the Redis host's clock stepping backwards).

Parts. A tenant's read may also name a *part* of the tenant it depends on (one
campaign, or the tenant-wide lists); its key then carries that part's generation
too (`...:<generation>:<part generation>:<digest>`). A write that changes only
some parts (a donation: its campaign and the lists) bumps those parts'
generations instead of the tenant's, so the tenant's other cached pages stay
valid; a write that may change anything bumps the tenant's generation, which
every key of the tenant carries.

Entries are stored under the generation read *before* the body was built, so a
write that commits while a body is being built makes that body unreachable: a
read after one's own write never finds the previous value — as long as the
write's invalidation reached Redis.

Fail-open. Every call has a hard bound (`timeout`: connect + reply), no retries.
Failures are counted; after `threshold` consecutive ones the circuit breaker
opens and Redis is not called at all for `cooldown` seconds (responses are
BYPASS, built from PostgreSQL); then one probe call is let through (half-open),
and its success closes the breaker.

Invalidations that could not be recorded. When a write's invalidation fails
(timeout, error, open breaker), the worker remembers it (the tenants, the
directory flag; past 256 tenants, "bump the epoch") and, before it reads from or
writes to the cache again, replays it; until the replay succeeds that worker
answers BYPASS. A background task retries the replay as soon as the breaker lets
a call through. Remaining window, honestly: entries cached before the write stay
visible to OTHER workers from the moment the write commits until this worker's
replay succeeds. If Redis was down for everyone nobody reads those entries (and a
restarted Redis holds none); the window matters only when Redis is reachable from
other workers but not from this one (a partition, or timeouts caused by this
worker's own stalled event loop), and it lasts until this worker's next
successful call — at most the breaker cooldown plus the retry interval after
Redis answers it again.

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

Metrics (prometheus-client, multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is
set before this module is imported; see `prepare_metrics_dir`):
`conectades_cache_lookups_total{tenant,resource,result}` with result
hit|miss|bypass|error, and `conectades_cache_failures_total{op,reason}`. The
labelled children are looked up once and kept (`_counter`), not per call.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from uuid import UUID

import hiredis
from prometheus_client import Counter
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

from tenants.memo import SingleFlight

if TYPE_CHECKING:
    from prometheus_client.metrics import Counter as CounterChild
    from sanic import Sanic

log = logging.getLogger("conectades.cache")

# Seconds an entry lives, by resource (from the system we replace).
TTLS: dict[str, int] = {"campaigns": 3600, "donations": 900, "users": 1800}

PREFIX = "cx"
EPOCH_KEY = f"{PREFIX}:epoch"
DIRECTORY = "directory"  # the metrics label of the cross-tenant scope
MAX_PENDING_TENANTS = 256

LOOKUPS = Counter(
    "conectades_cache_lookups",
    "Response cache lookups by tenant, resource and result (hit|miss|bypass|error)",
    ["tenant", "resource", "result"],
)
FAILURES = Counter(
    "conectades_cache_failures",
    "Redis calls that failed (reason=error) or were skipped by the open breaker (reason=open)",
    ["op", "reason"],
)

# KEYS[1] epoch, KEYS[2] scope generation, KEYS[3] (optional) part generation;
# ARGV[1] entry prefix, ARGV[2] digest. The entry key is the prefix, every counter
# and the digest. A missing counter starts at the server clock in µs (never an
# earlier value).
LOOKUP_LUA = """
local function counter(key)
  local v = redis.call('GET', key)
  if not v then
    local t = redis.call('TIME')
    v = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', key, v)
  end
  return v
end
local slot = ARGV[1]
for _, key in ipairs(KEYS) do
  slot = slot .. counter(key) .. ':'
end
slot = slot .. ARGV[2]
return {slot, redis.call('GET', slot)}
"""

# Every KEYS[i] := max(current + 1, server clock in µs): strictly increasing, and
# beyond any value it had before an eviction.
BUMP_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for _, key in ipairs(KEYS) do
  local cur = tonumber(redis.call('GET', key) or '0') or 0
  redis.call('SET', key, string.format('%d', math.max(cur + 1, now)))
end
return #KEYS
"""


class Result(StrEnum):
    HIT = "hit"
    MISS = "miss"
    BYPASS = "bypass"  # cache disabled, breaker open, or an invalidation still owed
    ERROR = "error"  # Redis failed on this very call (answered like BYPASS)


_HEADERS = {Result.HIT: "HIT", Result.MISS: "MISS", Result.BYPASS: "BYPASS", Result.ERROR: "BYPASS"}


@dataclass(frozen=True, slots=True)
class Lookup:
    result: Result
    body: bytes | None = None
    # The entry key under the generations read with the lookup: store the built
    # body exactly there (never re-read the generation after building).
    slot: str | None = None

    @property
    def header(self) -> str:
        """The X-Cache value."""
        return _HEADERS[self.result]


def ttl_for(resource: str) -> int:
    try:
        return TTLS[resource]
    except KeyError:
        raise ValueError(f"no cache TTL for resource {resource!r}") from None


def scope_of(tenant_id: UUID | None) -> str:
    return f"t:{tenant_id}" if tenant_id is not None else "dir"


def generation_key(tenant_id: UUID | None) -> str:
    return f"{PREFIX}:gen:{scope_of(tenant_id)}"


def digest(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


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


class _RedisPyExecutor:
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


LOOKUP_SHA = _sha(LOOKUP_LUA)
BUMP_SHA = _sha(BUMP_LUA)
_SCRIPTS: dict[Arg, str] = {LOOKUP_SHA: LOOKUP_LUA, BUMP_SHA: BUMP_LUA}


def _no_script(exc: BaseException) -> bool:
    return isinstance(exc, NoScriptError) or (
        isinstance(exc, ResponseError) and str(exc).startswith("NOSCRIPT")
    )


# --------------------------------------------------------------------------- the cache


class ResponseCache:
    """Ready-to-send response bodies per tenant in Redis; every method fails open."""

    def __init__(
        self,
        redis: Redis,
        *,
        timeout: float = 0.1,
        breaker: CircuitBreaker | None = None,
        retry_interval: float = 0.5,
        pipelined: bool = True,
    ) -> None:
        # redis-py: for tests and operator commands; the calls below use `executor`.
        self.redis = redis
        # A hard bound over connect + reply of every call.
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self.retry_interval = retry_interval
        pipe = RedisPipe.for_client(redis, timeout) if pipelined else None
        self.executor: Executor = pipe if pipe is not None else _RedisPyExecutor(redis, timeout)
        self._pending_scopes: builtins.set[str] = builtins.set()
        self._pending_epoch = False
        self._flusher: asyncio.Task[None] | None = None
        # Concurrent misses of one entry (same generation) in this worker share a build.
        self.flights: SingleFlight[str, bytes] = SingleFlight()

    # -- reads ---------------------------------------------------------------

    async def lookup(
        self, tenant_id: UUID | None, resource: str, key: str, part: str | None = None
    ) -> Lookup:
        """The cached body (HIT) or where to store it (MISS); BYPASS/ERROR fail open.

        `part`: the part of the tenant the body depends on (see the module doc)."""
        try:
            if self._pending_epoch or self._pending_scopes:
                await self._settle()
            scope = f"t:{tenant_id}" if tenant_id is not None else "dir"
            if part is None or tenant_id is None:
                gens: tuple[str, ...] = (EPOCH_KEY, f"{PREFIX}:gen:{scope}")
            else:
                gens = (EPOCH_KEY, f"{PREFIX}:gen:{scope}", f"{PREFIX}:gen:{scope}:{part}")
            reply = await self._call(
                "lookup",
                "EVALSHA",
                LOOKUP_SHA,
                len(gens),
                *gens,
                f"{PREFIX}:{scope}:{resource}:",
                digest(key),
            )
        except Unavailable as exc:
            result = Result.BYPASS if exc.reason == "open" else Result.ERROR
            _counter(tenant_id, resource, result).inc()
            return Lookup(result)
        slot, body = reply
        result = Result.HIT if body is not None else Result.MISS
        _counter(tenant_id, resource, result).inc()
        return Lookup(result, body, _text(slot))

    async def store(self, lookup: Lookup, body: bytes, ttl: int) -> bool:
        """Store a body built after a MISS under the generation of that lookup."""
        if lookup.slot is None or self._owes_invalidation():
            return False
        try:
            await self._call("store", "SET", lookup.slot, body, "EX", ttl)
        except Unavailable:
            return False
        return True

    async def get(self, tenant_id: UUID | None, resource: str, key: str) -> bytes | None:
        return (await self.lookup(tenant_id, resource, key)).body

    async def set(
        self,
        tenant_id: UUID | None,
        resource: str,
        key: str,
        body: bytes,
        ttl: int | None = None,
    ) -> bool:
        """Store under the CURRENT generation. Racy against a concurrent write (the
        body may predate it); request handlers use lookup() + store() instead."""
        found = await self.lookup(tenant_id, resource, key)
        return await self.store(found, body, ttl if ttl is not None else ttl_for(resource))

    # -- invalidation ----------------------------------------------------------

    async def invalidate(
        self,
        tenant_id: UUID | None,
        *,
        directory: bool = False,
        parts: Collection[str] | None = None,
    ) -> bool:
        """Make every entry of the tenant (and of the directory) unreachable, O(1);
        with `parts`, only the tenant's entries that depend on one of those parts.

        On failure the invalidation is owed: replayed before this worker touches
        the cache again. Returns whether it reached Redis now."""
        scopes: builtins.set[str] = builtins.set()
        if tenant_id is not None:
            if parts is None:
                scopes.add(scope_of(tenant_id))
            else:
                scopes.update(f"{scope_of(tenant_id)}:{part}" for part in parts)
        if directory:
            scopes.add(scope_of(None))
        if not scopes:
            return True
        self._owe(scopes)
        return await self._settle_quietly()

    async def invalidate_tenant(self, tenant_id: UUID) -> bool:
        return await self.invalidate(tenant_id)

    async def invalidate_directory(self) -> bool:
        return await self.invalidate(None, directory=True)

    async def purge_tenant(self, tenant_id: UUID) -> bool:
        """Drop a tenant's entries (and the directory's, which shows its campaigns)."""
        return await self.invalidate(tenant_id, directory=True)

    async def purge_all(self) -> bool:
        """Every tenant, every scope: bump the global epoch."""
        self._pending_epoch = True
        return await self._settle_quietly()

    # -- lifecycle / introspection ---------------------------------------------

    async def ping(self) -> bool:
        try:
            await self._call("ping", "PING")
        except Unavailable:
            return False
        return True

    async def server_stats(self) -> dict[str, Any]:
        """Redis-side figures for `conectades cache stats` (not on the hot path)."""
        info = await self.redis.info()
        return {
            key: info.get(key)
            for key in (
                "used_memory",
                "maxmemory",
                "maxmemory_policy",
                "keyspace_hits",
                "keyspace_misses",
                "evicted_keys",
                "expired_keys",
                "connected_clients",
            )
        }

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.executor.close()
        await self.redis.aclose()

    async def run_script(self, op: str, source: str, keys: list[str], *args: Arg) -> Any:
        """Another component's Lua script over the same connection and breaker
        (e.g. the rate limiter); raises `Unavailable` when Redis cannot answer."""
        sha = _sha(source)
        _SCRIPTS.setdefault(sha, source)
        return await self._call(op, "EVALSHA", sha, len(keys), *keys, *args)

    # -- internals ---------------------------------------------------------------

    async def _call(self, op: str, *args: Arg) -> Any:
        """One command through the breaker; the executor bounds it by `timeout`."""
        breaker = self.breaker
        if not breaker.allow():
            _failure(op, "open").inc()
            raise Unavailable("open")
        try:
            value = await self._execute(args)
        except (RedisError, OSError, TimeoutError) as exc:
            _failure(op, "error").inc()
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

    def _owes_invalidation(self) -> bool:
        return self._pending_epoch or bool(self._pending_scopes)

    def _owe(self, scopes: builtins.set[str]) -> None:
        self._pending_scopes |= scopes
        if len(self._pending_scopes) > MAX_PENDING_TENANTS:
            self._pending_scopes.clear()
            self._pending_epoch = True

    async def _settle(self) -> None:
        """Replay owed invalidations; raise Unavailable if they cannot be (yet)."""
        if not self._owes_invalidation():
            return
        epoch = self._pending_epoch
        scopes = builtins.set(self._pending_scopes)
        keys = [EPOCH_KEY] if epoch else [f"{PREFIX}:gen:{s}" for s in sorted(scopes)]
        try:
            await self._call("invalidate", "EVALSHA", BUMP_SHA, len(keys), *keys)
        except Unavailable:
            self._schedule_retry()
            raise
        if epoch:
            # The epoch made everything unreachable, including scopes owed meanwhile.
            self._pending_epoch = False
            self._pending_scopes.clear()
        else:
            self._pending_scopes -= scopes

    async def _settle_quietly(self) -> bool:
        try:
            await self._settle()
        except Unavailable:
            return False
        return True

    def _schedule_retry(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._retry_forever())

    async def _retry_forever(self) -> None:
        while self._owes_invalidation():
            await asyncio.sleep(self.retry_interval)
            with contextlib.suppress(Unavailable):
                await self._settle()


# Labelled children, looked up once: `.labels()` costs a lock and a few dict lookups.
_LOOKUP_CHILDREN: dict[tuple[UUID | None, str, Result], CounterChild] = {}
_FAILURE_CHILDREN: dict[tuple[str, str], CounterChild] = {}


def _counter(tenant_id: UUID | None, resource: str, result: Result) -> CounterChild:
    key = (tenant_id, resource, result)
    child = _LOOKUP_CHILDREN.get(key)
    if child is None:
        child = LOOKUPS.labels(_label(tenant_id), resource, result.value)
        _LOOKUP_CHILDREN[key] = child
    return child


def _failure(op: str, reason: str) -> CounterChild:
    child = _FAILURE_CHILDREN.get((op, reason))
    if child is None:
        child = _FAILURE_CHILDREN[(op, reason)] = FAILURES.labels(op, reason)
    return child


def _label(tenant_id: UUID | None) -> str:
    return str(tenant_id) if tenant_id is not None else DIRECTORY


def count_disabled(tenant_id: UUID | None, resource: str) -> None:
    """Count a read answered without a cache configured (so hit ratios stay honest)."""
    _counter(tenant_id, resource, Result.BYPASS).inc()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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


def cache_from_config(config: Any) -> ResponseCache | None:
    url = config.get("REDIS_URL", "") or ""
    if not url:
        return None
    connect_timeout = float(config.get("CACHE_CONNECT_TIMEOUT", 0.1))
    timeout = float(config.get("CACHE_TIMEOUT", 0.1))
    return ResponseCache(
        create_client(url, connect_timeout=connect_timeout, timeout=timeout),
        timeout=connect_timeout + timeout,
        breaker=CircuitBreaker(
            threshold=int(config.get("CACHE_BREAKER_THRESHOLD", 3)),
            cooldown=float(config.get("CACHE_BREAKER_COOLDOWN", 5.0)),
        ),
    )


async def open_cache(app: Sanic) -> None:  # type: ignore[type-arg]
    """This worker's cache client; an empty REDIS_URL disables the cache (BYPASS)."""
    cache = cache_from_config(app.config)
    app.ctx.cache = cache
    app.ctx.redis = cache.redis if cache is not None else None
    if cache is not None and not await cache.ping():
        # Fail open: serve from PostgreSQL; the breaker brings the cache back.
        log.warning("cache: Redis not reachable at startup; serving without it")


async def close_cache(app: Sanic) -> None:  # type: ignore[type-arg]
    cache = getattr(app.ctx, "cache", None)
    if cache is not None:
        await cache.close()
    app.ctx.cache = None
    app.ctx.redis = None


def setup_cache(app: Sanic) -> None:  # type: ignore[type-arg]
    app.register_listener(open_cache, "before_server_start")
    app.register_listener(close_cache, "after_server_stop")


def prepare_metrics_dir(path: Path) -> Path:
    """Create or empty the prometheus-client multiprocess directory.

    Whoever starts the workers calls this BEFORE starting them and exports
    PROMETHEUS_MULTIPROC_DIR=<path> into their environment (prometheus-client
    reads it at import), so /metrics sums every worker's counters."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path
