"""The public directory: paging through every order, filters, search, privacy."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from api.cache import PUBLIC_CACHE_CONTROL
from tests.factories import Factory, TenantCtx
from tests.services import run_cli

NOW = datetime.now(UTC)
ORDERS = ("recent", "oldest", "deadline", "progress")


def token() -> str:
    return "tok" + uuid.uuid4().hex[:12]


def page_all(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every row of a listing, following next_cursor; asserts pages are full but the last."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = client.get(path, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        rows.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return rows
        assert len(body["data"]) == int(params.get("limit", 20))
    raise AssertionError("paging did not end")


def sort_key(order: str, c: dict[str, Any]) -> tuple[Any, ...]:
    if order in ("recent", "oldest"):
        return (datetime.fromisoformat(c["created_at"]), c["id"])
    if order == "deadline":
        ends = c["ends_at"]
        return (ends is None, datetime.fromisoformat(ends) if ends else NOW, c["id"])
    return (c["progress"], c["id"])


@pytest.fixture
def org(factory: Factory) -> TenantCtx:
    return factory.tenant()


@pytest.fixture
def thirty(factory: Factory, org: TenantCtx) -> dict[str, Any]:
    """30 published campaigns with ties in created_at, deadline and progress, plus
    drafts and closed ones that must never show up."""
    tag = token()
    published: dict[str, dict[str, Any]] = {}
    base = NOW - timedelta(days=30)
    for i in range(30):
        ends: datetime | None
        if i % 5 == 0:
            ends = None
        elif i % 5 == 1:
            ends = NOW - timedelta(days=1 + i % 3)  # ended (with ties)
        else:
            ends = NOW + timedelta(days=1 + i % 4)  # active (with ties)
        c = factory.campaign_row(
            org,
            title=f"Campanha {i} {tag}",
            created_at=base + timedelta(hours=i // 3),  # three campaigns per instant
            starts_at=base - timedelta(days=1),
            ends_at=ends,
            items=(("Arroz", "kg", 10), ("Leite", "l", 20)),
        )
        # Progress in a few distinct values (ties again): confirmed + delivered count.
        if i % 4:
            factory.donation_row(org, c, quantity=i % 4 * 2, status="confirmed")
            factory.donation_row(org, c, quantity=3, status="pending")
        if i % 7 == 0:
            factory.donation_row(
                org, c, quantity=20, item_id=c["items"][1]["id"], status="delivered"
            )
        published[str(c["id"])] = c
    hidden = [
        factory.campaign_row(org, title=f"Rascunho {tag}", status="draft"),
        factory.campaign_row(org, title=f"Encerrada {tag}", status="closed"),
    ]
    return {"tag": tag, "published": published, "hidden": hidden}


@pytest.mark.parametrize("order", ORDERS)
def test_paging_tenant_directory_returns_each_published_campaign_once(
    client: httpx.Client, org: TenantCtx, thirty: dict[str, Any], order: str
) -> None:
    rows = page_all(client, f"/api/public/{org.slug}/campaigns", order=order, status="all", limit=7)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 30
    assert set(ids) == set(thirty["published"])
    keys = [sort_key(order, r) for r in rows]
    if order in ("recent", "progress"):
        assert keys == sorted(keys, reverse=True)
    else:
        assert keys == sorted(keys)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("status", ["active", "ended"])
def test_paging_global_directory_by_status_returns_each_match_once(
    client: httpx.Client, thirty: dict[str, Any], order: str, status: str
) -> None:
    rows = page_all(
        client, "/api/public/campaigns", q=thirty["tag"], order=order, status=status, limit=7
    )
    ids = [r["id"] for r in rows]
    expected = {
        cid
        for cid, c in thirty["published"].items()
        if (c["ends_at"] is None or c["ends_at"] > NOW) == (status == "active")
    }
    assert len(ids) == len(set(ids))
    assert set(ids) == expected


def test_directory_default_is_active_recent(
    client: httpx.Client, org: TenantCtx, thirty: dict[str, Any]
) -> None:
    rows = page_all(client, f"/api/public/{org.slug}/campaigns", limit=100)
    assert all(r["ends_at"] is None or datetime.fromisoformat(r["ends_at"]) > NOW for r in rows)
    assert len(rows) == 24
    created = [r["created_at"] for r in rows]
    assert created == sorted(created, reverse=True)


def test_progress_is_mean_of_capped_item_progress(
    client: httpx.Client, org: TenantCtx, thirty: dict[str, Any]
) -> None:
    rows = page_all(client, f"/api/public/{org.slug}/campaigns", status="all", limit=100)
    by_title = {r["title"].split()[1]: r["progress"] for r in rows}
    # Campaign 0: 20 l delivered of 20 → item 2 complete, item 1 none → 0.5.
    assert by_title["0"] == pytest.approx(0.5)
    # Campaign 3: 6 kg confirmed of 10 → 0.6 / 2 (pending does not count).
    assert by_title["3"] == pytest.approx(0.3)
    # Campaign 4: nothing contributed.
    assert by_title["4"] == 0
    # Campaign 7: 6 of 10 and 20 of 20 → (0.6 + 1) / 2.
    assert by_title["7"] == pytest.approx(0.8)


def test_directory_hides_drafts_closed_and_private_fields(
    client: httpx.Client, org: TenantCtx, thirty: dict[str, Any]
) -> None:
    for path, params in (
        ("/api/public/campaigns", {"q": thirty["tag"], "status": "all", "limit": 100}),
        (f"/api/public/{org.slug}/campaigns", {"status": "all", "limit": 100}),
    ):
        r = client.get(path, params=params)
        assert r.status_code == 200
        text = r.text
        assert "Rascunho" not in text and "Encerrada" not in text
        assert "donor_contact" not in text and "99999-0000" not in text
        for row in r.json()["data"]:
            assert set(row) == {
                "id", "tenant", "slug", "title", "subtitle", "description", "image_url",
                "categories", "location", "contact", "starts_at", "ends_at", "created_at",
                "progress",
            }  # fmt: skip
            assert row["tenant"] == {"slug": org.slug, "name": f"Org {org.slug}"}


def test_public_directory_is_cacheable_for_one_second(client: httpx.Client, org: TenantCtx) -> None:
    for path in ("/api/public/campaigns", f"/api/public/{org.slug}/campaigns"):
        r = client.get(path)
        assert r.status_code == 200
        assert r.headers["cache-control"] == PUBLIC_CACHE_CONTROL


@pytest.mark.parametrize("query", ["feijao", "FEIJÃO", "Feijão", "feijÃo", "FEIJAO"])
def test_search_is_accent_and_case_insensitive(
    client: httpx.Client, factory: Factory, org: TenantCtx, query: str
) -> None:
    in_title = factory.campaign_row(org, title="Doação de Feijão")
    in_text = factory.campaign_row(
        org, title="Cestas básicas", description="arroz, FEIJÃO e óleo para 40 famílias"
    )
    factory.campaign_row(org, title="Roupas de inverno", description="Agasalhos")
    rows = page_all(client, f"/api/public/{org.slug}/campaigns", q=query)
    assert {r["id"] for r in rows} == {str(in_title["id"]), str(in_text["id"])}


def test_search_finds_across_tenants_in_global_directory(
    client: httpx.Client, factory: Factory
) -> None:
    tag = token()
    a, b = factory.tenant(), factory.tenant()
    ca = factory.campaign_row(a, title=f"Ação solidária {tag}")
    cb = factory.campaign_row(b, title=f"ACAO SOLIDARIA {tag}")
    factory.campaign_row(b, title=f"Ação rascunho {tag}", status="draft")
    rows = page_all(client, "/api/public/campaigns", q=f"acao solidaria {tag}")
    assert {r["id"] for r in rows} == {str(ca["id"]), str(cb["id"])}
    assert {r["tenant"]["slug"] for r in rows} == {a.slug, b.slug}


@pytest.mark.parametrize("wildcard", ["%", "_", "\\"])
def test_search_treats_like_wildcards_literally(
    client: httpx.Client, factory: Factory, org: TenantCtx, wildcard: str
) -> None:
    literal = factory.campaign_row(org, title=f"Meta 100{wildcard} batida")
    factory.campaign_row(org, title="Meta 100 batida")
    rows = page_all(client, f"/api/public/{org.slug}/campaigns", q=f"100{wildcard}")
    assert [r["id"] for r in rows] == [str(literal["id"])]


def test_filter_by_category_is_an_exact_element(
    client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    toys = factory.campaign_row(org, categories=["brinquedos", "outros"])
    factory.campaign_row(org, categories=["roupas"])
    factory.campaign_row(org, categories=["brinquedos-usados"])
    rows = page_all(client, f"/api/public/{org.slug}/campaigns", category="brinquedos")
    assert [r["id"] for r in rows] == [str(toys["id"])]


@pytest.mark.parametrize("location", ["São Paulo", "sao paulo", "SAO PAULO - Moó", "são"])
def test_filter_by_location_is_accent_insensitive_prefix(
    client: httpx.Client, factory: Factory, org: TenantCtx, location: str
) -> None:
    sp = factory.campaign_row(org, location="São Paulo - Mooca")
    factory.campaign_row(org, location="Rio de Janeiro")
    factory.campaign_row(org, location="Grande São Paulo")
    rows = page_all(client, f"/api/public/{org.slug}/campaigns", location=location)
    assert [r["id"] for r in rows] == [str(sp["id"])]


def test_search_and_location_follow_an_edit(
    client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    """The search text and location key are stored columns (migration 0024): an edit
    through the API must move the campaign from the old words to the new ones."""
    old, new = token(), token()
    c = factory.campaign_row(org, title=f"Campanha {old}", location="Recife")
    path = f"/api/public/{org.slug}/campaigns"
    assert [r["id"] for r in page_all(client, path, q=old)] == [str(c["id"])]

    changes = {"title": "Mutirão", "description": f"Ação {new.upper()}", "location": "Olinda"}
    r = client.patch(f"/api/v1/campaigns/{c['id']}", json=changes, headers=org.headers)
    assert r.status_code == 200, r.text
    assert page_all(client, path, q=old) == []
    assert [r["id"] for r in page_all(client, path, q=f"acao {new}")] == [str(c["id"])]
    assert [r["id"] for r in page_all(client, path, q="mutirao")] == [str(c["id"])]
    assert [r["id"] for r in page_all(client, path, location="olinda")] == [str(c["id"])]
    assert page_all(client, path, location="recife") == []


def operator(db: Any, redis: Any, *args: str) -> None:
    """Run `conectades ARGS` as an operator would, against the test services."""
    done = run_cli(db, *args, redis_url=redis.url, timeout=120)
    assert done.returncode == 0, done.stderr


def test_suspended_tenant_disappears_from_directory(
    client: httpx.Client, factory: Factory, db: Any, redis_server: Any
) -> None:
    tag = token()
    org = factory.tenant()
    c = factory.campaign_row(org, title=f"Campanha {tag}")
    assert len(page_all(client, "/api/public/campaigns", q=tag)) == 1
    # Through the CLI: it purges the cached directory, which spans every tenant.
    operator(db, redis_server, "tenant", "suspend", org.slug)
    assert page_all(client, "/api/public/campaigns", q=tag) == []
    assert client.get(f"/api/public/{org.slug}/campaigns").status_code == 404
    assert client.get(f"/api/public/{org.slug}/campaigns/{c['slug']}").status_code == 404
    operator(db, redis_server, "tenant", "resume", org.slug)
    assert len(page_all(client, "/api/public/campaigns", q=tag)) == 1


@pytest.mark.parametrize("slug", ["no-such-org-x", "UPPER", "a" * 70, "x'; DROP TABLE tenant;--"])
def test_unknown_tenant_directory_is_404(client: httpx.Client, slug: str) -> None:
    r = client.get(f"/api/public/{slug}/campaigns")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"order": "popular"}, 422, "order"),
        ({"status": "open"}, 422, "status"),
        ({"status": "ACTIVE"}, 422, "status"),
        ({"q": "x" * 201}, 422, "q"),
        ({"q": "a\x00b"}, 422, "q"),
        ({"category": "c" * 201}, 422, "category"),
        ({"location": "l" * 201}, 422, "location"),
        ({"limit": "0"}, 422, "limit"),
        ({"limit": "101"}, 422, "limit"),
        ({"limit": "ten"}, 422, "limit"),
        ({"limit": "-1"}, 422, "limit"),
        ({"cursor": "not-a-cursor!"}, 400, None),
        ({"cursor": b64({"a": 1})}, 400, None),
        ({"cursor": b64(["recent", "yesterday", str(uuid.uuid4())])}, 400, None),
        ({"cursor": b64(["recent", "2024-01-01T00:00:00", str(uuid.uuid4())])}, 400, None),
        ({"cursor": b64(["recent", "2024-01-01T00:00:00+00:00", "nope"])}, 400, None),
        ({"cursor": b64(["recent", 5, 6])}, 400, None),
        ({"cursor": b64(["deadline", "2024-01-01T00:00:00+00:00", str(uuid.uuid4())])}, 400, None),
        (
            {"order": "progress", "cursor": b64(["progress", "NaN", str(uuid.uuid4())])},
            400,
            None,
        ),
        ({"order": "progress", "cursor": b64(["progress", 0.5, str(uuid.uuid4())])}, 400, None),
        ({"order": "progress", "cursor": b64(["progress", "1; --", str(uuid.uuid4())])}, 400, None),
        ({"cursor": "A" * 600}, 400, None),
    ],
)
def test_bad_directory_parameters_are_4xx_naming_the_parameter(
    client: httpx.Client, params: dict[str, str], status: int, field: str | None
) -> None:
    r = client.get("/api/public/campaigns", params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert [e["field"] for e in r.json()["errors"]] == [field]


@pytest.mark.parametrize(
    "q", ["'; DROP TABLE campaign; --", "%' OR '1'='1", "😀🎉", "ação\u0301", "\\%_"]
)
def test_search_with_sql_and_unicode_strings_is_harmless(client: httpx.Client, q: str) -> None:
    r = client.get("/api/public/campaigns", params={"q": q, "status": "all"})
    assert r.status_code == 200
    assert r.json()["data"] == [] or all(isinstance(c["id"], str) for c in r.json()["data"])


def test_cursor_works_with_the_search_and_filters_it_came_from(
    client: httpx.Client, factory: Factory, org: TenantCtx
) -> None:
    tag = token()
    made = {str(factory.campaign_row(org, title=f"Feijão {tag} {i}")["id"]) for i in range(5)}
    rows = page_all(client, "/api/public/campaigns", q=f"FEIJAO {tag}", limit=2)
    assert {r["id"] for r in rows} == made


def test_empty_parameters_mean_their_defaults(client: httpx.Client) -> None:
    # HTML forms send every field; an empty one is the same as an absent one.
    params = {"q": "", "category": "", "location": "", "status": "", "order": "", "cursor": ""}
    r = client.get("/api/public/campaigns", params=params)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("raw", ["%FF", "%ED%A0%80", "%C3", "%00", "%25%5F"])
def test_search_with_invalid_utf8_is_never_a_500(client: httpx.Client, raw: str) -> None:
    r = client.get(f"/api/public/campaigns?q={raw}&status=all")
    assert r.status_code in (200, 400, 422), r.text
