"""Email notifications end to end: a public pledge through the real API queues its
jobs in the pledge's transaction; the worker's email job sends them to a real SMTP
sink (infra/smtp_sink.py); the organization's "Confirmar recebimento" link shows a
page on GET and confirms once on POST, through the partner API's status change."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx
import pytest

from db.queries import email as eq
from notify import links
from notify.jobs import drain_email_batch
from notify.messages import email_address
from notify.settings import EmailSettings
from notify.smtp import Mailer
from tests.api.test_unreadable_values import alter
from tests.factories import Factory, TenantCtx
from tests.notify.conftest import KEYRING, SENDER_DOMAIN, Sink, jobs, pledge, smtp_env, unique
from tests.services import LINK_SECRET, ApiServer, Database

LINK = re.compile(r"https?://\S+/confirmar/[\w.-]+")


@pytest.fixture
def org(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def org_email() -> str:
    return unique("org")


@pytest.fixture
def campaign(factory: Factory, org: TenantCtx, org_email: str) -> dict[str, Any]:
    return factory.campaign(
        org, title=f"Cestas do bairro {uuid.uuid4().hex[:6]}", contact=org_email
    )


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def confirm_link(msg: EmailMessage) -> str:
    text, html = parts(msg)
    found = LINK.search(text)
    assert found, text
    assert f'href="{found[0]}"' in html
    return found[0]


def partner_status(client: httpx.Client, org: TenantCtx, donation_id: str) -> str:
    r = client.get(f"/api/v1/donations/{donation_id}", headers=org.headers)
    assert r.status_code == 200, r.text
    status: str = r.json()["status"]
    return status


def contributed(client: httpx.Client, org: TenantCtx, campaign: dict[str, Any]) -> int:
    r = client.get(f"/api/v1/campaigns/{campaign['id']}", headers=org.headers)
    assert r.status_code == 200, r.text
    item = next(i for i in r.json()["items"] if i["id"] == campaign["items"][1]["id"])
    return int(item["contributed_quantity"])


@pytest.fixture
def sent(
    client: httpx.Client,
    db: Database,
    org: TenantCtx,
    campaign: dict[str, Any],
    org_email: str,
    sink: Sink,
    deliver: Callable[..., int],
) -> dict[str, Any]:
    """A pledge with an email contact, its jobs delivered: the pledge, the donor's
    address, the jobs and the two messages."""
    donor = unique("doador")
    body = pledge(client, org, campaign, contact=donor, name="Zé <b>& Cia</b>")
    deliver()
    receipts, notices = sink.to(donor), sink.to(org_email)
    assert len(receipts) == 1 and len(notices) == 1, (receipts, notices)
    return {
        "pledge": body,
        "donor": donor,
        "jobs": jobs(db, body["id"]),
        "receipt": receipts[0],
        "notice": notices[0],
    }


def test_pledge_queues_both_jobs_in_its_own_transaction(
    client: httpx.Client, db: Database, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    body = pledge(client, org, campaign, contact=unique("d"))
    # No worker ran: the jobs were committed with the pledge.
    found = jobs(db, body["id"])
    assert sorted(found) == ["notice", "receipt"]
    assert {j["status"] for j in found.values()} == {"pending"}
    assert all(j["tenant_id"] == org.id for j in found.values())


def test_a_pledge_commits_without_notifying_the_worker(
    client: httpx.Client, db: Database, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    """No NOTIFY from the pledge's transaction (migration 0021): it takes one lock for
    the whole database at commit, so each pledge's commit waited for the previous
    one's. The worker polls for its jobs instead."""

    async def notifications_during_a_pledge() -> tuple[list[str], str]:
        conn = await asyncpg.connect(db.admin_dsn)
        heard: list[str] = []
        try:
            await conn.add_listener("email", lambda _c, _pid, channel, _p: heard.append(channel))
            body = await asyncio.to_thread(pledge, client, org, campaign, contact=unique("n"))
            await conn.execute("SELECT 1")  # notifications arrive before this answer
            await asyncio.sleep(0.3)
        finally:
            await conn.close()
        return heard, body["id"]

    heard, donation_id = asyncio.run(notifications_during_a_pledge())
    assert heard == []
    assert sorted(jobs(db, donation_id)) == ["notice", "receipt"]


def test_a_pledge_through_the_donor_pages_form_queues_both_jobs(
    client: httpx.Client, db: Database, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    form = {
        "item": campaign["items"][1]["id"],
        "quantidade": "4",
        "nome": "Joana",
        "contato": unique("form"),
        "mensagem": "",
    }
    r = client.post(f"/o/{org.slug}/{campaign['slug']}", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    record = r.headers["location"].split("registro=", 1)[1]
    assert sorted(jobs(db, record)) == ["notice", "receipt"]


def test_partner_recorded_donations_queue_no_email(
    factory: Factory, db: Database, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    donation = factory.donation(org, campaign, donor_contact=unique("p"))
    assert jobs(db, donation["id"]) == {}


def test_receipt_to_donor_in_portuguese_with_both_parts(
    sent: dict[str, Any], campaign: dict[str, Any], org_email: str
) -> None:
    msg = sent["receipt"]
    assert msg["Subject"] == f"Recebemos sua doação para {campaign['title']}"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["To"].addresses[0].addr_spec == sent["donor"]
    assert msg["Reply-To"].addresses[0].addr_spec == org_email
    assert msg["Message-ID"] == f"<{sent['jobs']['receipt']['id']}@{SENDER_DOMAIN}>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Content-Language"] == "pt-BR"
    text, html = parts(msg)
    assert "Recebemos sua doação" in text and campaign["title"] in text
    assert "Feijão" in text and "7 kg" in text
    assert sent["pledge"]["id"][:8] in text
    assert "Zé <b>& Cia</b>" in text  # plain text is not escaped
    assert '<html lang="pt-BR">' in html and "7 kg" in html and "Feijão" in html
    assert "Zé &lt;b&gt;&amp; Cia&lt;/b&gt;" in html  # autoescaped
    assert "<b>& Cia" not in html
    assert "/confirmar/" not in text + html  # the donor gets no confirm link


def test_notice_to_organization_with_confirm_link(
    sent: dict[str, Any], campaign: dict[str, Any], org_email: str, db: Database
) -> None:
    msg = sent["notice"]
    assert msg["Subject"] == f"Nova doação: 7 kg de Feijão para {campaign['title']}"
    assert msg["To"].addresses[0].addr_spec == org_email
    assert msg["Reply-To"].addresses[0].addr_spec == sent["donor"]
    assert msg["Message-ID"] == f"<{sent['jobs']['notice']['id']}@{SENDER_DOMAIN}>"
    text, html = parts(msg)
    assert sent["donor"] in text and "Levo no sábado" in text and "7 kg" in text
    assert "Confirmar recebimento" in html
    link = confirm_link(msg)
    claims = links.verify(LINK_SECRET, link.rsplit("/", 1)[1])
    assert claims.job_id == sent["jobs"]["notice"]["id"]
    assert {r["status"] for r in jobs(db, sent["pledge"]["id"]).values()} == {"sent"}


def test_confirm_link_get_changes_nothing_post_confirms_once(
    sent: dict[str, Any],
    client: httpx.Client,
    db: Database,
    org: TenantCtx,
    campaign: dict[str, Any],
) -> None:
    did = sent["pledge"]["id"]
    link = confirm_link(sent["notice"])
    path = link.split("://", 1)[1].split("/", 1)[1]
    before = contributed(client, org, campaign)

    for _ in range(2):  # a mail scanner and then the person: still pending
        r = client.get("/" + path)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "private, no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert '<html lang="pt-BR">' in r.text
        assert f'<form method="post" action="/{path}">' in r.text
        assert "Confirmar recebimento</button>" in r.text
        assert "Feijão" in r.text and "7 kg" in r.text
        assert sent["donor"] not in r.text  # no contact on the page
    assert partner_status(client, org, did) == "pending"
    assert contributed(client, org, campaign) == before

    r = client.post("/" + path, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/" + path
    assert partner_status(client, org, did) == "confirmed"
    assert contributed(client, org, campaign) == before + 7
    events = db.fetch("SELECT type FROM event WHERE resource_id = $1 ORDER BY seq", uuid.UUID(did))
    assert [e["type"] for e in events] == ["donation.created", "donation.confirmed"]
    page = client.get("/" + path)
    assert page.status_code == 200 and "Recebimento confirmado" in page.text
    assert "<form" not in page.text.split("<main", 1)[1]

    again = client.post("/" + path, follow_redirects=False)
    assert again.status_code == 409
    assert "Link já usado" in again.text and "text/html" in again.headers["content-type"]
    assert contributed(client, org, campaign) == before + 7
    assert len(db.fetch("SELECT 1 FROM event WHERE resource_id = $1", uuid.UUID(did))) == 2


def _tamper(token: str) -> str:
    head, body, sig = token.split(".")
    flipped = ("A" if sig[5] != "A" else "B").join((sig[:5], sig[6:]))
    return f"{head}.{body}.{flipped}"


def test_bad_links_are_portuguese_4xx_pages_and_change_nothing(
    sent: dict[str, Any], client: httpx.Client, org: TenantCtx
) -> None:
    token = confirm_link(sent["notice"]).rsplit("/", 1)[1]
    job = sent["jobs"]["notice"]
    expired = links.sign(
        LINK_SECRET,
        job_id=job["id"],
        tenant_id=org.id,
        issued=datetime.now(UTC) - timedelta(days=30),
        ttl=14 * 24 * 3600,
    )
    other_key = links.sign(
        "another-secret-" + "z" * 40,
        job_id=job["id"],
        tenant_id=org.id,
        issued=datetime.now(UTC),
        ttl=3600,
    )
    unknown = links.sign(
        LINK_SECRET, job_id=uuid.uuid4(), tenant_id=org.id, issued=datetime.now(UTC), ttl=3600
    )
    cases = [
        (_tamper(token), 400, "Link inválido"),
        (token[:-4], 400, "Link inválido"),
        (other_key, 400, "Link inválido"),
        ("nada", 400, "Link inválido"),
        (expired, 410, "Link expirado"),
        (unknown, 404, "Doação não encontrada"),
    ]
    for bad, status, title in cases:
        for method in ("GET", "POST"):
            r = client.request(method, f"/confirmar/{bad}", follow_redirects=False)
            assert r.status_code == status, (method, bad, r.text)
            assert title in r.text and '<html lang="pt-BR">' in r.text
            assert r.headers["cache-control"] == "private, no-store"
    assert partner_status(client, org, sent["pledge"]["id"]) == "pending"


def test_link_of_a_donation_confirmed_elsewhere_says_so(
    sent: dict[str, Any], client: httpx.Client, db: Database, org: TenantCtx
) -> None:
    did = sent["pledge"]["id"]
    r = client.post(f"/api/v1/donations/{did}/confirm", headers=org.headers)
    assert r.status_code == 200, r.text
    path = "/" + confirm_link(sent["notice"]).split("://", 1)[1].split("/", 1)[1]
    page = client.get(path)
    assert page.status_code == 200 and "já está confirmada" in page.text
    assert "<form" not in page.text.split("<main", 1)[1]
    r = client.post(path, follow_redirects=False)
    assert r.status_code == 409 and "já está confirmada" in r.text
    assert jobs(db, did)["notice"]["link_used_at"] is None


def test_phone_contact_gets_no_receipt(
    client: httpx.Client,
    db: Database,
    org: TenantCtx,
    campaign: dict[str, Any],
    org_email: str,
    sink: Sink,
    deliver: Callable[..., int],
) -> None:
    body = pledge(client, org, campaign, contact="+55 11 98888-7777")
    deliver()
    found = jobs(db, body["id"])
    assert found["receipt"]["status"] == "skipped"
    assert found["receipt"]["last_error"] == "no email address"
    assert found["notice"]["status"] == "sent"
    ids = {m["Message-ID"] for m in sink.messages()}
    assert f"<{found['receipt']['id']}@{SENDER_DOMAIN}>" not in ids
    assert f"<{found['notice']['id']}@{SENDER_DOMAIN}>" in ids
    notice = next(m for m in sink.to(org_email) if body["id"][:8] in parts(m)[0])
    assert notice["Reply-To"] is None  # no address to reply to


def test_campaign_without_email_contact_gets_no_notice(
    client: httpx.Client,
    db: Database,
    factory: Factory,
    org: TenantCtx,
    sink: Sink,
    deliver: Callable[..., int],
) -> None:
    campaign = factory.campaign(org, contact="(11) 97777-6666")
    donor = unique("d")
    body = pledge(client, org, campaign, contact=donor)
    deliver()
    found = jobs(db, body["id"])
    # No "@": not even queued (migration 0026), so nothing for the worker to skip.
    assert "notice" not in found
    assert found["receipt"]["status"] == "sent"
    assert len(sink.to(donor)) == 1


def test_campaign_contact_with_an_at_sign_but_no_address_is_queued_and_skipped(
    client: httpx.Client,
    db: Database,
    factory: Factory,
    org: TenantCtx,
    sink: Sink,
    deliver: Callable[..., int],
) -> None:
    campaign = factory.campaign(org, contact="@bazar.solidario (Instagram)")
    body = pledge(client, org, campaign, contact=unique("d"))
    deliver()
    found = jobs(db, body["id"])
    assert found["notice"]["status"] == "skipped"
    assert found["receipt"]["status"] == "sent"


def test_smtp_down_is_retried_later_and_nothing_is_lost(
    client: httpx.Client,
    db: Database,
    org: TenantCtx,
    campaign: dict[str, Any],
    org_email: str,
    sink: Sink,
    deliver: Callable[..., int],
) -> None:
    donor = unique("d")
    sink.stop()
    try:
        body = pledge(client, org, campaign, contact=donor)
        deliver()
        found = jobs(db, body["id"])
        for job in found.values():
            assert job["status"] == "pending" and job["attempts"] == 1
            assert "Connect" in job["last_error"] or "refused" in job["last_error"].lower()
            assert job["next_attempt_at"] > datetime.now(UTC)
    finally:
        sink.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (sink.to(donor) and sink.to(org_email)):
        deliver()
        time.sleep(0.5)
    assert len(sink.to(donor)) == 1
    assert len(sink.to(org_email)) == 1
    found = jobs(db, body["id"])
    assert {j["status"] for j in found.values()} == {"sent"}
    assert {j["attempts"] for j in found.values()} == {2}


def test_an_unreadable_value_is_left_out_of_the_notice_and_holds_the_receipt(
    client: httpx.Client,
    db: Database,
    org: TenantCtx,
    campaign: dict[str, Any],
    org_email: str,
    sink: Sink,
    deliver: Callable[..., int],
) -> None:
    """The organization's notice carries the confirmation link: it goes without a
    donor's value that cannot be opened (key gone, value altered). The receipt's
    recipient is that contact: it waits, retried, for the key to come back."""
    donor = unique("ilegivel")
    body = pledge(client, org, campaign, contact=donor)
    alter(db, body["id"], "donor_contact_enc")
    alter(db, body["id"], "message_enc")
    deliver()
    found = jobs(db, body["id"])
    assert found["notice"]["status"] == "sent"
    (notice,) = sink.to(org_email)
    text, html = parts(notice)
    assert "Levo no sábado" not in text + html and donor not in text + html
    assert "7 kg" in text and notice["Reply-To"] is None
    links.verify(LINK_SECRET, confirm_link(notice).rsplit("/", 1)[1])
    receipt = found["receipt"]
    assert (receipt["status"], receipt["attempts"]) == ("pending", 1)
    assert "cannot be opened" in receipt["last_error"]
    assert sink.to(donor) == []
    gone = client.post(f"/api/v1/donations/{body['id']}/anonymize", headers=org.headers)
    assert gone.status_code == 200, gone.text  # leave no unreadable row behind


def test_a_resent_job_is_the_same_message(
    sent: dict[str, Any], db: Database, sink: Sink, deliver: Callable[..., int]
) -> None:
    job = sent["jobs"]["receipt"]
    # As when a worker died after sending but before recording it: due again.
    db.execute(
        "UPDATE email_job SET status = 'pending', next_attempt_at = now() WHERE id = $1",
        job["id"],
    )
    deliver()
    copies = sink.to(sent["donor"])
    assert len(copies) == 2
    assert copies[0]["Message-ID"] == copies[1]["Message-ID"]
    assert parts(copies[0]) == parts(copies[1])
    assert copies[0]["Date"] == copies[1]["Date"]


@pytest.mark.parametrize(
    ("contact", "address"),
    [
        ("ana@example.org", "ana@example.org"),
        ("  Ana.Silva+doacao@exemplo.com.br ", "Ana.Silva+doacao@exemplo.com.br"),
        ("mailto:ana@example.org", "ana@example.org"),
        ("+55 11 98888-7777", None),
        ("(11) 97777-6666", None),
        ("ana@localhost", None),
        ("ana@@example.org", None),
        ("Ana <ana@example.org>", None),
        ("ana@example.org\r\nBcc: x@example.org", None),
        ("", None),
        (None, None),
    ],
)
def test_email_address_is_loose_but_never_a_phone_or_header(
    contact: str | None, address: str | None
) -> None:
    assert email_address(contact) == address


def test_a_link_naming_another_tenant_is_404_and_changes_nothing(
    sent: dict[str, Any], client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    other = factory.tenant()
    # Signed by us, but for the other tenant: its transaction cannot see this job.
    token = links.sign(
        LINK_SECRET,
        job_id=sent["jobs"]["notice"]["id"],
        tenant_id=other.id,
        issued=datetime.now(UTC),
        ttl=3600,
    )
    for method in ("GET", "POST"):
        r = client.request(method, f"/confirmar/{token}", follow_redirects=False)
        assert r.status_code == 404 and "Doação não encontrada" in r.text
    assert partner_status(client, org, sent["pledge"]["id"]) == "pending"


def test_a_suspended_organizations_link_is_404(
    sent: dict[str, Any], client: httpx.Client, db: Database, org: TenantCtx
) -> None:
    path = "/confirmar/" + confirm_link(sent["notice"]).rsplit("/", 1)[1]
    db.execute("UPDATE tenant SET status = 'suspended' WHERE id = $1", org.id)
    try:
        for method in ("GET", "POST"):
            r = client.request(method, path, follow_redirects=False)
            assert r.status_code == 404, r.text
    finally:
        db.execute("UPDATE tenant SET status = 'active' WHERE id = $1", org.id)
    assert partner_status(client, org, sent["pledge"]["id"]) == "pending"


def test_confirm_post_ignores_any_body_and_refuses_an_oversized_one(
    sent: dict[str, Any], client: httpx.Client, org: TenantCtx
) -> None:
    path = "/confirmar/" + confirm_link(sent["notice"]).rsplit("/", 1)[1]
    r = client.post(path, content=b"x" * (70 * 1024), follow_redirects=False)
    assert r.status_code == 413
    assert partner_status(client, org, sent["pledge"]["id"]) == "pending"
    for body, kind in ((b"{not json", "application/json"), (b"a=1&&=", "text/plain")):
        headers = {"Content-Type": kind}
        r = client.post(path, content=body, headers=headers, follow_redirects=False)
        assert r.status_code in (303, 409), r.text  # the first confirms, the next is used
    assert partner_status(client, org, sent["pledge"]["id"]) == "confirmed"
    r = client.put(path)
    assert r.status_code == 405


def test_a_batch_across_tenants_sends_and_settles_every_job_once(
    client: httpx.Client,
    db: Database,
    factory: Factory,
    org: TenantCtx,
    campaign: dict[str, Any],
    sink: Sink,
    deliver: Callable[..., int],
) -> None:
    """A turn claims up to 10 jobs of any tenants and sends them concurrently: each
    is sent and settled once, a skipped one in the same batch included."""
    other = factory.tenant()
    other_campaign = factory.campaign(other, contact=unique("org2"))
    donors = [unique("b") for _ in range(3)]
    bodies = [pledge(client, org, campaign, contact=d) for d in donors]
    bodies.append(pledge(client, other, other_campaign, contact=unique("b2")))
    phone = pledge(client, org, campaign, contact="+55 11 97777-1234")
    before = len(sink.messages())
    deliver()
    for body in bodies:
        found = jobs(db, body["id"])
        assert {k: j["status"] for k, j in found.items()} == {"receipt": "sent", "notice": "sent"}
        assert all(j["sent_at"] is not None and j["attempts"] == 1 for j in found.values())
    assert jobs(db, phone["id"])["receipt"]["status"] == "skipped"
    assert jobs(db, phone["id"])["notice"]["status"] == "sent"
    ids = [m["Message-ID"] for m in sink.messages()[before:]]
    assert len(ids) == len(set(ids)) == 2 * len(bodies) + 1
    for donor in donors:
        assert len(sink.to(donor)) == 1


def test_a_batch_settles_only_the_attempts_it_claimed(
    client: httpx.Client,
    db: Database,
    org: TenantCtx,
    campaign: dict[str, Any],
    api_pool: asyncpg.Pool,
) -> None:
    """One statement settles a batch (migration 0029); a job whose lease ran out and
    was claimed again meanwhile keeps the newer attempt's state."""
    body = pledge(client, org, campaign, contact=unique("s"))
    ids = {k: j["id"] for k, j in jobs(db, body["id"]).items()}
    due = "UPDATE email_job SET next_attempt_at = now() - interval '1 hour' WHERE id = ANY($1)"
    db.execute(due, list(ids.values()))

    async def claim() -> list[asyncpg.Record]:
        async with api_pool.acquire() as conn:
            # Due an hour ago: the oldest due, so these two are the ones claimed.
            claimed = await eq.claim_messages(conn, batch=2, lease=60)
        return [j for j in claimed if j["job_id"] in ids.values()]

    async def settle(outcomes: list[eq.Settled]) -> int:
        async with api_pool.acquire() as conn:
            return await eq.settle(conn, outcomes)

    mine = db.run(claim())
    assert len(mine) == 2 and all(j["found"] and j["attempts"] == 1 for j in mine)
    assert {j["id"] for j in mine} == {uuid.UUID(body["id"])}  # the donation's context
    # As if the receipt's lease ran out and another worker claimed it again.
    db.execute("UPDATE email_job SET attempts = attempts + 1 WHERE id = $1", ids["receipt"])
    settled = db.run(settle([eq.Settled(j["job_id"], j["attempts"], "sent") for j in mine]))
    assert settled == 1
    after = jobs(db, body["id"])
    assert after["notice"]["status"] == "sent" and after["notice"]["sent_at"] is not None
    assert after["receipt"]["status"] == "pending" and after["receipt"]["attempts"] == 2


def test_a_send_that_raises_a_bug_retries_its_own_job_and_the_batch_is_settled(
    client: httpx.Client,
    db: Database,
    org: TenantCtx,
    campaign: dict[str, Any],
    org_email: str,
    sink: Sink,
    api: ApiServer,
    api_pool: asyncpg.Pool,
    deliver: Callable[..., int],
) -> None:
    """The batch's messages are sent concurrently and settled together: an exception
    that is not the server's answer (a bug) makes its own job due again, and the
    rest of the batch is still recorded as sent (not sent again after the lease)."""
    deliver()  # nothing else due
    broken, fine = unique("bug"), unique("ok")
    bodies = {who: pledge(client, org, campaign, contact=who) for who in (broken, fine)}
    settings = EmailSettings.from_env(smtp_env(sink, api))

    class Buggy(Mailer):
        async def send(self, message: Any) -> None:
            if broken in str(message["To"]):
                raise RuntimeError("a bug")
            await super().send(message)

    async def one_batch() -> int:
        mailer = Buggy(settings, keep=settings.EMAIL_BATCH)
        try:
            return await drain_email_batch(api_pool, settings, KEYRING, mailer)
        finally:
            await mailer.close()

    assert db.run(one_batch()) == 4  # two receipts, two notices
    bad = jobs(db, bodies[broken]["id"])
    assert bad["receipt"]["status"] == "pending" and bad["receipt"]["attempts"] == 1
    assert bad["receipt"]["last_error"] == "RuntimeError while sending"
    assert bad["receipt"]["next_attempt_at"] > datetime.now(UTC)
    assert bad["notice"]["status"] == "sent"
    assert {j["status"] for j in jobs(db, bodies[fine]["id"]).values()} == {"sent"}
    assert len(sink.to(fine)) == 1 and not sink.to(broken)
