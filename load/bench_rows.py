"""The benchmark's rows (load/bench.py): each path, the ceiling it is divided by and
the goal from the issues; `select` picks rows for `--only`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

COLD_START_GOAL = 1.5  # seconds
SPREAD_CAMPAIGNS = 10
ITEMS_PER_CAMPAIGN = 20


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    ceiling: str | None  # the row this one is divided by (None: a ceiling itself)
    goal: float | None  # the minimum ratio to the ceiling, from the issue
    meaning: str
    # The most CPU per request this row may cost, as a multiple of its ceiling's
    # (then the goal is on cost, not on the rate; `goal` is None).
    cost_goal: float | None = None
    # It writes rows: the bench refreshes the planner's statistics after it (bench.py).
    writes: bool = False


ROWS: tuple[Row, ...] = (
    Row(
        "static-file",
        "ceiling: Nginx static file",
        None,
        None,
        "GET /static/page.json: nginx serving a file with the public page's bytes",
    ),
    Row(
        "bare-route",
        "ceiling: bare Sanic route",
        None,
        None,
        "GET /api/v1/campaigns/{id} on a bare Sanic app returning the partner read's "
        "bytes, through the edge",
    ),
    Row(
        "pg-insert",
        "ceiling: PostgreSQL insert",
        None,
        None,
        "POST to a bare Sanic route doing one INSERT into a plain table (asyncpg, "
        "autocommit, synchronous_commit on), through the edge",
        writes=True,
    ),
    Row(
        "static-html",
        "ceiling: Nginx static file (page)",
        None,
        None,
        "GET /static/page.html: nginx serving a file with the donor page's bytes",
    ),
    Row(
        "json-build",
        "ceiling: public JSON page built",
        None,
        None,
        "GET /api/public/bench/campaigns/{slug} on an API without Redis, no edge: "
        "built from PostgreSQL every time (the cost a donor page build is held to)",
    ),
    Row(
        "public-page",
        "public page, edge cache",
        "static-file",
        0.85,
        "GET /api/public/bench/campaigns/{slug} served by the edge microcache "
        "(X-Cache-Status: HIT)",
    ),
    Row(
        "donor-page",
        "donor page (HTML), edge cache",
        "static-html",
        0.85,
        "GET /o/bench/{slug}: the campaign's pt-BR page served by the edge microcache "
        "(X-Cache-Status: HIT)",
    ),
    Row(
        "page-build",
        "donor page (HTML) built",
        "json-build",
        None,
        "GET /o/bench/{slug} on the API without Redis, no edge: the page built from "
        "PostgreSQL every time; its CPU per request at most 2 x the JSON page's",
        cost_goal=2.0,
    ),
    Row(
        "partner-redis",
        "partner read, Redis",
        "bare-route",
        0.5,
        "GET /api/v1/campaigns/{id} with an API key through the edge; X-Cache: HIT",
    ),
    Row(
        "partner-pg",
        "partner read, PostgreSQL",
        "bare-route",
        None,
        "the same read from an API without Redis: built from PostgreSQL every time",
    ),
    Row(
        "donations-spread",
        "donations, many items",
        "pg-insert",
        None,
        f"POST /api/v1/campaigns/{{id}}/donations (API key), a random item of "
        f"{SPREAD_CAMPAIGNS * ITEMS_PER_CAMPAIGN} in {SPREAD_CAMPAIGNS} campaigns",
        writes=True,
    ),
    Row(
        "donations-one",
        "donations, one item",
        "donations-spread",
        0.8,
        "the same POST, every donation on one item (no hot-row penalty expected)",
        writes=True,
    ),
)
ROW_BY_NAME = {row.name: row for row in ROWS}
COLD_START = "cold-start"
NAMES = (*ROW_BY_NAME, COLD_START)


def select(only: Sequence[str] | None) -> list[str]:
    """The names to measure, in table order; `only` may hold comma-separated lists."""
    if not only:
        return list(NAMES)
    wanted = {name.strip() for item in only for name in item.split(",") if name.strip()}
    unknown = sorted(wanted - set(NAMES))
    if unknown:
        raise ValueError(f"unknown row(s): {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    return [name for name in NAMES if name in wanted]
