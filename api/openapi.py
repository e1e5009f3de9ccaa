"""OpenAPI helpers: pydantic models as named components, problem+json errors; and
the sanic-ext start-up work (auto HEAD/OPTIONS routes, the spec) kept cheap."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel
from sanic import Sanic
from sanic_ext import openapi
from sanic_ext.config import PRIORITY as SANIC_EXT_PRIORITY
from sanic_ext.extensions.openapi import types as oas_types
from sanic_ext.extensions.openapi.definitions import Component, Reference, RequestBody, Response

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


@functools.cache
def _component(model: type[BaseModel]) -> Reference:
    # sanic-ext's Component() re-reads the type hints of its Components class on
    # every call; the reference it returns is only ever read, so one per model.
    return Component(model)


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
            Response({"application/json": _component(response)}, status=status, description="OK")
        )
    else:
        responses.append(Response(status=status, description="OK"))
    for code in errors:
        if not secured and code in (401, 403):
            continue
        responses.append(
            Response(
                {"application/problem+json": _component(Problem)},
                status=code,
                description=_REASONS.get(code, "Error"),
            )
        )
    kwargs: dict[str, Any] = {"tag": [tag], "response": responses}
    if body is not None:
        kwargs["body"] = RequestBody({"application/json": _component(body)}, required=True)
    if secured:
        kwargs["secured"] = "bearer"
    decorator: Callable[[F], F] = openapi.definition(**kwargs)
    return decorator


def _batch_auto_routes(app: Sanic) -> None:  # type: ignore[type-arg]
    """Let sanic-ext add its HEAD/OPTIONS routes with the signal router finalized once.

    sanic-ext adds them one by one in a before_server_start listener, after Sanic
    finalized its routers; through `app.amend()` each add resets and re-finalizes
    (recompiles) the signal router, ~20 ms each: about 1 s of every worker's start
    for our ~50 routes (sanic-org/sanic#3087). With the signal router already reset,
    `amend` leaves it alone, so it is finalized once, after the sanic-ext listeners
    (they all run at its PRIORITY; ours run before them). The listener being
    dispatched holds its own list of handlers, as it does for every per-route reset."""

    async def reset_signals(app: Sanic) -> None:  # type: ignore[type-arg]
        app.signal_router.reset()  # type: ignore[no-untyped-call]

    async def finalize_signals(app: Sanic) -> None:  # type: ignore[type-arg]
        app.signalize(bool(app.config.TOUCHUP))

    app.register_listener(reset_signals, "before_server_start", priority=SANIC_EXT_PRIORITY + 1)
    app.register_listener(finalize_signals, "before_server_start", priority=SANIC_EXT_PRIORITY - 1)


def _memoise_definition_fields() -> None:
    """Make sanic-ext's OpenAPI objects cheap to build (~0.4 s of `create_app`).

    Every `Definition(**kwargs)` keeps the keywords that are fields of its class,
    and sanic-ext recomputes those fields (`typing.get_type_hints` and
    `inspect.getmembers` of the class) once per keyword. For a Definition whose
    instance has no attributes yet (it has none before its `__init__` stores the
    fields) they depend only on the class, so they are computed once per class;
    anything else takes the original path. Callers only read the result (`guard`
    takes its keys). This replaces a private function of sanic-ext 25.x: an
    upgrade that changes it shows in tests/test_openapi.py. Idempotent."""
    original = oas_types._properties
    if hasattr(original, "__wrapped__"):
        return
    by_class: dict[type, dict[str, Any]] = {}

    @functools.wraps(original)
    def properties(value: object) -> dict[str, Any]:
        if isinstance(value, oas_types.Definition) and not vars(value):
            cls = type(value)
            if cls not in by_class:
                by_class[cls] = original(value)
            return by_class[cls]
        result: dict[str, Any] = original(value)
        return result

    oas_types._properties = properties


def setup_openapi(app: Any) -> None:
    # Before the blueprints are imported: their `doc()` builds OpenAPI objects.
    _memoise_definition_fields()
    _batch_auto_routes(app)
    app.ext.openapi.add_security_scheme(
        "bearer",
        "http",
        scheme="bearer",
        description="An API key (`cnd_live_…`) or a staff access token from /api/token/",
    )
