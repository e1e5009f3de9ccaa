"""A sealed value the API cannot open (its key is no longer configured, or the stored
bytes were altered) costs that value, not the request: the partner's donation, its
list and its CSV export answer with the value null (named in `unreadable`), the
public's donations and the donor page leave the message out, each such read is
logged with the row id and counted, and no other donor's data is shown in its place.
A replay whose stored answer cannot be opened is a 409, not a 500. On the session's
real API, PostgreSQL and Redis; the values are altered in the database."""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any

import httpx

from tests.admin.test_contact_encryption import pledge, unique
from tests.factories import Factory, TenantCtx
from tests.services import ApiServer, Database


def alter(db: Database, donation_id: str, column: str) -> None:
    """Flip the last byte of a sealed column (the GCM tag): the value no longer opens."""
    db.execute(
        f"UPDATE donation SET {column} = overlay({column} placing "
        f"set_byte(substring({column} FROM length({column}) FOR 1), 0, "
        f"get_byte({column}, length({column}) - 1) # 1) FROM length({column}))"
        " WHERE id = $1",
        uuid.UUID(donation_id),
    )


def unreadable_count(client: httpx.Client, column: str) -> float:
    text = client.get("/metrics").text
    found = re.findall(rf'^conectades_unreadable_values_total\{{column="{column}"\}} (\S+)$',
                       text, re.M)  # fmt: skip
    return float(found[0]) if found else 0.0


def pledged(client: httpx.Client, org: TenantCtx, campaign: dict[str, Any], message: str) -> str:
    r = pledge(
        client, org.slug, campaign, donor_name="Rita", donor_contact=unique("rita"), message=message
    )
    assert r.status_code == 201, r.text
    donation_id: str = r.json()["id"]
    return donation_id


def test_one_unreadable_row_costs_its_values_not_the_list_the_export_or_the_page(
    client: httpx.Client, factory: Factory, db: Database, api: ApiServer
) -> None:
    org = factory.tenant()
    campaign = factory.campaign(org)
    good = factory.donation(org, campaign, donor_contact=unique("boa"), message=unique("ok"))
    bad = factory.donation(org, campaign, donor_contact=unique("ruim"), message=unique("perdida"))
    public_message = unique("recado publico")
    public_bad = pledged(client, org, campaign, public_message)
    public_good_message = unique("recado legivel")
    public_good = pledged(client, org, campaign, public_good_message)
    contacts_before = unreadable_count(client, "donor_contact")
    messages_before = unreadable_count(client, "message")
    alter(db, bad["id"], "donor_contact_enc")
    alter(db, public_bad, "message_enc")

    # The partner: the row, null where it cannot be opened, and says which.
    one = client.get(f"/api/v1/donations/{bad['id']}", headers=org.headers)
    assert one.status_code == 200, one.text
    got = one.json()
    assert got["donor_contact"] is None and got["unreadable"] == ["donor_contact"]
    assert got["message"] == bad["message"] and got["quantity"] == bad["quantity"]
    assert good["donor_contact"] not in one.text
    # The list: every row, the readable ones whole and without `unreadable`.
    listed = client.get(f"/api/v1/campaigns/{campaign['id']}/donations", headers=org.headers)
    assert listed.status_code == 200, listed.text
    rows = {d["id"]: d for d in listed.json()["data"]}
    assert set(rows) == {good["id"], bad["id"], public_bad, public_good}
    assert rows[good["id"]]["donor_contact"] == good["donor_contact"]
    assert "unreadable" not in rows[good["id"]]
    assert rows[bad["id"]]["donor_contact"] is None
    assert rows[public_bad]["message"] is None and rows[public_bad]["unreadable"] == ["message"]
    assert rows[public_good]["message"] == public_good_message

    # The export: every row; the unreadable cells empty.
    export = client.get(
        "/api/v1/donations/export", params={"campaign_id": campaign["id"]}, headers=org.headers
    )
    assert export.status_code == 200, export.text
    lines = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"), newline="")))
    by_id = {r["id"]: r for r in lines}
    assert set(by_id) == set(rows)
    assert by_id[bad["id"]]["donor_contact"] == ""
    assert by_id[good["id"]]["donor_contact"] == good["donor_contact"]
    assert by_id[public_bad]["message"] == ""

    # The public: the donations and the donor page answer, without that message.
    page = f"/api/public/{org.slug}/campaigns/{campaign['slug']}/donations"
    shown = client.get(page)
    assert shown.status_code == 200, shown.text
    public_rows = {d["id"]: d for d in shown.json()["data"]}
    assert public_rows[public_bad]["message"] == ""
    assert public_rows[public_good]["message"] == public_good_message
    html = client.get(f"/o/{org.slug}/{campaign['slug']}")
    assert html.status_code == 200
    assert public_good_message in html.text and public_message not in html.text

    # Counted and logged (the row id and why; never a plaintext).
    assert unreadable_count(client, "donor_contact") > contacts_before
    assert unreadable_count(client, "message") > messages_before
    assert api.log_path is not None
    log = api.log_path.read_text(errors="replace")
    assert f"donor_contact of {bad['id']} does not decrypt" in log
    assert f"message of {public_bad} does not decrypt" in log
    assert bad["donor_contact"] not in log
    # Leave no unreadable row behind in the session's database (erasure needs no key).
    for did in (bad["id"], public_bad):
        gone = client.post(f"/api/v1/donations/{did}/anonymize", headers=org.headers)
        assert gone.status_code == 200, gone.text


def test_a_replay_whose_stored_answer_cannot_be_opened_is_a_409(
    client: httpx.Client, factory: Factory, db: Database
) -> None:
    org = factory.tenant()
    campaign = factory.campaign(org)
    url = f"/api/v1/campaigns/{campaign['id']}/donations"
    body = {"item_id": campaign["items"][0]["id"], "quantity": 3, "donor_contact": unique("c")}
    key = unique("replay")
    first = client.post(url, json=body, headers={**org.headers, "Idempotency-Key": key})
    assert first.status_code == 201, first.text
    db.execute(
        "UPDATE idempotency_record SET body = overlay(body placing '\\x00'::bytea "
        "FROM length(body)) WHERE tenant_id = $1 AND key = $2",
        org.id,
        key,
    )
    again = client.post(url, json=body, headers={**org.headers, "Idempotency-Key": key})
    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"] == "/problems/idempotency-answer-unreadable"
    assert "already carried out" in again.json()["detail"]
    # Nothing was written twice: one donation.
    listed = client.get(url, headers=org.headers).json()["data"]
    assert [d["id"] for d in listed] == [first.json()["id"]]
