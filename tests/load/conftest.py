"""The test stack with an edge in front (per-IP limits on, as in production) and a
small load fixture: a few tenants with keys, logins and published campaigns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.crypto import Keyring
from infra.nginx import LocalNginx
from infra.redis import LocalRedis
from load import fixture as fx
from load.stack import StackTarget
from tests.edge.conftest import hostport, start_edge
from tests.services import CONTACT_KEYS, ApiServer, Database


@pytest.fixture(scope="session")
def load_edge(api: ApiServer, workdir: Path) -> Iterator[LocalNginx]:
    server = start_edge(workdir / "load-edge", [hostport(api.url)])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def load_target(
    load_edge: LocalNginx, db: Database, api: ApiServer, redis_server: LocalRedis
) -> StackTarget:
    return StackTarget(
        base_url=load_edge.url,
        admin_dsn=db.admin_dsn,
        api_url=api.url,
        redis_url=redis_server.url,
        keyring=Keyring.from_env(CONTACT_KEYS),
    )


@pytest.fixture(scope="session")
def load_fixture(load_target: StackTarget) -> fx.Fixture:
    made = asyncio.run(
        fx.create_fixture(
            load_target.admin_dsn,
            keyring=load_target.contact_keys(),
            tenants=3,
            campaigns_per_tenant=15,
            donations=300,
            keys_per_tenant=2,
            seed=606,
        )
    )
    asyncio.run(fx.purge_cache(load_target.redis_url))
    return made
