"""api/cache.py's WRITES: every kind of write has one row, and each row gives the
invalidation its handler made before the table existed, except that donations no
longer drop public reads: the cross-tenant directory follows within DIRECTORY_TTL,
the organization's public parts are marked and follow within PUBLIC_LAG."""

from __future__ import annotations

import uuid
from typing import get_args

import pytest

from api.cache import (
    DIRECTORY,
    LISTS,
    WRITES,
    Invalidation,
    WriteKind,
    campaign_part,
    slug_part,
    stale_parts,
)

CID = uuid.UUID("00000000-0000-4000-8000-000000000001")
OWN = [campaign_part(CID), LISTS]
SLUG = slug_part("cestas")
CAMPAIGN = [*OWN, SLUG]


def test_every_kind_of_write_has_a_row() -> None:
    assert set(WRITES) == set(get_args(WriteKind))


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("campaign.created", Invalidation(True, None, [])),
        ("campaign.updated", Invalidation(True, [*CAMPAIGN, DIRECTORY], [])),
        ("campaign.renamed", Invalidation(True, None, [])),
        ("campaign.deleted", Invalidation(True, None, [])),
        ("item.created", Invalidation(True, None, [])),
        ("item.updated", Invalidation(True, None, [])),
        ("item.deleted", Invalidation(True, None, [])),
        ("donation.pledged", Invalidation(False, OWN, [SLUG])),
        ("donation.recorded", Invalidation(False, OWN, [SLUG, DIRECTORY])),
        ("donation.confirmed", Invalidation(False, OWN, [SLUG, DIRECTORY])),
        ("donation.delivered", Invalidation(False, OWN, [SLUG])),
        ("donation.cancelled", Invalidation(False, OWN, [SLUG, DIRECTORY])),
        ("donation.anonymized", Invalidation(False, CAMPAIGN, [])),
    ],
)
def test_each_kind_invalidates_what_its_handler_did(
    kind: WriteKind, expected: Invalidation
) -> None:
    assert stale_parts(kind, CID, "cestas") == expected


def test_a_campaign_write_without_its_campaign_is_refused() -> None:
    with pytest.raises(ValueError, match="campaign_id"):
        stale_parts("donation.pledged")


def test_a_campaign_without_a_slug_leaves_the_slug_part_out() -> None:
    assert stale_parts("donation.pledged", CID, None) == Invalidation(False, OWN, [])
    assert stale_parts("campaign.updated", CID, None) == Invalidation(True, [*OWN, DIRECTORY], [])
