"""Donor pages' templates (api/templates/, Jinja2 with autoescaping) and the pt-BR
formatting they use: quantities in each unit, percentages, dates, deadlines."""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from edge.render import STATIC_DIR

HTML = "text/html; charset=utf-8"
TEMPLATES = Path(__file__).resolve().parent / "templates"
# The pages' style sheet: served by the edge under /static/ (long-lived, immutable),
# and by the API at the same path when it runs without the edge.
CSS_PATH = STATIC_DIR / "pages.css"
# Its content hash in the link: a changed sheet gets a new URL, never a stale copy.
CSS_URL = "/static/pages.css?v=" + hashlib.sha256(CSS_PATH.read_bytes()).hexdigest()[:10]
# Dates as donors read them: Brasília time (no daylight saving since 2019; a fixed
# offset needs no time zone database in the image).
ZONE = timezone(timedelta(hours=-3), "BRT")

UNITS = {"kg": "kg", "unit": "un.", "l": "L", "hour": "h"}
CURRENCY_SYMBOLS = {"BRL": "R$", "USD": "US$", "EUR": "€"}


def number(value: int | float, decimals: int = 0) -> str:
    """1234567.5 → "1.234.567,50" (pt-BR separators)."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def quantity(value: int, unit: str) -> str:
    """A quantity in its unit: "50 kg", "3 un.", "R$ 12,34" (currencies in minor units)."""
    if unit in UNITS:
        return f"{number(value)} {UNITS[unit]}"
    symbol = CURRENCY_SYMBOLS.get(unit, unit)
    return f"{symbol} {number(value / 100, 2)}"


UNIT_NAMES = {"kg": "kg", "unit": "unidades", "l": "litros", "hour": "horas"}


def unit_name(unit: str) -> str:
    """How the form asks for a quantity of this unit."""
    if unit in UNIT_NAMES:
        return UNIT_NAMES[unit]
    return f"{CURRENCY_SYMBOLS.get(unit, unit)}, em centavos"


def percent(progress: float) -> int:
    """Whole percent for display and bar widths, 0-100 (an item may be over-given)."""
    return max(0, min(100, math.floor(progress * 100)))


def date(value: datetime | None) -> str:
    return value.astimezone(ZONE).strftime("%d/%m/%Y") if value else ""


def deadline(ends_at: datetime | None, now: datetime | None = None) -> str:
    """ "faltam 12 dias", "falta 1 dia", "termina hoje", "encerrada", "sem prazo"."""
    if ends_at is None:
        return "sem prazo"
    now = now or datetime.now(UTC)
    if ends_at <= now:
        return "encerrada"
    today = now.astimezone(ZONE).date()
    days = (ends_at.astimezone(ZONE).date() - today).days
    if days <= 0:
        return "termina hoje"
    return "falta 1 dia" if days == 1 else f"faltam {days} dias"


_PHONE = re.compile(r"^\+?[\d\s().-]{8,20}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def contact_link(contact: str) -> str | None:
    """Where the campaign's contact leads: WhatsApp for a phone, mailto, or a web
    address; None for anything else (shown as text)."""
    contact = contact.strip()
    if _EMAIL.match(contact):
        return f"mailto:{contact}"
    if contact.startswith(("https://", "http://")):
        return contact
    if _PHONE.match(contact):
        digits = re.sub(r"\D", "", contact)
        if not contact.startswith("+") and len(digits) in (10, 11):
            digits = "55" + digits  # a Brazilian number without the country code
        return f"https://wa.me/{digits}"
    return None


def paragraphs(text: str) -> Markup:
    """Plain text with blank lines as <p> paragraphs (escaped)."""
    parts = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return Markup("").join(Markup("<p>{}</p>").format(p) for p in parts)


def create_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates are read once per worker: with auto_reload every render stat()ed
        # its template files (a page build's profile showed the getmtime calls).
        auto_reload=False,
    )
    env.filters.update(
        number=number,
        quantity=quantity,
        unit_name=unit_name,
        percent=percent,
        date=date,
        deadline=deadline,
        contact_link=contact_link,
        paragraphs=paragraphs,
    )
    env.globals["css_url"] = CSS_URL
    return env


_ENV = create_environment()


def render(template: str, **context: Any) -> bytes:
    return _ENV.get_template(template).render(**context).encode()
