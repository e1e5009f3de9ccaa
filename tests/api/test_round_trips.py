"""How many round trips to PostgreSQL a donation costs, counted in PostgreSQL's own
statement log (issue 20: "a donation's round trips counted and reduced").

An API of its own with a pool of one connection, so after the configuration is
reloaded one request is enough to make that connection log (a backend reads a
reload before its next command, not while it waits for one). Each `execute` of a
prepared statement and each simple-query message is one round trip; the first use
of a statement on a connection also prepares it (one round trip more, once), so
the counted request is the second of its kind."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import Factory, TenantCtx
from tests.services import API_ROLE, ApiServer, Database, api_env

ROUND_TRIP = re.compile(r"\] (\S+) LOG:  duration: [0-9.]+ ms  (?:execute \S+|statement): (.*)")


def server_log(db: Database) -> Path:
    """The server's log where it really is (in a private folder, beside its data)."""
    assert db.pg.logfile is not None, "started"
    return db.pg.logfile


@pytest.fixture(scope="module")
def one_connection_api(db: Database, workdir: Any) -> Iterator[ApiServer]:
    env = api_env(db, CONECTADES_DB_POOL_MIN="1", CONECTADES_DB_POOL_MAX="1")
    server = ApiServer(env, workers=1, log=workdir / "api-round-trips.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def statement_log(db: Database, one_connection_api: ApiServer) -> Iterator[Any]:
    db.execute("ALTER SYSTEM SET log_min_duration_statement = 0")
    db.execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] %u '")
    db.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)
    # The API's one connection reads the new settings before its next command.
    httpx.get(one_connection_api.url + "/health/ready").raise_for_status()

    def since(offset: int) -> list[tuple[str, str]]:
        time.sleep(0.2)  # the log is written by the backend itself, promptly
        with open(server_log(db), encoding="utf-8", errors="replace") as f:
            f.seek(offset)
            found = (ROUND_TRIP.search(line) for line in f)
            return [(m.group(1), m.group(2)) for m in found if m]

    try:
        yield since
    finally:
        db.execute("ALTER SYSTEM RESET log_min_duration_statement")
        db.execute("ALTER SYSTEM RESET log_line_prefix")
        db.execute("SELECT pg_reload_conf()")


def api_round_trips(db: Database, since: Any, send: Any, tenant: TenantCtx) -> list[str]:
    """The statements the API's role sent to PostgreSQL while `send()` ran."""
    offset = server_log(db).stat().st_size
    r = send()
    assert r.status_code == 201, r.text
    api = [text for user, text in since(offset) if user == API_ROLE]
    assert any(str(tenant.id) in text for text in api), api
    return api


def test_a_pledge_is_four_round_trips(
    db: Database, one_connection_api: ApiServer, factory: Factory, statement_log: Any
) -> None:
    org = factory.tenant()
    campaign = factory.campaign_row(
        org, ends_at=datetime.now(UTC) + timedelta(days=5), items=(("Feijão", "kg", 300),)
    )
    path = f"/api/public/{org.slug}/campaigns/{campaign['slug']}/donations"
    body = {
        "item_id": str(campaign["items"][0]["id"]),
        "quantity": 2,
        "donor_name": "Ana",
        "donor_contact": "ana@example.org",
    }
    with httpx.Client(base_url=one_connection_api.url, timeout=30) as client:

        def send() -> httpx.Response:
            return client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})

        send().raise_for_status()  # prepares the statements; the tenant is now memoized
        sent = api_round_trips(db, statement_log, send, org)
    # BEGIN with the tenant and the key's lock; the pledge with the key's stored
    # answer looked for in the same statement (none: tenant active, campaign
    # accepting, item, insert); the stored answer with the event; COMMIT. It was
    # nine (the tenant looked up, the lock, the campaign and the event each a round
    # trip of its own), then five (the stored answer read before the insert).
    assert len(sent) == 4, sent
    assert sent[0].startswith("BEGIN;") and "idempotency_lock(" in sent[0]
    assert sent[1].startswith("WITH stored AS (SELECT fingerprint")  # (its first line)
    assert sent[-1] == "COMMIT"


def test_a_keyed_partner_donation_is_four_round_trips_and_its_audit_row_one(
    db: Database, one_connection_api: ApiServer, factory: Factory, statement_log: Any
) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    path = f"/api/v1/campaigns/{campaign['id']}/donations"
    body = {"item_id": campaign["items"][0]["id"], "quantity": 4, "donor_name": "Ana"}
    with httpx.Client(base_url=one_connection_api.url, timeout=30) as client:

        def send() -> httpx.Response:
            headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
            return client.post(path, json=body, headers=headers)

        send().raise_for_status()  # prepares; the API key is now memoized
        sent = api_round_trips(db, statement_log, send, tenant)
    # The donation's transaction (BEGIN with the lock, insert with the stored
    # answer looked for in the same statement, stored answer with the event, COMMIT:
    # it was seven, then five) and the audit row, one call after the answer is built
    # (it was a transaction of three: migration 0027).
    assert len(sent) == 5, sent
    assert sent[0].startswith("BEGIN;") and "idempotency_lock(" in sent[0]
    assert sent[1].startswith("WITH stored AS (SELECT fingerprint")  # (its first line)
    assert sent[3] == "COMMIT" and sent[4].startswith("SELECT audit_api_entry(")


def test_head_on_the_export_sends_the_headers_without_reading_the_donations(
    db: Database, one_connection_api: ApiServer, factory: Factory, statement_log: Any
) -> None:
    """HEAD answers as GET would, less the body; it ran the whole export's query
    before (Sanic answers HEAD with the GET handler and drops the body)."""
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    body = {"item_id": campaign["items"][0]["id"], "quantity": 4, "donor_name": "Ana"}
    path = "/api/v1/donations/export"
    with httpx.Client(base_url=one_connection_api.url, headers=tenant.headers, timeout=30) as c:
        made = c.post(f"/api/v1/campaigns/{campaign['id']}/donations", json=body)
        assert made.status_code == 201, made.text

        def sent_by(method: str, url: str) -> tuple[httpx.Response, list[str]]:
            offset = server_log(db).stat().st_size
            r = c.request(method, url)
            sent = [text for user, text in statement_log(offset) if user == API_ROLE]
            # (the API key's lookup, when its 5-s memo has lapsed, is not the export's)
            return r, [t for t in sent if not t.startswith("SELECT * FROM auth_api_key(")]

        get, get_sent = sent_by("GET", path)
        head, head_sent = sent_by("HEAD", path)
        assert get.status_code == head.status_code == 200
        assert head.content == b"" and made.json()["id"] in get.text
        for name in ("content-type", "content-disposition", "cache-control"):
            assert (
                head.headers[name].split("donations-")[0]
                == get.headers[name].split("donations-")[0]
            )
        # GET: BEGIN with the tenant, the export's cursor, COMMIT; HEAD: no cursor.
        assert len(get_sent) == 3 and get_sent[-1] == "COMMIT", get_sent
        assert get_sent[0].startswith("BEGIN;"), get_sent
        assert len(head_sent) == 2 and head_sent[0] == get_sent[0], head_sent
        assert head_sent[-1] == "COMMIT", head_sent
        # A campaign that is not this tenant's is the same 404 either way.
        other = factory.campaign(factory.tenant())
        for method in ("GET", "HEAD"):
            r = c.request(method, path, params={"campaign_id": other["id"]})
            assert r.status_code == 404, (method, r.status_code)
