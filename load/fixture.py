"""Load-test data: tenants with several API keys and a staff login each, their
campaigns (the `conectades seed` generator), and the targets file k6 reads.

The fixture (`var/load/fixture.json`, mode 0600) keeps the keys and the password,
which exist nowhere else in clear. The SQL here reads what the seed wrote; it is
test-harness SQL, kept beside its only user.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from db.crypto import Keyring
from db.seed import SeedPlan, run_seed
from tenants import provisioning
from tenants.passwords import hash_password

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURE = ROOT / "var" / "load" / "fixture.json"
USERNAME = "loadtest"

# Published campaigns that take pledges now, with their items, for the given tenants.
SELECT_TARGETS = """
SELECT c.id, c.slug, t.slug AS tenant_slug, c.categories, c.location,
       array_agg(i.id ORDER BY i.created_at, i.id) AS items
FROM campaign c
JOIN tenant t ON t.id = c.tenant_id
JOIN campaign_item i ON i.campaign_id = c.id
WHERE c.tenant_id = ANY($1::uuid[])
  AND t.status = 'active'
  AND c.status = 'published'
  AND (c.starts_at IS NULL OR c.starts_at <= now())
  AND (c.ends_at IS NULL OR c.ends_at > now() + interval '1 hour')
GROUP BY c.id, t.slug
ORDER BY c.id
"""


@dataclass
class LoadTenant:
    id: str
    slug: str
    name: str
    keys: list[str]
    username: str
    password: str


@dataclass
class Fixture:
    tenants: list[LoadTenant] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"tenants": [asdict(t) for t in self.tenants]}, indent=1))
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> Fixture:
        raw = json.loads(path.read_text())
        return cls(tenants=[LoadTenant(**t) for t in raw["tenants"]])


async def create_fixture(
    admin_dsn: str,
    *,
    keyring: Keyring,
    tenants: int = 10,
    campaigns_per_tenant: int = 60,
    donations: int = 20_000,
    keys_per_tenant: int = 3,
    seed: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Fixture:
    """New tenants with campaigns and donations, keys and a staff login each."""
    password = secrets.token_urlsafe(12)
    pw_hash = hash_password(password)
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        plan = SeedPlan(
            tenants=tenants,
            campaigns_per_tenant=campaigns_per_tenant,
            donations=donations,
            seed=seed,
            listed=True,  # the scenarios read the cross-tenant directory
        )
        result = await run_seed(conn, plan, keyring, progress)
        fixture = Fixture()
        async with conn.transaction():
            for t in result.tenants:
                tenant_id = UUID(t["id"])
                issued = await provisioning.issue_keys(
                    conn,
                    tenant_id,
                    scopes=["read", "write"],
                    count=keys_per_tenant,
                    label="load test",
                )
                await provisioning.staff_login(
                    conn, tenant_id, username=USERNAME, role="editor", password_hash=pw_hash
                )
                fixture.tenants.append(
                    LoadTenant(
                        id=t["id"],
                        slug=t["slug"],
                        name=t["name"],
                        keys=issued,
                        username=USERNAME,
                        password=password,
                    )
                )
    finally:
        await conn.close()
    return fixture


async def purge_cache(redis_url: str | None) -> None:
    """New campaigns must show in the cached directory at once (as `conectades seed`)."""
    if not redis_url:
        return
    from cache import CircuitBreaker, ResponseCache, create_client

    client = create_client(redis_url, connect_timeout=2.0, timeout=2.0)
    cache = ResponseCache(client, timeout=4.0, breaker=CircuitBreaker(threshold=1_000_000))
    try:
        await cache.purge_all()
    finally:
        await cache.close()


# Words from the seed's titles and descriptions: searches that find something.
SEARCH_WORDS = ("cestas", "agasalho", "natal", "material escolar", "cobertores", "brinquedos")


async def build_targets(
    admin_dsn: str, fixture: Fixture, *, max_campaigns: int = 2000, shuffle_seed: int = 7
) -> dict[str, Any]:
    """What k6 reads: tenants (keys, login), campaigns (shuffled, so the popular
    ones are spread over tenants), directory filters that exist in the data."""
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        rows = await conn.fetch(SELECT_TARGETS, [UUID(t.id) for t in fixture.tenants])
    finally:
        await conn.close()
    if not rows:
        raise ValueError("no published campaign that takes pledges among the fixture's tenants")
    rows = list(rows)
    random.Random(shuffle_seed).shuffle(rows)
    rows = rows[:max_campaigns]
    index = {t.slug: n for n, t in enumerate(fixture.tenants)}
    campaigns = [
        {
            "id": str(r["id"]),
            "slug": r["slug"],
            "tenant": r["tenant_slug"],
            "t": index[r["tenant_slug"]],
            "items": [str(i) for i in r["items"]],
        }
        for r in rows
    ]
    by_tenant: list[list[int]] = [[] for _ in fixture.tenants]
    for n, c in enumerate(campaigns):
        by_tenant[c["t"]].append(n)
    # A tenant without a campaign that takes pledges cannot do partner work: drop it.
    working = [n for n, own in enumerate(by_tenant) if own]
    remap = {old: new for new, old in enumerate(working)}
    for c in campaigns:
        c["t"] = remap[c["t"]]
    categories = sorted({cat for r in rows for cat in r["categories"]})
    locations = sorted({r["location"] for r in rows if r["location"]})[:8]
    return {
        "tenants": [
            {
                "slug": fixture.tenants[n].slug,
                "keys": fixture.tenants[n].keys,
                "username": fixture.tenants[n].username,
                "password": fixture.tenants[n].password,
            }
            for n in working
        ],
        "campaigns": campaigns,
        "meta": {
            "by_tenant": [by_tenant[n] for n in working],
            "directory": {
                "categories": categories,
                "locations": locations,
                "words": list(SEARCH_WORDS),
            },
        },
    }


def seed(
    admin_dsn: str,
    path: Path = DEFAULT_FIXTURE,
    *,
    keyring: Keyring,
    redis_url: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    **plan: Any,
) -> Fixture:
    """Create the fixture, save it to `path` and drop the cached directory."""
    fixture = asyncio.run(create_fixture(admin_dsn, keyring=keyring, progress=progress, **plan))
    fixture.save(path)
    asyncio.run(purge_cache(redis_url))
    return fixture
