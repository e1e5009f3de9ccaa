"""Events feed (partner API v1): the tenant's changes, oldest first, for a partner
that polls forward (webhooks push the same events).

The cursor is a position (xid, seq) in the outbox (db/migrations/0015_events.sql):
an event committed late has a larger xid than every event already shown, so a
cursor never skips one. `poll_cursor` is always set, so the position survives an
empty page."""

from __future__ import annotations

from typing import Any

import orjson
from sanic import Blueprint, HTTPResponse, Request

from api.auth import require
from api.database import tenant_tx
from api.errors import BadRequest
from api.models.events import EventFilters, EventList
from api.openapi import doc
from api.pagination import Page, encode_cursor
from api.params import BAD_CURSOR
from api.query import parse_query
from api.responses import json_response
from db.queries import events as q
from tenants.principal import Principal

bp = Blueprint("events", url_prefix="/api/v1")

TAG = "events"
START = (0, 0)  # before every event
MAX_XID = (1 << 64) - 1


def position(cursor: list[Any] | None) -> tuple[int, int]:
    """The (xid, seq) a cursor from `encode_cursor([str(xid), seq])` holds; 400 otherwise."""
    if cursor is None:
        return START
    try:
        xid_raw, seq = cursor
        if not isinstance(xid_raw, str) or not xid_raw.isdigit() or len(xid_raw) > 20:
            raise ValueError(xid_raw)
        xid = int(xid_raw)
        if not (0 <= xid <= MAX_XID and isinstance(seq, int) and 0 <= seq < 1 << 63):
            raise ValueError(cursor)
    except (TypeError, ValueError):
        raise BadRequest(BAD_CURSOR) from None
    return xid, seq


def _cursor(pos: tuple[int, int]) -> str:
    return encode_cursor([str(pos[0]), pos[1]])


@bp.get("/events")
@doc(tag=TAG, response=EventList, query=EventFilters)
async def list_events(request: Request, principal: Principal, page: Page) -> HTTPResponse:
    """List the tenant's events, oldest first (a feed to poll with `poll_cursor`)."""
    require(principal, "read")
    filters, start = parse_query(request, EventFilters), position(page.cursor)
    tid = principal.tenant_id
    async with tenant_tx(request, tid) as conn:
        # First the horizon, then the rows below it: every transaction below it had
        # ended before the second statement's snapshot, so that statement sees all
        # of their events (the other order could skip rows committed in between).
        horizon = await q.horizon(conn)
        rows = await q.select_events(
            conn,
            tenant_id=tid,
            after=start,
            below=horizon,
            types=filters.type,
            occurred_after=filters.after,
            limit=page.limit + 1,
        )
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    last = (int(rows[-1]["xid"]), rows[-1]["seq"]) if rows else start
    # A page that is not full saw every matching event below the horizon: the next
    # poll may start there (it skips what the filters left out).
    polled = last if more else max(last, (horizon, 0))
    body = {
        "data": [
            {
                "id": str(r["id"]),
                "type": r["type"],
                "resource_type": r["resource_type"],
                "resource_id": None if r["resource_id"] is None else str(r["resource_id"]),
                "occurred_at": r["occurred_at"],
                "data": orjson.Fragment(r["data"]),
            }
            for r in rows
        ],
        "next_cursor": _cursor(last) if more else None,
        "poll_cursor": _cursor(polled),
    }
    return json_response(body)
