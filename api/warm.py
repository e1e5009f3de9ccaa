"""The public reads to build before the first visitors ask for them.

`conectades cache warm` asks the API itself for these paths, so each is built and
stored in Redis exactly as a visitor's request would be (api/cache.py). Each path is
the first page of a directory in each order and status it offers, or a listed
campaign's page and recent donations, as JSON and as donor pages. `./start.sh` and
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


def directory_queries(params: DirectoryParams) -> list[str]:
    """The first page in every order and status: the bare path for the defaults (the
    first of each, as the directory parses them), the others with their parameters
    in the order the cache keys them (by name)."""
    orders, statuses = list(params.orders), list(params.statuses)
    queries = [""]
    for order in orders:
        for status in statuses:
            args = {}
            if order != orders[0]:
                args[params.order] = order
            if status != statuses[0]:
                args[params.status] = status
            if args:
                queries.append(urlencode(sorted(args.items())))
    return queries


def _with_query(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def directory_paths(tenant: str | None) -> list[str]:
    """A directory's first pages, JSON and donor page: the cross-tenant one (None) or
    an organization's."""
    if tenant is None:
        json_path, page_path = "/api/public/campaigns", "/"
    else:
        json_path, page_path = f"/api/public/{quote(tenant)}/campaigns", f"/o/{quote(tenant)}"
    return [_with_query(json_path, q) for q in directory_queries(JSON_PARAMS)] + [
        _with_query(page_path, q) for q in directory_queries(PAGE_PARAMS)
    ]


def campaign_paths(tenant: str, slug: str) -> list[str]:
    t, s = quote(tenant), quote(slug)
    return [
        f"/api/public/{t}/campaigns/{s}",
        f"/api/public/{t}/campaigns/{s}/donations",
        f"/o/{t}/{s}",
    ]


def public_paths(campaigns: Iterable[tuple[str, str]], *, cross_tenant: bool = True) -> list[str]:
    """Every path to warm for these (organization slug, campaign slug) pairs: the
    cross-tenant directory's (unless `cross_tenant` is False), each organization's,
    each campaign's."""
    pairs = list(dict.fromkeys(campaigns))
    paths = directory_paths(None) if cross_tenant else []
    for tenant in dict.fromkeys(t for t, _ in pairs):
        paths += directory_paths(tenant)
    for tenant, slug in pairs:
        paths += campaign_paths(tenant, slug)
    return paths
