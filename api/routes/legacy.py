"""The old system's endpoints, kept so its clients keep working.

`GET /api/campanhas/listar/` answers the public directory with the old parameter
names and values. It is public: an `Authorization` header (the old manual test
sends a staff access token) is neither required nor checked, so a valid token
never causes a 401 and an invalid one is ignored rather than refused.
"""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from api.models.public import CampaignPublicList
from api.openapi import doc
from api.pagination import Page
from api.routes.public import (
    DirectoryParams,
    directory_filter,
    directory_response,
    document_params,
)

bp = Blueprint("legacy")

LEGACY_PARAMS = DirectoryParams(
    q="busca",
    category="categoria",
    location="localizacao",
    status="status",
    order="ordenar",
    statuses={"ativa": "active", "encerrada": "ended", "todas": "all"},
    orders={"recente": "recent", "antiga": "oldest", "prazo": "deadline", "progresso": "progress"},
)


@bp.get("/api/campanhas/listar/", strict_slashes=False)
@doc(tag="legacy", response=CampaignPublicList, errors=(400, 422), secured=False)
@document_params(LEGACY_PARAMS)
async def list_campanhas(request: Request, page: Page) -> HTTPResponse:
    """The public directory with the old system's parameter names and values."""
    return await directory_response(request, page, directory_filter(request, LEGACY_PARAMS))
