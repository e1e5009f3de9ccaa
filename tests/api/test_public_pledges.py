"""Public pledges: Idempotency-Key required, strict validation, closed campaigns refuse."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from db.crypto import Keyring
from tests.factories import Factory, TenantCtx
from tests.services import CONTACT_KEYS

NOW = datetime.now(UTC)
RING = Keyring.from_env(CONTACT_KEYS)


@pytest.fixture
def org(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def campaign(factory: Factory, org: TenantCtx) -> dict[str, Any]:
    return factory.campaign_row(
        org, ends_at=NOW + timedelta(days=5), items=(("Feijão", "kg", 300), ("Leite", "l", 50))
    )


def url(org: TenantCtx, campaign: dict[str, Any]) -> str:
    return f"/api/public/{org.slug}/campaigns/{campaign['slug']}/donations"


def body(campaign: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "item_id": str(campaign["items"][0]["id"]),
        "quantity": 5,
        "donor_name": "Ana",
        "donor_contact": "ana@example.org",
        "anonymous": False,
        "message": "Levo no sábado",
        **overrides,
    }


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def count(db: Any, campaign: dict[str, Any]) -> int:
    n: int = db.fetchval("SELECT count(*) FROM donation WHERE campaign_id = $1", campaign["id"])
    return n


def test_create_pledge_records_pending_public_donation(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.post(url(org, campaign), json=body(campaign), headers=key())
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "private, no-store"
    data = r.json()
    assert set(data) == {"id", "status", "item_id", "quantity", "created_at"}
    assert data["status"] == "pending" and data["quantity"] == 5
    assert data["item_id"] == str(campaign["items"][0]["id"])
    row = db.fetchrow("SELECT * FROM donation WHERE id = $1", uuid.UUID(data["id"]))
    assert row["tenant_id"] == org.id and row["campaign_id"] == campaign["id"]
    assert (row["status"], row["source"]) == ("pending", "public")
    # Contact and message stored encrypted (db/crypto.py), the text columns empty.
    assert (row["donor_contact"], row["message"]) == ("", "")
    assert (row["donor_name"], RING.donor_contact_of(row)) == ("Ana", "ana@example.org")
    # Not shown publicly: the donor did not ask for it (show_name defaults to off).
    assert RING.message_of(row) == "Levo no sábado" and row["anonymous"] is True
    page = client.get(f"/api/public/{org.slug}/campaigns/{campaign['slug']}").json()
    assert page["items"][0]["pending_quantity"] == 5


def test_create_pledge_without_idempotency_key_is_400(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    for headers in ({}, {"Idempotency-Key": ""}, {"Idempotency-Key": "has space"}):
        r = client.post(url(org, campaign), json=body(campaign), headers=headers)
        assert r.status_code == 400, r.text
        assert "Idempotency-Key" in r.json()["detail"]
    assert count(db, campaign) == 0


def test_create_pledge_replay_returns_same_pledge_once(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    headers = key()
    first = client.post(url(org, campaign), json=body(campaign), headers=headers)
    # Same body with other key order and whitespace is the same request.
    again = client.post(
        url(org, campaign), json=dict(reversed(body(campaign).items())), headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert count(db, campaign) == 1


def test_create_pledge_key_reused_with_other_body_is_422(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    headers = key()
    assert client.post(url(org, campaign), json=body(campaign), headers=headers).status_code == 201
    r = client.post(url(org, campaign), json=body(campaign, quantity=6), headers=headers)
    assert r.status_code == 422
    assert count(db, campaign) == 1


def test_create_pledge_same_key_in_two_tenants_is_two_pledges(
    client: httpx.Client, factory: Factory, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    other = factory.tenant()
    c2 = factory.campaign_row(other)
    headers = key()
    a = client.post(url(org, campaign), json=body(campaign), headers=headers)
    b = client.post(url(other, c2), json=body(c2), headers=headers)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize(
    "columns",
    [
        ({"status": "closed"}, 409),
        # A draft is not public: a 404 like a slug that does not exist, so that
        # nobody can tell that it exists.
        ({"status": "draft"}, 404),
        ({"ends_at": NOW - timedelta(minutes=1)}, 409),
        ({"starts_at": NOW + timedelta(days=1)}, 409),
    ],
    ids=["closed", "draft", "past-deadline", "not-started"],
)
def test_create_pledge_to_campaign_not_accepting_is_refused(
    client: httpx.Client,
    factory: Factory,
    db: Any,
    org: TenantCtx,
    columns: tuple[dict[str, Any], int],
) -> None:
    columns, status = columns
    c = factory.campaign_row(org, **columns)
    headers = key()
    r = client.post(url(org, c), json=body(c), headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert count(db, c) == 0
    # Nothing was stored under the key: it is still usable.
    assert (
        db.fetchval(
            "SELECT count(*) FROM idempotency_record WHERE tenant_id = $1 AND key = $2",
            org.id,
            headers["Idempotency-Key"],
        )
        == 0
    )


def test_create_pledge_for_item_of_other_campaign_is_422(
    client: httpx.Client, factory: Factory, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    other = factory.campaign_row(org)
    r = client.post(
        url(org, campaign), json=body(campaign, item_id=str(other["items"][0]["id"])), headers=key()
    )
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["item_id"]
    assert count(db, campaign) == 0 and count(db, other) == 0


@pytest.mark.parametrize(
    ("tenant", "slug"),
    [("no-such-org-zz", "x"), ("{org}", "no-such-campaign"), ("{org}", "BAD SLUG")],
)
def test_create_pledge_to_unknown_tenant_or_campaign_is_404(
    client: httpx.Client, org: TenantCtx, campaign: dict[str, Any], tenant: str, slug: str
) -> None:
    path = f"/api/public/{tenant.format(org=org.slug)}/campaigns/{slug}/donations"
    r = client.post(path, json=body(campaign), headers=key())
    assert r.status_code == 404


def test_create_pledge_to_suspended_tenant_is_404(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    db.execute("UPDATE tenant SET status = 'suspended' WHERE id = $1", org.id)
    r = client.post(url(org, campaign), json=body(campaign), headers=key())
    assert r.status_code == 404
    assert count(db, campaign) == 0


def test_suspension_stops_pledges_at_once_and_public_reads_within_5_seconds(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    page = f"/api/public/{org.slug}/campaigns/{campaign['slug']}"
    assert client.get(page).status_code == 200  # the worker now remembers the tenant
    db.execute("UPDATE tenant SET status = 'suspended' WHERE id = $1", org.id)
    suspended_at = time.monotonic()
    assert client.post(url(org, campaign), json=body(campaign), headers=key()).status_code == 404
    assert count(db, campaign) == 0
    while client.get(page).status_code != 404:
        assert time.monotonic() - suspended_at < 5.5, "public reads still served after 5.5 s"
        time.sleep(0.2)


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("quantity-zero", {"quantity": 0}, "quantity"),
    ("quantity-negative", {"quantity": -3}, "quantity"),
    ("quantity-huge", {"quantity": 10**12}, "quantity"),
    ("quantity-overflow", {"quantity": 2**70}, "quantity"),
    ("quantity-string", {"quantity": "5"}, "quantity"),
    ("quantity-float", {"quantity": 5.5}, "quantity"),
    ("quantity-bool", {"quantity": True}, "quantity"),
    ("quantity-null", {"quantity": None}, "quantity"),
    ("item-not-uuid", {"item_id": "abc"}, "item_id"),
    ("item-number", {"item_id": 12}, "item_id"),
    ("item-sql", {"item_id": "'; DROP TABLE donation; --"}, "item_id"),
    ("name-empty", {"donor_name": ""}, "donor_name"),
    ("name-long", {"donor_name": "x" * 201}, "donor_name"),
    ("name-nul", {"donor_name": "a\x00b"}, "donor_name"),
    ("contact-long", {"donor_contact": "x" * 201}, "donor_contact"),
    ("contact-list", {"donor_contact": ["a"]}, "donor_contact"),
    ("anonymous-string", {"anonymous": "yes"}, "anonymous"),
    ("message-long", {"message": "m" * 1001}, "message"),
    ("unknown-field", {"status": "confirmed"}, "status"),
    ("source-field", {"source": "partner"}, "source"),
]


@pytest.mark.parametrize(
    ("overrides", "field"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_create_pledge_with_bad_body_is_422_naming_the_field(
    client: httpx.Client,
    db: Any,
    org: TenantCtx,
    campaign: dict[str, Any],
    overrides: dict[str, Any],
    field: str,
) -> None:
    r = client.post(url(org, campaign), json=body(campaign, **overrides), headers=key())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in r.json()["errors"]]
    assert count(db, campaign) == 0


@pytest.mark.parametrize("missing", ["item_id", "quantity", "donor_name", "donor_contact"])
def test_create_pledge_missing_field_is_422(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any], missing: str
) -> None:
    payload = body(campaign)
    del payload[missing]
    r = client.post(url(org, campaign), json=payload, headers=key())
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == [missing]
    assert count(db, campaign) == 0


@pytest.mark.parametrize(
    ("content", "ctype", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b'"text"', "application/json", 422),
        (b"quantity=5", "application/x-www-form-urlencoded", 415),
        (b'{"a": "' + b"x" * (1024 * 1024) + b'"}', "application/json", 413),
    ],
    ids=["malformed", "empty", "array", "string", "form", "1mb"],
)
def test_create_pledge_with_malformed_request_is_4xx(
    client: httpx.Client,
    db: Any,
    org: TenantCtx,
    campaign: dict[str, Any],
    content: bytes,
    ctype: str,
    status: int,
) -> None:
    r = client.post(url(org, campaign), content=content, headers={**key(), "Content-Type": ctype})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert count(db, campaign) == 0


@pytest.mark.parametrize(
    "text", ["'; DROP TABLE donation; --", "Zoë 😀 Ñandú", "名前", "\u202eevil", "<script>"]
)
def test_create_pledge_stores_sql_and_unicode_text_verbatim(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any], text: str
) -> None:
    r = client.post(
        url(org, campaign), json=body(campaign, donor_name=text, message=text), headers=key()
    )
    assert r.status_code == 201, r.text
    row = db.fetchrow("SELECT * FROM donation WHERE id = $1", uuid.UUID(r.json()["id"]))
    # The message is stored encrypted (db/crypto.py), verbatim once decrypted.
    assert (row["donor_name"], RING.message_of(row)) == (text, text)


def test_anonymous_pledge_is_listed_as_anonymous(
    client: httpx.Client, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.post(
        url(org, campaign), json=body(campaign, donor_name="Segredo", anonymous=True), headers=key()
    )
    assert r.status_code == 201
    listing = client.get(url(org, campaign))
    assert [d["display_name"] for d in listing.json()["data"]] == ["Anonymous"]
    assert "Segredo" not in listing.text and "ana@example.org" not in listing.text


def test_pledge_shows_the_name_publicly_only_when_the_donor_opts_in(
    client: httpx.Client, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    """LGPD, minimal exposure: hidden by default, shown with show_name, and hidden
    again by the older `anonymous` flag."""
    for who, extra in (
        ("Sem Pedido", {}),
        ("Quer Aparecer", {"show_name": True}),
        ("Mudou De Ideia", {"show_name": True, "anonymous": True}),
    ):
        r = client.post(
            url(org, campaign), json=body(campaign, donor_name=who, **extra), headers=key()
        )
        assert r.status_code == 201, r.text
    listing = client.get(url(org, campaign))
    names = [d["display_name"] for d in listing.json()["data"]]
    assert names == ["Anonymous", "Quer Aparecer", "Anonymous"]
    assert "Sem Pedido" not in listing.text and "Mudou De Ideia" not in listing.text
    assert "ana@example.org" not in listing.text


def test_show_name_must_be_a_boolean(
    client: httpx.Client, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.post(url(org, campaign), json=body(campaign, show_name="sim"), headers=key())
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["show_name"]


def _waiting_inserts(db: Any) -> int:
    n: int = db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE '%INSERT INTO donation%'"
    )
    return n


def test_a_pledge_whose_client_goes_away_writes_nothing_and_logs_no_error(
    client: httpx.Client, api: Any, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    """The donor's connection closes while the pledge waits inside its transaction:
    Sanic cancels the handler, the transaction rolls back (no donation, no stored
    answer for the key), the log has no "unhandled error" traceback, and the donor's
    retry with the same key then pledges once."""
    item = campaign["items"][0]["id"]
    headers = {**key(), "X-Request-ID": f"gone-{uuid.uuid4().hex}"}
    blocker = db.run(asyncpg.connect(db.admin_dsn))
    try:
        # The insert's foreign-key check on the item waits for this row lock.
        db.run(blocker.execute("BEGIN"))
        db.run(blocker.execute("SELECT 1 FROM campaign_item WHERE id = $1 FOR UPDATE", item))
        payload = orjson.dumps(body(campaign))
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {url(org, campaign)} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
            sock.sendall(request)
            deadline = time.monotonic() + 10
            while _waiting_inserts(db) == 0:
                assert time.monotonic() < deadline, "the pledge never reached its insert"
                time.sleep(0.02)
        # The donor went away: the connection closed under the waiting request.
        deadline = time.monotonic() + 10
        while _waiting_inserts(db) > 0:  # the cancelled insert leaves the lock queue
            assert time.monotonic() < deadline, "the cancelled insert is still waiting"
            time.sleep(0.02)
    finally:
        db.run(blocker.execute("ROLLBACK"))
        db.run(blocker.close())
    assert count(db, campaign) == 0
    stored = db.fetchval(
        "SELECT count(*) FROM idempotency_record WHERE tenant_id = $1 AND key = $2",
        org.id,
        headers["Idempotency-Key"],
    )
    assert stored == 0
    # The handler was cancelled (its insert left the lock queue while the lock was
    # still held) and said so at INFO, which the API does not print by default.
    log = api.log_path.read_text(errors="replace")
    assert f"unhandled error on POST {url(org, campaign)}" not in log
    # The retry is a first attempt, not a replay, and pledges once.
    again = client.post(url(org, campaign), json=body(campaign), headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") is None
    assert count(db, campaign) == 1
