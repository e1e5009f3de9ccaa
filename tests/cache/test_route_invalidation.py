"""The response cache through the real routes: hit after miss, every dependent read
fresh right after each kind of write, per-tenant purge, tenant isolation, and
Redis killed mid-test.

The reference for "fresh" is a second API process on the same database with the
cache disabled (`truth`): right after a write, every cached read must answer the
same bytes as it does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.cache import DIRECTORY_TTL, PUBLIC_CACHE_CONTROL, PUBLIC_LAG
from infra.redis import LocalRedis
from tests.factories import Factory, TenantCtx
from tests.services import ApiServer, Database, api_env, start_redis

Read = tuple[str, dict[str, str]]


@pytest.fixture(scope="module")
def truth_api(db: Database, workdir: Path) -> Iterator[ApiServer]:
    """The same app without a cache: every read straight from PostgreSQL."""
    server = ApiServer(api_env(db), workers=1, log=workdir / "api-nocache.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def truth(truth_api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=truth_api.url, timeout=30) as c:
        yield c


def get(client: httpx.Client, read: Read) -> httpx.Response:
    path, headers = read
    r = client.get(path, headers=headers)
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
    return r


def ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    data: dict[str, Any] = r.json()
    return data


@dataclass
class Scene:
    """A tenant with a published campaign of two items (the first with a confirmed
    and a pending donation), searchable in the directory by `tag`."""

    tenant: TenantCtx
    campaign: dict[str, Any]
    tag: str
    confirmed: dict[str, Any]
    pending: dict[str, Any]

    @property
    def cid(self) -> str:
        return str(self.campaign["id"])

    def reads(self) -> dict[str, Read]:
        h = self.tenant.headers
        page = f"/api/public/{self.tenant.slug}/campaigns/{self.campaign['slug']}"
        return {
            "detail": (f"/api/v1/campaigns/{self.cid}", h),
            "list": ("/api/v1/campaigns", h),
            "list_published": ("/api/v1/campaigns?status=published", h),
            "list_search": (f"/api/v1/campaigns?q={self.tag}&limit=5", h),
            "campaign_donations": (f"/api/v1/campaigns/{self.cid}/donations", h),
            "donations_filtered": (f"/api/v1/donations?campaign_id={self.cid}&status=pending", h),
            "donation": (f"/api/v1/donations/{self.confirmed['id']}", h),
            "public_page": (page, {}),
            "public_donations": (f"{page}/donations", {}),
            "tenant_directory": (f"/api/public/{self.tenant.slug}/campaigns", {}),
            "directory": (f"/api/public/campaigns?q={self.tag}", {}),
            "directory_by_progress": (
                f"/api/public/campaigns?q={self.tag}&order=progress&status=active",
                {},
            ),
            "legacy_directory": (f"/api/campanhas/listar/?busca={self.tag}", {}),
        }


def make_scene(factory: Factory, client: httpx.Client) -> Scene:
    tenant = factory.tenant()
    tag = f"tag{uuid.uuid4().hex[:10]}"
    campaign = factory.campaign(
        tenant,
        title=f"Inverno {tag}",
        items=[
            {"name": "Cobertor", "unit": "unit", "quantity_requested": 40},
            {"name": "Arroz", "unit": "kg", "quantity_requested": 80},
        ],
    )
    confirmed = factory.donation(tenant, campaign, quantity=10)
    ok(client.post(f"/api/v1/donations/{confirmed['id']}/confirm", headers=tenant.headers))
    pending = factory.donation(tenant, campaign, quantity=3)
    return Scene(tenant, campaign, tag, confirmed, pending)


def warm(client: httpx.Client, reads: dict[str, Read]) -> dict[str, bytes]:
    """Every read cached: the second answer is a HIT with the first's bytes."""
    bodies = {}
    for name, read in reads.items():
        first = get(client, read)
        second = get(client, read)
        assert second.headers["x-cache"] == "HIT", (name, first.headers["x-cache"])
        assert second.content == first.content, name
        bodies[name] = second.content
    return bodies


# -- the writes ---------------------------------------------------------------------------


def patch_campaign(s: Scene, c: httpx.Client) -> None:
    body = {"title": f"Inverno {s.tag} (novo título)", "location": "Zona Norte"}
    ok(c.patch(f"/api/v1/campaigns/{s.cid}", json=body, headers=s.tenant.headers))


def add_item(s: Scene, c: httpx.Client) -> None:
    body = {"name": "Feijão", "unit": "kg", "quantity_requested": 25}
    ok(c.post(f"/api/v1/campaigns/{s.cid}/items", json=body, headers=s.tenant.headers), 201)


def patch_item(s: Scene, c: httpx.Client) -> None:
    item = s.campaign["items"][0]["id"]
    body = {"quantity_requested": 20, "name": "Cobertor de casal"}
    ok(c.patch(f"/api/v1/campaigns/{s.cid}/items/{item}", json=body, headers=s.tenant.headers))


def delete_item(s: Scene, c: httpx.Client) -> None:
    item = s.campaign["items"][1]["id"]  # no donations
    r = c.delete(f"/api/v1/campaigns/{s.cid}/items/{item}", headers=s.tenant.headers)
    assert r.status_code == 204, r.text


def create_donation(s: Scene, c: httpx.Client) -> None:
    body = {"item_id": s.campaign["items"][1]["id"], "quantity": 7, "donor_name": "Rita"}
    ok(c.post(f"/api/v1/campaigns/{s.cid}/donations", json=body, headers=s.tenant.headers), 201)


def confirm_donation(s: Scene, c: httpx.Client) -> None:
    ok(c.post(f"/api/v1/donations/{s.pending['id']}/confirm", headers=s.tenant.headers))


def cancel_donation(s: Scene, c: httpx.Client) -> None:
    ok(c.post(f"/api/v1/donations/{s.confirmed['id']}/cancel", headers=s.tenant.headers))


def public_pledge(s: Scene, c: httpx.Client) -> None:
    path = f"/api/public/{s.tenant.slug}/campaigns/{s.campaign['slug']}/donations"
    body = {
        "item_id": s.campaign["items"][1]["id"],
        "quantity": 4,
        "donor_name": "Leo",
        "donor_contact": "leo@example.org",
    }
    ok(c.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}), 201)


CAMPAIGN_READS = {
    "detail",
    "list",
    "list_published",
    "list_search",
    "public_page",
    "tenant_directory",
    "directory",
    "directory_by_progress",
    "legacy_directory",
}
ITEM_READS = {"detail", "list", "list_published", "list_search", "public_page"}
PROGRESS_READS = {"tenant_directory", "directory", "directory_by_progress", "legacy_directory"}
# The cross-tenant scope: dropped only by writes that change what it shows.
DIRECTORY_READS = {"directory", "directory_by_progress", "legacy_directory"}

# The organization's public reads: a donation only marks them (PUBLIC_LAG).
PUBLIC_READS = {"public_page", "public_donations", "tenant_directory"}
# Donations reach these within PUBLIC_LAG (DIRECTORY_TTL for the cross-tenant ones):
# test_a_donation_reaches_the_public_reads_within_their_lag.
DONATION_WRITES = {"donation create", "donation confirm", "donation cancel", "public pledge"}
LAGGING_READS = PUBLIC_READS | DIRECTORY_READS

# Each write and the reads whose body it must change (all others must stay equal to
# the uncached answer too, changed or not).
WRITES: dict[str, tuple[Callable[[Scene, httpx.Client], None], set[str]]] = {
    "campaign patch": (patch_campaign, CAMPAIGN_READS),
    "item add": (add_item, ITEM_READS | PROGRESS_READS),
    "item patch": (patch_item, ITEM_READS | PROGRESS_READS | {"public_donations"}),
    "item delete": (delete_item, ITEM_READS | PROGRESS_READS),
    "donation create": (
        create_donation,
        ITEM_READS | {"campaign_donations", "donations_filtered", "public_donations"},
    ),
    "donation confirm": (
        confirm_donation,
        ITEM_READS
        | PROGRESS_READS
        | {"campaign_donations", "donations_filtered", "public_donations"},
    ),
    "donation cancel": (
        cancel_donation,
        ITEM_READS | PROGRESS_READS | {"campaign_donations", "donation", "public_donations"},
    ),
    "public pledge": (
        public_pledge,
        ITEM_READS | {"campaign_donations", "donations_filtered", "public_donations"},
    ),
}


# -- hit after miss -----------------------------------------------------------------------


def test_campaign_detail_and_list_are_miss_then_hit(client: httpx.Client, factory: Factory) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    for path in (
        f"/api/v1/campaigns/{campaign['id']}",
        "/api/v1/campaigns",
        "/api/v1/campaigns?status=published&limit=5",
    ):
        first = get(client, (path, tenant.headers))
        second = get(client, (path, tenant.headers))
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT"), path
        assert second.content == first.content
        assert second.headers["cache-control"] == "private, no-store"
        assert second.headers["content-type"] == "application/json"


def test_query_parameter_order_does_not_split_the_cache(
    client: httpx.Client, factory: Factory
) -> None:
    tenant = factory.tenant()
    factory.campaign(tenant)
    first = get(client, ("/api/v1/campaigns?status=published&limit=5", tenant.headers))
    again = get(client, ("/api/v1/campaigns?limit=5&status=published", tenant.headers))
    assert first.headers["x-cache"] == "MISS"
    assert again.headers["x-cache"] == "HIT" and again.content == first.content


def test_errors_are_not_cached(client: httpx.Client, factory: Factory) -> None:
    tenant = factory.tenant()
    missing = f"/api/v1/campaigns/{uuid.uuid4()}"
    for _ in range(2):
        r = client.get(missing, headers=tenant.headers)
        assert r.status_code == 404 and r.headers["x-cache"] == "BYPASS"
    bad = client.get("/api/v1/campaigns?status=bogus", headers=tenant.headers)
    assert bad.status_code == 422 and bad.headers["x-cache"] == "BYPASS"


def test_writes_are_never_cache_hits(client: httpx.Client, factory: Factory) -> None:
    tenant = factory.tenant()
    r = client.post(
        "/api/v1/campaigns", json={"slug": "nova", "title": "Nova"}, headers=tenant.headers
    )
    assert r.status_code == 201 and r.headers["x-cache"] == "BYPASS"
    assert r.headers["cache-control"] == "private, no-store"


def test_public_reads_are_miss_then_hit_and_publicly_cacheable(
    client: httpx.Client, factory: Factory
) -> None:
    scene = make_scene(factory, client)
    reads = scene.reads()
    for name in ("public_page", "public_donations", "tenant_directory", "directory"):
        first, second = get(client, reads[name]), get(client, reads[name])
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT"), name
        assert second.headers["cache-control"] == PUBLIC_CACHE_CONTROL, name


# -- every dependent read is fresh after each write -----------------------------------------


@pytest.mark.parametrize("write", list(WRITES))
def test_every_dependent_read_is_fresh_right_after_the_write(
    client: httpx.Client, truth: httpx.Client, factory: Factory, write: str
) -> None:
    scene = make_scene(factory, client)
    reads = scene.reads()
    before = warm(client, reads)
    do_write, changed = WRITES[write]
    do_write(scene, client)
    later = LAGGING_READS if write in DONATION_WRITES else set()
    for name, read in reads.items():
        if name in later:
            continue  # see test_a_donation_reaches_the_public_reads_within_their_lag
        cached = get(client, read)
        fresh = get(truth, read)
        assert fresh.headers["x-cache"] == "BYPASS"
        assert cached.content == fresh.content, (write, name)
        if name in changed:
            assert cached.content != before[name], f"{write} did not change {name}"
        if name in changed or name not in DIRECTORY_READS:
            # Every entry of the tenant is dropped; the directory's when it changed.
            assert cached.headers["x-cache"] == "MISS", (write, name)
        # ...and the rebuilt entry is what the next reader gets.
        again = get(client, read)
        assert again.headers["x-cache"] == "HIT" and again.content == fresh.content


def test_campaign_delete_makes_detail_404_and_leaves_lists(
    client: httpx.Client, factory: Factory
) -> None:
    tenant = factory.tenant()
    tag = f"tag{uuid.uuid4().hex[:10]}"
    campaign = factory.campaign(tenant, title=f"Apagar {tag}")
    detail = (f"/api/v1/campaigns/{campaign['id']}", tenant.headers)
    listing = ("/api/v1/campaigns", tenant.headers)
    directory: Read = (f"/api/public/campaigns?q={tag}", {})
    warm(client, {"detail": detail, "list": listing, "directory": directory})
    r = client.delete(detail[0], headers=tenant.headers)
    assert r.status_code == 204
    assert client.get(detail[0], headers=tenant.headers).status_code == 404
    assert get(client, listing).json()["data"] == []
    assert get(client, directory).json()["data"] == []


def test_read_right_after_each_of_many_writes_sees_it(
    client: httpx.Client, factory: Factory
) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    path = f"/api/v1/campaigns/{campaign['id']}"
    for n in range(15):
        title = f"Título {n}"
        ok(client.patch(path, json={"title": title}, headers=tenant.headers))
        assert get(client, (path, tenant.headers)).json()["title"] == title
        assert get(client, (path, tenant.headers)).headers["x-cache"] == "HIT"


@pytest.mark.parametrize(
    "write",
    ["donation create", "donation confirm", "donation cancel", "public pledge", "campaign patch"],
)
def test_a_donation_write_leaves_the_tenants_other_campaigns_cached(
    client: httpx.Client, truth: httpx.Client, factory: Factory, write: str
) -> None:
    """Donations and campaign edits change their campaign and the lists, so the other
    campaigns' pages stay HIT (the load's pledges and edits would otherwise empty a
    tenant's cache each time); the organization's directory only changes with
    progress or campaigns (not with a pledge)."""
    scene = make_scene(factory, client)
    other = factory.campaign(scene.tenant, title=f"Outra {scene.tag}")
    page = f"/api/public/{scene.tenant.slug}/campaigns/{other['slug']}"
    untouched: dict[str, Read] = {
        "other_detail": (f"/api/v1/campaigns/{other['id']}", scene.tenant.headers),
        "other_donations": (f"/api/v1/campaigns/{other['id']}/donations", scene.tenant.headers),
        "other_public_page": (page, {}),
        "other_public_donations": (f"{page}/donations", {}),
    }
    reads = {**scene.reads(), **untouched}
    warm(client, reads)
    do_write, changed = WRITES[write]
    do_write(scene, client)
    for name, read in reads.items():
        cached = get(client, read)
        if write in DONATION_WRITES and name in LAGGING_READS:
            continue  # see test_a_donation_reaches_the_public_reads_within_their_lag
        assert cached.content == get(truth, read).content, (write, name)
        if name in untouched:
            assert cached.headers["x-cache"] == "HIT", (write, name)
        elif name in changed or name not in DIRECTORY_READS:
            assert cached.headers["x-cache"] == "MISS", (write, name)


@pytest.mark.parametrize("write", sorted(DONATION_WRITES))
def test_a_donation_reaches_the_public_reads_within_their_lag(
    client: httpx.Client, truth: httpx.Client, factory: Factory, write: str
) -> None:
    """A donation drops no public read: the organization's are marked and rebuilt
    once the mark is PUBLIC_LAG seconds old, the cross-tenant directory's expire
    (DIRECTORY_TTL). Until then a read answers the body from before the donation;
    after that, the new totals (the partner API's reads are fresh at once: above)."""
    scene = make_scene(factory, client)
    reads = {name: scene.reads()[name] for name in LAGGING_READS}
    before = warm(client, reads)
    do_write, changed = WRITES[write]
    do_write(scene, client)
    written = time.monotonic()
    for name, read in reads.items():
        cached = get(client, read)
        if name in PUBLIC_READS and time.monotonic() - written < PUBLIC_LAG / 2:
            assert cached.headers["x-cache"] == "HIT", (write, name)
        if cached.headers["x-cache"] == "HIT":
            assert cached.content == before[name], (write, name)
    bound = max(PUBLIC_LAG, DIRECTORY_TTL) + 1.0  # Redis expires keys within a second
    for name, read in reads.items():
        fresh = get(truth, read).content
        if name in changed:
            assert fresh != before[name], f"{write} did not change {name}"
        while (cached := get(client, read)).content != fresh:
            assert time.monotonic() < written + bound, f"{name} still old {bound} s after {write}"
            time.sleep(0.1)


def test_a_campaign_rename_drops_the_old_slugs_pages(
    client: httpx.Client, truth: httpx.Client, factory: Factory
) -> None:
    """A new slug invalidates the whole tenant: the pages cached under the old slug
    must not outlive it."""
    scene = make_scene(factory, client)
    reads = scene.reads()
    old_page, old_donations = reads["public_page"], reads["public_donations"]
    warm(client, {"public_page": old_page, "public_donations": old_donations})
    new_slug = f"renomeada-{uuid.uuid4().hex[:8]}"
    ok(
        client.patch(
            f"/api/v1/campaigns/{scene.cid}",
            json={"slug": new_slug},
            headers=scene.tenant.headers,
        )
    )
    for path, _ in (old_page, old_donations):
        assert client.get(path).status_code == 404, path
        assert truth.get(path).status_code == 404, path
    page = f"/api/public/{scene.tenant.slug}/campaigns/{new_slug}"
    for path in (page, f"{page}/donations"):
        cached = get(client, (path, {}))
        assert cached.content == get(truth, (path, {})).content, path


# -- purge and isolation ----------------------------------------------------------------------


def test_purge_drops_this_tenants_entries_and_leaves_the_others_hit(
    client: httpx.Client, factory: Factory
) -> None:
    a, b = make_scene(factory, client), make_scene(factory, client)
    reads_a, reads_b = a.reads(), b.reads()
    tenant_scoped = [n for n in reads_a if n not in DIRECTORY_READS]
    warm(client, reads_a)
    warm(client, reads_b)
    r = client.post("/api/v1/cache/purge", headers=a.tenant.headers)
    assert r.status_code == 202 and r.json() == {"purged": True}
    for name in tenant_scoped:
        assert get(client, reads_a[name]).headers["x-cache"] == "MISS", name
        assert get(client, reads_b[name]).headers["x-cache"] == "HIT", name


def test_tenant_purge_leaves_the_shared_directory_cached(
    client: httpx.Client, factory: Factory
) -> None:
    """Any tenant may purge its own entries; the cross-tenant directory (its costly
    order=progress page included) is shared, so a purge must not empty it."""
    a, b = make_scene(factory, client), make_scene(factory, client)
    shared = {name: read for name, read in b.reads().items() if name in DIRECTORY_READS}
    warm(client, shared)
    for _ in range(3):
        r = client.post("/api/v1/cache/purge", headers=a.tenant.headers)
        assert r.status_code == 202 and r.json() == {"purged": True}
        for name, read in shared.items():
            assert get(client, read).headers["x-cache"] == "HIT", name


def test_purge_needs_write_permission(client: httpx.Client, factory: Factory) -> None:
    tenant = factory.tenant(scopes=("read",))
    assert client.post("/api/v1/cache/purge", headers=tenant.headers).status_code == 403
    assert client.post("/api/v1/cache/purge").status_code == 401


def test_tenant_never_receives_another_tenants_cached_body(
    client: httpx.Client, factory: Factory
) -> None:
    a, b = make_scene(factory, client), make_scene(factory, client)
    same_paths = ["/api/v1/campaigns", "/api/v1/campaigns?status=published", "/api/v1/donations"]
    for path in same_paths:
        body_b = get(client, (path, b.tenant.headers))
        assert get(client, (path, b.tenant.headers)).headers["x-cache"] == "HIT"
        body_a = get(client, (path, a.tenant.headers))
        assert body_a.headers["x-cache"] == "MISS", path
        assert body_a.content != body_b.content
        assert b.cid not in body_a.text and a.cid in body_a.text
    # B's detail is cached; A asking for it by id still gets 404.
    detail = f"/api/v1/campaigns/{b.cid}"
    assert get(client, (detail, b.tenant.headers)).headers["x-cache"] in ("MISS", "HIT")
    assert get(client, (detail, b.tenant.headers)).headers["x-cache"] == "HIT"
    other = client.get(detail, headers=a.tenant.headers)
    assert other.status_code == 404 and b.cid not in other.text


def test_read_only_key_sees_the_same_cached_body_but_cannot_write(
    client: httpx.Client, factory: Factory
) -> None:
    scene = make_scene(factory, client)
    reader = {"Authorization": f"Bearer {factory.key(scene.tenant, ('read',))}"}
    path = f"/api/v1/campaigns/{scene.cid}"
    first = get(client, (path, scene.tenant.headers))
    shared = get(client, (path, reader))
    assert shared.headers["x-cache"] == "HIT" and shared.content == first.content
    # Authorization is checked before the cache: no key, no body.
    assert client.get(path).status_code == 401
    keyless = factory.key(scene.tenant, ("keys",))
    assert client.get(path, headers={"Authorization": f"Bearer {keyless}"}).status_code == 403


# -- Redis killed mid-test ----------------------------------------------------------------------


@pytest.fixture
def own_redis(workdir: Path) -> Iterator[LocalRedis]:
    server = start_redis(workdir, name=f"redis-kill-{uuid.uuid4().hex[:8]}")
    yield server
    server.stop()


@pytest.fixture
def own_api(db: Database, own_redis: LocalRedis, workdir: Path) -> Iterator[httpx.Client]:
    env = api_env(
        db,
        CONECTADES_REDIS_URL=own_redis.url,
        CONECTADES_CACHE_CONNECT_TIMEOUT="0.2",
        CONECTADES_CACHE_TIMEOUT="0.5",
        CONECTADES_CACHE_BREAKER_COOLDOWN="0.5",
    )
    server = ApiServer(env, workers=1, log=workdir / f"api-kill-{uuid.uuid4().hex[:8]}.log")
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
    server.stop()


def wait_for_hit(client: httpx.Client, read: Read, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = get(client, read)
        if r.headers["x-cache"] == "HIT":
            return r
        assert time.monotonic() < deadline, "the cache did not resume"
        time.sleep(0.1)


def test_redis_killed_mid_test_serves_the_same_bodies_then_resumes(
    own_api: httpx.Client, own_redis: LocalRedis, truth: httpx.Client, factory: Factory
) -> None:
    client = own_api
    scene = make_scene(factory, client)
    reads = scene.reads()
    before = warm(client, reads)
    assert client.get("/health/ready").json()["checks"]["redis"] == "ok"

    own_redis.kill()
    for name, read in reads.items():
        r = get(client, read)
        assert r.headers["x-cache"] == "BYPASS", name
        assert r.content == before[name], name
    ready = client.get("/health/ready")
    assert ready.status_code == 200  # fail-open: Redis never makes the API unready
    assert ready.json()["checks"]["redis"] == "unavailable"

    # A write while Redis is down is served and seen at once (from PostgreSQL).
    patch_campaign(scene, client)
    detail = get(client, reads["detail"])
    assert detail.headers["x-cache"] == "BYPASS"
    assert detail.json()["title"].endswith("(novo título)")

    own_redis.start()
    for name, read in reads.items():
        hit = wait_for_hit(client, read)
        assert hit.content == get(truth, read).content, name
    assert client.get("/health/ready").json()["checks"]["redis"] == "ok"


def test_cache_disabled_answers_bypass_and_reports_it(
    truth: httpx.Client, factory: Factory
) -> None:
    tenant = factory.tenant()
    r = truth.get("/api/v1/campaigns", headers=tenant.headers)
    assert r.status_code == 200 and r.headers["x-cache"] == "BYPASS"
    ready = truth.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "disabled"
