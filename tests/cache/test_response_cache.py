"""ResponseCache against a real Redis: keys per tenant, generations, purge."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import redis.asyncio as redis_asyncio
from prometheus_client import REGISTRY

from cache import (
    EPOCH_KEY,
    TTLS,
    Lookup,
    ResponseCache,
    Result,
    generation_key,
    open_response_cache,
)
from cache.memo import SingleFlight
from infra.redis import LocalRedis

KEY = "GET /api/v1/campaigns?limit=20"


def lookups(tenant: str, resource: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "conectades_cache_lookups_total",
        {"tenant": tenant, "resource": resource, "result": result},
    )
    return value or 0.0


async def put(cache: ResponseCache, tenant: UUID | None, body: bytes, key: str = KEY) -> Lookup:
    found = await cache.lookup(tenant, "campaigns", key)
    assert found.result is Result.MISS
    assert await cache.store(found, body, 60)
    return found


def test_ttls_follow_the_old_system() -> None:
    assert TTLS == {"campaigns": 3600, "donations": 900, "users": 1800}


def test_empty_redis_url_disables_the_cache() -> None:
    settings = {"connect_timeout": 0.1, "timeout": 0.1, "breaker_threshold": 3}
    assert open_response_cache("", **settings, breaker_cooldown=5.0) is None


async def test_lookup_after_store_is_hit(cache: ResponseCache) -> None:
    tenant = uuid4()
    first = await cache.lookup(tenant, "campaigns", KEY)
    assert first.result is Result.MISS and first.body is None and first.header == "MISS"
    assert await cache.store(first, b'{"data":[]}', 60)
    second = await cache.lookup(tenant, "campaigns", KEY)
    assert second.result is Result.HIT and second.header == "HIT"
    assert second.body == b'{"data":[]}'


async def test_get_and_set_round_trip(cache: ResponseCache) -> None:
    tenant = uuid4()
    assert await cache.get(tenant, "donations", KEY) is None
    assert await cache.set(tenant, "donations", KEY, b"[1]")
    assert await cache.get(tenant, "donations", KEY) == b"[1]"


async def test_entry_expires_after_its_ttl(cache: ResponseCache) -> None:
    tenant = uuid4()
    found = await cache.lookup(tenant, "campaigns", KEY)
    await cache.store(found, b"x", 1)
    assert await cache.get(tenant, "campaigns", KEY) == b"x"
    await asyncio.sleep(1.3)
    assert await cache.get(tenant, "campaigns", KEY) is None


async def test_stored_entry_carries_the_resource_ttl(
    cache: ResponseCache, redis_server: LocalRedis
) -> None:
    tenant = uuid4()
    await cache.set(tenant, "donations", KEY, b"x")
    found = await cache.lookup(tenant, "donations", KEY)
    assert found.slot is not None
    ttl = await cache.redis.ttl(found.slot)
    assert 800 < ttl <= TTLS["donations"]


async def test_different_queries_are_different_entries(cache: ResponseCache) -> None:
    tenant = uuid4()
    await put(cache, tenant, b"page1", "GET /api/v1/campaigns?limit=1")
    other = await cache.lookup(tenant, "campaigns", "GET /api/v1/campaigns?limit=2")
    assert other.result is Result.MISS


async def test_invalidate_tenant_makes_all_its_entries_unreachable(cache: ResponseCache) -> None:
    tenant = uuid4()
    await put(cache, tenant, b"list", "GET /api/v1/campaigns?")
    await put(cache, tenant, b"filtered", "GET /api/v1/campaigns?status=published")
    donations = await cache.lookup(tenant, "donations", "GET /api/v1/donations?")
    await cache.store(donations, b"donations", 60)

    assert await cache.invalidate_tenant(tenant)

    for resource, key in [
        ("campaigns", "GET /api/v1/campaigns?"),
        ("campaigns", "GET /api/v1/campaigns?status=published"),
        ("donations", "GET /api/v1/donations?"),
    ]:
        assert (await cache.lookup(tenant, resource, key)).result is Result.MISS


async def test_purge_tenant_leaves_other_tenants_entries(cache: ResponseCache) -> None:
    a, b = uuid4(), uuid4()
    await put(cache, a, b"A")
    await put(cache, b, b"B")
    assert await cache.purge_tenant(a)
    assert await cache.get(a, "campaigns", KEY) is None
    assert await cache.get(b, "campaigns", KEY) == b"B"


async def test_tenant_never_receives_another_tenants_body(cache: ResponseCache) -> None:
    a, b = uuid4(), uuid4()
    await put(cache, b, b"secret of B")
    # Same method, path and query: still A's own key space, so a miss.
    found = await cache.lookup(a, "campaigns", KEY)
    assert found.result is Result.MISS and found.body is None
    assert found.slot is not None and f":t:{a}:" in found.slot and str(b) not in found.slot
    await cache.store(found, b"A's own", 60)
    assert await cache.get(a, "campaigns", KEY) == b"A's own"
    assert await cache.get(b, "campaigns", KEY) == b"secret of B"


async def test_directory_scope_is_separate_from_tenants(cache: ResponseCache) -> None:
    tenant = uuid4()
    await cache.invalidate_directory()  # start from a fresh directory generation
    key = "GET /api/public/campaigns?order=recent"
    directory = await cache.lookup(None, "campaigns", key)
    await cache.store(directory, b"directory", 60)
    await put(cache, tenant, b"tenant", key)

    assert await cache.invalidate(tenant)  # a write that does not touch the directory
    assert await cache.get(None, "campaigns", key) == b"directory"

    await put(cache, tenant, b"tenant again", key)
    assert await cache.invalidate_directory()
    assert await cache.get(None, "campaigns", key) is None
    assert await cache.get(tenant, "campaigns", key) == b"tenant again"


async def test_write_invalidating_tenant_and_directory_together(cache: ResponseCache) -> None:
    tenant = uuid4()
    key = "GET /api/public/campaigns?category=food"
    await cache.store(await cache.lookup(None, "campaigns", key), b"dir", 60)
    await put(cache, tenant, b"own", key)
    assert await cache.invalidate(tenant, directory=True)
    assert await cache.get(None, "campaigns", key) is None
    assert await cache.get(tenant, "campaigns", key) is None


async def lag_put(cache: ResponseCache, tenant: UUID, part: str, body: bytes) -> None:
    found = await cache.lookup(tenant, "campaigns", KEY, part, lag=LAG)
    assert found.result is Result.MISS
    assert await cache.store(found, body, 60)


LAG = 0.6


async def test_a_lagging_mark_drops_the_part_only_once_it_is_lag_old(cache: ResponseCache) -> None:
    """cache/keys.py, "Lagging parts": a marked part keeps its entries until a lookup
    finds the mark LAG old; that lookup misses, and the rebuilt entry stays."""
    tenant = uuid4()
    await lag_put(cache, tenant, "s:cestas", b"before")
    assert await cache.invalidate(tenant, parts=["c:1"], lagging=["s:cestas"])
    marked = asyncio.get_running_loop().time()
    hit = await cache.lookup(tenant, "campaigns", KEY, "s:cestas", lag=LAG)
    assert hit.result is Result.HIT and hit.body == b"before"
    # Later marks never push the drop back: the oldest mark counts.
    await asyncio.sleep(LAG / 2)
    assert await cache.invalidate(tenant, parts=[], lagging=["s:cestas"])
    await asyncio.sleep(max(0.0, marked + LAG + 0.05 - asyncio.get_running_loop().time()))
    await lag_put(cache, tenant, "s:cestas", b"after")
    again = await cache.lookup(tenant, "campaigns", KEY, "s:cestas", lag=LAG)
    assert again.result is Result.HIT and again.body == b"after"


async def test_a_lagging_mark_leaves_other_parts_and_bumps_its_own_parts_now(
    cache: ResponseCache,
) -> None:
    tenant = uuid4()
    await lag_put(cache, tenant, "s:cestas", b"page")
    await lag_put(cache, tenant, "s:outra", b"other page")
    await put(cache, tenant, b"partner", KEY + "&x")
    found = await cache.lookup(tenant, "campaigns", KEY, "c:1")
    await cache.store(found, b"partner read", 60)
    assert await cache.invalidate(tenant, parts=["c:1"], lagging=["s:cestas"])
    assert (await cache.lookup(tenant, "campaigns", KEY, "c:1")).result is Result.MISS
    await asyncio.sleep(LAG + 0.05)
    assert (await cache.lookup(tenant, "campaigns", KEY, "s:outra", lag=LAG)).body == b"other page"
    assert (await cache.lookup(tenant, "campaigns", KEY, "s:cestas", lag=LAG)).body is None
    assert await cache.get(tenant, "campaigns", KEY + "&x") == b"partner"


async def test_body_built_before_a_concurrent_write_is_never_served(cache: ResponseCache) -> None:
    tenant = uuid4()
    found = await cache.lookup(tenant, "campaigns", KEY)  # generation N
    # ... build() read the old rows here; meanwhile a write commits and invalidates:
    assert await cache.invalidate_tenant(tenant)
    await cache.store(found, b"old rows", 60)  # lands under generation N
    after = await cache.lookup(tenant, "campaigns", KEY)
    assert after.result is Result.MISS


async def test_evicted_generation_key_never_revives_old_entries(
    cache: ResponseCache, redis_server: LocalRedis
) -> None:
    tenant = uuid4()
    await put(cache, tenant, b"v1")
    assert await cache.invalidate_tenant(tenant)
    await put(cache, tenant, b"v2")
    # LRU may evict the generation key itself; it must not restart at an old value.
    await cache.redis.delete(generation_key(tenant))
    found = await cache.lookup(tenant, "campaigns", KEY)
    assert found.result is Result.MISS
    await cache.redis.delete(generation_key(tenant))
    assert await cache.invalidate_tenant(tenant)
    assert (await cache.lookup(tenant, "campaigns", KEY)).result is Result.MISS


async def test_generations_strictly_increase(cache: ResponseCache) -> None:
    tenant = uuid4()
    await cache.lookup(tenant, "campaigns", KEY)
    seen = [int(await cache.redis.get(generation_key(tenant)))]
    for _ in range(5):
        await cache.invalidate_tenant(tenant)
        seen.append(int(await cache.redis.get(generation_key(tenant))))
    assert seen == sorted(set(seen))


async def test_purge_all_bumps_the_epoch(cache: ResponseCache) -> None:
    a, b = uuid4(), uuid4()
    await put(cache, a, b"A")
    await put(cache, b, b"B")
    before = await cache.redis.get(EPOCH_KEY)
    assert await cache.purge_all()
    assert await cache.redis.get(EPOCH_KEY) != before
    assert await cache.get(a, "campaigns", KEY) is None
    assert await cache.get(b, "campaigns", KEY) is None


async def test_no_keys_or_scan_on_the_hot_path(
    cache: ResponseCache, redis_server: LocalRedis
) -> None:
    probe = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        await probe.config_resetstat()
        tenant = uuid4()
        await put(cache, tenant, b"x")
        await cache.get(tenant, "campaigns", KEY)
        await cache.invalidate(tenant, directory=True)
        stats = await probe.info("commandstats")
    finally:
        await probe.aclose()
    assert not any(name in stats for name in ("cmdstat_keys", "cmdstat_scan"))
    # A lookup is one script call (the generation read and the GET together).
    assert stats["cmdstat_evalsha"]["calls"] >= 3


async def test_hits_and_misses_are_counted_per_tenant_and_resource(cache: ResponseCache) -> None:
    tenant = uuid4()
    label = str(tenant)
    await put(cache, tenant, b"x")
    await cache.get(tenant, "campaigns", KEY)
    await cache.get(tenant, "campaigns", KEY)
    assert lookups(label, "campaigns", "miss") == 1
    assert lookups(label, "campaigns", "hit") == 2
    assert lookups(label, "donations", "hit") == 0


async def test_single_flight_shares_one_build() -> None:
    flights: SingleFlight[str, bytes] = SingleFlight()
    builds = 0

    async def build() -> bytes:
        nonlocal builds
        builds += 1
        await asyncio.sleep(0.05)
        return b"body"

    bodies = await asyncio.gather(*(flights.run("k", build) for _ in range(20)))
    assert bodies == [b"body"] * 20
    assert builds == 1
    assert "k" not in flights


async def test_single_flight_shares_the_failure_and_then_retries() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        raise LookupError("not found")

    results = await asyncio.gather(
        *(flights.run("k", failing) for _ in range(5)), return_exceptions=True
    )
    assert calls == 1 and all(isinstance(r, LookupError) for r in results)

    async def ok() -> int:
        return 7

    assert await flights.run("k", ok) == 7


async def test_single_flight_waiter_takes_over_when_the_builder_is_cancelled() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    started = asyncio.Event()

    async def slow() -> int:
        started.set()
        await asyncio.sleep(10)
        return 1

    async def quick() -> int:
        return 2

    builder = asyncio.ensure_future(flights.run("k", slow))
    await started.wait()
    waiter = asyncio.ensure_future(flights.run("k", quick))
    await asyncio.sleep(0)
    builder.cancel()
    assert await waiter == 2
