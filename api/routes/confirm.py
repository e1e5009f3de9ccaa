"""The emailed "Confirmar recebimento" link (notify/links.py): a page, then a button.

`GET /confirmar/{token}` only shows the donation and a form; it never changes
anything (mail scanners and link previews fetch links). `POST` to the same address
confirms the donation through the partner API's own status change
(api/routes/donations.py: `apply_transition`: the conditional update, totals by
trigger, the `donation.confirmed` event) and marks the link used in the same
transaction, then 303 → the page, which now says it is confirmed.

The token in the address is the capability (signed, expiring, single-use), so the
form needs no CSRF token of its own: a forged POST would need the token. Pages are
personal: never cached (`private, no-store`; the edge's `location /` does not cache),
no referrer sent onwards, not indexed. Errors are Portuguese pages: a link that is
not ours 400, expired 410, used 409, of a donation or organization that is gone 404.
"""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api.database import tenant_tx
from api.errors import IllegalTransition
from api.html import HTML, render
from api.routes.donations import apply_transition, invalidate_transition
from api.routes.pages import render_error_page
from db.queries import donations as dq
from db.queries import email as eq
from notify import links

bp = Blueprint("confirm")

HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
STATUS_WORDS = {
    "pending": "pendente",
    "confirmed": "confirmada",
    "delivered": "entregue",
    "cancelled": "cancelada",
}


class LinkProblem(Exception):
    """A link that cannot confirm anything, as a page: its status and what to say."""

    TEXTS = {
        400: ("Link inválido", "Este link de confirmação não é válido. Confira se ele foi "
              "copiado inteiro do e-mail."),
        404: ("Doação não encontrada", "A doação deste link não existe mais."),
        409: ("Link já usado", "Este link já foi usado: a doação já foi confirmada por ele. "
              "Cada link confirma uma vez só."),
        410: ("Link expirado", "Este link de confirmação expirou. Confirme a doação pelo "
              "painel ou pela API de parceiros."),
    }  # fmt: skip

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _page(template: str, status: int = 200, **context: Any) -> HTTPResponse:
    return HTTPResponse(render(template, **context), status=status, headers=HEADERS,
                        content_type=HTML)  # fmt: skip


def _verify(request: Request, token: str) -> links.ConfirmLink:
    try:
        return links.verify(str(request.app.config.LINK_SECRET), token)
    except links.LinkExpired:
        raise LinkProblem(410) from None
    except links.LinkInvalid:
        raise LinkProblem(400) from None


async def _load(conn: Any, link: links.ConfirmLink) -> tuple[Any, Any]:
    """The link's notice job and what the page shows of its donation; LinkProblem(404)
    when either is gone or the organization is suspended (its pages are gone too)."""
    job = await eq.select_link_job(conn, tenant_id=link.tenant_id, job_id=link.job_id)
    details = None
    if job is not None:
        details = await eq.select_message_context(
            conn, tenant_id=link.tenant_id, donation_id=job["donation_id"]
        )
    if job is None or details is None or details["tenant_status"] != "active":
        raise LinkProblem(404)
    return job, details


@bp.get("/confirmar/<token:str>")
async def get_confirm_page(request: Request, token: str) -> HTTPResponse:
    """The donation and a "Confirmar recebimento" button (nothing changes here)."""
    link = _verify(request, token)
    async with tenant_tx(request, link.tenant_id) as conn:
        job, details = await _load(conn, link)
    return _page(
        "confirm.html",
        donation=details,
        status_word=STATUS_WORDS.get(details["status"], details["status"]),
        used=job["link_used_at"] is not None,
        record=str(details["donation_id"])[:8],
        action=links.PATH + token,
    )


@bp.post("/confirmar/<token:str>")
async def confirm_donation_by_link(request: Request, token: str) -> HTTPResponse:
    """Confirm the donation (once), then 303 to the page."""
    link = _verify(request, token)
    tid = link.tenant_id
    async with tenant_tx(request, tid) as conn:
        job, _ = await _load(conn, link)
        did = job["donation_id"]
        if await eq.use_link(conn, tenant_id=tid, job_id=link.job_id, donation_id=did) is None:
            raise LinkProblem(409)
        try:
            row, slug = await apply_transition(
                conn, tenant_id=tid, donation_id=did, to_status="confirmed"
            )
        except IllegalTransition:
            # Confirmed, delivered or cancelled some other way: the link is left
            # unused (the rollback) and the page says what the donation is.
            status = await dq.select_donation_status(conn, tenant_id=tid, donation_id=did)
            raise _NotPending(status or "") from None
    await invalidate_transition(request, tid, row, slug, "confirmed")
    return HTTPResponse(status=303, headers={"Location": links.PATH + token, **HEADERS})


class _NotPending(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


async def _link_problem(request: Request, exc: Exception) -> HTTPResponse:
    if isinstance(exc, _NotPending):
        word = STATUS_WORDS.get(exc.status, exc.status)
        title = f"Esta doação já está {word}"
        text = "Ela não estava mais pendente, então nada mudou."
        return _page("confirm_error.html", 409, title=title, text=text)
    assert isinstance(exc, LinkProblem)
    title, text = LinkProblem.TEXTS[exc.status]
    return _page("confirm_error.html", exc.status, title=title, text=text)


async def _error(request: Request, exc: Exception) -> HTTPResponse:
    """Other errors (the database unavailable, a 405...) as the pages' Portuguese
    error page, never cached."""
    response = await render_error_page(request, exc)
    response.headers.update(HEADERS)
    return response


bp.exception(LinkProblem, _NotPending)(_link_problem)
bp.exception(Exception)(_error)
# Pages, not API operations: kept out of the OpenAPI document.
for _handler in (get_confirm_page, confirm_donation_by_link):
    openapi.exclude()(_handler)
