"""Donations export (partner API v1): `GET /api/v1/donations/export?format=csv` with
the donations list's filters, streamed.

Rows come from a server-side cursor inside the tenant transaction and leave in
~64 KiB chunks of a chunked response, so a worker holds one chunk and one cursor
batch whatever the size of the export (tests/api/test_export.py measures it).
The CSV is UTF-8 with a byte order mark (Excel then reads Portuguese text as UTF-8),
a header row, CRLF line ends and RFC 4180 quoting (Python's csv module, `excel`
dialect). Text that people typed (donor, message, campaign and item names) and that
starts with = + - @, a tab or a carriage return (or their full-width forms) gets a
leading apostrophe, as OWASP advises against CSV formula injection: a spreadsheet
then shows it as text instead of running it.

A failure after the first chunk cannot become a problem response any more: the
connection is closed without the final chunk, so clients see an incomplete
transfer, never a short file that looks whole."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from api.auth import require
from api.context import app_context
from api.database import keyring, tenant_tx
from api.errors import NotFound, ServiceUnavailable
from api.models.donations import DonationExportFilters
from api.openapi import doc
from api.query import parse_query
from api.routes.donations import donation_out
from db.crypto import Keyring
from db.queries import donations as dq
from db.queries import export as q
from tenants.principal import Principal

bp = Blueprint("export", url_prefix="/api/v1")

TAG = "donations"
CSV_TYPE = "text/csv; charset=utf-8; header=present"
BOM = "\ufeff"
CHUNK = 64 * 1024  # characters buffered before a send
COLUMNS = (
    "id",
    "created_at",
    "status",
    "campaign_id",
    "campaign_slug",
    "campaign_title",
    "item_id",
    "item_name",
    "item_unit",
    "quantity",
    "donor_name",
    "donor_contact",
    "anonymous",
    "message",
    "source",
    "confirmed_at",
    "delivered_at",
    "cancelled_at",
)
JOINED = ("campaign_slug", "campaign_title", "item_name", "item_unit")
# Cells people typed; only these can carry a formula (ours are ids, numbers, times).
TYPED = frozenset({"campaign_title", "item_name", "donor_name", "donor_contact", "message"})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def defuse(value: str) -> str:
    """A leading apostrophe for text a spreadsheet would read as a formula (OWASP)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def csv_row(row: Mapping[str, Any], ring: Keyring) -> list[str]:
    """One donation as the API reads it (contact and message decrypted), plus the
    joined campaign and item columns, in `COLUMNS` order."""
    fields = donation_out(row, ring)
    fields.update((name, row[name]) for name in JOINED)
    return [defuse(_cell(fields[c])) if c in TYPED else _cell(fields[c]) for c in COLUMNS]


def slots(request: Request) -> asyncio.Semaphore:
    """This worker's export slots (`EXPORT_CONCURRENCY`): an export holds a pool
    connection while its client downloads, so a few slow downloads must not take
    the pool from every other request."""
    ctx = app_context(request)
    if ctx.export_slots is None:
        ctx.export_slots = asyncio.Semaphore(max(1, int(request.app.config.EXPORT_CONCURRENCY)))
    return ctx.export_slots


@bp.get("/donations/export")
@doc(
    tag=TAG,
    errors=(404,),
    query=DonationExportFilters,
    media="text/csv",
    description="The donations as CSV (UTF-8 with BOM, header row)",
)
async def export_donations(request: Request, principal: Principal) -> None:
    """Export donations as CSV, newest first, streamed (filters as the donations list)."""
    require(principal, "read")
    filters = parse_query(request, DonationExportFilters)  # the format: csv, the only one
    export_slots = slots(request)
    if export_slots.locked():
        raise ServiceUnavailable("This server is busy with other exports; retry shortly.")
    async with export_slots:
        await _stream_csv(request, principal.tenant_id, filters)


async def _stream_csv(request: Request, tid: UUID, filters: DonationExportFilters) -> None:
    cid = filters.campaign_id
    ring = keyring(request)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    headers = {
        "Content-Disposition": f'attachment; filename="donations-{stamp}.csv"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    async with tenant_tx(request, tid) as conn:
        # Checked before the first byte: afterwards an error cannot be a 404 any more.
        if cid is not None and not await dq.campaign_exists(conn, tenant_id=tid, campaign_id=cid):
            raise NotFound("No such campaign.")
        response: HTTPResponse = await request.respond(headers=headers, content_type=CSV_TYPE)
        if request.method == "HEAD":
            # The headers a GET would send, without reading the rows it would (the
            # whole export's query, only for Sanic to drop the body).
            await response.eof()  # type: ignore[no-untyped-call]
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer)  # excel dialect: minimal quoting, CRLF
        buffer.write(BOM)
        writer.writerow(COLUMNS)
        rows = q.export_donations(
            conn, tenant_id=tid, campaign_id=cid, status=filters.status, since=filters.since
        )
        async for row in rows:
            writer.writerow(csv_row(row, ring))
            if buffer.tell() >= CHUNK:
                await response.send(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
        await response.send(buffer.getvalue().encode())
    await response.eof()  # type: ignore[no-untyped-call]
