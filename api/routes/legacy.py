"""The old system's endpoints, kept so its clients keep working.

`GET /api/campanhas/listar/` answers as the old Django view did: a bare JSON array
of campaigns with the old serializer's Portuguese fields (api/models/legacy.py),
the old parameters (`busca`, `categoria` and `localizacao` as integer ids, `status`
= ativa | encerrada | todas, `ordenar` = recente | antiga | prazo | progresso) and
their defaults. The old view returned everything; this one returns at most
`LEGACY_MAX` campaigns and says so in `X-Result-Capped` when it holds that many.

It is public: an `Authorization` header (the old manual test sends a staff access
token) is neither required nor checked, so a valid token never causes a 401 and an
invalid one is ignored rather than refused.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sanic import Blueprint, HTTPResponse, Request

from api.cache import PUBLIC
from api.database import connection
from api.directory import DirectoryParams, cached_directory
from api.models.legacy import CampanhaLegadaList
from api.openapi import doc
from api.query import parse_query
from api.responses import dumps
from db.queries import legacy as lq
from db.queries import public as pq

bp = Blueprint("legacy")

LEGACY_MAX = 500
CAPPED_HEADER = "X-Result-Capped"
_NO_RESULT = b"[]"

LEGACY_PARAMS = DirectoryParams(
    q="busca",
    category="categoria",
    location="localizacao",
    status="status",
    order="ordenar",
    statuses={"ativa": "active", "encerrada": "ended", "todas": "all"},
    orders={"recente": "recent", "antiga": "oldest", "prazo": "deadline", "progresso": "progress"},
    integer_ids=True,
)


def _percent(part: float, whole: float) -> float:
    return round(100.0 * min(1.0, part / whole), 2) if whole else 0.0


def _progress(items: list[dict[str, Any]]) -> float:
    """The campaign's progress in percent from its items, as the public directory's
    `progress` (migration 0024): the mean over items of min(1, contributed /
    requested), 0 without items; rounded to 2 places like the listing's other
    percentages. Computed here because the items are read anyway: the directory
    statement then sums no slots (about half of the listing's database time).
    Floats with an exactly rounded sum (math.fsum), not fractions: fractions.Fraction
    took 1.2 % of the API's samples in the 1000-user mix (py-spy), for a result
    that agrees with the view's numeric to the last bit but one of a double."""
    if not items:
        return 0.0
    done = math.fsum(
        min(1.0, i["quantidade_contribuida"] / i["quantidade_solicitada"]) for i in items
    )
    return round(100.0 * done / len(items), 2)


def _item(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "campanha": str(row["campaign_id"]),
        "nome": row["name"],
        "quantidade_solicitada": row["quantity_requested"],
        "quantidade_contribuida": row["contributed"],
        "unidade": row["unit"],
        "percentual_atingido": _percent(row["contributed"], row["quantity_requested"]),
        "data_criacao": row["created_at"],
    }


def _days_left(ends_at: datetime | None, now: datetime) -> int | None:
    if ends_at is None:
        return None
    return max(0, math.ceil((ends_at - now).total_seconds() / 86400))


def _campanha(
    row: asyncpg.Record,
    items: list[dict[str, Any]],
    categories: dict[str, int],
    locations: dict[str, int],
    now: datetime,
) -> dict[str, Any]:
    started = row["starts_at"] is None or row["starts_at"] <= now
    active = started and (row["ends_at"] is None or row["ends_at"] > now)
    return {
        "id": str(row["id"]),
        "titulo": row["title"],
        "subtitulo": row["subtitle"],
        "descricao": row["description"],
        "organizadora": {"slug": row["tenant_slug"], "nome": row["tenant_name"]},
        "beneficiaria_nome": None,  # no such field here; kept for the old shape
        "imagem_url": row["image_url"],
        "categorias": [categories[c] for c in row["categories"] if c in categories],
        "whatsapp": row["contact"],
        "localizacao": locations.get(row["location"]),
        "data_inicio": row["starts_at"],
        "prazo": row["ends_at"],
        "dias_restantes": _days_left(row["ends_at"], now),
        "percentual_atingido": _progress(items),
        "status_campanha": "ativa" if active else "encerrada",
        "total_itens": len(items),
        "itens_completos": sum(
            1 for i in items if i["quantidade_contribuida"] >= i["quantidade_solicitada"]
        ),
        "itens": items,
        "itens_campanha": items,
        "ativa": active,
    }


async def _build(request: Request, f: pq.DirectoryFilter) -> bytes:
    async with connection(request) as conn:
        if f.order == "progress":
            async with conn.transaction():
                await pq.disable_jit(conn)
                rows = await pq.select_directory(conn, f, after=None, limit=LEGACY_MAX)
        else:
            rows = await pq.select_directory(conn, f, after=None, limit=LEGACY_MAX, progress=False)
        ids = [r["id"] for r in rows]
        item_rows = await lq.select_items(conn, campaign_ids=ids) if ids else []
        slugs = sorted({c for r in rows for c in r["categories"]})
        names = sorted({r["location"] for r in rows if r["location"]})
        categories = await lq.category_ids(conn, slugs=slugs) if slugs else {}
        locations = await lq.location_ids(conn, names=names) if names else {}
    items: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for i in item_rows:
        items[i["campaign_id"]].append(_item(i))
    now = datetime.now(UTC)
    return dumps([_campanha(r, items[r["id"]], categories, locations, now) for r in rows])


@bp.get("/api/campanhas/listar/", strict_slashes=False)
@doc(
    tag="legacy",
    response=CampanhaLegadaList,
    errors=(422,),
    secured=False,
    query=LEGACY_PARAMS.model,
)
async def list_campanhas(request: Request) -> HTTPResponse:
    """The old system's listing: a bare array of campaigns with its Portuguese fields."""
    query = parse_query(request, LEGACY_PARAMS.model)
    f = query.filter()  # without category and location: they are ids, looked up here
    category_id: int | None = query.category
    location_id: int | None = query.location
    if category_id is not None or location_id is not None:
        async with connection(request) as conn:
            if category_id is not None:
                f = replace(f, category=await lq.category_slug(conn, category_id=category_id))
            if location_id is not None:
                name = await lq.location_name(conn, location_id=location_id)
                f = replace(f, location=name, exact_location=True)
        if (category_id is not None and f.category is None) or (
            location_id is not None and f.location is None
        ):
            # An id no category or location has: nothing matches, as in the old view.
            return HTTPResponse(_NO_RESULT, headers=PUBLIC, content_type="application/json")

    async def build() -> bytes:
        return await _build(request, f)

    response = await cached_directory(request, f, build)  # f.tenant_id is None
    # Each campaign object has this key once (in a string value its quotes would be
    # escaped), so counting it counts campaigns, cached or not, without parsing.
    if response.body is not None and response.body.count(b'"itens_completos":') >= LEGACY_MAX:
        response.headers[CAPPED_HEADER] = str(LEGACY_MAX)
    return response
