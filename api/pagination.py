"""Cursor pagination: `?limit=` (1-100, default 20) and an opaque `?cursor=`."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError
from sanic import Request

from api.errors import BadRequest
from api.query import parse_query

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR_LENGTH = 512
LIMIT_MESSAGE = f"must be an integer from 1 to {MAX_LIMIT}"


def _limit(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        value = int(raw)
    except ValueError:
        raise PydanticCustomError("int_parsing", LIMIT_MESSAGE) from None
    if not 1 <= value <= MAX_LIMIT:
        raise PydanticCustomError("range", LIMIT_MESSAGE)
    return value


class PageLimit(BaseModel):
    """The page size, parsed by api/query.py like every other query parameter."""

    limit: Annotated[int, BeforeValidator(_limit)] = Field(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Page size (default {DEFAULT_LIMIT})."
    )


class PageQuery(PageLimit):
    """The paging parameters as documented. The cursor is not parsed as a filter: it is
    an opaque token, and one this API did not make is a 400 (`decode_cursor`)."""

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
        limit = parse_query(request, PageLimit).limit
        return cls(limit=limit, cursor=decode_cursor(request.args.get("cursor")))


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
