"""SIGTERM to an API worker under load through the real edge: no request fails.

Two API servers behind Nginx (upstream keepalive, as in production); clients read
and write donations (with Idempotency-Key) through the edge while one server gets
SIGTERM, as Kubernetes or `docker stop` sends it. The draining worker turns
readiness off, answers with `Connection: close`, finishes what is in flight and
exits; Nginx moves on to the other server. Every request must succeed and every
acknowledged donation must exist exactly once.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.nginx import LocalNginx
from tests.edge.conftest import hostport, start_edge
from tests.factories import Factory
from tests.services import ApiServer, Database, api_env

DRAIN_TIMEOUT = 3.0
# The edge closes idle upstream connections before a draining worker would stop
# waiting for them (see api/drain.py).
EDGE_KEEPALIVE_TIMEOUT = "1s"


# The victim runs one worker, or two sharing one listening socket (as in
# production, WEB_CONCURRENCY): both must drain without failing a request.
@pytest.fixture(params=[1, 2], ids=["victim-1-worker", "victim-2-workers"])
def servers(
    request: pytest.FixtureRequest, db: Database, workdir: Path
) -> Iterator[list[ApiServer]]:
    env = api_env(
        db,
        CONECTADES_DRAIN_TIMEOUT=str(DRAIN_TIMEOUT),
        CONECTADES_GRACEFUL_SHUTDOWN_TIMEOUT="5",
    )
    env.pop("CONECTADES_REDIS_URL", None)
    started = [
        ApiServer(env, workers=n, log=workdir / f"api-drain-{i}.log")
        for i, n in enumerate((request.param, 1))
    ]
    try:
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def drain_edge(servers: list[ApiServer], workdir: Path) -> Iterator[LocalNginx]:
    edge = start_edge(
        workdir / "edge-drain",
        [hostport(s.url) for s in servers],
        per_ip_limits=False,
        upstream_keepalive_timeout=EDGE_KEEPALIVE_TIMEOUT,
    )
    yield edge
    edge.stop()


@dataclasses.dataclass
class Tally:
    statuses: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    donations: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> id
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def client_loop(
    url: str, headers: dict[str, str], campaign: dict[str, Any], stop: threading.Event, t: Tally
) -> None:
    item = campaign["items"][0]["id"]
    with httpx.Client(base_url=url, timeout=20, headers=headers) as c:
        i = 0
        while not stop.is_set():
            i += 1
            key = f"drain-{uuid.uuid4().hex}"
            try:
                if i % 2:
                    r = c.get(f"/api/v1/campaigns/{campaign['id']}")
                else:
                    r = c.post(
                        f"/api/v1/campaigns/{campaign['id']}/donations",
                        json={"item_id": item, "quantity": 1, "donor_name": "Ana"},
                        headers={"Idempotency-Key": key},
                    )
            except httpx.HTTPError as exc:  # a reset or timeout is a failed request too
                with t.lock:
                    t.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with t.lock:
                t.statuses.append((r.request.method, r.status_code))
                if r.request.method == "POST" and r.status_code == 201:
                    t.donations[key] = r.json()["id"]


def test_sigterm_under_load_fails_no_request(
    db: Database, servers: list[ApiServer], drain_edge: LocalNginx
) -> None:
    victim = servers[0]
    with httpx.Client(base_url=drain_edge.url, timeout=20) as c:
        factory = Factory(db, c)
        tenant = factory.tenant()
        campaign = factory.campaign(tenant)
    tally, stop = Tally(), threading.Event()
    threads = [
        threading.Thread(
            target=client_loop, args=(drain_edge.url, tenant.headers, campaign, stop, tally)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 15
        while len(tally.statuses) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)  # under load first: both servers hold edge connections
        assert victim.proc is not None
        served_before = len(tally.statuses)
        signalled = time.monotonic()
        os.kill(victim.proc.pid, signal.SIGTERM)  # what an orchestrator sends to PID 1

        victim.proc.wait(DRAIN_TIMEOUT + 10)  # bounded: drain + in-flight timeout
        stopped_after = time.monotonic() - signalled
        resumed = len(tally.statuses)
        while len(tally.statuses) < resumed + 40 and time.monotonic() < deadline + 15:
            time.sleep(0.05)  # the survivor carries the load alone
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    assert tally.errors == []
    failed = [(m, s) for m, s in tally.statuses if s not in (200, 201)]
    edge_errors = (drain_edge.config.logs / "error.log").read_text().splitlines()
    assert failed == [], (failed[:10], edge_errors[-10:])
    assert stopped_after < DRAIN_TIMEOUT + 6
    assert served_before >= 40 and len(tally.statuses) >= resumed + 40
    rows = db.fetch(
        "SELECT id::text FROM donation WHERE campaign_id = $1", uuid.UUID(campaign["id"])
    )
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(tally.donations)
    assert set(ids) == set(tally.donations.values())


def slow_drain_env(db: Database) -> dict[str, str]:
    """A worker that keeps accepting for 3 s after the signal and then waits up to
    6 s: long enough to probe it while it drains (the readiness checks below)."""
    return api_env(
        db,
        CONECTADES_DRAIN_ACCEPT="3",
        CONECTADES_DRAIN_QUIET="5",
        CONECTADES_DRAIN_TIMEOUT="6",
        CONECTADES_GRACEFUL_SHUTDOWN_TIMEOUT="5",
    )


def test_readiness_reports_draining_after_sigterm_while_still_serving(
    db: Database, workdir: Path
) -> None:
    """Readiness goes false first, while the worker still answers. Without load, with a
    long accept phase: under load the probe raced the freeze (a saturated machine can
    take longer to answer it than the 1 s the worker keeps accepting)."""
    server = ApiServer(slow_drain_env(db), workers=1, log=workdir / "api-drain-ready.log")
    server.start()
    try:
        assert server.proc is not None
        assert httpx.get(server.url + "/health/ready", timeout=10).status_code == 200
        os.kill(server.proc.pid, signal.SIGTERM)
        signalled = time.monotonic()
        statuses = []
        while time.monotonic() - signalled < 3 and server.proc.poll() is None:
            r = httpx.get(server.url + "/health/ready", timeout=10)
            statuses.append((r.status_code, r.json()["status"]))
            if r.status_code == 503:
                break
            time.sleep(0.05)
        assert statuses[-1] == (503, "draining"), statuses
        assert httpx.get(server.url + "/health", timeout=10).status_code == 200  # still serving
        server.proc.wait(6 + 5 + 5)  # bounded: drain + in-flight timeout + margin
    finally:
        server.stop()


def _manager_process(main_pid: int) -> int:
    """The multiprocessing Manager that holds Sanic's worker state: the main process's
    spawned child that is not a worker (workers are spawned with SANIC_WORKER_NAME
    set; the resource tracker is not spawned)."""
    children = Path(f"/proc/{main_pid}/task/{main_pid}/children").read_text().split()
    for pid in map(int, children):
        spawned = b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        if spawned and b"SANIC_WORKER_NAME=" not in Path(f"/proc/{pid}/environ").read_bytes():
            return pid
    raise AssertionError(f"no Manager process among {children}")


def test_sigterm_while_main_process_reads_worker_state_keeps_serving(
    db: Database, workdir: Path
) -> None:
    """Sanic's main process polls its workers' state every 0.1 s through a
    multiprocessing Manager. Its own SIGTERM handler used that same connection from
    inside the signal handler: a signal during a poll mixed up the two replies, the
    main process failed ('NoneType' object has no attribute 'get') and shut the
    shared listening socket down while the worker was still draining, so every new
    connection was refused (a CI run failed so). Pausing the Manager makes the main
    process wait inside a poll; the signal arrives there every time."""
    log = workdir / "api-drain-manager.log"
    server = ApiServer(slow_drain_env(db), workers=1, log=log)
    server.start()
    try:
        assert server.proc is not None
        manager = _manager_process(server.proc.pid)
        os.kill(manager, signal.SIGSTOP)
        try:
            time.sleep(0.5)  # the main process's next poll now waits for the Manager
            os.kill(server.proc.pid, signal.SIGTERM)
            time.sleep(0.5)
        finally:
            os.kill(manager, signal.SIGCONT)
        time.sleep(0.5)
        r = httpx.get(server.url + "/health/ready", timeout=10)
        assert (r.status_code, r.json()["status"]) == (503, "draining")
        assert httpx.get(server.url + "/health", timeout=10).status_code == 200
        server.proc.wait(6 + 5 + 5)
        assert server.proc.returncode == 0, log.read_text()
        assert "Experienced exception" not in log.read_text()
    finally:
        server.stop()


def test_the_drain_is_pinned_to_the_sanic_releases_it_was_verified_with() -> None:
    """api/drain.py reaches into Sanic's internals; a Sanic upgrade must re-run the
    drain tests above before VERIFIED_SANIC is widened."""
    from importlib.metadata import version

    from sanic.http import Http
    from sanic.worker.manager import WorkerManager

    from api.drain import VERIFIED_SANIC

    installed = tuple(int(part) for part in version("sanic").split(".")[:2])
    low, high = VERIFIED_SANIC
    assert low <= installed < high, (
        f"sanic {version('sanic')} is outside {VERIFIED_SANIC}: run tests/runtime/test_drain.py"
        " on it, then widen api/drain.py's VERIFIED_SANIC"
    )
    # What the drain uses of them is still there.
    assert "keep_alive" in dir(Http)
    assert callable(getattr(WorkerManager, "shutdown_signal", None))
    assert "monitor_publisher" in WorkerManager.__init__.__code__.co_names
