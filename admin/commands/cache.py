"""`conectades cache`: purge, warm and stats of the API's response cache in Redis."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import asyncpg
import typer
from redis.exceptions import RedisError
from rich.table import Table

from admin.common import (
    REDIS_URL_ENV,
    JsonOpt,
    TenantOpt,
    response_cache,
    tenant_by_slug,
)
from admin.runtime import (
    ADMIN_URL_ENV,
    CliError,
    Target,
    admin_connection,
    audit,
    emit_json,
    out,
    run,
)
from api.warm import public_paths
from db.queries import tenants as tq

API_BASE_ENV = "CONECTADES_API_URL"
DEFAULT_API_URL = "http://127.0.0.1:8000"

cache_app = typer.Typer(help="The API's response cache in Redis.", no_args_is_help=True)


@cache_app.command("purge")
def cache_purge(tenant: TenantOpt) -> None:
    """Drop every cached response of a tenant (and of the public directory), in O(1)."""

    async def go() -> asyncpg.Record:
        async with admin_connection() as conn:
            row = await tenant_by_slug(conn, tenant)
        cache = response_cache()
        try:
            purged = await cache.purge_tenant(row["id"])
        finally:
            await cache.close()
        if not purged:
            raise CliError(f"cannot reach Redis at {REDIS_URL_ENV}; nothing was purged")
        return row

    row = run(go())
    audit("cache.purge", Target([row["id"]], resource_id=row["id"]), slug=row["slug"])
    out.print(f"cached responses of tenant {row['slug']} dropped (and the public directory's)")


ApiOpt = Annotated[
    str | None,
    typer.Option("--api", help=f"The API's base URL (default ${API_BASE_ENV} or localhost)."),
]


def _api_base(api_url: str | None) -> str:
    base = (api_url or os.environ.get(API_BASE_ENV) or DEFAULT_API_URL).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise CliError(f"the API's URL (--api or {API_BASE_ENV}) must be http(s)://, not {base!r}")
    return base


def _get(url: str, timeout: float) -> tuple[int, bytes, str]:
    """An anonymous GET: the status (0 when nothing answered), the body and the
    API's X-Cache (HIT, MISS: stored; BYPASS: built without the cache)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) only: _api_base)
            return int(response.status), response.read(), response.headers.get("X-Cache", "")
    except urllib.error.HTTPError as exc:
        return exc.code, b"", ""
    except (OSError, ValueError):
        return 0, b"", ""


def _listed_campaigns(base: str, tenant: str | None, most: int) -> list[tuple[str, str]]:
    """(organization slug, campaign slug) of up to `most` campaigns of a directory,
    the newest first: the cross-tenant one, or the organization's."""
    path = "/api/public/campaigns" if tenant is None else f"/api/public/{quote(tenant)}/campaigns"
    found: list[tuple[str, str]] = []
    cursor: str | None = None
    while len(found) < most:
        query = {"limit": str(min(100, most - len(found)))} | ({"cursor": cursor} if cursor else {})
        status, body, _ = _get(f"{base}{path}?{urlencode(query)}", timeout=30)
        if status != 200:
            answer = f"HTTP {status}" if status else "no answer"
            raise CliError(f"cannot list the campaigns at {base}{path}: {answer}")
        page = json.loads(body)
        found += [(tenant or row["tenant"]["slug"], row["slug"]) for row in page["data"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return found


@cache_app.command("warm")
def cache_warm(
    api_url: ApiOpt = None,
    tenant: Annotated[
        str | None,
        typer.Option(help="Only this organization's directory and campaigns (its slug)."),
    ] = None,
    campaigns: Annotated[
        int, typer.Option(min=0, max=100_000, help="Campaigns to warm, the newest first.")
    ] = 1000,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Requests at a time.")] = 4,
    as_json: JsonOpt = False,
) -> None:
    """Build the public reads the first visitors ask for, through the API, so Redis
    has them: each listed campaign's page and recent donations, each organization's
    directory in every order, the cross-tenant directory in every order and status
    (first pages, JSON and donor pages). Run it after a purge
    (./start.sh and `python -m load seed` do). Give the API's own URL, not the edge's
    (the edge allows an address 10 requests a second). Exit 1 if any read was not
    stored: not a 200, or built without the cache (Redis off or failing)."""
    base = _api_base(api_url)
    started = time.monotonic()
    listed = _listed_campaigns(base, tenant, campaigns) if campaigns else []
    paths = public_paths(listed, scope=tenant)
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda p: _get(base + p, timeout=30), paths))
    statuses = Counter(status for status, _, _ in answers)
    stored = sum(status == 200 and x_cache in ("HIT", "MISS") for status, _, x_cache in answers)
    result = {
        "reads": len(paths),
        "stored": stored,
        "campaigns": len(listed),
        "seconds": round(time.monotonic() - started, 2),
        "statuses": {str(code): n for code, n in sorted(statuses.items())},
    }
    if as_json:
        emit_json(result)
    else:
        out.print(
            f"warmed {stored} of {len(paths)} public reads "
            f"({result['campaigns']} campaigns) in {result['seconds']} s"
        )
    if statuses[200] != len(paths):
        limited = statuses[429] > 0
        hint = " (429: a rate limit, as the edge's; give the API's own URL)" if limited else ""
        raise CliError(f"not every read answered 200: {result['statuses']} (0 = no answer){hint}")
    if stored != len(paths):
        raise CliError(
            f"{len(paths) - stored} reads were built without the cache (X-Cache: BYPASS): "
            "the API has no Redis, or Redis is failing"
        )


def _lookups(api_url: str) -> list[dict[str, Any]]:
    """conectades_cache_lookups_total of every API worker, from the API's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    url = api_url + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http(s) only: _api_base)
            text = response.read().decode()
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {url} (set {API_BASE_ENV} or --api): {exc}") from None
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "conectades_cache_lookups":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            row = counts.setdefault(
                (labels["tenant"], labels["resource"]),
                {"tenant": labels["tenant"], "resource": labels["resource"]},
            )
            row[labels["result"]] = row.get(labels["result"], 0) + int(sample.value)
    rows = sorted(counts.values(), key=lambda r: (r["tenant"], r["resource"]))
    for row in rows:
        for result in ("hit", "miss", "bypass", "error"):
            row.setdefault(result, 0)
        total = row["hit"] + row["miss"] + row["bypass"] + row["error"]
        row["hit_ratio"] = round(row["hit"] / total, 4) if total else None
    return rows


async def _slugs() -> dict[str, str]:
    """Tenant slugs by id, when the database is configured (labels are ids)."""
    if not os.environ.get(ADMIN_URL_ENV):
        return {}
    async with admin_connection() as conn:
        rows = await tq.select_tenants(conn)
    return {str(r["id"]): r["slug"] for r in rows}


@cache_app.command("stats")
def cache_stats(
    api_url: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hits and misses per tenant and resource (from /metrics) and Redis' own figures."""
    base = _api_base(api_url)

    async def go() -> dict[str, Any]:
        rows = _lookups(base)
        slugs = await _slugs() if rows else {}
        for row in rows:
            row["slug"] = slugs.get(row["tenant"], "")
        server: dict[str, Any] | None = None
        if os.environ.get(REDIS_URL_ENV):
            cache = response_cache()
            try:
                server = await cache.server_stats()
            except RedisError as exc:
                raise CliError(f"cannot reach Redis at {REDIS_URL_ENV}: {exc}") from None
            finally:
                await cache.close()
        return {"lookups": rows, "redis": server}

    stats = run(go())
    if as_json:
        emit_json(stats)
        return
    table = Table("tenant", "resource", "hit", "miss", "bypass", "error", "hit ratio")
    for row in stats["lookups"]:
        ratio = row["hit_ratio"]
        table.add_row(
            row["slug"] or row["tenant"],
            row["resource"],
            *(str(row[k]) for k in ("hit", "miss", "bypass", "error")),
            f"{ratio:.1%}" if ratio is not None else "-",
        )
    out.print(table)
    if stats["redis"] is not None:
        redis_table = Table("redis", "value")
        for key, value in stats["redis"].items():
            redis_table.add_row(key, str(value))
        out.print(redis_table)
