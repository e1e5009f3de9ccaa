"""`conectades cache purge --tenant` and `conectades cache stats`, run as operators run
them, against the session API and its Redis."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from infra.nginx import free_port
from infra.redis import LocalRedis
from tests.factories import Factory
from tests.services import ApiServer, Database, api_env, run_cli


def cli(db: Database, redis: LocalRedis, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(db, *args, redis_url=redis.url, timeout=120)


def x_cache(client: httpx.Client, headers: dict[str, str]) -> str:
    r = client.get("/api/v1/campaigns", headers=headers)
    assert r.status_code == 200, r.text
    return r.headers["x-cache"]


def test_cli_purge_drops_one_tenants_entries_only(
    client: httpx.Client, factory: Factory, db: Database, redis_server: LocalRedis
) -> None:
    a, b = factory.tenant(), factory.tenant()
    for t in (a, b):
        factory.campaign(t)
        x_cache(client, t.headers)
        assert x_cache(client, t.headers) == "HIT"
    done = cli(db, redis_server, "cache", "purge", "--tenant", a.slug)
    assert done.returncode == 0, done.stderr
    assert a.slug in done.stdout
    assert x_cache(client, a.headers) == "MISS"
    assert x_cache(client, b.headers) == "HIT"


def test_cli_purge_of_unknown_tenant_fails_clearly(db: Database, redis_server: LocalRedis) -> None:
    done = cli(db, redis_server, "cache", "purge", "--tenant", "no-such-tenant")
    assert done.returncode == 1
    assert "no tenant" in done.stderr and "Traceback" not in done.stderr


def test_cli_stats_counts_hits_and_misses_per_tenant(
    api: ApiServer,
    client: httpx.Client,
    factory: Factory,
    db: Database,
    redis_server: LocalRedis,
) -> None:
    tenant = factory.tenant()
    factory.campaign(tenant)
    assert x_cache(client, tenant.headers) == "MISS"
    assert x_cache(client, tenant.headers) == "HIT"
    assert x_cache(client, tenant.headers) == "HIT"
    done = cli(db, redis_server, "cache", "stats", "--api", api.url, "--json")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    rows = [r for r in stats["lookups"] if r["tenant"] == str(tenant.id)]
    assert rows == [
        {
            "tenant": str(tenant.id),
            "slug": tenant.slug,
            "resource": "campaigns",
            "hit": 2,
            "miss": 1,
            "bypass": 0,
            "error": 0,
            "hit_ratio": round(2 / 3, 4),
        }
    ]
    assert stats["redis"]["maxmemory_policy"] == "allkeys-lru"
    table = cli(db, redis_server, "cache", "stats", "--api", api.url)
    assert table.returncode == 0 and tenant.slug in table.stdout


def test_cli_stats_without_a_reachable_api_fails_clearly(
    db: Database, redis_server: LocalRedis
) -> None:
    done = cli(db, redis_server, "cache", "stats", "--api", "http://127.0.0.1:9")
    assert done.returncode == 1
    assert "cannot read" in done.stderr and "Traceback" not in done.stderr


def test_cli_warm_builds_an_organizations_public_reads(
    api: ApiServer, client: httpx.Client, factory: Factory, db: Database, redis_server: LocalRedis
) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    t, c = tenant.slug, campaign["slug"]
    done = cli(db, redis_server, "cache", "warm", "--api", api.url, "--tenant", t)
    assert done.returncode == 0, done.stderr
    # The campaign's page, donations and donor page; its organization's directory in
    # 4 orders, as JSON and as a donor page.
    assert "warmed 11 of 11 public reads (1 campaigns)" in done.stdout, done.stdout
    for path in (
        f"/api/public/{t}/campaigns",
        f"/api/public/{t}/campaigns?order=progress",
        f"/o/{t}?ordem=prazo",
        f"/api/public/{t}/campaigns/{c}",
        f"/api/public/{t}/campaigns/{c}/donations",
        f"/o/{t}/{c}",
    ):
        r = client.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["x-cache"] == "HIT", path
    # What nobody warmed is built by its first visitor, as before.
    assert client.get(f"/api/public/{t}/campaigns?q=arroz").headers["x-cache"] == "MISS"


def test_cli_warm_of_the_whole_directory_and_its_failures(
    api: ApiServer, client: httpx.Client, factory: Factory, db: Database, redis_server: LocalRedis
) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)  # the newest: first in the directory
    done = cli(db, redis_server, "cache", "warm", "--api", api.url, "--campaigns", "1", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # The cross-tenant directory in 12 orders and statuses, JSON and donor pages.
    assert result["campaigns"] == 1 and result["stored"] == result["reads"] == 3 + 8 + 24
    assert result["statuses"] == {"200": 35}
    # The directory in any parameter order (the cache keys them by name).
    paths = ("/api/public/campaigns?status=all&order=progress", f"/o/{tenant.slug}/")
    for path in (paths[0], paths[1] + campaign["slug"]):
        assert client.get(path).headers["x-cache"] == "HIT", path
    nobody = cli(db, redis_server, "cache", "warm", "--api", f"http://127.0.0.1:{free_port()}")
    assert nobody.returncode == 1
    assert "cannot list the campaigns" in nobody.stderr and "Traceback" not in nobody.stderr
    unknown = cli(db, redis_server, "cache", "warm", "--api", api.url, "--tenant", "no-such-org")
    assert unknown.returncode == 1 and "HTTP 404" in unknown.stderr, unknown.stderr


def test_cli_warm_says_when_the_api_stores_nothing(
    factory: Factory, db: Database, redis_server: LocalRedis, workdir: Path
) -> None:
    """An API without Redis answers every read (X-Cache: BYPASS) and stores none:
    the warm-up must not report them as warmed."""
    tenant = factory.tenant()
    factory.campaign(tenant)
    uncached = ApiServer(api_env(db), workers=1, log=workdir / "api-warm-nocache.log")
    uncached.start()
    try:
        done = cli(
            db, redis_server, "cache", "warm", "--api", uncached.url, "--tenant", tenant.slug
        )
    finally:
        uncached.stop()
    assert done.returncode == 1
    assert "warmed 0 of 11 public reads" in done.stdout, done.stdout
    assert "built without the cache (X-Cache: BYPASS)" in done.stderr, done.stderr
