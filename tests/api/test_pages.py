"""Donor pages (api/routes/pages.py) straight from the API: what they show, what they
never show, the pledge form's rules, and Portuguese errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from db.crypto import Keyring
from edge.render import STATIC_DIR
from tests.factories import Factory, TenantCtx
from tests.services import CONTACT_KEYS

CONTACT = "+55 11 98888-7777"
PAGE_BUDGET = 30 * 1024  # HTML + CSS before compression (issue 17)
RING = Keyring.from_env(CONTACT_KEYS)


@pytest.fixture
def org(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def campaign(factory: Factory, org: TenantCtx) -> dict[str, Any]:
    ends = datetime.now(UTC) + timedelta(days=12, hours=1)
    return factory.campaign(
        org,
        title=f"Feijão e arroz {uuid.uuid4().hex[:8]}",
        contact="(11) 97777-6666",
        ends_at=ends.isoformat(),
    )


def page_url(org: TenantCtx, campaign: dict[str, Any]) -> str:
    return f"/o/{org.slug}/{campaign['slug']}"


def form(campaign: dict[str, Any], **overrides: str) -> dict[str, str]:
    data = {
        "item": campaign["items"][1]["id"],
        "quantidade": "7",
        "nome": "Joana",
        "contato": "joana@example.org",
        "mensagem": "Levo amanhã",
    }
    data.update(overrides)
    return data


def donations(db: Any, campaign: dict[str, Any]) -> list[Any]:
    return db.fetch(
        "SELECT * FROM donation WHERE campaign_id = $1 ORDER BY created_at", campaign["id"]
    )


def next_link(html: str) -> str | None:
    """The "Próxima página" link's address, if the page has one."""
    end = html.find('" rel="next"')
    if end < 0:
        return None
    start = html.rfind('href="', 0, end) + len('href="')
    return html[start:end].replace("&amp;", "&")


def test_directory_search_is_accent_insensitive_and_links_the_campaign(
    client: httpx.Client, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    word = campaign["title"].split()[-1]
    r = client.get("/", params={"busca": f"feijao e ARROZ {word}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=1, stale-while-revalidate=1"
    assert '<html lang="pt-BR">' in r.text
    assert campaign["title"] in r.text
    assert f'href="{page_url(org, campaign)}"' in r.text
    assert 'value="feijao e ARROZ ' in r.text  # the search box keeps the words
    r = client.get("/", params={"busca": f"lentilha {word}"})
    assert campaign["title"] not in r.text
    assert "Nenhuma campanha encontrada" in r.text


def test_directory_filters_and_cursor_paging(
    client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    tag = f"cat-{uuid.uuid4().hex[:8]}"
    titles = [f"Campanha {tag} {n}" for n in range(14)]
    for title in titles:
        factory.campaign(org, title=title, categories=[tag], location="Vila Mariana")
    seen: list[str] = []
    url: str | None = f"/?categoria={tag}&local=vila&ordem=antigas"
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.text
        seen += [t for t in titles if f">{t}</a>" in r.text]
        url = next_link(r.text)
    assert seen == titles  # oldest first, every one once, over two pages
    r = client.get(f"/?categoria={tag}&local=outro")
    assert "Nenhuma campanha encontrada" in r.text


def test_directory_bad_filter_is_a_portuguese_422_page(client: httpx.Client) -> None:
    r = client.get("/", params={"ordem": "alfabetica"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/html")
    assert "Dados inválidos" in r.text
    assert r.headers["cache-control"] == "private, no-store"


def test_organization_page_lists_its_campaigns(
    client: httpx.Client, factory: Factory, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    other = factory.campaign(factory.tenant(), title="De outra organização")
    r = client.get(f"/o/{org.slug}")
    assert r.status_code == 200, r.text
    assert f"<h1>Org {org.slug}</h1>" in r.text
    assert campaign["title"] in r.text
    assert other["title"] not in r.text


def test_campaign_page_shows_items_totals_deadline_contact_and_recent_donations(
    client: httpx.Client, factory: Factory, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    confirmed = factory.donation(org, campaign, quantity=120, donor_contact=CONTACT)
    r = client.post(f"/api/v1/donations/{confirmed['id']}/confirm", headers=org.headers)
    assert r.status_code == 200, r.text
    factory.donation(org, campaign, quantity=30, anonymous=True, donor_contact=CONTACT)
    r = client.get(page_url(org, campaign))
    assert r.status_code == 200, r.text
    html = r.text
    assert "faltam 12 dias" in html
    assert 'href="https://wa.me/5511977776666"' in html
    assert "<dt>Pedido</dt><dd>500 kg</dd>" in html
    assert "<dt>Recebido</dt><dd>120 kg</dd>" in html
    assert "<dt>Prometido</dt><dd>30 kg</dd>" in html
    assert 'aria-label="24% de Arroz"' in html and 'style="width:24%"' in html
    assert "<strong>Anônimo</strong>" in html and "<strong>Maria</strong>" in html
    assert CONTACT not in html and "98888" not in html  # never a donor's contact
    assert f'<meta property="og:title" content="{campaign["title"]} · Org {org.slug}">' in html
    assert '<label for="f-quantidade">Quantidade</label>' in html


def test_campaign_page_escapes_what_organizations_write(
    client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    campaign = factory.campaign(org, title="<script>alert(1)</script>", description="a & b")
    html = client.get(page_url(org, campaign)).text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "a &amp; b" in html


def test_each_page_with_its_css_is_within_30_kb(
    client: httpx.Client, factory: Factory, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    for _ in range(RECENT_SHOWN := 10):
        factory.donation(org, campaign, quantity=1, message="m" * 200)
    css = (STATIC_DIR / "pages.css").stat().st_size
    for path in ("/", f"/o/{org.slug}", page_url(org, campaign)):
        size = len(client.get(path).content)
        assert size + css <= PAGE_BUDGET, (path, size, css, RECENT_SHOWN)
    assert client.get("/static/pages.css").status_code == 200  # the API serves it too


def test_pledge_form_posts_303_to_thanks_and_records_a_pending_pledge(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.post(page_url(org, campaign), data=form(campaign))
    assert r.status_code == 303, r.text
    assert r.headers["cache-control"] == "private, no-store"
    location = r.headers["location"]
    assert location.startswith(f"{page_url(org, campaign)}/obrigado?registro=")
    [row] = donations(db, campaign)
    assert (row["status"], row["quantity"], row["anonymous"]) == ("pending", 7, True)
    assert row["item_id"] == uuid.UUID(campaign["items"][1]["id"])
    assert RING.donor_contact_of(row) == "joana@example.org" and row["source"] == "public"
    thanks = client.get(location)
    assert thanks.status_code == 200
    assert "Obrigado!" in thanks.text and str(row["id"])[:8] in thanks.text
    page = client.get(page_url(org, campaign)).text
    assert "<dt>Prometido</dt><dd>7 kg</dd>" in page  # the pledge invalidated the page
    assert "joana@example.org" not in page and "joana@example.org" not in thanks.text
    assert "<strong>Anônimo</strong>: 7 kg de Feijão" in page  # the name only if asked


def test_pledge_form_shows_the_name_only_when_the_donor_ticks_the_box(
    client: httpx.Client, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.post(page_url(org, campaign), data=form(campaign, mostrar_nome="1"))
    assert r.status_code == 303, r.text
    assert "<strong>Joana</strong>: 7 kg de Feijão" in client.get(page_url(org, campaign)).text


def test_pledge_form_sent_twice_pledges_once(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    first = client.post(page_url(org, campaign), data=form(campaign))
    again = client.post(page_url(org, campaign), data=form(campaign, nome="  Joana "))
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    other = client.post(page_url(org, campaign), data=form(campaign, quantidade="8"))
    assert other.headers["location"] != first.headers["location"]
    assert [d["quantity"] for d in donations(db, campaign)] == [7, 8]


def test_pledge_form_double_click_concurrently_pledges_once(
    api: Any, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    import concurrent.futures

    def post() -> httpx.Response:
        return httpx.post(api.url + page_url(org, campaign), data=form(campaign), timeout=30)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post(), range(4)))
    assert {a.status_code for a in answers} == {303}
    assert len({a.headers["location"] for a in answers}) == 1
    assert len(donations(db, campaign)) == 1


def test_invalid_form_is_422_with_portuguese_errors_beside_fields_and_values_kept(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.post(
        page_url(org, campaign),
        data=form(campaign, quantidade="-3", nome="", mensagem="<b>oi</b>"),
    )
    assert r.status_code == 422
    assert r.headers["cache-control"] == "private, no-store"
    html = r.text
    assert '<span class="msg" id="e-quantidade">Informe um número inteiro maior que zero.' in html
    assert '<span class="msg" id="e-nome">Informe seu nome.</span>' in html
    assert 'aria-invalid="true" aria-describedby="e-quantidade"' in html
    assert 'value="-3"' in html and 'value="joana@example.org"' in html
    assert "&lt;b&gt;oi&lt;/b&gt;</textarea>" in html
    assert f'<option value="{campaign["items"][1]["id"]}" selected>' in html
    assert donations(db, campaign) == []


def test_pledge_for_an_item_of_another_campaign_is_a_field_error(
    client: httpx.Client, factory: Factory, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    other = factory.campaign(org)
    r = client.post(page_url(org, campaign), data=form(campaign, item=other["items"][0]["id"]))
    assert r.status_code == 422
    assert 'id="e-item">Escolha um dos itens da lista.' in r.text
    assert donations(db, campaign) == []


def test_honeypot_filled_answers_like_success_and_pledges_nothing(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.post(page_url(org, campaign), data=form(campaign, site="http://spam.example"))
    assert r.status_code == 303
    assert donations(db, campaign) == []


def test_pledge_to_a_closed_campaign_is_409_page_without_form(
    client: httpx.Client, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    r = client.patch(
        f"/api/v1/campaigns/{campaign['id']}", json={"status": "closed"}, headers=org.headers
    )
    assert r.status_code == 200, r.text
    r = client.post(page_url(org, campaign), data=form(campaign))
    assert r.status_code == 409
    assert "não está recebendo doações" in r.text
    assert donations(db, campaign) == []


@pytest.mark.parametrize(
    "path",
    ["/o/nao-existe", "/o/nao-existe/campanha", "/o/{org}/nao-existe", "/o/{org}/x/y/z"],
)
def test_missing_pages_are_a_public_portuguese_404(
    client: httpx.Client, org: TenantCtx, path: str
) -> None:
    r = client.get(path.format(org=org.slug))
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "Página não encontrada" in r.text
    assert r.headers["cache-control"] == "public, max-age=1, stale-while-revalidate=1"


def test_draft_campaign_page_is_404_and_pledge_too(
    client: httpx.Client, factory: Factory, db: Any, org: TenantCtx
) -> None:
    draft = factory.campaign(org, status="draft")
    assert client.get(page_url(org, draft)).status_code == 404
    r = client.post(page_url(org, draft), data=form(draft))
    assert r.status_code == 404
    assert r.headers["cache-control"] == "private, no-store"
    assert donations(db, draft) == []
