"""cached_json, invalidate_after_write, the purge route and /metrics over HTTP,
through a two-worker API sharing one real Redis."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.cache import PUBLIC_CACHE_CONTROL
from infra.redis import LocalRedis
from tests.factories import Factory, bearer
from tests.services import Database


def things(client: httpx.Client, tenant: uuid.UUID | str, query: str = "") -> httpx.Response:
    r = client.get(f"/api/probe/{tenant}/things{query}")
    assert r.status_code == 200, r.text
    return r


def test_read_is_miss_then_hit_with_the_same_bytes(probe: httpx.Client) -> None:
    tenant = uuid.uuid4()
    first = things(probe, tenant)
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["cache-control"] == "private, no-store"
    assert first.headers["content-type"] == "application/json"
    second = things(probe, tenant)
    assert second.headers["x-cache"] == "HIT"
    assert second.content == first.content


def test_query_parameter_order_is_one_entry(probe: httpx.Client) -> None:
    tenant = uuid.uuid4()
    first = things(probe, tenant, "?a=1&b=2")
    second = things(probe, tenant, "?b=2&a=1")
    assert second.headers["x-cache"] == "HIT" and second.content == first.content
    assert things(probe, tenant, "?a=1&b=3").headers["x-cache"] == "MISS"


def test_read_after_write_is_never_the_old_body(probe: httpx.Client) -> None:
    tenant = uuid.uuid4()
    old = things(probe, tenant)
    assert things(probe, tenant).headers["x-cache"] == "HIT"
    assert probe.post(f"/api/probe/{tenant}/write").status_code == 204
    new = things(probe, tenant)
    assert new.headers["x-cache"] == "MISS"
    assert new.content != old.content


def test_write_invalidates_the_public_directory_too(probe: httpx.Client) -> None:
    query = f"?q={uuid.uuid4().hex}"
    first = probe.get("/api/probe/directory" + query)
    assert first.headers["cache-control"] == PUBLIC_CACHE_CONTROL
    assert probe.get("/api/probe/directory" + query).headers["x-cache"] == "HIT"
    probe.post(f"/api/probe/{uuid.uuid4()}/write")
    assert probe.get("/api/probe/directory" + query).headers["x-cache"] == "MISS"


def test_failed_build_is_not_cached(probe: httpx.Client) -> None:
    tenant = uuid.uuid4()
    for _ in range(2):
        r = probe.get(f"/api/probe/{tenant}/things?missing=1")
        assert r.status_code == 404
        assert r.headers["x-cache"] == "BYPASS"
    assert things(probe, tenant).headers["x-cache"] == "MISS"


def test_concurrent_misses_build_once_per_worker(probe: httpx.Client) -> None:
    tenant = uuid.uuid4()

    def fetch(_: int) -> httpx.Response:
        return things(probe, tenant, "?slow=0.5")

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(fetch, range(16)))
    builds = {r.content for r in responses}
    assert len(builds) <= 2  # two workers, at most one build each


def test_purge_needs_write_and_leaves_other_tenants(probe: httpx.Client, db: Database) -> None:
    factory = Factory(db, probe)
    tenant, other = factory.tenant(), factory.tenant()
    things(probe, tenant.id)
    things(probe, other.id)

    reader = bearer(factory.key(tenant, ("read",)))
    assert probe.post("/api/v1/cache/purge", headers=reader).status_code == 403
    assert probe.post("/api/v1/cache/purge").status_code == 401
    assert things(probe, tenant.id).headers["x-cache"] == "HIT"

    r = probe.post("/api/v1/cache/purge", headers=tenant.headers)
    assert r.status_code == 202 and r.json() == {"purged": True}
    assert things(probe, tenant.id).headers["x-cache"] == "MISS"
    assert things(probe, other.id).headers["x-cache"] == "HIT"


def test_uncached_api_responses_say_bypass(probe: httpx.Client) -> None:
    r = probe.get("/api/v1/campaigns")
    assert r.status_code == 401
    assert r.headers["x-cache"] == "BYPASS"


def test_redis_killed_mid_test_answers_from_source_then_recovers(
    probe: httpx.Client, probe_redis: LocalRedis
) -> None:
    tenant = uuid.uuid4()
    things(probe, tenant)
    assert things(probe, tenant).headers["x-cache"] == "HIT"
    probe_redis.kill()
    try:
        for _ in range(6):
            start = time.monotonic()
            r = things(probe, tenant)
            assert r.headers["x-cache"] == "BYPASS"
            assert (
                time.monotonic() - start < 5
            )  # killed: refused at once; generous for a busy machine
    finally:
        probe_redis.start()
    deadline = time.monotonic() + 15
    seen = []
    while time.monotonic() < deadline:
        seen.append(things(probe, tenant).headers["x-cache"])
        if seen[-2:] == ["HIT", "HIT"]:
            break
        time.sleep(0.1)
    assert seen[-2:] == ["HIT", "HIT"], seen


def test_metrics_sum_every_workers_counters(probe: httpx.Client) -> None:
    tenant = uuid.uuid4()
    things(probe, tenant)
    for _ in range(9):
        things(probe, tenant)
    text = probe.get("/metrics")
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text.text):
        for sample in family.samples:
            if sample.name == "conectades_cache_lookups_total" and sample.labels.get(
                "tenant"
            ) == str(tenant):
                counts[sample.labels["result"]] = sample.value
    # Both workers answered some of the ten; /metrics sums them all.
    assert sum(counts.values()) == 10, counts
    assert counts.get("miss") == 1 and counts.get("hit", 0) >= 8, counts


def test_purge_route_is_documented(probe: httpx.Client) -> None:
    spec = probe.get("/api/docs/openapi.json").json()
    op = spec["paths"]["/api/v1/cache/purge"]["post"]
    # Either credential: an API key or a staff access token (api/openapi.py).
    assert op["summary"] and op["security"] == [{"apiKey": []}, {"staffToken": []}]
    assert "content" in op["responses"]["202"]
