"""The donor pages in a real browser (Debian's chromium through the edge): search,
pledge, thank-you, totals moving, form errors, no JavaScript; axe-core finds no
serious or critical violation on any page; keyboard and 360 px."""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from api.cache import PUBLIC_LAG
from infra.nginx import free_port
from tests.browser.conftest import AXE
from tests.edge.conftest import start_edge
from tests.factories import Factory, TenantCtx

# `CONECTADES_SCREENSHOTS=docs ./test.sh tests/browser` refreshes the README's images.
SCREENSHOTS = os.environ.get("CONECTADES_SCREENSHOTS")


@pytest.fixture
def org(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def campaign(factory: Factory, org: TenantCtx) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    return factory.campaign(
        org,
        title=f"Feijão solidário {tag}",
        subtitle="Cestas para 40 famílias da Vila Esperança",
        description="Arrecadamos alimentos para as famílias do bairro.\n\nEntregas no sábado.",
        contact="(11) 97777-6666",
        location="São Paulo - Vila Esperança",
        ends_at=(datetime.now(UTC) + timedelta(days=20, hours=1)).isoformat(),
    )


def axe_violations(page: Page) -> list[str]:
    """Serious and critical axe-core violations on the page as loaded."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate("axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def fill_pledge(page: Page, quantity: str, name: str = "Rita") -> None:
    page.get_by_label("Item").select_option(label="Feijão (kg)")
    page.get_by_label("Quantidade").fill(quantity)
    page.get_by_label("Seu nome").fill(name)
    page.get_by_label("Telefone (WhatsApp) ou e-mail").fill("rita@example.org")


def pledged(page: Page) -> str:
    """The "Prometido" figure of the Feijão item on the campaign page."""
    item = page.locator(".itens li", has_text="Feijão")
    return item.locator("div", has_text="Prometido").locator("dd").inner_text()


def test_search_pledge_thanks_and_totals_move(
    page: Page, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    tag = campaign["title"].split()[-1]
    page.goto("/")
    assert axe_violations(page) == []
    page.get_by_label("Buscar campanha").fill(f"feijao solidario {tag}")
    page.get_by_role("button", name="Buscar").click()
    page.get_by_role("link", name=campaign["title"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(campaign["title"])
    assert pledged(page) == "0 kg"
    assert axe_violations(page) == []

    fill_pledge(page, "12")
    page.get_by_label("Mostrar meu nome").check()
    page.get_by_role("button", name="Registrar doação").click()
    expect(page).to_have_url(re.compile(r"/obrigado\?registro="))
    expect(page.get_by_role("heading", level=1)).to_have_text("Obrigado!")
    assert axe_violations(page) == []

    # The pledge marked the cached page (api/cache.py): it shows within PUBLIC_LAG,
    # plus the edge's max-age (1 s) and stale-while-revalidate (1 s).
    deadline = time.monotonic() + PUBLIC_LAG + 2 + 1
    page.get_by_role("link", name="Voltar para a campanha").click()
    while pledged(page) != "12 kg" and time.monotonic() < deadline:
        time.sleep(0.3)
        page.reload()
    assert pledged(page) == "12 kg"
    expect(page.locator(".recentes")).to_contain_text("Rita: 12 kg de Feijão")


def test_invalid_form_shows_errors_beside_fields_and_keeps_values(
    page: Page, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    page.goto(f"/o/{org.slug}/{campaign['slug']}")
    fill_pledge(page, "0", name="Rita Lee")
    page.get_by_role("button", name="Registrar doação").click()
    quantity = page.get_by_label("Quantidade")
    expect(quantity).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#e-quantidade")).to_have_text("Informe um número inteiro maior que zero.")
    expect(page.get_by_role("alert")).to_contain_text("Corrija o campo abaixo")
    expect(page.get_by_label("Seu nome")).to_have_value("Rita Lee")
    assert axe_violations(page) == []
    page.get_by_role("link", name="Informe um número inteiro maior que zero.").click()
    quantity.fill("3")  # the error's link leads to the field
    page.get_by_role("button", name="Registrar doação").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Obrigado!")


def test_pledge_with_javascript_disabled(
    page_without_js: Page, db: Any, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    page = page_without_js
    page.goto(f"/o/{org.slug}/{campaign['slug']}")
    fill_pledge(page, "4")
    # The name box left unticked: the pledge is listed as "Anônimo".
    page.get_by_role("button", name="Registrar doação").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Obrigado!")
    page.go_back()  # the form page again; sending it again is the same pledge
    rows = db.fetch(
        "SELECT quantity, anonymous FROM donation WHERE campaign_id = $1", campaign["id"]
    )
    assert [(r["quantity"], r["anonymous"]) for r in rows] == [(4, True)]


def test_organization_and_missing_pages_pass_axe(page: Page, org: TenantCtx, campaign: Any) -> None:
    page.goto(f"/o/{org.slug}")
    expect(page.get_by_role("link", name=campaign["title"])).to_be_visible()
    assert axe_violations(page) == []
    response = page.goto(f"/o/{org.slug}/nao-existe")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Página não encontrada")
    assert axe_violations(page) == []


def test_the_edges_page_while_the_api_is_down_is_styled_and_passes_axe(
    browser: Browser, workdir: Path
) -> None:
    """With the API down and the page never cached, the browser gets the edge's own
    HTML page (edge/templates/page_error.html.j2), styled by the edge's copy of the
    sheet, and it passes axe like the API's pages."""
    edge = start_edge(workdir / "browser-edge-down", [f"127.0.0.1:{free_port()}"])
    context = browser.new_context(base_url=edge.url, locale="pt-BR")
    try:
        page = context.new_page()
        response = page.goto("/o/uma-org/uma-campanha")
        assert response is not None and response.status == 502
        expect(page.get_by_role("heading", level=1)).to_have_text("Serviço indisponível")
        expect(page.get_by_role("link", name="Ir para a lista de campanhas")).to_be_visible()
        # The sheet applied: the skip link is moved off screen until focused.
        assert page.evaluate("getComputedStyle(document.querySelector('.pular')).position") != (
            "static"
        )
        assert axe_violations(page) == []
    finally:
        context.close()
        edge.stop()
        edge.remove_worker_paths()


def test_keyboard_focus_is_visible_and_360_px_has_no_horizontal_scroll(
    page: Page, org: TenantCtx, campaign: dict[str, Any]
) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    for path in ("/", f"/o/{org.slug}/{campaign['slug']}"):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "(() => { const e = document.activeElement; const s = getComputedStyle(e);"
        " return [e.textContent, s.outlineStyle, s.outlineWidth]; })()"
    )
    assert focused == ["Pular para o conteúdo", "solid", "3px"]
    page.keyboard.press("Enter")
    for _ in range(12):  # the form is reachable by keyboard alone
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "f-quantidade":
            break
    assert page.evaluate("document.activeElement.id") == "f-quantidade"


def test_screenshots_at_1280_and_360(
    page: Page, factory: Factory, org: TenantCtx, campaign: dict[str, Any], workdir: Path
) -> None:
    confirmed = factory.donation(org, campaign, quantity=60, donor_name="Carla")
    factory.client.post(f"/api/v1/donations/{confirmed['id']}/confirm", headers=org.headers)
    factory.donation(org, campaign, quantity=25, anonymous=True, message="Boa sorte!")
    out = Path(SCREENSHOTS) if SCREENSHOTS else workdir / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    for width in (1280, 360):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(f"/?busca={campaign['title'].split()[-1]}")
        page.screenshot(path=str(out / f"pages-directory-{width}.png"), full_page=True)
        page.goto(f"/o/{org.slug}/{campaign['slug']}")
        page.screenshot(path=str(out / f"pages-campaign-{width}.png"), full_page=True)
    assert (out / "pages-campaign-360.png").stat().st_size > 0
