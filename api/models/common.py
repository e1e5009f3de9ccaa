"""Shared field types. Limits match the schema's CHECK constraints."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

# Largest quantity of one donation or one need, in the item's unit (minor units for
# currencies). Totals are bigint slots summed as numeric: overflowing one slot
# would take over 9 billion maximal donations to a single item.
MAX_QUANTITY = 1_000_000_000


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
        Field(min_length=min_length, max_length=max_length),
        AfterValidator(_clean_text),
    ]


Quantity = Annotated[int, Field(gt=0, le=MAX_QUANTITY)]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$", max_length=100)]
# kg, unit, l, hour, or an ISO-4217 currency code (quantities then in minor units).
Unit = Annotated[str, Field(pattern=r"^(kg|unit|l|hour|[A-Z]{3})$")]


class Strict(BaseModel):
    """Base for request bodies: strict types (no "5" for 5), unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


# Timestamps must carry a UTC offset; a naive time would be silently misread.
Timestamp = AwareDatetime
