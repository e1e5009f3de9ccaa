"""The per-tenant response cache in Redis: ready-to-send bodies under generations
(cache/keys.py), fail-open over the bounded Redis I/O layer (cache/redisio.py).

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
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from cache.breaker import CircuitBreaker, Unavailable
from cache.keys import BUMP_LUA, EPOCH_KEY, LOOKUP_LUA, PREFIX, digest, scope_of, ttl_for
from cache.memo import SingleFlight
from cache.metrics import lookup_counter
from cache.pipe import Executor
from cache.redisio import BoundedRedis, create_client, register_script

MAX_PENDING_TENANTS = 256
LOOKUP_SHA = register_script(LOOKUP_LUA)
BUMP_SHA = register_script(BUMP_LUA)


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
        # Every call: bounded, through the breaker, pipelined (cache/redisio.py).
        self.io = BoundedRedis(redis, timeout=timeout, breaker=breaker, pipelined=pipelined)
        self.retry_interval = retry_interval
        self._pending_scopes: builtins.set[str] = builtins.set()
        self._pending_epoch = False
        self._flusher: asyncio.Task[None] | None = None
        # Concurrent misses of one entry (same generation) in this worker share a build.
        self.flights: SingleFlight[str, bytes] = SingleFlight()

    # The I/O layer's parts, for tests and the operator commands.
    @property
    def redis(self) -> Redis:
        return self.io.redis

    @property
    def breaker(self) -> CircuitBreaker:
        return self.io.breaker

    @property
    def executor(self) -> Executor:
        return self.io.executor

    # -- reads ---------------------------------------------------------------

    async def lookup(
        self,
        tenant_id: UUID | None,
        resource: str,
        key: str,
        part: str | None = None,
        *,
        lag: float = 0.0,
    ) -> Lookup:
        """The cached body (HIT) or where to store it (MISS); BYPASS/ERROR fail open.

        `part`: the part of the tenant the body depends on (see the module doc);
        `lag`: seconds the body may miss writes that only marked that part (see
        `invalidate(lagging=...)` and cache/keys.py, "Lagging parts")."""
        try:
            if self._pending_epoch or self._pending_scopes:
                await self._settle()
            scope = f"t:{tenant_id}" if tenant_id is not None else "dir"
            if part is None or tenant_id is None:
                gens: tuple[str, ...] = (EPOCH_KEY, f"{PREFIX}:gen:{scope}")
            else:
                gens = (EPOCH_KEY, f"{PREFIX}:gen:{scope}", f"{PREFIX}:gen:{scope}:{part}")
            reply = await self.io.call(
                "lookup",
                "EVALSHA",
                LOOKUP_SHA,
                len(gens),
                *gens,
                f"{PREFIX}:{scope}:{resource}:",
                digest(key),
                int(lag * 1_000_000),
            )
        except Unavailable as exc:
            result = Result.BYPASS if exc.reason == "open" else Result.ERROR
            lookup_counter(tenant_id, resource, result).inc()
            return Lookup(result)
        slot, body = reply
        result = Result.HIT if body is not None else Result.MISS
        lookup_counter(tenant_id, resource, result).inc()
        return Lookup(result, body, _text(slot))

    async def store(self, lookup: Lookup, body: bytes, ttl: int) -> bool:
        """Store a body built after a MISS under the generation of that lookup."""
        if lookup.slot is None or self._owes_invalidation():
            return False
        try:
            await self.io.call("store", "SET", lookup.slot, body, "EX", ttl)
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
        lagging: Collection[str] = (),
    ) -> bool:
        """Make every entry of the tenant (and of the directory) unreachable, O(1);
        with `parts`, only the tenant's entries that depend on one of those parts.
        `lagging` parts are only marked due: their entries go at the first lookup
        that allows less lag than the mark's age (cache/keys.py, "Lagging parts").

        On failure the invalidation is owed: replayed before this worker touches
        the cache again (lagging parts then dropped at once, to be safe). Returns
        whether it reached Redis now."""
        scopes: builtins.set[str] = builtins.set()
        marks: builtins.set[str] = builtins.set()
        if tenant_id is not None:
            if parts is None:
                scopes.add(scope_of(tenant_id))
            else:
                scopes.update(f"{scope_of(tenant_id)}:{part}" for part in parts)
                marks.update(f"{scope_of(tenant_id)}:{part}" for part in lagging)
        if directory:
            scopes.add(scope_of(None))
        if not scopes and not marks:
            return True
        self._owe(scopes)
        return await self._settle_quietly(marks - scopes)

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
            await self.io.call("ping", "PING")
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
        await self.io.close()

    # -- internals ---------------------------------------------------------------

    def _owes_invalidation(self) -> bool:
        return self._pending_epoch or bool(self._pending_scopes)

    def _owe(self, scopes: builtins.set[str]) -> None:
        self._pending_scopes |= scopes
        if len(self._pending_scopes) > MAX_PENDING_TENANTS:
            self._pending_scopes.clear()
            self._pending_epoch = True

    async def _settle(self, marks: Collection[str] = ()) -> None:
        """Replay owed invalidations, and mark `marks` due (in the same call);
        raise Unavailable if they cannot be (yet)."""
        if not self._owes_invalidation() and not marks:
            return
        epoch = self._pending_epoch
        scopes = builtins.set(self._pending_scopes)
        keys = [EPOCH_KEY] if epoch else [f"{PREFIX}:gen:{s}" for s in sorted(scopes)]
        due = [f"{PREFIX}:gen:{s}" for s in sorted(marks)] if not epoch else []
        try:
            await self.io.call(
                "invalidate", "EVALSHA", BUMP_SHA, len(keys) + len(due), *keys, *due, len(keys)
            )
        except Unavailable:
            self._schedule_retry()
            raise
        if epoch:
            # The epoch made everything unreachable, including scopes owed meanwhile.
            self._pending_epoch = False
            self._pending_scopes.clear()
        else:
            self._pending_scopes -= scopes

    async def _settle_quietly(self, marks: Collection[str] = ()) -> bool:
        """`_settle`; False when Redis could not be reached (then the marks are owed
        as drops, to be safe)."""
        try:
            await self._settle(marks)
        except Unavailable:
            self._owe(builtins.set(marks))
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


def count_disabled(tenant_id: UUID | None, resource: str) -> None:
    """Count a read answered without a cache configured (so hit ratios stay honest)."""
    lookup_counter(tenant_id, resource, Result.BYPASS).inc()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def open_response_cache(
    url: str,
    *,
    connect_timeout: float,
    timeout: float,
    breaker_threshold: int,
    breaker_cooldown: float,
) -> ResponseCache | None:
    """A cache on the Redis at `url`; None when `url` is empty (no cache: BYPASS).
    The settings and their defaults are the API's (api/config.py, CACHE_*)."""
    if not url:
        return None
    return ResponseCache(
        create_client(url, connect_timeout=connect_timeout, timeout=timeout),
        timeout=connect_timeout + timeout,
        breaker=CircuitBreaker(threshold=breaker_threshold, cooldown=breaker_cooldown),
    )
