"""Demo data at any volume: tenants, campaigns, items and donations.

Everything is generated from one `random.Random(seed)` (ids included), so a seed
number reproduces the same data relative to the reference hour. Rows go in with
COPY inside one transaction: a failed seed leaves nothing behind.

What a seed writes is marked (migration 0014): its new tenants `seeded` (and, unless
the plan says `listed`, left out of the cross-tenant public directory) and every
campaign it writes `seeded`, also in an existing tenant; `purge_seeded` removes them.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from db import crypto
from db import demo_data as d
from db.crypto import Keyring
from db.queries import seed as q
from db.queries import tenants as tq

DAY = 86_400.0
CHUNK = 25_000
STATUS = q.DONATION_COLUMNS.index("status")

# (status, cumulative probability): most donations get through, some are cancelled.
STATUS_WEIGHTS = (("pending", 0.22), ("confirmed", 0.50), ("delivered", 0.90), ("cancelled", 1.0))
CAMPAIGN_STATUS_WEIGHTS = (("published", 0.78), ("draft", 0.90), ("closed", 1.0))

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class SeedError(RuntimeError):
    pass


@dataclass(frozen=True)
class SeedPlan:
    tenants: int = 1
    campaigns_per_tenant: int = 20
    donations: int = 2_000
    tenant_slug: str | None = None
    seed: int | None = None
    per_row_totals: bool = False  # let the trigger update totals row by row (slower)
    # New tenants in the cross-tenant directory? An existing tenant keeps its listing.
    listed: bool = False


@dataclass
class SeedResult:
    seed: int
    tenants: list[dict[str, Any]] = field(default_factory=list)
    campaigns: int = 0
    items: int = 0
    donations: int = 0
    campaign_statuses: Counter[str] = field(default_factory=Counter)
    donation_statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        rate = self.donations / self.seconds if self.seconds else 0.0
        return {
            "seed": self.seed,
            "tenants": self.tenants,
            "campaigns": self.campaigns,
            "items": self.items,
            "donations": self.donations,
            "campaign_statuses": dict(self.campaign_statuses),
            "donation_statuses": dict(self.donation_statuses),
            "seconds": round(self.seconds, 2),
            "donations_per_second": round(rate),
        }


def slugify(value: str, max_length: int = 60) -> str:
    ascii_only = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_only.lower()).strip("-")
    return slug[:max_length].strip("-") or "x"


@dataclass(frozen=True)
class Target:
    """An item that can receive donations, with the window its donations fall in."""

    tenant_id: uuid.UUID
    campaign_id: uuid.UUID
    item_id: uuid.UUID
    qty_low: int
    qty_span: int
    start: float  # epoch seconds
    span: float


class Generator:
    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.now_ts = now.timestamp()
        self.names = [f"{f} {s}" for f in d.FIRST_NAMES for s in d.SURNAMES]
        self.email_users = [f"{slugify(f)}.{slugify(s)}" for f in d.FIRST_NAMES for s in d.SURNAMES]

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def tenant(self, index: int) -> tuple[str, str]:
        base = d.ORGANIZATIONS[index % len(d.ORGANIZATIONS)]
        name = base if index < len(d.ORGANIZATIONS) else f"{base} {index // len(d.ORGANIZATIONS)}"
        return name, f"{slugify(name, 50)}-{self.rng.getrandbits(24):06x}"

    def phone(self) -> str:
        r = self.rng.randrange
        return f"+55 {self.rng.choice(d.AREA_CODES)} 9{r(1000, 10000)}-{r(1000, 10000)}"

    def campaign(
        self, tenant_id: uuid.UUID, index: int, number: int
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], list[Target]]:
        rng = self.rng
        cid = self.new_id()
        bairro = rng.choice(d.NEIGHBOURHOODS)
        created = self.now - timedelta(seconds=rng.uniform(2 * DAY, 240 * DAY))
        template, categories = rng.choice(d.TITLES)
        if index == 0:
            # The first campaign is always published and open (see `_deadline`), and
            # always the README's example: "basicas" finds "Cestas básicas …" among
            # the active campaigns whatever the random seed.
            template, categories = d.TITLES[0]
        title = template.format(bairro=bairro, ano=created.year)
        status = "published" if index == 0 else _pick(rng.random(), CAMPAIGN_STATUS_WEIGHTS)
        ends_at = self._deadline(status, created, first=index == 0)
        description = " ".join(
            (
                rng.choice(d.DESCRIPTION_OPENINGS).format(
                    n=rng.randrange(30, 900), bairro=bairro, desde=rng.randrange(1995, 2022)
                ),
                rng.choice(d.DESCRIPTION_MIDDLES),
                rng.choice(d.DESCRIPTION_CLOSINGS),
            )
        )
        row = (
            cid,
            tenant_id,
            f"{slugify(title, 80)}-{number}",
            title,
            rng.choice(d.SUBTITLES),
            description,
            None,
            list(categories),
            bairro,
            f"WhatsApp {self.phone()}",
            created,
            ends_at,
            status,
            created,
            created,
            True,  # seeded
        )
        needs = [need for c in categories for need in d.ITEMS[c]]
        chosen = rng.sample(needs, k=min(len(needs), rng.randint(1, 4)))
        if rng.random() < 0.3:
            chosen.append(d.MONEY_ITEM)
        items, targets = [], []
        window_end = min(self.now, ends_at) if ends_at else self.now
        span = max((window_end - created).total_seconds(), 60.0)
        for n, (name, unit, low, high) in enumerate(chosen):
            iid = self.new_id()
            items.append(
                (
                    iid,
                    tenant_id,
                    cid,
                    name,
                    unit,
                    rng.randrange(low, high + 1) // 10 * 10 or low,
                    created + timedelta(microseconds=n),
                )
            )
            if status != "draft":
                q_low, q_high = d.DONATION_QUANTITY[unit]
                targets.append(
                    Target(
                        tenant_id, cid, iid, q_low, q_high - q_low + 1, created.timestamp(), span
                    )
                )
        return row, items, targets

    def _deadline(self, status: str, created: datetime, *, first: bool) -> datetime | None:
        rng = self.rng
        roll = 0.0 if first else rng.random()
        future = self.now + timedelta(seconds=rng.uniform(3 * DAY, 120 * DAY))
        past = created + (self.now - created) * rng.uniform(0.4, 0.95)
        if status == "published":
            return future if roll < 0.6 else past if roll < 0.9 else None
        if status == "closed":
            return past if roll < 0.8 else None
        return future if roll < 0.7 else None

    def donations(self, targets: list[Target], count: int) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        r = rng.random
        n_targets = len(targets)
        names, users = self.names, self.email_users
        n_names = len(names)
        messages = d.MESSAGES
        domains = d.EMAIL_DOMAINS
        codes = d.AREA_CODES
        fromts = datetime.fromtimestamp
        for _ in range(count):
            t = targets[int(r() * n_targets)]
            created_ts = t.start + r() * t.span
            created = fromts(created_ts, UTC)
            status = _pick(r(), STATUS_WEIGHTS)
            confirmed_at = delivered_at = cancelled_at = None
            later = created_ts + r() * 3 * DAY
            if status == "confirmed":
                confirmed_at = fromts(min(later, self.now_ts), UTC)
            elif status == "delivered":
                confirmed_at = fromts(min(later, self.now_ts), UTC)
                delivered_at = fromts(min(later + r() * 4 * DAY, self.now_ts), UTC)
            elif status == "cancelled":
                cancelled_at = fromts(min(later, self.now_ts), UTC)
            who = int(r() * n_names)
            if r() < 0.5:
                contact = (
                    f"+55 {codes[int(r() * 9)]} 9{int(r() * 9000) + 1000}-{int(r() * 9000) + 1000}"
                )
            else:
                contact = f"{users[who]}{int(r() * 100)}@{domains[int(r() * 5)]}"
            yield (
                uuid.UUID(int=rng.getrandbits(128), version=4),
                t.tenant_id,
                t.campaign_id,
                t.item_id,
                t.qty_low + int(r() * t.qty_span),
                names[who],
                contact,
                r() < 0.15,
                messages[int(r() * len(messages))],
                status,
                "public" if r() < 0.6 else "partner",
                created,
                confirmed_at,
                delivered_at,
                cancelled_at,
            )


def _pick(roll: float, weights: tuple[tuple[str, float], ...]) -> str:
    for value, cumulative in weights:
        if roll < cumulative:
            return value
    return weights[-1][0]


def sealed(rows: Iterator[tuple[Any, ...]], ring: Keyring) -> Iterator[tuple[Any, ...]]:
    """Generated donations as stored (db/queries/seed.py: DONATION_COLUMNS): contact
    and message sealed, the contact's lookup hash beside them (db/crypto.py)."""
    for r in rows:
        place = {"tenant_id": r[1], "row_id": r[0]}
        yield (
            *r[:6],
            ring.seal(r[6], column=crypto.CONTACT, **place),
            ring.contact_hash(r[6]),
            r[7],
            ring.seal(r[8], column=crypto.MESSAGE, **place),
            *r[9:],
        )


def _take(rows: Iterator[tuple[Any, ...]], size: int) -> list[tuple[Any, ...]]:
    return list(itertools.islice(rows, size))


async def _copy_donations(
    conn: asyncpg.Connection,
    rows: Iterator[tuple[Any, ...]],
    total: int,
    result: SeedResult,
    report: Progress,
) -> None:
    """COPY in chunks, generating the next chunk in a thread while the server ingests
    this one (one chunk at a time, so the random sequence stays deterministic)."""
    loop = asyncio.get_running_loop()
    pending = loop.run_in_executor(None, _take, rows, CHUNK)
    done = 0
    while chunk := await pending:
        pending = loop.run_in_executor(None, _take, rows, CHUNK)
        await q.copy_donations(conn, chunk)
        result.donation_statuses.update(row[STATUS] for row in chunk)
        done += len(chunk)
        report("donations", done, total)


async def run_seed(
    conn: asyncpg.Connection, plan: SeedPlan, ring: Keyring, progress: Progress | None = None
) -> SeedResult:
    """Load the plan's data in one transaction; returns what was created. Donors'
    contacts and messages are sealed with `ring` (the API's keys)."""
    seed = plan.seed if plan.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    gen = Generator(rng, now)
    result = SeedResult(seed=seed)
    report = progress or (lambda phase, done, total: None)
    started = time.perf_counter()
    async with conn.transaction():
        tenant_ids = await _tenants(conn, plan, gen, result)
        campaigns, items, targets = [], [], []
        for tenant_id in tenant_ids:
            # Slugs end in a per-tenant number, so seeding a tenant again never clashes.
            existing = await q.count_campaigns(conn, tenant_id=tenant_id)
            for index in range(plan.campaigns_per_tenant):
                row, its, tgs = gen.campaign(tenant_id, index, existing + index + 1)
                campaigns.append(row)
                items.extend(its)
                targets.extend(tgs)
                result.campaign_statuses[row[12]] += 1
        await q.copy_campaigns(conn, campaigns)
        await q.copy_items(conn, items)
        result.campaigns, result.items = len(campaigns), len(items)
        report("campaigns", len(campaigns), len(campaigns))
        if plan.donations and not targets:
            raise SeedError("no published or closed campaign to receive donations")
        if plan.donations:
            if not plan.per_row_totals:
                await q.disable_totals_trigger(conn)
            rows = sealed(gen.donations(targets, plan.donations), ring)
            await _copy_donations(conn, rows, plan.donations, result, report)
            if not plan.per_row_totals:
                report("totals", 0, 1)
                await q.insert_item_totals(conn, [t.item_id for t in targets])
                await q.enable_totals_trigger(conn)
                report("totals", 1, 1)
        result.donations = plan.donations
    await q.analyze(conn)
    result.seconds = time.perf_counter() - started
    return result


async def _tenants(
    conn: asyncpg.Connection, plan: SeedPlan, gen: Generator, result: SeedResult
) -> list[uuid.UUID]:
    if plan.tenant_slug is not None:
        row = await tq.select_tenant_by_slug(conn, plan.tenant_slug)
        if row is None:
            raise SeedError(f"no tenant with slug {plan.tenant_slug!r}")
        result.tenants.append({"id": str(row["id"]), "slug": row["slug"], "name": row["name"]})
        return [row["id"]]
    ids = []
    for index in range(plan.tenants):
        name, slug = gen.tenant(index)
        row = await tq.insert_tenant(conn, slug=slug, name=name, listed=plan.listed, seeded=True)
        result.tenants.append({"id": str(row["id"]), "slug": slug, "name": name})
        ids.append(row["id"])
    return ids


async def purge_seeded(conn: asyncpg.Connection) -> dict[str, Any]:
    """Remove what seeds wrote, in one transaction: the tenants a seed created (every
    row of them) and the seeded campaigns of other tenants (with their items, totals
    and donations). Returns the slugs and rows removed per table."""
    removed: Counter[str] = Counter()
    async with conn.transaction():
        tenants = await q.select_seeded_tenants(conn)
        for t in tenants:
            removed.update(await tq.delete_tenant(conn, tenant_id=t["id"]))
        removed.update(await q.delete_seeded_campaigns(conn))
    return {"tenants": [t["slug"] for t in tenants], "rows": dict(removed)}
