"""Events: what the outbox stores for each change, and the feed's answer.

What each type's `data` holds (the resource as the API returns it, except):

- `donation.*`: the Donation **without** `donor_name`, `donor_contact` and
  `message`. Events are kept at least 30 days and copied to webhook receivers; a
  data subject's erasure (`anonymize`, `conectades donor erase`) and the contact
  retention must not have to chase copies, and plaintext copies here would defeat
  the contacts' encryption at rest. A partner who needs them reads
  `GET /api/v1/donations/{id}`. Built from an allow-list (`DONATION_EVENT_FIELDS`),
  so a personal field added to donations later stays out until listed here.
- `campaign.created`, `campaign.updated`: the Campaign with its items and progress.
  Adding or deleting an item changes the campaign's item list: `campaign.updated`.
- `campaign.deleted`: `{"id": ...}` (the campaign no longer exists).
- `item.updated` (PATCH of an item): the Item plus its `campaign_id`.
- `webhook.disabled` (a notice from the webhook worker): the endpoint as
  `GET /api/v1/webhooks/{id}` returns it (never its secret).

A donation's status change moves its item's totals; that is told by the
`donation.*` event alone (no `item.updated` for totals).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, Field

from api.query import Instant, comma_separated
from db.queries.events import FEED_TYPES

EventType = Literal[
    "donation.created",
    "donation.confirmed",
    "donation.delivered",
    "donation.cancelled",
    "campaign.created",
    "campaign.updated",
    "campaign.deleted",
    "item.updated",
    "webhook.disabled",
]
assert set(get_args(EventType)) == set(FEED_TYPES), "EventType and FEED_TYPES differ"


def _unknown_type(name: str) -> str:
    return f"unknown event type {name!r}; one of {', '.join(FEED_TYPES)}"


class EventFilters(BaseModel):
    """Query filters of the feed (api/query.py: parse_query)."""

    type: Annotated[list[EventType] | None, comma_separated(get_args(EventType), _unknown_type)] = (
        Field(
            None,
            description="Only these types (repeat the parameter, or separate them with commas).",
        )
    )
    after: Instant = Field(
        None,
        description="Only events that occurred after this instant (with a UTC offset). A "
        "filter, not a position: to resume, pass `poll_cursor` as `cursor`.",
    )


# A donation's status after a transition → the event it writes.
STATUS_EVENTS = {
    "confirmed": "donation.confirmed",
    "delivered": "donation.delivered",
    "cancelled": "donation.cancelled",
}
# Everything of a Donation but the donor's name, contact and message (LGPD).
DONATION_EVENT_FIELDS = (
    "id",
    "campaign_id",
    "item_id",
    "quantity",
    "anonymous",
    "status",
    "source",
    "created_at",
    "confirmed_at",
    "delivered_at",
    "cancelled_at",
)


def donation_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """A donation row as an event's data: the allow-listed fields only."""
    return {name: row[name] for name in DONATION_EVENT_FIELDS}


class Event(BaseModel):
    """A change, as recorded in the same transaction as the change itself."""

    id: UUID = Field(description="Stable: the same event always has this id.")
    type: EventType
    resource_type: Literal["donation", "campaign", "item", "webhook"]
    resource_id: UUID | None
    occurred_at: datetime
    data: dict[str, Any] = Field(
        description="The resource as the API returns it; donation events leave out "
        "donor_name, donor_contact and message."
    )


class EventList(BaseModel):
    """A page of the feed, oldest first."""

    data: list[Event]
    next_cursor: str | None = Field(
        description="Set when more events are ready now: pass it as `cursor`."
    )
    poll_cursor: str = Field(
        description="Always set: where this page ended. Keep it and pass it as `cursor` "
        "on the next poll to receive only newer events."
    )
