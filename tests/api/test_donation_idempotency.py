"""Idempotency-Key on partner donation creation: replay, mismatch, in flight, per
tenant and per credential, expiry."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from api.idempotency import lock_id
from tests.api.test_donations import assert_problem, donation_count, seed_campaign
from tests.factories import Factory, TenantCtx, bearer
from tests.services import ApiServer, Database


@pytest.fixture
def tenant(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def campaign(factory: Factory, tenant: TenantCtx) -> dict[str, Any]:
    return factory.campaign(tenant)


def url(campaign: dict[str, Any]) -> str:
    return f"/api/v1/campaigns/{campaign['id']}/donations"


def body(campaign: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"item_id": campaign["items"][0]["id"], "quantity": 4, "donor_name": "Ana", **overrides}


def with_key(tenant: TenantCtx, key: str) -> dict[str, str]:
    return {**tenant.headers, "Idempotency-Key": key}


def new_key() -> str:
    return f"k-{uuid.uuid4()}"


def test_same_key_and_body_replays_the_first_response_with_one_row(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    key = new_key()
    first = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["content-type"] == "application/json"
    assert again.json() == first.json()
    assert donation_count(db, tenant) == 1


def test_replay_ignores_key_order_whitespace_and_explicit_defaults(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    key = new_key()
    first = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    item = campaign["items"][0]["id"]
    raw = (
        '{ "anonymous": false, "donor_name": "Ana",  "quantity": 4,\n "item_id": "' + item + '" }'
    ).encode()
    again = client.post(
        url(campaign),
        content=raw,
        headers={**with_key(tenant, key), "Content-Type": "application/json"},
    )
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert donation_count(db, tenant) == 1


@pytest.mark.parametrize(
    "change", [{"quantity": 5}, {"donor_name": "Bia"}, {"status": "confirmed"}, {"anonymous": True}]
)
def test_same_key_with_different_body_is_422_and_writes_nothing(
    client: httpx.Client,
    db: Database,
    tenant: TenantCtx,
    campaign: dict[str, Any],
    change: dict[str, Any],
) -> None:
    key = new_key()
    first = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert first.status_code == 201
    r = client.post(url(campaign), json=body(campaign, **change), headers=with_key(tenant, key))
    problem = assert_problem(r, 422)
    assert problem["type"] == "/problems/idempotency-mismatch"
    assert donation_count(db, tenant) == 1
    # the original is still replayed afterwards
    again = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert again.json()["id"] == first.json()["id"]


def test_same_key_on_another_campaign_is_422(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    key = new_key()
    second = seed_campaign(db, tenant)
    assert client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key)).is_success
    r = client.post(url(second), json=body(second), headers=with_key(tenant, key))
    assert_problem(r, 422)
    assert donation_count(db, tenant) == 1


def test_key_is_in_flight_while_its_lock_is_held_then_free(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    key = new_key()
    key_id = db.fetchval("SELECT id FROM api_key WHERE tenant_id = $1", tenant.id)

    async def hold() -> asyncpg.Connection:
        conn = await asyncpg.connect(db.admin_dsn)
        lock = lock_id(tenant.id, f"key:{key_id}", key)
        await conn.execute("SELECT pg_advisory_lock($1)", lock)
        return conn

    holder = db.run(hold())
    try:
        r = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
        problem = assert_problem(r, 409)
        assert problem["type"] == "/problems/idempotency-in-flight"
        assert donation_count(db, tenant) == 0
    finally:
        db.run(holder.close())
    r = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    assert donation_count(db, tenant) == 1


async def test_concurrent_requests_with_one_key_create_one_donation(
    api: ApiServer, db: Database, factory: Factory
) -> None:
    tenant = factory.tenant()
    campaign = seed_campaign(db, tenant)
    key = new_key()
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as ac:
        responses = await asyncio.gather(
            *(
                ac.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
                for _ in range(20)
            )
        )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 409}, codes
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1
    assert donation_count(db, tenant) == 1


def test_keys_are_per_tenant(client: httpx.Client, db: Database, factory: Factory) -> None:
    a, b = factory.tenant(), factory.tenant()
    ca, cb = seed_campaign(db, a), seed_campaign(db, b)
    key = new_key()
    ra = client.post(url(ca), json=body(ca), headers=with_key(a, key))
    rb = client.post(url(cb), json=body(cb), headers=with_key(b, key))
    assert ra.status_code == rb.status_code == 201
    assert "Idempotent-Replayed" not in rb.headers
    assert ra.json()["id"] != rb.json()["id"]
    assert donation_count(db, a) == donation_count(db, b) == 1


def test_expired_record_lets_the_key_create_a_new_donation(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    key = new_key()
    first = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    db.execute(
        "UPDATE idempotency_record SET created_at = now() - interval '25 hours' "
        "WHERE tenant_id = $1 AND key = $2",
        tenant.id,
        key,
    )
    second = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert donation_count(db, tenant) == 2
    # the record now holds the new response
    third = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert third.headers["Idempotent-Replayed"] == "true"
    assert third.json()["id"] == second.json()["id"]
    assert donation_count(db, tenant) == 2


def test_failed_request_stores_no_record(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    key = new_key()
    bad = body(campaign, item_id=str(uuid.uuid4()))
    assert_problem(client.post(url(campaign), json=bad, headers=with_key(tenant, key)), 422)
    invalid = body(campaign, quantity=0)
    assert_problem(client.post(url(campaign), json=invalid, headers=with_key(tenant, key)), 422)
    assert (
        db.fetchval("SELECT count(*) FROM idempotency_record WHERE tenant_id = $1", tenant.id) == 0
    )
    ok = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert ok.status_code == 201 and "Idempotent-Replayed" not in ok.headers
    assert donation_count(db, tenant) == 1


def test_key_of_read_only_or_unknown_campaign_request_writes_nothing(
    client: httpx.Client,
    db: Database,
    factory: Factory,
    tenant: TenantCtx,
    campaign: dict[str, Any],
) -> None:
    key = new_key()
    ro = {"Authorization": f"Bearer {factory.key(tenant, ('read',))}", "Idempotency-Key": key}
    assert_problem(client.post(url(campaign), json=body(campaign), headers=ro), 403)
    other = factory.tenant()
    theirs = seed_campaign(db, other)
    assert_problem(client.post(url(theirs), json=body(theirs), headers=with_key(tenant, key)), 404)
    assert (
        db.fetchval("SELECT count(*) FROM idempotency_record WHERE tenant_id = $1", tenant.id) == 0
    )
    assert donation_count(db, tenant) == donation_count(db, other) == 0


@pytest.mark.parametrize("key", ["has space", "x" * 256, "tab\tkey", "ção"])
def test_malformed_key_is_400_and_writes_nothing(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any], key: str
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": key}
    try:
        r = client.post(url(campaign), json=body(campaign), headers=headers)
    except UnicodeEncodeError:
        # httpx refuses non-ASCII header values; send the raw UTF-8 bytes instead
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        r = client.post(url(campaign), json=body(campaign), headers=raw)
    assert_problem(r, 400)
    assert donation_count(db, tenant) == 0


def test_without_key_each_request_creates_a_donation(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    for _ in range(2):
        assert client.post(url(campaign), json=body(campaign), headers=tenant.headers).is_success
    assert donation_count(db, tenant) == 2


# -- one key space per credential -------------------------------------------------------


def pledge(client: httpx.Client, tenant: TenantCtx, campaign: dict[str, Any], key: str) -> Any:
    return client.post(
        f"/api/public/{tenant.slug}/campaigns/{campaign['slug']}/donations",
        json={
            "item_id": campaign["items"][1]["id"],
            "quantity": 1,
            "donor_name": "Intrusa",
            "donor_contact": "x@example.org",
        },
        headers={"Idempotency-Key": key},
    )


def test_anonymous_pledge_cannot_pre_claim_a_partners_key(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    key = "order-1001"  # predictable, as a partner's own order numbers are
    assert pledge(client, tenant, campaign, key).status_code == 201
    r = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert r.status_code == 201, r.text
    assert "Idempotent-Replayed" not in r.headers
    assert r.json()["quantity"] == 4 and r.json()["source"] == "partner"
    # Each space still replays its own request.
    again = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == r.json()
    assert pledge(client, tenant, campaign, key).headers["Idempotent-Replayed"] == "true"
    assert donation_count(db, tenant) == 2


def test_two_credentials_of_one_tenant_have_their_own_keys(
    client: httpx.Client,
    db: Database,
    factory: Factory,
    tenant: TenantCtx,
    campaign: dict[str, Any],
) -> None:
    other = {**bearer(factory.key(tenant, ("read", "write"))), "Idempotency-Key": "same"}
    first = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, "same"))
    second = client.post(url(campaign), json=body(campaign, quantity=9), headers=other)
    assert first.status_code == second.status_code == 201, second.text
    assert first.json()["id"] != second.json()["id"]
    assert donation_count(db, tenant) == 2


def test_record_from_before_the_scopes_still_replays_for_any_credential(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    """Migration 0012 left older records in scope '': a client retrying across the
    upgrade gets its stored response, not a second donation."""
    key = new_key()
    first = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert first.status_code == 201
    db.execute(
        "UPDATE idempotency_record SET scope = '' WHERE tenant_id = $1 AND key = $2",
        tenant.id,
        key,
    )
    again = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert donation_count(db, tenant) == 1


def test_a_field_left_at_its_default_or_omitted_is_the_same_request(
    client: httpx.Client, db: Database, tenant: TenantCtx, campaign: dict[str, Any]
) -> None:
    """A field at its default, sent or not, fingerprints alike: so a field added later
    with a default (a rolling deploy) never turns a retry into a 422."""
    key = new_key()
    first = client.post(url(campaign), json=body(campaign), headers=with_key(tenant, key))
    assert first.status_code == 201
    explicit = body(campaign, status="pending", anonymous=False, message="")
    again = client.post(url(campaign), json=explicit, headers=with_key(tenant, key))
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    other = client.post(
        url(campaign), json=body(campaign, status="confirmed"), headers=with_key(tenant, key)
    )
    assert other.status_code == 422
    assert donation_count(db, tenant) == 1
