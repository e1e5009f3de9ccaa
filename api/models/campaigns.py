"""Campaigns and their items (needs): request bodies, response shapes, and the
functions that turn database rows into those shapes.

Limits match the CHECK constraints of `campaign` and `campaign_item` in
db/migrations/0001_init.sql."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator

from api.models.common import (
    HTTP_URL,
    Quantity,
    Slug,
    Strict,
    Timestamp,
    Unit,
    drop_null,
    text,
)

MAX_ITEMS = 100

Status = Literal["draft", "published", "closed"]
# `text()` builds its Annotated type at runtime; to the type checker these are str.
if TYPE_CHECKING:
    Title = str
    Subtitle = str
    Description = str
    Location = str
    Contact = str
    ItemName = str
    Category = str
    QueryText = str
    UrlText = str
else:
    Title = text(200, 1)
    Subtitle = text(300)
    Description = text(10_000)
    Location = text(200)
    Contact = text(200)
    ItemName = text(200, 1)
    Category = text(50, 1)
    QueryText = text(200, 1)
    UrlText = text(2000, 1)
Categories = Annotated[list[Category], Field(max_length=10)]


def _http_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?#":
        raise ValueError("must be an http(s) URL")
    if any(ch.isspace() for ch in value):
        raise ValueError("must be an http(s) URL without spaces")
    return value


ImageUrl = Annotated[
    UrlText, AfterValidator(_http_url), Field(json_schema_extra={"pattern": HTTP_URL})
]


class ItemCreate(Strict):
    """A need of a campaign: so many units of something."""

    name: ItemName
    unit: Unit
    quantity_requested: Quantity


class _Patch(Strict):
    """A partial update: absent fields stay; `null` only for nullable fields."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Optional fields, but `null` only where NULLABLE (as `_no_null` enforces)."""
        schema = super().model_json_schema(*args, **kwargs)
        drop_null(schema, cls.NULLABLE)
        return schema

    # "after", not "before": a before-validator makes strict mode refuse JSON strings
    # for datetimes. Defaults are not validated, so this sees only sent values.
    @field_validator("*", mode="after")
    @classmethod
    def _no_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.NULLABLE:
            raise ValueError("null is not allowed; leave the field out to keep its value")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(include=self.model_fields_set)


class ItemUpdate(_Patch):
    name: ItemName | None = None
    unit: Unit | None = None
    quantity_requested: Quantity | None = None


class CampaignCreate(Strict):
    slug: Slug | None = Field(
        None,
        description="URL name, unique in the organization. Left out (or null): derived "
        "from the title, lowercase ASCII without accents (`Cestas Básicas` → "
        "`cestas-basicas`), with `-2`, `-3`… when taken.",
    )
    title: Title
    subtitle: Subtitle = ""
    description: Description = ""
    image_url: ImageUrl | None = None
    categories: Categories = Field(default_factory=list)
    location: Location = ""
    contact: Contact = ""
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    status: Status = "draft"
    items: list[ItemCreate] = Field(default_factory=list, max_length=MAX_ITEMS)


class CampaignUpdate(_Patch):
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"image_url", "starts_at", "ends_at"})

    slug: Slug | None = None
    title: Title | None = None
    subtitle: Subtitle | None = None
    description: Description | None = None
    image_url: ImageUrl | None = None
    categories: Categories | None = None
    location: Location | None = None
    contact: Contact | None = None
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    status: Status | None = None


class CampaignFilters(Strict):
    """Query filters of the campaign list (strings as they come in the URL)."""

    status: Status | None = Field(None, description="Only campaigns in this status.")
    q: QueryText | None = Field(
        None, description="Search title and description (accent/case-insensitive)."
    )
    category: Category | None = Field(None, description="Only campaigns with this category.")
    location: QueryText | None = Field(
        None, description="Location prefix (accent/case-insensitive)."
    )


# Responses (documented in OpenAPI; built from rows by the functions below).


class Item(BaseModel):
    id: UUID
    name: str
    unit: str
    quantity_requested: int
    pending_quantity: int
    pending_count: int
    confirmed_quantity: int
    delivered_quantity: int
    contributed_quantity: int
    contributed_count: int
    progress: float


class Campaign(BaseModel):
    id: UUID
    slug: str
    title: str
    subtitle: str
    description: str
    image_url: str | None
    categories: list[str]
    location: str
    contact: str
    starts_at: datetime | None
    ends_at: datetime | None
    status: Status
    created_at: datetime
    updated_at: datetime
    items: list[Item]
    progress: float


class CampaignList(BaseModel):
    data: list[Campaign]
    next_cursor: str | None


CAMPAIGN_FIELDS = tuple(f for f in Campaign.model_fields if f not in ("items", "progress"))


def item_out(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Item shape from a row of campaign_item joined with its totals."""
    contributed = row["confirmed_quantity"] + row["delivered_quantity"]
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "unit": row["unit"],
        "quantity_requested": row["quantity_requested"],
        "pending_quantity": row["pending_quantity"],
        "pending_count": row["pending_count"],
        "confirmed_quantity": row["confirmed_quantity"],
        "delivered_quantity": row["delivered_quantity"],
        "contributed_quantity": contributed,
        "contributed_count": row["confirmed_count"] + row["delivered_count"],
        "progress": contributed / row["quantity_requested"],
    }


def campaign_out(row: Mapping[str, Any], item_rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The Campaign shape; progress is the mean of the items' progress, each capped at 1."""
    items = [item_out(r) for r in item_rows]
    progress = sum(min(1.0, i["progress"]) for i in items) / len(items) if items else 0.0
    fields = {f: row[f] for f in CAMPAIGN_FIELDS}
    # asyncpg's UUID subclass is not one orjson serialises natively.
    fields["id"] = str(row["id"])
    return {**fields, "items": items, "progress": progress}
