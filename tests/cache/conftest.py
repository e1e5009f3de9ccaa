"""Caches against a real redis-server: the session one, or a private one per test
for the kill/pause/restart cases (so they never disturb other tests)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from infra.redis import LocalRedis
from tenants.cache import CircuitBreaker, ResponseCache, create_client, prepare_metrics_dir
from tests.services import ROOT, ApiServer, Database, api_env, start_redis

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


class ProbeServer(ApiServer):
    """ApiServer running tests/cache/app.py (create_app + the cache pieces + probes)."""

    TARGET = "tests.cache.app:create_test_app"

    def start(self, timeout: float = 30) -> None:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sanic",
                self.TARGET,
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--no-motd",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.log_path:
            out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + "/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("API did not become ready")


@pytest.fixture(scope="module")
def probe_redis(workdir: Path) -> Iterator[LocalRedis]:
    server = start_redis(workdir, name=f"redis-probe-{uuid4().hex[:8]}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def probe_api(db: Database, probe_redis: LocalRedis, workdir: Path) -> Iterator[ProbeServer]:
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
    server = ProbeServer(env, workers=2, log=workdir / f"probe-api-{name}.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def probe(probe_api: ProbeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=probe_api.url, timeout=30) as c:
        yield c
