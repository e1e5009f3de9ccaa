"""Donations: what a partner records and what the partner API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, Field

from api.models.common import Quantity, Strict, text
from api.query import Instant, UuidArg, one_of

DonationStatus = Literal["pending", "confirmed", "delivered", "cancelled"]
# Partners may record goods already promised or received; cancelled is a transition.
CreateStatus = Literal["pending", "confirmed", "delivered"]
DonationSource = Literal["partner", "public"]


class DonationCreate(Strict):
    """A donation of `quantity` (in the item's unit) of one of the campaign's items."""

    item_id: UUID
    quantity: Quantity
    donor_name: text(200) = ""  # type: ignore[valid-type]
    donor_contact: text(200) = ""  # type: ignore[valid-type]
    anonymous: bool = False
    message: text(1000) = ""  # type: ignore[valid-type]
    status: CreateStatus = "pending"


class Donation(BaseModel):
    """A donation as the partner sees it (contact data included: partner-only)."""

    id: UUID
    campaign_id: UUID
    item_id: UUID
    quantity: int
    donor_name: str
    donor_contact: str | None = Field(
        description="The donor's contact ('' when none was given); null when its sealed "
        "value cannot be opened (see `unreadable`)."
    )
    anonymous: bool
    message: str | None = Field(
        description="The donor's message; null when its sealed value cannot be opened."
    )
    status: DonationStatus
    source: DonationSource
    created_at: datetime
    confirmed_at: datetime | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    unreadable: list[Literal["donor_contact", "message"]] | None = Field(
        None,
        description="Present only when some of this donation's encrypted fields cannot "
        "be opened (their key is no longer configured, or the stored value was altered): "
        "those fields are null. Logged for the operators (docs/privacy.md).",
    )


class DonationList(BaseModel):
    data: list[Donation]
    next_cursor: str | None


class CampaignDonationFilters(BaseModel):
    """Query filters of a campaign's donation list (api/query.py: parse_query)."""

    status: Annotated[DonationStatus | None, one_of(get_args(DonationStatus))] = Field(
        None, description="Only donations in this status."
    )
    since: Instant = Field(
        None, description="Only donations created at or after this time (with a UTC offset)."
    )


class DonationFilters(CampaignDonationFilters):
    """Query filters of the list across campaigns."""

    campaign_id: UuidArg = Field(None, description="Only this campaign's donations.")


class DonationExportFilters(DonationFilters):
    """The export's query: the list's filters and the format."""

    format: Annotated[Literal["csv"], one_of(["csv"])] = Field(
        "csv", description="The file format."
    )
