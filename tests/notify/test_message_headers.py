"""notify/messages.py builds with the stdlib's MIME classes: headers with long,
accented names and titles come out as RFC 2047 words within 78-character lines, read
back as they were written, and a name cannot add a header of its own."""

from __future__ import annotations

import email
import email.policy
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import aiosmtplib.email

from notify.messages import build
from notify.settings import EmailSettings

SETTINGS = EmailSettings(
    SMTP_HOST="127.0.0.1",
    SMTP_FROM="Conectades Doações <nao-responda@conectades.example>",
    PUBLIC_URL="https://conectades.example",
    LINK_SECRET=secrets.token_urlsafe(48),
)
TITLE = "Campanha de arrecadação de cobertores e agasalhos para o inverno do bairro São João"
DONOR = "José da Conceição Pereira de Albuquerque Cavalcanti Wanderley Júnior"


def _row(donor_name: str, title: str = TITLE) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "donation_id": uuid.uuid4(),
        "quantity": 7,
        "donor_name": donor_name,
        "anonymous": False,
        "status": "pending",
        "created_at": datetime.now(UTC),
        "campaign_title": title,
        "campaign_slug": "inverno",
        "campaign_contact": "contato@associacao.example",
        "item_name": "Cobertor",
        "item_unit": "unit",
        "tenant_name": "Associação de Moradores do Jardim Ângela e Adjacências",
        "tenant_slug": "jardim",
    }


def _sent(kind: str, row: dict[str, Any]) -> tuple[bytes, email.message.EmailMessage]:
    message = build(
        SETTINGS,
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        kind=kind,
        created_at=row["created_at"],
        row=row,
        donor_contact="jose@example.org",
        donor_message="Levo no sábado",
    )
    assert message is not None
    raw = aiosmtplib.email.flatten_message(message)  # what the worker sends
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return raw, parsed


def test_long_accented_headers_fold_and_read_back() -> None:
    raw, receipt = _sent("receipt", _row(DONOR))
    head = raw.split(b"\n\n", 1)[0]
    assert head.isascii()
    # The subject is split into words that fit; a name stays one word (its own line).
    assert max(len(line) for line in head.splitlines() if b"?utf-8?" not in line) <= 78
    subject = head.split(b"Subject:", 1)[1].split(b"\nTo:", 1)[0].split(b"\nFrom:", 1)[0]
    assert max(len(line) for line in subject.splitlines()) <= 78
    assert receipt["Subject"] == f"Recebemos sua doação para {TITLE}"
    to = receipt["To"].addresses[0]
    assert to.addr_spec == "jose@example.org"
    assert to.display_name == DONOR
    assert receipt["Reply-To"].addresses[0].addr_spec == "contato@associacao.example"
    assert receipt["From"].addresses[0].display_name == "Conectades Doações"
    assert receipt["Content-Language"] == "pt-BR"
    text = receipt.get_body(preferencelist=("plain",))
    html = receipt.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "Recebemos sua doação" in text.get_content()
    assert text["Content-Transfer-Encoding"] == "quoted-printable"  # readable in var/mail
    _, notice = _sent("notice", _row(DONOR))
    assert notice["Subject"] == f"Nova doação: 7 un. de Cobertor para {TITLE}"
    assert notice["Reply-To"].addresses[0].display_name == DONOR


def test_a_name_cannot_add_a_header() -> None:
    raw, receipt = _sent("receipt", _row("Ana\r\nBcc: intruso@example.org\nX-Evil: 1"))
    assert receipt["Bcc"] is None and receipt["X-Evil"] is None
    head = raw.split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in head and b"\nX-Evil:" not in head
    assert receipt["To"].addresses[0].addr_spec == "jose@example.org"
    _, plain = _sent("receipt", _row('Ana "Tia" Silva, Jr.', title="Inverno"))
    assert plain["To"].addresses[0].display_name == 'Ana "Tia" Silva, Jr.'
    assert plain["Subject"] == "Recebemos sua doação para Inverno"
