"""A worker without PostgreSQL stays up and says so: not ready (503) but alive (200),
clean 503 problems for requests that need the database, and ready again by itself
when PostgreSQL comes back; both when it starts without it and when it loses it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from infra.postgres import free_port
from tests.services import ROOT, Database, api_env


@pytest.fixture(scope="module")
def own_db(workdir: Path) -> Iterator[Database]:
    database = Database(workdir / "pgloss")
    database.start()
    yield database
    database.stop()


def wait_for(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def status(client: httpx.Client, path: str) -> int:
    try:
        return client.get(path).status_code
    except httpx.TransportError:
        return 0


def assert_unavailable(client: httpx.Client) -> None:
    assert client.get("/health").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"].startswith("unavailable")
    r = client.get("/api/public/campaigns")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 503


def test_worker_starts_without_postgres_and_survives_losing_it(
    own_db: Database, workdir: Path
) -> None:
    own_db.pg.stop()
    port = free_port()
    env = api_env(own_db, CONECTADES_DB_CONNECT_TIMEOUT="1", CONECTADES_DB_POOL_MIN="2")
    with (workdir / "api-pgloss.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sanic", "api.server:create_app", "--factory",
             "--single-process", "--no-motd", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            # Starts and answers, without its database.
            wait_for(lambda: status(client, "/health") == 200, timeout=30)
            assert_unavailable(client)
            time.sleep(0.5)  # still up, not crash-looping
            assert proc.poll() is None

            own_db.pg.start(own_db.log)
            wait_for(lambda: status(client, "/health/ready") == 200)
            assert client.get("/api/public/campaigns").status_code == 200

            # Loses it while serving (pooled connections die), then gets it back.
            own_db.pg.stop()
            wait_for(lambda: status(client, "/health/ready") == 503)
            assert_unavailable(client)
            assert proc.poll() is None

            own_db.pg.start(own_db.log)
            wait_for(lambda: status(client, "/health/ready") == 200)
            assert client.get("/api/public/campaigns").status_code == 200
            assert proc.poll() is None
    finally:
        proc.terminate()
        try:
            # A stop's own bounds: the drain (5 s), Sanic's grace (10 s), the pool (5 s).
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()  # not left running into the next test's collections
            proc.wait(10)
            raise


def test_worker_with_an_unsafe_role_stops_loudly(own_db: Database, workdir: Path) -> None:
    # The owner role (superuser here): serving with it would bypass row-level security.
    env = api_env(own_db, CONECTADES_DATABASE_URL=own_db.admin_dsn)
    run = subprocess.run(
        [sys.executable, "-m", "sanic", "api.server:create_app", "--factory",
         "--single-process", "--no-motd", "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert "refusing to start" in output and "SUPERUSER" in output, output[-3000:]
