"""Email tests' services: the local SMTP sink (infra/smtp_sink.py, the stack's own)
on a free port, and the worker's email job run against it."""

from __future__ import annotations

import email
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from db.crypto import Keyring
from infra.postgres import free_port
from infra.servers import ROOT, clean_env, spawn, stop_group
from notify.jobs import drain_email_batch
from notify.settings import EmailSettings
from notify.smtp import Mailer
from tests.factories import TenantCtx
from tests.services import CONTACT_KEYS, LINK_SECRET, ApiServer, Database

SENDER_DOMAIN = "conectades.test"


class Sink:
    """`python -m infra.smtp_sink` in a subprocess; stop() and start() keep its port."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.dir = root / "mail"
        self.log = root / "smtp_sink.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> None:
        argv = [sys.executable, "-m", "infra.smtp_sink", "--port", str(self.port),
                "--dir", str(self.dir)]  # fmt: skip
        self.proc = spawn(argv, clean_env(), self.log, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"SMTP sink exited; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"SMTP sink not listening; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def messages(self) -> list[EmailMessage]:
        found = []
        for path in sorted(self.dir.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=default_policy)
            assert isinstance(msg, EmailMessage)
            found.append(msg)
        return found

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages() if address in str(m["X-Sink-Rcpt-To"])]


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sink]:
    server = Sink(tmp_path_factory.mktemp("sink"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_pool(db: Database) -> Iterator[asyncpg.Pool]:
    """A pool as the API's role (row-level security applies), as the worker has."""

    async def make() -> asyncpg.Pool:
        return await asyncpg.create_pool(db.api_dsn, min_size=1, max_size=12)

    pool = db.run(make())
    yield pool
    db.run(pool.close())


def smtp_env(sink: Sink, api: ApiServer, **overrides: Any) -> dict[str, str]:
    """The email settings of a worker sending to `sink`, links to `api`."""
    return {
        "CONECTADES_SMTP_HOST": "127.0.0.1",
        "CONECTADES_SMTP_PORT": str(sink.port),
        "CONECTADES_SMTP_FROM": f"Conectades <nao-responda@{SENDER_DOMAIN}>",
        "CONECTADES_SMTP_TLS": "none",
        "CONECTADES_SMTP_TIMEOUT": "5",
        "CONECTADES_PUBLIC_URL": api.url,
        "CONECTADES_LINK_SECRET": LINK_SECRET,
        "CONECTADES_EMAIL_RETRY_BASE": "1",
        **{f"CONECTADES_{k}": str(v) for k, v in overrides.items()},
    }


KEYRING = Keyring.from_env(CONTACT_KEYS)


@pytest.fixture
def deliver(db: Database, api_pool: asyncpg.Pool, sink: Sink, api: ApiServer) -> Callable[..., int]:
    """Run the email job until nothing is due (the worker's turns); jobs claimed."""
    settings = EmailSettings.from_env(smtp_env(sink, api))

    def run(max_turns: int = 50) -> int:
        mailer = Mailer(settings, keep=settings.EMAIL_BATCH)
        total = 0
        try:
            for _ in range(max_turns):
                took = db.run(drain_email_batch(api_pool, settings, KEYRING, mailer))
                total += took
                if took == 0:
                    return total
        finally:
            db.run(mailer.close())
        raise AssertionError("email jobs still due after many turns")

    return run


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.org"


def pledge(
    client: httpx.Client,
    org: TenantCtx,
    campaign: dict[str, Any],
    *,
    contact: str,
    name: str = "Joana",
    quantity: int = 7,
    item: int = 1,
) -> dict[str, Any]:
    r = client.post(
        f"/api/public/{org.slug}/campaigns/{campaign['slug']}/donations",
        json={
            "item_id": campaign["items"][item]["id"],
            "quantity": quantity,
            "donor_name": name,
            "donor_contact": contact,
            "message": "Levo no sábado",
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def jobs(db: Database, donation_id: str) -> dict[str, Any]:
    rows = db.fetch("SELECT * FROM email_job WHERE donation_id = $1", uuid.UUID(donation_id))
    return {r["kind"]: r for r in rows}
