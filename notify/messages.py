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
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr
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
# UTF-8 bodies as quoted-printable (the stdlib's default for UTF-8 is base64).
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP


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


def _address(value: str, name: str = "") -> str:
    """`Name <value>`; a name that is not ASCII as one RFC 2047 word. Not split into
    several: where two words meet, Python's own parser reads an extra space into the
    name."""
    # One line: a name with line breaks must not become a header of its own.
    return formataddr((" ".join(name.split()), value), charset="utf-8")


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype)
    part.set_payload(body, _UTF8)
    del part["MIME-Version"]  # once, on the message
    return part


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
) -> MIMEMultipart | None:
    """The message of a job, or None when there is no email address to send it to.

    Built with the stdlib's MIME classes (the compat32 policy), not EmailMessage:
    the default policy parses every header it is given (addresses, Content-Type
    parameters), which took most of the worker's CPU per email (py-spy under
    pledges: header parsing 27 % of the worker; building one message 1.7 ms).
    Names and the subject are encoded as RFC 2047 words when not ASCII; bodies
    are UTF-8, quoted-printable (readable in var/mail/)."""
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

    sender = settings.sender
    message = MIMEMultipart("alternative")
    if not subject.isascii():  # encoded words that fit the header's lines
        subject = Header(subject, "utf-8", header_name="Subject").encode()
    message["Subject"] = subject
    message["From"] = _address(sender.addr_spec, sender.display_name)
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
    message["Content-Language"] = "pt-BR"
    message.attach(_text_part(text, "plain"))
    message.attach(_text_part(html, "html"))
    return message
