"""Cached reads and post-write invalidation for route handlers.

A read handler checks auth and parses its input, then::

    return await cached_json(request, tenant_id=principal.tenant_id,
                             resource="campaigns", build=build, private=True)

where `build()` runs the query and returns the response bytes (`dumps(...)`).
Only 200 bodies are cached; `build()` raising (404, 400, ...) caches nothing.
A write handler, after its transaction committed, names the kind of write::

    await invalidate_after_write(request, principal.tenant_id, "item.updated")
    await invalidate_after_write(request, tid, "donation.confirmed", campaign_id=cid, slug=slug)

and `WRITES` says what each kind makes stale; nothing else decides it.

Parts. A read that depends on one campaign only names it (`part=campaign_part(id)`,
or `slug_part(slug)` for public pages addressed by slug); tenant-wide lists name
`LISTS`, an organization's public directory `DIRECTORY`. A write confined to one
campaign (`Stale.campaign`) drops that campaign's parts and the lists, so the
tenant's other cached pages stay valid; any other write drops the whole tenant.
`Stale.directory` writes change what the public directory shows (anything on a
published campaign, its items or its contributed totals) and drop the
organization's directory too.

The cross-tenant directory (the JSON directory, the donor pages' `/` and the old
API's listing, scope `tenant_id=None`) is shared by every tenant, so every
tenant's donations would drop it: in the 1000-user mix about 15 times a second,
which kept it always cold, and the old listing (817 KB for 500 campaigns, built
from scratch each time) took 14 % of the API's CPU. Donations therefore leave it
(`Stale.cross_tenant` False) and its entries live `DIRECTORY_TTL` seconds: its
progress bars are at most that old in Redis, plus the edge's microcache (max-age
1 s, counted by nginx in whole seconds, and stale-while-revalidate 1 s). A change
to a campaign or its items still drops it at once, so a deleted or unpublished
campaign leaves it as fast as before.

An organization's public reads (its directory, a campaign's page and donations,
the donor pages) lag the same way, by a mark instead of a TTL: a donation
(`Stale.lag`) drops the partner API's reads of its campaign and the lists at
once, and only marks its public parts due; a public read rebuilds once the
oldest mark is `PUBLIC_LAG` seconds old (cache/keys.py, "Lagging parts"). A hot
campaign's page was rebuilt at each pledge, so at each of the edge's refreshes;
now at most every PUBLIC_LAG seconds, and a page nobody pledges to keeps its entry.
So a donation shows in every public read within PUBLIC_LAG (or DIRECTORY_TTL)
here, plus the edge's microcache (about 2 s more: 3.3 and 4.1 s measured from a
pledge's answer to the page through the edge); the partner API reads its own
writes at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

from sanic import HTTPResponse, Request
from sanic.response import BaseHTTPResponse

from api.responses import JSON, PRIVATE
from cache import Lookup, ResponseCache, count_disabled, ttl_for

# The edge keeps a public answer for a second, and may serve it for one more second
# while it fetches a fresh one in the background (never older: see edge/render.py).
PUBLIC_CACHE_CONTROL = "public, max-age=1, stale-while-revalidate=1"
PUBLIC = {"Cache-Control": PUBLIC_CACHE_CONTROL}
# Anonymous reads under these prefixes are the same for everyone, a 404 included.
PUBLIC_PREFIXES = ("/api/public/",)
# Seconds an entry of the cross-tenant directory lives, and seconds an
# organization's public read may miss a donation: how late a donation may show in
# public reads (see the module's docstring).
DIRECTORY_TTL = 2
PUBLIC_LAG = 2.0

# The tenant-wide reads that show donations or totals: campaign lists, donation
# lists, one donation.
LISTS = "lists"
# The tenant's public directory: campaign fields and progress (confirmed + delivered),
# not pending pledges. Dropped by the writes whose `Stale.directory` is set.
DIRECTORY = "directory"


def campaign_part(campaign_id: UUID) -> str:
    return f"c:{campaign_id}"


def slug_part(slug: str) -> str:
    return f"s:{slug}"


@dataclass(frozen=True)
class Stale:
    """What a kind of write makes stale: only its campaign's parts (`campaign`) or
    the whole tenant; the organization's public directory or not (`directory`);
    and with it the cross-tenant directory, unless `cross_tenant` is False (then
    that follows within DIRECTORY_TTL). With `lag`, the campaign's public parts
    (its slug's, the organization's directory) are only marked: they follow
    within PUBLIC_LAG."""

    campaign: bool
    directory: bool
    cross_tenant: bool = True
    lag: bool = False


@dataclass(frozen=True)
class Invalidation:
    """A write's row of `WRITES` as `ResponseCache.invalidate` takes it: the
    cross-tenant directory or not, the tenant's parts dropped now (None: the whole
    tenant) and the parts marked to follow within PUBLIC_LAG."""

    directory: bool
    parts: list[str] | None
    lagging: list[str]


WriteKind = Literal[
    "campaign.created",
    "campaign.updated",
    "campaign.renamed",
    "campaign.deleted",
    "item.created",
    "item.updated",
    "item.deleted",
    "donation.pledged",
    "donation.recorded",
    "donation.confirmed",
    "donation.delivered",
    "donation.cancelled",
    "donation.anonymized",
]

WRITES: Mapping[WriteKind, Stale] = {
    # A new or deleted campaign shows in every list and page of the tenant.
    "campaign.created": Stale(campaign=False, directory=True),
    # An edit: its reads by id and by slug, the lists, the directory. The tenant's
    # other campaigns stay cached (partners' edits emptied every page of their tenant).
    "campaign.updated": Stale(campaign=True, directory=True),
    # A new slug drops the whole tenant: the old slug's pages must go too, and
    # renames are rare.
    "campaign.renamed": Stale(campaign=False, directory=True),
    "campaign.deleted": Stale(campaign=False, directory=True),
    "item.created": Stale(campaign=False, directory=True),
    "item.updated": Stale(campaign=False, directory=True),
    "item.deleted": Stale(campaign=False, directory=True),
    # A pending donation (a public pledge, or a partner's): its campaign's pages and
    # the lists, not the directory (its progress counts confirmed and delivered
    # quantities only; in the load mix every pledge emptied each organization's
    # directory pages, about 30 times a second).
    "donation.pledged": Stale(campaign=True, directory=False, lag=True),
    # A partner's donation recorded as confirmed or delivered: contributed at once,
    # in the organization's directory; in the cross-tenant one within DIRECTORY_TTL.
    "donation.recorded": Stale(campaign=True, directory=True, cross_tenant=False, lag=True),
    "donation.confirmed": Stale(campaign=True, directory=True, cross_tenant=False, lag=True),
    # confirmed → delivered leaves contributed quantities (and the directory) alone.
    "donation.delivered": Stale(campaign=True, directory=False, lag=True),
    "donation.cancelled": Stale(campaign=True, directory=True, cross_tenant=False, lag=True),
    # Names and messages erased (the public donations list shows them); totals stay.
    "donation.anonymized": Stale(campaign=True, directory=False),
}


def stale_parts(
    kind: WriteKind, campaign_id: UUID | None = None, slug: str | None = None
) -> Invalidation:
    """`kind`'s row of `WRITES` for `ResponseCache.invalidate`: a write confined to
    one campaign changes the campaign (by id and, for public pages, by slug), the
    tenant-wide lists and perhaps the organization's directory."""
    stale = WRITES[kind]
    cross_tenant = stale.directory and stale.cross_tenant
    if not stale.campaign:
        return Invalidation(cross_tenant, None, [])
    if campaign_id is None:
        raise ValueError(f"a {kind} write invalidates its campaign: pass campaign_id")
    public = ([slug_part(slug)] if slug is not None else []) + (
        [DIRECTORY] if stale.directory else []
    )
    parts = [campaign_part(campaign_id), LISTS]
    if stale.lag:
        return Invalidation(cross_tenant, parts, public)
    return Invalidation(cross_tenant, parts + public, [])


def request_key(request: Request) -> str:
    """Method, path and the query with parameters ordered by name (values of a
    repeated name keep their order; blank values are kept)."""
    raw = request.query_string
    if not raw:  # the common case: nothing to parse or order
        return f"{request.method} {request.path}?"
    args = parse_qsl(raw, keep_blank_values=True)
    query = urlencode(sorted(args, key=lambda kv: kv[0]))
    return f"{request.method} {request.path}?{query}"


def response_cache(request: Request) -> ResponseCache | None:
    """The worker's response cache; None when REDIS_URL is empty."""
    return getattr(request.app.ctx, "cache", None)


# The response headers of each (private, X-Cache) pair, built once (Sanic copies them).
_HEADERS = {
    (private, x_cache): {**(PRIVATE if private else PUBLIC), "X-Cache": x_cache}
    for private in (True, False)
    for x_cache in ("HIT", "MISS", "BYPASS")
}


def _respond(body: bytes, x_cache: str, *, private: bool, content_type: str) -> HTTPResponse:
    return HTTPResponse(
        body, status=200, headers=_HEADERS[private, x_cache], content_type=content_type
    )


async def cached_json(
    request: Request,
    *,
    tenant_id: UUID | None,
    resource: str,
    build: Callable[[], Awaitable[bytes]],
    private: bool,
    ttl: int | None = None,
    part: str | None = None,
    content_type: str = JSON,
) -> HTTPResponse:
    """The body from Redis (X-Cache: HIT), or built, stored and sent (MISS), or
    built without the cache (BYPASS: disabled, Redis failing, breaker open).

    `tenant_id=None` is the cross-tenant public directory's scope. The donor pages
    (api/routes/pages.py) store their HTML the same way (`content_type`)."""
    cache = response_cache(request)
    if cache is None:
        count_disabled(tenant_id, resource)
        return _respond(await build(), "BYPASS", private=private, content_type=content_type)
    # An organization's public reads may lag its donations (see the module's docstring).
    lag = PUBLIC_LAG if not private and tenant_id is not None else 0.0
    found = await cache.lookup(tenant_id, resource, request_key(request), part, lag=lag)
    if found.body is not None:
        return _respond(found.body, found.header, private=private, content_type=content_type)
    if found.slot is None:
        return _respond(await build(), found.header, private=private, content_type=content_type)
    lifetime = ttl if ttl is not None else ttl_for(resource)
    body = await cache.flights.run(
        found.slot, lambda: _build_and_store(cache, found, build, lifetime)
    )
    return _respond(body, found.header, private=private, content_type=content_type)


async def _build_and_store(
    cache: ResponseCache, found: Lookup, build: Callable[[], Awaitable[bytes]], ttl: int
) -> bytes:
    body = await build()
    await cache.store(found, body, ttl)
    return body


async def invalidate_after_write(
    request: Request,
    tenant_id: UUID,
    kind: WriteKind,
    *,
    campaign_id: UUID | None = None,
    slug: str | None = None,
) -> None:
    """Make the tenant's cached reads that a `kind` write changed unreachable (see
    `WRITES`; `campaign_id` and its `slug` for the kinds confined to a campaign);
    never raises.

    Call after the commit. If Redis cannot be reached the invalidation is owed and
    replayed by this worker before it uses the cache again (see cache/response.py)."""
    stale = stale_parts(kind, campaign_id, slug)
    cache = response_cache(request)
    if cache is not None:
        await cache.invalidate(
            tenant_id, directory=stale.directory, parts=stale.parts, lagging=stale.lagging
        )


async def public_gone_is_public(request: Request, response: BaseHTTPResponse) -> None:
    """Response middleware: a 404/410 to an anonymous public GET is as public as the
    page was, so the edge replaces its cached page with it (errors are `no-store`
    otherwise, and the edge went on serving the deleted page)."""
    if (
        response.status in (404, 410)
        and request.method in ("GET", "HEAD")
        and request.path.startswith(PUBLIC_PREFIXES)
        and "authorization" not in request.headers
    ):
        response.headers["Cache-Control"] = PUBLIC_CACHE_CONTROL


async def default_x_cache(request: Request, response: BaseHTTPResponse) -> None:
    """Response middleware: `X-Cache: BYPASS` on every API response not from cached_json."""
    if "x-cache" not in response.headers and request.path.startswith("/api/"):
        response.headers["X-Cache"] = "BYPASS"
