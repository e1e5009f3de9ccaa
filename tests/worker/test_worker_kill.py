"""A worker killed mid-delivery loses nothing; one stopped with SIGTERM finishes what
it is sending first. Each test runs its own `conectades worker` processes."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.factories import Factory
from tests.services import Database
from tests.worker.conftest import Receiver, WorkerProcess, create_webhook, record_event, wait_until


def _delivery(client: httpx.Client, tenant: Any, hook: dict[str, Any]) -> dict[str, Any]:
    r = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=tenant.headers)
    (delivery,) = r.json()["data"]
    return dict(delivery)


def test_sigkilled_worker_loses_no_delivery(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
    workdir: Path,
) -> None:
    tenant = hooks_factory.tenant()
    path = f"/kill-{uuid.uuid4().hex[:8]}"
    receiver.hold[path] = 4.0  # the first worker is killed while it waits for the answer
    hook = create_webhook(hooks_client, tenant, receiver.url(path))
    first = WorkerProcess(db, workdir / "worker-killed.log")
    first.start()
    try:
        record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
        receiver.wait_for(path, 1)
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        first.stop(signal.SIGKILL)
    assert _delivery(hooks_client, tenant, hook)["status"] == "pending"
    receiver.hold[path] = 0
    second = WorkerProcess(db, workdir / "worker-after-kill.log")
    second.start()
    try:
        # Claimed again once the killed worker's lease (3 s here) expired.
        got = receiver.wait_for(path, 2, timeout=60)
        assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
        delivery = wait_until(
            lambda: (d := _delivery(hooks_client, tenant, hook))["status"] == "succeeded" and d,
            what="delivery succeeded",
        )
        assert delivery["attempts"] == 2
        assert delivery["message_id"] == got[0].headers["webhook-id"]
    finally:
        assert second.stop() == 0


def test_sigterm_lets_the_delivery_in_flight_finish(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
    workdir: Path,
) -> None:
    tenant = hooks_factory.tenant()
    path = f"/term-{uuid.uuid4().hex[:8]}"
    receiver.hold[path] = 2.0
    hook = create_webhook(hooks_client, tenant, receiver.url(path))
    proc = WorkerProcess(db, workdir / "worker-term.log")
    proc.start()
    try:
        record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
        receiver.wait_for(path, 1)
        started = time.monotonic()
        assert proc.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 20
    finally:
        proc.stop(signal.SIGKILL)
    delivery = _delivery(hooks_client, tenant, hook)
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1
    assert len(receiver.at(path)) == 1


def test_two_workers_share_the_work_without_sending_anything_twice(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
    workdir: Path,
) -> None:
    tenant = hooks_factory.tenant()
    path = f"/pair-{uuid.uuid4().hex[:8]}"
    receiver.hold[path] = 0.05  # each delivery takes a moment: both workers claim
    create_webhook(hooks_client, tenant, receiver.url(path))
    workers = [WorkerProcess(db, workdir / f"worker-pair-{n}.log") for n in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in range(60):
            record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
        got = receiver.wait_for(path, 60, timeout=60)
        time.sleep(2)  # a second copy of anything would arrive now
        ids = [g.headers["webhook-id"] for g in receiver.at(path)]
        assert len(ids) == len(set(ids)) == 60, (len(ids), len(set(ids)))
        assert len(got) >= 60
    finally:
        for w in workers:
            assert w.stop() == 0
