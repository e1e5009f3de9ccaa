"""Every partner route, driven by the OpenAPI spec, with another tenant's
credentials against this tenant's ids: 404, and nothing changed in the database."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.factories import Factory, TenantCtx
from tests.services import Database

# A valid body per route, so that a 404 comes from the tenant check, not validation.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("patch", "campaigns/{}"): {"title": "hijacked"},
    ("post", "campaigns/{}/items"): {"name": "x", "unit": "kg", "quantity_requested": 1},
    ("patch", "campaigns/{}/items/{}"): {"quantity_requested": 2},
    ("post", "campaigns/{}/donations"): {"item_id": "<item>", "quantity": 1},
    ("patch", "webhooks/{}"): {"enabled": False},
    ("post", "webhooks/{}/rotate"): {"overlap_hours": 0},
}
SEGMENT_KIND = {
    "campaigns": "campaign",
    "items": "item",
    "donations": "donation",
    "keys": "key",
    "webhooks": "webhook",
    "deliveries": "delivery",
}


def snapshot(db: Database, tenant: TenantCtx) -> dict[str, list[Any]]:
    tables = [
        "campaign",
        "campaign_item",
        "donation",
        "api_key",
        "item_total_slot",
        "webhook_endpoint",
        "webhook_delivery",
    ]
    return {
        t: [
            tuple(r)
            for r in db.fetch(f"SELECT * FROM {t} WHERE tenant_id = $1 ORDER BY 1", tenant.id)
        ]
        for t in tables
    }


def partner_routes(client: httpx.Client) -> list[tuple[str, str]]:
    spec = client.get("/api/docs/openapi.json").json()
    routes = []
    for path, ops in spec["paths"].items():
        if path.startswith("/api/v1/") and "{" in path:
            routes += [
                (method, path) for method in ops if method in ("get", "post", "patch", "delete")
            ]
    return sorted(routes)


def fill(path: str, ids: dict[str, str]) -> tuple[str, str]:
    """The concrete URL, and the template with ids blanked (for the body table)."""
    parts = path.strip("/").split("/")
    out = []
    for i, part in enumerate(parts):
        if part.startswith("{"):
            kind = SEGMENT_KIND[parts[i - 1]]
            out.append(ids[kind])
        else:
            out.append(part)
    template = re.sub(r"\{[^}]+\}", "{}", path.removeprefix("/api/v1/"))
    return "/" + "/".join(out), template


@pytest.fixture
def victim(factory: Factory) -> tuple[TenantCtx, dict[str, str]]:
    tenant = factory.tenant()
    # Straight into the table (the API refuses a loopback destination by default);
    # the donation's event then fans out to a delivery.
    webhook_id = factory.db.fetchval(
        "INSERT INTO webhook_endpoint (tenant_id, url, event_types, secret)"
        " VALUES ($1, 'https://receiver.example.org/hook', ARRAY['donation.created'],"
        " decode(repeat('ab', 32), 'hex')) RETURNING id",
        tenant.id,
    )
    campaign = factory.campaign(tenant)
    donation = factory.donation(tenant, campaign)
    key_id = factory.db.fetchval("SELECT id FROM api_key WHERE tenant_id = $1 LIMIT 1", tenant.id)
    delivery_id = factory.db.fetchval(
        "SELECT id FROM webhook_delivery WHERE endpoint_id = $1", webhook_id
    )
    assert delivery_id is not None
    ids = {
        "campaign": campaign["id"],
        "item": campaign["items"][0]["id"],
        "donation": donation["id"],
        "key": str(key_id),
        "webhook": str(webhook_id),
        "delivery": str(delivery_id),
    }
    return tenant, ids


def test_spec_lists_the_partner_routes(client: httpx.Client) -> None:
    routes = partner_routes(client)
    templates = {fill(p, dict.fromkeys(SEGMENT_KIND.values(), "x"))[1] for _, p in routes}
    for expected in ["campaigns/{}", "campaigns/{}/items/{}", "campaigns/{}/donations",
                     "donations/{}", "donations/{}/confirm", "keys/{}", "webhooks/{}",
                     "webhooks/{}/deliveries", "webhooks/{}/deliveries/{}/retry"]:  # fmt: skip
        assert expected in templates


def test_every_partner_route_with_other_tenant_credentials_is_404(
    client: httpx.Client, factory: Factory, db: Database, victim: tuple[TenantCtx, dict[str, str]]
) -> None:
    tenant, ids = victim
    intruder = factory.tenant()
    before = snapshot(db, tenant)
    checked = 0
    for method, path in partner_routes(client):
        url, template = fill(path, ids)
        body = BODIES.get((method, template))
        if body is not None:
            body = {k: (ids["item"] if v == "<item>" else v) for k, v in body.items()}
        r = client.request(method.upper(), url, json=body, headers=intruder.headers)
        assert r.status_code == 404, f"{method.upper()} {url}: {r.status_code} {r.text}"
        assert r.headers["content-type"] == "application/problem+json"
        checked += 1
    assert checked >= 10
    assert snapshot(db, tenant) == before
