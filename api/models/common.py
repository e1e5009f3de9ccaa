"""Shared field types. Limits match the schema's CHECK constraints."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

# Largest quantity of one donation or one need, in the item's unit (minor units for
# currencies). Totals are bigint slots summed as numeric: overflowing one slot
# would take over 9 billion maximal donations to a single item.
MAX_QUANTITY = 1_000_000_000


# What `_clean_text` refuses, for the schema: NUL characters (PostgreSQL cannot store them).
NO_NUL = r"^[^\x00]*$"


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def text(max_length: int, min_length: int = 0) -> Any:
    """A string type of bounded length that PostgreSQL can store."""
    return Annotated[
        str,
        Field(min_length=min_length, max_length=max_length, json_schema_extra={"pattern": NO_NUL}),
        AfterValidator(_clean_text),
    ]


def _whole_number(value: Any) -> Any:
    # JSON has one number type: 5.0 is 5 (as JSON Schema's "integer" says); 5.5 and
    # "5" are still refused by the strict int that follows.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Quantity = Annotated[int, Field(gt=0, le=MAX_QUANTITY), BeforeValidator(_whole_number)]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$", max_length=100)]
# kg, unit, l, hour, or an ISO-4217 currency code (quantities then in minor units).
Unit = Annotated[str, Field(pattern=r"^(kg|unit|l|hour|[A-Z]{3})$")]


# An absolute http(s) URL as api/models/campaigns.py's `_http_url` accepts it
# (whitespace as str.isspace; NUL refused by text()).
HTTP_URL = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#\x00][^\s\x00]*$"


def drop_null(schema: dict[str, Any], nullable: Iterable[str] = ()) -> None:
    """In a model's JSON schema, optional fields that refuse `null` (a PATCH body: a
    field left out stays, null is refused) lose the `null` pydantic's `X | None` gives
    them, except those in `nullable`. Keywords beside `anyOf` (json_schema_extra) win."""
    for name, prop in schema.get("properties", {}).items():
        variants = prop.get("anyOf")
        if name in nullable or not variants:
            continue
        kept = [v for v in variants if v.get("type") != "null"]
        rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
        prop.clear()
        prop.update({**(kept[0] if len(kept) == 1 else {"anyOf": kept}), **rest})


class Strict(BaseModel):
    """Base for request bodies: strict types (no "5" for 5), unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class FieldProblem(BaseModel):
    """One field's problem: its dotted path, a message, and pydantic's error type."""

    field: str = Field(examples=["items.0.quantity_requested"])
    message: str = Field(examples=["Input should be greater than 0"])
    type: str = Field(examples=["greater_than"])


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str = Field(
        description="A relative URI naming the kind of problem", examples=["/problems/validation"]
    )
    title: str = Field(examples=["Validation Failed"])
    status: int = Field(ge=400, le=599, description="The HTTP status, repeated")
    detail: str = Field(examples=["title: String should have at least 1 character"])
    errors: list[FieldProblem] | None = Field(
        None, description="Field problems (422, some 400 and 409)"
    )


# Timestamps must carry a UTC offset; a naive time would be silently misread.
Timestamp = AwareDatetime
