"""A campaign's slug is optional on create: derived from the title, unique per tenant."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.factories import Factory, TenantCtx
from tests.services import ApiServer

URL = "/api/v1/campaigns"


@pytest.fixture
def tenant(factory: Factory) -> TenantCtx:
    return factory.tenant()


def create(client: httpx.Client, tenant: TenantCtx, **body: Any) -> dict[str, Any]:
    r = client.post(URL, json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Cestas Básicas", "cestas-basicas"),
        ("Arrecadação de Agasalhos — Inverno 2026!", "arrecadacao-de-agasalhos-inverno-2026"),
        ("  Ração   para   abrigos  ", "racao-para-abrigos"),
        ("!!!", "campanha"),
    ],
)
def test_slug_is_derived_from_the_title(
    client: httpx.Client, tenant: TenantCtx, title: str, slug: str
) -> None:
    assert create(client, tenant, title=title)["slug"] == slug


def test_explicit_null_slug_is_derived_too(client: httpx.Client, tenant: TenantCtx) -> None:
    assert create(client, tenant, title="Cobertores", slug=None)["slug"] == "cobertores"


def test_long_title_gives_a_slug_within_the_limit_on_a_word_boundary(
    client: httpx.Client, tenant: TenantCtx
) -> None:
    title = " ".join(["solidariedade"] * 14)  # 195 characters
    slug = create(client, tenant, title=title)["slug"]
    assert len(slug) <= 90 and slug.startswith("solidariedade-") and slug.endswith("solidariedade")
    assert create(client, tenant, title=title)["slug"] == slug + "-2"


def test_taken_slugs_get_the_next_free_suffix(client: httpx.Client, tenant: TenantCtx) -> None:
    slugs = [create(client, tenant, title="Cestas Básicas")["slug"] for _ in range(3)]
    assert slugs == ["cestas-basicas", "cestas-basicas-2", "cestas-basicas-3"]
    # A slug given explicitly is taken as it is; the derived one skips it.
    create(client, tenant, title="Outra", slug="cestas-basicas-4")
    assert create(client, tenant, title="Cestas básicas")["slug"] == "cestas-basicas-5"
    # Only `<base>-<n>` counts: `cestas-basicas-x` does not shift the numbering.
    create(client, tenant, title="Outra", slug="cestas-basicas-x")
    assert create(client, tenant, title="CESTAS BASICAS")["slug"] == "cestas-basicas-6"


def test_a_taken_explicit_slug_is_still_409(client: httpx.Client, tenant: TenantCtx) -> None:
    create(client, tenant, title="Cestas Básicas")
    r = client.post(URL, json={"title": "x", "slug": "cestas-basicas"}, headers=tenant.headers)
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "slug"


def test_slugs_are_per_tenant(client: httpx.Client, factory: Factory) -> None:
    a, b = factory.tenant(), factory.tenant()
    assert create(client, a, title="Cestas Básicas")["slug"] == "cestas-basicas"
    assert create(client, b, title="Cestas Básicas")["slug"] == "cestas-basicas"


def test_concurrent_creates_with_one_title_get_distinct_slugs(
    api: ApiServer, tenant: TenantCtx
) -> None:
    """Race-safe: creates that pick the same free slug retry on the unique key."""
    tag = uuid.uuid4().hex[:6]
    title, base = f"Mutirão {tag}", f"mutirao-{tag}"
    n = 12

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=api.url, timeout=60) as c:
            return c.post(URL, json={"title": title}, headers=tenant.headers)

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(one, range(n)))
    assert [r.status_code for r in answers] == [201] * n, [r.text for r in answers]
    slugs = [r.json()["slug"] for r in answers]
    assert sorted(slugs) == sorted([base] + [f"{base}-{i}" for i in range(2, n + 1)])
