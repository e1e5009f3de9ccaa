"""Deliveries end to end: an event written as the API writes it → `conectades worker`
→ a receiver on 127.0.0.1 started here (the only allowed destination)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
import standardwebhooks

from tests.factories import Factory
from tests.services import Database
from tests.worker.conftest import (
    Receiver,
    WorkerProcess,
    create_webhook,
    record_event,
    wait_until,
)
from worker.signing import verify


@pytest.fixture(autouse=True)
def _running(worker: WorkerProcess) -> None:
    """Every test here needs the module's worker."""


def _path() -> str:
    return f"/hook-{uuid.uuid4().hex[:12]}"


def _deliveries(client: httpx.Client, tenant: Any, hook: dict[str, Any], **params: Any) -> Any:
    r = client.get(
        f"/api/v1/webhooks/{hook['id']}/deliveries", params=params, headers=tenant.headers
    )
    assert r.status_code == 200, r.text
    return r.json()


def _settled(
    client: httpx.Client, tenant: Any, hook: dict[str, Any], status: str, n: int = 1
) -> Any:
    def check() -> Any:
        data = _deliveries(client, tenant, hook)["data"]
        return data if len([d for d in data if d["status"] == status]) >= n else None

    return wait_until(check, what=f"{n} {status} deliveries")


def test_event_arrives_signed_per_standard_webhooks(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
) -> None:
    tenant = hooks_factory.tenant()
    path = _path()
    hook = create_webhook(hooks_client, tenant, receiver.url(path))
    assert hook["secret"].startswith("whsec_")
    resource = uuid.uuid4()
    event = record_event(
        db, api_pool, tenant, "donation.created", resource, {"id": str(resource), "quantity": 5}
    )

    (got,) = receiver.wait_for(path, 1)
    h = got.headers
    assert h["content-type"] == "application/json"
    assert h["webhook-id"].startswith("msg_")
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 60
    # The published algorithm, and the reference library, independently.
    assert verify(
        hook["secret"],
        h["webhook-id"],
        int(h["webhook-timestamp"]),
        got.body,
        h["webhook-signature"],
    )
    parsed = standardwebhooks.Webhook(hook["secret"]).verify(got.body, h)
    body = json.loads(got.body)
    assert parsed == body
    assert body["type"] == "donation.created"
    assert body["data"] == {"id": str(resource), "quantity": 5}
    assert body["timestamp"].endswith("Z")
    # A tampered body does not verify.
    assert not verify(
        hook["secret"],
        h["webhook-id"],
        int(h["webhook-timestamp"]),
        got.body + b" ",
        h["webhook-signature"],
    )

    (delivery,) = _settled(hooks_client, tenant, hook, "succeeded")
    assert delivery["message_id"] == h["webhook-id"]
    assert delivery["event_id"] == str(event["id"])
    assert delivery["event_type"] == "donation.created"
    assert delivery["attempts"] == 1
    assert delivery["response_status"] == 204
    assert delivery["latency_ms"] is not None and delivery["latency_ms"] >= 0
    assert delivery["next_attempt_at"] is None


def test_donation_through_the_api_is_in_the_feed_and_delivered(
    hooks_factory: Factory, hooks_client: httpx.Client, receiver: Receiver
) -> None:
    tenant = hooks_factory.tenant()
    path = _path()
    hook = create_webhook(hooks_client, tenant, receiver.url(path), ["donation.created"])
    campaign = hooks_factory.campaign(tenant)
    donation = hooks_factory.donation(tenant, campaign, quantity=7)

    (got,) = receiver.wait_for(path, 1)
    h = got.headers
    body = standardwebhooks.Webhook(hook["secret"]).verify(got.body, h)
    assert body["type"] == "donation.created"
    assert body["data"]["id"] == donation["id"] and body["data"]["quantity"] == 7
    assert "donor_contact" not in body["data"]
    feed = hooks_client.get(
        "/api/v1/events", params={"type": "donation.created"}, headers=tenant.headers
    ).json()["data"]
    assert [e["data"]["id"] for e in feed] == [donation["id"]]
    (delivery,) = _settled(hooks_client, tenant, hook, "succeeded")
    assert delivery["event_id"] == feed[0]["id"]
    assert delivery["message_id"] == h["webhook-id"]


def test_unsubscribed_types_and_disabled_endpoints_get_nothing(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
) -> None:
    tenant = hooks_factory.tenant()
    on, off = _path(), _path()
    hook = create_webhook(hooks_client, tenant, receiver.url(on), ["campaign.created"])
    disabled = create_webhook(hooks_client, tenant, receiver.url(off), ["donation.created"])
    r = hooks_client.patch(
        f"/api/v1/webhooks/{disabled['id']}", json={"enabled": False}, headers=tenant.headers
    )
    assert r.status_code == 200 and r.json()["enabled"] is False
    record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
    record_event(db, api_pool, tenant, "campaign.created", uuid.uuid4())
    receiver.wait_for(on, 1)
    time.sleep(1.5)  # three poll intervals: anything else would have been sent
    assert len(receiver.at(on)) == 1
    assert receiver.at(off) == []
    assert _deliveries(hooks_client, tenant, disabled)["data"] == []
    assert len(_deliveries(hooks_client, tenant, hook)["data"]) == 1


def test_receiver_failing_twice_then_succeeding_sees_one_webhook_id_three_times(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
) -> None:
    tenant = hooks_factory.tenant()
    path = _path()
    receiver.answers[path] = lambda n: 500 if n <= 2 else 200
    hook = create_webhook(hooks_client, tenant, receiver.url(path))
    record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())

    got = receiver.wait_for(path, 3)
    ids = {g.headers["webhook-id"] for g in got}
    assert len(ids) == 1
    assert got[1].at - got[0].at >= 0.25  # the (test's) retry schedule: 0.3 s, no jitter
    for g in got:  # every attempt signed afresh
        assert verify(
            hook["secret"],
            g.headers["webhook-id"],
            int(g.headers["webhook-timestamp"]),
            g.body,
            g.headers["webhook-signature"],
        )
    (delivery,) = _settled(hooks_client, tenant, hook, "succeeded")
    assert delivery["attempts"] == 3
    assert delivery["response_status"] == 200
    assert delivery["message_id"] in ids
    time.sleep(1)
    assert len(receiver.at(path)) == 3


def test_redirect_is_a_failure_not_followed_and_the_delivery_dies(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
) -> None:
    tenant = hooks_factory.tenant()
    path = _path()
    receiver.answers[path] = lambda n: 302
    hook = create_webhook(hooks_client, tenant, receiver.url(path))
    record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
    (delivery,) = _settled(hooks_client, tenant, hook, "dead")
    assert delivery["attempts"] == 3
    assert delivery["response_status"] == 302
    assert "redirects are not followed" in delivery["last_error"]
    assert len(receiver.at(path)) == 3


def test_later_change_of_a_resource_waits_for_the_earlier_one(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
) -> None:
    tenant = hooks_factory.tenant()
    path = _path()
    receiver.answers[path] = lambda n: 500 if n == 1 else 204
    hook = create_webhook(hooks_client, tenant, receiver.url(path))
    resource = uuid.uuid4()
    for n in range(1, 4):
        record_event(db, api_pool, tenant, "donation.created", resource, {"n": n})
    got = receiver.wait_for(path, 4)
    assert [json.loads(g.body)["data"]["n"] for g in got] == [1, 1, 2, 3]
    _settled(hooks_client, tenant, hook, "succeeded", 3)


def test_manual_retry_sends_again_with_the_same_webhook_id(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
) -> None:
    tenant = hooks_factory.tenant()
    path = _path()
    hook = create_webhook(hooks_client, tenant, receiver.url(path))
    record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
    (delivery,) = _settled(hooks_client, tenant, hook, "succeeded")
    r = hooks_client.post(
        f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/retry", headers=tenant.headers
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    first, again = receiver.wait_for(path, 2)
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == delivery["message_id"]
    wait_until(
        lambda: _deliveries(hooks_client, tenant, hook)["data"][0]["attempts"] == 2,
        what="2 attempts",
    )


def test_rotation_signs_with_both_secrets_during_the_overlap(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
) -> None:
    tenant = hooks_factory.tenant()
    path = _path()
    hook = create_webhook(hooks_client, tenant, receiver.url(path))
    old = hook["secret"]
    r = hooks_client.post(f"/api/v1/webhooks/{hook['id']}/rotate", headers=tenant.headers)
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert r.json()["previous_secret_expires_at"] is not None
    record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
    (got,) = receiver.wait_for(path, 1)
    h = got.headers
    assert len(h["webhook-signature"].split()) == 2
    for secret in (new, old):  # a receiver with either key accepts it
        assert verify(
            secret, h["webhook-id"], int(h["webhook-timestamp"]), got.body, h["webhook-signature"]
        )
        standardwebhooks.Webhook(secret).verify(got.body, h)

    # Rotated again without overlap: only the newest key signs.
    r = hooks_client.post(
        f"/api/v1/webhooks/{hook['id']}/rotate", json={"overlap_hours": 0}, headers=tenant.headers
    )
    newest = r.json()["secret"]
    assert r.json()["previous_secret_expires_at"] is None
    record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
    got = receiver.wait_for(path, 2)[1]
    h = got.headers
    assert len(h["webhook-signature"].split()) == 1
    assert verify(
        newest, h["webhook-id"], int(h["webhook-timestamp"]), got.body, h["webhook-signature"]
    )
    assert not verify(
        new, h["webhook-id"], int(h["webhook-timestamp"]), got.body, h["webhook-signature"]
    )


def test_persistent_failure_disables_the_endpoint_and_writes_an_event(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
) -> None:
    tenant = hooks_factory.tenant()
    failing, notices = _path(), _path()
    receiver.answers[failing] = lambda n: 503
    hook = create_webhook(hooks_client, tenant, receiver.url(failing))
    watcher = create_webhook(hooks_client, tenant, receiver.url(notices), ["webhook.disabled"])
    for _ in range(2):  # the test worker disables after 2 dead deliveries
        record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())

    def disabled() -> Any:
        body = hooks_client.get(f"/api/v1/webhooks/{hook['id']}", headers=tenant.headers).json()
        return body if not body["enabled"] else None

    body = wait_until(disabled, what="endpoint disabled")
    assert body["disabled_at"] is not None
    assert "2 deliveries in a row" in body["disabled_reason"]
    assert body["consecutive_dead"] == 2
    assert body["failing_since"] is not None
    assert len(receiver.at(failing)) == 6
    # The notice, in the events feed (as its row) and sent to the watching endpoint.
    row = db.fetchrow(
        "SELECT * FROM event WHERE tenant_id = $1 AND type = 'webhook.disabled'", tenant.id
    )
    assert row is not None and row["resource_id"] == uuid.UUID(hook["id"])
    (notice,) = receiver.wait_for(notices, 1)
    sent = json.loads(notice.body)
    assert sent["type"] == "webhook.disabled"
    assert sent["data"]["id"] == hook["id"] and sent["data"]["enabled"] is False
    assert "secret" not in sent["data"]
    assert verify(
        watcher["secret"],
        notice.headers["webhook-id"],
        int(notice.headers["webhook-timestamp"]),
        notice.body,
        notice.headers["webhook-signature"],
    )

    # Disabled: new events make no delivery. Enabling again clears the failure state.
    record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
    assert len(_deliveries(hooks_client, tenant, hook)["data"]) == 2
    r = hooks_client.patch(
        f"/api/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=tenant.headers
    )
    assert r.json()["enabled"] is True
    assert r.json()["consecutive_dead"] == 0 and r.json()["disabled_at"] is None


@pytest.mark.parametrize(
    "host",
    ["127.0.0.2", "[::1]", "0.0.0.0", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "localhost"],
)
def test_worker_refuses_loopback_spellings_other_than_the_allowed_one(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
    host: str,
) -> None:
    """The endpoint goes straight into the database (the API refuses these URLs): the
    worker's own check, after resolution, refuses to connect."""
    tenant = hooks_factory.tenant()
    path = _path()
    hook = create_webhook(hooks_client, tenant, receiver.url(path))
    db.execute(
        "UPDATE webhook_endpoint SET url = $2 WHERE id = $1",
        uuid.UUID(hook["id"]),
        receiver.url(path, host),
    )
    record_event(db, api_pool, tenant, "donation.created", uuid.uuid4())
    (delivery,) = _settled(hooks_client, tenant, hook, "dead")
    assert delivery["last_error"].startswith("destination refused"), delivery["last_error"]
    assert "not a public address" in delivery["last_error"]
    assert delivery["response_status"] is None
    assert receiver.at(path) == []


def test_other_tenant_never_sees_webhooks_or_deliveries(
    db: Database,
    api_pool: Any,
    hooks_factory: Factory,
    hooks_client: httpx.Client,
    receiver: Receiver,
) -> None:
    a, b = hooks_factory.tenant(), hooks_factory.tenant()
    path = _path()
    hook = create_webhook(hooks_client, a, receiver.url(path))
    record_event(db, api_pool, a, "donation.created", uuid.uuid4())
    (delivery,) = _settled(hooks_client, a, hook, "succeeded")
    base = f"/api/v1/webhooks/{hook['id']}"
    for method, url, body in [
        ("GET", base, None),
        ("PATCH", base, {"enabled": False}),
        ("DELETE", base, None),
        ("POST", base + "/rotate", None),
        ("GET", base + "/deliveries", None),
        ("POST", f"{base}/deliveries/{delivery['id']}/retry", None),
    ]:
        r = hooks_client.request(method, url, json=body, headers=b.headers)
        assert r.status_code == 404, (method, url, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert hooks_client.get("/api/v1/webhooks", headers=b.headers).json()["data"] == []
    # B's event reaches none of A's endpoints.
    record_event(db, api_pool, b, "donation.created", uuid.uuid4())
    time.sleep(1)
    assert len(receiver.at(path)) == 1
    # And A's endpoint is untouched.
    assert hooks_client.get(base, headers=a.headers).json()["enabled"] is True
