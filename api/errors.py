"""Every failure as `application/problem+json` (RFC 9457).

Hierarchy (status in brackets)::

    ApiError (SanicException)
    ├── BadRequest [400]
    │   └── MalformedJson [400]
    ├── Unauthorized [401]          same body for bad, revoked and expired credentials
    ├── Forbidden [403]             missing scope or role
    ├── NotFound [404]              unknown id, or another tenant's id
    ├── Conflict [409]
    │   ├── IllegalTransition [409]
    │   ├── IdempotencyInFlight [409]
    │   └── StoredAnswerUnreadable [409]  a replay whose stored answer cannot be opened
    ├── UnsupportedMediaType [415]
    ├── ValidationFailed [422]      `errors: [{field, message, type}]`
    │   └── IdempotencyMismatch [422]
    ├── TooManyRequests [429]       per-credential limit; `Retry-After`, `RateLimit-*`
    └── ServiceUnavailable [503]

The framework's own exceptions (unknown route 404, 405 with `Allow`, 413, timeouts) and
asyncpg's are rendered here too; anything else is a 500 without internals.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import orjson
from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import SanicException
from sanic.handlers import ErrorHandler

log = logging.getLogger("conectades.errors")

PROBLEM_JSON = "application/problem+json"


class ApiError(SanicException):
    status_code = 500
    title = "Internal Server Error"
    slug = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title, status_code=self.status_code, headers=headers)
        self.detail = detail or self.title
        self.errors = errors


class BadRequest(ApiError):
    status_code = 400
    title = "Bad Request"
    slug = "bad-request"


class MalformedJson(BadRequest):
    title = "Malformed JSON"
    slug = "malformed-json"


class Unauthorized(ApiError):
    status_code = 401
    title = "Unauthorized"
    slug = "unauthorized"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail or "Missing, invalid, revoked or expired credentials.",
            headers={"WWW-Authenticate": 'Bearer realm="conectades"'},
        )


class Forbidden(ApiError):
    status_code = 403
    title = "Forbidden"
    slug = "forbidden"


class NotFound(ApiError):
    status_code = 404
    title = "Not Found"
    slug = "not-found"


class Conflict(ApiError):
    status_code = 409
    title = "Conflict"
    slug = "conflict"


class IllegalTransition(Conflict):
    title = "Illegal Status Transition"
    slug = "illegal-transition"


class IdempotencyInFlight(Conflict):
    title = "Request In Flight"
    slug = "idempotency-in-flight"


class StoredAnswerUnreadable(Conflict):
    title = "Stored Answer Unreadable"
    slug = "idempotency-answer-unreadable"


class UnsupportedMediaType(ApiError):
    status_code = 415
    title = "Unsupported Media Type"
    slug = "unsupported-media-type"


class ValidationFailed(ApiError):
    status_code = 422
    title = "Validation Failed"
    slug = "validation"


class IdempotencyMismatch(ValidationFailed):
    title = "Idempotency Key Reused"
    slug = "idempotency-mismatch"


class TooManyRequests(ApiError):
    status_code = 429
    title = "Too Many Requests"
    slug = "rate-limited"


class ServiceUnavailable(ApiError):
    status_code = 503
    title = "Service Unavailable"
    slug = "unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


def field_error(field: str, message: str, kind: str = "invalid") -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {message}", errors=[{"field": field, "message": message, "type": kind}]
    )


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return HTTPResponse(
        orjson.dumps(body),
        status=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        content_type=PROBLEM_JSON,
    )


# asyncpg errors that bad input can still reach past validation (the schema's
# CHECKs and keys are the last line); each maps to a 4xx, never a 500.
_PG_MAP: list[tuple[type[Exception], type[ApiError], str]] = [
    (asyncpg.UniqueViolationError, Conflict, "A resource with these values already exists."),
    (
        asyncpg.ForeignKeyViolationError,
        Conflict,
        "The resource is referenced by others (e.g. it has donations).",
    ),
    (asyncpg.CheckViolationError, ValidationFailed, "A value is outside its allowed range."),
    (asyncpg.NotNullViolationError, ValidationFailed, "A required value is missing."),
    (asyncpg.DataError, ValidationFailed, "A value has the wrong form or size."),
    (asyncpg.SerializationError, ServiceUnavailable, "Concurrent update; retry."),
    (asyncpg.DeadlockDetectedError, ServiceUnavailable, "Concurrent update; retry."),
    (asyncpg.TooManyConnectionsError, ServiceUnavailable, "Database is busy; retry."),
    (asyncpg.QueryCanceledError, ServiceUnavailable, "Database timed out; retry."),
    (asyncpg.CannotConnectNowError, ServiceUnavailable, "Database is starting; retry."),
    (asyncpg.PostgresConnectionError, ServiceUnavailable, "Database unreachable; retry."),
    (asyncpg.InterfaceError, ServiceUnavailable, "Database connection lost; retry."),
    # When PostgreSQL stops (or terminates a backend) it sends FATAL 57P01 to every
    # backend, idle pooled ones included. asyncpg reads an error while idle as a
    # protocol fault and waits for a ReadyForQuery that never comes; until the
    # backend's exit closes the socket (~2 ms) the pool still hands the connection
    # out, and its next statement fails with "cannot switch to state N; another
    # operation (2) is in progress" before anything is sent. asyncpg then aborts
    # the connection: nothing is left in use, the request only lost its connection.
    (asyncpg.InternalClientError, ServiceUnavailable, "Database connection lost; retry."),
]


def to_api_error(exc: BaseException) -> ApiError | None:
    """The ApiError for an exception from the database layer, if it has one."""
    for pg_type, api_type, detail in _PG_MAP:
        if isinstance(exc, pg_type):
            constraint = getattr(exc, "constraint_name", None)
            if constraint and api_type is not ServiceUnavailable:
                detail = f"{detail} (constraint {constraint})"
            return api_type(detail)
    if isinstance(exc, asyncio.TimeoutError | ConnectionError | OSError):
        return ServiceUnavailable("Database unreachable or busy; retry.")
    return None


class ProblemErrorHandler(ErrorHandler):
    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, asyncio.CancelledError):
            # Sanic cancels a handler when its client goes away (k6 or nginx giving
            # up, a probe's own timeout). Not a fault: one line, no traceback (all 716
            # "unhandled error" tracebacks of a day of load runs were these). A
            # transaction the handler had open is rolled back; nobody reads this answer.
            log.info("%s: cancelled, the client closed the connection", _label(request))
            return problem(503, "Service Unavailable", "Request cancelled.", slug="cancelled")
        mapped = exception if isinstance(exception, ApiError) else to_api_error(exception)
        if isinstance(mapped, ApiError):
            if mapped.status_code >= 500:
                log.warning("%s %s: %r", request.method, request.path, exception)
            return problem(
                mapped.status_code,
                mapped.title,
                mapped.detail,
                slug=mapped.slug,
                errors=mapped.errors,
                headers=dict(mapped.headers or {}),
            )
        if isinstance(exception, SanicException) and exception.status_code < 500:
            status = exception.status_code
            headers = dict(getattr(exception, "headers", None) or {})
            if status == 405 and "Allow" not in headers:
                headers["Allow"] = _allowed_methods(request)
            return problem(
                status,
                _reason(status),
                str(exception) or _reason(status),
                slug=_reason(status).lower().replace(" ", "-"),
                headers=headers,
            )
        log.exception("unhandled error on %s", _label(request))
        return problem(500, "Internal Server Error", "Unexpected error.", slug="internal")


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """The `Allow` header of a 405 (RFC 9110 requires it). Sanic's router names the
    allowed methods only for static paths; for a path with parameters it raises
    without them, so each method is resolved here (only on a 405)."""
    allowed = []
    for method in _METHODS:
        try:
            request.app.router.get(request.path, method, None)
        except SanicException:
            continue
        allowed.append(method)
    return ", ".join(allowed)


def _label(request: Request) -> str:
    """`GET /path (request <id>)` for log lines."""
    return f"{request.method} {request.path} (request {getattr(request.ctx, 'request_id', '-')})"


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def setup_errors(app: Sanic[Any, Any]) -> None:
    app.error_handler = ProblemErrorHandler()
