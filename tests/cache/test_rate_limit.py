"""Per-credential limits on the partner API: GCRA in Redis, RateLimit-* headers,
429 + Retry-After as problem+json, independent per key, fail-open without Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import Factory, bearer
from tests.services import ApiServer, Database, api_env, start_redis


@pytest.fixture(scope="module")
def limited(db: Database, workdir: Path) -> Iterator[tuple[ApiServer, object]]:
    redis = start_redis(workdir, name="redis-ratelimit")
    env = api_env(
        db,
        CONECTADES_REDIS_URL=redis.url,
        CONECTADES_RATE_LIMIT_RATE="2",
        CONECTADES_RATE_LIMIT_BURST="5",
    )
    server = ApiServer(env, log=workdir / "api-ratelimit.log")
    server.start()
    yield server, redis
    server.stop()
    redis.stop()


def burst(url: str, key: str, n: int) -> list[httpx.Response]:
    with httpx.Client(base_url=url, headers=bearer(key), timeout=30) as c:
        return [c.get("/api/v1/campaigns") for _ in range(n)]


def test_burst_then_429_with_retry_after(
    limited: tuple[ApiServer, object], factory: Factory
) -> None:
    server, _ = limited
    tenant = factory.tenant()
    responses = burst(server.url, tenant.key, 12)
    codes = [r.status_code for r in responses]
    assert codes[:5] == [200] * 5
    assert 429 in codes
    ok, refused = responses[0], next(r for r in responses if r.status_code == 429)
    assert ok.headers["RateLimit-Limit"] == "5"
    assert int(ok.headers["RateLimit-Remaining"]) == 4
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Remaining"] == "0"


def test_limits_are_per_key(limited: tuple[ApiServer, object], factory: Factory) -> None:
    server, _ = limited
    a, b = factory.tenant(), factory.tenant()
    assert 429 in [r.status_code for r in burst(server.url, a.key, 12)]
    assert [r.status_code for r in burst(server.url, b.key, 5)] == [200] * 5


def test_limiter_fails_open_without_redis(
    limited: tuple[ApiServer, object], factory: Factory
) -> None:
    server, redis = limited
    tenant = factory.tenant()
    redis.stop()  # type: ignore[attr-defined]
    try:
        codes = [r.status_code for r in burst(server.url, tenant.key, 12)]
    finally:
        redis.start()  # type: ignore[attr-defined]
    assert codes == [200] * 12
