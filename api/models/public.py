"""What anonymous donors send and see: public columns only, never contact data."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from api.models.campaigns import Item
from api.models.common import Quantity, Strict, text


class TenantPublic(BaseModel):
    """The organization running a campaign."""

    slug: str
    name: str


class CampaignPublic(BaseModel):
    """A published campaign in the directory."""

    id: UUID
    tenant: TenantPublic
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
    created_at: datetime
    progress: float


class CampaignPublicList(BaseModel):
    data: list[CampaignPublic]
    next_cursor: str | None


# The same need with its exact totals as partners see it: nothing in it is private.
ItemPublic = Item


class CampaignPublicDetail(CampaignPublic):
    """A campaign page: items, progress, deadline, and whether it takes pledges."""

    status: Literal["published", "closed"]
    accepting_pledges: bool
    items: list[ItemPublic]


class DonationPublic(BaseModel):
    """A donation as donors see it: a display name, never contact data."""

    id: UUID
    display_name: str
    item_id: UUID
    item_name: str
    unit: str
    quantity: int
    status: Literal["pending", "confirmed", "delivered"]
    message: str
    created_at: datetime


class DonationPublicList(BaseModel):
    data: list[DonationPublic]
    next_cursor: str | None


class PledgeCreate(Strict):
    """A donor's pledge of `quantity` (in the item's unit) of one item. The name is
    shown in the campaign's public donations only with `show_name: true`; the
    contact is never shown."""

    item_id: UUID
    quantity: Quantity
    donor_name: text(200, 1)  # type: ignore[valid-type]
    donor_contact: text(200, 1)  # type: ignore[valid-type]
    # LGPD, minimal exposure: the name is shown publicly only if the donor asks.
    show_name: bool = False
    # Kept for older clients: true hides the name even with show_name.
    anonymous: bool = False
    message: text(1000) = ""  # type: ignore[valid-type]


class Pledge(BaseModel):
    """The recorded pledge (the contact is not echoed)."""

    id: UUID
    status: Literal["pending"]
    item_id: UUID
    quantity: int
    created_at: datetime
