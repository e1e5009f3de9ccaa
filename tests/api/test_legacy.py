"""The old system's directory endpoint: old parameter names and values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.factories import Factory, TenantCtx, bearer

NOW = datetime.now(UTC)
LEGACY = "/api/campanhas/listar/"


@pytest.fixture
def tagged(factory: Factory) -> dict[str, Any]:
    """A tenant with campaigns sharing a unique search token, in several states."""
    tag = "tok" + uuid.uuid4().hex[:12]
    org = factory.tenant()
    made = [
        factory.campaign_row(
            org,
            title=f"Doação de Feijão {tag} {i}",
            categories=["alimentos" if i % 2 else "roupas"],
            location="São Paulo - Mooca" if i % 3 else "Rio de Janeiro",
            ends_at=None if i % 4 == 0 else NOW + timedelta(days=i - 4),
            created_at=NOW - timedelta(hours=i),
        )
        for i in range(12)
    ]
    factory.campaign_row(org, title=f"Rascunho {tag}", status="draft")
    return {"tag": tag, "org": org, "campaigns": made}


def ids(client: httpx.Client, path: str, **params: Any) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        r = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        out += [c["id"] for c in r.json()["data"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({}, {}),
        ({"status": "ativa"}, {"status": "active"}),
        ({"status": "encerrada"}, {"status": "ended"}),
        ({"status": "todas"}, {"status": "all"}),
        ({"status": "todas", "ordenar": "recente"}, {"status": "all", "order": "recent"}),
        ({"status": "todas", "ordenar": "antiga"}, {"status": "all", "order": "oldest"}),
        ({"status": "todas", "ordenar": "prazo"}, {"status": "all", "order": "deadline"}),
        ({"status": "todas", "ordenar": "progresso"}, {"status": "all", "order": "progress"}),
        ({"categoria": "alimentos"}, {"category": "alimentos"}),
        ({"localizacao": "sao paulo"}, {"location": "sao paulo"}),
        (
            {"categoria": "roupas", "localizacao": "rio", "status": "todas", "ordenar": "prazo"},
            {"category": "roupas", "location": "rio", "status": "all", "order": "deadline"},
        ),
    ],
)
def test_legacy_listing_answers_the_public_directory(
    client: httpx.Client, tagged: dict[str, Any], old: dict[str, str], new: dict[str, str]
) -> None:
    tag = tagged["tag"]
    legacy = ids(client, LEGACY, busca=f"FEIJAO {tag}", limit=5, **old)
    public = ids(client, "/api/public/campaigns", q=f"feijão {tag}", limit=5, **new)
    assert legacy == public
    assert len(legacy) == len(set(legacy)) > 0


def test_legacy_listing_pages_each_campaign_once_in_every_order(
    client: httpx.Client, tagged: dict[str, Any]
) -> None:
    expected = {str(c["id"]) for c in tagged["campaigns"]}
    for order in ("recente", "antiga", "prazo", "progresso"):
        got = ids(client, LEGACY, busca=tagged["tag"], status="todas", ordenar=order, limit=5)
        assert len(got) == len(set(got)) and set(got) == expected


def test_legacy_listing_without_trailing_slash_works(client: httpx.Client) -> None:
    assert client.get("/api/campanhas/listar").status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "active"}, "status"),
        ({"status": "ATIVA"}, "status"),
        ({"ordenar": "recent"}, "ordenar"),
        ({"ordenar": "popular"}, "ordenar"),
        ({"busca": "x" * 201}, "busca"),
        ({"categoria": "c" * 201}, "categoria"),
        ({"localizacao": "l" * 201}, "localizacao"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_legacy_listing_with_bad_values_is_422_naming_the_old_parameter(
    client: httpx.Client, params: dict[str, str], field: str
) -> None:
    r = client.get(LEGACY, params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == [field]


def test_legacy_listing_with_bad_cursor_is_400(client: httpx.Client) -> None:
    assert client.get(LEGACY, params={"cursor": "%%%"}).status_code == 400


def test_legacy_listing_works_with_any_authorization_header(
    client: httpx.Client, factory: Factory, tagged: dict[str, Any]
) -> None:
    org: TenantCtx = tagged["org"]
    params = {"busca": tagged["tag"], "status": "todas"}
    anonymous = ids(client, LEGACY, **params)
    for headers in (
        org.headers,  # an API key
        bearer("not-a-token"),  # ignored, never 401
        {"Authorization": "Basic Zm9vOmJhcg=="},
    ):
        r = client.get(LEGACY, params=params, headers=headers)
        assert r.status_code == 200, r.text
        assert [c["id"] for c in r.json()["data"]] == anonymous


def test_old_manual_test_login_then_list_works(
    client: httpx.Client, factory: Factory, tagged: dict[str, Any]
) -> None:
    """The old manual test: POST /api/token/, then GET the listing with the access token."""
    org: TenantCtx = tagged["org"]
    username = "admin-" + uuid.uuid4().hex[:8]
    factory.staff_user(org, username, "owner", "s3nha-forte-para-teste")
    login = client.post(
        "/api/token/", json={"username": username, "password": "s3nha-forte-para-teste"}
    )
    assert login.status_code == 200, login.text
    r = client.get(
        LEGACY,
        params={"busca": tagged["tag"], "status": "todas"},
        headers=bearer(login.json()["access"]),
    )
    assert r.status_code == 200, r.text
    assert {c["id"] for c in r.json()["data"]} == {str(c["id"]) for c in tagged["campaigns"]}
