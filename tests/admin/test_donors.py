"""A data subject's requests with the real CLI (`conectades donor export|erase`), the
contact retention in `db prune`, and `POST /api/v1/donations/{id}/anonymize`: the
person's name, contact and message are gone from every table, cached answer and
dump; quantities and totals stay exact."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.crypto import Keyring
from infra.postgres import find_bindir
from infra.redis import LocalRedis
from tests.factories import Factory, TenantCtx, bearer
from tests.services import CONTACT_KEYS, ApiServer, Database, run_cli

RING = Keyring.from_env(CONTACT_KEYS)


def totals(db: Database, campaign: dict[str, Any]) -> list[dict[str, Any]]:
    rows = db.fetch(
        "SELECT t.* FROM item_totals t JOIN campaign_item i ON i.id = t.item_id "
        "WHERE i.campaign_id = $1 ORDER BY t.item_id",
        campaign["id"],
    )
    return [dict(r) for r in rows]


def contact() -> str:
    return f"Pessoa.{uuid.uuid4().hex[:10]}@Example.org"


@pytest.fixture
def two_tenants(factory: Factory) -> tuple[TenantCtx, TenantCtx, dict[str, Any], dict[str, Any]]:
    a, b = factory.tenant(), factory.tenant()
    return a, b, factory.campaign(a), factory.campaign(b)


def test_export_finds_the_persons_donations_in_every_tenant(
    db: Database, factory: Factory, two_tenants: Any
) -> None:
    a, b, ca, cb = two_tenants
    who = contact()
    mine = [
        factory.donation(a, ca, quantity=3, donor_contact=who, donor_name="Ana"),
        factory.donation(b, cb, quantity=4, donor_contact=f"  {who.upper()} "),
    ]
    factory.donation(a, ca, quantity=9, donor_contact=contact())  # someone else
    done = run_cli(db, "donor", "export", "--contact", who.lower())
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)["donations"]
    assert sorted(d["id"] for d in found) == sorted(d["id"] for d in mine)
    assert {d["tenant"] for d in found} == {a.slug, b.slug}
    assert {d["quantity"] for d in found} == {3, 4}
    audit = json.loads(done.stderr.strip().splitlines()[-1])
    assert audit["audit"] == "donor.export" and audit["donations"] == 2
    assert who.lower() not in done.stderr.lower()


def test_erase_leaves_totals_exact_and_no_trace_of_the_contact(
    db: Database,
    factory: Factory,
    client: httpx.Client,
    redis_server: LocalRedis,
    api: ApiServer,
    two_tenants: Any,
    tmp_path: Path,
) -> None:
    a, b, ca, cb = two_tenants
    who = contact()
    d1 = factory.donation(
        a,
        ca,
        quantity=3,
        donor_contact=who,
        donor_name="Ana Erasable",
        message="Mensagem de Ana",
        status="confirmed",
    )
    factory.donation(b, cb, quantity=4, donor_contact=who, donor_name="Ana Erasable")
    other = factory.donation(a, ca, quantity=5, donor_contact=contact(), donor_name="Bia")
    before = totals(db, ca), totals(db, cb)
    # Cached partner reads that show the contact (Redis holds their bytes).
    for _ in range(2):
        cached = client.get(f"/api/v1/donations/{d1['id']}", headers=a.headers)
    assert cached.headers["x-cache"] == "HIT" and who in cached.text

    done = run_cli(
        db, "donor", "erase", "--contact", who, "--yes", "--json", redis_url=redis_server.url
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"donations": 2, "tenants": 2}
    assert who.lower() not in done.stderr.lower()

    assert (totals(db, ca), totals(db, cb)) == before
    fresh = client.get(f"/api/v1/donations/{d1['id']}", headers=a.headers)
    assert fresh.status_code == 200 and fresh.headers["x-cache"] == "MISS"
    body = fresh.json()
    assert (body["donor_name"], body["donor_contact"], body["message"]) == ("", "", "")
    assert body["quantity"] == 3 and body["status"] == "confirmed"
    kept = client.get(f"/api/v1/donations/{other['id']}", headers=a.headers).json()
    assert kept["donor_name"] == "Bia" and kept["donor_contact"]
    # Nowhere in the database: a plain dump of it has no trace of the contact or name.
    dump = tmp_path / "dump.sql"
    subprocess.run(
        [str(find_bindir() / "pg_dump"), "--format=plain", "--file", str(dump), db.admin_dsn],
        check=True,
        capture_output=True,
    )
    text = dump.read_text().lower()
    assert who.lower() not in text and "ana erasable" not in text
    assert "mensagem de ana" not in text
    # Nor in the API's log.
    assert api.log_path is not None
    assert who.lower() not in api.log_path.read_text().lower()
    again = run_cli(db, "donor", "export", "--contact", who)
    assert json.loads(again.stdout) == {"donations": []}


def test_erase_asks_first_and_refuses_an_empty_contact(
    db: Database, factory: Factory, two_tenants: Any
) -> None:
    a, _, ca, _ = two_tenants
    who = contact()
    factory.donation(a, ca, donor_contact=who)
    # No answer on stdin: nothing is erased.
    done = run_cli(db, "donor", "erase", "--contact", who)
    assert done.returncode != 0 and "Aborted" in done.stderr
    hashed = RING.contact_hash(who)
    assert db.fetchval("SELECT count(*) FROM donation WHERE donor_contact_hmac = $1", hashed) == 1
    for command in ("export", "erase"):
        extra = ("--yes",) if command == "erase" else ()
        empty = run_cli(db, "donor", command, "--contact", "  ", *extra)
        assert empty.returncode != 0 and "--contact must not be empty" in empty.stderr


def test_prune_erases_contacts_past_the_retention_period(
    db: Database, factory: Factory, two_tenants: Any
) -> None:
    a, _, ca, _ = two_tenants
    old = factory.donation(a, ca, quantity=2, donor_contact=contact())
    new = factory.donation(a, ca, quantity=2, donor_contact=contact())
    db.execute(
        "UPDATE donation SET created_at = now() - interval '400 days' WHERE id = $1",
        uuid.UUID(old["id"]),
    )
    before = totals(db, ca)
    done = run_cli(db, "db", "prune", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["contacts"] >= 1
    rows = {
        str(r["id"]): r
        for r in db.fetch(
            "SELECT id, tenant_id, donor_contact, donor_contact_enc, donor_contact_hmac "
            "FROM donation WHERE campaign_id = $1",
            ca["id"],
        )
    }
    gone = rows[old["id"]]
    assert (gone["donor_contact_enc"], gone["donor_contact_hmac"]) == (None, None)
    assert RING.donor_contact_of(gone) == ""
    assert RING.donor_contact_of(rows[new["id"]]) == new["donor_contact"]
    assert totals(db, ca) == before
    longer = run_cli(db, "db", "prune", extra_env={"CONECTADES_CONTACT_RETENTION_DAYS": "0"})
    assert longer.returncode != 0 and "CONTACT_RETENTION_DAYS" in longer.stderr


# -- the partner endpoint ----------------------------------------------------------------


def anonymize(client: httpx.Client, donation_id: str, headers: dict[str, str]) -> httpx.Response:
    return client.post(f"/api/v1/donations/{donation_id}/anonymize", headers=headers)


def test_anonymize_endpoint_erases_the_person_and_keeps_totals(
    db: Database, factory: Factory, client: httpx.Client
) -> None:
    org = factory.tenant()
    campaign = factory.campaign(org)
    d = factory.donation(
        org, campaign, quantity=6, donor_name="Carla", message="Oi", status="confirmed"
    )
    page = f"/api/public/{org.slug}/campaigns/{campaign['slug']}"
    for _ in range(2):  # cached public answers that show the name and message
        listing = client.get(f"{page}/donations")
    assert "Carla" in listing.text and listing.headers["x-cache"] == "HIT"
    before = totals(db, campaign)
    r = anonymize(client, d["id"], org.headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["donor_name"], out["donor_contact"], out["message"]) == ("", "", "")
    assert out["anonymous"] is True and out["quantity"] == 6
    assert totals(db, campaign) == before
    after = client.get(f"{page}/donations")
    assert "Carla" not in after.text and '"Oi"' not in after.text
    assert [x["display_name"] for x in after.json()["data"]] == ["Anonymous"]
    assert anonymize(client, d["id"], org.headers).status_code == 200  # idempotent


def test_anonymize_needs_write_and_hides_other_tenants(
    factory: Factory, client: httpx.Client
) -> None:
    org, other = factory.tenant(), factory.tenant()
    d = factory.donation(org, factory.campaign(org))
    reader = bearer(factory.key(org, ("read",)))
    assert anonymize(client, d["id"], reader).status_code == 403
    assert anonymize(client, d["id"], {}).status_code == 401
    assert anonymize(client, d["id"], other.headers).status_code == 404
    assert anonymize(client, str(uuid.uuid4()), org.headers).status_code == 404
    bad = anonymize(client, "not-a-uuid", org.headers)
    assert bad.status_code in (404, 422) and bad.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert client.get(f"/api/v1/donations/{d['id']}", headers=org.headers).json()["donor_name"]
