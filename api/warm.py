"""The public reads to build before the first visitors ask for them.

`conectades cache warm` asks the API itself for these paths, so each is built and
stored in Redis exactly as a visitor's request would be (api/cache.py): each listed
campaign's page and recent donations, each organization's directory in every order,
and the cross-tenant directory in every order and status, as JSON and as donor
pages. `./start.sh` and
`python -m load seed` run it after the cache was purged, because a purge leaves
every public read to be built by the first visitor. When a thousand visitors arrive
in the same second, the cold builds take both cores for a second or two
(BENCHMARKS.md, session 35).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, urlencode

from api.directory import PARAMS as JSON_PARAMS
from api.directory import DirectoryParams
from api.routes.pages import PARAMS as PAGE_PARAMS


def directory_queries(params: DirectoryParams, *, statuses: bool = True) -> list[str]:
    """The first page in every order (and every status, unless `statuses` is False):
    the bare path for the defaults (the first of each, as the directory parses
    them), the others with their parameters in the order the cache keys them (by
    name)."""
    orders = list(params.orders)
    choices = list(params.statuses) if statuses else [next(iter(params.statuses))]
    queries = [""]
    for order in orders:
        for status in choices:
            args = {}
            if order != orders[0]:
                args[params.order] = order
            if status != choices[0]:
                args[params.status] = status
            if args:
                queries.append(urlencode(sorted(args.items())))
    return queries


def _with_query(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def directory_paths(tenant: str | None) -> list[str]:
    """A directory's first pages, JSON and donor page: the cross-tenant one (None) in
    every order and status; an organization's in every order (there can be many)."""
    if tenant is None:
        json_path, page_path = "/api/public/campaigns", "/"
    else:
        json_path, page_path = f"/api/public/{quote(tenant)}/campaigns", f"/o/{quote(tenant)}"
    every = tenant is None
    return [_with_query(json_path, q) for q in directory_queries(JSON_PARAMS, statuses=every)] + [
        _with_query(page_path, q) for q in directory_queries(PAGE_PARAMS, statuses=every)
    ]


def campaign_paths(tenant: str, slug: str) -> list[str]:
    t, s = quote(tenant), quote(slug)
    return [
        f"/api/public/{t}/campaigns/{s}",
        f"/api/public/{t}/campaigns/{s}/donations",
        f"/o/{t}/{s}",
    ]


def public_paths(campaigns: Iterable[tuple[str, str]], *, scope: str | None = None) -> list[str]:
    """Every path to warm for these (organization slug, campaign slug) pairs: each
    campaign's, each organization's directory, and last the directory they were
    listed from, `scope`: the cross-tenant one (None; warmed last because its
    entries live only DIRECTORY_TTL seconds: api/cache.py) or an organization's."""
    pairs = list(dict.fromkeys(campaigns))
    paths = [p for tenant, slug in pairs for p in campaign_paths(tenant, slug)]
    for tenant in dict.fromkeys(t for t, _ in pairs if t != scope):
        paths += directory_paths(tenant)
    return paths + directory_paths(scope)
