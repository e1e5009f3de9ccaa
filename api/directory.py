"""The public directory: its query string, cursors and pages, shared by the JSON API
(api/routes/public.py), the donor pages (api/routes/pages.py) and the old system's
route (api/routes/legacy.py), which name the same filters differently (DirectoryParams).

Cross-tenant reads go through the owner-owned public views (db/queries/public.py);
a page is cached in the directory's scope, or the organization's for one tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from uuid import UUID

import asyncpg
import pydantic
from pydantic import BaseModel, Field
from sanic import HTTPResponse, Request

from api.cache import DIRECTORY, DIRECTORY_TTL, cached_json
from api.database import connection
from api.errors import BadRequest
from api.pagination import Page, page_of
from api.query import choice, integer_id, parse_query, search_text
from api.responses import JSON, dumps
from db.queries import public as pq

RESOURCE = "campaigns"  # the response cache's resource of campaign pages and the directory
MAX_Q = 200
MAX_FILTER = 200
_BAD_CURSOR = "cursor: not a cursor returned by this API"
# The infinite deadline of campaigns without one (asyncpg maps it to datetime.max).
_NO_DEADLINE = datetime.max
# Writes invalidate cached pages at once, but time alone also changes them: a
# deadline passing moves a campaign from "active" to "ended" and stops pledges.
# Public pages are therefore kept at most a minute, however long the resource TTL.
DEADLINE_BOUND_TTL = 60


async def cached_directory(
    request: Request,
    f: pq.DirectoryFilter,
    build: Callable[[], Awaitable[bytes]],
    *,
    resource: str = RESOURCE,
    content_type: str = JSON,
) -> HTTPResponse:
    """A directory page for `f` from the response cache (JSON, a donor page, the old
    listing; `resource` names it in the cache and its metrics): an organization's
    under its DIRECTORY part for DEADLINE_BOUND_TTL (its donations mark it), the
    cross-tenant one for DIRECTORY_TTL (they leave it)."""
    return await cached_json(
        request,
        tenant_id=f.tenant_id,
        resource=resource,
        build=build,
        private=False,
        ttl=DEADLINE_BOUND_TTL if f.tenant_id is not None else DIRECTORY_TTL,
        part=DIRECTORY,  # only for an organization's directory (f.tenant_id set)
        content_type=content_type,
    )


class DirectoryQuery(BaseModel):
    """The directory's query string (api/query.py); each DirectoryParams builds its
    own subclass, which gives these fields their parameter names and types."""

    # The legacy route's category and location are ids, looked up by the route.
    integer_ids: ClassVar[bool] = False
    q: Any = None
    category: Any = None
    location: Any = None
    status: Any = None
    order: Any = None

    def filter(self, *, tenant_id: UUID | None = None) -> pq.DirectoryFilter:
        """The query's filters (without category and location when they are ids)."""
        return pq.DirectoryFilter(
            order=self.order,
            status=self.status,
            q=self.q,
            category=None if self.integer_ids else self.category,
            location=None if self.integer_ids else self.location,
            tenant_id=tenant_id,
        )


@dataclass(frozen=True)
class DirectoryParams:
    """Query parameter names and accepted values (the legacy route and the donor
    pages rename them); `model` parses and documents them (`doc(query=...)`)."""

    q: str = "q"
    category: str = "category"
    location: str = "location"
    status: str = "status"
    order: str = "order"
    statuses: Mapping[str, pq.Status] = field(
        default_factory=lambda: {"active": "active", "ended": "ended", "all": "all"}
    )
    # The old API's category and location filters are integer ids (api/routes/legacy.py).
    integer_ids: bool = False
    orders: Mapping[str, pq.Order] = field(
        default_factory=lambda: {
            "recent": "recent",
            "oldest": "oldest",
            "deadline": "deadline",
            "progress": "progress",
        }
    )
    model: type[DirectoryQuery] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", _directory_model(self))


def _directory_model(params: DirectoryParams) -> type[DirectoryQuery]:
    if params.integer_ids:
        category = (integer_id(MAX_FILTER), "A category id")
        location = (integer_id(MAX_FILTER), "A location id")
    else:
        category = (search_text(MAX_FILTER), "An exact category")
        location = (search_text(MAX_FILTER), "Location prefix (accent/case-insensitive)")
    fields: dict[str, Any] = {
        "q": (
            search_text(MAX_Q),
            Field(
                None,
                alias=params.q,
                description="Search title and description (accent/case-insensitive)",
            ),
        ),
        "category": (category[0], Field(None, alias=params.category, description=category[1])),
        "location": (location[0], Field(None, alias=params.location, description=location[1])),
        # The first choice is the default (parsed as any other: validate_default).
        "status": (
            choice(params.statuses),
            Field(next(iter(params.statuses)), alias=params.status, validate_default=True),
        ),
        "order": (
            choice(params.orders),
            Field(next(iter(params.orders)), alias=params.order, validate_default=True),
        ),
    }
    # limit and cursor: every paged route gets them from api/openapi.py doc()
    model = pydantic.create_model("DirectoryQuery", __base__=DirectoryQuery, **fields)
    model.integer_ids = params.integer_ids
    return model


PARAMS = DirectoryParams()


def directory_filter(
    request: Request, params: DirectoryParams = PARAMS, *, tenant_id: UUID | None = None
) -> pq.DirectoryFilter:
    """The directory filters from the query string; 422 names the bad parameter."""
    return parse_query(request, params.model).filter(tenant_id=tenant_id)


def _cursor_key(order: pq.Order, row: asyncpg.Record) -> list[Any]:
    if order == "deadline":
        ends_at = row["ends_at"]
        value: Any = ends_at.isoformat() if ends_at is not None else None
    elif order == "progress":
        value = str(row["progress"])
    else:
        value = row["created_at"].isoformat()
    return [order, value, str(row["id"])]


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise BadRequest(_BAD_CURSOR)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(_BAD_CURSOR) from None
    if parsed.tzinfo is None:
        raise BadRequest(_BAD_CURSOR)
    return parsed


def _parse_id(value: Any) -> UUID:
    try:
        return UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise BadRequest(_BAD_CURSOR) from None


def _after(order: pq.Order, cursor: list[Any] | None) -> tuple[Any, UUID] | None:
    """The last row's sort key from a directory cursor; 400 when it is not ours."""
    if cursor is None:
        return None
    if len(cursor) != 3 or cursor[0] != order:
        raise BadRequest(_BAD_CURSOR)
    value, last_id = cursor[1], _parse_id(cursor[2])
    if order == "deadline":
        return (_NO_DEADLINE if value is None else _parse_time(value)), last_id
    if order == "progress":
        try:
            progress = Decimal(value) if isinstance(value, str) else None
        except InvalidOperation:
            progress = None
        if progress is None or not progress.is_finite():
            raise BadRequest(_BAD_CURSOR)
        return progress, last_id
    return _parse_time(value), last_id


def campaign_fields(
    row: Mapping[str, Any], *, tenant: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A campaign's public fields (a directory row names its tenant; a campaign page
    passes `tenant`)."""
    return {
        "id": str(row["id"]),
        "tenant": {
            "slug": tenant["slug"] if tenant else row["tenant_slug"],
            "name": tenant["name"] if tenant else row["tenant_name"],
        },
        "slug": row["slug"],
        "title": row["title"],
        "subtitle": row["subtitle"],
        "description": row["description"],
        "image_url": row["image_url"],
        "categories": row["categories"],
        "location": row["location"],
        "contact": row["contact"],
        "starts_at": row["starts_at"],
        "ends_at": row["ends_at"],
        "created_at": row["created_at"],
    }


def directory_after(f: pq.DirectoryFilter, page: Page) -> tuple[Any, UUID] | None:
    """The last row's sort key from the page's cursor; 400 when it is not ours."""
    return _after(f.order, page.cursor)


async def directory_rows(
    request: Request, f: pq.DirectoryFilter, *, after: tuple[Any, UUID] | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the directory (campaigns with their progress) and the next cursor."""
    async with connection(request) as conn:
        if f.order == "progress":
            async with conn.transaction():
                await pq.disable_jit(conn)
                rows = await pq.select_directory(conn, f, after=after, limit=limit + 1)
        else:
            rows = await pq.select_directory(conn, f, after=after, limit=limit + 1)
    rows, next_cursor = page_of(rows, limit, lambda r: _cursor_key(f.order, r))
    return [{**campaign_fields(r), "progress": float(r["progress"])} for r in rows], next_cursor


async def directory_response(request: Request, page: Page, f: pq.DirectoryFilter) -> HTTPResponse:
    """One page of the directory for these filters (also used by the legacy route).

    Cached in the organization's scope when `f.tenant_id` is set, else in the
    cross-tenant directory's scope."""
    after = directory_after(f, page)

    async def build() -> bytes:
        data, next_cursor = await directory_rows(request, f, after=after, limit=page.limit)
        return dumps({"data": data, "next_cursor": next_cursor})

    return await cached_directory(request, f, build)
