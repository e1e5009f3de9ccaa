"""The two messages of a pledge, in pt-BR, as multipart/alternative (text and HTML
from Jinja2 templates in notify/templates/; the HTML autoescaped):

- a receipt to the donor, when the donor's contact is an email address;
- a notice to the organization, at the campaign's contact when it is an email
  address, with the "Confirmar recebimento" link.

The Message-ID is the job's id, so a message sent again (at least once) is the
same message to the receiving side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from notify import links

# The donor pages' pt-BR formatting (quantities per unit, dates): one home for it.
from notify.ptbr import date, quantity
from notify.settings import EmailSettings

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Loose on purpose: something@domain.tld with no spaces or header syntax; the SMTP
# server has the last word. A phone number never matches.
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+\.[^@\s<>(),;:\"\[\]\\]+$")
MAX_ADDRESS = 254


def email_address(contact: str | None) -> str | None:
    """The contact as an address, or None when it is not one (a phone number...)."""
    value = (contact or "").strip()
    if value.lower().startswith("mailto:"):
        value = value[len("mailto:") :]
    if len(value) > MAX_ADDRESS or not _EMAIL.match(value):
        return None
    return value


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(quantity=quantity, date=date)
    return env


_ENV = _environment()


def _address(value: str, name: str = "") -> Address:
    user, _, domain = value.rpartition("@")
    # One line: a name with line breaks must not become a header of its own.
    return Address(display_name=" ".join(name.split()), username=user, domain=domain)


def _render(kind: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    subject = _ENV.get_template(f"email_{kind}_subject.txt").render(**context)
    text = _ENV.get_template(f"email_{kind}.txt").render(**context)
    html = _ENV.get_template(f"email_{kind}.html").render(**context)
    return " ".join(subject.split()), text, html


def build(
    settings: EmailSettings,
    *,
    job_id: UUID,
    tenant_id: UUID,
    kind: str,
    created_at: datetime,
    row: Mapping[str, Any],
    donor_contact: str | None,
    donor_message: str = "",
) -> EmailMessage | None:
    """The message of a job, or None when there is no email address to send it to."""
    donor_email = email_address(donor_contact)
    org_email = email_address(row["campaign_contact"])
    recipient = donor_email if kind == "receipt" else org_email
    if recipient is None:
        return None
    base = settings.public_url
    context: dict[str, Any] = {
        "donation": row,
        "record": str(row["donation_id"])[:8],
        "campaign_url": f"{base}/o/{row['tenant_slug']}/{row['campaign_slug']}",
        "donor_email": donor_email,
        "donor_contact": donor_contact or "",
        "donor_message": donor_message,
    }
    if kind == "notice":
        token = links.sign(
            settings.LINK_SECRET,
            job_id=job_id,
            tenant_id=tenant_id,
            issued=created_at,
            ttl=settings.CONFIRM_LINK_TTL,
        )
        context["confirm_url"] = links.url(base, token)
        context["expires"] = created_at + timedelta(seconds=settings.CONFIRM_LINK_TTL)
    subject, text, html = _render(kind, context)

    message = EmailMessage()
    sender = settings.sender
    message["Subject"] = subject
    message["From"] = sender
    if kind == "receipt":
        message["To"] = _address(recipient, row["donor_name"])
        if org_email:  # the donor's reply reaches the organization
            message["Reply-To"] = _address(org_email, row["tenant_name"])
    else:
        message["To"] = _address(recipient, row["tenant_name"])
        if donor_email:
            message["Reply-To"] = _address(donor_email, row["donor_name"])
    message["Date"] = format_datetime(created_at)
    message["Message-ID"] = f"<{job_id}@{sender.domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    # After the content: set_content drops the Content-* headers set before it.
    message["Content-Language"] = "pt-BR"
    return message
