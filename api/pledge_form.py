"""The donor pages' pledge form: its fields, Portuguese validation, and the
idempotency key derived from what the visitor sent.

The form carries no token: the campaign page is cached (edge and Redis) and is the
same for every visitor, so anything per-visitor in it would be shared. Instead the
key is an HMAC, under a secret derived from the app's JWT secret, of the tenant,
the campaign, the normalized fields and the client's address. The same visitor
sending the same form again (a double click, a reload of the POST, the back button)
gets the same key, and `run_once` replays the first answer; another visitor, or
other values, is another key and another pledge.

A repeat counts as one within `REPEAT_WINDOW` seconds of the first (the record's
age, a sliding window: `run_once` takes the window as its TTL), not within a fixed
time bucket, whose boundary could fall between the two clicks of a double click.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson

from api.models.common import MAX_QUANTITY
from api.models.public import PledgeCreate

REPEAT_WINDOW = 3600.0
HONEYPOT = "site"  # a field people never see; bots that fill every field do
FIELDS = ("item", "quantidade", "nome", "contato", "mensagem")
MAX_NAME = 200
MAX_CONTACT = 200
MAX_MESSAGE = 1000


@dataclass
class PledgeForm:
    """What the visitor typed (kept for redisplay) and the errors per field."""

    values: dict[str, str] = field(default_factory=dict)
    show_name: bool = False
    honeypot: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, form: Mapping[str, list[str]]) -> PledgeForm:
        def first(name: str) -> str:
            got = form.get(name) or [""]
            return got[0].replace("\x00", "").strip()

        return cls(
            values={name: first(name) for name in FIELDS},
            show_name=bool(first("mostrar_nome")),
            honeypot=bool(first(HONEYPOT)),
        )

    def validate(self) -> PledgeCreate | None:
        """The pledge, or None with `errors` set (messages in Portuguese)."""
        v, errors = self.values, self.errors
        item_id: UUID | None = None
        try:
            item_id = UUID(v["item"])
        except ValueError:
            errors["item"] = "Escolha um dos itens da lista."
        quantity = 0
        if not v["quantidade"]:
            errors["quantidade"] = "Informe a quantidade."
        elif not v["quantidade"].isdigit() or not 0 < int(v["quantidade"]) <= MAX_QUANTITY:
            errors["quantidade"] = "Informe um número inteiro maior que zero."
        else:
            quantity = int(v["quantidade"])
        _text(errors, "nome", v["nome"], MAX_NAME, "Informe seu nome.")
        _text(
            errors,
            "contato",
            v["contato"],
            MAX_CONTACT,
            "Informe um telefone (WhatsApp) ou e-mail para a organização combinar a entrega.",
        )
        _text(errors, "mensagem", v["mensagem"], MAX_MESSAGE, None)
        if errors or item_id is None:
            return None
        return PledgeCreate(
            item_id=item_id,
            quantity=quantity,
            donor_name=v["nome"],
            donor_contact=v["contato"],
            show_name=self.show_name,  # the name is public only if the donor asks
            message=v["mensagem"],
        )


def _text(errors: dict[str, str], name: str, value: str, limit: int, missing: str | None) -> None:
    if not value and missing is not None:
        errors[name] = missing
    elif len(value) > limit:
        errors[name] = f"Use no máximo {limit} caracteres."


def form_secret(jwt_secret: str) -> bytes:
    """The key's HMAC secret, derived so that neither secret reveals the other."""
    return hmac.new(jwt_secret.encode(), b"conectades pledge form key", hashlib.sha256).digest()


def pledge_key(
    secret: bytes, *, tenant_id: UUID, slug: str, pledge: PledgeCreate, client_ip: str
) -> str:
    """The `Idempotency-Key` of this visitor's form: same visitor, same values → same key."""
    fields: dict[str, Any] = pledge.model_dump(mode="json")
    fields["donor_contact"] = fields["donor_contact"].casefold()
    material = orjson.dumps([str(tenant_id), slug, fields, client_ip], option=orjson.OPT_SORT_KEYS)
    return "form:" + hmac.new(secret, material, hashlib.sha256).hexdigest()
