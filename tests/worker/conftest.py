"""Webhook tests: an API that allows 127.0.0.1 as a destination, a receiver started
by the test on 127.0.0.1, and `conectades worker` processes with quick retries.
Nothing here sends a request anywhere but loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from db.queries import events
from db.tenancy import tenant_transaction
from tests.factories import Factory, TenantCtx
from tests.services import ROOT, ApiServer, Database, api_env

# Quick retries: 3 attempts (0.3 s apart), no jitter; 2 dead deliveries disable.
WORKER_ENV = {
    "CONECTADES_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "CONECTADES_WEBHOOK_RETRY_SCHEDULE": "0.3,0.3",
    "CONECTADES_WEBHOOK_RETRY_JITTER": "0",
    "CONECTADES_WEBHOOK_DISABLE_AFTER_DEAD": "2",
    "CONECTADES_WEBHOOK_TIMEOUT": "5",
    "CONECTADES_WEBHOOK_LEASE": "3",
    "CONECTADES_WORKER_POLL_INTERVAL": "0.5",
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording every POST; `answer(path, n)` gives the
    status for the n-th request (from 1) to `path`, `hold` seconds to wait first."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    answers: dict[str, Callable[[int], int]] = field(default_factory=dict)
    hold: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.at(path))} requests, wanted {count}")


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            rec = holder["r"]
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            item = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
            )
            with rec.lock:
                rec.received.append(item)
                n = len([r for r in rec.received if r.path == self.path])
            time.sleep(rec.hold.get(self.path, 0))
            status = rec.answers.get(self.path, lambda n: 204)(n)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["r"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def hooks_api(db: Database, workdir: Path) -> Iterator[ApiServer]:
    """The real app, allowing 127.0.0.1 as a webhook destination (as the local stack)."""
    server = ApiServer(
        api_env(db, CONECTADES_WEBHOOK_ALLOWED_HOSTS="127.0.0.1"),
        workers=1,
        log=workdir / "hooks-api.log",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hooks_client(hooks_api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hooks_api.url, timeout=30) as c:
        yield c


@pytest.fixture
def hooks_factory(db: Database, hooks_client: httpx.Client) -> Factory:
    return Factory(db, hooks_client)


class WorkerProcess:
    """`conectades worker` (python -m admin worker) against the test database."""

    def __init__(self, db: Database, log: Path, **extra: str) -> None:
        self.env = {**api_env(db), **WORKER_ENV, **extra}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "admin", "worker"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            raise


@pytest.fixture(scope="module")
def worker(db: Database, workdir: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(db, workdir / "worker.log")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def api_pool(db: Database) -> Iterator[asyncpg.Pool]:
    """A pool as the API's role: events are written the way the API writes them."""

    async def make() -> asyncpg.Pool:
        return await asyncpg.create_pool(db.api_dsn, min_size=1, max_size=4)

    pool = db.run(make())
    yield pool
    db.run(pool.close())


def record_event(
    db: Database,
    pool: asyncpg.Pool,
    tenant: TenantCtx,
    event_type: str = "donation.created",
    resource_id: UUID | None = None,
    data: Any = None,
) -> asyncpg.Record:
    """One event in a tenant transaction (db/queries/events.record), as the API writes it."""

    async def write() -> asyncpg.Record:
        async with tenant_transaction(pool, tenant.id) as conn:
            return await events.record(
                conn, event_type, event_type.split(".")[0], resource_id, data or {"n": 1}
            )

    return db.run(write())


def create_webhook(
    client: httpx.Client, tenant: TenantCtx, url: str, types: list[str] | None = None
) -> dict[str, Any]:
    r = client.post(
        "/api/v1/webhooks",
        json={"url": url, "event_types": types or ["donation.created"]},
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def wait_until(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not reached in {timeout:g} s")


def run(coro: Any) -> Any:
    return asyncio.run(coro)
