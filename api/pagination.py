"""Cursor pagination: `?limit=` (1-100, default 20) and an opaque `?cursor=`."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, Field
from sanic import Request

from api.errors import BadRequest, field_error

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR_LENGTH = 512


class PageQuery(BaseModel):
    """The paging parameters as documented (parsed by `Page.from_request`)."""

    limit: int = Field(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Page size (default {DEFAULT_LIMIT})."
    )
    cursor: str | None = Field(
        None,
        max_length=MAX_CURSOR_LENGTH,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="`next_cursor` of the previous page (opaque; with the same filters).",
    )


@dataclass(frozen=True)
class Page:
    limit: int
    cursor: list[Any] | None

    @classmethod
    def from_request(cls, request: Request) -> Page:
        return cls(limit=_limit(request), cursor=decode_cursor(request.args.get("cursor")))


def _limit(request: Request) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise field_error("limit", "must be an integer from 1 to 100", "int_parsing") from None
    if not 1 <= value <= MAX_LIMIT:
        raise field_error("limit", "must be an integer from 1 to 100", "range")
    return value


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(raw: str | None) -> list[Any] | None:
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_CURSOR_LENGTH:
        raise BadRequest("cursor: not a cursor returned by this API")
    try:
        values = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadRequest("cursor: not a cursor returned by this API") from None
    if not isinstance(values, list) or not values:
        raise BadRequest("cursor: not a cursor returned by this API")
    return values


def page_of(rows: list[Any], limit: int, key: Any) -> tuple[list[Any], str | None]:
    """Trim the one extra row fetched to detect a next page; its cursor comes from `key`."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(key(rows[-1]))
    return rows, None
