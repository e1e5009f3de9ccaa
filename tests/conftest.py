"""Session-wide real services: one PostgreSQL cluster and one API server.

Tests isolate themselves by creating their own tenants (see factories.py)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import httpx
import pytest

from infra.redis import LocalRedis
from tests.factories import Factory
from tests.services import ROOT, ApiServer, Database, api_env, start_redis


@pytest.fixture(scope="session")
def workdir() -> Iterator:
    path = ROOT / "var" / "test" / uuid.uuid4().hex[:8]
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def db(workdir) -> Iterator[Database]:
    database = Database(workdir)
    database.start()
    yield database
    database.stop()


@pytest.fixture(scope="session")
def api(db: Database, redis_server: LocalRedis, workdir) -> Iterator[ApiServer]:
    """The real app with the response cache on (the session Redis)."""
    server = ApiServer(
        api_env(db, CONECTADES_REDIS_URL=redis_server.url), workers=1, log=workdir / "api.log"
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as c:
        yield c


@pytest.fixture
def factory(db: Database, client: httpx.Client) -> Factory:
    return Factory(db, client)


@pytest.fixture(scope="session")
def redis_server(workdir) -> Iterator[LocalRedis]:
    """One project-local Redis for the session (tests/cache/ starts its own for
    kill/pause tests)."""
    server = start_redis(workdir)
    yield server
    server.stop()
