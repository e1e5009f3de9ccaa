"""Redis killed, paused or restarted: calls fail fast and open, then recover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import uuid4

from prometheus_client import REGISTRY

from cache import CircuitBreaker, ResponseCache, Result
from infra.redis import LocalRedis

T = TypeVar("T")
KEY = "GET /api/v1/campaigns?"
SHORT = 0.2  # connect and read timeout of these caches
BOUND = 1.5  # a call never takes longer than this (hard bound 0.4 s + a busy machine)


async def timed(coro: Awaitable[T]) -> tuple[T, float]:
    start = time.monotonic()
    value = await coro
    return value, time.monotonic() - start


async def wait_for(predicate: Callable[[], Awaitable[bool]]) -> None:
    """Poll until `predicate()` holds (Redis has no event to wait on here)."""
    async with asyncio.timeout(10):
        while True:
            if await predicate():
                return
            await asyncio.sleep(0.05)


def failures(op: str, reason: str) -> float:
    return (
        REGISTRY.get_sample_value("conectades_cache_failures_total", {"op": op, "reason": reason})
        or 0.0
    )


async def test_killed_redis_fails_fast_and_opens_the_breaker(
    private_redis: LocalRedis, caches: Callable[..., ResponseCache]
) -> None:
    cache = caches(private_redis, timeout=SHORT, threshold=3, cooldown=30)
    tenant = uuid4()
    found = await cache.lookup(tenant, "campaigns", KEY)
    await cache.store(found, b"cached", 60)
    private_redis.kill()

    for _ in range(3):
        found, took = await timed(cache.lookup(tenant, "campaigns", KEY))
        assert found.result is Result.ERROR and found.body is None and found.header == "BYPASS"
        assert took < BOUND
    assert cache.breaker.state == "open"

    skipped = failures("lookup", "open")
    found, took = await timed(cache.lookup(tenant, "campaigns", KEY))
    assert found.result is Result.BYPASS and took < BOUND
    assert failures("lookup", "open") == skipped + 1
    assert not await cache.store(found, b"x", 60)


async def test_paused_redis_times_out_fast(
    private_redis: LocalRedis, caches: Callable[..., ResponseCache]
) -> None:
    cache = caches(private_redis, timeout=SHORT, threshold=2, cooldown=30)
    tenant = uuid4()
    await cache.lookup(tenant, "campaigns", KEY)  # connection established
    private_redis.pause(1.5)
    found, took = await timed(cache.lookup(tenant, "campaigns", KEY))
    assert found.result is Result.ERROR
    assert took < BOUND
    ok, took = await timed(cache.invalidate_tenant(tenant))
    assert ok is False and took < BOUND
    assert cache.breaker.state == "open"


async def test_cache_recovers_after_redis_restarts(
    private_redis: LocalRedis, caches: Callable[..., ResponseCache]
) -> None:
    cache = caches(private_redis, timeout=SHORT, threshold=1, cooldown=0.3)
    tenant = uuid4()
    private_redis.kill()
    assert (await cache.lookup(tenant, "campaigns", KEY)).result is Result.ERROR
    assert cache.breaker.state == "open"
    private_redis.start()

    async def cache_answers() -> bool:
        return (await cache.lookup(tenant, "campaigns", KEY)).result is Result.MISS

    await wait_for(cache_answers)
    assert cache.breaker.state == "closed"
    await cache.set(tenant, "campaigns", KEY, b"fresh")
    assert await cache.get(tenant, "campaigns", KEY) == b"fresh"


async def test_failed_invalidation_is_replayed_before_this_worker_reads(
    private_redis: LocalRedis, caches: Callable[..., ResponseCache]
) -> None:
    worker = caches(private_redis, timeout=SHORT, threshold=1, cooldown=0.3, retry_interval=60)
    tenant = uuid4()
    await worker.set(tenant, "campaigns", KEY, b"old")

    private_redis.pause(1.0)
    # The write committed; its invalidation cannot reach Redis.
    assert await worker.invalidate_tenant(tenant) is False
    # Until it is recorded this worker never serves from the cache.
    assert (await worker.lookup(tenant, "campaigns", KEY)).body is None

    async def replayed() -> bool:
        found = await worker.lookup(tenant, "campaigns", KEY)
        assert found.body != b"old"
        return found.result is Result.MISS

    await wait_for(replayed)


async def test_a_lagging_mark_that_fails_is_replayed_as_a_drop(
    private_redis: LocalRedis, caches: Callable[..., ResponseCache]
) -> None:
    """A mark that cannot reach Redis is owed like any invalidation, and replayed as
    a drop (a late mark could lag longer than promised)."""
    worker = caches(private_redis, timeout=SHORT, threshold=1, cooldown=0.3, retry_interval=0.1)
    tenant = uuid4()
    found = await worker.lookup(tenant, "campaigns", KEY, "s:cestas", lag=60.0)
    assert await worker.store(found, b"old", 60)

    private_redis.pause(1.0)
    assert await worker.invalidate(tenant, parts=[], lagging=["s:cestas"]) is False

    async def dropped() -> bool:
        again = await worker.lookup(tenant, "campaigns", KEY, "s:cestas", lag=60.0)
        assert again.body != b"old"
        return again.result is Result.MISS

    await wait_for(dropped)


async def test_failed_invalidation_is_replayed_in_the_background_for_other_workers(
    private_redis: LocalRedis, caches: Callable[..., ResponseCache]
) -> None:
    writer = caches(private_redis, timeout=SHORT, threshold=1, cooldown=0.3, retry_interval=0.1)
    reader = caches(private_redis, timeout=SHORT, cooldown=0.3)
    tenant = uuid4()
    await reader.set(tenant, "campaigns", KEY, b"old")

    private_redis.pause(1.0)
    assert await writer.invalidate_tenant(tenant) is False

    # The writer makes no further calls: its retry task records the invalidation.
    async def reader_misses() -> bool:
        return (await reader.lookup(tenant, "campaigns", KEY)).result is Result.MISS

    await wait_for(reader_misses)


async def test_too_many_owed_invalidations_bump_the_epoch(
    private_redis: LocalRedis, caches: Callable[..., ResponseCache]
) -> None:
    worker = caches(private_redis, timeout=SHORT, threshold=1, cooldown=0.3, retry_interval=60)
    bystander = uuid4()
    await worker.set(bystander, "campaigns", KEY, b"bystander")
    private_redis.kill()
    for _ in range(300):
        await worker.invalidate_tenant(uuid4())  # breaker open: not even attempted
    private_redis.start()

    async def settled() -> bool:
        return (await worker.lookup(bystander, "campaigns", KEY)).result is Result.MISS

    await wait_for(settled)


def test_breaker_opens_after_threshold_and_probes_once_after_cooldown() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=5, clock=lambda: now[0])
    assert breaker.allow()
    assert breaker.failure() is False
    assert breaker.failure() is True
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 5.1
    assert breaker.state == "half-open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    assert breaker.failure() is True  # the probe failed: open again
    assert not breaker.allow()
    now[0] = 10.2
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.failures == 0


def test_breaker_success_resets_consecutive_failures() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=5)
    breaker.failure()
    breaker.failure()
    breaker.success()
    assert breaker.failure() is False
    assert breaker.state == "closed"
