"""The API reference (/api/docs/) in Debian's chromium: Swagger UI renders every
operation of the OpenAPI document, and the browser asks no other host for anything
(it was a blank page offline when Swagger UI came from a CDN)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Page, Request

from infra.nginx import LocalNginx

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
METHODS = ("get", "post", "put", "patch", "delete")


def test_api_reference_renders_every_operation_with_nothing_from_outside(
    page: Page, page_edge: LocalNginx
) -> None:
    spec = httpx.get(page_edge.url + "/api/docs/openapi.json", timeout=30).json()
    operations = sum(1 for ops in spec["paths"].values() for m in ops if m in METHODS)
    own = urlsplit(page_edge.url).netloc
    asked: list[str] = []

    def record(request: Request) -> None:
        asked.append(request.url)

    page.on("request", record)
    page.goto("/api/docs/")
    page.wait_for_selector(".opblock-summary", timeout=30_000)
    page.wait_for_function("n => document.querySelectorAll('.opblock').length >= n", arg=operations)
    assert page.locator(".opblock").count() == operations
    assert page.locator(".info .title").first.inner_text().startswith("Conectades API")
    elsewhere = [u for u in asked if urlsplit(u).scheme in ("http", "https")]
    elsewhere = [u for u in elsewhere if urlsplit(u).netloc != own]
    assert not elsewhere, elsewhere
    assert any(u.endswith("/api/docs/openapi.json") for u in asked)
    if os.environ.get("CONECTADES_SCREENSHOTS") == "docs":
        page.set_viewport_size({"width": 1280, "height": 2000})
        page.screenshot(path=str(DOCS / "api-docs-1280.png"))
