"""Path ids and keyset positions, parsed once for every route."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sanic import Request

from api.errors import BadRequest, NotFound, field_error

BAD_CURSOR = "cursor: not a cursor returned by this API"
# A `+` in an unencoded query string arrives as a space: "…T10:00:00 03:00".
_SPACE_OFFSET = re.compile(r" (\d{2}(?::?\d{2})?)$")
INSTANT_MESSAGE = "must be an ISO 8601 timestamp with a UTC offset, e.g. 2026-01-31T12:00:00Z"


def path_id(raw: str, what: str = "resource") -> UUID:
    """A path id; anything that is not a UUID is simply not found."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(f"No such {what}.") from None


def recency_after(cursor: list[Any] | None) -> tuple[datetime, UUID] | None:
    """The (created_at, id) of the last row of the previous page, from a cursor made
    with `page_of(rows, limit, lambda r: [r["created_at"], r["id"]])`; 400 otherwise."""
    if cursor is None:
        return None
    try:
        created_raw, id_raw = cursor
        created = datetime.fromisoformat(created_raw)
        if created.tzinfo is None:
            raise ValueError("naive timestamp")
        return created, UUID(id_raw)
    except (TypeError, ValueError, AttributeError, OverflowError):
        raise BadRequest(BAD_CURSOR) from None


def instant_arg(request: Request, name: str) -> datetime | None:
    """An ISO 8601 instant from the query string (in UTC), or None when absent or
    empty; a naive time, or one outside what UTC can hold, is a 422 naming `name`."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(_SPACE_OFFSET.sub(r"+\1", raw.strip()))
        if value.tzinfo is None:
            raise ValueError("naive timestamp")
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise field_error(name, INSTANT_MESSAGE, "datetime_parsing") from None
