"""Donors' contacts and messages encrypted at rest (db/crypto.py, migration 0018) on real
services: nothing of a pledge's contact or message in a dump of the database, the
partner and the public still read what they read before, rows from before the
migration encrypted by `conectades donor rotate-keys`, keys rotated and retired, and
a missing key or an altered value refused clearly."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from db import crypto
from db.crypto import Keyring
from infra.postgres import find_bindir
from tests.admin.conftest import OwnDatabase
from tests.factories import Factory
from tests.services import CONTACT_KEYS, Database, run_cli

RING = Keyring.from_env(CONTACT_KEYS)
HMAC = CONTACT_KEYS["CONECTADES_CONTACT_HMAC_KEY"]
OLD = CONTACT_KEYS["CONECTADES_CONTACT_KEYS"]  # key 1
NEW = f"2:{crypto.new_key()}"
# A well-formed key in a test parameter: fixed, so every collection names the test alike.
FIXED_KEY = "Zml4ZWQtdGVzdC1rZXktZm9yLXBhcmFtZXRyaXplISE="


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def dump(dsn: str, path: Path) -> str:
    """A plain pg_dump of the database, lower-cased."""
    subprocess.run(
        [str(find_bindir() / "pg_dump"), "--format=plain", "--file", str(path), dsn],
        check=True,
        capture_output=True,
    )
    return path.read_text().lower()


def pledge(
    client: httpx.Client, org_slug: str, campaign: dict[str, Any], **fields: Any
) -> httpx.Response:
    body = {"item_id": campaign["items"][0]["id"], "quantity": 2, "show_name": True, **fields}
    return client.post(
        f"/api/public/{org_slug}/campaigns/{campaign['slug']}/donations",
        json=body,
        headers={"Idempotency-Key": unique("k")},
    )


def test_a_dump_holds_no_contact_or_message_and_the_api_reads_them(
    db: Database, factory: Factory, client: httpx.Client, tmp_path: Path
) -> None:
    org = factory.tenant()
    campaign = factory.campaign(org)
    public_contact, public_message = f"{unique('Doadora')}@Example.org", unique("Mensagem publica")
    partner_contact, partner_message = unique("+55 11 9"), unique("Recado do parceiro")
    r = pledge(
        client,
        org.slug,
        campaign,
        donor_name="Rita",
        donor_contact=f"  {public_contact} ",
        message=public_message,
    )
    assert r.status_code == 201, r.text
    pledged = r.json()["id"]
    key = {"Idempotency-Key": unique("partner")}
    body = {
        "item_id": campaign["items"][0]["id"],
        "quantity": 4,
        "donor_name": "Paulo",
        "donor_contact": partner_contact,
        "message": partner_message,
    }
    url = f"/api/v1/campaigns/{campaign['id']}/donations"
    first = client.post(url, json=body, headers={**org.headers, **key})
    assert first.status_code == 201, first.text
    recorded = first.json()
    assert (recorded["donor_contact"], recorded["message"]) == (partner_contact, partner_message)

    # Not readable by a SELECT: the text columns are empty, the sealed ones are not text.
    for did in (pledged, recorded["id"]):
        row = db.fetchrow(
            "SELECT donor_contact, message, donor_contact_enc, message_enc, donor_contact_hmac "
            "FROM donation WHERE id = $1",
            uuid.UUID(did),
        )
        assert row is not None
        assert (row["donor_contact"], row["message"]) == ("", "")
        assert row["donor_contact_enc"] and row["message_enc"] and row["donor_contact_hmac"]
    # Nor by a dump (the idempotency record of the partner's answer included).
    text = dump(db.admin_dsn, tmp_path / "dump.sql")
    for secret in (public_contact, public_message, partner_contact, partner_message):
        assert secret.lower() not in text, secret

    # The partner reads them, also from a replay of the stored answer.
    got = client.get(f"/api/v1/donations/{pledged}", headers=org.headers).json()
    assert (got["donor_contact"], got["message"]) == (f"  {public_contact} ", public_message)
    again = client.post(url, json=body, headers={**org.headers, **key})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == recorded
    listed = client.get(url, headers=org.headers).json()["data"]
    assert {d["message"] for d in listed} == {public_message, partner_message}
    # The public sees the message as before (never the contact), in JSON and HTML.
    page = f"/api/public/{org.slug}/campaigns/{campaign['slug']}/donations"
    shown = {d["id"]: d for d in client.get(page).json()["data"]}
    assert shown[pledged]["message"] == public_message
    assert shown[pledged]["display_name"] == "Rita"
    html = client.get(f"/o/{org.slug}/{campaign['slug']}").text
    assert public_message in html and public_contact not in html

    # The donor commands find the person by the contact's hash (trimmed, any case).
    found = run_cli(db, "donor", "export", "--contact", public_contact.upper())
    assert found.returncode == 0, found.stderr
    exported = json.loads(found.stdout)["donations"]
    assert [d["id"] for d in exported] == [pledged]
    assert exported[0]["donor_contact"] == f"  {public_contact} "
    assert exported[0]["message"] == public_message
    assert "donor_contact_enc" not in exported[0] and "tenant_id" not in exported[0]


def test_partner_cannot_move_a_sealed_value_and_tampering_is_refused(
    db: Database, factory: Factory, client: httpx.Client
) -> None:
    """A sealed contact copied onto another row (or altered) does not decrypt there: the
    read fails instead of showing one donor's contact on another's donation."""
    org = factory.tenant()
    campaign = factory.campaign(org)
    a = factory.donation(org, campaign, donor_contact=unique("a"))
    b = factory.donation(org, campaign, donor_contact=unique("b"))
    sealed = db.fetchval("SELECT donor_contact_enc FROM donation WHERE id = $1", uuid.UUID(a["id"]))
    row = dict(
        db.fetchrow(
            "SELECT id, tenant_id, donor_contact, donor_contact_enc FROM donation WHERE id = $1",
            uuid.UUID(b["id"]),
        )
        or {}
    )
    with pytest.raises(crypto.UnreadableValue, match="copied from another row"):
        RING.donor_contact_of({**row, "donor_contact_enc": sealed})
    flipped = bytearray(row["donor_contact_enc"])
    flipped[-1] ^= 1
    with pytest.raises(crypto.UnreadableValue, match="altered"):
        RING.donor_contact_of({**row, "donor_contact_enc": bytes(flipped)})
    # Through the API too: the moved value is not shown (null, named in `unreadable`;
    # tests/api/test_unreadable_values.py), never another donor's contact.
    db.execute(
        "UPDATE donation SET donor_contact_enc = $2 WHERE id = $1", uuid.UUID(b["id"]), sealed
    )
    r = client.get(f"/api/v1/donations/{b['id']}", headers=org.headers)
    assert r.status_code == 200 and a["donor_contact"] not in r.text
    assert r.json()["donor_contact"] is None and r.json()["unreadable"] == ["donor_contact"]
    client.post(f"/api/v1/donations/{b['id']}/anonymize", headers=org.headers)


def _insert_plaintext_rows(own: OwnDatabase, db: Database, contact: str) -> list[uuid.UUID]:
    """Two donations as rows written before migration 0018 (plaintext columns)."""

    async def go() -> list[uuid.UUID]:
        conn = await asyncpg.connect(own.admin_dsn)
        try:
            tenant = await conn.fetchval(
                "INSERT INTO tenant (slug, name) VALUES ($1, 'Org') RETURNING id", unique("org")
            )
            campaign = await conn.fetchval(
                "INSERT INTO campaign (tenant_id, slug, title, status) "
                "VALUES ($1, 'c', 'Campanha', 'published') RETURNING id",
                tenant,
            )
            item = await conn.fetchval(
                "INSERT INTO campaign_item (tenant_id, campaign_id, name, unit, "
                "quantity_requested) VALUES ($1, $2, 'Arroz', 'kg', 100) RETURNING id",
                tenant,
                campaign,
            )
            ids = []
            for n, who in enumerate((contact, f" {contact.upper()}")):
                ids.append(
                    await conn.fetchval(
                        "INSERT INTO donation (tenant_id, campaign_id, item_id, quantity, "
                        "donor_contact, message) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                        tenant,
                        campaign,
                        item,
                        n + 1,
                        who,
                        f"antiga {n}",
                    )
                )
            return ids
        finally:
            await conn.close()

    return db.run(go())


def _cli(db: Database, own: OwnDatabase, keys: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**own.env, "CONECTADES_CONTACT_KEYS": keys, "CONECTADES_CONTACT_HMAC_KEY": HMAC}
    return run_cli(db, *args, extra_env=env)


def _sealed_keys(db: Database, own: OwnDatabase) -> set[int]:
    rows = own.fetch(db, "SELECT donor_contact_enc, message_enc FROM donation")
    return {crypto.key_id(bytes(v)) for r in rows for v in r if v is not None}


def test_rotate_keys_encrypts_old_rows_then_rotates_and_old_keys_can_go(
    db: Database, own_database: Callable[..., OwnDatabase], tmp_path: Path
) -> None:
    own = own_database()
    who = f"{unique('antes')}@example.org"
    ids = _insert_plaintext_rows(own, db, who)
    migrated = _cli(db, own, OLD, "db", "migrate")
    assert "2 donations still hold a plaintext contact" in migrated.stdout, migrated.stdout
    # Before encryption: still found (by the plaintext column), and read as it is.
    before = _cli(db, own, OLD, "donor", "export", "--contact", who)
    assert before.returncode == 0, before.stderr
    assert len(json.loads(before.stdout)["donations"]) == 2

    done = _cli(db, own, OLD, "donor", "rotate-keys", "--json", "--batch", "1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "scanned": 2, "encrypted": 2, "rotated": 0, "skipped": 0, "unreadable": 0,
        "rehashed": 0, "answers": 0, "answers_unreadable": 0, "key": 1
    }  # fmt: skip
    assert own.fetchval(db, "SELECT count(*) FROM donation WHERE donor_contact <> ''") == 0
    assert own.fetchval(db, "SELECT count(*) FROM donation WHERE message <> ''") == 0
    assert _sealed_keys(db, own) == {1}
    assert who.lower() not in dump(own.admin_dsn, tmp_path / "after.sql")
    assert "antiga 0" not in (tmp_path / "after.sql").read_text()
    again = _cli(db, own, OLD, "donor", "rotate-keys", "--json")
    assert json.loads(again.stdout)["encrypted"] == 0  # nothing left to do

    # Key 2 first: rows move to it; key 1 still listed, so reading works throughout.
    rotated = _cli(db, own, f"{NEW},{OLD}", "donor", "rotate-keys", "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["rotated"] == 2
    assert _sealed_keys(db, own) == {2}
    # Key 1 removed: everything still reads, found by the same hash.
    after = _cli(db, own, NEW, "donor", "export", "--contact", who)
    assert after.returncode == 0, after.stderr
    exported = json.loads(after.stdout)["donations"]
    assert sorted(str(d["id"]) for d in exported) == sorted(str(i) for i in ids)
    assert {d["message"] for d in exported} == {"antiga 0", "antiga 1"}
    assert {d["donor_contact"] for d in exported} == {who, f" {who.upper()}"}


def test_rotate_keys_reseals_stored_answers_so_replays_survive_the_old_key(
    db: Database, own_database: Callable[..., OwnDatabase]
) -> None:
    """A stored answer of an idempotent request repeats a contact, sealed like it: the
    rotation seals it again under the newest key, so a replay within the day still
    reads once the old key is gone; one no listed key opens is counted, not fatal."""
    own = own_database()
    _insert_plaintext_rows(own, db, f"{unique('resposta')}@example.org")
    tenant = own.fetchval(db, "SELECT id FROM tenant")
    answer = b'{"donor_contact": "resposta@example.org"}'
    stored = {}
    for key in ("k-1", "k-2", "k-broken"):
        place = crypto.answer_place(tenant, "key:x", key)
        sealed = RING.seal_bytes(answer, column=crypto.RESPONSE, **place)
        if key == "k-broken":
            sealed = sealed[:-1] + bytes((sealed[-1] ^ 1,))
        stored[key] = sealed
        own.fetch(
            db,
            "INSERT INTO idempotency_record (tenant_id, key, scope, fingerprint, status_code, "
            "body) VALUES ($1, $2, 'key:x', '\\x00', 201, $3)",
            tenant,
            key,
            sealed,
        )

    rotated = _cli(db, own, f"{NEW},{OLD}", "donor", "rotate-keys", "--json", "--batch", "2")
    assert rotated.returncode == 0, rotated.stderr
    result = json.loads(rotated.stdout)
    assert (result["answers"], result["answers_unreadable"]) == (2, 1), result
    assert "1 stored answers of idempotent requests could not be opened" in rotated.stderr
    only_new = Keyring.parse(NEW, HMAC)
    rows = {r["key"]: bytes(r["body"]) for r in own.fetch(
        db, "SELECT key, body FROM idempotency_record")}  # fmt: skip
    for key in ("k-1", "k-2"):
        assert crypto.key_id(rows[key]) == 2
        place = crypto.answer_place(tenant, "key:x", key)
        assert only_new.open_bytes(rows[key], column=crypto.RESPONSE, **place) == answer
    assert rows["k-broken"] == stored["k-broken"]  # left as it was
    again = _cli(db, own, f"{NEW},{OLD}", "donor", "rotate-keys", "--json")
    assert json.loads(again.stdout)["answers"] == 0  # nothing left to do


def test_the_lookup_key_rotates_too_and_the_person_is_found_throughout(
    db: Database, own_database: Callable[..., OwnDatabase]
) -> None:
    """A leaked lookup key lets anyone with a dump test guessed contacts (phone
    numbers are few) against the hashes, so it rotates like the encryption key: the
    new key listed first (`NEW,OLD`) writes new hashes and lookups try both; then
    `rotate-keys` rewrites the old hashes, and the old key can go."""
    own = own_database()
    who = f"{unique('hash')}@example.org"
    ids = _insert_plaintext_rows(own, db, who)
    new_hmac = crypto.new_key()

    def cli(hmac_keys: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**own.env, "CONECTADES_CONTACT_KEYS": OLD, "CONECTADES_CONTACT_HMAC_KEY": hmac_keys}
        return run_cli(db, *args, extra_env=env)

    def found(hmac_keys: str) -> list[str]:
        done = cli(hmac_keys, "donor", "export", "--contact", who.upper())
        assert done.returncode == 0, done.stderr
        return sorted(str(d["id"]) for d in json.loads(done.stdout)["donations"])

    assert cli(HMAC, "donor", "rotate-keys").returncode == 0  # sealed, hashed under HMAC
    everyone = sorted(str(i) for i in ids)
    assert found(new_hmac) == []  # the new key alone does not know the old hashes
    assert found(f"{new_hmac},{HMAC}") == everyone  # during the rotation: both tried
    rotated = cli(f"{new_hmac},{HMAC}", "donor", "rotate-keys", "--json")
    assert rotated.returncode == 0, rotated.stderr
    result = json.loads(rotated.stdout)
    assert (result["rehashed"], result["rotated"], result["encrypted"]) == (2, 0, 0), result
    assert found(new_hmac) == everyone  # the old key can go
    assert found(HMAC) == []  # and no hash under it is left
    again = cli(new_hmac, "donor", "rotate-keys", "--json")
    assert json.loads(again.stdout)["rehashed"] == 0  # nothing left to do
    erased = cli(new_hmac, "donor", "erase", "--contact", who, "--yes", "--json")
    assert erased.returncode == 0 and json.loads(erased.stdout)["donations"] == 2


def test_a_removed_key_refuses_its_rows_clearly(
    db: Database, own_database: Callable[..., OwnDatabase]
) -> None:
    own = own_database()
    who = f"{unique('chave')}@example.org"
    _insert_plaintext_rows(own, db, who)
    assert _cli(db, own, OLD, "donor", "rotate-keys").returncode == 0
    # Key 1 dropped before rotating to key 2: its rows cannot be read, and say why.
    export = _cli(db, own, NEW, "donor", "export", "--contact", who)
    assert export.returncode == 1
    assert "encrypted with key 1, which is not in CONECTADES_CONTACT_KEYS" in export.stderr
    rotate = _cli(db, own, NEW, "donor", "rotate-keys", "--json")
    assert rotate.returncode == 1 and json.loads(rotate.stdout)["unreadable"] == 2
    assert "2 donations could not be opened" in rotate.stderr
    assert _sealed_keys(db, own) == {1}  # left as they were
    # Erasure needs only the hash: it still works without the old key.
    erase = _cli(db, own, NEW, "donor", "erase", "--contact", who, "--yes", "--json")
    assert erase.returncode == 0 and json.loads(erase.stdout)["donations"] == 2
    assert _sealed_keys(db, own) == set()


@pytest.mark.parametrize(
    ("keys", "hmac_key", "says"),
    [
        ("", HMAC, "CONECTADES_CONTACT_KEYS is not set"),
        (OLD, "", "CONECTADES_CONTACT_HMAC_KEY is not set"),
        ("1:c2hvcnQ=", HMAC, "key 1 is 5 bytes; AES-256 needs 32"),
        ("one:" + FIXED_KEY, HMAC, "each entry is id:base64key"),
        (f"{OLD},{OLD}", HMAC, "key id 1 is listed twice"),
        (OLD, "c2hvcnQ=", "at least 32 are needed"),
        (OLD, f"{HMAC},c2hvcnQ=", "CONECTADES_CONTACT_HMAC_KEY: key 2 is 5 bytes"),
        (OLD, f"{HMAC},{HMAC}", "CONECTADES_CONTACT_HMAC_KEY: key 2 is listed twice"),
    ],
)
def test_cli_refuses_missing_or_malformed_keys(
    db: Database, keys: str, hmac_key: str, says: str
) -> None:
    env = {"CONECTADES_CONTACT_KEYS": keys, "CONECTADES_CONTACT_HMAC_KEY": hmac_key}
    done = run_cli(db, "donor", "export", "--contact", "x@example.org", extra_env=env)
    assert done.returncode == 2 and says in done.stderr, done.stderr


def test_seed_stores_no_plaintext(db: Database, own_database: Callable[..., OwnDatabase]) -> None:
    own = own_database()
    args = ("seed", "--tenants", "1", "--campaigns-per-tenant", "3", "--donations", "40")
    done = run_cli(db, *args, "--json", extra_env=own.env)
    assert done.returncode == 0, done.stderr
    plain = "SELECT count(*) FROM donation WHERE donor_contact <> '' OR message <> ''"
    assert own.fetchval(db, plain) == 0
    rows = own.fetch(
        db,
        "SELECT id, tenant_id, donor_contact, donor_contact_enc, donor_contact_hmac, "
        "message, message_enc FROM donation",
    )
    assert len(rows) == 40
    messages = [RING.message_of(r) for r in rows]  # some seeded messages are empty
    assert sum(1 for m in messages if m) == sum(1 for r in rows if r["message_enc"]) > 0
    for r in rows:
        contact = RING.donor_contact_of(r)
        assert contact and RING.contact_hash(contact) == r["donor_contact_hmac"]


def test_longest_texts_in_four_byte_characters_fit_sealed(
    factory: Factory, client: httpx.Client
) -> None:
    """200 and 1000 characters of 4 UTF-8 bytes each: the sealed columns' size limits
    (migration 0018) hold the longest values the API accepts."""
    org = factory.tenant()
    campaign = factory.campaign(org)
    made = factory.donation(org, campaign, donor_contact="😀" * 200, message="😀" * 1000)
    got = client.get(f"/api/v1/donations/{made['id']}", headers=org.headers).json()
    assert (got["donor_contact"], got["message"]) == ("😀" * 200, "😀" * 1000)
