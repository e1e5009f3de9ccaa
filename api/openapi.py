"""OpenAPI helpers: pydantic models as named components, problem+json errors, paging
and Idempotency-Key parameters; a valid OpenAPI 3.1 document; Swagger UI served by
the API itself; and the sanic-ext start-up work (auto HEAD/OPTIONS routes, the
spec) kept cheap."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
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


_PAGING = (
    ("limit", "Page size, 1-100 (default 20)"),
    ("cursor", "`next_cursor` of the previous page"),
)


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
    idempotency: Literal["optional", "required"] | None = None,
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
    if idempotency is not None:
        kwargs["parameter"] = [
            openapi.definitions.Parameter(
                "Idempotency-Key",
                str,
                "header",
                required=idempotency == "required",
                description="1-255 printable ASCII characters; the same key and body "
                "replay the first response, another body is 422, one in flight 409. "
                "Keys belong to the credential (public pledges have their own space).",
            )
        ]
    definition: Callable[[F], F] = openapi.definition(**kwargs)

    def decorate(func: F) -> F:
        if "page" in inspect.signature(func).parameters:
            # Every list takes the same two (api/pagination.py: Page).
            for name, text in reversed(_PAGING):
                func = openapi.parameter(name, str, "query", description=text)(func)
        return definition(func)

    return decorate


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


STATIC = Path(__file__).resolve().parent / "static"
ASSETS = "/api/docs/assets"


def _swagger_ui_dir() -> Path:
    import swagger_ui_bundle  # type: ignore[import-untyped]

    return Path(swagger_ui_bundle.swagger_ui_path)


def _as_openapi_31(spec_uri: str) -> Callable[..., Any]:
    """Response middleware for the spec: say OpenAPI 3.1.0. sanic-ext writes 3.0.3,
    but the schemas are pydantic 2's JSON Schema 2020-12 (`anyOf` with `null`,
    numeric `exclusiveMinimum`), invalid in 3.0 and valid in 3.1, which stopped
    generators and fuzzers. The document does not change while the app runs."""
    done: dict[str, bytes] = {}

    async def rewrite(request: Any, response: Any) -> None:
        if request.path != spec_uri or response.status != 200:
            return
        if "body" not in done:
            spec = orjson.loads(response.body)
            spec["openapi"] = "3.1.0"
            done["body"] = orjson.dumps(spec, option=orjson.OPT_NON_STR_KEYS)
        response.body = done["body"]
        response.headers["content-length"] = str(len(done["body"]))

    return rewrite


def setup_openapi(app: Any) -> None:
    # Before the blueprints are imported: their `doc()` builds OpenAPI objects.
    _memoise_definition_fields()
    _batch_auto_routes(app)
    # Swagger UI from the installed package, not a CDN (a blank page offline).
    app.config.OAS_PATH_TO_SWAGGER_HTML = str(STATIC / "swagger.html")
    app.config.OAS_UI_SWAGGER_CDN_URL = ASSETS
    app.static(ASSETS, _swagger_ui_dir(), name="swagger_ui_assets")
    app.static("/api/docs/start.js", STATIC / "swagger-start.js", name="swagger_ui_start")
    prefix = str(app.config.OAS_URL_PREFIX).rstrip("/")
    app.register_middleware(_as_openapi_31(prefix + "/openapi.json"), "response")
    cfg = app.config
    # sanic-ext reads no OAS_TITLE: without this the document was titled "API".
    app.ext.openapi.describe(
        str(cfg.OAS_TITLE), version=str(cfg.OAS_VERSION), description=str(cfg.OAS_DESCRIPTION)
    )
    cfg.OAS_UI_SWAGGER_HTML_TITLE = str(cfg.OAS_TITLE)
    app.ext.openapi.add_security_scheme(
        "bearer",
        "http",
        scheme="bearer",
        description="An API key (`cnd_live_…`) or a staff access token from /api/token/",
    )
