"""The ceilings the benchmarks compare the API against: a bare Sanic route that answers
fixed bytes (and, with a database, one plain INSERT through an asyncpg pool), and the
realistic campaign both serve. `conectades bench` runs it as the `bare-route` and
`bare-insert` rows (load/bench.py); load/experiments/cache.py used it first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sanic import HTTPResponse, Request, Sanic


def create_bare_app(_: object = None) -> Sanic[Any, Any]:
    """`sanic load.ceiling:create_bare_app --factory`: the ceilings of a Sanic route.

    BENCH_BODY_FILE's bytes on any GET under /api/v1/campaigns/ (a bare route), and,
    when BENCH_DATABASE_URL is set, POST /bench/insert: one INSERT of the body's
    item_id and quantity into bench_insert through an asyncpg pool of the API's
    size (CONECTADES_DB_POOL_MAX, default 10), autocommit (load/bench.py)."""
    import asyncpg
    import orjson

    body = Path(os.environ["BENCH_BODY_FILE"]).read_bytes()
    dsn = os.environ.get("BENCH_DATABASE_URL", "")
    pool_max = int(os.environ.get("CONECTADES_DB_POOL_MAX", "10"))
    headers = {"Cache-Control": "private, no-store", "X-Cache": "HIT"}
    app = Sanic("bench_bare")
    app.config.ACCESS_LOG = False

    @app.get("/api/v1/campaigns/<campaign_id:str>")
    async def bare(request: Request, campaign_id: str) -> HTTPResponse:
        return HTTPResponse(body, headers=headers, content_type="application/json")

    @app.get("/health/ready")
    async def ready(request: Request) -> HTTPResponse:
        return HTTPResponse(b"{}", content_type="application/json")

    if not dsn:
        return app

    @app.before_server_start
    async def open_pool(app: Sanic[Any, Any], _: Any) -> None:
        app.ctx.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=pool_max)

    @app.after_server_stop
    async def close_pool(app: Sanic[Any, Any], _: Any) -> None:
        await app.ctx.pool.close()

    @app.post("/bench/insert")
    async def insert(request: Request) -> HTTPResponse:
        data = orjson.loads(request.body)
        new_id = await request.app.ctx.pool.fetchval(
            "INSERT INTO bench_insert (item_id, quantity) VALUES ($1, $2) RETURNING id",
            data["item_id"],
            int(data["quantity"]),
        )
        out = orjson.dumps({"id": new_id})
        return HTTPResponse(out, status=201, headers=headers, content_type="application/json")

    return app


def campaign_body() -> dict[str, Any]:
    """A realistic campaign: a few items, a paragraph of description."""
    return {
        "slug": "inverno-solidario",
        "title": "Inverno solidário 2026",
        "subtitle": "Agasalhos e alimentos para famílias do bairro",
        "description": "Arrecadação de cobertores, roupas de frio e alimentos não "
        "perecíveis para 120 famílias atendidas pela associação. " * 3,
        "categories": ["agasalhos", "alimentos"],
        "location": "São Paulo - Zona Leste",
        "contact": "contato@example.org",
        "status": "published",
        "items": [
            {"name": name, "unit": unit, "quantity_requested": q}
            for name, unit, q in (
                ("Cobertor", "unit", 120),
                ("Casaco", "unit", 200),
                ("Arroz", "kg", 600),
                ("Feijão", "kg", 400),
                ("Leite em pó", "kg", 150),
            )
        ],
    }
