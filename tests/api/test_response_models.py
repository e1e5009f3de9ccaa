"""Every handler's success body validates against the model its OpenAPI documents.

For each operation of the real app (api/openapi.py `doc(response=..., status=...)`),
one valid request against the session API: the status is the documented success
code, the media type the documented one, and the body validates strictly
(`model_validate_json(..., strict=True)`) with no field the model does not name;
a list or page is non-empty, so its item model is checked too. A route added
without a case in CASES, or a reason in NOT_JSON, fails
`test_every_route_has_a_case_or_a_reason`. One organization (`world`) is made once
for the module; each case makes one request."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sanic import Sanic

from api.models.campaigns import CampaignList
from api.server import create_app
from tests.api.documented import Documented, documented_operations, listed, undocumented_fields
from tests.factories import Factory, TenantCtx
from tests.services import ApiServer, Database, api_env

# Routes whose success is not a JSON body, and why. Everything else needs a case.
NOT_JSON: dict[str, str] = {
    "GET /": "HTML: the campaign directory page (tests/api/test_pages.py)",
    "GET /o/{tenant}": "HTML: an organization's page",
    "GET /o/{tenant}/{slug}": "HTML: a campaign's page",
    "POST /o/{tenant}/{slug}": "HTML form: 303 to the thanks page, or the form again",
    "GET /o/{tenant}/{slug}/obrigado": "HTML: the thanks page",
    "GET /o/{rest}": "HTML: the not-found page of the pages",
    "GET /static/pages.css": "CSS of the pages",
    "GET /confirmar/{token}": "HTML: the emailed confirm link's page",
    "POST /confirmar/{token}": "HTML form: 303 back to the confirm page",
    "GET /api/v1/donations/export": "CSV, streamed (tests/api/test_export.py)",
    "GET /metrics": "Prometheus text format",
    "GET /api/docs": "HTML: Swagger UI (sanic-ext)",
    "GET /api/docs/swagger": "HTML: Swagger UI (sanic-ext)",
    "GET /api/docs/oauth2-redirect.html": "HTML: Swagger UI's OAuth2 redirect (sanic-ext)",
    "GET /api/docs/swagger-config": "Swagger UI's own settings (sanic-ext)",
    "GET /api/docs/openapi.json": "the OpenAPI document itself (tests/test_openapi.py)",
    "GET /api/docs/assets/{__file_uri__}": "Swagger UI's static files",
    "GET /api/docs/start.js": "JavaScript starting Swagger UI",
}

# Cases whose body does not match its documented model (the handler is not ours to
# change here): operation -> what differs. Each is a strict xfail.
MISMATCHES: dict[str, str] = {}

PASSWORD = "response-models-" + "p" * 20
HOOK_URL = "https://hooks.example.org/conectades-response-models"


@dataclass
class World:
    """One organization with a bit of everything, made once for the module."""

    tenant: TenantCtx
    campaign: dict[str, Any]  # published; items: [0] donated to, [1] patched, [2] deleted
    spare_campaign: dict[str, Any]  # no donations: deleted
    donation: dict[str, Any]
    to_confirm: dict[str, Any]
    to_deliver: dict[str, Any]  # confirmed
    to_cancel: dict[str, Any]
    to_anonymize: dict[str, Any]
    webhook: dict[str, Any]  # its deliveries: the donations' donation.created
    spare_webhook: dict[str, Any]  # deleted
    delivery_id: str
    spare_key_id: str  # deleted
    username: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return self.tenant.headers


@pytest.fixture(scope="module")
def documented(db: Database) -> Iterator[dict[str, Documented]]:
    """What each route documents, from the app as the API server builds it (not served)."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in api_env(db).items():
            env.setenv(name, value)
        app = create_app()
    try:
        yield documented_operations(app)
    finally:
        Sanic.unregister_app(app)


@pytest.fixture(scope="module")
def http(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as c:
        yield c


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    data: dict[str, Any] = r.json()
    return data


@pytest.fixture(scope="module")
def world(db: Database, http: httpx.Client) -> Iterator[World]:
    factory = Factory(db, http)
    tenant = factory.tenant()
    h = tenant.headers
    # Before the donations, so that their events fan out to deliveries.
    hook = {"url": HOOK_URL, "event_types": ["donation.created"]}
    webhook = _ok(http.post("/api/v1/webhooks", json=hook, headers=h), 201)
    try:
        campaign = factory.campaign(
            tenant,
            items=[
                {"name": "Arroz", "unit": "kg", "quantity_requested": 500},
                {"name": "Feijão", "unit": "kg", "quantity_requested": 300},
                {"name": "Óleo", "unit": "l", "quantity_requested": 50},
            ],
        )
        donations = [factory.donation(tenant, campaign) for _ in range(4)]
        to_deliver = factory.donation(tenant, campaign, status="confirmed")
        username = f"u{uuid.uuid4().hex[:12]}"
        factory.staff_user(tenant, username, "owner", PASSWORD)
        login = {"tenant": tenant.slug, "username": username, "password": PASSWORD}
        deliveries = _ok(http.get(f"/api/v1/webhooks/{webhook['id']}/deliveries", headers=h))
        spare_key = _ok(http.post("/api/v1/keys", json={"scopes": ["read"]}, headers=h), 201)
        # Disabled: no event fans out to it.
        spare = {"url": HOOK_URL, "event_types": ["campaign.created"], "enabled": False}
        yield World(
            tenant=tenant,
            campaign=campaign,
            spare_campaign=factory.campaign(tenant, status="draft"),
            donation=donations[0],
            to_confirm=donations[1],
            to_deliver=to_deliver,
            to_cancel=donations[2],
            to_anonymize=donations[3],
            webhook=webhook,
            spare_webhook=_ok(http.post("/api/v1/webhooks", json=spare, headers=h), 201),
            delivery_id=deliveries["data"][0]["id"],
            spare_key_id=spare_key["id"],
            username=username,
            refresh=_ok(http.post("/api/token/", json=login))["refresh"],
        )
    finally:
        # Its pending deliveries name a public host: no later test's worker may send them.
        r = http.delete(f"/api/v1/webhooks/{webhook['id']}", headers=h)
        assert r.status_code == 204, r.text


Case = Callable[[World, httpx.Client], httpx.Response]
CASES: dict[str, Case] = {}


def case(op: str) -> Callable[[Case], Case]:
    def register(func: Case) -> Case:
        assert op not in CASES, op
        CASES[op] = func
        return func

    return register


# --- health, tokens ----------------------------------------------------------------


@case("GET /health")
def _health(w: World, c: httpx.Client) -> httpx.Response:
    return c.get("/health")


@case("GET /health/ready")
def _ready(w: World, c: httpx.Client) -> httpx.Response:
    return c.get("/health/ready")


@case("POST /api/token")
def _token(w: World, c: httpx.Client) -> httpx.Response:
    body = {"tenant": w.tenant.slug, "username": w.username, "password": PASSWORD}
    return c.post("/api/token/", json=body)


@case("POST /api/token/refresh")
def _refresh(w: World, c: httpx.Client) -> httpx.Response:
    return c.post("/api/token/refresh/", json={"refresh": w.refresh})


# --- campaigns and items -----------------------------------------------------------


@case("GET /api/v1/campaigns")
def _list_campaigns(w: World, c: httpx.Client) -> httpx.Response:
    return c.get("/api/v1/campaigns", headers=w.headers)


@case("POST /api/v1/campaigns")
def _create_campaign(w: World, c: httpx.Client) -> httpx.Response:
    body = {
        "title": "Agasalhos",
        "items": [{"name": "Casaco", "unit": "unit", "quantity_requested": 20}],
    }
    return c.post("/api/v1/campaigns", json=body, headers=w.headers)


@case("GET /api/v1/campaigns/{campaign_id}")
def _get_campaign(w: World, c: httpx.Client) -> httpx.Response:
    return c.get(f"/api/v1/campaigns/{w.campaign['id']}", headers=w.headers)


@case("PATCH /api/v1/campaigns/{campaign_id}")
def _update_campaign(w: World, c: httpx.Client) -> httpx.Response:
    body = {"subtitle": "Inverno", "ends_at": "2099-01-01T00:00:00Z"}
    return c.patch(f"/api/v1/campaigns/{w.campaign['id']}", json=body, headers=w.headers)


@case("DELETE /api/v1/campaigns/{campaign_id}")
def _delete_campaign(w: World, c: httpx.Client) -> httpx.Response:
    return c.delete(f"/api/v1/campaigns/{w.spare_campaign['id']}", headers=w.headers)


@case("POST /api/v1/campaigns/{campaign_id}/items")
def _create_item(w: World, c: httpx.Client) -> httpx.Response:
    body = {"name": "Leite", "unit": "l", "quantity_requested": 40}
    return c.post(f"/api/v1/campaigns/{w.campaign['id']}/items", json=body, headers=w.headers)


@case("PATCH /api/v1/campaigns/{campaign_id}/items/{item_id}")
def _update_item(w: World, c: httpx.Client) -> httpx.Response:
    item = w.campaign["items"][1]["id"]
    url = f"/api/v1/campaigns/{w.campaign['id']}/items/{item}"
    return c.patch(url, json={"quantity_requested": 350}, headers=w.headers)


@case("DELETE /api/v1/campaigns/{campaign_id}/items/{item_id}")
def _delete_item(w: World, c: httpx.Client) -> httpx.Response:
    item = w.campaign["items"][2]["id"]
    return c.delete(f"/api/v1/campaigns/{w.campaign['id']}/items/{item}", headers=w.headers)


# --- donations ---------------------------------------------------------------------


@case("GET /api/v1/campaigns/{campaign_id}/donations")
def _list_campaign_donations(w: World, c: httpx.Client) -> httpx.Response:
    return c.get(f"/api/v1/campaigns/{w.campaign['id']}/donations", headers=w.headers)


@case("POST /api/v1/campaigns/{campaign_id}/donations")
def _create_donation(w: World, c: httpx.Client) -> httpx.Response:
    body = {"item_id": w.campaign["items"][0]["id"], "quantity": 2, "message": "Até sexta"}
    headers = {**w.headers, "Idempotency-Key": str(uuid.uuid4())}
    return c.post(f"/api/v1/campaigns/{w.campaign['id']}/donations", json=body, headers=headers)


@case("GET /api/v1/donations")
def _list_donations(w: World, c: httpx.Client) -> httpx.Response:
    return c.get("/api/v1/donations", headers=w.headers)


@case("GET /api/v1/donations/{donation_id}")
def _get_donation(w: World, c: httpx.Client) -> httpx.Response:
    return c.get(f"/api/v1/donations/{w.donation['id']}", headers=w.headers)


@case("POST /api/v1/donations/{donation_id}/confirm")
def _confirm(w: World, c: httpx.Client) -> httpx.Response:
    return c.post(f"/api/v1/donations/{w.to_confirm['id']}/confirm", headers=w.headers)


@case("POST /api/v1/donations/{donation_id}/deliver")
def _deliver(w: World, c: httpx.Client) -> httpx.Response:
    return c.post(f"/api/v1/donations/{w.to_deliver['id']}/deliver", headers=w.headers)


@case("POST /api/v1/donations/{donation_id}/cancel")
def _cancel(w: World, c: httpx.Client) -> httpx.Response:
    return c.post(f"/api/v1/donations/{w.to_cancel['id']}/cancel", headers=w.headers)


@case("POST /api/v1/donations/{donation_id}/anonymize")
def _anonymize(w: World, c: httpx.Client) -> httpx.Response:
    return c.post(f"/api/v1/donations/{w.to_anonymize['id']}/anonymize", headers=w.headers)


@case("GET /api/v1/events")
def _events(w: World, c: httpx.Client) -> httpx.Response:
    return c.get("/api/v1/events", headers=w.headers)


# --- keys, webhooks, audit, cache --------------------------------------------------


@case("GET /api/v1/keys")
def _list_keys(w: World, c: httpx.Client) -> httpx.Response:
    return c.get("/api/v1/keys", headers=w.headers)


@case("POST /api/v1/keys")
def _create_key(w: World, c: httpx.Client) -> httpx.Response:
    body = {"scopes": ["read", "write"], "label": "CRM", "expires_at": "2099-01-01T00:00:00Z"}
    return c.post("/api/v1/keys", json=body, headers=w.headers)


@case("DELETE /api/v1/keys/{key_id}")
def _delete_key(w: World, c: httpx.Client) -> httpx.Response:
    return c.delete(f"/api/v1/keys/{w.spare_key_id}", headers=w.headers)


@case("GET /api/v1/webhooks")
def _list_webhooks(w: World, c: httpx.Client) -> httpx.Response:
    return c.get("/api/v1/webhooks", headers=w.headers)


@case("POST /api/v1/webhooks")
def _create_webhook(w: World, c: httpx.Client) -> httpx.Response:
    # Disabled: it gets no deliveries, so nothing is owed to this public host.
    body = {"url": HOOK_URL, "event_types": ["campaign.created"], "enabled": False}
    return c.post("/api/v1/webhooks", json=body, headers=w.headers)


@case("GET /api/v1/webhooks/{webhook_id}")
def _get_webhook(w: World, c: httpx.Client) -> httpx.Response:
    return c.get(f"/api/v1/webhooks/{w.webhook['id']}", headers=w.headers)


@case("PATCH /api/v1/webhooks/{webhook_id}")
def _update_webhook(w: World, c: httpx.Client) -> httpx.Response:
    body = {"description": "CRM"}
    return c.patch(f"/api/v1/webhooks/{w.webhook['id']}", json=body, headers=w.headers)


@case("DELETE /api/v1/webhooks/{webhook_id}")
def _delete_webhook(w: World, c: httpx.Client) -> httpx.Response:
    return c.delete(f"/api/v1/webhooks/{w.spare_webhook['id']}", headers=w.headers)


@case("POST /api/v1/webhooks/{webhook_id}/rotate")
def _rotate_webhook(w: World, c: httpx.Client) -> httpx.Response:
    body = {"overlap_hours": 1}
    return c.post(f"/api/v1/webhooks/{w.webhook['id']}/rotate", json=body, headers=w.headers)


@case("GET /api/v1/webhooks/{webhook_id}/deliveries")
def _list_deliveries(w: World, c: httpx.Client) -> httpx.Response:
    return c.get(f"/api/v1/webhooks/{w.webhook['id']}/deliveries", headers=w.headers)


@case("POST /api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
def _retry_delivery(w: World, c: httpx.Client) -> httpx.Response:
    url = f"/api/v1/webhooks/{w.webhook['id']}/deliveries/{w.delivery_id}/retry"
    return c.post(url, headers=w.headers)


@case("GET /api/v1/audit")
def _audit(w: World, c: httpx.Client) -> httpx.Response:
    return c.get("/api/v1/audit", headers=w.headers)


@case("POST /api/v1/cache/purge")
def _purge(w: World, c: httpx.Client) -> httpx.Response:
    return c.post("/api/v1/cache/purge", headers=w.headers)


# --- public and legacy -------------------------------------------------------------


@case("GET /api/public/campaigns")
def _directory(w: World, c: httpx.Client) -> httpx.Response:
    return c.get("/api/public/campaigns")


@case("GET /api/public/{tenant}/campaigns")
def _public_campaigns(w: World, c: httpx.Client) -> httpx.Response:
    return c.get(f"/api/public/{w.tenant.slug}/campaigns")


@case("GET /api/public/{tenant}/campaigns/{slug}")
def _public_campaign(w: World, c: httpx.Client) -> httpx.Response:
    return c.get(f"/api/public/{w.tenant.slug}/campaigns/{w.campaign['slug']}")


@case("GET /api/public/{tenant}/campaigns/{slug}/donations")
def _public_donations(w: World, c: httpx.Client) -> httpx.Response:
    return c.get(f"/api/public/{w.tenant.slug}/campaigns/{w.campaign['slug']}/donations")


@case("POST /api/public/{tenant}/campaigns/{slug}/donations")
def _pledge(w: World, c: httpx.Client) -> httpx.Response:
    body = {
        "item_id": w.campaign["items"][0]["id"],
        "quantity": 3,
        "donor_name": "Ana",
        "donor_contact": "ana@example.org",
        "show_name": True,
    }
    url = f"/api/public/{w.tenant.slug}/campaigns/{w.campaign['slug']}/donations"
    return c.post(url, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})


@case("GET /api/campanhas/listar")
def _legacy(w: World, c: httpx.Client) -> httpx.Response:
    return c.get("/api/campanhas/listar/")


# --- the tests ---------------------------------------------------------------------


def test_every_route_has_a_case_or_a_reason(documented: dict[str, Documented]) -> None:
    """A new route fails here until it has a case in CASES (or a reason in NOT_JSON)."""
    assert not set(CASES) & set(NOT_JSON)
    assert sorted(set(documented) - set(CASES) - set(NOT_JSON)) == []
    assert sorted((set(CASES) | set(NOT_JSON)) - set(documented)) == [], "stale entries"
    assert set(MISMATCHES) <= set(CASES)


def test_routes_without_a_case_document_no_json_model(
    documented: dict[str, Documented],
) -> None:
    wrong = [op for op in NOT_JSON if documented[op].model is not None]
    assert wrong == [], "these document a JSON model: give them a case"


def _param(op: str) -> Any:
    if op in MISMATCHES:
        return pytest.param(op, marks=pytest.mark.xfail(strict=True, reason=MISMATCHES[op]))
    return op


@pytest.mark.parametrize("op", [_param(op) for op in CASES])
def test_success_body_validates_against_the_documented_model(
    op: str, documented: dict[str, Documented], world: World, http: httpx.Client
) -> None:
    doc = documented[op]
    r = CASES[op](world, http)
    assert r.status_code == doc.status, r.text
    if doc.model is None:
        assert doc.status == 204 and doc.media is None, doc
        assert r.content == b""
        return
    assert r.headers["content-type"].split(";")[0].strip() == doc.media
    value = doc.model.model_validate_json(r.content, strict=True)
    assert undocumented_fields(value, r.json()) == []
    items = listed(value)
    assert items is None or items, "an empty page checks no item"


ITEM: dict[str, Any] = {
    "id": str(uuid.uuid4()),
    "name": "Arroz",
    "unit": "kg",
    **dict.fromkeys(
        (
            "quantity_requested",
            "pending_quantity",
            "pending_count",
            "confirmed_quantity",
            "delivered_quantity",
            "contributed_quantity",
            "contributed_count",
        ),
        1,
    ),
    "progress": 0.5,
}
CAMPAIGN: dict[str, Any] = {
    "id": str(uuid.uuid4()),
    **dict.fromkeys(("slug", "title", "subtitle", "description", "location", "contact"), "x"),
    "image_url": None,
    "categories": [],
    "starts_at": None,
    "ends_at": None,
    "status": "published",
    "created_at": "2026-12-03T10:00:00Z",
    "updated_at": "2026-12-03T10:00:00Z",
    "progress": 0.5,
}


def test_a_field_the_model_does_not_name_is_found() -> None:
    """The check beside validation: models ignore unknown keys, this does not."""
    campaign = {**CAMPAIGN, "items": [{**ITEM, "secret": 1}], "owner": "x"}
    body = {"data": [campaign], "next_cursor": None, "total": 3}
    value = CampaignList.model_validate(body)
    assert undocumented_fields(value, body) == [
        ".total",
        ".data[0].owner",
        ".data[0].items[0].secret",
    ]
    assert listed(value) == value.data
