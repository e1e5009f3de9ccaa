"""Donor pages' templates (api/templates/, Jinja2 with autoescaping), with the pt-BR
formatting of notify/ptbr.py as filters (the emails format the same way)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from edge.render import CSS_URL, STATIC_DIR
from notify.ptbr import date, deadline, number, percent, quantity, unit_name

HTML = "text/html; charset=utf-8"
TEMPLATES = Path(__file__).resolve().parent / "templates"
# The pages' style sheet: served by the edge under /static/ (long-lived, immutable),
# and by the API at the same path when it runs without the edge; linked by its
# content hash (edge/render.py: CSS_URL).
CSS_PATH = STATIC_DIR / "pages.css"
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


class _Environment(Environment):
    """Jinja2's environment, with `x.name` on a dict read as the key first.

    Jinja2 tries `getattr(x, "name")` first and the key only after the
    AttributeError; the pages' data are dicts, so every `campaign.title` paid a
    raised and caught exception (a page renders ~430 of them: 1.0 ms a page
    before, measured in-process; see the commit). A key that is missing still
    falls back to the attribute (`form.errors.items()` is the dict's method)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


def create_environment() -> Environment:
    env = _Environment(
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
