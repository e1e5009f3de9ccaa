"""API-key lookups are memoized per worker for 5 s: a key revoked (or a tenant
suspended) is refused by EVERY worker within that bound. Measured on two workers.

The probe route /api/probe/whoami authenticates through the real path (memo
included) and names the worker that answered, so each worker is observed apart.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from infra.redis import LocalRedis
from tests.cache.conftest import PROBE_APP
from tests.factories import Factory, TenantCtx, bearer
from tests.services import ApiServer, Database, api_env

BOUND = 5.5  # the memo's 5 s TTL plus slack for a busy machine
WATCH = 8.0  # how long the workers are watched after the change
FANOUT = 8  # concurrent requests per round, on fresh connections, to reach both workers


@pytest.fixture(scope="module")
def two_workers(db: Database, redis_server: LocalRedis, workdir: Path) -> Iterator[ApiServer]:
    env = api_env(db, CONECTADES_REDIS_URL=redis_server.url)
    name = uuid.uuid4().hex[:8]
    server = ApiServer(env, workers=2, log=workdir / f"api-2w-{name}.log", app=PROBE_APP)
    server.start()
    yield server
    server.stop()


@dataclass
class Watch:
    """Per worker: when it last accepted the key, and what it answered after that."""

    last_ok: dict[int, float] = field(default_factory=dict)
    refused_after: dict[int, str] = field(default_factory=dict)


def whoami(url: str, key: str) -> tuple[float, int, str]:
    # A fresh connection each time, so the kernel may hand it to either worker.
    with httpx.Client(base_url=url, timeout=10, headers={"Connection": "close"}) as c:
        data = c.get("/api/probe/whoami", headers=bearer(key)).json()
    return time.monotonic(), int(data["pid"]), str(data["auth"])


def round_of(pool: ThreadPoolExecutor, url: str, key: str) -> list[tuple[float, int, str]]:
    return list(pool.map(lambda _: whoami(url, key), range(FANOUT)))


def warm_both(pool: ThreadPoolExecutor, url: str, key: str) -> set[int]:
    """Until both workers have accepted the key (so both hold it in their memo)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while len(seen) < 2:
        assert time.monotonic() < deadline, f"only workers {seen} answered"
        for _, pid, auth in round_of(pool, url, key):
            assert auth.startswith("ok"), auth
            seen.add(pid)
    # Once more right before the change: both memo entries are fresh.
    return seen


def measure(
    pool: ThreadPoolExecutor, url: str, key: str, change: Callable[[], None], refused: str
) -> dict[int, float]:
    """Apply `change`, then watch both workers; the delay of each worker (seconds
    from just before the change until its last acceptance, 0 if none)."""
    workers = warm_both(pool, url, key)
    watch = Watch()
    start = time.monotonic()
    change()
    while time.monotonic() - start < WATCH:
        for at, pid, auth in round_of(pool, url, key):
            if auth.startswith("ok"):
                watch.last_ok[pid] = max(at, watch.last_ok.get(pid, 0.0))
                watch.refused_after.pop(pid, None)
            else:
                assert auth == refused, auth
                if at > watch.last_ok.get(pid, 0.0):
                    watch.refused_after[pid] = auth
        time.sleep(0.05)
    assert set(watch.refused_after) == workers, f"not every worker refused: {watch}"
    return {pid: max(0.0, watch.last_ok.get(pid, start) - start) for pid in workers}


def report(what: str, delays: dict[int, float]) -> float:
    worst = max(delays.values())
    per_worker = ", ".join(f"pid {pid}: {d:.2f} s" for pid, d in sorted(delays.items()))
    print(f"\n{what}: refused on every worker after at most {worst:.2f} s ({per_worker})")
    return worst


def issue_key(client: httpx.Client, tenant: TenantCtx) -> dict[str, str]:
    r = client.post("/api/v1/keys", json={"scopes": ["read"]}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    issued: dict[str, str] = r.json()
    return issued


def test_revoked_key_is_refused_on_every_worker_within_5_seconds(
    two_workers: ApiServer, factory: Factory
) -> None:
    tenant = factory.tenant()
    with httpx.Client(base_url=two_workers.url, timeout=30) as client:
        issued = issue_key(client, tenant)

        def revoke() -> None:
            r = client.delete(f"/api/v1/keys/{issued['id']}", headers=tenant.headers)
            assert r.status_code == 204, r.text

        with ThreadPoolExecutor(FANOUT) as pool:
            delays = measure(pool, two_workers.url, issued["key"], revoke, refused="401")
    assert report("revoked key", delays) <= BOUND


def test_suspended_tenant_is_refused_on_every_worker_within_5_seconds(
    two_workers: ApiServer, factory: Factory, db: Database
) -> None:
    tenant = factory.tenant()

    def suspend() -> None:
        # As `conectades tenant suspend` does: straight in the database.
        db.execute("UPDATE tenant SET status = 'suspended' WHERE id = $1", tenant.id)

    with ThreadPoolExecutor(FANOUT) as pool:
        delays = measure(pool, two_workers.url, tenant.key, suspend, refused="403")
    assert report("suspended tenant", delays) <= BOUND


def test_new_key_works_at_once_on_every_worker(two_workers: ApiServer, factory: Factory) -> None:
    """A key issued through one worker works at once on both."""
    tenant = factory.tenant()
    with httpx.Client(base_url=two_workers.url, timeout=30) as client:
        issued = issue_key(client, tenant)
    with ThreadPoolExecutor(FANOUT) as pool:
        seen = warm_both(pool, two_workers.url, issued["key"])
    assert len(seen) == 2
