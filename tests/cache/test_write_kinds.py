"""api/cache.py's WRITES: every kind of write has one row, and each row gives the
invalidation its handler made before the table existed, except that donations no
longer drop the cross-tenant directory (it follows within DIRECTORY_TTL)."""

from __future__ import annotations

import uuid
from typing import get_args

import pytest

from api.cache import DIRECTORY, LISTS, WRITES, WriteKind, campaign_part, slug_part, stale_parts

CID = uuid.UUID("00000000-0000-4000-8000-000000000001")
CAMPAIGN = [campaign_part(CID), LISTS, slug_part("cestas")]


def test_every_kind_of_write_has_a_row() -> None:
    assert set(WRITES) == set(get_args(WriteKind))


@pytest.mark.parametrize(
    ("kind", "directory", "parts"),
    [
        ("campaign.created", True, None),
        ("campaign.updated", True, [*CAMPAIGN, DIRECTORY]),
        ("campaign.renamed", True, None),
        ("campaign.deleted", True, None),
        ("item.created", True, None),
        ("item.updated", True, None),
        ("item.deleted", True, None),
        ("donation.pledged", False, CAMPAIGN),
        ("donation.recorded", False, [*CAMPAIGN, DIRECTORY]),
        ("donation.confirmed", False, [*CAMPAIGN, DIRECTORY]),
        ("donation.delivered", False, CAMPAIGN),
        ("donation.cancelled", False, [*CAMPAIGN, DIRECTORY]),
        ("donation.anonymized", False, CAMPAIGN),
    ],
)
def test_each_kind_invalidates_what_its_handler_did(
    kind: WriteKind, directory: bool, parts: list[str] | None
) -> None:
    assert stale_parts(kind, CID, "cestas") == (directory, parts)


def test_a_campaign_write_without_its_campaign_is_refused() -> None:
    with pytest.raises(ValueError, match="campaign_id"):
        stale_parts("donation.pledged")


def test_a_campaign_without_a_slug_leaves_the_slug_part_out() -> None:
    assert stale_parts("donation.pledged", CID, None) == (False, [campaign_part(CID), LISTS])
