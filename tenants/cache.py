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

Entries are stored under the generation read *before* the body was built, so a
write that commits while a body is being built makes that body unreachable: a
read after one's own write never finds the previous value — as long as the
write's invalidation reached Redis.

Fail-open. Every call has a short connect/read timeout and a hard asyncio bound,
no retries. Failures are counted; after `threshold` consecutive ones the circuit
breaker opens and Redis is not called at all for `cooldown` seconds (responses are
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

Metrics (prometheus-client, multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is
set before this module is imported; see `prepare_metrics_dir`):
`conectades_cache_lookups_total{tenant,resource,result}` with result
hit|miss|bypass|error, and `conectades_cache_failures_total{op,reason}`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from uuid import UUID

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from tenants.memo import SingleFlight

if TYPE_CHECKING:
    from sanic import Sanic

log = logging.getLogger("conectades.cache")

T = TypeVar("T")

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

# KEYS[1] epoch, KEYS[2] scope generation; ARGV[1] entry prefix, ARGV[2] digest.
# A missing counter starts at the server clock in µs (never an earlier value).
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
local slot = ARGV[1] .. counter(KEYS[1]) .. ':' .. counter(KEYS[2]) .. ':' .. ARGV[2]
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
        return {Result.HIT: "HIT", Result.MISS: "MISS"}.get(self.result, "BYPASS")


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
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self.probing:
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


class ResponseCache:
    """Ready-to-send response bodies per tenant in Redis; every method fails open."""

    def __init__(
        self,
        redis: Redis,
        *,
        timeout: float = 0.1,
        breaker: CircuitBreaker | None = None,
        retry_interval: float = 0.5,
    ) -> None:
        self.redis = redis
        # A hard bound over connect + read, in case a call stalls between the two.
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self.retry_interval = retry_interval
        self._lookup = redis.register_script(LOOKUP_LUA)
        self._bump = redis.register_script(BUMP_LUA)
        self._pending_scopes: builtins.set[str] = builtins.set()
        self._pending_epoch = False
        self._flusher: asyncio.Task[None] | None = None
        # Concurrent misses of one entry (same generation) in this worker share a build.
        self.flights: SingleFlight[str, bytes] = SingleFlight()

    # -- reads ---------------------------------------------------------------

    async def lookup(self, tenant_id: UUID | None, resource: str, key: str) -> Lookup:
        """The cached body (HIT) or where to store it (MISS); BYPASS/ERROR fail open."""
        label = _label(tenant_id)
        try:
            await self._settle()
            slot, body = await self._call(
                "lookup",
                lambda: self._lookup(
                    keys=[EPOCH_KEY, generation_key(tenant_id)],
                    args=[f"{PREFIX}:{scope_of(tenant_id)}:{resource}:", digest(key)],
                ),
            )
        except Unavailable as exc:
            result = Result.BYPASS if exc.reason == "open" else Result.ERROR
            LOOKUPS.labels(label, resource, result.value).inc()
            return Lookup(result)
        result = Result.HIT if body is not None else Result.MISS
        LOOKUPS.labels(label, resource, result.value).inc()
        return Lookup(result, bytes(body) if body is not None else None, _text(slot))

    async def store(self, lookup: Lookup, body: bytes, ttl: int) -> bool:
        """Store a body built after a MISS under the generation of that lookup."""
        if lookup.slot is None or self._owes_invalidation():
            return False
        slot = lookup.slot
        try:
            await self._call("store", lambda: self.redis.set(slot, body, ex=ttl))
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

    async def invalidate(self, tenant_id: UUID | None, *, directory: bool = False) -> bool:
        """Make every entry of the tenant (and of the directory) unreachable, O(1).

        On failure the invalidation is owed: replayed before this worker touches
        the cache again. Returns whether it reached Redis now."""
        scopes: builtins.set[str] = builtins.set()
        if tenant_id is not None:
            scopes.add(scope_of(tenant_id))
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
            await self._call("ping", self.redis.ping)
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
        await self.redis.aclose()

    # -- internals ---------------------------------------------------------------

    async def _call(self, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            FAILURES.labels(op, "open").inc()
            raise Unavailable("open")
        try:
            async with asyncio.timeout(self.timeout):
                value = await fn()
        except (RedisError, OSError, TimeoutError) as exc:
            FAILURES.labels(op, "error").inc()
            if self.breaker.failure():
                log.warning(
                    "cache: Redis failing (%s: %s); breaker open for %.1f s",
                    op,
                    type(exc).__name__,
                    self.breaker.cooldown,
                )
            raise Unavailable("error") from exc
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.success()
        return value

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
            await self._call("invalidate", lambda: self._bump(keys=keys))
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


def _label(tenant_id: UUID | None) -> str:
    return str(tenant_id) if tenant_id is not None else DIRECTORY


def count_disabled(tenant_id: UUID | None, resource: str) -> None:
    """Count a read answered without a cache configured (so hit ratios stay honest)."""
    LOOKUPS.labels(_label(tenant_id), resource, Result.BYPASS.value).inc()


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
