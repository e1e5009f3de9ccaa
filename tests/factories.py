"""Factories: tenants and keys straight into the database (owner role), everything
else through the API, so tests exercise the same paths as clients."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tenants import keys, provisioning
from tests.services import Database

# An id no row has: fixed, not uuid4(), because test ids are built from parameters and
# must be the same in every collection (pytest-xdist compares its workers' lists).
UNKNOWN_ID = "5b0c3a4e-9d1f-4c2a-8e7b-3f6d2a1c0e9f"


@dataclass
class TenantCtx:
    id: uuid.UUID
    slug: str
    key: str
    headers: dict[str, str] = field(default_factory=dict)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def key_secret(key: str) -> str:
    """The secret part of an API key, `cnd_live_<public id>_<secret>`. The secret is
    token_urlsafe and may itself contain `_`, so it is what follows the third `_`."""
    return key.split("_", 3)[3]


class Factory:
    def __init__(self, db: Database, client: httpx.Client) -> None:
        self.db = db
        self.client = client

    def tenant(self, scopes: tuple[str, ...] = ("read", "write", "keys")) -> TenantCtx:
        slug = f"org-{uuid.uuid4().hex[:10]}"

        async def make() -> tuple[Any, str]:
            assert self.db.pool is not None
            async with self.db.pool.acquire() as conn, conn.transaction():
                made = await provisioning.tenant_with_key(
                    conn, slug=slug, name=f"Org {slug}", scopes=list(scopes)
                )
                return made.tenant, made.key

        row, full = self.db.run(make())
        return TenantCtx(id=row["id"], slug=slug, key=full, headers=bearer(full))

    def key(self, tenant: TenantCtx, scopes: tuple[str, ...], **kw: Any) -> str:
        async def make() -> str:
            assert self.db.pool is not None
            async with self.db.pool.acquire() as conn:
                _, full = await keys.issue(conn, tenant_id=tenant.id, scopes=list(scopes), **kw)
                return full

        return self.db.run(make())

    def campaign(self, tenant: TenantCtx, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "slug": f"c-{uuid.uuid4().hex[:12]}",
            "title": "Arrecadação de alimentos",
            "description": "Cestas básicas para famílias do bairro",
            "categories": ["alimentos"],
            "location": "Centro",
            "status": "published",
            "items": [
                {"name": "Arroz", "unit": "kg", "quantity_requested": 500},
                {"name": "Feijão", "unit": "kg", "quantity_requested": 300},
            ],
        }
        body.update(overrides)
        r = self.client.post("/api/v1/campaigns", json=body, headers=tenant.headers)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    def donation(
        self, tenant: TenantCtx, campaign: dict[str, Any], quantity: int = 5, **overrides: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "item_id": campaign["items"][0]["id"],
            "quantity": quantity,
            "donor_name": "Maria",
            "donor_contact": "+55 11 99999-0000",
        }
        body.update(overrides)
        r = self.client.post(
            f"/api/v1/campaigns/{campaign['id']}/donations", json=body, headers=tenant.headers
        )
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    def staff_user(self, tenant: TenantCtx, username: str, role: str, password: str) -> uuid.UUID:
        """A staff login of `tenant`, straight into the database; its id."""

        async def make() -> uuid.UUID:
            assert self.db.pool is not None
            async with self.db.pool.acquire() as conn:
                return await provisioning.staff_login(
                    conn, tenant.id, username=username, role=role, password=password
                )

        return self.db.run(make())

    def campaign_row(
        self,
        tenant: TenantCtx,
        *,
        items: tuple[tuple[str, str, int], ...] = (("Arroz", "kg", 100),),
        **columns: Any,
    ) -> dict[str, Any]:
        """A campaign with items straight into the database as the owner (any status,
        created_at or deadline, past ones included); returns its row and `items`."""
        values: dict[str, Any] = {
            "slug": f"c-{uuid.uuid4().hex[:12]}",
            "title": "Arrecadação de alimentos",
            "status": "published",
        }
        values.update(columns)
        names = list(values)
        placeholders = ", ".join(f"${i + 2}" for i in range(len(names)))
        row = self.db.fetchrow(
            f"INSERT INTO campaign (tenant_id, {', '.join(names)}) "
            f"VALUES ($1, {placeholders}) RETURNING *",
            tenant.id,
            *values.values(),
        )
        assert row is not None
        campaign = dict(row)
        campaign["items"] = [
            dict(
                self.db.fetchrow(
                    "INSERT INTO campaign_item (tenant_id, campaign_id, name, unit, "
                    "quantity_requested) VALUES ($1, $2, $3, $4, $5) RETURNING *",
                    tenant.id,
                    campaign["id"],
                    name,
                    unit,
                    requested,
                )
                or {}
            )
            for name, unit, requested in items
        ]
        return campaign

    def donation_row(
        self, tenant: TenantCtx, campaign: dict[str, Any], quantity: int, **columns: Any
    ) -> dict[str, Any]:
        """A donation straight into the database as the owner (totals by the trigger)."""
        values: dict[str, Any] = {
            "item_id": campaign["items"][0]["id"],
            "donor_name": "Maria",
            "donor_contact": "+55 11 99999-0000",
        }
        values.update(columns)
        names = list(values)
        placeholders = ", ".join(f"${i + 4}" for i in range(len(names)))
        row = self.db.fetchrow(
            f"INSERT INTO donation (tenant_id, campaign_id, quantity, {', '.join(names)}) "
            f"VALUES ($1, $2, $3, {placeholders}) RETURNING *",
            tenant.id,
            campaign["id"],
            quantity,
            *values.values(),
        )
        assert row is not None
        return dict(row)
