"""Webhook endpoints and deliveries: what a partner sends and gets back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.models.common import HTTP_URL, Strict, drop_null, text
from api.query import one_of
from db.queries.events import EVENT_TYPES

# What an endpoint can subscribe to: every event of the feed, and the notice that an
# endpoint was disabled after persistent failure (sent to the tenant's other endpoints).
WEBHOOK_EVENT_TYPES: tuple[str, ...] = (*EVENT_TYPES, "webhook.disabled")
DeliveryStatus = Literal["pending", "succeeded", "dead"]
MAX_URL_LENGTH = 2000
# What `_event_types` enforces, for the OpenAPI schema.
_EVENT_TYPES_SCHEMA: dict[str, Any] = {
    "items": {"type": "string", "enum": list(WEBHOOK_EVENT_TYPES)},
    "uniqueItems": True,
}
_URL_SCHEMA: dict[str, Any] = {"pattern": HTTP_URL}


def _event_types(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(WEBHOOK_EVENT_TYPES))
    if unknown:
        raise ValueError(
            f"unknown event types: {', '.join(unknown)} (known: {', '.join(WEBHOOK_EVENT_TYPES)})"
        )
    if len(set(value)) != len(value):
        raise ValueError("must not repeat an event type")
    return value


class WebhookCreate(Strict):
    """A new endpoint. `url`: https:// (or http://) to a public host, no credentials."""

    url: text(MAX_URL_LENGTH, 1) = Field(json_schema_extra=_URL_SCHEMA)  # type: ignore[valid-type]
    event_types: list[str] = Field(
        min_length=1, max_length=50, json_schema_extra=_EVENT_TYPES_SCHEMA
    )
    description: text(500) = ""  # type: ignore[valid-type]
    enabled: bool = True

    _types = field_validator("event_types")(_event_types)


def _update_schema(schema: dict[str, Any]) -> None:
    drop_null(schema)
    schema["minProperties"] = 1


class WebhookUpdate(Strict):
    """A partial update; absent fields stay. Enabling clears the failure state."""

    # In the schema, as the route enforces: no field takes null, and one at least.
    model_config = ConfigDict(json_schema_extra=lambda schema: _update_schema(schema))

    url: text(MAX_URL_LENGTH, 1) | None = Field(None, json_schema_extra=_URL_SCHEMA)  # type: ignore[valid-type]
    event_types: list[str] | None = Field(
        default=None, min_length=1, max_length=50, json_schema_extra=_EVENT_TYPES_SCHEMA
    )
    description: text(500) | None = None  # type: ignore[valid-type]
    enabled: bool | None = None

    @field_validator("*", mode="after")
    @classmethod
    def _no_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise ValueError("null is not allowed; leave the field out to keep its value")
        if info.field_name == "event_types":
            return _event_types(value)
        return value


class DeliveryFilters(BaseModel):
    """Query filters of an endpoint's deliveries."""

    status: Annotated[DeliveryStatus | None, one_of(get_args(DeliveryStatus))] = Field(
        None, description="Only deliveries in this status."
    )


class WebhookRotate(Strict):
    """Hours the previous secret keeps signing beside the new one (0: stop at once)."""

    overlap_hours: float = Field(default=24.0, ge=0, le=168)


class Webhook(BaseModel):
    """An endpoint as listed (never its secret)."""

    id: UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    failing_since: datetime | None
    consecutive_dead: int
    disabled_at: datetime | None
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None


class WebhookWithSecret(Webhook):
    """An endpoint just created or rotated: `secret` (`whsec_…`) is shown this once."""

    secret: str


class WebhookPage(BaseModel):
    data: list[Webhook]
    next_cursor: str | None


class WebhookDelivery(BaseModel):
    """One event to one endpoint: `message_id` is the `webhook-id` header of every attempt."""

    id: UUID
    endpoint_id: UUID
    event_id: UUID
    event_type: str
    message_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    response_status: int | None
    latency_ms: int | None
    last_error: str | None


class WebhookDeliveryPage(BaseModel):
    data: list[WebhookDelivery]
    next_cursor: str | None
