"""Query strings: each route's filters are one pydantic model, parsed by `parse_query`.

The same model is the route's documentation (`doc(query=Model)` in api/openapi.py
turns its fields into the OpenAPI parameters), so what a route accepts and what it
documents cannot drift apart. A bad value is a 422 problem naming the parameter
(its alias when it has one: the old routes' Portuguese names), every bad parameter
at once.

The field types below parse what a URL carries (always text) the way the routes
did before the models existed, with the same messages: an instant with its UTC
offset (a `+` sent unencoded arrives as a space), a UUID, a value out of a fixed
set, a bounded search text, a positive integer id, a repeatable list.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import pydantic
from pydantic import AwareDatetime, BeforeValidator, Field
from pydantic_core import PydanticCustomError
from sanic import Request

from api.body import validation_errors
from api.errors import ValidationFailed
from api.models.common import NO_NUL

M = TypeVar("M", bound=pydantic.BaseModel)

INSTANT_MESSAGE = "must be an ISO 8601 timestamp with a UTC offset, e.g. 2026-01-31T12:00:00Z"
# A `+` in an unencoded query string arrives as a space: "…T10:00:00 03:00".
_SPACE_OFFSET = re.compile(r" (\d{2}(?::?\d{2})?)$")
MAX_ID = 2**31 - 1


def parse_query(request: Request, model: type[M]) -> M:
    """`model` from the request's query string: each field from the parameter of its
    alias (or name); a list field from every value of a repeated parameter. Blank
    values are absent (Sanic drops them). 422 naming each bad parameter."""
    args = request.args
    given: dict[str, Any] = {}
    for key, many in _parameters(model):
        if key in args:
            given[key] = args.getlist(key) if many else args.get(key)
    try:
        return model.model_validate(given)
    except pydantic.ValidationError as exc:
        errors = validation_errors(exc)
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ValidationFailed(summary, errors=errors) from None


@functools.cache
def _parameters(model: type[pydantic.BaseModel]) -> tuple[tuple[str, bool], ...]:
    """Each field's parameter name and whether it takes every value of a repeated one."""
    return tuple(
        (info.alias or name, _is_list(info.annotation)) for name, info in model.model_fields.items()
    )


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(_is_list(arg) for arg in get_args(annotation))


def _instant(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        value = datetime.fromisoformat(_SPACE_OFFSET.sub(r"+\1", raw.strip()))
        if value.tzinfo is None:
            raise ValueError("naive timestamp")
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError("datetime_parsing", INSTANT_MESSAGE) from None


# An ISO 8601 instant with its offset, in UTC (Python's parser: it reads every form
# `datetime.isoformat` writes, which partners echo back).
Instant = Annotated[AwareDatetime | None, BeforeValidator(_instant)]


def _uuid(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise PydanticCustomError("uuid_parsing", "must be a UUID") from None


UuidArg = Annotated[uuid.UUID | None, BeforeValidator(_uuid)]


def one_of(values: Iterable[str], *, prefix: str = "must be one of ") -> BeforeValidator:
    """For `Annotated[SomeLiteral | None, one_of(get_args(SomeLiteral))]`: anything
    else is "must be one of a, b, c" (documented as the Literal's enum)."""
    allowed = tuple(values)

    def check(raw: Any) -> Any:
        if isinstance(raw, str) and raw not in allowed:
            raise PydanticCustomError("enum", prefix + ", ".join(allowed))
        return raw

    return BeforeValidator(check)


def choice(choices: Mapping[str, Any]) -> Any:
    """One of the names in `choices` (documented as an enum, the first the default),
    parsed to its value: the donor pages and the old route name the same choices in
    Portuguese."""
    names = tuple(choices)
    literal = Literal[names]  # type: ignore[valid-type]
    return Annotated[
        literal | None,
        one_of(names, prefix="must be one of: "),
        pydantic.AfterValidator(lambda name: choices[name]),
    ]


def _text(raw: str, max_length: int) -> str | None:
    if len(raw) > max_length:
        raise PydanticCustomError("string_too_long", f"at most {max_length} characters")
    if "\x00" in raw:
        raise PydanticCustomError("string_type", "must not contain NUL characters")
    return raw.strip() or None


def search_text(max_length: int) -> Any:
    """Free text of at most `max_length` characters and no NUL, stripped; blank is absent."""

    def check(raw: Any) -> Any:
        return _text(raw, max_length) if isinstance(raw, str) else raw

    text = Annotated[str, Field(max_length=max_length, json_schema_extra={"pattern": NO_NUL})]
    return Annotated[text | None, BeforeValidator(check)]


def integer_id(max_length: int) -> Any:
    """A positive 32-bit id (as text of at most `max_length` characters); blank is absent."""

    def check(raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        if _text(raw, max_length) is None:  # the text's checks first; blank is absent
            return None
        try:
            value = int(raw)
        except ValueError:
            raise PydanticCustomError("int_parsing", "must be an integer id") from None
        if not 1 <= value <= MAX_ID:
            raise PydanticCustomError("greater_than", f"must be an id from 1 to {MAX_ID}")
        return value

    return Annotated[Annotated[int, Field(ge=1, le=MAX_ID)] | None, BeforeValidator(check)]


def comma_separated(values: Iterable[str], describe: Callable[[str], str]) -> BeforeValidator:
    """For `Annotated[list[SomeLiteral] | None, comma_separated(...)]` (a repeated
    and/or comma-separated parameter): each value one of `values` (else `describe(value)`
    is the message), duplicates dropped, sorted; nothing left is absent."""
    allowed = tuple(values)

    def check(raw: Any) -> Any:
        if not isinstance(raw, list):
            return raw
        given = sorted({t.strip() for item in raw for t in str(item).split(",") if t.strip()})
        unknown = [t for t in given if t not in allowed]
        if unknown:
            raise PydanticCustomError("enum", describe(unknown[0]))
        return given or None

    return BeforeValidator(check)
