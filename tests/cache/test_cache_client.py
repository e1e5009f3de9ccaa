"""RedisPipe, the response cache's multiplexed client, against a real Redis:
concurrent callers on one connection, errors, cancellation, timeouts, reconnects,
scripts forgotten by a restarted Redis, the redis-py fallback, and uvloop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import uuid4

import hiredis
import pytest
import redis.asyncio as redis_asyncio
import uvloop
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cache import (
    EPOCH_KEY,
    RedisPipe,
    ResponseCache,
    Result,
    create_client,
)
from cache.pipe import LARGE_ARGUMENT, _pack
from infra.redis import LocalRedis

KEY = "GET /api/v1/campaigns?"


async def wait_for(predicate: Callable[[], Awaitable[bool]]) -> None:
    """Poll until `predicate()` holds (Redis has no event to wait on here)."""
    async with asyncio.timeout(10):
        while True:
            if await predicate():
                return
            await asyncio.sleep(0.05)


def pipe_for(server: LocalRedis, *, timeout: float = 2.0, db: int = 0) -> RedisPipe:
    client = create_client(f"{server.url[:-2]}/{db}", connect_timeout=timeout, timeout=timeout)
    pipe = RedisPipe.for_client(client, timeout)
    assert pipe is not None
    return pipe


@pytest.fixture
async def pipe(redis_server: LocalRedis) -> AsyncIterator[RedisPipe]:
    p = pipe_for(redis_server)
    yield p
    await p.close()


async def test_concurrent_callers_share_one_connection_and_get_their_own_replies(
    pipe: RedisPipe,
) -> None:
    prefix = f"test:pipe:{uuid4()}"
    await asyncio.gather(*(pipe.execute("SET", f"{prefix}:{i}", f"v{i}") for i in range(50)))
    keys = [i % 50 for i in range(500)]
    replies = await asyncio.gather(*(pipe.execute("GET", f"{prefix}:{i}") for i in keys))
    assert replies == [f"v{i}".encode() for i in keys]
    ids = await asyncio.gather(*(pipe.execute("CLIENT", "ID") for _ in range(20)))
    assert len(set(ids)) == 1


async def test_large_values_framed_here_arrive_whole_between_small_commands(
    pipe: RedisPipe,
) -> None:
    # Values past LARGE_ARGUMENT are framed by _pack, not hiredis: the same bytes on
    # the wire, and the commands around them still get their own replies.
    prefix = f"test:pipe:{uuid4()}"
    sizes = [LARGE_ARGUMENT - 1, LARGE_ARGUMENT + 1, 1_200_000]
    values = [bytes([i % 251]) * n + "ção".encode() for i, n in enumerate(sizes)]
    for size, value in zip(sizes, values, strict=True):
        args = ("SET", f"{prefix}:{size}", value, "PX", 60_000)
        assert _pack(args) == hiredis.pack_command(args)
    await asyncio.gather(
        *(
            call
            for size, value in zip(sizes, values, strict=True)
            for call in (
                pipe.execute("SET", f"{prefix}:{size}", value, "PX", 60_000),
                pipe.execute("SET", f"{prefix}:small:{size}", size),
            )
        )
    )
    assert await asyncio.gather(*(pipe.execute("GET", f"{prefix}:{n}") for n in sizes)) == values
    small = await asyncio.gather(*(pipe.execute("GET", f"{prefix}:small:{n}") for n in sizes))
    assert small == [str(n).encode() for n in sizes]
    assert await pipe.execute("PTTL", f"{prefix}:{sizes[-1]}") > 50_000


async def test_error_reply_fails_only_its_own_caller(pipe: RedisPipe) -> None:
    key = f"test:pipe:{uuid4()}"
    results = await asyncio.gather(
        pipe.execute("SET", key, "not a number"),
        pipe.execute("INCR", key),
        pipe.execute("GET", key),
        return_exceptions=True,
    )
    assert results[0] == b"OK"
    assert isinstance(results[1], ResponseError)
    assert results[2] == b"not a number"
    assert await pipe.execute("PING") == b"PONG"


async def test_cancelled_caller_does_not_shift_the_replies_of_others(pipe: RedisPipe) -> None:
    key = f"test:pipe:{uuid4()}"
    await pipe.execute("SET", key, "mine")
    slow = asyncio.ensure_future(pipe.execute("DEBUG", "SLEEP", "0.2"))
    await asyncio.sleep(0.05)
    after = asyncio.ensure_future(pipe.execute("GET", key))
    await asyncio.sleep(0)
    slow.cancel()
    assert await after == b"mine"
    assert await pipe.execute("ECHO", "next") == b"next"


async def test_paused_redis_fails_every_pending_caller_within_the_bound_then_reconnects(
    private_redis: LocalRedis,
) -> None:
    pipe = pipe_for(private_redis, timeout=0.3)
    try:
        assert await pipe.execute("PING") == b"PONG"
        private_redis.pause(1.0)
        start = time.monotonic()
        results = await asyncio.gather(
            *(pipe.execute("GET", f"k{i}") for i in range(5)), return_exceptions=True
        )
        took = time.monotonic() - start
        assert all(isinstance(r, RedisTimeoutError) for r in results), results
        assert took < 0.9  # 0.3 s bound, on a busy machine
        assert not pipe.connected  # a late reply never reaches a later caller

        async def answers() -> bool:
            try:
                return bool(await pipe.execute("PING") == b"PONG")
            except RedisTimeoutError:
                return False

        await wait_for(answers)
    finally:
        await pipe.close()


async def test_restarted_redis_is_reconnected_and_its_scripts_reloaded(
    private_redis: LocalRedis, caches: Callable[..., ResponseCache]
) -> None:
    cache = caches(private_redis, timeout=0.3, threshold=1, cooldown=0.2)
    tenant = uuid4()
    await cache.set(tenant, "campaigns", KEY, b"before")
    private_redis.kill()
    private_redis.start()  # empty, and without the lookup script

    async def misses() -> bool:
        return (await cache.lookup(tenant, "campaigns", KEY)).result is Result.MISS

    await wait_for(misses)
    await cache.set(tenant, "campaigns", KEY, b"after")
    assert await cache.get(tenant, "campaigns", KEY) == b"after"


async def test_flushed_scripts_cost_no_failure(cache: ResponseCache) -> None:
    tenant = uuid4()
    await cache.set(tenant, "campaigns", KEY, b"body")
    await cache.redis.script_flush()
    found = await cache.lookup(tenant, "campaigns", KEY)
    assert found.result is Result.HIT and found.body == b"body"
    await cache.redis.script_flush()
    assert await cache.invalidate_tenant(tenant)
    assert cache.breaker.failures == 0
    assert (await cache.lookup(tenant, "campaigns", KEY)).result is Result.MISS


async def test_a_lookup_is_one_command(cache: ResponseCache, redis_server: LocalRedis) -> None:
    probe = redis_asyncio.Redis.from_url(redis_server.url)
    tenant = uuid4()
    try:
        await cache.lookup(tenant, "campaigns", KEY)  # connected, script loaded
        await probe.config_resetstat()
        for _ in range(5):
            await cache.lookup(tenant, "campaigns", KEY)
        stats = await probe.info("commandstats")
    finally:
        await probe.aclose()
    assert stats["cmdstat_evalsha"]["calls"] == 5
    assert "cmdstat_eval" not in stats


async def test_database_and_client_name_come_from_the_url(redis_server: LocalRedis) -> None:
    pipe = pipe_for(redis_server, db=3)
    key = f"test:pipe:{uuid4()}"
    plain = redis_asyncio.Redis.from_url(f"{redis_server.url[:-2]}/3")
    try:
        await pipe.execute("SET", key, "in db 3")
        assert await plain.get(key) == b"in db 3"
        assert await pipe.execute("CLIENT", "GETNAME") == b"conectades-api"
    finally:
        await plain.aclose()
        await pipe.close()


async def test_unreachable_redis_fails_fast(private_redis: LocalRedis) -> None:
    pipe = pipe_for(private_redis, timeout=0.3)
    private_redis.kill()
    start = time.monotonic()
    with pytest.raises((OSError, RedisError)):  # refused, or reset if it was mid-exit
        await pipe.execute("PING")
    assert time.monotonic() - start < 0.9
    await pipe.close()


def test_tls_falls_back_to_redis_py() -> None:
    client = create_client("rediss://127.0.0.1:6390/0", connect_timeout=0.1, timeout=0.1)
    assert RedisPipe.for_client(client, 0.2) is None
    cache = ResponseCache(client, timeout=0.2)
    assert not isinstance(cache.executor, RedisPipe)


async def test_redis_py_fallback_reads_the_same_entries(redis_server: LocalRedis) -> None:
    url = redis_server.url
    plain = ResponseCache(create_client(url, connect_timeout=2, timeout=2), pipelined=False)
    piped = ResponseCache(create_client(url, connect_timeout=2, timeout=2), timeout=4)
    assert isinstance(piped.executor, RedisPipe)
    assert not isinstance(plain.executor, RedisPipe)
    tenant = uuid4()
    try:
        await plain.set(tenant, "campaigns", KEY, b"from redis-py")
        assert await piped.get(tenant, "campaigns", KEY) == b"from redis-py"
        assert await plain.invalidate_tenant(tenant)
        assert (await piped.lookup(tenant, "campaigns", KEY)).result is Result.MISS
        await plain.redis.script_flush()
        await piped.set(tenant, "campaigns", KEY, b"piped")
        assert await plain.get(tenant, "campaigns", KEY) == b"piped"
        assert await plain.redis.get(EPOCH_KEY) is not None
    finally:
        await plain.close()
        await piped.close()


def test_cache_works_on_uvloop(redis_server: LocalRedis) -> None:
    """Production runs uvloop (whose transports are not asyncio.Transport)."""

    async def scenario() -> list[Result]:
        cache = ResponseCache(
            create_client(redis_server.url, connect_timeout=2, timeout=2), timeout=4
        )
        tenant = uuid4()
        try:
            seen = [(await cache.lookup(tenant, "campaigns", KEY)).result]
            await cache.set(tenant, "campaigns", KEY, b"x")
            found = await asyncio.gather(
                *(cache.lookup(tenant, "campaigns", KEY) for _ in range(20))
            )
            seen += {f.result for f in found}
            assert await cache.invalidate_tenant(tenant)
            seen.append((await cache.lookup(tenant, "campaigns", KEY)).result)
            return seen
        finally:
            await cache.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(scenario()) == [Result.MISS, Result.HIT, Result.MISS]


async def test_refused_connection_setup_fails_the_call(redis_server: LocalRedis) -> None:
    # This Redis has no password: AUTH is refused, so the connection is not used.
    pipe = RedisPipe(port=redis_server.port, password="wrong", timeout=2.0)
    try:
        with pytest.raises(ResponseError):
            await pipe.execute("PING")
        assert not pipe.connected
    finally:
        await pipe.close()
