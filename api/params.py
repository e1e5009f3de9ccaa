"""Path ids and keyset positions, parsed once for every route."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from api.errors import BadRequest, NotFound

BAD_CURSOR = "cursor: not a cursor returned by this API"


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
