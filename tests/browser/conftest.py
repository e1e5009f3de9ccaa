"""Debian's chromium, driven by Playwright, reading the donor pages through a real
edge (no per-IP limits: the browser is one address making many requests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from infra.nginx import LocalNginx
from tests.edge.conftest import hostport, start_edge
from tests.services import ApiServer

CHROMIUM = "/usr/bin/chromium"
# No sandbox (root in CI), and nothing that reaches out of the machine.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def page_edge(api: ApiServer, workdir: Path) -> Iterator[LocalNginx]:
    server = start_edge(workdir / "browser-edge", [hostport(api.url)], per_ip_limits=False)
    yield server
    server.stop()
    server.remove_worker_paths()


# Module, not session: Playwright's sync API runs an event loop in the main thread
# while it is started, and every later test that calls asyncio.run() (most of the
# suite) then failed with "cannot be called from a running event loop". It must be
# stopped before the browser tests' module ends.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield b
    b.close()


@pytest.fixture
def page(browser: Browser, page_edge: LocalNginx) -> Iterator[Page]:
    context = browser.new_context(base_url=page_edge.url, locale="pt-BR")
    p = context.new_page()
    p.set_default_timeout(10_000)
    yield p
    context.close()


@pytest.fixture
def page_without_js(browser: Browser, page_edge: LocalNginx) -> Iterator[Page]:
    context = browser.new_context(base_url=page_edge.url, java_script_enabled=False)
    p = context.new_page()
    p.set_default_timeout(10_000)
    yield p
    context.close()
