"""Donor pages in pt-BR: the directory, an organization, a campaign with its pledge
form, the thank-you page, and Portuguese error pages.

Same data and rules as the public API (its functions in api/routes/public.py and
api/directory.py).
GETs are public: the same for every visitor, cached in Redis (resource "pages",
under the same scopes and parts as the JSON they show) and by the edge for a
second; a 404 is as public as the page was. The form posts back to the campaign
page (POST → 303 → thank-you) and is made idempotent from what the visitor sent
(api/pledge_form.py); its answers are never cached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import orjson
from sanic import Blueprint, HTTPResponse, Request
from sanic.exceptions import SanicException
from sanic_ext import openapi

from api.cache import PUBLIC_CACHE_CONTROL
from api.directory import (
    DirectoryParams,
    cached_directory,
    directory_after,
    directory_filter,
    directory_rows,
)
from api.errors import (
    ApiError,
    Conflict,
    IdempotencyInFlight,
    NotFound,
    ValidationFailed,
    to_api_error,
)
from api.html import CSS_PATH, HTML, render
from api.pagination import Page, decode_cursor
from api.pledge_form import REPEAT_WINDOW, PledgeForm, form_secret, pledge_key
from api.request_context import client_ip
from api.routes.public import (
    cached_campaign,
    campaign_detail,
    campaign_with_recent,
    check_slug,
    pledge_once,
    public_tenant,
)
from db.queries import public as pq

log = logging.getLogger("conectades.pages")
bp = Blueprint("pages")
bp.static("/static/pages.css", CSS_PATH, name="pages_css")

RESOURCE = "pages"
PAGE_SIZE = 12
RECENT = 10
NO_STORE = {"Cache-Control": "private, no-store"}
ANONYMOUS = "Anônimo"
PARAMS = DirectoryParams(
    q="busca",
    category="categoria",
    location="local",
    status="situacao",
    order="ordem",
    statuses={"ativas": "active", "encerradas": "ended", "todas": "all"},
    orders={
        "recentes": "recent",
        "prazo": "deadline",
        "progresso": "progress",
        "antigas": "oldest",
    },
)
# Attempts (0.1 s apart) to wait for the first of two concurrent identical posts.
IN_FLIGHT_TRIES = 20


def _page(request: Request) -> Page:
    return Page(limit=PAGE_SIZE, cursor=decode_cursor(request.args.get("cursor")))


def _next_url(request: Request, cursor: str | None) -> str | None:
    """This listing's URL with the next page's cursor (filters kept)."""
    if cursor is None:
        return None
    args = [(k, v) for k, v in request.query_args if k != "cursor"]
    return f"{request.path}?{urlencode([*args, ('cursor', cursor)])}"


def _filters(request: Request) -> dict[str, str]:
    """The filter form's values as sent (for redisplay)."""
    names = (PARAMS.q, PARAMS.category, PARAMS.location, PARAMS.status, PARAMS.order)
    return {name: request.args.get(name, "") for name in names}


async def _listing(
    request: Request, template: str, f: pq.DirectoryFilter, **context: Any
) -> HTTPResponse:
    page = _page(request)
    after = directory_after(f, page)

    async def build() -> bytes:
        campaigns, cursor = await directory_rows(request, f, after=after, limit=page.limit)
        return render(
            template,
            campaigns=campaigns,
            next_url=_next_url(request, cursor),
            first_url=request.path if page.cursor else None,
            filters=_filters(request),
            params=PARAMS,
            **context,
        )

    return await cached_directory(request, f, build, resource=RESOURCE, content_type=HTML)


@bp.get("/")
async def list_campaign_pages(request: Request) -> HTTPResponse:
    """The directory: search, filters and a page of campaigns of every organization."""
    return await _listing(request, "directory.html", directory_filter(request, PARAMS))


@bp.get("/o/<tenant>")
async def get_organization_page(request: Request, tenant: str) -> HTTPResponse:
    """An organization's campaigns."""
    f = directory_filter(request, PARAMS)
    org = await public_tenant(request, tenant)
    return await _listing(
        request, "organization.html", replace(f, tenant_id=org["id"]), org=dict(org)
    )


async def _campaign_html(
    request: Request,
    org: Mapping[str, Any],
    slug: str,
    *,
    form: PledgeForm | None = None,
    notice: str | None = None,
) -> bytes:
    campaign, donations = await campaign_with_recent(
        request, org, slug, limit=RECENT, anonymous=ANONYMOUS
    )
    return render(
        "campaign.html",
        org=org,
        campaign=campaign,
        donations=donations,
        form=form or PledgeForm(),
        notice=notice,
    )


@bp.get("/o/<tenant>/<slug>")
async def get_campaign_page(request: Request, tenant: str, slug: str) -> HTTPResponse:
    """A campaign: items with their totals, deadline, recent donations, pledge form."""
    org = await public_tenant(request, tenant)
    check_slug(slug)

    async def build() -> bytes:
        return await _campaign_html(request, org, slug)

    return await cached_campaign(request, org, slug, build, resource=RESOURCE, content_type=HTML)


@bp.get("/o/<tenant>/<slug>/obrigado")
async def get_thanks_page(request: Request, tenant: str, slug: str) -> HTTPResponse:
    """After a pledge: what happens next."""
    org = await public_tenant(request, tenant)
    check_slug(slug)
    try:
        record = str(UUID(request.args.get("registro", "")))[:8]
    except ValueError:
        record = None

    async def build() -> bytes:
        campaign = await campaign_detail(request, org, slug)
        return render("thanks.html", org=org, campaign=campaign, record=record)

    return await cached_campaign(request, org, slug, build, resource=RESOURCE, content_type=HTML)


def _redirect(location: str) -> HTTPResponse:
    return HTTPResponse(status=303, headers={"Location": location, **NO_STORE})


@bp.post("/o/<tenant>/<slug>")
async def create_pledge_page(request: Request, tenant: str, slug: str) -> HTTPResponse:
    """The pledge form: 303 to the thank-you page, or the page again with the errors."""
    org = await public_tenant(request, tenant)
    check_slug(slug)
    thanks = f"/o/{tenant}/{slug}/obrigado"
    form = PledgeForm.parse(dict(request.form or {}))
    if form.honeypot:
        log.info("pledge form honeypot filled on %s from %s", request.path, client_ip(request))
        return _redirect(thanks)
    pledge = form.validate()
    if pledge is not None:
        key = pledge_key(
            form_secret(request.app.config.JWT_SECRET),
            tenant_id=org["id"],
            slug=slug,
            pledge=pledge,
            client_ip=client_ip(request),
        )
        try:
            body = await _pledge(request, org, slug, pledge, key)
        except ValidationFailed:  # the item is not one of this campaign's
            form.errors["item"] = "Escolha um dos itens da lista."
        except Conflict:
            notice = "Esta campanha não está recebendo doações no momento."
            html = await _campaign_html(request, org, slug, form=form, notice=notice)
            return HTTPResponse(html, status=409, headers=NO_STORE, content_type=HTML)
        else:
            return _redirect(f"{thanks}?{urlencode({'registro': body['id']})}")
    html = await _campaign_html(request, org, slug, form=form)
    return HTTPResponse(html, status=422, headers=NO_STORE, content_type=HTML)


async def _pledge(
    request: Request, org: Mapping[str, Any], slug: str, pledge: Any, key: str
) -> dict[str, Any]:
    """The pledge's stored answer; a concurrent identical post waits for the first."""
    for _ in range(IN_FLIGHT_TRIES):
        try:
            outcome = await pledge_once(request, org, slug, pledge, key=key, ttl=REPEAT_WINDOW)
        except IdempotencyInFlight:
            await asyncio.sleep(0.1)
            continue
        answer: dict[str, Any] = orjson.loads(outcome.body)
        return answer
    raise IdempotencyInFlight("The same pledge is still being recorded.")


@bp.get("/o/<rest:path>")
async def get_missing_page(request: Request, rest: str) -> HTTPResponse:
    """Any other address under /o/: the Portuguese 404."""
    raise NotFound("No such page.")


_TITLES = {
    400: "Endereço inválido",
    404: "Página não encontrada",
    405: "Método não permitido",
    409: "Não foi possível registrar",
    413: "Dados grandes demais",
    422: "Dados inválidos",
    429: "Muitas requisições",
    503: "Serviço indisponível",
}


async def render_error_page(request: Request, exception: Exception) -> HTTPResponse:
    """Errors of these pages as Portuguese HTML; a 404 to a GET is public (cached by
    the edge for the microcache period, replacing a page that is gone)."""
    mapped = exception if isinstance(exception, ApiError) else to_api_error(exception)
    if isinstance(mapped, SanicException):
        status = mapped.status_code
    elif isinstance(exception, SanicException):
        status = exception.status_code
    else:
        log.exception("unhandled error on %s %s", request.method, request.path)
        status = 500
    if status >= 500:
        log.warning("%s %s: %r", request.method, request.path, exception)
    headers = dict(NO_STORE)
    if status == 404 and request.method in ("GET", "HEAD"):
        headers["Cache-Control"] = PUBLIC_CACHE_CONTROL
    if status in (429, 503):
        headers["Retry-After"] = "1"
    title = _TITLES.get(status, "Algo deu errado")
    html = render("error.html", status=status, title=title)
    return HTTPResponse(html, status=status, headers=headers, content_type=HTML)


bp.exception(Exception)(render_error_page)
# Pages, not API operations: kept out of the OpenAPI document.
for _handler in (
    list_campaign_pages,
    get_organization_page,
    get_campaign_page,
    get_thanks_page,
    create_pledge_page,
    get_missing_page,
):
    openapi.exclude()(_handler)
