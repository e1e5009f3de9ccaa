"""`conectades cache`: purge and stats of the API's response cache in Redis."""

from __future__ import annotations

import os
import urllib.request
from typing import Annotated, Any

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


def _lookups(api_url: str) -> list[dict[str, Any]]:
    """conectades_cache_lookups_total of every API worker, from the API's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    url = api_url.rstrip("/") + "/metrics"
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{API_BASE_ENV} must be an http(s):// URL, not {api_url!r}")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (checked above)
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
    api_url: Annotated[
        str | None,
        typer.Option("--api", help=f"The API's base URL (default ${API_BASE_ENV} or localhost)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hits and misses per tenant and resource (from /metrics) and Redis' own figures."""
    base = api_url or os.environ.get(API_BASE_ENV) or DEFAULT_API_URL

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
