"""OpenAPI helpers: pydantic models as named components, problem+json errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel
from sanic_ext import openapi
from sanic_ext.extensions.openapi.definitions import Component, RequestBody, Response

from api.models.common import Problem

F = TypeVar("F", bound=Callable[..., Any])

_REASONS = {
    400: "Malformed request (bad JSON, bad cursor, missing header)",
    401: "Missing, invalid, revoked or expired credentials",
    403: "Credentials lack the permission",
    404: "Unknown id, or another tenant's",
    409: "Conflict with the current state",
    413: "Body too large",
    422: "Validation failed (see `errors`)",
}


def doc(
    *,
    tag: str,
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    errors: Iterable[int] = (400, 401, 403, 404, 422),
    secured: bool = True,
) -> Callable[[F], F]:
    """Describe a route: request/response schemas and its problem responses."""
    responses = []
    if response is not None:
        responses.append(
            Response({"application/json": Component(response)}, status=status, description="OK")
        )
    else:
        responses.append(Response(status=status, description="OK"))
    for code in errors:
        if not secured and code in (401, 403):
            continue
        responses.append(
            Response(
                {"application/problem+json": Component(Problem)},
                status=code,
                description=_REASONS.get(code, "Error"),
            )
        )
    kwargs: dict[str, Any] = {"tag": [tag], "response": responses}
    if body is not None:
        kwargs["body"] = RequestBody({"application/json": Component(body)}, required=True)
    if secured:
        kwargs["secured"] = "bearer"
    decorator: Callable[[F], F] = openapi.definition(**kwargs)
    return decorator


def setup_openapi(app: Any) -> None:
    app.ext.openapi.add_security_scheme(
        "bearer",
        "http",
        scheme="bearer",
        description="An API key (`cnd_live_…`) or a staff access token from /api/token/",
    )
