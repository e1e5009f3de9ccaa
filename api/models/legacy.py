"""The old Django API's campaign listing (`CampanhaSerializer(many=True)`): its field
names and types, as old clients read them. Ids of campaigns, items and organizations
are UUIDs here (they were integers); categories and locations keep integer ids
(migration 0013)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, RootModel


class OrganizadoraLegada(BaseModel):
    """The organization (tenant) running the campaign."""

    slug: str
    nome: str


class ItemLegado(BaseModel):
    """A need of the campaign; quantities in `unidade` (minor units for currencies)."""

    id: UUID
    campanha: UUID
    nome: str
    quantidade_solicitada: int
    quantidade_contribuida: int
    unidade: str
    percentual_atingido: float
    data_criacao: datetime


class CampanhaLegada(BaseModel):
    """One campaign in the old shape."""

    id: UUID
    titulo: str
    subtitulo: str
    descricao: str
    organizadora: OrganizadoraLegada
    beneficiaria_nome: str | None
    imagem_url: str | None
    categorias: list[int]
    whatsapp: str
    localizacao: int | None
    data_inicio: datetime | None
    prazo: datetime | None
    dias_restantes: int | None
    percentual_atingido: float
    status_campanha: Literal["ativa", "encerrada"]
    total_itens: int
    itens_completos: int
    itens: list[ItemLegado]
    itens_campanha: list[ItemLegado]
    ativa: bool


class CampanhaLegadaList(RootModel[list[CampanhaLegada]]):
    """A bare JSON array, as the old view answered."""
