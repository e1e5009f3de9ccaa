"""The email job inside the real `conectades worker` process (worker/main.py): a
pledge's messages arrive without anyone draining by hand, survive the SMTP server
being down, and a worker with incomplete email settings refuses to start."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import Factory, TenantCtx
from tests.notify.conftest import Sink, jobs, pledge, smtp_env, unique
from tests.services import ApiServer, Database
from tests.worker.conftest import WorkerProcess

WAIT = 60  # seconds: a busy shared machine, never the expected time


@pytest.fixture(scope="module")
def email_worker(
    db: Database, workdir: Path, sink: Sink, api: ApiServer
) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(db, workdir / "email-worker.log", **smtp_env(sink, api))
    proc.start()
    yield proc
    assert proc.stop() == 0


def wait_for(check: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {WAIT} s: {what}")


@pytest.fixture
def org(factory: Factory) -> TenantCtx:
    return factory.tenant()


def test_worker_process_sends_a_pledges_emails(
    email_worker: WorkerProcess,
    client: httpx.Client,
    factory: Factory,
    org: TenantCtx,
    db: Database,
    sink: Sink,
) -> None:
    org_email = unique("org")
    campaign = factory.campaign(org, title=f"Agasalhos {uuid.uuid4().hex[:6]}", contact=org_email)
    donor = unique("doador")
    body = pledge(client, org, campaign, contact=donor)
    wait_for(lambda: sink.to(donor) and sink.to(org_email), "receipt and notice in the sink")
    assert {j["status"] for j in jobs(db, body["id"]).values()} == {"sent"}
    assert campaign["title"] in str(sink.to(donor)[0]["Subject"])


def test_worker_process_retries_while_smtp_is_down(
    email_worker: WorkerProcess,
    client: httpx.Client,
    factory: Factory,
    org: TenantCtx,
    db: Database,
    sink: Sink,
) -> None:
    org_email = unique("org")
    campaign = factory.campaign(org, contact=org_email)
    donor = unique("doador")
    sink.stop()
    try:
        body = pledge(client, org, campaign, contact=donor)
        wait_for(
            lambda: all(j["attempts"] >= 1 for j in jobs(db, body["id"]).values()),
            "a failed attempt while the sink is down",
        )
        assert {j["status"] for j in jobs(db, body["id"]).values()} == {"pending"}
    finally:
        sink.start()
    wait_for(lambda: sink.to(donor) and sink.to(org_email), "the messages after the restart")
    assert len(sink.to(donor)) == 1 and len(sink.to(org_email)) == 1
    assert {j["status"] for j in jobs(db, body["id"]).values()} == {"sent"}


def test_worker_with_incomplete_email_settings_refuses_to_start(
    db: Database, workdir: Path, sink: Sink, api: ApiServer
) -> None:
    env = smtp_env(sink, api)
    del env["CONECTADES_SMTP_FROM"]
    env["CONECTADES_LINK_SECRET"] = "short"
    log = workdir / "bad-email-worker.log"
    proc = WorkerProcess(db, log, **env)
    proc.start()
    assert proc.proc is not None
    assert proc.proc.wait(30) != 0
    text = log.read_text()
    assert "CONECTADES_SMTP_FROM" in text and "CONECTADES_LINK_SECRET" in text
