"""api/query.py without a server: each query-string field type parses what the routes
accepted before the models existed, and refuses the rest with their messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import pytest
from sanic import Request
from sanic.request import RequestParameters

from api.directory import PARAMS
from api.errors import ValidationFailed
from api.models.audit import AuditFilters
from api.models.donations import DonationExportFilters, DonationFilters
from api.models.events import EventFilters
from api.pagination import PageLimit
from api.query import parse_query
from api.routes.legacy import LEGACY_PARAMS
from api.routes.pages import PARAMS as PAGE_PARAMS


def request(query: str) -> Request:
    """What parse_query reads of a request: its arguments, blank values dropped as
    Sanic drops them."""
    args = RequestParameters(parse_qs(query, keep_blank_values=False))
    fake: Any = SimpleNamespace(args=args)
    return fake


def problems(model: Any, query: str) -> list[tuple[str, str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        parse_query(request(query), model)
    errors: list[dict[str, str]] = caught.value.errors
    return [(e["field"], e["type"], e["message"]) for e in errors]


def test_donation_filters_parse_status_instant_and_uuid() -> None:
    cid = uuid.uuid4()
    f = parse_query(
        request(f"status=confirmed&since=2026-01-31T10:00:00%2003:00&campaign_id={cid.hex}"),
        DonationFilters,
    )
    assert (f.status, f.since, f.campaign_id) == (
        "confirmed",
        datetime(2026, 1, 31, 7, 0, tzinfo=UTC),
        cid,
    )
    assert parse_query(request(""), DonationExportFilters).format == "csv"


def test_every_bad_parameter_is_named_with_the_routes_message() -> None:
    assert problems(DonationFilters, "status=lost&since=2026-01-31T10:00:00&campaign_id=x") == [
        ("status", "enum", "must be one of pending, confirmed, delivered, cancelled"),
        (
            "since",
            "datetime_parsing",
            "must be an ISO 8601 timestamp with a UTC offset, e.g. 2026-01-31T12:00:00Z",
        ),
        ("campaign_id", "uuid_parsing", "must be a UUID"),
    ]
    assert problems(DonationExportFilters, "format=xlsx") == [
        ("format", "enum", "must be one of csv")
    ]


def test_event_types_repeat_or_split_on_commas_sorted_once() -> None:
    query = "type=item.updated,donation.created&type=%20item.updated%20&type=,"
    assert parse_query(request(query), EventFilters).type == ["donation.created", "item.updated"]
    assert parse_query(request("type=,"), EventFilters).type is None
    [(field, kind, message)] = problems(EventFilters, "type=donation.created,nope")
    assert (field, kind) == ("type", "enum") and message.startswith("unknown event type 'nope'")


def test_audit_filters_check_as_the_cli_does() -> None:
    assert problems(AuditFilters, "actor=a%20b%21&action=campaign") == [
        ("actor", "invalid", "must be a key or user id, a key prefix or a username"),
        ("action", "invalid", "must be an action such as campaign.create"),
    ]
    key = uuid.uuid4()
    assert parse_query(request(f"actor={key}"), AuditFilters).filters().actor_id == key


def test_directory_defaults_choices_and_stripped_text() -> None:
    f = directory(PARAMS, "q=%20%20cestas%20&category=%20%20")
    assert (f.order, f.status, f.q, f.category) == ("recent", "active", "cestas", None)
    pages = directory(PAGE_PARAMS, "situacao=todas&ordem=antigas")
    assert (pages.status, pages.order) == ("all", "oldest")
    assert problems(PARAMS.model, "q=" + "x" * 201 + "&order=popular") == [
        ("q", "string_too_long", "at most 200 characters"),
        ("order", "enum", "must be one of: recent, oldest, deadline, progress"),
    ]
    assert problems(PARAMS.model, "location=a%00b") == [
        ("location", "string_type", "must not contain NUL characters")
    ]


def directory(params: Any, query: str) -> Any:
    return parse_query(request(query), params.model).filter()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("categoria=%207%20&localizacao=9", (7, 9)),
        ("categoria=%20", (None, None)),
        ("categoria=1.5", ("categoria", "int_parsing", "must be an integer id")),
        ("localizacao=0", ("localizacao", "greater_than", "must be an id from 1 to 2147483647")),
        ("categoria=" + "9" * 201, ("categoria", "string_too_long", "at most 200 characters")),
    ],
)
def test_legacy_ids_are_positive_integers_named_in_portuguese(query: str, expected: Any) -> None:
    if isinstance(expected[0], str):
        assert problems(LEGACY_PARAMS.model, query) == [expected]
        return
    parsed = parse_query(request(query), LEGACY_PARAMS.model)
    assert (parsed.category, parsed.location) == expected
    f = parsed.filter()
    assert (f.category, f.location, f.status, f.order) == (None, None, "active", "recent")


def test_page_size_is_parsed_here_too() -> None:
    assert parse_query(request("limit=%207%20"), PageLimit).limit == 7
    assert parse_query(request(""), PageLimit).limit == 20
    message = "must be an integer from 1 to 100"
    assert problems(PageLimit, "limit=0") == [("limit", "range", message)]
    assert problems(PageLimit, "limit=ten") == [("limit", "int_parsing", message)]
