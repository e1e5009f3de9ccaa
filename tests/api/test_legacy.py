"""The old system's listing, as its clients read it: a bare JSON array with the old
serializer's Portuguese fields (pinned by a contract fixture), the old parameters
with integer ids for categories and locations, and the old defaults."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import Factory, TenantCtx, bearer
from tests.services import Database

NOW = datetime.now(UTC)
LEGACY = "/api/campanhas/listar/"
CONTRACT = json.loads((Path(__file__).parent / "fixtures" / "campanha_serializer.json").read_text())


@pytest.fixture
def tagged(factory: Factory) -> dict[str, Any]:
    """A tenant with campaigns sharing a unique search token, in several states, with
    categories and locations of their own (so their ids are new)."""
    tag = "tok" + uuid.uuid4().hex[:12]
    org = factory.tenant()
    made = [
        factory.campaign_row(
            org,
            title=f"Doação de Feijão {tag} {i}",
            categories=[f"alimentos-{tag}" if i % 2 else f"roupas-{tag}"],
            location=f"São Paulo - Mooca {tag}" if i % 3 else f"Rio de Janeiro {tag}",
            ends_at=None if i % 4 == 0 else NOW + timedelta(days=i - 4),
            created_at=NOW - timedelta(hours=i),
        )
        for i in range(12)
    ]
    factory.campaign_row(org, title=f"Rascunho {tag}", status="draft")
    return {"tag": tag, "org": org, "campaigns": made}


def listing(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = client.get(LEGACY, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list), body
    return body


def ids(client: httpx.Client, **params: Any) -> list[str]:
    return [c["id"] for c in listing(client, **params)]


def public_ids(client: httpx.Client, **params: Any) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        query = {**params, "limit": 100, **({"cursor": cursor} if cursor else {})}
        r = client.get("/api/public/campaigns", params=query)
        assert r.status_code == 200, r.text
        out += [c["id"] for c in r.json()["data"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def conforms(value: Any, kind: str) -> bool:
    if kind.endswith("|null"):
        return value is None or conforms(value, kind.removesuffix("|null"))
    if kind == "uuid":
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    if kind == "datetime":
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "list[int]":
        return isinstance(value, list) and all(conforms(v, "int") for v in value)
    if kind == "list[item]":
        return isinstance(value, list) and all(matches(v, CONTRACT["item"]) for v in value)
    return isinstance(value, {"str": str, "bool": bool, "object": dict}[kind])


def matches(obj: dict[str, Any], fields: dict[str, str]) -> bool:
    assert set(obj) == set(fields), set(obj) ^ set(fields)
    for name, kind in fields.items():
        assert conforms(obj[name], kind), (name, kind, obj[name])
    return True


def test_listing_is_a_bare_array_in_the_old_serializers_shape(
    client: httpx.Client, factory: Factory, tagged: dict[str, Any]
) -> None:
    org: TenantCtx = tagged["org"]
    first = tagged["campaigns"][1]
    factory.donation_row(org, first, 7, status="confirmed")
    body = listing(client, busca=tagged["tag"], status="todas")
    assert len(body) == 12  # not the draft
    for campanha in body:
        matches(campanha, CONTRACT["campanha"])
        assert campanha["itens"] == campanha["itens_campanha"]
        assert campanha["total_itens"] == len(campanha["itens"])
        assert campanha["organizadora"] == {
            "slug": org.slug,
            "nome": campanha["organizadora"]["nome"],
        }
        assert campanha["status_campanha"] == ("ativa" if campanha["ativa"] else "encerrada")
    got = next(c for c in body if c["id"] == str(first["id"]))
    item = next(i for i in got["itens"] if i["quantidade_contribuida"])
    assert item["quantidade_contribuida"] == 7 and item["campanha"] == got["id"]
    assert item["percentual_atingido"] == round(100 * 7 / item["quantidade_solicitada"], 2)
    assert got["dias_restantes"] is None or got["dias_restantes"] >= 0


def test_default_is_active_campaigns_most_recent_first(
    client: httpx.Client, tagged: dict[str, Any]
) -> None:
    tag = tagged["tag"]
    assert ids(client, busca=tag) == public_ids(client, q=tag)
    active = listing(client, busca=tag)
    assert active and all(c["ativa"] and c["status_campanha"] == "ativa" for c in active)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"status": "ativa"}, {"status": "active"}),
        ({"status": "encerrada"}, {"status": "ended"}),
        ({"status": "todas"}, {"status": "all"}),
        ({"status": "todas", "ordenar": "recente"}, {"status": "all", "order": "recent"}),
        ({"status": "todas", "ordenar": "antiga"}, {"status": "all", "order": "oldest"}),
        ({"status": "todas", "ordenar": "prazo"}, {"status": "all", "order": "deadline"}),
        ({"status": "todas", "ordenar": "progresso"}, {"status": "all", "order": "progress"}),
    ],
)
def test_old_status_and_order_answer_as_the_public_directory(
    client: httpx.Client, tagged: dict[str, Any], old: dict[str, str], new: dict[str, str]
) -> None:
    tag = tagged["tag"]
    assert ids(client, busca=f"FEIJAO {tag}", **old) == public_ids(client, q=f"feijão {tag}", **new)


def test_categories_and_locations_are_stable_integer_ids_and_filter(
    client: httpx.Client, db: Database, tagged: dict[str, Any]
) -> None:
    tag = tagged["tag"]
    body = listing(client, busca=tag, status="todas")
    food = db.fetchval("SELECT id FROM legacy_category WHERE slug = $1", f"alimentos-{tag}")
    rio = db.fetchval("SELECT id FROM legacy_location WHERE name = $1", f"Rio de Janeiro {tag}")
    assert isinstance(food, int) and isinstance(rio, int)
    expected_food = {c["id"] for c in body if food in c["categorias"]}
    assert len(expected_food) == 6
    assert set(ids(client, busca=tag, status="todas", categoria=food)) == expected_food
    in_rio = {c["id"] for c in body if c["localizacao"] == rio}
    assert len(in_rio) == 4
    assert set(ids(client, busca=tag, status="todas", localizacao=rio)) == in_rio
    both = set(ids(client, busca=tag, status="todas", categoria=food, localizacao=rio))
    assert both == expected_food & in_rio
    # Stable: the same ids on the next read, and an id nobody has matches nothing.
    assert listing(client, busca=tag, status="todas") == body
    assert listing(client, categoria=2_000_000_000) == []


def test_listing_is_capped_and_says_so(
    client: httpx.Client, db: Database, factory: Factory
) -> None:
    from api.routes.legacy import CAPPED_HEADER, LEGACY_MAX

    tag = "cap" + uuid.uuid4().hex[:10]
    org = factory.tenant()
    for i in range(LEGACY_MAX + 3):
        factory.campaign_row(org, title=f"Muitas {tag} {i}", items=())
    r = client.get(LEGACY, params={"busca": tag})
    assert r.status_code == 200
    assert len(r.json()) == LEGACY_MAX and r.headers[CAPPED_HEADER] == str(LEGACY_MAX)
    again = client.get(LEGACY, params={"busca": tag})  # from the cache: still says so
    assert again.headers["X-Cache"] == "HIT" and again.headers[CAPPED_HEADER] == str(LEGACY_MAX)
    small = client.get(LEGACY, params={"busca": tag + " 7"})
    assert CAPPED_HEADER not in small.headers


def test_listing_without_trailing_slash_works(client: httpx.Client) -> None:
    r = client.get("/api/campanhas/listar")
    assert r.status_code == 200 and isinstance(r.json(), list)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "active"}, "status"),
        ({"status": "ATIVA"}, "status"),
        ({"ordenar": "recent"}, "ordenar"),
        ({"ordenar": "popular"}, "ordenar"),
        ({"busca": "x" * 201}, "busca"),
        ({"categoria": "alimentos"}, "categoria"),
        ({"categoria": "1.5"}, "categoria"),
        ({"categoria": "0"}, "categoria"),
        ({"categoria": str(2**31)}, "categoria"),
        ({"localizacao": "Rio"}, "localizacao"),
        ({"localizacao": "-3"}, "localizacao"),
    ],
)
def test_bad_values_are_422_naming_the_old_parameter(
    client: httpx.Client, params: dict[str, str], field: str
) -> None:
    r = client.get(LEGACY, params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == [field]


def test_listing_works_with_any_authorization_header(
    client: httpx.Client, tagged: dict[str, Any]
) -> None:
    org: TenantCtx = tagged["org"]
    params = {"busca": tagged["tag"], "status": "todas"}
    anonymous = ids(client, **params)
    for headers in (
        org.headers,  # an API key
        bearer("not-a-token"),  # ignored, never 401
        {"Authorization": "Basic Zm9vOmJhcg=="},
    ):
        r = client.get(LEGACY, params=params, headers=headers)
        assert r.status_code == 200, r.text
        assert [c["id"] for c in r.json()] == anonymous


def test_old_manual_test_login_then_list_works(
    client: httpx.Client, factory: Factory, tagged: dict[str, Any]
) -> None:
    """The old manual test: POST /api/token/, then GET the listing with the access
    token, and read `resposta[0]["titulo"]` as the old clients do."""
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
    resposta = r.json()
    assert resposta[0]["titulo"].startswith("Doação de Feijão")
    assert {c["id"] for c in resposta} == {str(c["id"]) for c in tagged["campaigns"]}


@pytest.mark.parametrize("order", ["recente", "prazo", "progresso"])
def test_campaign_percent_is_the_public_directorys_progress(
    client: httpx.Client, factory: Factory, order: str
) -> None:
    """The listing computes a campaign's percentual_atingido from the items it reads
    anyway (its directory statement sums no slots, unless ordered by progress); it
    must equal the public directory's `progress` (the view's numeric) for every kind
    of campaign: no items, no donations, one item over its goal, fractions that do
    not end (1/3, 2/7), and pending or cancelled donations, which count for nothing."""
    tag = "pct" + uuid.uuid4().hex[:12]
    org = factory.tenant()
    shapes: list[tuple[tuple[tuple[str, str, int], ...], list[tuple[int, int, str]]]] = [
        ((), []),
        ((("Arroz", "kg", 100),), []),
        ((("Arroz", "kg", 100),), [(0, 250, "delivered")]),
        ((("Arroz", "kg", 3), ("Feijão", "kg", 7)), [(0, 1, "confirmed"), (1, 2, "delivered")]),
        (
            (("Arroz", "kg", 9), ("Feijão", "kg", 11), ("Óleo", "l", 13)),
            [(0, 4, "confirmed"), (1, 5, "pending"), (2, 6, "delivered"), (2, 1, "cancelled")],
        ),
        ((("Leite", "l", 6), ("Sabão", "kg", 6)), [(0, 6, "confirmed"), (1, 5, "delivered")]),
    ]
    for n, (items, donations) in enumerate(shapes):
        campaign = factory.campaign_row(
            org, title=f"Campanha {tag} {n}", items=items, created_at=NOW - timedelta(hours=n)
        )
        for index, quantity, status in donations:
            factory.donation_row(
                org, campaign, quantity, item_id=campaign["items"][index]["id"], status=status
            )
    old = {c["id"]: c["percentual_atingido"] for c in listing(client, busca=tag, ordenar=order)}
    r = client.get("/api/public/campaigns", params={"q": tag, "limit": 100})
    assert r.status_code == 200, r.text
    new = {c["id"]: round(100 * c["progress"], 2) for c in r.json()["data"]}
    assert len(old) == len(shapes) and old == new
    assert sorted(old.values()) == [0.0, 0.0, 30.2, 30.95, 91.67, 100.0]
