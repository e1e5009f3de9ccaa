"""The edge's own errors where a person reads the answer (the donor pages and the
e-mailed confirmation links) are HTML pages in pt-BR, not JSON problems: the API
down with the page never cached, a body too large, a per-IP limit. The API's paths
keep their problem+json. A real edge in front of an address nothing listens on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge.render import CSS_URL
from infra.nginx import LocalNginx, free_port
from tests.edge.conftest import start_edge

PAGES = ("/", "/o/uma-org/uma-campanha", "/o/uma-org", "/confirmar/um-token")


@pytest.fixture(scope="module")
def dead_edge(workdir: Path) -> Iterator[LocalNginx]:
    """An edge whose API is down (nothing listens at its upstream)."""
    edge = start_edge(
        workdir / "edge-pages-down", [f"127.0.0.1:{free_port()}"], rate="2r/s", burst=3
    )
    yield edge
    edge.stop()
    edge.remove_worker_paths()


def assert_page(r: httpx.Response, status: int, title: str) -> None:
    assert r.status_code == status, r.text[:200]
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '<html lang="pt-BR">' in r.text and f"<h1>{title}</h1>" in r.text
    assert f'href="{CSS_URL}"' in r.text


@pytest.mark.parametrize("path", PAGES)
def test_a_page_while_the_api_is_down_is_an_html_page(dead_edge: LocalNginx, path: str) -> None:
    # Each path from its own address: the per-IP limit is not what is tested here.
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{30 + PAGES.index(path)}")
    with httpx.Client(base_url=dead_edge.url, transport=transport, timeout=10) as c:
        r = c.get(path)
        assert_page(r, 502, "Serviço indisponível")
        assert r.headers["retry-after"] == "1"
        # Its style sheet is the edge's own file: it loads with the API down.
        css = c.get(CSS_URL)
        assert css.status_code == 200 and css.headers["content-type"] == "text/css"


def test_the_api_paths_keep_their_problem_json(dead_edge: LocalNginx) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.40")
    with httpx.Client(base_url=dead_edge.url, transport=transport, timeout=10) as c:
        for path in ("/api/public/campaigns", "/api/v1/campaigns", "/health/ready"):
            r = c.get(path)
            assert r.status_code == 502, path
            assert r.headers["content-type"] == "application/problem+json", path
            assert r.json()["type"] == "/problems/unavailable"


def test_a_pledge_form_too_large_and_a_limit_are_html_pages(dead_edge: LocalNginx) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.41")
    with httpx.Client(base_url=dead_edge.url, transport=transport, timeout=10) as c:
        big = c.post(
            "/o/uma-org/uma-campanha",
            content=b"mensagem=" + b"x" * 200_000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert_page(big, 413, "Dados grandes demais")
        statuses = [c.get("/o/uma-org/uma-campanha").status_code for _ in range(12)]
        assert 429 in statuses, statuses
        limited = c.get("/o/uma-org/uma-campanha")
        assert_page(limited, 429, "Muitas requisições")
        assert limited.headers["retry-after"] == "1"
