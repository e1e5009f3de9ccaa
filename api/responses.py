"""JSON responses encoded once with orjson."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sanic import HTTPResponse

JSON = "application/json"
PRIVATE = {"Cache-Control": "private, no-store"}


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default)


def _default(obj: Any) -> Any:
    # asyncpg returns its own UUID subclass, which orjson does not take natively.
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def json_response(
    obj: Any, status: int = 200, *, headers: dict[str, str] | None = None, private: bool = True
) -> HTTPResponse:
    """A JSON response; partner responses are private and never stored by caches."""
    merged = {**PRIVATE, **(headers or {})} if private else dict(headers or {})
    return HTTPResponse(dumps(obj), status=status, headers=merged, content_type=JSON)


def raw_json_response(
    body: bytes, status: int = 200, *, headers: dict[str, str] | None = None
) -> HTTPResponse:
    return HTTPResponse(body, status=status, headers=headers, content_type=JSON)


def no_content() -> HTTPResponse:
    return HTTPResponse(status=204, headers=PRIVATE)
