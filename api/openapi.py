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
from api.pagination import PageQuery

# api/idempotency.py's key syntax: printable ASCII without spaces.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
SECURITY_SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "cnd_live_<id>_<secret>",
        "description": "An organization's API key, with scopes read, write and keys.",
    },
    "staffToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A staff user's 15-minute access token from POST /api/token/.",
    },
}

F = TypeVar("F", bound=Callable[..., Any])

PROBLEM = {"$ref": "#/components/schemas/Problem"}
_RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 0},
}
_REASONS = {
    400: "Malformed request: bad JSON, a cursor not from this API, a bad header",
    401: "Missing, invalid, revoked or expired credentials",
    403: "The credential lacks the scope or role, or its organization is suspended",
    404: "Unknown id, or another organization's (the same answer)",
    409: "Conflict with the current state",
    413: "Body over the size limit (64 KiB)",
    415: "Body is not application/json",
    422: "A value the API does not accept; `errors` names each field",
    429: "Too many requests (per credential, per address at the edge, or failed logins)",
    503: "Database busy or unreachable, or the request was cancelled; retry",
}
_EXAMPLES: dict[int, tuple[str, str, str]] = {
    400: ("malformed-json", "Malformed JSON", "The body is not valid JSON: EOF while parsing"),
    401: ("unauthorized", "Unauthorized", "Missing, invalid, revoked or expired credentials."),
    403: ("forbidden", "Forbidden", "API key cnd_live_3kf9… lacks the 'write' permission"),
    404: ("not-found", "Not Found", "No such campaign."),
    409: ("conflict", "Conflict", "A resource with these values already exists."),
    413: ("payload-too-large", "Payload Too Large", "Request body exceeds the size limit"),
    415: ("unsupported-media-type", "Unsupported Media Type", "Send the body as application/json."),
    429: ("rate-limited", "Too Many Requests", "Rate limit exceeded; retry after Retry-After."),
    503: ("unavailable", "Service Unavailable", "Database is busy; retry."),
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": '`Bearer realm="conectades"`',
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": _RETRY_AFTER},
    503: {"Retry-After": _RETRY_AFTER},
}
UUID_SCHEMA: dict[str, str] = {"type": "string", "format": "uuid"}
SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}, {"staffToken": []}]


def _problem_example(code: int) -> dict[str, Any]:
    if code == 422:
        message = "String should have at most 200 characters"
        return {
            "type": "/problems/validation",
            "title": "Validation Failed",
            "status": 422,
            "detail": f"title: {message}",
            "errors": [{"field": "title", "message": message, "type": "string_too_long"}],
        }
    slug, title, detail = _EXAMPLES.get(code, ("error", "Error", "Error."))
    return {"type": f"/problems/{slug}", "title": title, "status": code, "detail": detail}


def problem_response(code: int, description: str | None = None) -> dict[str, Any]:
    """An error response as documented: problem+json, its headers, an example."""
    out: dict[str, Any] = {
        "description": description or _REASONS.get(code, "Error"),
        "content": {
            "application/problem+json": {"schema": PROBLEM, "example": _problem_example(code)}
        },
    }
    if code in _ERROR_HEADERS:
        out["headers"] = _ERROR_HEADERS[code]
    return out


def _schema_of(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema from a pydantic property: an optional field's
    `anyOf [T, null]` is just T (an absent parameter is the null)."""
    prop = {k: v for k, v in prop.items() if k != "title"}
    if prop.get("default", 0) is None:
        del prop["default"]
    variants = prop.pop("anyOf", None)
    if variants is not None:
        kept = [v for v in variants if v.get("type") != "null"]
        prop = {**(kept[0] if len(kept) == 1 else {"anyOf": kept}), **prop}
    return prop


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI query parameters of a pydantic model of a query string."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _schema_of(prop),
        }
        if "description" in prop:
            param["description"] = param["schema"].pop("description")
        params.append(param)
    return params


def idempotency_parameter(required: bool) -> dict[str, Any]:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": required,
        "description": "The same key and body replay the first response "
        "(`Idempotent-Replayed: true`), another body is 422, one in flight 409. Keys "
        "belong to the credential (public pledges have their own space) for 24 hours.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": IDEMPOTENCY_KEY_PATTERN,
        },
        "example": "3f1c2a9e-5b7d-4c1e-9a2b-7d8e6f5a4b3c",
    }


def json_content(model: type[BaseModel]) -> dict[str, Any]:
    """`content` of a JSON response with this model's schema (a `doc()` component)."""
    _component(model)
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


@functools.cache
def _component(model: type[BaseModel]) -> Reference:
    # sanic-ext's Component() re-reads the type hints of its Components class on
    # every call; the reference it returns is only ever read, so one per model.
    return Component(model)


def doc(
    *,
    tag: str,
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    response: type[BaseModel] | None = None,
    status: int = 200,
    errors: Iterable[int] = (),
    secured: bool = True,
    idempotency: Literal["optional", "required"] | None = None,
    query: type[BaseModel] | None = None,
    params: Iterable[dict[str, Any]] = (),
    media: str = "application/json",
    description: str | None = None,
    overrides: dict[int, dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Describe a route: its parameters, body, response and every error it can give.

    `errors` are the route's own statuses (e.g. 404, 409); those that follow from
    the rest are added: 401/403 for `secured`, 400/413/415/422 for a `body`,
    400/422 for paging and `query` filters, 429 and 503 for every route.
    `query` is a pydantic model of the query string (its constraints become the
    parameters' schemas); `params` are OpenAPI parameter objects as they are.
    `body_required=False` for a body that may be left out (its defaults then).
    `overrides` replace the response documented for a status. The document is
    completed from these when it is served (`_complete`)."""
    codes = set(errors) | {429, 503}
    if secured:
        codes |= {401, 403}
    if body is not None:
        codes |= {400, 413, 415, 422}
    if query is not None or params:
        codes |= {422}
    if idempotency is not None:
        codes |= {400, 409, 422}
    success: dict[str, Any] = {"description": description or "OK"}
    if response is not None:
        success["content"] = {
            media: {"schema": {"$ref": f"#/components/schemas/{response.__name__}"}}
        }
    elif status != 204:
        success["content"] = {media: {"schema": {"type": "string"}}}
    if status == 201:
        success["headers"] = {
            "Location": {"description": "The new resource", "schema": {"type": "string"}}
        }
    kwargs: dict[str, Any] = {"tag": [tag]}
    # Through sanic-ext only what registers the models as components.
    kwargs["response"] = [
        Response({"application/json": _component(m)}, status=status)
        for m in (response, Problem)
        if m is not None
    ]
    if body is not None:
        kwargs["body"] = RequestBody({"application/json": _component(body)}, required=body_required)
    definition: Callable[[F], F] = openapi.definition(**kwargs)

    def decorate(func: F) -> F:
        parameters = list(params) + func.__dict__.pop(_PARAMS, [])
        if query is not None:
            parameters += query_parameters(query)
        if "page" in inspect.signature(func).parameters:
            # Every list takes the same two (api/pagination.py: Page).
            parameters += query_parameters(PageQuery)
            codes.update((400, 422))
        if idempotency is not None:
            parameters.append(idempotency_parameter(idempotency == "required"))
        for param in parameters:
            # Sanic drops blank query values: `?status=` is the parameter left out.
            if param["in"] == "query" and not param.get("required"):
                param["allowEmptyValue"] = True
        responses = {str(status): success}
        responses.update({str(c): problem_response(c) for c in sorted(codes)})
        responses.update({str(c): r for c, r in (overrides or {}).items()})
        extra: dict[str, Any] = {"parameters": parameters, "responses": responses}
        extra["security"] = SECURITY if secured else []
        func.__dict__[_EXTRA] = extra
        return definition(func)

    return decorate


_EXTRA = "_openapi_extra"
_PARAMS = "_openapi_params"


def query_params(*params: dict[str, Any]) -> Callable[[F], F]:
    """Add OpenAPI parameter objects to the route's `doc()` (put it below `doc`)."""

    def decorate(func: F) -> F:
        func.__dict__.setdefault(_PARAMS, []).extend(params)
        return func

    return decorate


def _complete(spec: dict[str, Any], app: Sanic[Any, Any]) -> dict[str, Any]:
    """The document as served: sanic-ext's paths and components, completed with what
    `doc()` recorded per handler, the description and the security schemes."""
    spec["openapi"] = "3.1.0"
    info = spec.setdefault("info", {})
    info["description"] = (STATIC / "openapi.md").read_text(encoding="utf-8")
    info["license"] = {"name": "Proprietary"}
    info.pop("contact", None)
    components = spec.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    spec.pop("security", None)
    by_operation = {}
    for route in app.router.routes:
        extra = getattr(route.handler, _EXTRA, None)
        if extra is not None:
            _, name = route.name.split(".", 1)
            for method in route.methods:
                by_operation[f"{method.lower()}~{name}"] = extra
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            _complete_operation(op, by_operation.get(op.get("operationId", "")))
    return spec


def _complete_operation(op: dict[str, Any], extra: dict[str, Any] | None) -> None:
    path_params = [p for p in op.get("parameters", []) if p.get("in") == "path"]
    for param in path_params:
        if param["name"].endswith("_id"):
            param["schema"] = dict(UUID_SCHEMA)
        param.pop("description", None)
    if extra is None:
        return
    mine = {p["name"] for p in extra["parameters"]}
    # Parameters declared with sanic-ext's own decorators stay unless doc() has them.
    others = [
        p for p in op.get("parameters", []) if p.get("in") != "path" and p["name"] not in mine
    ]
    op["parameters"] = path_params + others + extra["parameters"]
    if not op["parameters"]:
        del op["parameters"]
    op["responses"] = extra["responses"]
    if extra["security"]:
        op["security"] = extra["security"]
    else:
        op.pop("security", None)


def _batch_auto_routes(app: Sanic[Any, Any]) -> None:
    """Let sanic-ext add its HEAD/OPTIONS routes with the signal router finalized once.

    sanic-ext adds them one by one in a before_server_start listener, after Sanic
    finalized its routers; through `app.amend()` each add resets and re-finalizes
    (recompiles) the signal router, ~20 ms each: about 1 s of every worker's start
    for our ~50 routes (sanic-org/sanic#3087). With the signal router already reset,
    `amend` leaves it alone, so it is finalized once, after the sanic-ext listeners
    (they all run at its PRIORITY; ours run before them). The listener being
    dispatched holds its own list of handlers, as it does for every per-route reset."""

    async def reset_signals(app: Sanic[Any, Any]) -> None:
        app.signal_router.reset()  # type: ignore[no-untyped-call]

    async def finalize_signals(app: Sanic[Any, Any]) -> None:
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


def _serve_complete(spec_uri: str) -> Callable[..., Any]:
    """Response middleware for the spec: the document as `_complete` makes it.

    sanic-ext writes OpenAPI 3.0.3, but the schemas are pydantic 2's JSON Schema
    2020-12 (`anyOf` with `null`, numeric `exclusiveMinimum`), invalid in 3.0 and
    valid in 3.1; it cannot say everything `doc()` knows (headers of error
    responses, examples, parameter schemas from pydantic models). The document does
    not change while the app runs: completed once per worker."""
    done: dict[str, bytes] = {}

    async def rewrite(request: Any, response: Any) -> None:
        if request.path != spec_uri or response.status != 200:
            return
        if "body" not in done:
            spec = _complete(orjson.loads(response.body), request.app)
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
    app.register_middleware(_serve_complete(prefix + "/openapi.json"), "response")
    cfg = app.config
    # sanic-ext reads no OAS_TITLE: without this the document was titled "API".
    app.ext.openapi.describe(
        str(cfg.OAS_TITLE), version=str(cfg.OAS_VERSION), description=str(cfg.OAS_DESCRIPTION)
    )
    cfg.OAS_UI_SWAGGER_HTML_TITLE = str(cfg.OAS_TITLE)
