"""`conectades seed` on a running stack: its tenants stay out of the cross-tenant
directory unless --listed, and `seed --purge` removes what seeds created, only that."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from infra.redis import LocalRedis
from tests.admin.conftest import OwnDatabase
from tests.services import Database, run_cli

SEED = ("seed", "--tenants", "1", "--campaigns-per-tenant", "3", "--donations", "30")
TOTALS_EXACT = """
SELECT count(*) FROM item_totals t
JOIN (SELECT item_id, sum(quantity) FILTER (WHERE status IN ('confirmed', 'delivered')) AS c,
             count(*) AS n
      FROM donation GROUP BY item_id) d USING (item_id)
WHERE coalesce(t.confirmed_quantity + t.delivered_quantity, 0) <> coalesce(d.c, 0)
   OR t.pending_count + t.confirmed_count + t.delivered_count + t.cancelled_count <> d.n
"""


def seeded(db: Database, redis: LocalRedis, *args: str) -> dict[str, Any]:
    done = run_cli(db, *SEED, *args, "--json", redis_url=redis.url)
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def directory_slugs(client: httpx.Client, title: str) -> set[str]:
    """Tenant slugs of every directory campaign whose title matches, all pages."""
    slugs: set[str] = set()
    params: dict[str, Any] = {"q": title, "status": "all", "limit": 100}
    while True:
        page = client.get("/api/public/campaigns", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        slugs |= {c["tenant"]["slug"] for c in body["data"]}
        if not body["next_cursor"]:
            return slugs
        params["cursor"] = body["next_cursor"]


def published_title(db: Database, tenant_slug: str) -> str:
    title: str = db.fetchval(
        "SELECT c.title FROM campaign c JOIN tenant t ON t.id = c.tenant_id "
        "WHERE t.slug = $1 AND c.status = 'published' LIMIT 1",
        tenant_slug,
    )
    return title


def test_seeded_tenant_is_unlisted_but_has_its_own_pages(
    db: Database, redis_server: LocalRedis, client: httpx.Client
) -> None:
    tenant = seeded(db, redis_server)["tenants"][0]["slug"]
    assert tenant not in directory_slugs(client, published_title(db, tenant))
    own = client.get(f"/api/public/{tenant}/campaigns", params={"status": "all"})
    assert own.status_code == 200 and own.json()["data"], own.text
    slug = own.json()["data"][0]["slug"]
    assert client.get(f"/api/public/{tenant}/campaigns/{slug}").status_code == 200
    shown = json.loads(run_cli(db, "tenant", "show", tenant, "--json").stdout)
    assert shown["listed"] is False and shown["seeded"] is True


def test_seed_listed_tenant_is_in_the_directory(
    db: Database, redis_server: LocalRedis, client: httpx.Client
) -> None:
    tenant = seeded(db, redis_server, "--listed")["tenants"][0]["slug"]
    assert tenant in directory_slugs(client, published_title(db, tenant))


def test_seed_into_an_existing_tenant_keeps_it_listed(
    db: Database, redis_server: LocalRedis, client: httpx.Client
) -> None:
    # As ./start.sh seeds the demo tenant it created.
    slug = f"demo-{uuid.uuid4().hex[:8]}"
    assert run_cli(db, "tenant", "create", slug, "--name", "Demo").returncode == 0
    done = run_cli(db, "seed", "--tenant", slug, "--donations", "20", redis_url=redis_server.url)
    assert done.returncode == 0, done.stderr
    assert slug in directory_slugs(client, published_title(db, slug))


def test_seed_purge_removes_what_seeds_created_and_nothing_else(
    db: Database, own_database: Callable[..., OwnDatabase]
) -> None:
    own = own_database()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = run_cli(db, *args, extra_env=own.env)
        assert done.returncode == 0, done.stderr
        return done

    cli("tenant", "create", "ong-real", "--name", "ONG Real")
    cli("key", "issue", "--tenant", "ong-real")
    real = own.fetchval(db, "SELECT id FROM tenant WHERE slug = 'ong-real'")
    # The tenant's own campaign with a donation, not from a seed.
    campaign = own.fetchval(
        db,
        "INSERT INTO campaign (tenant_id, slug, title, status) "
        "VALUES ($1, 'propria', 'Própria', 'published') RETURNING id",
        real,
    )
    item = own.fetchval(
        db,
        "INSERT INTO campaign_item (tenant_id, campaign_id, name, unit, quantity_requested) "
        "VALUES ($1, $2, 'Arroz', 'kg', 100) RETURNING id",
        real,
        campaign,
    )
    own.fetchval(
        db,
        "INSERT INTO donation (tenant_id, campaign_id, item_id, quantity, status) "
        "VALUES ($1, $2, $3, 7, 'confirmed') RETURNING id",
        real,
        campaign,
        item,
    )
    cli("seed", "--tenant", "ong-real", "--campaigns-per-tenant", "4", "--donations", "40")
    cli("seed", "--tenants", "2", "--campaigns-per-tenant", "3", "--donations", "60", "--listed")
    cli("seed", "--tenants", "1", "--campaigns-per-tenant", "2", "--donations", "10")
    assert own.fetchval(db, "SELECT count(*) FROM tenant WHERE seeded") == 3

    done = cli("seed", "--purge", "--json")

    removed = json.loads(done.stdout)
    assert len(removed["tenants"]) == 3
    assert removed["rows"]["donation"] == 40 + 60 + 10
    assert own.fetchval(db, "SELECT count(*) FROM tenant") == 1
    assert own.fetchval(db, "SELECT count(*) FROM campaign WHERE seeded") == 0
    rows = own.fetch(db, "SELECT id FROM campaign")
    assert [r["id"] for r in rows] == [campaign]
    assert own.fetchval(db, "SELECT count(*) FROM campaign_item") == 1
    assert own.fetchval(db, "SELECT count(*) FROM donation") == 1
    assert own.fetchval(db, "SELECT count(*) FROM api_key") == 1
    assert own.fetchval(db, "SELECT count(*) FROM item_total_slot WHERE item_id <> $1", item) == 0
    assert own.fetchval(db, TOTALS_EXACT) == 0
    assert (
        own.fetchval(db, "SELECT confirmed_quantity FROM item_totals WHERE item_id = $1", item) == 7
    )
    audit = [json.loads(x) for x in done.stderr.splitlines() if x.startswith('{"audit"')]
    assert [a["audit"] for a in audit] == ["seed.purge"]
    # Nothing left to purge: a second run removes nothing.
    again = json.loads(cli("seed", "--purge", "--json").stdout)
    assert again["tenants"] == [] and not any(again["rows"].values())
