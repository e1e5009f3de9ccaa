"""Factories: tenants and keys straight into the database (owner role), everything
else through the API, so tests exercise the same paths as clients."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from db.queries import tenants as tq
from tenants import keys
from tests.services import Database


@dataclass
class TenantCtx:
    id: uuid.UUID
    slug: str
    key: str
    headers: dict[str, str] = field(default_factory=dict)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Factory:
    def __init__(self, db: Database, client: httpx.Client) -> None:
        self.db = db
        self.client = client

    def tenant(self, scopes: tuple[str, ...] = ("read", "write", "keys")) -> TenantCtx:
        slug = f"org-{uuid.uuid4().hex[:10]}"

        async def make() -> tuple[Any, str]:
            assert self.db.pool is not None
            async with self.db.pool.acquire() as conn, conn.transaction():
                row = await tq.insert_tenant(conn, slug=slug, name=f"Org {slug}")
                _, full = await keys.issue(conn, tenant_id=row["id"], scopes=list(scopes))
                return row, full

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
