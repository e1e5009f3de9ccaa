"""Caches against a real redis-server: the session one, or a private one per test
for the kill/pause/restart cases (so they never disturb other tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from cache import CircuitBreaker, ResponseCache, create_client, prepare_metrics_dir
from infra.redis import LocalRedis
from tests.services import ApiServer, Database, api_env, start_redis

# Generous on a busy machine; the failure tests use their own, shorter ones.
TIMEOUT = 2.0


def make_cache(
    server: LocalRedis,
    *,
    timeout: float = TIMEOUT,
    threshold: int = 3,
    cooldown: float = 5.0,
    retry_interval: float = 0.5,
) -> ResponseCache:
    client = create_client(server.url, connect_timeout=timeout, timeout=timeout)
    return ResponseCache(
        client,
        timeout=2 * timeout,
        breaker=CircuitBreaker(threshold=threshold, cooldown=cooldown),
        retry_interval=retry_interval,
    )


@pytest.fixture
async def cache(redis_server: LocalRedis) -> AsyncIterator[ResponseCache]:
    c = make_cache(redis_server)
    yield c
    await c.close()


@pytest.fixture
def private_redis(workdir: Path) -> Iterator[LocalRedis]:
    server = start_redis(workdir, name=f"redis-{uuid4().hex[:8]}")
    yield server
    server.stop()


@pytest.fixture
async def caches() -> AsyncIterator[Callable[..., ResponseCache]]:
    """Build caches (one per simulated worker); all are closed after the test."""
    made: list[ResponseCache] = []

    def build(server: LocalRedis, **kwargs: Any) -> ResponseCache:
        c = make_cache(server, **kwargs)
        made.append(c)
        return c

    yield build
    for c in made:
        await c.close()


PROBE_APP = "tests.cache.app:create_test_app"


@pytest.fixture(scope="module")
def probe_redis(workdir: Path) -> Iterator[LocalRedis]:
    server = start_redis(workdir, name=f"redis-probe-{uuid4().hex[:8]}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def probe_api(db: Database, probe_redis: LocalRedis, workdir: Path) -> Iterator[ApiServer]:
    """Two workers sharing one Redis, metrics in multiprocess mode."""
    name = uuid4().hex[:8]
    metrics = prepare_metrics_dir(workdir / f"metrics-{name}")
    env = api_env(
        db,
        CONECTADES_REDIS_URL=probe_redis.url,
        CONECTADES_CACHE_CONNECT_TIMEOUT="2.0",
        CONECTADES_CACHE_TIMEOUT="2.0",
        CONECTADES_CACHE_BREAKER_COOLDOWN="0.5",
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
    )
    server = ApiServer(env, workers=2, log=workdir / f"probe-api-{name}.log", app=PROBE_APP)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def probe(probe_api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=probe_api.url, timeout=30) as c:
        yield c
