"""A deleted tenant's public pages through a real edge: gone within 2 s, by themselves
(the edge keeps a page 1 s, a 404 for 1 s; nothing purges nginx)."""

from __future__ import annotations

import time

import httpx

from infra.nginx import LocalNginx
from infra.redis import LocalRedis
from tests.factories import Factory
from tests.services import Database, run_cli


def test_deleted_tenants_public_pages_are_404_at_the_edge_within_2_s(
    db: Database,
    factory: Factory,
    edge: LocalNginx,
    edge_client: httpx.Client,
    redis_server: LocalRedis,
) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    pages = [
        f"/api/public/{tenant.slug}/campaigns",
        f"/api/public/{tenant.slug}/campaigns/{campaign['slug']}",
    ]
    for path in pages:
        edge_client.get(path)
        hit = edge_client.get(path)
        assert hit.status_code == 200 and hit.headers["X-Cache-Status"] == "HIT", path

    done = run_cli(db, "tenant", "delete", tenant.slug, "--yes", redis_url=redis_server.url)
    assert done.returncode == 0, done.stderr
    deleted = time.monotonic()

    gone: dict[str, float] = {}
    while len(gone) < len(pages) and time.monotonic() - deleted < 5:
        for path in pages:
            if path not in gone and edge_client.get(path).status_code == 404:
                gone[path] = time.monotonic() - deleted
        time.sleep(0.05)
    assert set(gone) == set(pages), gone
    assert max(gone.values()) <= 2.0, gone
    # And it stays gone (a 404 is kept 1 s, then asked again).
    time.sleep(1.1)
    assert all(edge_client.get(path).status_code == 404 for path in pages)
