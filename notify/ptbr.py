"""pt-BR formatting of what donors read, the same on the donor pages (api/html.py's
template filters) and in the emails (notify/messages.py): quantities in each unit,
numbers with Brazilian separators, percentages, dates and deadlines."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

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
